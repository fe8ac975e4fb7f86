#!/usr/bin/env bash
# Builds a real kube-apiserver (v1.20.2) from Debian bookworm's `kubernetes`
# source package into OUT_DIR, for the operator's integration tests.
#
#   scripts/build-kube-apiserver.sh OUT_DIR
#
# Why from source: no reachable registry ships a kube-apiserver binary, and
# bookworm's `kubernetes` source is the full upstream tree with vendor/, so it
# builds offline (GOPROXY=off) with Debian's golang-go. Network: deb.debian.org
# only. Needs (apt): golang-go make rsync. About 5 minutes on 2 cores.
#
# Environment:
#   WHAT   k8s make targets, default "cmd/kube-apiserver"; add
#          "cmd/kube-controller-manager" for garbage collection and namespace
#          deletion (the tests do not need them).
#   FORCE  set to 1 to rebuild even when OUT_DIR already has working binaries.
#
# Idempotent: when every wanted binary is already in OUT_DIR and reports the
# expected version it does nothing. The 2 GB work directory is a temporary
# directory removed on exit; binaries are moved into OUT_DIR atomically.
set -euo pipefail

K8S_VERSION=v1.20.2
SOURCE_DIR=kubernetes-1.20.2
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
WHAT=${WHAT:-cmd/kube-apiserver}

log() { printf 'build-kube-apiserver: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$#" -eq 1 ] || die "usage: $0 OUT_DIR"
OUT=$1

read -r -a TARGETS <<<"$WHAT"
[ "${#TARGETS[@]}" -gt 0 ] || die "WHAT is empty"

# True when OUT already holds a binary of the expected version for each target.
have_all() {
  local target bin
  for target in "${TARGETS[@]}"; do
    bin="$OUT/$(basename "$target")"
    [ -x "$bin" ] || return 1
    "$bin" --version 2>/dev/null | grep -qF "$K8S_VERSION" || return 1
  done
}

if [ "${FORCE:-0}" != 1 ] && have_all; then
  log "already built in $OUT (${TARGETS[*]})"
  exit 0
fi

for tool in go make rsync apt-get dpkg tar; do
  command -v "$tool" >/dev/null || die "'$tool' not found; install it (apt-get install golang-go make rsync) or run scripts/setup-test-deps.sh"
done

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kube-apiserver-build.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
started=$(date +%s)

# A private apt configuration, so the machine's own sources and caches are not
# touched and no root is needed (nor apt's locks: every directory is ours).
mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/cache/archives/partial"
printf 'deb %s %s main\ndeb-src %s %s main\n' "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" >"$WORK/apt/sources.list"
APT_OPTS=(
  -o "Dir::Etc::SourceList=$WORK/apt/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$WORK/apt/lists"
  -o "Dir::Cache=$WORK/apt/cache"
  -o "Debug::NoLocking=1"
  -qq
)
# As root, apt would drop to the `_apt` user, who cannot enter our private work dir.
[ "$(id -u)" -ne 0 ] || APT_OPTS+=(-o "APT::Sandbox::User=root")

log "downloading the $SUITE kubernetes source package from $MIRROR"
apt-get "${APT_OPTS[@]}" update
(
  cd "$WORK"
  apt-get "${APT_OPTS[@]}" source --download-only kubernetes
  apt-get "${APT_OPTS[@]}" download golang-github-modern-go-reflect2-dev
)

log "unpacking"
cd "$WORK"
shopt -s nullglob
origs=(kubernetes_*.orig.tar.gz)
debs=(golang-github-modern-go-reflect2-dev_*.deb)
shopt -u nullglob
[ "${#origs[@]}" -eq 1 ] || die "expected one kubernetes_*.orig.tar.gz, found ${#origs[@]}"
[ "${#debs[@]}" -eq 1 ] || die "expected one reflect2 .deb, found ${#debs[@]}"
tar xzf "${origs[0]}"
dpkg -x "${debs[0]}" reflect2
[ -d "$SOURCE_DIR" ] || die "source tree $SOURCE_DIR not found in ${origs[0]}"

# The vendored reflect2 v1.0.1 is unsafe with Go >= 1.18: the apiserver dies
# with SIGSEGV in mapiterinit on the first custom-resource write. Debian's
# 1.0.2 package fixes it.
R2_SRC=reflect2/usr/share/gocode/src/github.com/modern-go/reflect2
[ -d "$R2_SRC" ] || die "reflect2 sources not found in ${debs[0]}"
cd "$SOURCE_DIR"
rm -rf vendor/github.com/modern-go/reflect2
cp -r "../$R2_SRC" vendor/github.com/modern-go/
rm -f vendor/github.com/modern-go/reflect2/go.mod

# `make WHAT=` (GOPATH mode) runs the code generators a plain `go build` would
# miss (openapi.GetOpenAPIDefinitions). HOME points into the work dir so no Go
# cache is left behind.
log "building ${TARGETS[*]} with $(go version | cut -d' ' -f3) (takes minutes)"
mkdir -p "$WORK/home"
env HOME="$WORK/home" GOPROXY=off GOFLAGS= GO111MODULE= CGO_ENABLED=0 \
  KUBE_GIT_VERSION="$K8S_VERSION" KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 KUBE_GIT_TREE_STATE=clean \
  nice -n 10 make WHAT="${TARGETS[*]}"

for target in "${TARGETS[@]}"; do
  name=$(basename "$target")
  built="_output/bin/$name"
  [ -x "$built" ] || die "$built was not produced"
  "$built" --version | grep -qF "$K8S_VERSION" || die "$built does not report $K8S_VERSION"
  cp "$built" "$OUT/.$name.tmp"
  mv -f "$OUT/.$name.tmp" "$OUT/$name"
  log "installed $OUT/$name"
done
log "done in $(($(date +%s) - started)) s"
