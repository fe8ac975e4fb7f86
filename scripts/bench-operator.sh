#!/usr/bin/env bash
# Benchmarks the operator against a real kube-apiserver + etcd (started as the integration tests
# start them, from $MCPOAUTH_K8S_CACHE, default ~/.cache/mcp-oauth-operator/k8s-bin): start-up
# time to /readyz, resident memory idle and with 1,000 and 10,000 RemoteMCPServers, and the time
# from creating them to all Ready. Prints the table of docs/benchmarks.md, section "Operator"
# (also saved to target/operator-bench.md); the operator's logs go to target/operator-bench/.
#
# The operator is the release-optimised binary cargo builds for the bench (bench profile = the
# release settings); OPERATOR_BIN=path overrides it. OPERATOR_BENCH_SIZES=1000 (cumulative
# counts, comma-separated, default 1000,10000) for a shorter run. Takes about 4 minutes after
# the build on 2 cores, most of it the apiserver's work.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin_dir=${MCPOAUTH_K8S_CACHE:-$HOME/.cache/mcp-oauth-operator/k8s-bin}
missing=()
[ -x "$bin_dir/kube-apiserver" ] || missing+=("$bin_dir/kube-apiserver (scripts/build-kube-apiserver.sh)")
for tool in etcd kubectl openssl getconf; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  printf 'bench-operator: missing: %s\n' "${missing[@]}" >&2
  echo "bench-operator: scripts/setup-test-deps.sh installs them" >&2
  exit 1
fi

echo "bench-operator: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
  "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
mkdir -p target
cargo bench --bench operator -- "$@" | tee target/operator-bench.md
echo "bench-operator: report saved to target/operator-bench.md" >&2
