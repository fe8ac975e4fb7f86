#!/usr/bin/env bash
# Times what CI compiles from a clean checkout and reports the target directory's size
# (docs/benchmarks.md, "Clean build: time and disk"). Usage: scripts/measure-build.sh [CHECKOUT]
# (default: this repository). It empties CHECKOUT/target first.
set -euo pipefail
dir=$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")/..}" && pwd)
cd "$dir"
export CARGO_INCREMENTAL=0
export CARGO_TARGET_DIR="$dir/target"
rm -rf "$CARGO_TARGET_DIR"
s=$(date +%s)
cargo clippy --all-targets -q -- -D warnings
c=$(date +%s)
cargo nextest run --workspace --all-targets --no-run
e=$(date +%s)
echo "clippy: $((c - s)) s, test build: $((e - c)) s, total: $((e - s)) s"
du -sb "$CARGO_TARGET_DIR"
