#!/usr/bin/env bash
# Installs Suricata 7 when it is missing: it comes from bookworm-backports, so that suite is
# added on the mirror the machine already uses. Used by suricata.sh and live.sh.
set -euo pipefail
command -v suricata >/dev/null && exit 0
uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$uri" ] || uri=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
  > /etc/apt/sources.list.d/aiwarden-backports.sources
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports suricata >/dev/null
