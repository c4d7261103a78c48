#!/usr/bin/env bash
# Tests the arm64 cross build under qemu-user on the amd64 machine that built it: the
# binary's --version, `rules check --strict` on the shipped rules, `replay` of the bundled
# sample (stdout identical to the amd64 build's, stderr too apart from its timing line), a
# replay into a store that both builds must chain to the same head hash, that store's
# `verify` and weekly JSON report, and the library's unit tests (through cargo's qemu runner).
# Prints the time of each step; the last line is "arm64: N checks passed, M failed".
#
# Usage: scripts/test-arm64.sh
#   AIWARDEN_ARM64_PROFILE  release (default, what the .deb packs) or arm64 (no LTO: quicker)
#   AIWARDEN_HOST_BIN       the amd64 aiwarden to compare with (default: built here with the
#                           host's own cargo, debug profile, as scripts/test.sh builds it)
#   AIWARDEN_ARM64_LIB_TESTS=0 skips the library's unit tests
# scripts/test.sh runs this when AIWARDEN_ARM64=1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
profile=${AIWARDEN_ARM64_PROFILE:-release}
lib_tests=${AIWARDEN_ARM64_LIB_TESTS:-1}

start=$(date +%s.%N)

# The amd64 reference, built before arm64-env.sh moves Debian's cargo to the front of PATH.
host_bin=${AIWARDEN_HOST_BIN:-}
if [ -z "$host_bin" ]; then
  cargo build --locked --bin aiwarden
  host_bin="${CARGO_TARGET_DIR:-$root/target}/debug/aiwarden"
fi

build_args=(--profile "$profile")
if [ "$lib_tests" = 1 ]; then build_args+=(--lib-tests); fi
arm_bin=$(bash scripts/build-arm64.sh "${build_args[@]}" | tail -n 1)

# shellcheck source=scripts/arm64-env.sh
source scripts/arm64-env.sh
echo "test-arm64: builds done in $(took "$start"); amd64 $host_bin, arm64 $arm_bin" >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
pass() { passed=$((passed + 1)); echo "test-arm64: ok   $1 ($(took "$2"))" >&2; }
fail() { failed=$((failed + 1)); echo "test-arm64: FAIL $1" >&2; }

# The arm64 binary runs through qemu-user directly, so binfmt_misc need not be set up.
arm() { qemu-aarch64-static "$arm_bin" "$@"; }
host() { "$host_bin" "$@"; }
# The replay summary's timing line (elapsed, packets per second) differs run to run.
untimed() { sed -E 's/  elapsed: .*$//' "$1"; }

# Runs one aiwarden command on both builds; stdout must match exactly, stderr apart from
# the timing line, and the exit statuses too.
same() {
  local name=$1 t rc_arm=0 rc_host=0
  shift
  t=$(now)
  arm "$@" >"$work/arm.out" 2>"$work/arm.err" || rc_arm=$?
  host "$@" >"$work/host.out" 2>"$work/host.err" || rc_host=$?
  if [ "$rc_arm" -ne "$rc_host" ]; then
    fail "$name: arm64 exited $rc_arm, amd64 $rc_host: $(head -n 3 "$work/arm.err")"
  elif ! cmp -s "$work/arm.out" "$work/host.out"; then
    fail "$name: stdout differs"
    diff "$work/host.out" "$work/arm.out" | head -n 20 >&2 || true
  elif ! diff <(untimed "$work/host.err") <(untimed "$work/arm.err") >"$work/err.diff"; then
    fail "$name: stderr differs"
    head -n 20 "$work/err.diff" >&2
  elif [ ! -s "$work/arm.out" ] && [ ! -s "$work/arm.err" ]; then
    fail "$name: printed nothing"
  else
    pass "$name (exit $rc_arm, $(wc -l <"$work/arm.out") lines)" "$t"
  fi
}

t=$(now)
if arm --version | grep -qx "aiwarden $(host --version | cut -d' ' -f2)"; then
  pass "--version: $(arm --version)" "$t"
else
  fail "--version: arm64 says '$(arm --version 2>&1 || true)', amd64 '$(host --version)'"
fi

sample=samples/clinic-morning.pcap
same "rules check --strict" rules check --strict rules
same "replay (jsonl)" replay --rules rules --no-progress "$sample"
same "replay --incidents" replay --rules rules --no-progress --incidents "$sample"
same "replay --all --format table" replay --rules rules --no-progress --all --format table "$sample"

# The store: the same incidents chained by SHA-256 over the same rows must give the same
# head hash on both architectures (SQLite, serialization and hashing all on arm64).
t=$(now)
arm replay --rules rules --no-progress --store "$work/arm.db" "$sample" >/dev/null 2>&1
host replay --rules rules --no-progress --store "$work/host.db" "$sample" >/dev/null 2>&1
arm_head=$(grep '^hash ' "$work/arm.db.head" || true)
host_head=$(grep '^hash ' "$work/host.db.head" || true)
if [ -n "$arm_head" ] && [ "$arm_head" = "$host_head" ]; then
  pass "replay --store: the same chain head (${arm_head#hash })" "$t"
else
  fail "replay --store: arm64 head '$arm_head', amd64 '$host_head'"
fi
t=$(now)
if arm verify --store "$work/arm.db" >"$work/verify.out" 2>&1 && grep -q intact "$work/verify.out"; then
  pass "verify: $(head -n 1 "$work/verify.out" | sed "s|$work/||")" "$t"
else
  fail "verify: $(cat "$work/verify.out")"
fi
# The report's JSON carries the minute it was generated; everything else must match.
t=$(now)
arm report --config samples/aiwarden.toml --store "$work/arm.db" --week 2026-W48 --format json \
  >"$work/arm.json" 2>"$work/arm.err" || true
host report --config samples/aiwarden.toml --store "$work/host.db" --week 2026-W48 --format json \
  >"$work/host.json" 2>"$work/host.err" || true
if [ -s "$work/arm.json" ] &&
  diff <(grep -v '"generated"' "$work/host.json") <(grep -v '"generated"' "$work/arm.json") >"$work/json.diff"; then
  pass "report --format json ($(wc -c <"$work/arm.json") bytes)" "$t"
else
  fail "report --format json: $(head -n 3 "$work/arm.err") $(head -n 20 "$work/json.diff" 2>/dev/null)"
fi

if [ "$lib_tests" = 1 ]; then
  t=$(now)
  log="$work/lib.log"
  status=0
  # cargo runs the aarch64 test binary through CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER
  # (qemu-aarch64-static); the library's tests need neither root nor a network beyond
  # loopback.
  "$CARGO_BIN" test --locked --lib --target "$ARM64_TRIPLE" 2>&1 | tee "$log" >&2 || status=$?
  summary=$(grep -E '^test result: ' "$log" | tail -n 1 || true)
  if [ "$status" -eq 0 ] && [ -n "$summary" ]; then
    pass "library unit tests under qemu: ${summary#test result: }" "$t"
  else
    fail "library unit tests under qemu (cargo exit $status): ${summary:-no result line}"
    grep -E '^    [a-z_:0-9]+$|^test .* FAILED$' "$log" | head -n 20 >&2 || true
  fi
fi

echo "test-arm64: total $(took "$start")" >&2
echo "arm64: $passed checks passed, $failed failed"
[ "$failed" -eq 0 ]
