"""Properties every render of the chart must have: hardening, RBAC exactly as designed, CRDs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .helm import CheckFailed
from .manifests import Rendered, container, normalized_rules

GROUP = "mcpoauth.dev"
KINDS = ["remotemcpservers", "tokenexchangepolicies"]
CRD_NAMES = {f"{kind}.{GROUP}" for kind in KINDS}

# Wherever resources are watched (ClusterRole, or a Role per watched namespace).
WATCH_RULES = [
    {"apiGroups": [GROUP], "resources": KINDS, "verbs": ["get", "list", "watch", "patch", "update"]},
    {"apiGroups": [GROUP], "resources": [f"{k}/status" for k in KINDS], "verbs": ["patch", "update"]},
    {"apiGroups": [GROUP], "resources": [f"{k}/finalizers" for k in KINDS], "verbs": ["update"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
]
# The release namespace: leader election and Events about the operator itself.
LEADER_RULES = [
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
]


def keyring_rule(secret: str) -> dict[str, Any]:
    """Added to the release-namespace Role when the key ring Secret is read through the API server
    (encryption.source: api): that one Secret only; list/watch work with a metadata.name field
    selector, which is what the operator sends."""
    return {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [secret], "verbs": ["get", "list", "watch"]}

UID = 65532
# CRD validation rules (CEL): Kubernetes 1.25+ only.
VALIDATION_RULES = "x-kubernetes-validations"
CEL_SINCE = (1, 25)


def _fail(r: Rendered, message: str) -> None:
    raise CheckFailed(f"[{r.case}] {message}")


def hardening(r: Rendered) -> None:
    """Non-root, read-only root filesystem, no capabilities, seccomp, probes and resources."""
    deployment = r.one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    c = container(deployment)
    psc, sc = pod.get("securityContext", {}), c.get("securityContext", {})
    expected_container = {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
    }
    for field, want in expected_container.items():
        if sc.get(field) != want:
            _fail(r, f"container securityContext.{field} is {sc.get(field)!r}, want {want!r}")
    if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("capabilities", {}).get("add"):
        _fail(r, f"container must drop ALL capabilities and add none: {sc.get('capabilities')}")
    for ctx, where in ((psc, "pod"), (sc, "container")):
        if ctx.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            _fail(r, f"{where} seccompProfile must be RuntimeDefault: {ctx.get('seccompProfile')}")
    if psc.get("runAsNonRoot") is not True or psc.get("runAsUser") != UID:
        _fail(r, f"pod securityContext must run as non-root uid {UID}: {psc}")
    if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
        _fail(r, "pod must not share host namespaces")
    probes = {
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    for probe, path in probes.items():
        got = c.get(probe, {}).get("httpGet", {})
        if got.get("path") != path or got.get("port") != "http":
            _fail(r, f"{probe} must GET {path} on port http, got {got}")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    if ports != {"http": 8080, "metrics": 9090}:
        _fail(r, f"container must expose exactly http:8080 and metrics:9090, got {ports}")
    resources = c.get("resources", {})
    if not resources.get("requests", {}).get("memory") or not resources.get("limits", {}).get("memory"):
        _fail(r, f"container must request and limit memory: {resources}")
    if c.get("args") != ["run"]:
        _fail(r, f"container must run the operator subcommand `run`, args are {c.get('args')}")
    mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
    if "/tmp" not in mounts:
        _fail(r, "a writable /tmp must be mounted (the root filesystem is read-only)")


def image_pinned(r: Rendered) -> None:
    """Every image names a version: no `latest`, no missing tag."""
    for obj in r.all("Deployment"):
        for c in obj["spec"]["template"]["spec"]["containers"]:
            image = c["image"]
            if "@sha256:" in image:
                continue
            tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
            if not tag or tag == "latest":
                _fail(r, f"image {image!r} must carry a version tag or digest, not latest")


def all_namespaced_in(r: Rendered, namespaces: set[str]) -> None:
    """Namespaced objects name their namespace explicitly (so `helm template | kubectl apply` works)."""
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
    for obj in r.objects:
        meta = obj.get("metadata", {})
        if obj["kind"] in cluster_scoped:
            if "namespace" in meta:
                _fail(r, f"cluster-scoped {obj['kind']} {meta.get('name')} must not set a namespace")
        elif meta.get("namespace") not in namespaces:
            where = meta.get("namespace")
            _fail(r, f"{obj['kind']} {meta.get('name')} is in namespace {where!r}, want one of {sorted(namespaces)}")


def _binding_points_at(r: Rendered, binding: dict[str, Any], role_kind: str, role: str, sa: str, sa_ns: str) -> None:
    ref = binding["roleRef"]
    if ref != {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role}:
        _fail(r, f"{binding['kind']} {binding['metadata']['name']} refers to {ref}, want {role_kind} {role}")
    subjects = binding.get("subjects", [])
    if subjects != [{"kind": "ServiceAccount", "name": sa, "namespace": sa_ns}]:
        _fail(r, f"{binding['kind']} {binding['metadata']['name']} must bind only ServiceAccount {sa_ns}/{sa}: {subjects}")


def _rules_equal(r: Rendered, what: str, got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    if normalized_rules(got) != normalized_rules(want):
        _fail(r, f"{what} rules differ from the design:\n  got  {normalized_rules(got)}\n  want {normalized_rules(want)}")


def rbac(r: Rendered, release_ns: str, sa: str, watch_namespaces: list[str], key_secret: str | None) -> None:
    """RBAC exactly as designed: nothing more, nothing less, bound only to the chart's account."""
    for kind in ("ClusterRole", "Role"):
        for role in r.all(kind):
            for rule in role.get("rules", []):
                if "*" in rule.get("verbs", []) or "*" in rule.get("resources", []) or "*" in rule.get("apiGroups", []):
                    _fail(r, f"{kind} {role['metadata']['name']} uses a wildcard: {rule}")
    leader = [role for role in r.all("Role", release_ns) if role["metadata"]["name"].endswith("-leader")]
    if len(leader) != 1:
        _fail(r, f"expected one leader-election Role in {release_ns}, found {len(leader)}")
    leader_rules = LEADER_RULES + ([keyring_rule(key_secret)] if key_secret else [])
    _rules_equal(r, "leader Role", leader[0]["rules"], leader_rules)
    leader_binding = [b for b in r.all("RoleBinding", release_ns) if b["metadata"]["name"].endswith("-leader")]
    if len(leader_binding) != 1:
        _fail(r, f"expected one leader-election RoleBinding in {release_ns}, found {len(leader_binding)}")
    _binding_points_at(r, leader_binding[0], "Role", leader[0]["metadata"]["name"], sa, release_ns)

    if not watch_namespaces:
        role = r.one("ClusterRole")
        _rules_equal(r, "ClusterRole", role["rules"], WATCH_RULES)
        _binding_points_at(r, r.one("ClusterRoleBinding"), "ClusterRole", role["metadata"]["name"], sa, release_ns)
        return
    if r.all("ClusterRole") or r.all("ClusterRoleBinding"):
        _fail(r, "watching a list of namespaces must not create cluster-wide RBAC")
    for ns in watch_namespaces:
        roles = [x for x in r.all("Role", ns) if not x["metadata"]["name"].endswith("-leader")]
        bindings = [x for x in r.all("RoleBinding", ns) if not x["metadata"]["name"].endswith("-leader")]
        if len(roles) != 1 or len(bindings) != 1:
            _fail(r, f"expected one watch Role and RoleBinding in {ns}, found {len(roles)} and {len(bindings)}")
        _rules_equal(r, f"Role in {ns}", roles[0]["rules"], WATCH_RULES)
        _binding_points_at(r, bindings[0], "Role", roles[0]["metadata"]["name"], sa, release_ns)
    other = {x["metadata"]["namespace"] for x in r.all("Role")} - set(watch_namespaces) - {release_ns}
    if other:
        _fail(r, f"Roles in namespaces that are not watched: {sorted(other)}")


