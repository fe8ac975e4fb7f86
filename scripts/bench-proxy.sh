#!/usr/bin/env bash
# The gateway's request-path benchmark (docs/benchmarks.md, "Gateway request path"):
# builds the release binary, then runs benches/proxy.rs, which starts the IdP, the
# upstreams, Valkey and the gateway as separate processes and drives them with wrk.
# Needs `wrk` (Debian package `wrk`) and what scripts/setup-test-deps.sh installs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
cargo build --release --bin mcp-oauth-operator
cargo bench --bench proxy -- --bench
echo "tables saved to ${TMPDIR:-/tmp}/proxy-bench.md"
