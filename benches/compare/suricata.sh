#!/usr/bin/env bash
# Replays captures through `aiwarden replay` and through Suricata (single runmode, the
# same hosts as tls.sni / dns.query / quic.sni rules) in the same run; prints for each
# capture its packets and bytes, each tool's time and rate, the ratios, the tcpdump
# reject-all ceiling, and each tool's detections so recall can be compared.
#
# usage: [AIWARDEN_BASE=/path/to/older/aiwarden] [RUNS=5] benches/compare/suricata.sh [CAPTURE...]
#
# Default captures, made in a scratch directory (under $TMPDIR if set) and deleted on exit:
#   sample-x200  the bundled sample repeated 200 times (examples/scale_capture.rs): about
#                740,000 packets and 700 MB, many short visits, so start-up costs do not
#                dominate;
#   bulk         examples/bulk_capture.rs: 1.1 GiB, about 1.2 M packets, most bytes in
#                long downloads, like the pipeline bench's clinic mix.
# AIWARDEN_BASE: a second aiwarden binary (say, a build of the previous commit) timed on the
# same captures in the same run, so before and after share one machine state;
# AIWARDEN_BASE_RULES: the rules directory it reads (default: this checkout's).
# RUNS: how many times each tool reads each capture (default 5); the fastest run counts.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d "${TMPDIR:-/tmp}/aiwarden-suricata.XXXXXX")
trap 'rm -rf "$work"' EXIT

base=${AIWARDEN_BASE:-}
# The base binary reads its own rules (an older build may not know newer catalog keys).
base_rules=${AIWARDEN_BASE_RULES:-rules}
runs=${RUNS:-5}
if [ -n "$base" ] && [ ! -x "$base" ]; then
  echo "AIWARDEN_BASE=$base is not an executable" >&2
  exit 2
fi

bash scripts/setup-debian.sh
bash benches/compare/install-suricata.sh
cargo build --release --quiet --bin aiwarden --example scale_capture --example bulk_capture

captures=("$@")
if [ "${#captures[@]}" -eq 0 ]; then
  ./target/release/examples/scale_capture samples/clinic-morning.pcap "$work/sample-x200.pcap" 200
  ./target/release/examples/bulk_capture "$work/bulk.pcap"
  captures=("$work/sample-x200.pcap" "$work/bulk.pcap")
fi

bash benches/compare/suricata-config.sh "$work" > "$work/suricata.yaml"

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }
# fastest PREVIOUS STDOUT STDERR CMD...: runs CMD once and prints the smaller of its wall
# time and PREVIOUS (empty at first).
fastest() {
  local prev=$1 stdout=$2 stderr=$3 t0 t1 s
  shift 3
  t0=$(now)
  "$@" > "$stdout" 2> "$stderr"
  t1=$(now)
  s=$(secs "$t0" "$t1")
  if [ -n "$prev" ] && [ "$(echo "$prev < $s" | bc -l)" = 1 ]; then s=$prev; fi
  echo "$s"
}
# rate PACKETS BYTES SECONDS -> "N packets/s, G Gbit/s"
rate() { printf '%.2f M packets/s, %.2f Gbit/s' "$(echo "$1 / $3 / 1000000" | bc -l)" "$(echo "$2 * 8 / $3 / 1000000000" | bc -l)"; }

# Recall: distinct (client, proto, host) each tool reported for catalog/deny hosts.
recall() {
  python3 - "$1" "$2" <<'PY'
import json, sys, pathlib
aw_path, eve_path = map(pathlib.Path, sys.argv[1:3])
aw = set()
for line in aw_path.read_text().splitlines():
    d = json.loads(line)
    if d.get("service") or d.get("rule"):
        aw.add((d["client"], d["proto"], d["host"]))
su = set()
for line in eve_path.read_text().splitlines():
    e = json.loads(line)
    if e.get("event_type") != "alert":
        continue
    proto = e["alert"]["signature"].split()[1]
    host = None
    if proto == "tls":
        host = e.get("tls", {}).get("sni")
    elif proto == "quic":
        host = e.get("quic", {}).get("sni")
    elif proto == "dns":
        dns = e.get("dns", {})
        host = dns.get("rrname") or (dns.get("query") or [{}])[0].get("rrname")
        src = e.get("src_ip") if dns.get("type") != "answer" else e.get("dest_ip")
    if host is None:
        continue
    client = e.get("src_ip") if proto != "dns" else src
    su.add((client, proto, host.lower().rstrip(".")))
print(f"  recall (client, proto, host): aiwarden {len(aw)}, suricata {len(su)}, "
      f"both {len(aw & su)}, only aiwarden {len(aw - su)}, only suricata {len(su - aw)}")
for x in sorted(aw - su)[:10]:
    print("    only aiwarden:", *x)
for x in sorted(su - aw)[:10]:
    print("    only suricata:", *x)
PY
}

