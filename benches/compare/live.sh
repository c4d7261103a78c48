#!/usr/bin/env bash
# Line rate, live: a clinic-mix capture sent into a veth at rising rates, captured on the
# other end by `aiwarden run` and then by Suricata (af-packet), in the same run. For each
# rate and tool: what the sender achieved (Mbit/s of frame bytes, packets/s), the tool's
# CPU, its capture drops, and its detections against what it finds reading the same
# capture from the file; then each tool's highest loss-free rate (no drop anywhere and
# every detection made) and the ratio.
#
# Set-up (all made here and removed on exit): two network namespaces joined by a veth
# pair; the sender (examples/send_capture.rs: AF_PACKET, 64 frames a sendmmsg call) in
# one, pinned to CPU $SENDER_CPU; the tool under test in the other, pinned to CPU
# $TOOL_CPU, capturing the receiving end in promiscuous mode. The kernel's receive work for
# the veth (the packet taps, BPF filters and ring copies) runs on the sender's CPU, so the
# sender's ceiling depends on which tool listens: it is printed, and a rate the sender did
# not reach is marked. aiwarden runs with its defaults (capture ring 16 MiB, snaplen
# 65535, the default capture filter) and monitor mode, its resolver on the namespace's
# loopback (an address on the veth could be one the sender's re-addressing produces, and
# captured queries to aiwarden's own resolver are the resolver's to report, not capture's);
# Suricata 7 with /etc/suricata/suricata.yaml, one af-packet worker (tpacket-v3, a 16 MiB
# ring like aiwarden's: SURICATA_RING frames), the catalog as tls.sni/dns.query/quic.sni
# rules (make-suricata-rules.py), alerts only. Both at NICE, so a busy machine disturbs
# less; the "other" column shows what else ran on the tool's CPU meanwhile.
#
# The mix (examples/bulk_capture.rs): visits taken from the bundled sample and fixtures
# (rustls ClientHellos with the post-quantum key share, in two TCP segments; quinn QUIC
# Initials; their DNS queries and answers), re-addressed to 600 clients, with whole TLS 1.3
# connections and downloads between them. MIX=clinic (default): every download 1-6 records,
# a new connection every ~75 frames; MIX=bulk: three quarters of the bytes in long
# downloads; or MIX=/path/to.pcap. The sender repeats the capture as often as the rate and
# SECS need, changing every IPv4 address's second octet per pass, so every pass is new
# connections: expected = passes x what the tool finds in the file, exactly.
#
# A rate passes for aiwarden when the veth dropped nothing, aiwarden_capture_dropped_total
# (kernel, interface, queue) is 0, aiwarden_detections_total per protocol equals the
# expectation and so do all ClientHellos, QUIC Initials and DNS queries it counted
# (aiwarden_events_total); for Suricata when its af-packet counters show every frame and no
# drop and its alerts per protocol equal the expectation.
#
# usage: sudo [RATES="250 500 1000 ... max"] [SECS=10] [MIX=clinic|bulk|FILE] [MIX_GIB=0.1]
#          [TOOLS="aiwarden suricata"] [AIWARDEN_BASE=/old/aiwarden] [SETTLE=2]
#          [SENDER_CPU=0] [TOOL_CPU=1] [NICE=-10] [TOOL_CPU_QUOTA=10] benches/compare/live.sh
# RATES are Mbit/s of frame bytes; "max" sends as fast as the sender can. SECS: how long
# each rate is held (10 s: Suricata keeps closed TCP sessions until its flow timeout, and
# with its default reassembly memcap (256 MiB) stops reassembling new ones after about
# 28,000, which the clinic mix reaches in ~16 s at 1 Gbit/s: a shorter test hides it). Each tool climbs
# until a rate fails or the sender cannot reach it; if the first rate fails it halves it
# (down to 30 Mbit/s) until one passes. AIWARDEN_BASE: an older aiwarden binary measured
# too, before and after in the same run (AIWARDEN_BASE_RULES: its rules directory).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
t_begin=$(date +%s.%N)
if [ "$(id -u)" -ne 0 ]; then
  echo "live.sh: run as root (namespaces, veth, AF_PACKET)" >&2
  exit 2
