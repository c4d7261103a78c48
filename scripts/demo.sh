#!/usr/bin/env bash
# Quick start, part one: set up, build, and replay the bundled sample capture of a clinic's
# morning, printing who tried which AI service and what aiwarden would do about it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
cargo build --release --quiet
echo "== detections (what was seen, the rule that decided, the verdict) =="
./target/release/aiwarden replay --site samples/site --format table samples/clinic-morning.pcap
echo
echo "== incidents (per device and service, grouped within 10 minutes) =="
./target/release/aiwarden replay --site samples/site --incidents --format table samples/clinic-morning.pcap 2>/dev/null
echo
echo "== the weekly report of that week (the replay recorded in a store, as the daemon would) =="
demo=target/demo
rm -rf "$demo" && mkdir -p "$demo"
./target/release/aiwarden replay --site samples/site --store "$demo/incidents.db" --no-progress samples/clinic-morning.pcap >/dev/null 2>&1
for form in json csv html pdf; do
    ./target/release/aiwarden report --config samples/aiwarden.toml --store "$demo/incidents.db" \
        --week 2026-W48 --format "$form" --out "$demo/sunrise-2026-W48.$form"
done
echo "headline figures:"
sed -n '/"headline"/,/}/p' "$demo/sunrise-2026-W48.json" | sed '1d;$d'
echo "report written to $demo/: sunrise-2026-W48.html (open it in a browser), .pdf, .csv, .json"