echo "suricata $(suricata -V 2>/dev/null | grep -o '[0-9][0-9.]*' | head -1), $(nproc) cores, fastest of $runs runs"
for capture in "${captures[@]}"; do
  name=$(basename "$capture" .pcap)
  out=$work/$name
  mkdir -p "$out"

  # Warm the page cache so no tool pays for the first read.
  cat "$capture" > /dev/null

  # Each tool RUNS times, the tools taking turns so drift on a shared machine hits all of
  # them alike; the fastest run of each counts. tcpdump rejecting every packet is the
  # ceiling for reading the file.
  td_s='' aw_s='' base_s='' su_s=''
  for _ in $(seq "$runs"); do
    td_s=$(fastest "$td_s" /dev/null /dev/null tcpdump -nn -r "$capture" 'less 1')
    aw_s=$(fastest "$aw_s" "$out/aiwarden.jsonl" "$out/aiwarden.err" \
      ./target/release/aiwarden replay --no-progress --rules rules "$capture")
    if [ -n "$base" ]; then
      base_s=$(fastest "$base_s" "$out/base.jsonl" "$out/base.err" \
        "$base" replay --no-progress --rules "$base_rules" "$capture")
    fi
    rm -f "$out/eve.json"
    su_s=$(fastest "$su_s" "$out/suricata.out" "$out/suricata.err" \
      suricata -c "$work/suricata.yaml" --runmode single -k none -r "$capture" -l "$out")
  done

  packets=$(awk '/^packets:/{print $2}' "$out/aiwarden.err")
  bytes=$(awk '/^packets:/{print $4}' "$out/aiwarden.err")
  printf '%s: %s packets, %s bytes of packets (%s bytes on disk)\n' "$name" "$packets" "$bytes" "$(stat -c %s "$capture")"
  printf '  aiwarden replay:       %7.3f s  %s\n' "$aw_s" "$(rate "$packets" "$bytes" "$aw_s")"
  if [ -n "$base" ]; then
    printf '  base aiwarden replay:  %7.3f s  %s  (current is %.2fx the base speed)\n' \
      "$base_s" "$(rate "$packets" "$bytes" "$base_s")" "$(echo "$base_s / $aw_s" | bc -l)"
    if ! cmp -s <(sort "$out/aiwarden.jsonl") <(sort "$out/base.jsonl"); then
      printf '  base and current detections differ: %s vs %s lines\n' \
        "$(wc -l < "$out/base.jsonl")" "$(wc -l < "$out/aiwarden.jsonl")"
    fi
  fi
  printf '  suricata single:       %7.3f s  %s\n' "$su_s" "$(rate "$packets" "$bytes" "$su_s")"
  printf '  ratio aiwarden/suricata: %.2f' "$(echo "$su_s / $aw_s" | bc -l)"
  if [ -n "$base" ]; then
    printf '  (base: %.2f)' "$(echo "$su_s / $base_s" | bc -l)"
  fi
  printf '\n'
  printf '  tcpdump reject-all:    %7.3f s  %s  (suricata takes %.2fx, aiwarden %.2fx)\n' \
    "$td_s" "$(rate "$packets" "$bytes" "$td_s")" "$(echo "$su_s / $td_s" | bc -l)" "$(echo "$aw_s / $td_s" | bc -l)"
  recall "$out/aiwarden.jsonl" "$out/eve.json"
done
