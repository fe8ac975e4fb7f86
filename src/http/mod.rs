//! The HTTP server: one router for the OAuth browser flow, the Client ID Metadata Document,
//! health, readiness and metrics. Handlers are thin; the work happens in [`crate::manager`].

mod callback;
mod cimd;
mod connect;
mod health;
mod logout;
mod metrics;
mod origin;
mod pages;
mod protected_resource;
mod query;
mod rate_limit;
mod redirect;
mod security_headers;
mod status;

pub use health::Readiness;
pub use origin::{OriginPolicy, PolicyError as OriginPolicyError};
pub use pages::escape_html;
pub use rate_limit::{Cidr, CidrError, IpRateLimiter, RateLimit, client_ip};

use crate::identity::Authenticator;
use crate::manager::Manager;
use axum::Router;
use axum::routing::get;
use std::sync::Arc;

/// Name stem of the cookies that bind a flow to the browser that opened its link (one cookie
/// per flow; see `connect.rs`).
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
    /// Which `Host`, `Origin` and cross-site requests the user-facing endpoints accept.
    pub origin: Arc<OriginPolicy>,
}

impl AppState {
    pub fn new(
        manager: Arc<Manager>,
        identity: Arc<Authenticator>,
        readiness: Arc<Readiness>,
        rate: RateLimit,
        gateway: Arc<crate::gateway::Gateway>,
    ) -> Self {
        let origin = Arc::new(OriginPolicy::for_public_url(&manager.config().public_url));
        Self {
            origin,
            manager,
            identity,
            readiness,
            limiter: Arc::new(IpRateLimiter::new(rate)),
            gateway,
        }
    }

    /// Replace the origin policy (the default allows the public URL only).
    pub fn with_origin_policy(mut self, policy: OriginPolicy) -> Self {
        self.origin = Arc::new(policy);
        self
    }
}

/// `/metrics` alone, for its own listener (`--metrics-listen`), so a public Ingress in front of
/// the main port never exposes it.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .with_state(state)
}

/// Whether the public URL's path can be served as a route prefix: empty, or `/`-separated
/// non-empty segments of unreserved characters and percent-escapes (the router would read `{`,
/// `}` or `*` as parameters, and an empty segment matches nothing a browser sends).
pub fn check_base_path(public_url: &url::Url) -> Result<(), String> {
    let base = public_url.path().trim_end_matches('/');
    let ok = base.is_empty()
        || base.split('/').skip(1).all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "public URL path {base:?} cannot be a route prefix: use segments of letters, digits and -._~"
        ))
    }
}

/// The public URL's path without its trailing `/`: empty at the root, else like `/gw`.
fn base_path(state: &AppState) -> String {
    state
        .manager
        .config()
        .public_url
        .path()
        .trim_end_matches('/')
        .to_owned()
}

/// The complete router. Serve it with `into_make_service_with_connect_info::<SocketAddr>()`
/// so the rate limiter sees client addresses.
///
/// A public URL with a path (`https://example.com/gw`) is served both under that path (an
/// Ingress that passes `/gw/…` through) and at the root (one that strips the prefix); the links,
/// cookies and redirect URI the gateway hands out always carry the prefix. The RFC 9728
/// location with the path inserted after the host (`/.well-known/oauth-protected-resource/gw/mcp/…`)
/// is served as well, for an Ingress that routes it to the gateway.
pub fn router(state: AppState) -> Router {
    let base = base_path(&state);
    let app = routes(&state);
    // `serve` refuses a public URL whose path fails this check; an embedding that did not is
    // served at the root only rather than panicking in the router.
    let app = if base.is_empty() || check_base_path(&state.manager.config().public_url).is_err() {
        app
    } else {
        let inserted = format!("{}{base}", crate::identity::PROTECTED_RESOURCE_PATH);
        Router::new()
            .nest(&base, app.clone())
            .merge(app)
            .route(&inserted, get(protected_resource::gateway))
            .route(
                &format!("{inserted}/mcp/{{namespace}}/{{name}}"),
                get(protected_resource::server),
            )
    };
    app.with_state(state)
}

/// Every route, relative to the public URL's path.
fn routes(state: &AppState) -> Router<AppState> {
    let guard_browser =
        || axum::middleware::from_fn_with_state(state.clone(), origin::guard_browser);
    // Connect and callback are top-level navigations from other sites (the MCP client's link,
    // the authorization server's redirect), which the checks let through; what they refuse
    // there is a foreign Host and a cross-site subresource load (`<img src=…/oauth/connect…>`).
    let limited = Router::new()
        .route("/oauth/connect", get(connect::connect))
        .route("/oauth/callback", get(callback::callback))
        .route(
            crate::manager::START_PATH,
            get(status::start).post(status::start_confirmed),
        )
        .route_layer(guard_browser())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit::limit,
        ));
    let guarded = Router::new()
        .route("/oauth/status", get(status::status))
        .route("/oauth/logout", get(logout::confirm).post(logout::logout))
        .route_layer(guard_browser());
    let mcp = crate::gateway::routes(state.gateway.clone()).route_layer(
        axum::middleware::from_fn_with_state(state.clone(), origin::guard_mcp),
    );
    Router::new()
        .merge(limited)
        .merge(guarded)
        .route(crate::oauth::CIMD_PATH, get(cimd::document))
        .route(
            crate::identity::PROTECTED_RESOURCE_PATH,
            get(protected_resource::gateway),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp/{namespace}/{name}",
            get(protected_resource::server),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .fallback(pages::not_found)
        .layer(security_headers::layer())
        .layer(tower_http::limit::RequestBodyLimitLayer::new(64 * 1024))
        // After the layers: the gateway enforces its own (configurable) body limit with a
        // JSON-RPC error, and its JSON/SSE responses need none of the page headers.
        .merge(mcp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_paths_that_cannot_be_route_prefixes_are_refused() {
        let check = |u: &str| check_base_path(&url::Url::parse(u).expect("url"));
        for ok in [
            "https://x.example",
            "https://x.example/",
            "https://x.example/gw",
            "https://x.example/gw/",
            "https://x.example/a/b-c_d.e~f%20",
            // The URL parser escapes braces, so they are literal to the router.
            "https://x.example/{x}",
        ] {
            assert!(check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://x.example//gw",
            "https://x.example/gw//x",
            "https://x.example/a*b",
            "https://x.example/a:b",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
