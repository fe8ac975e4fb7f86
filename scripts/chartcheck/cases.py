"""The values the chart is rendered with, what each render must contain, and values it must refuse."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .helm import CheckFailed
from .manifests import Rendered, container, env

RELEASE = "mcp"
NAMESPACE = "mcp-system"
FULLNAME = f"{RELEASE}-mcp-oauth-operator"
PUBLIC_URL = "https://mcp-gateway.example.com"
MONITORING_API = "monitoring.coreos.com/v1"
HEADERS = {"userHeader": "X-Forwarded-User", "sessionHeader": "X-Session-Id"}
OIDC = {"mode": "oidc", "oidc": {"issuer": "https://idp.example.com", "audience": "mcp-gateway"}}
PROXY_PEERS = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "oauth2-proxy"}}}]


@dataclass
class Case:
    """One render: values, extra API versions the cluster pretends to have, and checks."""

    name: str
    values: dict[str, Any]
    checks: list[Callable[[Rendered], None]] = field(default_factory=list)
    api_versions: list[str] = field(default_factory=list)
    watch_namespaces: list[str] = field(default_factory=list)
    crds_installed: bool = True
    rbac: bool = True
    # Kubernetes version the render pretends; default: the one schemas are validated against.
    kube_version: str | None = None


@dataclass
class Rejected:
    """Values the chart must refuse at render time; `reason` must appear in Helm's error."""

    name: str
    values: dict[str, Any]
    reason: str


def key_secret_from_api(values: dict[str, Any]) -> str | None:
    """The key ring Secret the pods read through the API server (encryption.source: api, the
    default), or None when there is none or it is mounted instead."""
    encryption = values.get("encryption", {})
    if encryption.get("source", "api") != "api":
        return None
    if encryption.get("create"):
        return f"{FULLNAME}-encryption"
    return encryption.get("existingSecret") or None


def _check(cond: bool, r: Rendered, message: str) -> None:
    if not cond:
        raise CheckFailed(f"[{r.case}] {message}")


def _load(path: Path) -> dict[str, Any]:
    values = yaml.safe_load(path.read_text())
    if not isinstance(values, dict):
        raise CheckFailed(f"{path} must hold a mapping of values")
    return values


# --- per-case checks -------------------------------------------------------------------------


def _default(r: Rendered) -> None:
    e = env(r.one("Deployment"))
    _check(e.get("MCPOAUTH_PUBLIC_URL") == PUBLIC_URL, r, f"MCPOAUTH_PUBLIC_URL is {e.get('MCPOAUTH_PUBLIC_URL')!r}")
    _check(e.get("MCPOAUTH_LISTEN") == "0.0.0.0:8080", r, "the operator must listen on 0.0.0.0:8080")
    _check("MCPOAUTH_NAMESPACES" not in e, r, "default must watch all namespaces (MCPOAUTH_NAMESPACES unset)")
    _check(e.get("MCPOAUTH_LEADER_ELECTION_NAMESPACE") == NAMESPACE, r, "leases belong in the release namespace")
    _check(
        e.get("POD_NAMESPACE") == {"fieldRef": {"fieldPath": "metadata.namespace"}},
        r,
        "POD_NAMESPACE must come from the downward API",
    )
    _check(e.get("MCPOAUTH_STORE") == "memory" and e.get("MCPOAUTH_IDENTITY") == "oidc", r, "defaults changed")
    _check("MCPOAUTH_ALLOW_ANONYMOUS_IDENTITY" not in e, r, "anonymous identity is never allowed by default")
    _check(e.get("MCPOAUTH_METRICS_LISTEN") == "0.0.0.0:9090", r, "/metrics must have its own listener")
    _check(r.one("Deployment")["spec"]["replicas"] == 2, r, "default replicas must be 2")
    _check(container(r.one("Deployment"))["image"] == "mcp-oauth-operator:0.1.0", r, "image defaults to appVersion")
    pdb = r.one("PodDisruptionBudget")
    _check(pdb["apiVersion"] == "policy/v1", r, f"PDB must use policy/v1 where available, got {pdb['apiVersion']}")
    _check(not any(k.startswith("MCPOAUTH_VALKEY") for k in e), r, "memory store must not configure Valkey")
    optional = [k for k in ("Ingress", "NetworkPolicy", "ServiceMonitor", "Secret") if r.all(k)]
    _check(not optional, r, f"optional objects must default off, found {optional}")
    svc = r.one("Service")
    _check(svc["spec"]["ports"][0]["targetPort"] == "http", r, "Service must target the http port")
    svc_ports = {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]}
    _check(svc_ports.get("metrics") == (9090, "metrics"), r, f"Service must carry the metrics port: {svc_ports}")
    _check("WARNING: store=memory with 2 replicas" in r.notes, r, "NOTES must warn about memory store with replicas")
    _check(f"{PUBLIC_URL}/mcp/<namespace>/<name>" in r.notes, r, "NOTES must say how MCP clients connect")
    _check("kind: RemoteMCPServer" in r.notes, r, "NOTES must show how to create a RemoteMCPServer")


