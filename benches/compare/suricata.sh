#!/usr/bin/env bash
# Replays one capture through `aiwarden replay` and through Suricata (single runmode, the
# same hosts as tls.sni / dns.query / quic.sni rules) in the same run; prints both rates,
# the ratio and each tool's detections so recall can be compared.
#
# usage: benches/compare/suricata.sh [CAPTURE]   (default: the sample repeated 200 times,
#        about 740,000 packets and 700 MB, so start-up costs do not dominate)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

bash scripts/setup-debian.sh
if ! command -v suricata >/dev/null; then
  # Suricata 7 comes from bookworm-backports: add that suite on the mirror the machine
  # already uses.
  uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
    > /etc/apt/sources.list.d/aiwarden-backports.sources
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports suricata >/dev/null
fi
cargo build --release --quiet --bin aiwarden --example scale_capture

capture=${1:-}
if [ -z "$capture" ]; then
  capture=$work/clinic-x200.pcap
  ./target/release/examples/scale_capture samples/clinic-morning.pcap "$capture" 200
fi

python3 benches/compare/make-suricata-rules.py rules > "$work/aiwarden.rules"
cat > "$work/suricata.yaml" <<YAML
%YAML 1.1
---
include: /etc/suricata/suricata.yaml
default-rule-path: $work
rule-files: [aiwarden.rules]
outputs:
  - eve-log:
      enabled: yes
      filetype: regular
      filename: eve.json
      types: [alert]
  - stats:
      enabled: no
YAML

now() { date +%s.%N; }

# Warm the page cache so no tool pays for the first read.
cat "$capture" > /dev/null

# The ceiling: tcpdump reading every packet and rejecting all of them.
tr0=$(now)
tcpdump -nn -r "$capture" 'less 1' > /dev/null 2>&1
tr1=$(now)

t0=$(now)
./target/release/aiwarden replay --no-progress --rules rules "$capture" > "$work/aiwarden.jsonl" 2> "$work/aiwarden.err"
t1=$(now)
suricata -c "$work/suricata.yaml" --runmode single -k none -r "$capture" -l "$work" >"$work/suricata.out" 2>&1
t2=$(now)

packets=$(awk '/^packets:/{print $2}' "$work/aiwarden.err")
td_s=$(echo "$tr1 - $tr0" | bc -l)
aw_s=$(echo "$t1 - $t0" | bc -l)
su_s=$(echo "$t2 - $t1" | bc -l)
aw_rate=$(echo "$packets / $aw_s" | bc -l)
su_rate=$(echo "$packets / $su_s" | bc -l)
ratio=$(echo "$aw_rate / $su_rate" | bc -l)

# Recall: distinct (client, proto, host) each tool reported for catalog/deny hosts.
python3 - "$work" <<'PY'
import json, sys, pathlib
w = pathlib.Path(sys.argv[1])
aw = set()
for line in (w / "aiwarden.jsonl").read_text().splitlines():
    d = json.loads(line)
    if d.get("service") or d.get("rule"):
        aw.add((d["client"], d["proto"], d["host"]))
su = set()
for line in (w / "eve.json").read_text().splitlines():
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
print(f"aiwarden detections (client, proto, host): {len(aw)}")
print(f"suricata detections (client, proto, host): {len(su)}")
print(f"both: {len(aw & su)}  only aiwarden: {len(aw - su)}  only suricata: {len(su - aw)}")
for x in sorted(aw - su)[:10]:
    print("  only aiwarden:", *x)
for x in sorted(su - aw)[:10]:
    print("  only suricata:", *x)
PY
printf 'capture: %s (%s packets, %s bytes)\n' "$capture" "$packets" "$(stat -c %s "$capture")"
printf 'aiwarden replay: %.3f s  %.0f packets/s\n' "$aw_s" "$aw_rate"
printf 'suricata single: %.3f s  %.0f packets/s\n' "$su_s" "$su_rate"
printf 'ratio aiwarden/suricata: %.2f\n' "$ratio"
printf 'tcpdump reject-all: %.3f s  %.0f packets/s (%.2f x suricata)\n' "$td_s" "$(echo "$packets / $td_s" | bc -l)" "$(echo "$su_s / $td_s" | bc -l)"
