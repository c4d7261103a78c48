#!/usr/bin/env bash
# aiwarden's filtering resolver against dnsmasq and unbound, in the same run, with the same
# block list (1,000 and 100,000 deny patterns) and the same upstream, on cached answers.
#
# For each list size and server: warm the cache, then
#   - throughput: dnsperf with 100 queries in flight for $SECS seconds -> queries/s, and
#     the server's CPU time per answer (on a 2-core machine dnsperf's one core is often
#     the limit, so q/s ties where CPU per answer still tells the servers apart);
#   - latency: dnsperf -v at a fixed 20,000 queries/s -> p50 and p99 from every answer;
#   - resident memory (VmRSS, VmHWM) of the server after the runs.
# Every server runs single-threaded on one core (taskset), as dnsmasq always does; unbound
# gets num-threads: 1, aiwarden its default runtime pinned to the same core.
#
# usage: [AIWARDEN_BASE=/old/aiwarden AIWARDEN_BASE_RULES=/old/rules] benches/compare/dns.sh [SECS]
#        (default 10 s; with AIWARDEN_BASE an older aiwarden is measured too, before and
#        after in the same run)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
secs=${1:-10}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

bash scripts/setup-debian.sh
for p in dnsperf unbound; do
  command -v "$p" >/dev/null || command -v "/usr/sbin/$p" >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dnsperf unbound >/dev/null
    break
  }
done
cargo build --release --quiet --bin aiwarden
bin=$root/target/release/aiwarden
base=${AIWARDEN_BASE:-}
base_rules=${AIWARDEN_BASE_RULES:-$root/rules}

up=127.0.0.2      # the upstream: an authoritative dnsmasq answering every *.bench.example
core_srv=0        # the server under test
core_perf=1       # dnsperf
names=1000        # distinct cached names

# The upstream.
dnsmasq --keep-in-foreground --no-resolv --no-hosts --listen-address=$up --port=5300 \
  --bind-interfaces --user=root --pid-file= --cache-size=0 --local-ttl=3600 \
  --address=/bench.example/192.0.2.1 >/dev/null 2>&1 &
pids+=($!)

# Queries: names the block list does not contain, all answered from the cache after warm-up.
for i in $(seq 1 $names); do echo "host$i.bench.example A"; done > "$work/queries.txt"

deny_list() { # N -> N registrable-domain patterns, the shape of real block lists
  awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++) printf "tracker%d.ads%d.example\n", i, i % 1000 }'
}

rss() { awk '/^VmRSS/{r=$2} /^VmHWM/{h=$2} END {printf "%.1f MB (peak %.1f MB)", r/1024, h/1024}' "/proc/$1/status"; }

cpu_ticks() { # PID -> user + system clock ticks of every thread so far
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}

wait_up() { # PORT
  for _ in $(seq 1 100); do
    if dig @127.0.0.1 -p "$1" +time=1 +tries=1 +short host1.bench.example 2>/dev/null | grep -q 192.0.2.1; then return 0; fi
    sleep 0.1
  done
  echo "server on port $1 did not answer" >&2
  return 1
}

measure() { # NAME PORT PID
  local name=$1 port=$2 pid=$3
  wait_up "$port"
  # Warm the cache (and check the block list works).
  taskset -c $core_perf dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -n 2 -q 100 >/dev/null 2>&1
  local blocked
  blocked=$(dig @127.0.0.1 -p "$port" +time=1 +tries=1 tracker7.ads7.example | grep -c -E 'NXDOMAIN' || true)
  local qps out cpu0 cpu1 done_q cpu
  cpu0=$(cpu_ticks "$pid")
  out=$(taskset -c $core_perf dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -l "$secs" -q 100 2>&1)
  cpu1=$(cpu_ticks "$pid")
  qps=$(awk '/Queries per second/{print $4}' <<<"$out")
  done_q=$(awk '/Queries completed/{print $3}' <<<"$out")
  # The server's own CPU time per answer: what decides q/s when the server, not dnsperf
  # on its one core, is the limit.
  cpu=$(awk -v t=$((cpu1 - cpu0)) -v hz="$(getconf CLK_TCK)" -v n="$done_q" \
    'BEGIN { if (n > 0) printf "%.2f us cpu/q", t * 1e6 / hz / n; else printf "-" }')
  local lat
  lat=$(taskset -c $core_perf dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -l 5 -Q 20000 -v 2>/dev/null \
    | awk '$1 == ">" && $2 == "NOERROR" {print $NF * 1e6}' | sort -n \
    | awk '{a[NR]=$1} END {if (NR) printf "p50 %d us, p99 %d us", a[int(NR*0.5)+1], a[int(NR*0.99)+1]; else printf "no answers"}')
  printf "  %-9s %9s q/s  %s  %-26s  %s  block answer: %s\n" "$name" "$qps" "$cpu" "$lat" "$(rss "$pid")" \
    "$([ "$blocked" -gt 0 ] && echo NXDOMAIN || echo MISSING)"
}