def _valkey(r: Rendered) -> None:
    d = r.one("Deployment")
    e = env(d)
    _check(e.get("MCPOAUTH_STORE") == "valkey", r, "store must be valkey")
    _check(e.get("MCPOAUTH_IDENTITY") == "oidc", r, "the HA example identifies callers with oidc")
    _check(e.get("MCPOAUTH_OIDC_CLIENT_ID") == "mcp-gateway-browser", r, "the HA example has browsers sign in")
    _check(e.get("MCPOAUTH_VALKEY_URL", "").startswith("rediss://"), r, "Valkey URL must be passed")
    _keys_from_api(r, "mcp-oauth-keys")
    mounts = {m["name"]: m["mountPath"] for m in container(d)["volumeMounts"]}
    _check(
        e.get("MCPOAUTH_VALKEY_PASSWORD_FILE") == f"{mounts.get('valkey-password')}/password",
        r,
        "password file must be the mounted Secret's key",
    )
    _check(e.get("MCPOAUTH_VALKEY_TLS_CA_FILE") == f"{mounts.get('valkey-ca')}/ca.crt", r, "CA file must be mounted")
    volumes = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
    _check(volumes["valkey-password"]["secret"]["secretName"] == "valkey-auth", r, "password Secret name")
    _check(r.one("Ingress")["spec"]["rules"][0]["host"] == "mcp-gateway.example.com", r, "ingress host from publicUrl")
    _check("WARNING: store=memory" not in r.notes, r, "no memory-store warning with valkey")
    _check("WARNING: identity.mode=oidc" not in r.notes, r, "no sign-in warning with a sign-in client")


def _namespaced(r: Rendered) -> None:
    e = env(r.one("Deployment"))
    _check(e.get("MCPOAUTH_NAMESPACES") == "team-a,team-b", r, f"MCPOAUTH_NAMESPACES is {e.get('MCPOAUTH_NAMESPACES')!r}")
    _check(not r.all("PodDisruptionBudget"), r, "no PDB with one replica")
    _check(e.get("MCPOAUTH_LOG_FORMAT") == "text", r, "logFormat must be passed")


def _everything(r: Rendered) -> None:
    d = r.one("Deployment")
    e = env(d)
    _check(container(d)["image"].endswith("@sha256:" + "0123456789abcdef" * 4), r, "digest must pin the image")
    _check(e.get("MCPOAUTH_IDENTITY") == "oidc", r, "identity mode oidc")
    _check(e.get("MCPOAUTH_OIDC_ISSUER") == "https://dex.example.com", r, "OIDC issuer must be passed")
    _check(e.get("MCPOAUTH_OIDC_AUDIENCE") == "mcp-gateway", r, "OIDC audience must be passed")
    _check(e.get("MCPOAUTH_OIDC_CLIENT_ID") == "mcp-gateway-browser", r, "OIDC sign-in client must be passed")
    mounts = {m["name"]: m["mountPath"] for m in container(d)["volumeMounts"]}
    _check(
        e.get("MCPOAUTH_OIDC_CLIENT_SECRET_FILE") == f"{mounts.get('oidc-client')}/client-secret",
        r,
        "the sign-in client secret file must be the mounted Secret's key",
    )
    volumes = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
    _check(volumes["oidc-client"]["secret"]["secretName"] == "mcp-gateway-oidc", r, "sign-in client Secret name")
    _check(e.get("MCPOAUTH_VALKEY_TOPOLOGY") == "sentinel", r, "Valkey topology")
    _check(e.get("MCPOAUTH_VALKEY_SENTINEL_SERVICE") == "mymaster", r, "sentinel service")
    _keys_from_api(r, "mcp-oauth-keys")
    _check(e.get("MCPOAUTH_OUTBOUND_TIMEOUT_SECS") == "10", r, "extraEnv must be appended")
    _check(e.get("MCPOAUTH_TRUSTED_PROXIES") == "10.0.0.0/8,fd00::/8", r, "trustedProxies must be passed")
    sm = r.one("ServiceMonitor")
    endpoint = sm["spec"]["endpoints"][0]
    _check(endpoint["path"] == "/metrics" and endpoint["port"] == "metrics", r, "ServiceMonitor scrapes the metrics port")
    ingress_ports = [
        p["service"]["port"]
        for rule in r.one("Ingress")["spec"]["rules"]
        for path in rule["http"]["paths"]
        for p in [path["backend"]]
    ]
    _check(all(p.get("name") == "http" or p.get("number") == 8080 for p in ingress_ports), r, f"the Ingress routes only to http: {ingress_ports}")
    _check(sm["metadata"]["labels"].get("release") == "prometheus", r, "ServiceMonitor labels")
    np = r.one("NetworkPolicy")
    _check(np["spec"]["policyTypes"] == ["Ingress", "Egress"], r, "NetworkPolicy restricts both directions")
    egress_ports = {p["port"] for rule in np["spec"]["egress"] for p in rule.get("ports", [])}
    _check({53, 443, 6379, 8443} <= egress_ports, r, f"egress ports {sorted(map(str, egress_ports))}")
    ipv4_any = [
        peer["ipBlock"]
        for rule in np["spec"]["egress"]
        if {"port": 443, "protocol": "TCP"} in rule.get("ports", [])
        for peer in rule.get("to", [])
        if peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0"
    ]
    _check(
        len(ipv4_any) == 1 and "169.254.0.0/16" in ipv4_any[0].get("except", []),
        r,
        "HTTPS egress must exclude the cloud metadata range",
    )
    _check(np["spec"]["ingress"][0]["ports"] == [{"port": "http", "protocol": "TCP"}], r, "ingress only to the http port")
    _check(
        [rule["ports"] for rule in np["spec"]["ingress"]] == [[{"port": "http", "protocol": "TCP"}], [{"port": "metrics", "protocol": "TCP"}]],
        r,
        "ingress only to the http and metrics ports",
    )
    _check(r.one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1, r, "PDB maxUnavailable")


