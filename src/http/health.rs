//! `/healthz` (the process is alive) and `/readyz` (it can serve flows; says why not).

use super::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::RwLock;

/// Named readiness gates; ready when none is blocking.
#[derive(Debug, Default)]
pub struct Readiness {
    blocking: RwLock<BTreeMap<&'static str, String>>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Mark gate `name` as not ready, with a reason a human can act on.
    pub fn block(&self, name: &'static str, reason: impl Into<String>) {
        if let Ok(mut b) = self.blocking.write() {
            b.insert(name, reason.into());
        }
    }

    pub fn unblock(&self, name: &'static str) {
        if let Ok(mut b) = self.blocking.write() {
            b.remove(name);
        }
    }

    /// `None` when ready, else the reasons.
    pub fn reasons(&self) -> Option<Vec<String>> {
        let b = self.blocking.read().ok()?;
        (!b.is_empty()).then(|| b.iter().map(|(k, v)| format!("{k}: {v}")).collect())
    }
}

pub(super) async fn healthz() -> &'static str {
    "ok"
}

pub(super) async fn readyz(State(app): State<AppState>) -> Response {
    match app.readiness.reasons() {
        None => Json(json!({"status": "ready"})).into_response(),
        Some(reasons) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "reasons": reasons})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::Readiness;

    #[test]
    fn ready_only_when_no_gate_blocks() {
        let r = Readiness::new();
        assert!(r.reasons().is_none());
        r.block("manifests", "not loaded yet");
        assert_eq!(r.reasons(), Some(vec!["manifests: not loaded yet".into()]));
        r.unblock("manifests");
        assert!(r.reasons().is_none());
    }
}
