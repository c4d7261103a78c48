#!/usr/bin/env bash
# The Debian package's acceptance test (issue 12): builds the .deb twice (two versions of
# the same build, scripts/build-deb.sh), creates a fresh Debian bookworm chroot with
# mmdebstrap (Essential packages, systemd, and the package's own Depends, from this host's
# apt sources), then in it: installs the older .deb with dpkg; `aiwarden check` passes on
# the installed config; `systemd-analyze verify` passes on the installed units; the
# binary, catalog, conffiles, man pages and completions are where they belong; an edited
# site file and an incident store (the bundled sample replayed into it) survive the
# upgrade to the newer .deb and the store's chain still verifies; `dpkg --purge` leaves
# the chroot as it was before the install, apart from a file the admin added.
#
# Needs root. Everything it writes is under the cargo target directory: the chroot
# (deleted at the end; KEEP=1 keeps it) and mmdebstrap's download cache (kept, so a
# second run downloads nothing). Prints each phase's time and the .deb's size.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "package test: skipped: needs root (mmdebstrap, chroot, dpkg)"
  exit 0
fi
for tool in mmdebstrap cargo-deb lintian; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "package test: $tool is missing: run scripts/setup-debian.sh" >&2
    exit 1
  fi
done
sources=/etc/apt/sources.list.d/debian.sources
if [ ! -f "$sources" ]; then
  echo "package test: $sources is missing: the chroot's mirror is taken from this host's apt sources" >&2
  exit 1
fi

t0=$(date +%s)
now() { echo $(($(date +%s) - $1)); }
fail() { echo "package test: FAIL: $*" >&2; exit 1; }

target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
work="$target_dir/package-test"
root="$work/root"
cache="$target_dir/mmdebstrap-cache"
cleanup() {
  if mountpoint -q "$root/proc" 2>/dev/null; then umount "$root/proc"; fi
  if [ "${KEEP:-}" != 1 ]; then rm -rf "$work"; fi
}
rm -rf "$work"
mkdir -p "$work" "$cache"
trap cleanup EXIT

# 1. Two builds of one tree, the second with a higher version: the upgrade under test.
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
t=$(date +%s)
cp "$(scripts/build-deb.sh --version "$version-1" | tail -n1)" "$work/old.deb"
build_secs=$(now "$t")
cp "$(scripts/build-deb.sh --version "$version-2" | tail -n1)" "$work/new.deb"
size=$(stat -c %s "$work/old.deb")
echo "package test: .deb $((size / 1024)) KiB, built in ${build_secs} s"

# 2. A fresh bookworm chroot with what the package depends on (from the .deb itself: the
# first of each alternative, without versions) and systemd (for systemd-analyze). Docs,
# man pages and locales of those packages are left out while it is made, to save time;
# the dpkg setting that does so is removed again before aiwarden is installed.
deps=$(dpkg-deb -f "$work/old.deb" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/ //g' | grep -v '^$' | paste -sd,)
t=$(date +%s)
mmdebstrap --quiet --variant=essential --include="systemd,$deps" \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --skip=essential/unlink \
  --setup-hook="mkdir -p \"\$1\"/var/cache/apt/archives/" \
  --setup-hook="sync-in '$cache' /var/cache/apt/archives/" \
  --customize-hook="sync-out /var/cache/apt/archives '$cache'" \
  --customize-hook='rm "$1"/etc/dpkg/dpkg.cfg.d/99mmdebstrap' \
  bookworm "$root" "$sources"
chroot_secs=$(now "$t")
echo "package test: chroot ($deps, systemd) in ${chroot_secs} s, $(du -sm "$root" | cut -f1) MiB"
mount -t proc proc "$root/proc"
in_root() { chroot "$root" "$@"; }

# What is there before the install, for the purge check (dpkg's own records and logs,
# caches and the virtual file systems aside).
snapshot() {
  (cd "$root" && find . -xdev \( -path ./proc -o -path ./dev -o -path ./tmp -o -path ./run \
    -o -path ./var/lib/dpkg -o -path ./var/log -o -path ./var/cache \) -prune -o -print) | sort
}
snapshot >"$work/before"

# 3. Install.
cp "$work/old.deb" "$work/new.deb" "$root/tmp/"
cp samples/clinic-morning.pcap "$root/tmp/"
in_root dpkg -i /tmp/old.deb </dev/null >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "dpkg -i"; }
in_root dpkg-query -W -f='${Status} ${Version}\n' aiwarden | grep -qx "install ok installed $version-1" \
  || fail "aiwarden $version-1 not installed"

out=$(in_root aiwarden check 2>&1) || { echo "$out"; fail "aiwarden check on the installed config"; }
echo "$out" | grep -q '^/etc/aiwarden/aiwarden.toml: ok (mode monitor' || { echo "$out"; fail "check output"; }
echo "$out" | grep -q ', 0 warnings)' || { echo "$out"; fail "the installed config has warnings"; }

units=(/lib/systemd/system/aiwarden.service /lib/systemd/system/aiwarden-report.service /lib/systemd/system/aiwarden-report.timer)
verify=$(in_root env SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "${units[@]}" 2>&1) || true
# Without a running systemd verify still parses and checks the units; only lines about
# them count (as in tests/systemd.rs).
if echo "$verify" | grep -q 'aiwarden'; then echo "$verify"; fail "systemd-analyze verify"; fi
for u in "${units[@]:0:2}"; do
  grep -q '^Exec.*=-\?/usr/bin/aiwarden ' "$root$u" || fail "$u does not run /usr/bin/aiwarden"