def _no_monitoring_api(r: Rendered) -> None:
    _check(not r.all("ServiceMonitor"), r, "ServiceMonitor must be skipped without the monitoring.coreos.com/v1 API")
    _check("no ServiceMonitor was created" in r.notes, r, "NOTES must say the ServiceMonitor was skipped")


def _keys_from_api(r: Rendered, secret: str) -> None:
    """The key ring Secret is named to the operator (read through the API server), not mounted."""
    d = r.one("Deployment")
    e = env(d)
    _check(e.get("MCPOAUTH_ENCRYPTION_KEY_SECRET") == secret, r, f"--encryption-key-secret must name {secret}")
    _check("MCPOAUTH_ENCRYPTION_KEY_FILE" not in e, r, "a key ring read through the API server is not also a file")
    volumes = [v["name"] for v in d["spec"]["template"]["spec"]["volumes"]]
    _check("encryption-keys" not in volumes, r, "the key ring Secret must not be mounted with source: api")
    _check(f'Secret "{secret}"' in r.notes and "without a restart" in r.notes, r, "NOTES must say where keys come from")


def _dev_key(r: Rendered) -> None:
    secret = r.one("Secret")
    keys = sorted(secret["data"])
    _check(keys == ["dev", "primary"], r, f"dev key ring must hold primary + dev, has {keys}")
    _keys_from_api(r, secret["metadata"]["name"])
    annotations = r.one("Deployment")["spec"]["template"]["metadata"].get("annotations", {})
    _check("checksum/encryption" not in annotations, r, "a key ring read through the API server needs no pod roll")
    _check("WARNING: encryption.create=true" in r.notes, r, "NOTES must warn about the dev key")


def _mounted_keys(r: Rendered) -> None:
    d = r.one("Deployment")
    e = env(d)
    _check(e.get("MCPOAUTH_ENCRYPTION_KEY_FILE") == "/etc/mcp-oauth-operator/encryption-keys", r, "mounted key ring must be passed")
    _check("MCPOAUTH_ENCRYPTION_KEY_SECRET" not in e, r, "a mounted key ring is not also read through the API server")
    keys_volume = [v for v in d["spec"]["template"]["spec"]["volumes"] if v["name"] == "encryption-keys"]
    _check(keys_volume and keys_volume[0]["secret"]["secretName"] == "mcp-oauth-keys", r, "the key ring volume is the named Secret")
    mounts = {m["name"]: m for m in container(d)["volumeMounts"]}
    _check(mounts.get("encryption-keys", {}).get("readOnly") is True, r, "the key ring is mounted read-only")
    _check("is mounted at /etc/mcp-oauth-operator/encryption-keys" in r.notes, r, "NOTES must say the keys are mounted")


