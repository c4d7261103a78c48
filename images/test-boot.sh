#!/usr/bin/env bash
# Boots the appliance image in QEMU (software emulation, UEFI) as a clinic's router and checks
# it from both sides, in network namespaces this test creates:
#
#   aw-up (WAN side: DHCP for the WAN, the upstream DNS server)  203.0.113.1/24
#      |  br-wan (in aw-wire) -- tap-wan -- NIC 1 of the appliance (wan0)
#   [appliance: QEMU in aw-wire]
#      |  br-lan (in aw-wire) -- tap-lan -- NIC 2 (lan0), 192.168.50.1/24
#   aw-cl (a clinic workstation: DHCP client, dig, curl)
#
# provision.toml (router, enforce) is written onto a copy of the image's ESP before the boot;
# the copy is enlarged to 4 GiB, like a gateway's disk bigger than the image.
#
#   images/test-boot.sh x86-64|arm64 [IMAGE]
#
# Prints the boot time to DNS answering and the whole test's time. Needs root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
arch=${1:-x86-64}
image=${2:-$repo/target/images/aiwarden-$arch.img}
started=$(date +%s)

if [ "$(id -u)" -ne 0 ]; then
	echo "test-boot: skipped: needs root (network namespaces, tap devices)"
	exit 0
fi
[ -f "$image" ] || {
	echo "test-boot: $image not found; run images/build.sh $arch first" >&2
	exit 1
}
case $arch in
x86-64)
	qemu=(qemu-system-x86_64 -machine q35 -accel tcg -cpu max -bios /usr/share/ovmf/OVMF.fd)
	boot_limit=300
	;;
arm64)
	qemu=(qemu-system-aarch64 -machine virt -accel tcg -cpu cortex-a57 -bios /usr/share/qemu-efi-aarch64/QEMU_EFI.fd)
	boot_limit=900
	;;
*)
	echo "usage: images/test-boot.sh x86-64|arm64 [IMAGE]" >&2
	exit 2
	;;
esac

