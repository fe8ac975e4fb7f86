"""Thin wrappers over helm-python-sdk (Helm's Go SDK): lint and offline render.

There is no helm CLI in any registry this project can use; the SDK bundles the real Helm
library, so lint, schema validation and rendering behave exactly as `helm` would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helm_python
from helm_python import _native

# Severity of lint findings (helm_python.lint): 1 info, 2 warning, 3 error.
LINT_WARNING = 2


class CheckFailed(Exception):
    """A check did not hold; the message says which and why."""


def lint(chart: Path, values: dict[str, Any], kube_version: str) -> list[str]:
    """Strict lint (warnings count as errors); returns the findings at warning level or above."""
    report = helm_python.lint(chart, values, strict=True, kube_version=kube_version)
    findings = [
        f"{m['path']}: {m['error']}" for m in report.get("messages", []) if m["severity"] >= LINT_WARNING
    ]
    findings += [e for e in report.get("errors", []) if not any(e in f for f in findings)]
    return findings


def render(
    chart: helm_python.Chart,
    values: dict[str, Any],
    *,
    release: str,
    namespace: str,
    kube_version: str | None = None,
    api_versions: list[str] | None = None,
) -> dict[str, str]:
    """Renders offline like `helm template --kube-version V --api-versions ...`.

    Returns template path -> manifest. The SDK's public `Chart.render` has neither option, but
    the native call it wraps accepts both (pinned helm-python-sdk 0.2.2): `api_versions` adds to
    Helm's default capabilities, which is how the ServiceMonitor template (guarded by the
    monitoring.coreos.com/v1 capability) is rendered without a cluster.
    """
    opts: dict[str, Any] = {"name": release, "namespace": namespace, "is_install": True}
    if kube_version:
        opts["kube_version"] = kube_version
    if api_versions:
        opts["api_versions"] = api_versions
    rendered = _native.call_string("helm_render", chart._raw(), json.dumps(values), json.dumps(opts))
    manifests: dict[str, str] = json.loads(rendered)
    return manifests
