#!/usr/bin/env bash
# Builds the aiwarden appliance's disk image: a GPT disk an MSP writes to a clinic gateway's
# disk (or a USB stick) and boots with UEFI.
#
#   images/build.sh x86-64|arm64 [--deb FILE] [--out DIR]
#
# Without --deb, the x86-64 image takes this checkout's package (scripts/build-deb.sh).
#
# Partitions (docs/appliance.md):
#   1 ESP   FAT32 "AIWARDEN": systemd-boot, the kernel and initrd, provision.toml.example
#           (the MSP puts provision.toml here before the first boot)
#   2 root  ext4 "aiw-root": Debian bookworm, the aiwarden package, what a clinic router needs
#   3 var   ext4 "aiw-var": /var, with the incident store; systemd-repart grows the partition
#           and systemd-growfs its file system to the end of the disk at the first boot
# Everything comes from Debian's packages through the host's own apt sources and the .deb
# scripts/build-deb.sh made. No loop device or mount is needed: mmdebstrap builds the tree,
# mkfs.ext4 -d and mtools fill the file systems, sfdisk writes the partition table.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
started=$(date +%s)

usage() {
	echo "usage: images/build.sh x86-64|arm64 [--deb FILE] [--out DIR]" >&2
	exit 2
}
[ $# -ge 1 ] || usage
arch=$1
shift
deb=""
out="$repo/target/images"
while [ $# -gt 0 ]; do
	case $1 in
	--deb) deb=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	*) usage ;;
	esac
done

case $arch in
x86-64)
	debarch=amd64
	efi_boot=BOOTX64.EFI
	sd_boot=systemd-bootx64.efi
	console="console=tty0 console=ttyS0,115200"
	root_type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709 # root-x86-64 (Discoverable Partitions)
	;;
arm64)
	debarch=arm64
	efi_boot=BOOTAA64.EFI
	sd_boot=systemd-bootaa64.efi
	console="console=tty0 console=ttyAMA0,115200"
	root_type=b921b045-1df0-41c3-af44-4c6f280d3fae # root-arm64
	;;
*) usage ;;
esac
esp_type=c12a7328-f81f-11d2-ba4b-00a0c93ec93b
var_type=4d21b016-b534-45c2-a9fb-5c16e091fd2d

if [ "$(id -u)" -ne 0 ]; then
	echo "images/build.sh: must run as root (mmdebstrap --mode=root, device nodes in the tree)" >&2
	exit 1
fi
for tool in mmdebstrap mkfs.ext4 mkfs.vfat mcopy sfdisk; do
	command -v "$tool" >/dev/null || {
		echo "images/build.sh: $tool is missing; run scripts/setup-debian.sh --images" >&2
		exit 1
	}
done

if [ "$debarch" = arm64 ]; then
	bash "$repo/scripts/setup-arm64.sh" --image
fi
if [ -z "$deb" ]; then
	if [ "$debarch" != amd64 ]; then
		echo "images/build.sh: pass the $debarch package with --deb (scripts/build-arm64.sh makes it)" >&2
		exit 1
	fi
	# The package of this checkout (incremental: seconds when nothing changed).
	deb=$("$repo/scripts/build-deb.sh" | tail -n 1)
fi
deb=$(realpath "$deb")
echo "images/build.sh: $arch image with $(basename "$deb")"

# The host's own Debian sources (deb822): the image updates from the same archive.
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || {
	echo "images/build.sh: $sources not found (the host's Debian apt sources)" >&2
	exit 1
}

work="$out/work-$arch"
rm -rf "$work"
mkdir -p "$work" "$out"
# A copy: another build may replace target/debian/ while this one runs.
cp "$deb" "$work/"
deb="$work/$(basename "$deb")"
# The first boot runs `aiwarden provision`: refuse a package too old to have it.
if [ "$debarch" = amd64 ]; then
	dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/aiwarden >"$work/aiwarden"
	chmod 755 "$work/aiwarden"
	"$work/aiwarden" provision --help >/dev/null 2>&1 || {
		echo "images/build.sh: $(basename "$deb") has no \`aiwarden provision\`" >&2
		exit 1
	}
	rm "$work/aiwarden"
fi
tree="$work/tree"

packages=(
	systemd-sysv udev kmod dbus linux-image-"$debarch" initramfs-tools systemd-boot-efi
	systemd-timesyncd   # time sync: the incident store and reports need the right time
	dnsmasq             # DHCP for the LAN (router role); its DNS is off, aiwarden answers
	nftables iptables iproute2 netbase ca-certificates tzdata
	unattended-upgrades # Debian's security updates, daily
	openssh-server      # for the MSP; off unless provision.toml turns it on
	less procps
)
# Trimmed: documentation, translations, and kernel modules a wired gateway never loads
# (sound, graphics, cameras, Wi-Fi, Bluetooth, InfiniBand, staging drivers).
dpkgopts=()
for p in /usr/share/man/ /usr/share/doc/ /usr/share/info/ /usr/share/locale/ /usr/share/lintian/; do
	dpkgopts+=(--dpkgopt="path-exclude=$p*")
