//! `/metrics` in the Prometheus/OpenMetrics text format.

use super::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

pub(super) async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
}
