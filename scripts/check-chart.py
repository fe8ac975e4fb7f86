#!/usr/bin/env python3
"""Checks the Helm chart charts/mcp-oauth-operator.

Offline (always): strict `helm lint`, renders with several values files (defaults,
examples/helm/values-*.yaml, one enabling every optional object, ...), validates every rendered
manifest with `kubernetes-validate --strict -k 1.30.0`, asserts the security settings, RBAC and
CRDs of each render, and checks that invalid values are refused by values.schema.json (or the
chart's own rules) at render time.

With --install KUBECONFIG: also installs, upgrades and uninstalls the chart in that API server
(no pods need to run) and checks the created objects and the granted permissions with kubectl.

Needs the venv made by scripts/setup-test-deps.sh (helm-python-sdk, kubernetes-validate):
    ~/.cache/mcp-oauth-operator/venv/bin/python scripts/check-chart.py [--install KUBECONFIG]
"""

from __future__ import annotations

import sys

# The checks live next to this script; keep the work tree free of __pycache__ folders.
sys.dont_write_bytecode = True

import argparse  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--install", metavar="KUBECONFIG", help="also install the chart into this API server")
    parser.add_argument("--kubectl", default="kubectl", help="kubectl binary for --install (default: kubectl)")
    parser.add_argument("--kube-version", default="1.30.0", help="Kubernetes version for lint and schemas")
    parser.add_argument("--skip-offline", action="store_true", help="only the --install checks")
    parser.add_argument("--keep", action="store_true", help="keep the rendered manifests and print where")
    args = parser.parse_args()

    try:
        from chartcheck import install, offline
    except ImportError as err:
        print(f"check-chart: {err}; create the venv with scripts/setup-test-deps.sh", file=sys.stderr)
        return 2

    def report(line: str) -> None:
        print(line, flush=True)

    out = Path(tempfile.mkdtemp(prefix="mcp-chart-"))
    failures = [] if args.skip_offline else offline.run(ROOT, out, args.kube_version, report)
    if args.install:
        failures += install.run(ROOT, Path(args.install), args.kubectl, report)

    if args.keep:
        print(f"rendered manifests: {out}")
    else:
        import shutil

        shutil.rmtree(out, ignore_errors=True)
    if failures:
        print(f"\n{len(failures)} check(s) failed:", file=sys.stderr)
        for failure in failures:
            print(f"- {failure}", file=sys.stderr)
        return 1
    print("chart checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
