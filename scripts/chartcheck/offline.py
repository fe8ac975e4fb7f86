"""The checks that need no cluster: lint, render, schema-validate, assert, refuse bad values."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import helm_python

from . import expect
from .cases import FULLNAME, NAMESPACE, RELEASE, Case, Rejected, key_secret_from_api, rejected_cases, render_cases
from .helm import CheckFailed, lint, render
from .manifests import Rendered
from .validate import kubernetes_validate

Report = Callable[[str], None]


def _version(v: str) -> tuple[int, int]:
    major, minor = v.split(".")[:2]
    return int(major), int(minor)


def _properties(case: Case, r: Rendered, repo_crds: Path, kube_version: str) -> None:
    expect.hardening(r)
    expect.image_pinned(r)
    expect.all_namespaced_in(r, {NAMESPACE, *case.watch_namespaces})
    expect.crds(r, repo_crds, case.crds_installed, _version(kube_version) >= expect.CEL_SINCE)
    if case.rbac:
        sa = case.values.get("serviceAccount", {}).get("name") or FULLNAME
        expect.rbac(r, NAMESPACE, sa, case.watch_namespaces, key_secret_from_api(case.values))
    else:
        expect.no_rbac(r)
    for check in case.checks:
        check(r)


def _render_case(chart: helm_python.Chart, case: Case, repo_crds: Path, out: Path, kube_version: str) -> None:
    """Renders for the case's Kubernetes version (default: `kube_version`), asserts the
    properties, then validates against the `kube_version` schemas (the oldest bundled is 1.25)."""
    render_version = case.kube_version or kube_version
    manifests = render(
        chart,
        case.values,
        release=RELEASE,
        namespace=NAMESPACE,
        kube_version=f"v{render_version}",
        api_versions=case.api_versions,
    )
    rendered = Rendered.parse(case.name, manifests)
    _properties(case, rendered, repo_crds, render_version)
    kubernetes_validate(rendered.write(out / case.name), kube_version)


def _refused(chart: helm_python.Chart, case: Rejected) -> None:
    try:
        render(chart, case.values, release=RELEASE, namespace=NAMESPACE)
    except (helm_python.HelmValuesError, helm_python.HelmRenderError) as err:
        if case.reason not in str(err):
            raise CheckFailed(f"values '{case.name}' were refused, but not for {case.reason!r}: {err}") from err
        return
    raise CheckFailed(f"values '{case.name}' must be refused at render time ({case.reason}), but rendered")


def run(root: Path, out: Path, kube_version: str, report: Report) -> list[str]:
    """Runs every offline check; returns the failures (empty when the chart is fine)."""
    chart_dir = root / "charts" / "mcp-oauth-operator"
    repo_crds = root / "crds"
    chart = helm_python.Chart.load(chart_dir)
    failures: list[str] = []

    def attempt(label: str, step: Callable[[], None]) -> None:
        try:
            step()
        except (CheckFailed, helm_python.HelmError) as err:
            failures.append(f"{label}: {err}")
            report(f"FAIL {label}")
        else:
            report(f"ok   {label}")

    def lint_step(case: Case) -> Callable[[], None]:
        def step() -> None:
            findings = lint(chart_dir, case.values, f"v{case.kube_version or kube_version}")
            if findings:
                raise CheckFailed("helm lint --strict: " + "; ".join(findings))

        return step

    for case in render_cases(root):
        attempt(f"lint   {case.name}", lint_step(case))
        attempt(
            f"render {case.name}",
            lambda case=case: _render_case(chart, case, repo_crds, out, kube_version),
        )
    for rejected in rejected_cases():
        attempt(f"refuse {rejected.name}", lambda rejected=rejected: _refused(chart, rejected))
    return failures
