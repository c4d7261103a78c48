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
