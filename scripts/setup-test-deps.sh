#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian bookworm machine (root
# for apt). Idempotent: every step checks first and does nothing when done.
#
# Tests talk to real components (see tests/infra/node): node-oidc-provider as
# the IdP, an OAuth-protected MCP server built on the official TS SDK, and
# @modelcontextprotocol/server-everything. All pinned in package-lock.json.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NODE_DIR="$ROOT/tests/infra/node"
# oidc-provider 9 uses URL.parse (node >= 20.18); Debian bookworm's own nodejs is 18.
MIN_NODE_MAJOR=20
MIN_NODE_MINOR=18

log() { printf 'setup-test-deps: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------
# apt packages. Later work adds its packages to these lists.
# valkey-server/valkey-tools 8 (with TLS; valkey-cli builds the test cluster)
# come from bookworm-backports; testkit/src/valkey.rs also uses `openssl`.
# golang-go, make and rsync build kube-apiserver (scripts/build-kube-apiserver.sh);
# etcd-server is its datastore in testkit/src/kube.rs.
APT_PACKAGES=(openssl golang-go make rsync etcd-server)
BACKPORTS_PACKAGES=(valkey-server valkey-tools)
# ---------------------------------------------------------------------------

missing_packages() {
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || printf '%s\n' "$pkg"
  done
}

apt_install() {
  local missing missing_bpo
  mapfile -t missing < <(missing_packages "${APT_PACKAGES[@]}")
  mapfile -t missing_bpo < <(missing_packages "${BACKPORTS_PACKAGES[@]}")
  if [ "${#missing[@]}" -eq 0 ] && [ "${#missing_bpo[@]}" -eq 0 ]; then
    return
  fi
  [ "$(id -u)" -eq 0 ] || die "need root to apt-get install: ${missing[*]} ${missing_bpo[*]}"
  if [ "${#missing_bpo[@]}" -gt 0 ]; then
    local list=/etc/apt/sources.list.d/bookworm-backports.list
    grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ \
      || echo 'deb http://deb.debian.org/debian bookworm-backports main' > "$list"
  fi
  log "apt-get install ${missing[*]} ${missing_bpo[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  if [ "${#missing[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  if [ "${#missing_bpo[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports "${missing_bpo[@]}"
  fi
}

check_node() {
  command -v node >/dev/null || die "node (>= $MIN_NODE_MAJOR.$MIN_NODE_MINOR) is not installed"
  command -v npm >/dev/null || die "npm is not installed"
  local version major minor
  version=$(node -p 'process.versions.node')
  major=${version%%.*}
  minor=${version#*.}; minor=${minor%%.*}
  if [ "$major" -lt "$MIN_NODE_MAJOR" ] || { [ "$major" -eq "$MIN_NODE_MAJOR" ] && [ "$minor" -lt "$MIN_NODE_MINOR" ]; }; then
    die "node $version is too old; need >= $MIN_NODE_MAJOR.$MIN_NODE_MINOR"
  fi
}

# npm ci wipes node_modules, so only run it when the lockfile changed.
npm_install() {
  local stamp="$NODE_DIR/node_modules/.lock-sha256" want
  want=$(sha256sum "$NODE_DIR/package-lock.json" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  log "npm ci in tests/infra/node"
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
  printf '%s\n' "$want" > "$stamp"
}

# kube-apiserver v1.20.2, built from Debian's source package (about 5 minutes),
# only when missing. The cache lives outside the clone so CI re-runs on the same
# machine reuse it; testkit/src/kube.rs looks in the same place.
K8S_BIN=${MCPOAUTH_K8S_CACHE:-$HOME/.cache/mcp-oauth-operator/k8s-bin}
build_kube_apiserver() {
  if [ -x "$K8S_BIN/kube-apiserver" ]; then
    return
  fi
  log "building kube-apiserver into $K8S_BIN"
  "$ROOT/scripts/build-kube-apiserver.sh" "$K8S_BIN"
}

apt_install
check_node
npm_install
build_kube_apiserver

# --- chart checks (scripts/check-chart.py, tests/it/chart.rs) -------------------
# A Python venv with the Helm Go SDK (helm-python-sdk bundles libhelm_c.so; there
# is no helm CLI in any reachable registry) and offline Kubernetes JSON schemas.
# Re-created only when the pinned list changes.
CHART_VENV=${MCPOAUTH_VENV:-$HOME/.cache/mcp-oauth-operator/venv}
CHART_PY_PACKAGES=(helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 PyYAML==6.0.2)
# The OAuth-protected MCP server built on the official Python SDK
# (tests/infra/python/mcp_server.py, testkit/src/python_mcp.rs) uses the same venv.
CHART_PY_PACKAGES+=(mcp==2.3.0 'PyJWT[crypto]==2.15.1')

chart_venv() {
  local stamp="$CHART_VENV/.packages" want
  want=$(printf '%s\n' "${CHART_PY_PACKAGES[@]}")
  if [ -x "$CHART_VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  command -v python3 >/dev/null || die "python3 (with venv) is not installed"
  python3 -c 'import ensurepip, venv' 2>/dev/null \
    || die "python3 cannot create venvs (on Debian: apt-get install python3-venv)"
  log "python venv for chart checks in $CHART_VENV"
  python3 -m venv "$CHART_VENV"
  "$CHART_VENV/bin/python" -m pip install -q --disable-pip-version-check "${CHART_PY_PACKAGES[@]}"
  printf '%s\n' "$want" > "$stamp"
}

chart_venv
# --- end chart checks ---------------------------------------------------------
log "ok"
