"""--install: the chart installed, upgraded and uninstalled in a real API server.

No pods run there (no scheduler or kubelet), so nothing waits for readiness; the checks are on
the objects the API server accepted and on the permissions it grants the operator's account.
The API server should be a fresh one: the CRDs must not exist before the install.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import helm_python
import yaml

from . import expect
from .helm import CheckFailed
from .kubectl import Kubectl
from .manifests import normalized_rules

Report = Callable[[str], None]
PUBLIC_URL = "https://mcp-gateway.example.com"
# The chart's default identity (oidc) needs an issuer and audience.
OIDC = {"mode": "oidc", "oidc": {"issuer": "https://idp.example.com", "audience": "mcp-gateway"}}
GROUP = expect.GROUP
RMS = f"remotemcpservers.{GROUP}"
TEP = f"tokenexchangepolicies.{GROUP}"

# The RemoteMCPServer NOTES.txt tells users to create.
EXAMPLE_SERVER = """\
apiVersion: mcpoauth.dev/v1alpha1
kind: RemoteMCPServer
metadata:
  name: example
  namespace: {namespace}
spec:
  url: https://mcp.example.com/mcp
  auth:
    mode: oauth
"""


class Installation:
    """The releases and objects one --install run creates, and their removal."""

    def __init__(self, root: Path, kubeconfig: Path, kubectl: str) -> None:
        suffix = secrets.token_hex(3)
        self.ns = f"mcp-chart-{suffix}"
        self.team = f"team-{suffix}"
        self.k = Kubectl(kubectl, kubeconfig)
        self.chart = helm_python.Chart.load(root / "charts" / "mcp-oauth-operator")
        self.helm = helm_python.Config(kubeconfig_path=kubeconfig, namespace=self.ns)
        self.releases: list[str] = []
        self.created_crds = False

    def sa(self, release: str) -> str:
        return f"system:serviceaccount:{self.ns}:{release}-mcp-oauth-operator"

    # --- steps --------------------------------------------------------------------------------

    def preflight(self) -> None:
        present = [name for name in sorted(expect.CRD_NAMES) if self.k.exists("crd", name)]
        if present:
            raise CheckFailed(f"CRDs {present} already exist; run --install against a fresh API server")

    def install_cluster_wide(self) -> None:
        self.releases.append("mcp")
        self.created_crds = True
        release = self.helm.install(
            self.chart, "mcp", {"publicUrl": PUBLIC_URL, "identity": OIDC}, namespace=self.ns, create_namespace=True, timeout=120
        )
        self._pdb_version_matches_server(release)

    def _pdb_version_matches_server(self, release: dict[str, Any]) -> None:
        docs = [d for d in yaml.safe_load_all(release.get("manifest", "")) if d]
        pdbs = [d for d in docs if d.get("kind") == "PodDisruptionBudget"]
        want = "policy/v1" if "policy/v1" in self.k.api_versions() else "policy/v1beta1"
        if [p["apiVersion"] for p in pdbs] != [want]:
            raise CheckFailed(f"installed PDB apiVersions {[p['apiVersion'] for p in pdbs]}, this server needs {want}")

    def objects_exist(self) -> None:
        name = "mcp-mcp-oauth-operator"
        deployment = self.k.get("deployment", name, "-n", self.ns)
        if deployment["spec"]["replicas"] != 2:
            raise CheckFailed(f"Deployment replicas {deployment['spec']['replicas']}, want 2")
        for kind in ("serviceaccount", "service", "poddisruptionbudget"):
            self.k.get(kind, name, "-n", self.ns)
        cluster_role = self.k.get("clusterrole", name)
        if normalized_rules(cluster_role["rules"]) != normalized_rules(expect.WATCH_RULES):
            raise CheckFailed(f"ClusterRole rules in the API server differ: {cluster_role['rules']}")
        self.k.get("clusterrolebinding", name)
        self.k.get("role", f"{name}-leader", "-n", self.ns)
        self.k.get("rolebinding", f"{name}-leader", "-n", self.ns)
        self.k.ok("wait", "--for=condition=Established", "--timeout=30s", *(f"crd/{n}" for n in sorted(expect.CRD_NAMES)))
        for crd_name in sorted(expect.CRD_NAMES):
            meta = self.k.get("crd", crd_name)["metadata"]
            if meta.get("labels", {}).get("app.kubernetes.io/managed-by") != "Helm":
                raise CheckFailed(f"CRD {crd_name} is not labelled as managed by Helm: {meta.get('labels')}")
            if meta.get("annotations", {}).get("helm.sh/resource-policy") != "keep":
                raise CheckFailed(f"CRD {crd_name} lacks helm.sh/resource-policy: keep")

    def permissions(self) -> None:
        sa, ns = self.sa("mcp"), self.ns
        allowed = [
            ("list", RMS, None, ""),
            ("watch", TEP, None, ""),
            ("patch", RMS, "default", ""),
            ("patch", RMS, "default", "status"),
            ("update", TEP, "default", "status"),
            ("update", RMS, "default", "finalizers"),
            ("watch", "secrets", None, ""),
            ("create", "events.events.k8s.io", "default", ""),
            ("create", "events", "default", ""),
            ("get", "leases.coordination.k8s.io", ns, ""),
            ("create", "leases.coordination.k8s.io", ns, ""),
            ("update", "leases.coordination.k8s.io", ns, ""),
        ]
        denied = [
            ("create", RMS, "default", ""),
            ("delete", RMS, "default", ""),
            ("create", "secrets", "default", ""),
            ("update", "secrets", "default", ""),
            ("delete", "secrets", "default", ""),
            ("list", "configmaps", "default", ""),
            ("create", "pods", ns, ""),
            ("create", "leases.coordination.k8s.io", "default", ""),
            ("delete", "leases.coordination.k8s.io", ns, ""),
            ("update", "customresourcedefinitions.apiextensions.k8s.io", None, ""),
        ]
        self._expect_access(sa, allowed, True)
        self._expect_access(sa, denied, False)

    def _expect_access(self, sa: str, cases: list[tuple[str, str, str | None, str]], want: bool) -> None:
        wrong = [
            f"{verb} {resource}{'/' + sub if sub else ''} in {ns or 'all namespaces'}"
            for verb, resource, ns, sub in cases
            if self.k.can_i(sa, verb, resource, ns, sub) != want
        ]
        if wrong:
            raise CheckFailed(f"{sa} must {'be allowed' if want else 'be denied'}: {'; '.join(wrong)}")

    def crds_serve_resources(self) -> None:
        self.k.ok("create", "-f", "-", stdin=EXAMPLE_SERVER.format(namespace=self.ns))
        names = self.k.ok("get", "rms", "-n", self.ns, "-o", "name").split()
        if names != [f"remotemcpserver.{GROUP}/example"]:
            raise CheckFailed(f"the NOTES example RemoteMCPServer is not served back: {names}")

    def upgrade(self) -> None:
        self.helm.upgrade(self.chart, "mcp", {"publicUrl": PUBLIC_URL, "identity": OIDC, "replicas": 3}, namespace=self.ns, timeout=120)
        replicas = self.k.get("deployment", "mcp-mcp-oauth-operator", "-n", self.ns)["spec"]["replicas"]
        if replicas != 3:
            raise CheckFailed(f"upgrade did not apply: replicas {replicas}, want 3")
        for crd_name in sorted(expect.CRD_NAMES):
            self.k.get("crd", crd_name)

    def install_namespaced(self) -> None:
        self.k.ok("create", "namespace", self.team)
        self.releases.append("team")
        values = {
            "publicUrl": PUBLIC_URL,
            "identity": OIDC,
            "replicas": 1,
            "crds": {"install": False},
            "watchNamespaces": [self.team],
            "encryption": {"existingSecret": "team-keys"},
        }
        self.helm.install(self.chart, "team", values, namespace=self.ns, timeout=120)
        name = "team-mcp-oauth-operator"
        role = self.k.get("role", name, "-n", self.team)
        if normalized_rules(role["rules"]) != normalized_rules(expect.WATCH_RULES):
            raise CheckFailed(f"Role in {self.team} differs: {role['rules']}")
        if self.k.exists("clusterrole", name) or self.k.exists("poddisruptionbudget", name, "-n", self.ns):
            raise CheckFailed("namespaced one-replica release must create neither a ClusterRole nor a PDB")
        sa = self.sa("team")
        # The key ring Secret (release namespace) by name only: no other Secret there.
        allowed = [
            ("list", RMS, self.team, ""),
            ("watch", "secrets", self.team, ""),
            ("get", "secrets/team-keys", self.ns, ""),
            ("watch", "secrets/team-keys", self.ns, ""),
        ]
        denied = [
            ("list", RMS, "default", ""),
            ("list", RMS, None, ""),
            ("get", "secrets", "default", ""),
            ("get", "secrets/other", self.ns, ""),
            ("list", "secrets", self.ns, ""),
        ]
        self._expect_access(sa, allowed, True)
        self._expect_access(sa, denied, False)

    def uninstall(self) -> None:
        for release in list(reversed(self.releases)):
            self.helm.uninstall(release, timeout=120)
            self.releases.remove(release)
        gone = (
            ("deployment", "mcp-mcp-oauth-operator", "-n", self.ns),
            ("clusterrole", "mcp-mcp-oauth-operator"),
            ("role", "team-mcp-oauth-operator", "-n", self.team),
        )
        for args in gone:
            if self.k.exists(*args):
                raise CheckFailed(f"{args[0]} {args[1]} still exists after uninstall")
        for crd_name in sorted(expect.CRD_NAMES):
            if not self.k.exists("crd", crd_name):
                raise CheckFailed(f"CRD {crd_name} was deleted on uninstall; it must be kept")

    def cleanup(self) -> None:
        """Best effort: leave the API server as it was found."""
        for release in reversed(self.releases):
            try:
                self.helm.uninstall(release, ignore_not_found=True, timeout=60)
            except helm_python.HelmError:
                pass
        if self.created_crds:
            self.k.run("delete", "crd", *sorted(expect.CRD_NAMES), "--ignore-not-found", "--wait=false")
        self.k.run("delete", "namespace", self.ns, self.team, "--ignore-not-found", "--wait=false")
        self.helm.close()


def run(root: Path, kubeconfig: Path, kubectl: str, report: Report) -> list[str]:
    """Runs the install checks in order; stops at the first failure. Returns the failures."""
    inst = Installation(root, kubeconfig, kubectl)
    steps: list[tuple[str, Callable[[], None]]] = [
        ("install preflight (no CRDs yet)", inst.preflight),
        ("install cluster-wide release", inst.install_cluster_wide),
        ("install objects exist", inst.objects_exist),
        ("install RBAC grants exactly what is needed", inst.permissions),
        ("install CRDs serve RemoteMCPServers", inst.crds_serve_resources),
        ("install upgrade", inst.upgrade),
        ("install namespaced release", inst.install_namespaced),
        ("install uninstall keeps CRDs", inst.uninstall),
    ]
    failures: list[str] = []
    try:
        for label, step in steps:
            try:
                step()
            except (CheckFailed, helm_python.HelmError) as err:
                report(f"FAIL {label}")
                failures.append(f"{label}: {err}")
                break
            report(f"ok   {label}")
    finally:
        inst.cleanup()
    return failures
