#!/usr/bin/env bash
# Quick start, part two: set up and run every check CI runs: formatting, lints, unit and
# integration tests, and a one-pass smoke run of every benchmark. Ends with one line
# "tests: N passed, M failed" (then "arm64: ..." when AIWARDEN_ARM64=1 adds the arm64 build).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --all-targets --locked 2>&1 | tee "$log" || status=$?
passed=$(grep -oE '^test result: .* ([0-9]+) passed' "$log" | grep -oE '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -oE '; ([0-9]+) failed' "$log" | grep -oE '[0-9]+' | awk '{s+=$1} END {print s+0}')
echo "tests: ${passed} passed, ${failed} failed"
# The arm64 cross build under qemu-user (scripts/test-arm64.sh: Debian's toolchain, about
# half an hour on two cores), only when asked for until CI's time allows it by default.
if [ "${AIWARDEN_ARM64:-0}" = 1 ]; then
  bash scripts/test-arm64.sh || status=$?
fi
exit "$status"