work=$(mktemp -d /tmp/aw-boot.XXXXXX)
qemu_pid=""
dnsmasq_pid=""
cleanup() {
	[ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null && wait "$qemu_pid" 2>/dev/null
	[ -n "$dnsmasq_pid" ] && kill "$dnsmasq_pid" 2>/dev/null
	for ns in aw-cl aw-up aw-wire; do ip netns del "$ns" 2>/dev/null || true; done
	if [ "${keep:-0}" = 1 ]; then echo "test-boot: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() {
	echo "test-boot: FAIL: $*" >&2
	echo "--- last console lines ---" >&2
	tail -n 60 "$work/console.log" >&2 || true
	keep=1
	exit 1
}

# The disk: a copy of the image, grown to 4 GiB, with provision.toml on its ESP.
disk="$work/disk.img"
cp --sparse=always "$image" "$disk"
truncate -s 4G "$disk"
esp_start=$(sfdisk --json "$image" | python3 -c 'import json,sys; print(json.load(sys.stdin)["partitiontable"]["partitions"][0]["start"] * 512)')
# The console admin's password hash, made by the packaged build's `aiwarden user hash`.
aiwarden="$repo/target/deb/aiwarden"
[ -x "$aiwarden" ] || {
	echo "test-boot: $aiwarden not found; run scripts/build-deb.sh (images/build.sh does)" >&2
	exit 1
}
hash=$(printf 'correct horse battery staple' | "$aiwarden" user hash)
cat >"$work/provision.toml" <<EOF
site_name = "Boot Test Clinic"
role = "router"
mode = "enforce"
timezone = "America/Chicago"
hostname = "aiwarden-boottest"

[wan]
mac = "52:54:00:a1:00:01"

[lan]
mac = "52:54:00:a1:00:02"
address = "192.168.50.1/24"
dhcp_range = ["192.168.50.100", "192.168.50.150"]

[dns]
upstreams = ["203.0.113.1"]

[console]
admin_user = "compliance"
admin_password_hash = "$hash"
EOF
mcopy -o -i "$disk@@$esp_start" "$work/provision.toml" ::/provision.toml

# The namespaces: a wire with two bridges, the WAN side's servers, a workstation.
for ns in aw-cl aw-up aw-wire; do ip netns del "$ns" 2>/dev/null || true; done
ip netns add aw-wire
ip netns add aw-up
ip netns add aw-cl
w() { ip netns exec aw-wire "$@"; }
w ip link set lo up
for side in wan lan; do
	w ip link add "br-$side" type bridge
	w ip link set "br-$side" up
	w ip tuntap add "tap-$side" mode tap
	w ip link set "tap-$side" master "br-$side" up
done
ip link add up0 netns aw-up type veth peer name up-port netns aw-wire
ip link add cl0 netns aw-cl type veth peer name cl-port netns aw-wire
w ip link set up-port master br-wan up
w ip link set cl-port master br-lan up
ip netns exec aw-up ip link set lo up
ip netns exec aw-up ip address add 203.0.113.1/24 dev up0
ip netns exec aw-up ip link set up0 up
ip netns exec aw-cl ip link set lo up
ip netns exec aw-cl ip link set cl0 up

# The WAN side: the ISP's DHCP and the upstream resolver. chatgpt.com resolves here, so a
# blocked answer at the workstation is the appliance's doing.
ip netns exec aw-up dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
	--interface=up0 --listen-address=203.0.113.1 --dhcp-range=203.0.113.50,203.0.113.99,1h \
	--dhcp-option=option:router,203.0.113.1 --dhcp-option=option:dns-server,203.0.113.1 \
	--dhcp-leasefile="$work/wan.leases" --pid-file="$work/dnsmasq.pid" \
	--address=/allowed.example.net/198.51.100.80 --address=/chatgpt.com/198.51.100.66 \
	--log-facility="$work/upstream.log" --log-queries &
dnsmasq_pid=$!

boot0=$(date +%s)
in_time() { # fails with "$1 within N s" once the boot has taken longer than the limit
	[ $(($(date +%s) - boot0)) -lt "$boot_limit" ] || fail "$1 within $boot_limit s"
}
ip netns exec aw-wire "${qemu[@]}" -smp 2 -m 1024 -display none -monitor none \
	-serial "file:$work/console.log" -no-reboot \
	-drive "file=$disk,format=raw,if=virtio" \
	-netdev tap,id=wan,ifname=tap-wan,script=no,downscript=no \
	-device virtio-net-pci,netdev=wan,mac=52:54:00:a1:00:01 \
	-netdev tap,id=lan,ifname=tap-lan,script=no,downscript=no \
	-device virtio-net-pci,netdev=lan,mac=52:54:00:a1:00:02 &
qemu_pid=$!

# The workstation asks for a lease until the appliance's DHCP answers.
cat >"$work/udhcpc.sh" <<'EOF'
#!/bin/sh
[ "$1" = bound ] || exit 0
ip address add "$ip/${mask:-24}" dev "$interface"
ip route add default via "$router"
echo "ip=$ip router=$router dns=$dns" >"$LEASE_OUT"
EOF
chmod 755 "$work/udhcpc.sh"
lease=""
while [ -z "$lease" ]; do
	kill -0 "$qemu_pid" 2>/dev/null || fail "QEMU exited"
	in_time "no DHCP lease on the LAN"
	LEASE_OUT="$work/lease" ip netns exec aw-cl busybox udhcpc -i cl0 -n -q -t 3 -T 2 -s "$work/udhcpc.sh" >/dev/null 2>&1 || true
	[ -f "$work/lease" ] && lease=$(cat "$work/lease")
done
lease_s=$(($(date +%s) - boot0))
echo "test-boot: workstation lease after $lease_s s: $lease"
case $lease in
*"ip=192.168.50.1"[0-4][0-9]" router=192.168.50.1 dns=192.168.50.1"*) ;;
*"ip=192.168.50.150 router=192.168.50.1 dns=192.168.50.1"*) ;;
*) fail "lease is not from provision.toml's range with the appliance as router and DNS: $lease" ;;
esac