def no_rbac(r: Rendered) -> None:
    for kind in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
        if r.all(kind):
            _fail(r, f"rbac.create=false must not render any {kind}")


def _without_validation_rules(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_validation_rules(v) for k, v in node.items() if k != VALIDATION_RULES}
    if isinstance(node, list):
        return [_without_validation_rules(v) for v in node]
    return node


def crds(r: Rendered, repo_crds: Path, installed: bool, validation_rules: bool) -> None:
    """CRD templates present or absent; when present, identical to crds/*.yaml apart from the
    added metadata and, where the cluster is too old for them (`validation_rules` false), the
    CEL rules."""
    found = {o["metadata"]["name"]: o for o in r.all("CustomResourceDefinition")}
    if not installed:
        if found:
            _fail(r, f"crds.install=false must not render CRDs, found {sorted(found)}")
        return
    if set(found) != CRD_NAMES:
        _fail(r, f"crds.install=true must render exactly {sorted(CRD_NAMES)}, found {sorted(found)}")
    rules_seen = 0
    for path in sorted(repo_crds.glob("*.yaml")):
        want = yaml.safe_load(path.read_text())
        got = found[want["metadata"]["name"]]
        rules_in_repo = yaml.safe_dump(want["spec"]).count(VALIDATION_RULES)
        rules_rendered = yaml.safe_dump(got["spec"]).count(VALIDATION_RULES)
        rules_seen += rules_in_repo
        if not validation_rules:
            want = _without_validation_rules(want)
            if rules_rendered:
                _fail(r, f"{want['metadata']['name']} keeps {VALIDATION_RULES}, which this Kubernetes rejects")
        elif rules_rendered != rules_in_repo:
            _fail(r, f"{want['metadata']['name']} has {rules_rendered} {VALIDATION_RULES}, crds/ has {rules_in_repo}")
        if got["spec"] != want["spec"]:
            _fail(r, f"rendered CRD {want['metadata']['name']} differs from {path}")
        if got["metadata"].get("labels", {}).get("app.kubernetes.io/managed-by") != "Helm":
            _fail(r, f"rendered CRD {want['metadata']['name']} lacks the chart's labels")
    if rules_seen == 0:
        _fail(r, f"crds/ has no {VALIDATION_RULES}; the CEL-stripping check tests nothing")
