#!/usr/bin/env bash
# What router-mode enforcement costs the traffic it forwards: bulk TCP throughput, new
# connections per second and the set-up time of a new connection, through a gateway with
# no aiwarden, with aiwarden in monitor mode (capture only; nothing in the forwarding
# path) and with aiwarden enforcing (placement = "router": table inet aiwarden and the
# NFQUEUE that holds each new connection's first packets until aiwarden has judged them),
# in the same run, with the same client and servers.
#
# Set-up (all made here and removed on exit; only processes started here are stopped,
# by PID): three network namespaces, as tests/support/netns.rs `setup()`:
#
#   client  c0 10.77.1.2 ─── g0 10.77.1.1  gateway  g1 10.77.2.1 ─── s0 10.77.2.2  server
#                                  aiwarden run: DNS on 10.77.1.1,        iperf3 -s on :443
#                                  capture on g0, router placement        10.77.2.3 connrate server :443
#                                  (NAT to g1 with NAT=1)                 dnsmasq (the upstream)
#
# NAT=1 (the default) masquerades the LAN behind g1 in every mode, as a clinic's router
# does, so connection tracking runs in every mode and the cost printed is aiwarden's alone;
# NAT=0 routes without it (then only enforce mode loads conntrack, and pays for it).
#
# For each mode:
#   - bulk: iperf3 for SECS seconds, one stream and STREAMS streams, upload (client to
#     server) and download (-R). The server listens on 443, so download data is what the
#     default capture filter leaves out, as HTTPS downloads are; uploads are captured.
#   - connections: examples/connrate.rs for CONN_SECS seconds, CONN_THREADS threads each
#     opening a connection, sending a real rustls ClientHello (post-quantum key share,
#     about 1.5 KB, two segments) for an allowed name, reading the server's one-byte reply
#     and closing: connections/s, and p50/p99 of connect() (SYN to SYN/ACK), of reply (the
#     ClientHello to the reply byte: the round trip of the packets the queue judges) and of
#     the whole (connect() called to reply byte read).
# The daemon's CPU over each measurement and the machine's busy share are printed: this
# machine's client, server, daemon and the kernel's forwarding all share its cores (no
# pinning), so a cost can show as the load's slowdown or as the daemon's CPU.
#
# After the enforce runs: aiwarden_queue_verdicts_total, the packets the kernel queued to
# aiwarden per connection, and a check that a blocked name (chatgpt.com) is
# refused on the same path. Targets (issue 10): at most 5% of throughput and 10% of the
# connection rate, enforce against monitor; printed as met or not, never failing the run.
#
# usage: sudo [SECS=10] [CONN_SECS=8] [CONN_THREADS=4] [STREAMS=4] [ROUNDS=1] [NAT=1]
#          [MODES="none monitor enforce"] [PERF=1] [PIN=1] benches/compare/enforce.sh
# ROUNDS=N repeats the whole sequence N times; the summary takes the mean of the rounds.
# PERF=1 records the whole machine (perf record -a) during each connection run and
# prints where the CPU went (it costs some of the rate it watches).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
t_begin=$(date +%s.%N)
if [ "$(id -u)" -ne 0 ]; then
  echo "enforce.sh: run as root (namespaces, veth, nftables, NFQUEUE)" >&2
  exit 2
fi

secs=${SECS:-10}
conn_secs=${CONN_SECS:-8}
conn_threads=${CONN_THREADS:-4}
streams=${STREAMS:-4}
rounds=${ROUNDS:-1}
nat=${NAT:-1}
# PIN=1: the load (iperf3, connrate client and server) on CPU 1, aiwarden on CPU 0, as on a
# real gateway whose clients and servers are other machines (the kernel's forwarding still
# runs wherever the packets are handled).
load_pin=""; gw_pin=""
if [ "${PIN:-0}" = 1 ]; then load_pin="taskset -c 1"; gw_pin="taskset -c 0"; fi
modes=${MODES:-none monitor enforce}
perf_on=${PERF:-0}

