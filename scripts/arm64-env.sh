#!/usr/bin/env bash
# Sourced by build-arm64.sh and test-arm64.sh: the environment of one aarch64 cross build
# with Debian's packaged toolchain (scripts/setup-arm64.sh installs it). Everything is set
# per invocation, none of it in a .cargo/config.toml, so host builds with rustup's
# toolchain see no change.

# Debian's compiler, the only one that can use Debian's aarch64 std (/usr/lib/rustlib).
# /usr/bin first on PATH so build scripts and cargo's own calls never reach rustup's proxies.
export PATH="/usr/bin:$PATH"
export CARGO_BIN=/usr/bin/cargo
export RUSTC=/usr/bin/rustc
export RUSTDOC=/usr/bin/rustdoc
unset RUSTC_WRAPPER RUSTUP_TOOLCHAIN

export ARM64_TRIPLE=aarch64-unknown-linux-gnu
# A target directory of its own: Debian's rustc would otherwise invalidate every artifact
# the rustup builds share, and the other way round. On the project's machines it lives
# outside the checkout (/work/arm-target), so CI's fresh clone finds it built.
if [ -z "${AIWARDEN_ARM64_TARGET_DIR:-}" ]; then
  if [ -d /work ]; then
    AIWARDEN_ARM64_TARGET_DIR=/work/arm-target
  else
    AIWARDEN_ARM64_TARGET_DIR="$(pwd)/target/arm64-debian"
  fi
fi
export CARGO_TARGET_DIR="$AIWARDEN_ARM64_TARGET_DIR"

# The cross linker, and the C compiler for ring and the bundled SQLite (the cc crate reads
# the CC_<triple> and AR_<triple> forms).
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar

# libpcap for arm64 (libpcap-dev:arm64): pkg-config must see only the aarch64 .pc files,
# never the host's, and is allowed to answer for a cross target.
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_LIBDIR_aarch64_unknown_linux_gnu=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig

# cargo test --target runs the test binaries through qemu-user. Without -L: the arm64
# libraries (libc6:arm64, libpcap0.8:arm64) are installed in Debian's multiarch
# directories, and the binary's interpreter /lib/ld-linux-aarch64.so.1 finds them there.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64-static

# The quicker profile for iterating: release without LTO and debug info, in its own output
# directory (target/aarch64-unknown-linux-gnu/arm64) so it never invalidates the release
# build the .deb packs. Defined here rather than in Cargo.toml: only this cross build uses it.
export CARGO_PROFILE_ARM64_INHERITS=release
export CARGO_PROFILE_ARM64_LTO=false
export CARGO_PROFILE_ARM64_DEBUG=0
export CARGO_PROFILE_ARM64_CODEGEN_UNITS=16

# Wall-clock helpers for the scripts' timing lines: `t=$(now)` ... `took "$t"` prints
# "12.3 s" or "4 min 5 s".
now() { date +%s.%N; }
took() {
  awk -v a="$1" -v b="$(now)" 'BEGIN { s = b - a; if (s < 60) printf "%.1f s", s;
    else printf "%d min %d s", s / 60, s % 60 }'
}