done
[ -L "$root/etc/systemd/system/multi-user.target.wants/aiwarden.service" ] || fail "aiwarden.service not enabled"
[ -L "$root/etc/systemd/system/timers.target.wants/aiwarden-report.timer" ] || fail "aiwarden-report.timer not enabled"

[ -x "$root/usr/bin/aiwarden" ] || fail "/usr/bin/aiwarden"
if readelf -S "$root/usr/bin/aiwarden" | grep -q '\.debug_'; then fail "/usr/bin/aiwarden is not stripped"; fi
shipped=$(ls rules/catalog/*.toml | wc -l)
installed=$(ls "$root"/usr/share/aiwarden/rules/catalog/*.toml | wc -l)
[ "$shipped" = "$installed" ] || fail "catalog: $installed of $shipped files installed"
[ ! -e "$root/usr/share/aiwarden/rules/site" ] || fail "a site directory under /usr/share"
conffiles=$(in_root dpkg-query -W -f='${Conffiles}\n' aiwarden | awk 'NF {print $1}' | sort | paste -sd' ')
want="/etc/aiwarden/aiwarden.toml /etc/aiwarden/devices.toml /etc/aiwarden/site/allow.list /etc/aiwarden/site/deny.list /etc/aiwarden/site/groups.toml"
[ "$conffiles" = "$want" ] || fail "conffiles: $conffiles"
! grep -Eq '^[[:space:]]*(rules|site)[[:space:]]*=' "$root/etc/aiwarden/aiwarden.toml" || fail "rules= or site= in the packaged config"
for page in aiwarden aiwarden-check aiwarden-run aiwarden-replay aiwarden-verify aiwarden-report aiwarden-rules aiwarden-rules-check; do
  [ -s "$root/usr/share/man/man1/$page.1.gz" ] || fail "man page $page.1.gz"
done
gzip -dc "$root/usr/share/man/man1/aiwarden-check.1.gz" | grep -q 'aiwarden/aiwarden.toml' || fail "aiwarden-check.1 lacks the config default"
for f in /usr/share/bash-completion/completions/aiwarden /usr/share/zsh/vendor-completions/_aiwarden \
  /usr/share/fish/vendor_completions.d/aiwarden.fish; do
  grep -q 'replay' "$root$f" || fail "completion $f"
done

# 4. The admin's edit and a store with incidents, then the upgrade.
echo "chatgpt.com" >>"$root/etc/aiwarden/site/allow.list"
# The catalog blocks it; the admin's allow list in /etc/aiwarden/site (the only site
# directory there is) now allows it.
explain=$(in_root aiwarden rules explain chatgpt.com)
echo "$explain" | grep -q '^verdict: *allow' && echo "$explain" | grep -q '^rule: *site/allow.list:' \
  || { echo "$explain"; fail "the site files are not read from /etc/aiwarden/site"; }
in_root aiwarden replay /tmp/clinic-morning.pcap --store /var/lib/aiwarden/incidents.db --no-progress \
  >"$work/replay.log" 2>&1 || { cat "$work/replay.log"; fail "replay into the store"; }
incidents_before=$(in_root aiwarden incidents list --json --store /var/lib/aiwarden/incidents.db)
count=$(echo "$incidents_before" | grep -o '"id":' | wc -l)
[ "$count" -gt 0 ] || fail "the replay recorded no incidents"
in_root aiwarden verify --store /var/lib/aiwarden/incidents.db >/dev/null || fail "verify before the upgrade"

in_root dpkg -i /tmp/new.deb </dev/null >"$work/upgrade.log" 2>&1 || { cat "$work/upgrade.log"; fail "upgrade"; }
in_root dpkg-query -W -f='${Version}' aiwarden | grep -qx "$version-2" || fail "not upgraded"
tail -n1 "$root/etc/aiwarden/site/allow.list" | grep -qx 'chatgpt.com' || fail "the edited allow.list was replaced"
[ "$(in_root aiwarden incidents list --json --store /var/lib/aiwarden/incidents.db)" = "$incidents_before" ] \
  || fail "the incidents changed across the upgrade"
in_root aiwarden verify --store /var/lib/aiwarden/incidents.db >/dev/null || fail "verify after the upgrade"
in_root aiwarden check >/dev/null || fail "check after the upgrade"
echo "package test: upgrade $version-1 -> $version-2 kept the site edit and $count incidents; chain verifies"

# 5. Purge: what the package made goes, what the admin added stays.
echo "secret" >"$root/etc/aiwarden/smtp-password"
in_root dpkg --purge aiwarden </dev/null >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "purge"; }
for gone in /usr/bin/aiwarden /usr/share/aiwarden /var/lib/aiwarden /etc/aiwarden/site /etc/aiwarden/aiwarden.toml \
  /lib/systemd/system/aiwarden.service /etc/systemd/system/multi-user.target.wants/aiwarden.service; do
  [ ! -e "$root$gone" ] && [ ! -L "$root$gone" ] || fail "$gone is left after purge"
done
[ -f "$root/etc/aiwarden/smtp-password" ] || fail "purge deleted a file the admin added"
rm "$root/etc/aiwarden/smtp-password"
rmdir "$root/etc/aiwarden"
snapshot >"$work/after"
diff -u "$work/before" "$work/after" || fail "purge left the chroot different from before the install"

echo "package test: passed in $(now "$t0") s (builds ${build_secs} s, chroot ${chroot_secs} s, .deb $((size / 1024)) KiB)"