fi

rates=${RATES:-250 500 1000 1500 2000 3000 4000 max}
secs=${SECS:-10}
mix=${MIX:-clinic}
gib=${MIX_GIB:-0.1}
tools=${TOOLS:-aiwarden suricata}
settle=${SETTLE:-2}
cpu_send=${SENDER_CPU:-0}
cpu_tool=${TOOL_CPU:-1}
prio=${NICE:--10}
# TOOL_CPU_QUOTA=N: each tool may use N% of one core (a cpu cgroup, 10 ms periods), as on a
# core 100/N times slower. On this machine the sender tops out before either tool does;
# with a quota the tools' own limits come within its reach.
quota=${TOOL_CPU_QUOTA:-}
base=${AIWARDEN_BASE:-}
base_rules=${AIWARDEN_BASE_RULES:-$root/rules}
# Suricata's ring in frames: 10,000 of its 1,616-byte slots (tpacket-v3, 128 KiB blocks) is
# 16 MiB, aiwarden's default ring (Suricata's own default is 3.4 MB here).
su_ring=${SURICATA_RING:-10000}
if [ -n "$base" ] && [ ! -x "$base" ]; then
  echo "AIWARDEN_BASE=$base is not an executable" >&2
  exit 2
fi

tag=awlr$$ # veth names must fit 15 characters
ns_tx=$tag-tx ns_rx=$tag-rx veth_tx=${tag}t veth_rx=${tag}r
work=$(mktemp -d "${TMPDIR:-/tmp}/aiwarden-live.XXXXXX")
pids=()
cgroup=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  ip netns del "$ns_tx" 2>/dev/null || true
  ip netns del "$ns_rx" 2>/dev/null || true
  [ -z "$cgroup" ] || rmdir "$cgroup" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [ -n "$quota" ]; then
  if [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then # cgroup v1
    cgroup=/sys/fs/cgroup/cpu/$tag
    mkdir "$cgroup"
    echo 10000 > "$cgroup/cpu.cfs_period_us"
    echo $((quota * 100)) > "$cgroup/cpu.cfs_quota_us"
  elif grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then # v2
    cgroup=/sys/fs/cgroup/$tag
    mkdir "$cgroup"
    echo "$((quota * 100)) 10000" > "$cgroup/cpu.max"
  else
    echo "TOOL_CPU_QUOTA needs the cpu cgroup controller" >&2
    exit 2
  fi
fi
# confine PID: puts a tool under the quota, if there is one.
confine() { [ -z "$cgroup" ] || echo "$1" > "$cgroup/cgroup.procs"; }

bash scripts/setup-debian.sh
bash benches/compare/install-suricata.sh
command -v tcpreplay >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tcpreplay >/dev/null
cargo build --release --quiet --bin aiwarden --example bulk_capture --example send_capture
bin=$root/target/release/aiwarden
sender=$root/target/release/examples/send_capture

cap=$work/mix.pcap
case $mix in
  clinic) ./target/release/examples/bulk_capture "$cap" "$gib" short 2> "$work/mix.txt" ;;
  bulk) ./target/release/examples/bulk_capture "$cap" "$gib" 2> "$work/mix.txt" ;;
  *) cp "$mix" "$cap" && echo "$mix" > "$work/mix.txt" ;;
esac

