//! The browser flow's HTTP handlers: `/oauth/connect`, `/oauth/callback`, `/oauth/start`,
//! `/oauth/status`, `/oauth/logout` and our Client ID Metadata Document. They are thin: parse
//! the request, call [`Flows`], render a page or JSON.
//!
//! The routes come grouped by the protection each needs; [`crate::http`] adds it (origin
//! checks, the per-IP rate limit), so this module does not depend on the router.

mod callback;
mod cimd;
mod connect;
mod logout;
pub mod page;
mod query;
mod redirect;
mod status;

use super::Flows;
use crate::identity::Authenticator;
use axum::Router;
use axum::routing::get;
use std::sync::Arc;

/// Path of the endpoint that starts a flow for one server (`?server=namespace/name`).
pub const START_PATH: &str = "/oauth/start";

/// Name stem of the cookies that bind a flow to the browser that opened its link (one cookie
/// per flow; see `connect.rs`).
pub const BROWSER_COOKIE: &str = "mcpoauth_browser";

/// How a request relates to the gateway's own pages, as the origin checks in front of the
/// routes found it (a request extension; see `crate::http::origin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// Same origin, an allowed origin, typed by the user, or not from a browser.
    Trusted,
    /// A top-level `GET` navigation that another site started (a followed link): nothing may
    /// change state on it without the user confirming on a gateway page.
    CrossSiteNavigation,
}

/// What the handlers work with.
#[derive(Clone)]
struct FlowsApp {
    flows: Arc<Flows>,
    identity: Arc<Authenticator>,
}

/// The flow's routes, relative to the public URL's path, by the protection each group needs
/// (`S`: the state of the router they are merged into; they carry their own).
pub struct FlowRoutes<S = ()> {
    /// Connect, callback and start: top-level navigations from other sites (the MCP client's
    /// link, the authorization server's redirect) that start or finish a sign-in. They need
    /// the origin checks (a foreign `Host`, a cross-site subresource load) and the per-IP rate
    /// limit (a flood of callbacks must not grind the token endpoint or the stores).
    pub sign_in: Router<S>,
    /// The status and sign-out pages: they need the origin checks.
    pub account: Router<S>,
    /// The Client ID Metadata Document, which authorization servers fetch: public.
    pub public: Router<S>,
}

/// The routes of `flows`, authenticating callers with `identity`.
pub fn routes<S>(flows: Arc<Flows>, identity: Arc<Authenticator>) -> FlowRoutes<S>
where
    S: Clone + Send + Sync + 'static,
{
    let app = FlowsApp { flows, identity };
    FlowRoutes {
        sign_in: Router::new()
            .route("/oauth/connect", get(connect::connect))
            .route("/oauth/callback", get(callback::callback))
            .route(START_PATH, get(status::start).post(status::start_confirmed))
            .with_state(app.clone()),
        account: Router::new()
            .route("/oauth/status", get(status::status))
            .route("/oauth/logout", get(logout::confirm).post(logout::logout))
            .with_state(app.clone()),
        public: Router::new()
            .route(crate::oauth::CIMD_PATH, get(cimd::document))
            .with_state(app),
    }
}
