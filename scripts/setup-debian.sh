#!/usr/bin/env bash
# Installs what aiwarden needs to build, test and benchmark on Debian 12 (bookworm).
# Safe to run again: apt and cargo skip what is already there.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

packages=(
  build-essential pkg-config ca-certificates
  libpcap-dev tcpdump          # capture: the pcap crate links libpcap
  dnsutils                     # dig, for end-to-end DNS tests
  iproute2 nftables iptables   # network namespaces and the firewall shell (iptables: the NFQUEUE hook where nft has no queue)
  dnsmasq-base openssl curl    # end-to-end test: upstream DNS, TLS server and client, /metrics
  systemd                      # systemd-analyze verify of the unit
  poppler-utils                # report tests: pdftotext and pdfinfo read the PDF report's text and pages
  fonts-dejavu-core            # the report email's PNG charts draw their text with DejaVu Sans
  chromium chromium-driver     # the web console's browser tests (headless, driven by chromedriver)
  minisign                     # signed rule bundles: the stock tool checks what `aiwarden bundle` signs, and makes keys it takes
  rsyslog rsyslog-gnutls       # the SIEM roll-up's test against a real rsyslog (imtcp over TLS)
  postgresql                   # the central roll-up's tests and bench start their own cluster (initdb, pg_ctl) on a local port
  prometheus                   # the metrics roll-up's test: a site and a central Prometheus (the test starts its own, not the package's service)
  tzdata                       # IANA time zones: the clinic's week and day (jiff reads /usr/share/zoneinfo)
  dpkg-dev lintian             # the Debian package (scripts/build-deb.sh): dependencies of the binary, lint
  mmdebstrap                   # the package test's chroot and the appliance image's tree
  # The appliance image (images/build.sh) and its boot test (images/test-boot.sh): file
  # systems and the partition table without mounting, UEFI firmware, busybox's DHCP client
  # and ping for the test's workstation (QEMU itself from backports, below).
  dosfstools mtools fdisk e2fsprogs ovmf busybox iputils-ping python3
)
# QEMU comes from bookworm-backports: machines of this kind carry backports' qemu-utils,
# and apt will not mix the two versions. The backports entry uses the host's own mirror.
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  uri=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
  if [ -n "$uri" ]; then
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$uri" | $SUDO tee /etc/apt/sources.list.d/aiwarden-backports.sources >/dev/null
    $SUDO apt-get update -qq
  fi
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
backports_packages=(qemu-system-x86)
if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
  echo "setup: installing ${backports_packages[*]} (bookworm-backports)" >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    -t bookworm-backports "${backports_packages[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install a Rust toolchain (1.85 or newer) with rustup first" >&2
  exit 1
fi

# The Debian package's builder (scripts/build-deb.sh), at the version the package was made with.
if ! cargo deb --version >/dev/null 2>&1; then
  echo "setup: installing cargo-deb" >&2
  cargo install --locked cargo-deb --version 3.8.0
fi