# What each tool finds in the file: the expectation for one pass.
# ref_aiwarden BIN RULES NAME -> $work/NAME.ref: "tls quic dns all_ch all_initials all_queries frames bytes"
ref_aiwarden() {
  "$1" replay --no-progress --rules "$2" "$cap" > "$work/$3.jsonl" 2> "$work/$3.err"
  python3 - "$work/$3.jsonl" "$work/$3.err" > "$work/$3.ref" <<'PY'
import json, re, sys
n = {"tls": 0, "quic": 0, "dns": 0}
for line in open(sys.argv[1]):
    d = json.loads(line)
    if (d.get("service") or d.get("rule")) and d["proto"] in n:
        n[d["proto"]] += 1
err = open(sys.argv[2]).read()
ev = dict(re.findall(r"(\w+)=(\d+)", err.split("events:", 1)[1].splitlines()[0]))
frames, nbytes = re.search(r"packets: (\d+)\s+bytes: (\d+)", err).groups()
print(n["tls"], n["quic"], n["dns"], ev.get("tls_client_hello", 0),
      ev.get("quic_client_hello", 0), ev.get("dns_query", 0), frames, nbytes)
PY
}
# eve_counts EVE -> "tls quic dns" alerts
eve_counts() {
  python3 - "$1" <<'PY'
import json, sys
n = {"tls": 0, "quic": 0, "dns": 0}
try:
    for line in open(sys.argv[1]):
        e = json.loads(line)
        if e.get("event_type") == "alert":
            p = e["alert"]["signature"].split()[1]
            n[p] = n.get(p, 0) + 1
except FileNotFoundError:
    pass
print(n["tls"], n["quic"], n["dns"])
PY
}

ref_aiwarden "$bin" "$root/rules" aiwarden
read -r ref_tls ref_quic ref_dns ref_ch ref_qi ref_q frames cap_bytes < "$work/aiwarden.ref"
if [ -n "$base" ]; then ref_aiwarden "$base" "$base_rules" base; fi

bash benches/compare/suricata-config.sh "$work" > "$work/suricata.yaml"
cat >> "$work/suricata.yaml" <<YAML
af-packet:
  - interface: $veth_rx
    threads: 1
    cluster-id: 99
    cluster-type: cluster_flow
    defrag: yes
    use-mmap: yes
    tpacket-v3: yes
    ring-size: $su_ring
YAML
mkdir -p "$work/su-file"
suricata -c "$work/suricata.yaml" --runmode single -k none -r "$cap" -l "$work/su-file" > "$work/su-file/out" 2>&1
eve_counts "$work/su-file/eve.json" > "$work/suricata.ref"

# The namespaces and the veth.
ip netns add "$ns_tx"
ip netns add "$ns_rx"
ip link add "$veth_tx" netns "$ns_tx" type veth peer "$veth_rx" netns "$ns_rx"
for ns in "$ns_tx" "$ns_rx"; do
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$ns" link set lo up
done
ip -n "$ns_tx" link set "$veth_tx" up
ip -n "$ns_rx" link set "$veth_rx" up

rxstat() { ip netns exec "$ns_rx" cat "/sys/class/net/$veth_rx/statistics/$1"; }
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# cpustat CPU -> "busy idle" ticks of that CPU (busy: user, nice, system, irq, softirq, steal)
cpustat() { awk -v c="cpu$1" '$1 == c {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat; }
hz=$(getconf CLK_TCK)
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<< " $2"; }
passes_for() { # MBPS -> passes of the capture that take about SECS
  awk -v r="$1" -v s="$secs" -v b="$cap_bytes" 'BEGIN { p = int(r * 1e6 * s / (b * 8) + 0.5); print (p < 1 ? 1 : p) }'
}
send() { # MBPS PASSES -> the sender's line
  ip netns exec "$ns_tx" nice -n "$prio" taskset -c "$cpu_send" "$sender" "$veth_tx" "$cap" --mbps "$1" --passes "$2"
}
stop_pid() { # PID SIGNAL
  kill "-$2" "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=() p
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}