missing=()
for tool in ip nft iptables iperf3 dnsmasq dig curl python3; do
  command -v "$tool" >/dev/null || command -v "/usr/sbin/$tool" >/dev/null || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "enforce.sh: missing ${missing[*]} (scripts/setup-debian.sh installs all but iperf3: apt-get install iperf3)" >&2
  exit 2
fi

cargo build --release --quiet --bin aiwarden --example connrate
bin=$root/target/release/aiwarden
connrate=$root/target/release/examples/connrate

tag=awen$$
ns_c=$tag-c ns_g=$tag-g ns_s=$tag-s
work=$(mktemp -d "${TMPDIR:-/tmp}/aiwarden-enforce.XXXXXX")
pids=()
daemon=""
cleanup() {
  for p in "${pids[@]}" $daemon; do
    if kill "$p" 2>/dev/null; then wait "$p" 2>/dev/null || true; fi
  done
  for ns in "$ns_c" "$ns_g" "$ns_s"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The namespaces, as tests/support/netns.rs.
for ns in "$ns_c" "$ns_g" "$ns_s"; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip link add c0 netns "$ns_c" type veth peer g0 netns "$ns_g"
ip link add g1 netns "$ns_g" type veth peer s0 netns "$ns_s"
for x in "$ns_c c0 10.77.1.2/24" "$ns_g g0 10.77.1.1/24" "$ns_g g1 10.77.2.1/24" \
  "$ns_s s0 10.77.2.2/24" "$ns_s s0 10.77.2.3/24"; do
  read -r ns dev addr <<< "$x"
  ip -n "$ns" addr add "$addr" dev "$dev"
  ip -n "$ns" link set "$dev" up
done
ip -n "$ns_c" route add default via 10.77.1.1
ip -n "$ns_s" route add default via 10.77.2.1
ip netns exec "$ns_g" sysctl -qw net.ipv4.ip_forward=1
# The client's ports: connrate's client closes second (no TIME_WAIT), but a wide range
# keeps a port's reuse far apart all the same.
ip netns exec "$ns_c" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
if [ "$nat" = 1 ]; then
  ip netns exec "$ns_g" nft 'add table ip benchnat; add chain ip benchnat post { type nat hook postrouting priority srcnat; }; add rule ip benchnat post oifname "g1" masquerade'
fi

# The server side: the upstream resolver, iperf3, connrate's server.
ip netns exec "$ns_s" dnsmasq --keep-in-foreground --no-resolv --no-hosts --listen-address=10.77.2.2 \
  --bind-interfaces --user=root --pid-file= --address=/bench.example/10.77.2.3 > "$work/dnsmasq.log" 2>&1 &
pids+=($!)
$load_pin ip netns exec "$ns_s" iperf3 -s -B 10.77.2.2 -p 443 > "$work/iperf3-server.log" 2>&1 &
pids+=($!)
$load_pin ip netns exec "$ns_s" "$connrate" server --listen 10.77.2.3:443 --threads "$conn_threads" > "$work/connrate-server.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
  ip netns exec "$ns_c" bash -c 'exec 3<>/dev/tcp/10.77.2.3/443' 2>/dev/null && break
  sleep 0.1
done

metrics() { ip netns exec "$ns_g" curl -s --max-time 2 http://127.0.0.1:9747/metrics; }
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# machine: "busy total" jiffies of every CPU (busy: user, nice, system, irq, softirq, steal)
machine() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
hz=$(getconf CLK_TCK)
# daemon_cpu T0 T1 SECS -> the daemon's CPU, % of one core ("-" without a daemon)
daemon_cpu() {
  if [ -z "$daemon" ]; then echo -; else awk -v c=$(($2 - $1)) -v h="$hz" -v s="$3" 'BEGIN {printf "%.0f", 100 * c / h / s}'; fi
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<< " $2"; }

# start_daemon MODE: aiwarden in the gateway, ready (resolver answers, capture up).
start_daemon() {
  local mode=$1 cfg=$work/$1.toml
  cat > "$cfg" <<TOML
mode = "$mode"
rules = "$root/rules"
[capture]
interfaces = ["g0"]
[dns]
listen = ["10.77.1.1:53"]
upstreams = ["10.77.2.2"]
[store]
path = "$work/$mode.db"
[metrics]
listen = "127.0.0.1:9747"
[enforcement]
placement = "router"
TOML
  $gw_pin ip netns exec "$ns_g" "$bin" run --config "$cfg" > "$work/$mode.log" 2>&1 &
  daemon=$!
  local up=""
  for _ in $(seq 200); do
    if [ -z "$up" ] && ip netns exec "$ns_c" dig @10.77.1.1 +time=1 +tries=1 +short connrate.bench.example 2>/dev/null | grep -q 10.77.2.3; then
      up=dns
    fi
    if [ -n "$up" ] && ip netns exec "$ns_g" curl -s --max-time 2 127.0.0.1:9747/healthz 2>/dev/null | grep -q "capture g0: ok"; then
      return 0
    fi
    sleep 0.1
  done
  echo "enforce.sh: aiwarden ($mode) did not come up; its log:" >&2
  cat "$work/$mode.log" >&2
  exit 1
}
stop_daemon() {
  [ -n "$daemon" ] || return 0
  kill -TERM "$daemon" 2>/dev/null || true
  wait "$daemon" 2>/dev/null || true
  daemon=""
}

# Enforcement in force, or the run stops: the table, the hook, the queue path.
enforcing() {
  local info xt=""
  ip netns exec "$ns_g" nft list table inet aiwarden > /dev/null || { echo "enforce.sh: no table inet aiwarden" >&2; exit 1; }
  info=$(metrics | grep '^aiwarden_enforcement_info{' || true)
  case $info in
    *'tcp="queue-xt"'*)
      ip netns exec "$ns_g" iptables -t mangle -S | grep -q -- '-j AIWARDEN' || { echo "enforce.sh: no AIWARDEN chain in mangle" >&2; exit 1; }
      xt=" (iptables -t mangle FORWARD -j AIWARDEN -> NFQUEUE)" ;;
    *'tcp="queue"'*) ;;
    *) echo "enforce.sh: enforcement is not inline: $info" >&2; exit 1 ;;
  esac
  echo "  enforcing: table inet aiwarden; ${info#aiwarden_enforcement_info}$xt"
}

