//! Smoke test of the Kubernetes test harness: the real kube-apiserver (v1.20) serves our CRDs,
//! enforces their OpenAPI schema, accepts server-side-applied status from a typed kube client,
//! and comes back after a restart with the objects intact.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use kube::api::{Patch, PatchParams};
use mcp_oauth_operator::crd::{API_VERSION, AuthMode, RemoteMCPServer, condition};
use serde_json::json;
use testkit::kube::KubeApi;

const NAMESPACE: &str = "smoke";
const FIELD_MANAGER: &str = "kube-smoke";

fn remote_mcp_server_yaml(name: &str, url: &str) -> String {
    format!(
        "apiVersion: {API_VERSION}
kind: RemoteMCPServer
metadata:
  name: {name}
  namespace: {NAMESPACE}
spec:
  url: {url}
  auth:
    mode: none
"
    )
}

fn ready_condition(server: &RemoteMCPServer) -> Option<&Condition> {
    server
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == condition::READY)
}

#[tokio::test]
async fn apiserver_serves_crds_schema_status_and_survives_restart() {
    let mut kube = KubeApi::start().await;
    kube.install_crds().await;
    kube.create_namespace(NAMESPACE).await;
    let api: Api<RemoteMCPServer> = Api::namespaced(kube.client(), NAMESPACE);

    // Applied with kubectl, read back typed.
    kube.apply_yaml(&remote_mcp_server_yaml(
        "demo",
        "https://mcp.example.com/mcp",
    ))
    .await;
    let demo = api
        .get("demo")
        .await
        .expect("get the applied RemoteMCPServer");
    assert_eq!(demo.spec.url, "https://mcp.example.com/mcp");
    assert_eq!(demo.spec.auth.mode, AuthMode::None);
    assert!(demo.status.is_none(), "a new resource has no status");

    // The OpenAPI schema's `pattern` is enforced by the server. (A URL as short as "ftp://x"
    // would be refused by `minLength: 8` first, which 1.20 then reports alone.)
    let rejected = kube
        .try_apply_yaml(&remote_mcp_server_yaml("bad", "ftp://mcp.example.com/mcp"))
        .await;
    let stderr = String::from_utf8_lossy(&rejected.stderr);
    assert!(!rejected.status.success(), "ftp URL accepted: {stderr}");
    assert!(
        stderr.contains("spec.url in body should match '^https?://'"),
        "unexpected rejection: {stderr}"
    );
    let missing = api.get_opt("bad").await.expect("look up the rejected one");
    assert!(missing.is_none(), "the rejected resource was stored");

    // Server-side apply of the status subresource.
    let status = json!({
        "apiVersion": API_VERSION,
        "kind": "RemoteMCPServer",
        "status": {
            "observedGeneration": demo.metadata.generation,
            "endpoint": "https://gateway.example.com/mcp/smoke/demo",
            "conditions": [{
                "type": condition::READY,
                "status": "True",
                "reason": "Registered",
                "message": "registered",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
                "observedGeneration": demo.metadata.generation,
            }],
        },
    });
    let patched = api
        .patch_status(
            "demo",
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&status),
        )
        .await
        .expect("server-side apply of the status");
    let ready = ready_condition(&patched).expect("Ready condition after the status apply");
    assert_eq!(ready.status, "True");
    assert_eq!(ready.reason, "Registered");
    let managers: Vec<_> = patched
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|entry| entry.manager.as_deref())
        .collect();
    assert!(
        managers.contains(&FIELD_MANAGER),
        "field manager missing: {managers:?}"
    );

    // After a restart the same client works and the objects are still there (same etcd).
    kube.restart_apiserver().await;
    let after = api
        .get("demo")
        .await
        .expect("get after the apiserver restart");
    assert_eq!(after.spec.url, "https://mcp.example.com/mcp");
    assert_eq!(
        after.status.as_ref().and_then(|s| s.endpoint.as_deref()),
        Some("https://gateway.example.com/mcp/smoke/demo")
    );
    assert_eq!(
        ready_condition(&after).map(|c| c.status.as_str()),
        Some("True")
    );
    let listed = kube
        .kubectl_ok(&["get", "rms", "-n", NAMESPACE, "-o", "name"])
        .await;
    assert_eq!(listed.trim(), "remotemcpserver.mcpoauth.dev/demo");
}