# The senders' ceilings with nobody listening, the same frames and passes.
cal_passes=$(passes_for 4000)
rust_line=$(send 0 "$cal_passes")
ceiling=$(field mbps "$rust_line")
tr_line=$(ip netns exec "$ns_tx" nice -n "$prio" taskset -c "$cpu_send" tcpreplay -i "$veth_tx" -K --topspeed \
  --loop "$cal_passes" "$cap" 2>&1 | awk '/^Rated:/{printf "mbps=%s pps=%s", $4, $6}')

# One step: TOOL LABEL MBPS -> a row in $work/rows-LABEL, status in $step_ok / $step_reached
step() {
  local tool=$1 label=$2 target=$3 mbps passes d pid line cpu0 cpu1 rx0 dr0 sent_p sent_b \
    sent_s got_rx drops ok=yes reached=yes exp_tls exp_quic exp_dns tls quic dns note=""
  mbps=$target
  [ "$target" = max ] && mbps=$ceiling
  passes=$(passes_for "$mbps")
  [ "$target" = max ] && mbps=0
  d=$work/$label-$target
  mkdir -p "$d"
  rx0=$(rxstat rx_packets)
  dr0=$(rxstat rx_dropped)
  if [ "$tool" = suricata ]; then
    ip netns exec "$ns_rx" nice -n "$prio" taskset -c "$cpu_tool" suricata -c "$work/suricata.yaml" \
      --af-packet="$veth_rx" -k none -l "$d" > "$d/out" 2>&1 &
    pid=$!
    pids+=("$pid")
    confine "$pid"
    for _ in $(seq 600); do grep -qs 'Engine started' "$d/out" && break; sleep 0.1; done
    read -r exp_tls exp_quic exp_dns < "$work/suricata.ref"
  else
    local b=$bin r=$root/rules ref=$work/aiwarden.ref
    if [ "$label" = base ]; then b=$base r=$base_rules ref=$work/base.ref; fi
    cat > "$d/config.toml" <<TOML
mode = "monitor"
rules = "$r"
[capture]
interfaces = ["$veth_rx"]
[dns]
listen = ["127.0.0.1:53"]
upstreams = ["127.0.0.2"]
[store]
path = "$d/incidents.db"
[metrics]
listen = "127.0.0.1:9747"
TOML
    ip netns exec "$ns_rx" nice -n "$prio" taskset -c "$cpu_tool" "$b" run --config "$d/config.toml" > "$d/log" 2>&1 &
    pid=$!
    pids+=("$pid")
    confine "$pid"
    for _ in $(seq 200); do
      ip netns exec "$ns_rx" curl -s 127.0.0.1:9747/healthz 2>/dev/null | grep -q "capture $veth_rx: ok" && break
      sleep 0.1
    done
    read -r exp_tls exp_quic exp_dns exp_ch exp_qi exp_q _ < "$ref"
  fi
  cpu0=$(cputicks "$pid")
  read -r busy0 idle0 < <(cpustat "$cpu_tool")
  line=$(send "$mbps" "$passes")
  cpu1=$(cputicks "$pid")
  read -r busy1 idle1 < <(cpustat "$cpu_tool")
  sent_p=$(field packets "$line") sent_b=$(field bytes "$line") sent_s=$(field seconds "$line")
  sleep "$settle"
  got_rx=$(($(rxstat rx_packets) - rx0))
  drops=$(($(rxstat rx_dropped) - dr0))
  if [ "$tool" = suricata ]; then
    stop_pid "$pid" INT
    # "i: device: IFACE: packets: N, drops: N (x%), invalid chksum: N"
    read -r cap_pkts cap_drops < <(sed -n 's/.*device: [^:]*: packets: \([0-9]*\), drops: \([0-9]*\).*/\1 \2/p' "$d/out" | tail -1) || true
    drops=$((drops + ${cap_drops:-0}))
    [ "${cap_pkts:-0}" = "$sent_p" ] || { ok=no; note="saw ${cap_pkts:-0} of $sent_p frames"; }
    read -r tls quic dns < <(eve_counts "$d/eve.json")
  else
    # Wait until detection has everything (its counters stop moving), then read them.
    local prev="" now
    for _ in $(seq 20); do
      ip netns exec "$ns_rx" curl -s 127.0.0.1:9747/metrics > "$d/metrics"
      now=$(grep -E '^aiwarden_(packets_total|events_total)' "$d/metrics" | md5sum)
      [ "$now" = "$prev" ] && break
      prev=$now
      sleep 0.5
    done
    stop_pid "$pid" TERM
    m() { awk -v k="$1" -v l="$2" 'index($1, k) == 1 && index($1, l) {s += $2} END {printf "%d", s}' "$d/metrics"; }
    drops=$((drops + $(m aiwarden_capture_dropped_total '')))
    [ "$drops" = 0 ] || note="dropped: kernel $(m aiwarden_capture_dropped_total kernel), queue $(m aiwarden_capture_dropped_total queue);"
    tls=$(m aiwarden_detections_total 'proto="tls"')
    quic=$(m aiwarden_detections_total 'proto="quic"')
    dns=$(m aiwarden_detections_total 'proto="dns"')
    local ch qi q
    ch=$(m aiwarden_events_total 'kind="tls_client_hello"')
    qi=$(m aiwarden_events_total 'kind="quic_client_hello"')
    q=$(m aiwarden_events_total 'kind="dns_query"')
    if [ "$ch" != $((exp_ch * passes)) ] || [ "$qi" != $((exp_qi * passes)) ] || [ "$q" != $((exp_q * passes)) ]; then
      ok=no
      note="$note ClientHellos $ch/$((exp_ch * passes)), Initials $qi/$((exp_qi * passes)), queries $q/$((exp_q * passes))"
    fi
  fi
  [ "$got_rx" = "$sent_p" ] || { ok=no; note="$note veth got $got_rx of $sent_p"; }
  [ "$drops" = 0 ] || ok=no
  for x in "$tls $exp_tls" "$quic $exp_quic" "$dns $exp_dns"; do
    set -- $x
    [ "$1" = $(($2 * passes)) ] || ok=no
  done
  local ach cpu other
  ach=$(awk -v b="$sent_b" -v s="$sent_s" 'BEGIN {printf "%.0f", b * 8 / s / 1e6}')
  cpu=$(awk -v c=$((cpu1 - cpu0)) -v h="$hz" -v s="$sent_s" 'BEGIN {printf "%.0f", 100 * c / h / s}')
  # What else ran on the tool's CPU meanwhile (other processes, interrupts): a busy
  # machine shows here.
  other=$(awk -v b=$((busy1 - busy0)) -v i=$((idle1 - idle0)) -v c=$((cpu1 - cpu0)) \
    'BEGIN {t = b + i; printf "%.0f", (t > 0 ? 100 * (b - c) / t : 0)}')
  if [ "$target" != max ] && [ "$ach" -lt $((target * 9 / 10)) ]; then
    reached=no
    note="$note sender reached only $ach"
  fi
  printf '%-9s %6s %8s %7.0f %4s %5s%% %5s%% %7s %11s %9s %11s  %-4s %s\n' "$label" "$target" "$ach" \
    "$(awk -v p="$sent_p" -v s="$sent_s" 'BEGIN {print p / s / 1000}')" "$passes" "$cpu" "$other" "$drops" \
    "$tls/$((exp_tls * passes))" "$quic/$((exp_quic * passes))" "$dns/$((exp_dns * passes))" "$ok" "$note" \
    | tee -a "$work/rows-$label"
  step_ok=$ok step_reached=$reached step_mbps=$ach
}