# Packets the kernel handed to aiwarden's queue so far (its id sequence).
queued() { ip netns exec "$ns_g" cat /proc/net/netfilter/nfnetlink_queue 2>/dev/null | awk '{s += $8} END {print s + 0}'; }

declare -A res
# measure MODE ROUND: every measurement for one mode, rows printed as they come.
measure() {
  local mode=$1 r=$2 dir n flag out bps retr t0 t1 m0 m1 c0=0 c1=0 line
  for dir in up down; do
    for n in 1 "$streams"; do
      [ "$dir" = down ] && flag=-R || flag=""
      read -r m0 t0 < <(machine)
      [ -z "$daemon" ] || c0=$(cputicks "$daemon")
      # shellcheck disable=SC2086 # $flag: empty or -R
      out=$($load_pin ip netns exec "$ns_c" iperf3 -c 10.77.2.2 -p 443 -t "$secs" -P "$n" $flag -J)
      [ -z "$daemon" ] || c1=$(cputicks "$daemon")
      read -r m1 t1 < <(machine)
      read -r bps retr < <(python3 -c 'import json, sys
e = json.load(sys.stdin)["end"]
print(e["sum_received"]["bits_per_second"], e["sum_sent"].get("retransmits", 0))' <<< "$out")
      res[$mode,bulk-$dir-$n,$r]=$bps
      printf '  %-8s bulk %-4s %d stream%-2s %7.2f Gbit/s  retransmits %-6s aiwarden cpu %4s%%  machine busy %3.0f%%\n' \
        "$mode" "$dir" "$n" "$([ "$n" = 1 ] && echo "" || echo s)" "$(awk -v b="$bps" 'BEGIN {print b / 1e9}')" "$retr" \
        "$(daemon_cpu "$c0" "$c1" "$secs")" \
        "$(awk -v b=$((m1 - m0)) -v t=$((t1 - t0)) 'BEGIN {print 100 * b / t}')"
    done
  done
  read -r m0 t0 < <(machine)
  [ -z "$daemon" ] || c0=$(cputicks "$daemon")
  local perf=""
  if [ "$perf_on" = 1 ]; then
    perf record -q -a -g -F 499 -o "$work/perf-$mode.data" -- sleep "$conn_secs" > /dev/null 2>&1 &
    perf=$!
  fi
  line=$($load_pin ip netns exec "$ns_c" "$connrate" client --connect 10.77.2.3:443 --secs "$conn_secs" \
    --threads "$conn_threads" --sni connrate.bench.example)
  [ -z "$daemon" ] || c1=$(cputicks "$daemon")
  read -r m1 t1 < <(machine)
  local k
  if [ -n "$perf" ]; then
    wait "$perf" || true
    echo "  $mode: where the machine's CPU went during the connections (perf, system-wide):"
    local how
    for how in comm sym; do
      perf report -q -i "$work/perf-$mode.data" --no-children --sort "$how" --percent-limit 1.5 --stdio -g none 2> /dev/null \
        | grep -v '^$' | head -15 | sed "s/^/    by $how /"
    done
    # Inside aiwarden's queue thread (the thread's name, cut to 15 characters).
    perf report -q -i "$work/perf-$mode.data" --no-children --comms aiwarden-nfqueu --sort dso,sym --percent-limit 0.7 \
      --stdio -g none 2> /dev/null | grep -v '^$' | head -25 | sed "s/^/    queue thread /"

  fi
  for k in rate conns failed connect_p50 connect_p99 reply_p50 reply_p99 total_p50 total_p99; do
    res[$mode,$k,$r]=$(field "$k" "$line")
  done
  printf '  %-8s conns %6s/s (%s, %s failed)  connect p50/p99 %s/%s us  reply %s/%s us  total %s/%s us  aiwarden cpu %s%%  machine busy %.0f%%\n' \
    "$mode" "$(field rate "$line")" "$(field conns "$line")" "$(field failed "$line")" \
    "$(field connect_p50 "$line")" "$(field connect_p99 "$line")" "$(field reply_p50 "$line")" "$(field reply_p99 "$line")" \
    "$(field total_p50 "$line")" "$(field total_p99 "$line")" \
    "$(daemon_cpu "$c0" "$c1" "$conn_secs")" \
    "$(awk -v b=$((m1 - m0)) -v t=$((t1 - t0)) 'BEGIN {print 100 * b / t}')"
}

load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "router enforcement cost: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), kernel $(uname -r), load $(load)"
echo "$(iperf3 --version | head -1); $("$bin" --version)"
echo "client, servers, aiwarden and the kernel's forwarding share the $(nproc) cores (not pinned): a cost shows as"
echo "the load's slowdown or as aiwarden's CPU; NAT=$nat; bulk ${secs} s a run (1 and $streams streams), connections ${conn_secs} s ($conn_threads threads)"
for r in $(seq "$rounds"); do
  [ "$rounds" = 1 ] || echo "round $r:"
  for mode in $modes; do
    if [ "$mode" != none ]; then
      start_daemon "$mode"
      [ "$mode" != enforce ] || enforcing
    fi
    [ "$mode" != enforce ] || q0=$(queued)
    measure "$mode" "$r"
    if [ "$mode" = enforce ]; then
      q1=$(queued)
      verdicts=$(metrics | grep '^aiwarden_queue_verdicts_total' | sed 's/^aiwarden_queue_verdicts_total//' | tr '\n' ' ')
      printf '  enforce  aiwarden_queue_verdicts_total %s\n' "${verdicts:-(none)}"
      # Fail-open passes (queue full) are counted nowhere; with T threads at most 2T
      # packets wait at once, below the queue's length (enforcement.queue_max_len, 16).
      printf '  enforce  the kernel queued %s packets to aiwarden in these runs: %s per short connection (the ClientHello as two segments; packets without payload, the SYN and the ACK, are not queued)\n' \
        $((q1 - q0)) "$(awk -v q=$((q1 - q0)) -v c="${res[enforce,conns,$r]}" 'BEGIN {printf "%.2f", (c > 0 ? q / c : 0)}')"
    fi
    if [ "$mode" = enforce ] && [ "$r" = "$rounds" ]; then
      # The same path refuses a blocked name (after the measurements: a denied tuple stays
      # blocked for enforcement.block_secs).
      line=$(ip netns exec "$ns_c" "$connrate" client --connect 10.77.2.3:443 --secs 1 --threads 1 --sni chatgpt.com)
      printf '  enforce  check: chatgpt.com ClientHellos on the same path: %s of %s connections refused\n' \
        "$(field failed "$line")" $(($(field failed "$line") + $(field conns "$line")))
    fi
    stop_daemon
  done
done

# The summary: means over the rounds; cost of enforce against monitor and against none.
mean() { # KEY MODE -> mean over rounds, or empty
  local s="" r
  for r in $(seq "$rounds"); do s="$s ${res[$2,$1,$r]:-}"; done
  awk '{ for (i = 1; i <= NF; i++) { t += $i; n++ } } END { if (n) printf "%.6g", t / n }' <<< "$s"
}
has() { case " $modes " in *" $1 "*) return 0 ;; esac; return 1; }
echo "summary (mean of $rounds round$([ "$rounds" = 1 ] || echo s)):"
printf '  %-24s %10s %10s %10s %13s %13s  %s\n' "" none monitor enforce "vs monitor" "vs none" target
# row LABEL KEY SCALE FORMAT KIND TARGET: KIND "rate" prints cost % (lower is worse),
# "lat" prints the added microseconds.
row() {
  local label=$1 key=$2 scale=$3 kind=$4 target=$5 v=() m x c1 c2 verdict=""
  for m in none monitor enforce; do
    x=""
    has "$m" && x=$(mean "$key" "$m")
    v+=("$x")
  done
  cmp() { # BASE ON
    if [ -z "$1" ] || [ -z "$2" ]; then echo -; return; fi
    if [ "$kind" = rate ]; then
      awk -v b="$1" -v o="$2" 'BEGIN {printf "%+.1f%%", (b > 0 ? 100 * (o - b) / b : 0)}'
    else
      awk -v b="$1" -v o="$2" 'BEGIN {printf "%+.0f us", o - b}'
    fi
  }
  c1=$(cmp "${v[1]}" "${v[2]}")
  c2=$(cmp "${v[0]}" "${v[2]}")
  if [ -n "$target" ] && [ "$c1" != - ]; then
    verdict=$(awk -v b="${v[1]}" -v o="${v[2]}" -v t="$target" \
      'BEGIN {c = (b > 0 ? 100 * (b - o) / b : 0); printf "cost <= %d%%: %s", t, (c <= t ? "met" : "NOT met")}')
  fi
  fmt() { [ -n "$1" ] && awk -v x="$1" -v s="$scale" 'BEGIN {printf (s == 1 ? "%.0f" : "%.2f"), x / s}' || echo -; }
  printf '  %-24s %10s %10s %10s %13s %13s  %s\n' "$label" "$(fmt "${v[0]}")" "$(fmt "${v[1]}")" "$(fmt "${v[2]}")" "$c1" "$c2" "$verdict"
}
for dir in up down; do
  for n in 1 "$streams"; do
    row "bulk $dir $n stream$([ "$n" = 1 ] || echo s), Gbit/s" "bulk-$dir-$n" 1e9 rate 5
  done
done
row "new connections/s" rate 1 rate 10
for k in connect reply total; do
  row "$k p50, us" "${k}_p50" 1 lat ""
  row "$k p99, us" "${k}_p99" 1 lat ""
done
echo "  (connect: SYN to SYN/ACK; reply: the ClientHello's two segments to the server's reply byte; total: both)"
echo "load $(load); total $(echo "$(date +%s.%N) - $t_begin" | bc | xargs printf '%.0f') s"
