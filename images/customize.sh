#!/usr/bin/env bash
# customize.sh ROOT CONSOLE: the appliance's settings on the tree mmdebstrap built (run by
# build.sh as mmdebstrap's customize hook, after the overlay is copied in).
set -euo pipefail
root=$1
console=$2

# The kernel command line esp-sync writes into the boot entry: the root by file system
# label (the same image boots from SATA, NVMe, USB or virtio), and the serial console
# (headless boxes) besides the screen.
echo "root=LABEL=aiw-root rw $console quiet" >"$root/etc/kernel/cmdline"

cat >"$root/etc/fstab" <<'FSTAB'
# aiwarden appliance (images/build.sh). /var holds the incident store; it is grown to the end
# of the disk at the first boot (systemd-repart, then x-systemd.growfs).
LABEL=aiw-root  /          ext4  rw,errors=remount-ro                     0 1
LABEL=aiw-var   /var       ext4  rw,nodev,nosuid,x-systemd.growfs         0 2
LABEL=AIWARDEN  /boot/efi  vfat  umask=0077,shortname=winnt,nofail        0 2
FSTAB

echo aiwarden >"$root/etc/hostname"
# The appliance resolves through its own resolver (aiwarden on 127.0.0.1:53); provisioning
# may rewrite this. A file, not a link: nothing else manages it.
rm -f "$root/etc/resolv.conf"
echo "nameserver 127.0.0.1" >"$root/etc/resolv.conf"

# Every box makes its own SSH host keys at its first SSH start, never the image's.
rm -f "$root"/etc/ssh/ssh_host_*
mkdir -p "$root/etc/systemd/system/ssh.service.d"
cat >"$root/etc/systemd/system/ssh.service.d/aiwarden-hostkeys.conf" <<'UNIT'
[Service]
ExecStartPre=/usr/bin/ssh-keygen -A
UNIT

# (systemd-repart.service, which grows /var, is enabled by the systemd package itself.)
systemctl --root="$root" --quiet enable systemd-networkd.service systemd-timesyncd.service \
	nftables.service aiwarden.service aiwarden-provision.service aiwarden-image-status.service
# Off until provisioning asks: DHCP for the LAN (router role) and SSH (provision.toml [ssh]).
systemctl --root="$root" --quiet disable dnsmasq.service ssh.service
# Nothing waits for the WAN: DNS and DHCP for the LAN must come up without it.
systemctl --root="$root" --quiet mask systemd-networkd-wait-online.service

# No password for anybody: the MSP gets in with the SSH key provision.toml names.
chroot "$root" passwd --lock root >/dev/null

# Smaller image: apt's downloaded lists and packages come back with the first update.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
