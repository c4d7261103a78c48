#!/usr/bin/env bash
# Installs what the arm64 cross build and its qemu-user tests need on a Debian 12 (bookworm)
# amd64 machine, all from Debian's own packages: Debian's Rust compiler and cargo (rustc-web,
# cargo-web: bookworm-security carries a version new enough for this crate), the aarch64
# standard library that matches it (libstd-rust-web-dev:arm64; a rustup compiler cannot use
# Debian's std, and rustup's own std would be a download outside the package registries), the
# cross C compiler and C library (ring and the bundled SQLite compile C), libpcap for arm64
# (the pcap crate links it), and qemu-user to run the result.
#
# Safe to run again: it adds the arm64 architecture and runs apt only for what is missing.
# Debian's rustc and cargo land in /usr/bin; a rustup toolchain earlier on PATH stays the
# default for host builds (scripts/build-arm64.sh calls /usr/bin/cargo by its full path).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

packages=(
  rustc-web cargo-web                           # Debian's compiler and cargo (/usr/bin/rustc, /usr/bin/cargo)
  libstd-rust-web-dev:arm64                     # the aarch64 std built by that same compiler (Multi-Arch: same)
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross   # cross C compiler and linker, glibc for aarch64
  libpcap-dev:arm64                             # libpcap headers, .so and pkg-config file for aarch64
  pkg-config                                    # finds libpcap:arm64 through PKG_CONFIG_PATH
  qemu-user-static binfmt-support               # run aarch64 binaries on the amd64 host
  file                                          # build-arm64.sh checks the binary's architecture
)

updated=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "setup-arm64: adding the arm64 architecture to dpkg" >&2
  $SUDO dpkg --add-architecture arm64
  $SUDO apt-get update -qq
  updated=1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup-arm64: installing ${missing[*]}" >&2
  if [ "$updated" -eq 0 ]; then $SUDO apt-get update -qq; fi
  # A Multi-Arch: same library must have one version across architectures. Where the host
  # took a newer amd64 library from backports (systemd 254 for systemd-repart, say), apt
  # refuses the arm64 one from bookworm; pin each library apt names to the host's version
  # when that version exists for arm64, and try again.
  pins=()
  for attempt in 1 2 3 4; do
    if out=$(DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
      "${missing[@]}" "${pins[@]}" 2>&1); then
      break
    fi
    added=0
    # shellcheck disable=SC2013  # package names hold no spaces
    for dep in $(grep -oE '[a-z0-9][a-z0-9.+-]*:arm64' <<<"$out" | sort -u); do
      name=${dep%:arm64}
      host=$(dpkg-query -W -f='${Version}' "$name:amd64" 2>/dev/null || true)
      [ -n "$host" ] || continue
      case " ${pins[*]} " in *" $dep="*) continue ;; esac
      [ "$host" != "$(apt-cache policy "$dep" | awk '/Candidate:/ {print $2}')" ] || continue
      if apt-cache madison "$dep" | awk -F'|' '{gsub(/ /, "", $2); print $2}' | grep -qxF "$host"; then
        pins+=("$dep=$host")
        added=1
      fi
    done
    if [ "$added" -eq 0 ] || [ "$attempt" -eq 4 ]; then
      echo "$out" >&2
      echo "setup-arm64: apt could not install the arm64 packages (see above)" >&2
      exit 1
    fi
    echo "setup-arm64: matching the host's library versions: ${pins[*]}" >&2
  done
fi

# The compiler and the std must be the very same build: a mismatch fails late, with
# "found crate `std` compiled by an incompatible version of rustc".
host_ver=$(dpkg-query -W -f='${Version}' rustc-web)
std_ver=$(dpkg-query -W -f='${Version}' libstd-rust-web-dev:arm64)
if [ "$host_ver" != "$std_ver" ]; then
  echo "setup-arm64: rustc-web is $host_ver but libstd-rust-web-dev:arm64 is $std_ver; they must match" >&2
  exit 1
fi

# binfmt_misc lets the kernel hand aarch64 binaries to qemu (cargo test's runner and the
# tests call qemu-aarch64-static directly, so this is a convenience, not a requirement).
if [ ! -e /proc/sys/fs/binfmt_misc/register ] && [ "$(id -u)" -eq 0 ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
fi

# The arm64 appliance image (images/build.sh arm64) runs the tree's maintainer scripts under
# qemu-user through binfmt (mmdebstrap checks with arch-test), and its boot test needs the
# arm64 UEFI firmware and qemu-system-aarch64 (from backports, as qemu-system-x86).
if [ "${1:-}" = "--image" ]; then
  for p in arch-test qemu-efi-aarch64; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$p" >/dev/null
  done
  command -v qemu-system-aarch64 >/dev/null ||
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      -t bookworm-backports qemu-system-arm >/dev/null
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && [ -f /usr/lib/binfmt.d/qemu-aarch64.conf ]; then
    $SUDO /usr/lib/systemd/systemd-binfmt /usr/lib/binfmt.d/qemu-aarch64.conf
  fi
  arch-test arm64 >/dev/null || {
    echo "setup-arm64: this machine cannot run arm64 binaries through binfmt (arch-test arm64)" >&2
    exit 1
  }
fi