def _mounted_dev_key(r: Rendered) -> None:
    annotations = r.one("Deployment")["spec"]["template"]["metadata"].get("annotations", {})
    _check("checksum/encryption" in annotations, r, "pods must roll when the mounted dev key changes")


def _header(r: Rendered) -> None:
    e = env(r.one("Deployment"))
    _check(e.get("MCPOAUTH_IDENTITY") == "header", r, "identity mode header")
    _check(e.get("MCPOAUTH_IDENTITY_USER_HEADER") == "X-Forwarded-User", r, "user header must be passed")
    _check(e.get("MCPOAUTH_IDENTITY_SESSION_HEADER") == "X-Session-Id", r, "session header must be passed")
    _check("WARNING: identity.mode=anonymous" not in r.notes, r, "no anonymous warning in header mode")
    # Whoever reaches the port names the user: the NetworkPolicy is on without being asked for,
    # and admits only the proxy to the gateway port.
    np = r.one("NetworkPolicy")
    _check(np["spec"]["ingress"][0]["from"] == PROXY_PEERS, r, f"gateway port only from the proxy: {np['spec']['ingress'][0]}")
    _check("must be the only client that reaches it" in r.notes, r, "NOTES must explain the trusted proxy")


def _header_without_network_policy(r: Rendered) -> None:
    _check(not r.all("NetworkPolicy"), r, "networkPolicy.enabled=false is honoured")
    _check("WARNING: networkPolicy.enabled=false with identity.mode=header" in r.notes, r, "NOTES must warn")


def _anonymous(r: Rendered) -> None:
    e = env(r.one("Deployment"))
    _check(e.get("MCPOAUTH_IDENTITY") == "anonymous", r, "identity mode anonymous")
    _check(e.get("MCPOAUTH_ALLOW_ANONYMOUS_IDENTITY") == "true", r, "`run` needs the explicit allow flag")
    _check("WARNING: identity.mode=anonymous" in r.notes, r, "NOTES must warn about anonymous")


def _bring_your_own(r: Rendered) -> None:
    _check(not r.all("ServiceAccount"), r, "serviceAccount.create=false must not render a ServiceAccount")
    spec = r.one("Deployment")["spec"]["template"]["spec"]
    _check(spec["serviceAccountName"] == "existing-sa", r, "existing ServiceAccount must be used")
    _check("NOTE: crds.install=false" in r.notes, r, "NOTES must mention that CRDs are not installed")


def _oidc_without_sign_in(r: Rendered) -> None:
    e = env(r.one("Deployment"))
    _check("MCPOAUTH_OIDC_CLIENT_ID" not in e, r, "no sign-in client unless configured")
    _check("WARNING: identity.mode=oidc without identity.oidc.clientId" in r.notes, r, "NOTES must warn")
    _check(f"{PUBLIC_URL}/oauth/callback" in r.notes, r, "NOTES must name the redirect URI to register")


# --- the cases ----------------------------------------------------------------------------


def render_cases(root: Path) -> list[Case]:
    chart = root / "charts" / "mcp-oauth-operator"
    examples = root / "examples" / "helm"
    base = {"publicUrl": PUBLIC_URL, "identity": OIDC}
    everything = _load(chart / "ci" / "all-features-values.yaml")
    namespaced = _load(examples / "values-namespaced.yaml")
    return [
        Case("default", base, [_default]),
        Case("values-valkey", _load(examples / "values-valkey.yaml"), [_valkey]),
        Case("values-namespaced", namespaced, [_namespaced], watch_namespaces=namespaced["watchNamespaces"]),
        Case("all-features", everything, [_everything], [MONITORING_API], everything["watchNamespaces"]),
        Case(
            "all-features-without-monitoring-api",
            everything,
            [_no_monitoring_api],
            watch_namespaces=everything["watchNamespaces"],
        ),
        # CRD validation rules (CEL) are left out below 1.25, where the CRD schema rejects them.
        Case("kube-1.20", base, kube_version="1.20.2"),
        Case("dev-key", {**base, "replicas": 1, "encryption": {"create": True, "key": "A" * 43 + "="}}, [_dev_key]),
        Case(
            "mounted-keys",
            {**base, "store": "valkey", "valkey": {"url": "redis://valkey:6379"}, "encryption": {"existingSecret": "mcp-oauth-keys", "source": "mount"}},
            [_mounted_keys],
        ),
        Case(
            "mounted-dev-key",
            {**base, "replicas": 1, "encryption": {"create": True, "key": "A" * 43 + "=", "source": "mount"}},
            [_mounted_dev_key],
        ),
        Case(
            "header-identity",
            {**base, "identity": {"mode": "header", "header": HEADERS}, "networkPolicy": {"ingressFrom": PROXY_PEERS}},
            [_header],
        ),
        Case(
            "header-identity-without-network-policy",
            {**base, "identity": {"mode": "header", "header": HEADERS}, "networkPolicy": {"enabled": False}},
            [_header_without_network_policy],
        ),
        Case("anonymous-identity", {**base, "identity": {"mode": "anonymous"}}, [_anonymous]),
        Case(
            "oidc-without-sign-in",
            {**base, "identity": {"mode": "oidc", "oidc": {"issuer": "https://idp.example.com", "audience": "gw"}}},
            [_oidc_without_sign_in],
        ),
        Case(
            "bring-your-own",
            {
                **base,
                "crds": {"install": False},
                "rbac": {"create": False},
                "serviceAccount": {"create": False, "name": "existing-sa"},
            },
            [_bring_your_own],
            crds_installed=False,
            rbac=False,
        ),
    ]


