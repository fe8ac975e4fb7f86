//! The gateway's own RFC 9728 protected-resource metadata, served in `oidc` identity mode so
//! MCP clients that got a 401 from `/mcp/{namespace}/{name}` learn where to log in. Other modes
//! have no authorization server for clients, so the documents do not exist there (404).

use super::AppState;
use crate::flows::routes::page;
use crate::identity::{OidcAuthenticator, resource_for};
use crate::registry::ServerKey;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use url::Url;

/// How long clients may cache the document.
const CACHE_CONTROL: &str = "public, max-age=300";

/// RFC 9728 §2 metadata of one resource.
#[derive(Debug, Serialize)]
pub struct ProtectedResourceDocument {
    pub resource: String,
    pub authorization_servers: Vec<String>,
    pub bearer_methods_supported: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
}

impl ProtectedResourceDocument {
    /// The document of `request_path` (`/mcp/{ns}/{name}`, or empty for the gateway itself).
    pub fn new(public_url: &Url, request_path: &str, oidc: &OidcAuthenticator) -> Self {
        Self {
            resource: resource_for(public_url, request_path),
            authorization_servers: vec![oidc.issuer().to_owned()],
            bearer_methods_supported: vec!["header"],
            scopes_supported: oidc.scopes_supported().to_vec(),
        }
    }
}

/// `GET /.well-known/oauth-protected-resource`: the gateway as a whole.
pub(super) async fn gateway(State(state): State<AppState>) -> Response {
    document(&state, "").await
}

/// `GET /.well-known/oauth-protected-resource/mcp/{namespace}/{name}`: one registered server.
pub(super) async fn server(
    State(state): State<AppState>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let key = ServerKey::new(namespace.as_str(), name.as_str());
    if state.registry.server(&key).is_none() {
        return page::not_found().await;
    }
    // Registered names are Kubernetes names (DNS labels), safe in a URL path as they are.
    let path = format!("/mcp/{namespace}/{name}");
    document(&state, &path).await
}

async fn document(state: &AppState, request_path: &str) -> Response {
    let Some(oidc) = state.identity.oidc_validator() else {
        return page::not_found().await;
    };
    let public_url = &state.public_url;
    let doc = ProtectedResourceDocument::new(public_url, request_path, oidc);
    let mut resp = Json(doc).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    // Public metadata: browser-based MCP clients fetch it cross-origin.
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}
