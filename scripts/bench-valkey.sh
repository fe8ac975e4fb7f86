#!/usr/bin/env bash
# Benchmarks the Valkey token store against valkey-benchmark on the same server in the same run
# and prints the tables of docs/benchmarks.md, section "Valkey store" (also saved to
# target/valkey-bench.md). Takes about 2.5 minutes after the build; extra arguments go to the
# measurement tool (examples/valkey_store_load). Environment: VALKEY_BENCH_RUNTIME=current|multi, VALKEY_BENCH_NO_PIN=1,
# VALKEY_BENCH_ONLY=<op>:<callers>:<pool> (one operation only, for a profiler).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
for tool in valkey-server valkey-benchmark; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bench-valkey: not installed: ${missing[*]} (Debian bookworm-backports packages" \
    "valkey-server and valkey-tools; scripts/setup-test-deps.sh installs them)" >&2
  exit 1
fi
command -v taskset >/dev/null \
  || echo "bench-valkey: taskset (util-linux) not found: running without CPU pinning" >&2

echo "bench-valkey: load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
mkdir -p target
cargo run --release --example valkey_store_load -- "$@" | tee target/valkey-bench.md
echo "bench-valkey: report saved to target/valkey-bench.md" >&2
