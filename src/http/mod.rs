//! The HTTP server: one router for the OAuth browser flow, the Client ID Metadata Document,
//! health, readiness and metrics. Handlers are thin; the work happens in [`crate::manager`].

mod callback;
mod cimd;
mod connect;
mod health;
mod logout;
mod metrics;
mod pages;
mod protected_resource;
mod query;
mod rate_limit;
mod redirect;
mod security_headers;
mod status;

pub use health::Readiness;
pub use pages::escape_html;
pub use rate_limit::{Cidr, CidrError, IpRateLimiter, RateLimit, client_ip};

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
    /// The proxy behind `/mcp/{namespace}/{name}`.
    pub gateway: Arc<crate::gateway::Gateway>,
}

impl AppState {
    pub fn new(
        manager: Arc<Manager>,
        identity: Arc<Authenticator>,
        readiness: Arc<Readiness>,
        rate: RateLimit,
        gateway: Arc<crate::gateway::Gateway>,
    ) -> Self {
        Self {
            manager,
            identity,
            readiness,
            limiter: Arc::new(IpRateLimiter::new(rate)),
            gateway,
        }
    }

    /// Cookies get `Secure` when browsers reach us over HTTPS.
    fn secure_cookies(&self) -> bool {
        self.manager.config().public_url.scheme() == "https"
    }
}

/// `/metrics` alone, for its own listener (`--metrics-listen`), so a public Ingress in front of
/// the main port never exposes it.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .with_state(state)
}

/// The complete router. Serve it with `into_make_service_with_connect_info::<SocketAddr>()`
/// so the rate limiter sees client addresses.
pub fn router(state: AppState) -> Router {
    let limited = Router::new()
        .route("/oauth/connect", get(connect::connect))
        .route("/oauth/callback", get(callback::callback))
        .route(crate::manager::START_PATH, get(status::start))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit::limit,
        ));
    Router::new()
        .merge(limited)
        .route(crate::oauth::CIMD_PATH, get(cimd::document))
        .route(
            crate::identity::PROTECTED_RESOURCE_PATH,
            get(protected_resource::gateway),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp/{namespace}/{name}",
            get(protected_resource::server),
        )
        .route("/oauth/status", get(status::status))
        .route("/oauth/logout", get(logout::confirm).post(logout::logout))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .fallback(pages::not_found)
        .layer(security_headers::layer())
        .layer(tower_http::limit::RequestBodyLimitLayer::new(64 * 1024))
        // After the layers: the gateway enforces its own (configurable) body limit with a
        // JSON-RPC error, and its JSON/SSE responses need none of the page headers.
        .route(
            "/mcp/{namespace}/{name}",
            axum::routing::any(crate::gateway::handler::proxy),
        )
        .with_state(state)
}
