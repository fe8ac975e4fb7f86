//! `/metrics` on a listener of its own (`--metrics-listen`), so an Ingress in front of the main
//! port never exposes it; the main listener then answers 404 there.

use super::StartError;
use crate::http::AppState;
use axum::response::IntoResponse as _;
use std::net::SocketAddr;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// With `--metrics-listen`: binds it and serves `/metrics` (only) there until `cancel`.
pub(super) async fn spawn_metrics_listener(
    listen: Option<SocketAddr>,
    state: &AppState,
    cancel: &CancellationToken,
) -> Result<Option<(SocketAddr, JoinHandle<()>)>, StartError> {
    let Some(listen) = listen else {
        return Ok(None);
    };
    let bind_err = |source| StartError::Bind {
        addr: listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(bind_err)?;
    let addr = listener.local_addr().map_err(bind_err)?;
    let app = crate::http::metrics_router(state.clone());
    let shutdown = cancel.clone();
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "metrics listener stopped with an error");
        }
    });
    tracing::info!(listen = %addr, "metrics listening");
    Ok(Some((addr, task)))
}

/// On the main listener when metrics have their own: `/metrics` is not found there.
pub(super) async fn metrics_elsewhere(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if req.uri().path() == "/metrics" {
        return axum::http::StatusCode::NOT_FOUND.into_response();
    }
    next.run(req).await
}