# climb TOOL LABEL: rising rates until one fails; prints the highest loss-free rate.
climb() {
  local tool=$1 label=$2 best="" best_max=no r first=yes
  for r in $rates; do
    step "$tool" "$label" "$r"
    if [ "$step_ok" = yes ]; then
      # The sender's pace varies a little: the best is the most it achieved loss-free.
      if [ -z "$best" ] || [ "$step_mbps" -gt "$best" ]; then best=$step_mbps; fi
      [ "$r" = max ] && best_max=yes
    elif [ "$first" = yes ]; then
      # Loss at the first rate: halve until a rate passes.
      local low=$r
      [ "$low" = max ] && low=$ceiling
      while [ "$step_ok" != yes ] && [ "$low" -gt 60 ]; do
        low=$((low / 2))
        step "$tool" "$label" "$low"
        [ "$step_ok" = yes ] && best=$step_mbps
      done
      break
    else
      break
    fi
    first=no
    # A rate the sender could not reach: higher ones are out of reach too, except max.
    if [ "$step_reached" = no ] && [ "$r" != max ]; then
      case " $rates " in *" max "*) step "$tool" "$label" max
        if [ "$step_ok" = yes ]; then
          best_max=yes
          if [ "$step_mbps" -gt "${best:-0}" ]; then best=$step_mbps; fi
        fi ;; esac
      break
    fi
  done
  echo "${best:-0} $best_max" > "$work/best-$label"
}

