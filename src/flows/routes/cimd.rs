//! `/.well-known/oauth-client.json`: our Client ID Metadata Document. Its URL is our
//! `client_id` as a public client; authorization servers fetch it during a flow.

use super::FlowsApp;
use crate::flows::Flows;
use crate::oauth::ClientMetadataDocument;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

/// The document as JSON. Built per request because its `scope` grows with the scopes flows
/// request (authorization servers check requested scopes against it).
pub(super) fn document_json(flows: &Flows) -> String {
    let cfg = flows.config();
    let scope = flows.advertised_scope().unwrap_or_default();
    let mut doc = ClientMetadataDocument::new(&cfg.public_url, &scope);
    doc.client_name = cfg.client_name.clone();
    serde_json::to_string(&doc).unwrap_or_else(|_| "{}".to_owned())
}

pub(super) async fn document(State(app): State<FlowsApp>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            // May be stored, but must be revalidated: a stale copy could lack a new scope.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        document_json(&app.flows),
    )
}
