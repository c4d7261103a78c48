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
# The Debian package, once: build, install, upgrade and purge in a fresh chroot (as root;
# it prints its own times, or why it was skipped).
pkg_start=$(date +%s)
if bash tests/package.sh 2>&1 | tee "$log"; then
  grep -q '^package test: passed' "$log" && passed=$((passed + 1))
else
  failed=$((failed + 1))
  status=1
fi
echo "package test: $(($(date +%s) - pkg_start)) s"
# The appliance image, once: build it from Debian's packages and this checkout's package,
# then boot it in QEMU (no KVM) as a clinic's router between namespaces the test makes
# (root; each prints its own times).
img_start=$(date +%s)
if [ "$(id -u)" -ne 0 ]; then
  echo "image test: skipped: building and booting the image needs root"
elif bash images/build.sh x86-64 && bash images/test-boot.sh x86-64 2>&1 | tee "$log"; then
  grep -q '^test-boot: ok' "$log" && passed=$((passed + 1))
else
  failed=$((failed + 1))
  status=1
fi
echo "image test: $(($(date +%s) - img_start)) s"
echo "tests: ${passed} passed, ${failed} failed"
# arm64, only when asked for: CI's ~45 minutes on two cores do not hold it. The cross build
# under qemu-user (scripts/test-arm64.sh: Debian's toolchain, about half an hour), then the
# arm64 package (19 min), its image (36 min: the tree's maintainer scripts and initramfs
# run under qemu-user) and the same boot test on an emulated Cortex-A57 (90 s).
if [ "${AIWARDEN_ARM64:-0}" = 1 ]; then
  bash scripts/test-arm64.sh || status=$?
  arm_start=$(date +%s)
  arm_deb=$(bash scripts/build-arm64.sh --deb | tail -n 1) &&
    bash images/build.sh arm64 --deb "$arm_deb" &&
    bash images/test-boot.sh arm64 || status=1
  echo "arm64 image test: $(($(date +%s) - arm_start)) s"
fi
exit "$status"