load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "live line rate: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), kernel $(uname -r), load $(load)"
echo "suricata $(suricata -V 2>/dev/null | grep -o '[0-9][0-9.]*' | head -1); $(tcpreplay --version 2>&1 | head -1)"
echo "mix: $(tail -1 "$work/mix.txt")"
read -r su_tls su_quic su_dns < "$work/suricata.ref"
printf 'per pass, in the file (%s frames): aiwarden detects tls %s, quic %s, dns %s (of %s ClientHellos, %s QUIC ClientHellos, %s DNS queries); suricata alerts tls %s, quic %s, dns %s\n' \
  "$frames" "$ref_tls" "$ref_quic" "$ref_dns" "$ref_ch" "$ref_qi" "$ref_q" "$su_tls" "$su_quic" "$su_dns"
echo "senders, nobody listening, $cal_passes passes: send_capture (sendmmsg) $(field mbps "$rust_line") Mbit/s $(field pps "$rust_line") pps; tcpreplay -K --topspeed $(field mbps "$tr_line") Mbit/s $(field pps "$tr_line") pps"
echo "sender on CPU $cpu_send, tool on CPU $cpu_tool${quota:+ (at most $quota% of it)}; $secs s a rate; Mbit/s of frame bytes; cpu: the tool's, other: the rest of its CPU's busy time while sending"
printf '%-9s %6s %8s %7s %4s %6s %6s %7s %11s %9s %11s  %s\n' tool target 'Mbit/s' kpps pass cpu other drops tls quic dns ok
labels=()
for t in $tools; do
  if [ "$t" = aiwarden ] && [ -n "$base" ]; then
    climb aiwarden base
    labels+=(base)
  fi
  climb "$t" "$t"
  labels+=("$t")
done

echo "highest loss-free rate (zero drops, every detection), Mbit/s of the mix:"
for l in "${labels[@]}"; do
  read -r best at_max < "$work/best-$l"
  printf '  %-9s %s%s\n' "$l" "$best" "$([ "$at_max" = yes ] && echo " (the sender's ceiling with it listening: at least this)")"
done
if [ -f "$work/best-aiwarden" ] && [ -f "$work/best-suricata" ]; then
  read -r a a_max < "$work/best-aiwarden"
  read -r s _ < "$work/best-suricata"
  if [ "$s" -gt 0 ]; then
    printf '  ratio aiwarden/suricata: %s%.2fx\n' "$([ "$a_max" = yes ] && echo '>= ')" "$(echo "$a / $s" | bc -l)"
  fi
fi
echo "load $(load); total $(echo "$(date +%s.%N) - $t_begin" | bc | xargs printf '%.0f') s"
