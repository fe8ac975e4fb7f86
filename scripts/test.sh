#!/usr/bin/env bash
# Runs the whole test suite against real components. Extra arguments go to
# `cargo nextest run` (or `cargo test` when nextest is not installed), e.g.
#   scripts/test.sh -E "test(/^infra_smoke::/)"
# Without target-selecting arguments it runs every target plus the doc tests.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup-test-deps.sh

# Target selection from the caller replaces --all-targets (cargo would
# otherwise run the union) and skips the doc tests.
targets=(--all-targets)
run_doc=1
for arg in "$@"; do
  case "$arg" in
    --lib|--bins|--bin|--bin=*|--tests|--test|--test=*|--benches|--bench|--bench=*|--examples|--example|--example=*|--doc)
      targets=()
      run_doc=0
      ;;
  esac
done

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace "${targets[@]}" "$@"
else
  cargo test --workspace "${targets[@]}" "$@"
fi

if [ "$run_doc" -eq 1 ]; then
  cargo test --workspace --doc
fi