for n in 1000 100000; do
  echo "deny patterns: $n"
  deny_list "$n" > "$work/deny.txt"

  # aiwarden (and the base build, if given): the shipped catalog plus the list as
  # site/deny.list.
  for which in aiwarden base; do
    exe=$bin catalog=rules/catalog port=5301
    if [ "$which" = base ]; then
      [ -n "$base" ] || continue
      exe=$base catalog=$base_rules/catalog port=5304
    fi
    rm -rf "$work/rules" && mkdir -p "$work/rules/site"
    cp -r "$catalog" "$work/rules/"
    cp "$work/deny.txt" "$work/rules/site/deny.list"
    # The per-client rate limit stays on (its cost is part of what is measured) but far
    # above what one dnsperf sends; an older build that does not know the option gets
    # the file without it.
    for limits in $'rate_limit = 100000000\nrate_burst = 100000000' ""; do
      cat > "$work/aiwarden.toml" <<EOF
mode = "enforce"
rules = "$work/rules"
[dns]
listen = ["127.0.0.1:$port"]
upstreams = ["$up:5300"]
cache_size = 20000
$limits
[store]
path = "$work/incidents-$which-$n.db"
[metrics]
listen = "off"
EOF
      said=$("$exe" check --config "$work/aiwarden.toml" 2>&1 || true)
      grep -q "unknown field .rate_" <<<"$said" || break
    done
    AIWARDEN_LOG=error taskset -c $core_srv "$exe" run --config "$work/aiwarden.toml" >/dev/null 2>&1 &
    pid=$!; pids+=($pid)
    measure "$which" "$port" $pid
    kill $pid; wait $pid 2>/dev/null || true
  done

  # dnsmasq: the same names as address=/name/ (NXDOMAIN).
  sed 's|.*|address=/&/|' "$work/deny.txt" > "$work/dnsmasq-block.conf"
  taskset -c $core_srv dnsmasq --keep-in-foreground --no-resolv --no-hosts --port=5302 \
    --listen-address=127.0.0.1 --bind-interfaces --user=root --pid-file= \
    --server=$up#5300 --cache-size=20000 --conf-file="$work/dnsmasq-block.conf" >/dev/null 2>&1 &
  pid=$!; pids+=($pid)
  measure dnsmasq 5302 $pid
  kill $pid; wait $pid 2>/dev/null || true

  # unbound: the same names as always_nxdomain local zones, forwarding everything else.
  {
    printf 'server:\n  interface: 127.0.0.1@5303\n  num-threads: 1\n  do-not-query-localhost: no\n'
    printf '  username: ""\n  chroot: ""\n  use-syslog: no\n  verbosity: 0\n  msg-cache-size: 32m\n  rrset-cache-size: 64m\n'
    printf '  pidfile: ""\n  auto-trust-anchor-file: ""\n  module-config: "iterator"\n'
    sed 's|.*|  local-zone: "&." always_nxdomain|' "$work/deny.txt"
    printf 'forward-zone:\n  name: "."\n  forward-addr: %s@5300\n' "$up"
  } > "$work/unbound.conf"
  taskset -c $core_srv unbound -d -c "$work/unbound.conf" >/dev/null 2>&1 &
  pid=$!; pids+=($pid)
  measure unbound 5303 $pid
  kill $pid; wait $pid 2>/dev/null || true
done
