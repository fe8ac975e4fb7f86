//! Builders for the unit tests of this module.

use super::{PolicyObject, ServerObject};
use kube::core::DeserializeGuard;
use serde_json::json;

/// A `RemoteMCPServer` in `namespace` with `auth` given as JSON.
pub fn server(namespace: &str, name: &str, auth: &str) -> ServerObject {
    let auth: serde_json::Value = serde_json::from_str(auth).expect("auth JSON");
    serde_json::from_value::<DeserializeGuard<_>>(json!({
        "apiVersion": "mcpoauth.dev/v1alpha1",
        "kind": "RemoteMCPServer",
        "metadata": {"name": name, "namespace": namespace, "generation": 1, "uid": format!("uid-{namespace}-{name}")},
        "spec": {"url": "https://mcp.example.com/mcp", "auth": auth},
    }))
    .expect("server object")
}

/// A `TokenExchangePolicy` in `namespace`, reading client credentials from Secret `secret`.
pub fn policy(namespace: &str, name: &str, secret: Option<&str>) -> PolicyObject {
    let mut spec = json!({"tokenEndpoint": "https://idp.example.com/token"});
    if let Some(secret) = secret {
        spec["clientAuth"] = json!({"secretRef": {"name": secret}});
    }
    serde_json::from_value::<DeserializeGuard<_>>(json!({
        "apiVersion": "mcpoauth.dev/v1alpha1",
        "kind": "TokenExchangePolicy",
        "metadata": {"name": name, "namespace": namespace, "generation": 1, "uid": format!("uid-{namespace}-{name}")},
        "spec": spec,
    }))
    .expect("policy object")
}
