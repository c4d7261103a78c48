#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600) each, two at a time, from corpora seeded
# with the project's fixtures. cargo-fuzz needs nightly features: RUSTC_BOOTSTRAP=1 enables
# them on the stable toolchain.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
python3 seed.py
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
run() {
  cargo fuzz run -O "$1" "corpus/$1" -- -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 \
    > "artifacts-$1.log" 2>&1
  echo "$1: $(grep -E 'stat::number_of_executed_units|Done [0-9]+ runs' "artifacts-$1.log" | tail -1)"
}
run frame & run tls & wait
run quic & run dns & wait
run rules & run admin_files & wait
run http & run dns_query & wait
