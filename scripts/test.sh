#!/usr/bin/env bash
# Quick start, part two: set up and run every check CI runs: formatting, lints, unit and
# integration tests (root-only tests run when root and say why they skip otherwise), and
# a smoke run of every benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
cargo test --doc --locked