def rejected_cases() -> list[Rejected]:
    base = {"publicUrl": PUBLIC_URL, "identity": OIDC}
    valkey = {**base, "store": "valkey", "valkey": {"url": "redis://valkey:6379"}}
    sentinel = {
        **valkey,
        "valkey": {"url": "redis://sentinel:26379", "topology": "sentinel"},
        "encryption": {"existingSecret": "keys"},
    }
    return [
        Rejected("missing publicUrl", {}, "missing property 'publicUrl'"),
        Rejected("publicUrl not a URL", {"publicUrl": "mcp-gateway.example.com"}, "/publicUrl"),
        Rejected("unknown store", {**base, "store": "redis"}, "/store"),
        Rejected("unknown top-level key", {**base, "replicaCount": 3}, "additional properties 'replicaCount'"),
        Rejected("unknown identity mode", {**base, "identity": {"mode": "basic"}}, "/identity/mode"),
        Rejected("default identity without issuer", {"publicUrl": PUBLIC_URL}, "identity.mode is oidc (the default): set identity.oidc.issuer"),
        Rejected("oidc without issuer", {**base, "identity": {"mode": "oidc", "oidc": {"audience": "gw"}}}, "set identity.oidc.issuer"),
        Rejected("oidc without audience", {**base, "identity": {"mode": "oidc", "oidc": {"issuer": "https://idp.example.com"}}}, "identity.oidc.audience"),
        Rejected("header without user header", {**base, "identity": {"mode": "header"}}, "/identity/header/userHeader"),
        Rejected(
            "header without the proxy named",
            {**base, "identity": {"mode": "header", "header": HEADERS}},
            "set networkPolicy.ingressFrom to select only the authenticating proxy",
        ),
        Rejected("trusted proxy not an address", {**base, "trustedProxies": ["ingress-nginx"]}, "/trustedProxies/0"),
        Rejected("unknown log format", {**base, "logFormat": "xml"}, "/logFormat"),
        Rejected("latest image tag", {**base, "image": {"repository": "x", "tag": "latest"}}, "/image/tag"),
        Rejected("zero replicas", {**base, "replicas": 0}, "/replicas"),
        Rejected("valkey without URL", {**base, "store": "valkey"}, "/valkey/url"),
        Rejected("valkey URL scheme", {**base, "store": "valkey", "valkey": {"url": "http://valkey"}}, "/valkey/url"),
        Rejected("valkey without keys", valkey, "store: valkey needs an encryption key ring"),
        Rejected("unknown key ring source", {**base, "encryption": {"existingSecret": "k", "source": "file"}}, "/encryption/source"),
        Rejected("dev key without key", {**base, "encryption": {"create": True}}, "/encryption/key"),
        Rejected("dev key too short", {**base, "encryption": {"create": True, "key": "c2hvcnQ="}}, "/encryption/key"),
        Rejected("plain http public URL", {**base, "publicUrl": "http://mcp-gateway.example.com"}, "publicUrl must be https://"),
        Rejected("bad namespace name", {**base, "watchNamespaces": ["Team_A"]}, "/watchNamespaces/0"),
        Rejected("sentinel without service", sentinel, "valkey.sentinelService"),
        Rejected(
            "oidc client secret without client",
            {**base, "identity": {"mode": "oidc", "oidc": {"issuer": "https://idp.example.com", "audience": "gw", "clientSecretSecret": "s"}}},
            "identity.oidc.clientSecretSecret needs identity.oidc.clientId",
        ),
    ]