done
dpkgopts+=(--dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-include=/usr/share/locale/locale.alias')
for m in sound drivers/gpu drivers/media drivers/infiniband drivers/net/wireless drivers/staging \
	drivers/iio drivers/bluetooth net/bluetooth net/wireless net/mac80211 drivers/comedi \
	drivers/isdn drivers/net/can drivers/input/joystick drivers/input/tablet \
	drivers/input/touchscreen fs/ocfs2 fs/gfs2; do
	dpkgopts+=(--dpkgopt="path-exclude=/lib/modules/*/kernel/$m/*")
done

echo "images/build.sh: building the Debian tree (mmdebstrap)"
t0=$(date +%s)
mmdebstrap --mode=root --variant=minbase --format=directory --architectures="$debarch" \
	--include="$(
		IFS=,
		echo "${packages[*]}"
	)" \
	"${dpkgopts[@]}" \
	--customize-hook="copy-in '$deb' /tmp" \
	--customize-hook="chroot \"\$1\" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends '/tmp/$(basename "$deb")'" \
	--customize-hook="rm \"\$1/tmp/$(basename "$deb")\"" \
	--customize-hook="cp -a '$here/overlay/.' \"\$1/\"" \
	--customize-hook="'$here/customize.sh' \"\$1\" '$console'" \
	bookworm "$tree" "$sources"
echo "images/build.sh: tree built in $(($(date +%s) - t0)) s ($(du -sh "$tree" | cut -f1))"

# The ESP: systemd-boot as the removable-media loader (no NVRAM entry needed), the kernel
# and initrd esp-sync copies, and the provisioning example.
esp="$work/esp"
mkdir -p "$esp/EFI/BOOT" "$esp/loader"
cp "$tree/usr/lib/systemd/boot/efi/$sd_boot" "$esp/EFI/BOOT/$efi_boot"
printf 'timeout 0\ndefault aiwarden.conf\neditor no\n' >"$esp/loader/loader.conf"
"$here/overlay/usr/lib/aiwarden-image/esp-sync" "$tree" "$esp"
cp "$repo/samples/provision.toml" "$esp/provision.toml.example"

mib() { # size of a directory in MiB, rounded up
	du -s --block-size=1M "$1" | cut -f1
}
esp_mib=$(($(mib "$esp") * 2 + 16)) # room for esp-sync's next kernel beside this one
[ "$esp_mib" -ge 64 ] || esp_mib=64
rm -f "$work/esp.img"
mkfs.vfat -F 32 -n AIWARDEN -C "$work/esp.img" $((esp_mib * 1024)) >/dev/null
mcopy -s -i "$work/esp.img" "$esp"/* ::/

# /var goes to its own partition; the root keeps an empty mount point.
mv "$tree/var" "$work/var"
mkdir "$tree/var"
mkdir -p "$tree/boot/efi"
root_mib=$(($(mib "$tree") + 256)) # room for a kernel update beside the running one
var_mib=$(($(mib "$work/var") + 64))
mkfs.ext4 -q -L aiw-root -d "$tree" "$work/root.img" "${root_mib}M"
mkfs.ext4 -q -L aiw-var -d "$work/var" "$work/var.img" "${var_mib}M"

image="$out/aiwarden-$arch.img"
total_mib=$((1 + esp_mib + root_mib + var_mib + 1))
rm -f "$image"
truncate -s "${total_mib}M" "$image"
sfdisk --quiet --label gpt "$image" <<EOF
start=1MiB, size=${esp_mib}MiB, type=$esp_type, name="esp"
size=${root_mib}MiB, type=$root_type, name="aiw-root"
size=${var_mib}MiB, type=$var_type, name="aiw-var"
EOF
dd if="$work/esp.img" of="$image" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$work/root.img" of="$image" bs=1M seek=$((1 + esp_mib)) conv=notrunc,sparse status=none
dd if="$work/var.img" of="$image" bs=1M seek=$((1 + esp_mib + root_mib)) conv=notrunc,sparse status=none
rm -rf "$work"

size=$(stat -c %s "$image")
echo "images/build.sh: $image: $((size / 1024 / 1024)) MiB (esp ${esp_mib}, root ${root_mib}, var ${var_mib} MiB; /var grows to the disk at first boot)"
echo "images/build.sh: built in $(($(date +%s) - started)) s"
