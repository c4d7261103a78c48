#!/usr/bin/env bash
# Cross-builds aiwarden for arm64 (aarch64-unknown-linux-gnu) on an amd64 Debian 12 machine
# with Debian's packaged toolchain only: Debian's rustc and cargo, the aarch64 std from
# libstd-rust-web-dev:arm64, the aarch64-linux-gnu cross linker, and libpcap-dev:arm64. It
# installs what is missing first (scripts/setup-arm64.sh). The host's rustup build is left
# alone: the settings are environment variables of this script (scripts/arm64-env.sh) and
# the output goes to its own target directory (/work/arm-target, or $AIWARDEN_ARM64_TARGET_DIR).
#
# Usage: scripts/build-arm64.sh [--profile release|arm64] [--lib-tests] [--deb]
#   --profile   release (default: the checkout's release build, thin LTO, debug=1) or arm64
#               (release without LTO or debug info: quicker to build, for iterating)
#   --lib-tests also build the library's unit tests for aarch64 (no run; test-arm64.sh runs them)
#   --deb       build the arm64 Debian package instead, the way scripts/build-deb.sh builds
#               the amd64 one (cargo profile `deb`, the package's compiled-in paths, man
#               pages and completions written by the binary itself, here under qemu-user)
# Prints the wall time of each step and the binary's size; the last line names the binary
# (with --deb, the .deb).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
lib_tests=0
deb=0
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=${2:?--profile needs release or arm64}; shift 2 ;;
    --lib-tests) lib_tests=1; shift ;;
    --deb) deb=1; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-arm64: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$profile" in
  release|arm64) ;;
  *) echo "build-arm64: --profile is release or arm64, not $profile" >&2; exit 2 ;;
esac
if [ "$deb" -eq 1 ]; then
  if ! grep -q '^\[package.metadata.deb\]' Cargo.toml || ! grep -q '^\[profile.deb\]' Cargo.toml; then
    echo "build-arm64: --deb needs [package.metadata.deb] and [profile.deb] in Cargo.toml (the Debian package's branch)" >&2
    exit 2
  fi
  # The package's places, as scripts/build-deb.sh compiles them in (src/paths.rs).
  export AIWARDEN_RULES_DIR=/usr/share/aiwarden/rules
  export AIWARDEN_SITE_DIR=/etc/aiwarden/site
  profile=deb
fi

bash scripts/setup-arm64.sh
# shellcheck source=scripts/arm64-env.sh
source scripts/arm64-env.sh

echo "build-arm64: $("$RUSTC" --version), $("$CARGO_BIN" --version), target dir $CARGO_TARGET_DIR, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

t0=$(now)
"$CARGO_BIN" build --locked --profile "$profile" --target "$ARM64_TRIPLE" --bin aiwarden
out_dir="$CARGO_TARGET_DIR/$ARM64_TRIPLE/$profile"
bin="$out_dir/aiwarden"
if ! file -b "$bin" | grep -q 'ARM aarch64'; then
  echo "build-arm64: $bin is not an aarch64 executable: $(file -b "$bin")" >&2
  exit 1
fi
echo "build-arm64: built $bin ($profile) in $(took "$t0"), $(du -m "$bin" | cut -f1) MB ($(stat -c %s "$bin") bytes)" >&2

if [ "$lib_tests" -eq 1 ]; then
  t1=$(now)
  "$CARGO_BIN" test --locked --lib --no-run --target "$ARM64_TRIPLE"
  echo "build-arm64: built the library's unit tests in $(took "$t1")" >&2
fi

if [ "$deb" -eq 1 ]; then
  t2=$(now)
  # cargo-deb is installed with the host's cargo (~/.cargo/bin); it packs what was built above.
  cargo_deb=$(PATH="$PATH:$HOME/.cargo/bin" command -v cargo-deb || true)
  if [ -z "$cargo_deb" ]; then
    echo "build-arm64: cargo-deb is missing: run scripts/setup-debian.sh" >&2
    exit 1
  fi
  docs="$out_dir/aiwarden-docs"
  rm -rf "$docs"
  qemu-aarch64-static "$bin" generate-docs "$docs" >/dev/null
  gzip -9n "$docs"/man/*.1 # Debian policy: compressed man pages, no timestamp
  deb_file=$("$cargo_deb" --target "$ARM64_TRIPLE" --profile deb --no-build --no-dbgsym | tail -n 1)
  echo "build-arm64: packed $deb_file ($(($(stat -c %s "$deb_file") / 1024)) KiB) in $(took "$t2")" >&2
  if command -v lintian >/dev/null 2>&1; then
    lintian --fail-on error,warning --info "$deb_file" >&2
  fi
  echo "build-arm64: total $(took "$t0")" >&2
  echo "$deb_file"
  exit 0
fi

echo "build-arm64: total $(took "$t0")" >&2
echo "$bin"