# DNS through the appliance: an allowed name comes from the upstream in aw-up.
answer=""
while [ -z "$answer" ]; do
	in_time "no DNS answer from 192.168.50.1"
	answer=$(ip netns exec aw-cl dig +short +time=1 +tries=1 @192.168.50.1 allowed.example.net A 2>/dev/null | grep -E '^[0-9.]+$' || true)
done
dns_s=$(($(date +%s) - boot0))
[ "$answer" = 198.51.100.80 ] || fail "allowed.example.net resolved to $answer, not the upstream's 198.51.100.80"
echo "test-boot: boot to DNS answering: $dns_s s"

# Enforce mode from provision.toml: chatgpt.com is refused although the upstream knows it.
status=$(ip netns exec aw-cl dig +time=2 +tries=2 @192.168.50.1 chatgpt.com A | sed -n 's/.*status: \([A-Z]*\).*/\1/p')
[ "$status" = NXDOMAIN ] || fail "chatgpt.com: status $status, expected NXDOMAIN (blocked)"
grep -q "chatgpt.com" "$work/upstream.log" && fail "the upstream was asked for chatgpt.com"
echo "test-boot: chatgpt.com blocked (NXDOMAIN), never asked upstream"

# The workstation reaches the WAN through the appliance's NAT.
ip netns exec aw-cl ping -c 2 -W 2 203.0.113.1 >/dev/null || fail "no route to the WAN through the appliance"
echo "test-boot: NAT to the WAN works"

# Health and the console on the management (LAN) address.
health=$(ip netns exec aw-cl curl -sSf --max-time 5 http://192.168.50.1:9747/healthz) || fail "/healthz did not answer 200"
echo "test-boot: /healthz: $health"
code=$(ip netns exec aw-cl curl -sk -o /dev/null -w '%{http_code}' --max-time 10 https://192.168.50.1:8443/login) || fail "the console did not answer"
[ "$code" = 200 ] || fail "console /login answered $code"
echo "test-boot: console answers on https://192.168.50.1:8443"

# Default-deny inbound: from the WAN side, neither DNS nor the console answers.
wan_ip=$(awk '{print $3}' "$work/wan.leases" | head -n 1)
[ -n "$wan_ip" ] || fail "the appliance took no WAN lease"
if ip netns exec aw-up dig +time=1 +tries=1 @"$wan_ip" allowed.example.net >/dev/null 2>&1; then
	fail "DNS answers on the WAN address $wan_ip"
fi
if ip netns exec aw-up curl -sk --max-time 3 "https://$wan_ip:8443/login" >/dev/null 2>&1; then
	fail "the console answers on the WAN address $wan_ip"
fi
echo "test-boot: WAN address $wan_ip: DNS and console closed"

# The console line: provisioned, and /var grown to the 4 GiB disk.
while ! grep -q "aiwarden-image: ready" "$work/console.log"; do
	in_time "no ready line on the console"
	sleep 2
done
ready=$(grep -a "aiwarden-image: ready" "$work/console.log" | tail -n 1 | tr -d '\r')
echo "test-boot: console: ${ready#*aiwarden-image: }"
case $ready in *"ready: provisioned;"*) ;; *) fail "not provisioned: $ready" ;; esac
var_size=$(echo "$ready" | sed -n 's/.*\/var \([0-9.]*\)G.*/\1/p')
[ -n "$var_size" ] && python3 -c "import sys; sys.exit(0 if float('$var_size') > 2.5 else 1)" ||
	fail "/var did not grow to the disk: $ready"

echo "test-boot: image $(($(stat -c %s "$image") / 1024 / 1024)) MiB; boot to DNS $dns_s s (limit $boot_limit s); test took $(($(date +%s) - started)) s"
echo "test-boot: ok"
