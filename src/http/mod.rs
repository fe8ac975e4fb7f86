//! The HTTP server: one router that mounts the browser flow's routes ([`crate::flows::routes`])
//! and the gateway's proxy, each behind the checks it needs, plus what is the router's own:
//! origin/host/Fetch-Metadata checks, the per-IP rate limit, security headers, health,
//! readiness, metrics and the protected-resource metadata.

mod health;
mod metrics;
mod origin;
mod protected_resource;
mod rate_limit;
mod security_headers;

pub use health::Readiness;
pub use origin::{OriginPolicy, PolicyError as OriginPolicyError};
pub use rate_limit::{Cidr, CidrError, IpRateLimiter, RateLimit, RouteLabel, client_ip};

use crate::flows::Flows;
use crate::flows::routes::page;
use crate::identity::Authenticator;
use crate::metrics::Metrics;
use crate::registry::Registry;
use axum::Router;
use axum::routing::get;
use std::sync::Arc;
use url::Url;

/// Shared state of the router's own handlers and middleware.
#[derive(Clone)]
pub struct AppState {
    /// Where browsers and clients reach the gateway (may carry a path prefix).
    pub public_url: Url,
    pub flows: Arc<Flows>,
    pub identity: Arc<Authenticator>,
    pub readiness: Arc<Readiness>,
    pub limiter: Arc<IpRateLimiter>,
    /// The proxy behind `/mcp/{namespace}/{name}`.
    pub gateway: Arc<crate::gateway::Gateway>,
    /// Which `Host`, `Origin` and cross-site requests the user-facing endpoints accept.
    pub origin: Arc<OriginPolicy>,
    /// The servers the protected-resource documents describe.
    pub registry: Arc<Registry>,
    /// Served at `/metrics`.
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// The state of a gateway whose flows run at `flows`' public URL. The rate limiter's
    /// metrics are registered in `metrics`.
    pub fn new(
        flows: Arc<Flows>,
        identity: Arc<Authenticator>,
        readiness: Arc<Readiness>,
        rate: RateLimit,
        gateway: Arc<crate::gateway::Gateway>,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let public_url = flows.config().public_url.clone();
        let origin = Arc::new(OriginPolicy::for_public_url(&public_url));
        let limiter = IpRateLimiter::new(rate);
        limiter.register_metrics(&metrics);
        Self {
            public_url,
            origin,
            flows,
            identity,
            readiness,
            limiter: Arc::new(limiter),
            gateway,
            registry,
            metrics,
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
    state.public_url.path().trim_end_matches('/').to_owned()
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
    let app = if base.is_empty() || check_base_path(&state.public_url).is_err() {
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
    let flows = crate::flows::routes(state.flows.clone(), state.identity.clone());
    // Connect and callback are top-level navigations from other sites (the MCP client's link,
    // the authorization server's redirect), which the checks let through; what they refuse
    // there is a foreign Host and a cross-site subresource load (`<img src=…/oauth/connect…>`).
    let limited = flows.sign_in.route_layer(guard_browser()).route_layer(
        axum::middleware::from_fn_with_state(state.clone(), rate_limit::limit),
    );
    let guarded = flows.account.route_layer(guard_browser());
    let mcp = crate::gateway::routes(state.gateway.clone()).route_layer(
        axum::middleware::from_fn_with_state(state.clone(), origin::guard_mcp),
    );
    Router::new()
        .merge(limited)
        .merge(guarded)
        .merge(flows.public)
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
        .fallback(page::not_found)
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
