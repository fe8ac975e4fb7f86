//! The HTTP server: one router for the OAuth browser flow, the Client ID Metadata Document,
//! health, readiness and metrics. Handlers are thin; the work happens in [`crate::manager`].

mod callback;
mod cimd;
mod connect;
mod health;
mod metrics;
mod pages;
mod query;
mod rate_limit;
mod security_headers;

pub use health::Readiness;
pub use pages::escape_html;
pub use rate_limit::{IpRateLimiter, RateLimit};

use crate::identity::Authenticator;
use crate::manager::Manager;
use axum::Router;
use axum::routing::get;
use std::sync::Arc;

/// Name of the cookie that binds a flow to the browser that opened its link.
pub const BROWSER_COOKIE: &str = "mcpoauth_browser";

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub manager: Arc<Manager>,
    pub identity: Arc<Authenticator>,
    pub readiness: Arc<Readiness>,
    pub limiter: Arc<IpRateLimiter>,
}

impl AppState {
    pub fn new(
        manager: Arc<Manager>,
        identity: Arc<Authenticator>,
        readiness: Arc<Readiness>,
        rate: RateLimit,
    ) -> Self {
        Self {
            manager,
            identity,
            readiness,
            limiter: Arc::new(IpRateLimiter::new(rate)),
        }
    }

    /// Cookies get `Secure` when browsers reach us over HTTPS.
    fn secure_cookies(&self) -> bool {
        self.manager.config().public_url.scheme() == "https"
    }
}

/// The complete router. Serve it with `into_make_service_with_connect_info::<SocketAddr>()`
/// so the rate limiter sees client addresses.
pub fn router(state: AppState) -> Router {
    let limited = Router::new()
        .route("/oauth/connect", get(connect::connect))
        .route("/oauth/callback", get(callback::callback))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit::limit,
        ));
    Router::new()
        .merge(limited)
        .route(crate::oauth::CIMD_PATH, get(cimd::document))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .fallback(pages::not_found)
        .layer(security_headers::layer())
        .layer(tower_http::limit::RequestBodyLimitLayer::new(64 * 1024))
        .with_state(state)
}
