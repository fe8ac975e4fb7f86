//! Who may send requests to the gateway's user-facing endpoints (`/mcp/…`, `/oauth/status`,
//! `/oauth/start`, `/oauth/logout`): the `Host` the request was addressed to, the `Origin` a
//! browser names, and the Fetch Metadata (`Sec-Fetch-Site`, `Sec-Fetch-Mode`) it adds.
//!
//! - **Host** (DNS rebinding): a page on `evil.example` whose name an attacker re-points at the
//!   gateway's address makes the browser send `Host: evil.example`. Only the public URL's
//!   `host[:port]`, the listen address (an IP literal on the listen port; `localhost` when the
//!   gateway listens on loopback or on every interface) and `--allowed-hosts` are accepted. A
//!   request without `Host` (HTTP/1.0 tools) is accepted: browsers always send it, so refusing
//!   it protects nobody. HTTP/2's `:authority` is checked the same way.
//! - **Origin** (the MCP Streamable HTTP transport requires servers to validate it): absent is
//!   fine (non-browser clients); present, it must be the public URL's origin or one of
//!   `--allowed-origins`. `Origin: null` (sandboxed frames, privacy-sensitive redirects) is
//!   refused: it could be anyone.
//! - **Fetch Metadata**: `same-origin`, `none` (typed, bookmarked, opened from another app) or
//!   absent (not a browser, or one without Fetch Metadata) pass. A `same-site` or `cross-site`
//!   request passes only with an allowed `Origin`. Without one, a browser sent it on behalf of
//!   some other page (a `text/plain` form post, an `<img>`, a `no-cors` fetch, a frame): refused
//!   — except a top-level `GET` navigation (a link the user followed), reported as
//!   [`Site::CrossSiteNavigation`] for the route to decide (read-only pages show; `/oauth/start`
//!   asks for confirmation; `/mcp/…` refuses).

use super::AppState;
use crate::flows::routes::Site;
use crate::flows::routes::page::{Page, no_store, prefers_html};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use url::Url;

/// What the checks allow, built once at start-up.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    /// Serialized origins (`scheme://host[:port]`, lowercase, default port omitted).
    origins: Vec<String>,
    /// The public URL's host (IPv6 in brackets) and port (explicit or the scheme's default).
    public_host: String,
    public_port: u16,
    /// Extra `host` (any port) or `host:port` entries.
    extra_hosts: Vec<(String, Option<u16>)>,
    listen: Option<SocketAddr>,
}

/// A setting value that is not an origin or a host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("allowed origin {0:?} is not an origin (scheme://host[:port], no path, not \"null\")")]
    BadOrigin(String),
    #[error("allowed host {0:?} is not a host or host:port")]
    BadHost(String),
}

/// Why a request was refused. The message is shown to the client: it names what to fix and
/// never echoes the request's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the request's Host is not this gateway's public host (requests for other host names are refused to stop DNS rebinding)"
    )]
    ForeignHost,
    #[error(
        "requests from this Origin are refused (it is neither the gateway's own origin nor one of --allowed-origins)"
    )]
    ForeignOrigin,
    #[error("requests with `Origin: null` are refused")]
    NullOrigin,
    #[error(
        "cross-site requests are refused (the browser marked this request as sent by another site)"
    )]
    CrossSite,
}

impl OriginPolicy {
    /// The policy of a gateway at `public_url` listening on `listen`, with extra origins and
    /// hosts from the settings.
    pub fn new(
        public_url: &Url,
        listen: Option<SocketAddr>,
        extra_origins: &[String],
        extra_hosts: &[String],
    ) -> Result<Self, PolicyError> {
        let mut policy = Self::for_public_url(public_url);
        policy.listen = listen;
        for o in extra_origins
            .iter()
            .map(|o| o.trim())
            .filter(|o| !o.is_empty())
        {
            // `https://portal.example.org/` is a common way to write an origin.
            let origin = o.strip_suffix('/').unwrap_or(o);
            let parsed =
                parse_origin(origin).ok_or_else(|| PolicyError::BadOrigin(o.to_owned()))?;
            policy.origins.push(parsed);
        }
        for h in extra_hosts
            .iter()
            .map(|h| h.trim())
            .filter(|h| !h.is_empty())
        {
            let parsed = parse_authority(h).ok_or_else(|| PolicyError::BadHost(h.to_owned()))?;
            policy.extra_hosts.push(parsed);
        }
        Ok(policy)
    }

    /// Only the public URL (no listen address, no extras). A public URL without a host (`serve`
    /// refuses one) matches no `Host` and only its own opaque origin, which no browser sends.
    pub fn for_public_url(public_url: &Url) -> Self {
        let origin = public_url.origin();
        Self {
            origins: if origin.is_tuple() {
                vec![origin.ascii_serialization()]
            } else {
                Vec::new()
            },
            public_host: public_url
                .host_str()
                .unwrap_or_default()
                .to_ascii_lowercase(),
            public_port: public_url.port_or_known_default().unwrap_or(0),
            extra_hosts: Vec::new(),
            listen: None,
        }
    }

    fn host_allowed(&self, host: &str, port: Option<u16>) -> bool {
        if !self.public_host.is_empty()
            && host == self.public_host
            && port.unwrap_or(self.public_port) == self.public_port
        {
            return true;
        }
        if self
            .extra_hosts
            .iter()
            .any(|(h, p)| h == host && p.is_none_or(|p| port == Some(p)))
        {
            return true;
        }
        let Some(listen) = self.listen else {
            return false;
        };
        // Straight to the listener the client speaks plain HTTP: no port means 80.
        if port.unwrap_or(80) != listen.port() {
            return false;
        }
        let unspecified = listen.ip().is_unspecified();
        if host == "localhost" {
            return unspecified || listen.ip().is_loopback();
        }
        // A DNS-rebinding page always names a host, never an IP literal; an IP literal is the
        // address itself.
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        match literal.parse::<IpAddr>() {
            Ok(ip) => unspecified || ip == listen.ip(),
            Err(_) => false,
        }
    }
}

/// `scheme://host[:port]` exactly as browsers serialize it, or `None`.
fn parse_origin(s: &str) -> Option<String> {
    let url = Url::parse(s).ok()?;
    let origin = url.origin();
    if !origin.is_tuple() {
        return None;
    }
    let serialized = origin.ascii_serialization();
    serialized.eq_ignore_ascii_case(s).then_some(serialized)
}

/// `host` or `host:port` (no user info, no path), host lowercased.
fn parse_authority(s: &str) -> Option<(String, Option<u16>)> {
    if s.contains(['@', '/', '?', '#']) || s.is_empty() {
        return None;
    }
    let auth: axum::http::uri::Authority = s.parse().ok()?;
    let host = auth.host();
    if host.is_empty() {
        return None;
    }
    // `Authority` is lenient about what follows the host; only `:<u16>` or nothing is a port.
    let port = match s.get(host.len()..)? {
        "" => None,
        rest => Some(rest.strip_prefix(':')?.parse::<u16>().ok()?),
    };
    Some((host.to_ascii_lowercase(), port))
}

/// The one value of header `name`: `Ok(None)` when absent, `Err` when repeated or not text.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ()> {
    let mut all = headers.get_all(name).iter();
    let Some(first) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(());
    }
    first.to_str().map(|v| Some(v.trim())).map_err(|_| ())
}

/// The checks of the module docs, on one request.
pub fn check(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    policy: &OriginPolicy,
) -> Result<Site, Refusal> {
    let host = single(headers, header::HOST.as_str()).map_err(|()| Refusal::ForeignHost)?;
    for authority in host.into_iter().chain(uri.authority().map(|a| a.as_str())) {
        let (h, p) = parse_authority(authority).ok_or(Refusal::ForeignHost)?;
        if !policy.host_allowed(&h, p) {
            return Err(Refusal::ForeignHost);
        }
    }

    let origin = single(headers, header::ORIGIN.as_str()).map_err(|()| Refusal::ForeignOrigin)?;
    let origin_allowed = match origin {
        None => false,
        Some(o) if o.eq_ignore_ascii_case("null") => return Err(Refusal::NullOrigin),
        Some(o) => {
            let o = parse_origin(o).ok_or(Refusal::ForeignOrigin)?;
            if !policy.origins.contains(&o) {
                return Err(Refusal::ForeignOrigin);
            }
            true
        }
    };

    let site = single(headers, "sec-fetch-site").map_err(|()| Refusal::CrossSite)?;
    match site.map(str::to_ascii_lowercase).as_deref() {
        None | Some("same-origin") | Some("none") => Ok(Site::Trusted),
        Some("same-site") | Some("cross-site") if origin_allowed => Ok(Site::Trusted),
        Some("same-site") | Some("cross-site") => {
            let mode = single(headers, "sec-fetch-mode").map_err(|()| Refusal::CrossSite)?;
            let dest = single(headers, "sec-fetch-dest").map_err(|()| Refusal::CrossSite)?;
            // Top level only: a foreign page's frame (`iframe`, `object`, `embed`) navigates
            // too, without the user choosing to come here.
            let navigation = mode.is_some_and(|m| m.eq_ignore_ascii_case("navigate"))
                && dest.is_none_or(|d| d.eq_ignore_ascii_case("document"));
            if navigation && (method == Method::GET || method == Method::HEAD) {
                Ok(Site::CrossSiteNavigation)
            } else {
                Err(Refusal::CrossSite)
            }
        }
        Some(_) => Err(Refusal::CrossSite),
    }
}

/// Middleware for `/mcp/…`: a refused request gets a JSON-RPC error; a cross-site navigation
/// is refused too (opening the URL would reach the upstream with the caller's credentials).
pub(super) async fn guard_mcp(State(app): State<AppState>, req: Request, next: Next) -> Response {
    match check(req.method(), req.uri(), req.headers(), &app.origin) {
        Ok(Site::Trusted) => next.run(req).await,
        Ok(Site::CrossSiteNavigation) => mcp_refusal(Refusal::CrossSite),
        Err(r) => mcp_refusal(r),
    }
}

/// Middleware for the browser endpoints: a refused request gets a page (browsers) or JSON; a
/// request that passes carries its [`Site`] as an extension for the handler.
pub(super) async fn guard_browser(
    State(app): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    match check(req.method(), req.uri(), req.headers(), &app.origin) {
        Ok(site) => {
            req.extensions_mut().insert(site);
            next.run(req).await
        }
        Err(r) => {
            tracing::warn!(path = %req.uri().path(), reason = %r, "request refused by the origin checks");
            page_refusal(r, prefers_html(req.headers()))
        }
    }
}

fn mcp_refusal(r: Refusal) -> Response {
    tracing::warn!(reason = %r, "MCP request refused by the origin checks");
    let body = crate::gateway::jsonrpc::error_response(
        None,
        crate::gateway::jsonrpc::INVALID_REQUEST,
        &r.to_string(),
        None,
    );
    no_store((StatusCode::FORBIDDEN, Json(body)).into_response())
}

fn page_refusal(r: Refusal, html: bool) -> Response {
    let resp = if html {
        Page {
            status: StatusCode::FORBIDDEN,
            title: "Request refused",
            message: &r.to_string(),
            detail: Some("Open the gateway's own address in your browser instead."),
            link: None,
        }
        .into_response()
    } else {
        (
            StatusCode::FORBIDDEN,
            Json(serde_json::json!({"error": "forbidden", "error_description": r.to_string()})),
        )
            .into_response()
    };
    no_store(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    fn policy() -> OriginPolicy {
        OriginPolicy::new(
            &Url::parse("https://gw.example.com/prefix").expect("url"),
            Some("127.0.0.1:8080".parse().expect("addr")),
            &["https://portal.example.org".to_owned()],
            &["gateway.team.svc:8080".to_owned(), "internal-gw".to_owned()],
        )
        .expect("policy")
    }

    fn req(method: &Method, pairs: &[(&'static str, &str)]) -> Result<Site, Refusal> {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("header"));
        }
        check(method, &Uri::from_static("/mcp/a/b"), &h, &policy())
    }

    fn get(pairs: &[(&'static str, &str)]) -> Result<Site, Refusal> {
        req(&Method::GET, pairs)
    }

    #[test]
    fn hosts_are_the_public_one_the_listener_and_the_extras() {
        for ok in [
            "gw.example.com",
            "GW.example.com",
            "gw.example.com:443",
            "127.0.0.1:8080",
            "localhost:8080",
            "gateway.team.svc:8080",
            "internal-gw",
            "internal-gw:9999",
        ] {
            assert_eq!(get(&[("host", ok)]), Ok(Site::Trusted), "{ok}");
        }
        for bad in [
            "evil.example",
            "gw.example.com:8443",
            "gw.example.com.",
            "gw.example.com.evil.example",
            "127.0.0.1",
            "127.0.0.2:8080",
            "gateway.team.svc",
            "user@gw.example.com",
            "gw.example.com/x",
            "",
        ] {
            assert_eq!(get(&[("host", bad)]), Err(Refusal::ForeignHost), "{bad}");
        }
        assert_eq!(
            get(&[("host", "gw.example.com"), ("host", "gw.example.com")]),
            Err(Refusal::ForeignHost),
            "two Host headers"
        );
        assert_eq!(get(&[]), Ok(Site::Trusted), "no Host: not a browser");
    }

    #[test]
    fn the_http2_authority_is_checked_too() {
        let h = HeaderMap::new();
        let ok = Uri::from_static("https://gw.example.com/mcp/a/b");
        let bad = Uri::from_static("https://evil.example/mcp/a/b");
        assert_eq!(check(&Method::POST, &ok, &h, &policy()), Ok(Site::Trusted));
        assert_eq!(
            check(&Method::POST, &bad, &h, &policy()),
            Err(Refusal::ForeignHost)
        );
    }

    #[test]
    fn every_ip_on_the_listen_port_when_listening_everywhere() {
        let p = OriginPolicy::new(
            &Url::parse("https://gw.example.com").expect("url"),
            Some("0.0.0.0:8080".parse().expect("addr")),
            &[],
            &[],
        )
        .expect("policy");
        let host = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("host", HeaderValue::from_str(v).expect("header"));
            check(&Method::GET, &Uri::from_static("/"), &h, &p)
        };
        assert_eq!(host("10.1.2.3:8080"), Ok(Site::Trusted));
        assert_eq!(host("[fd00::1]:8080"), Ok(Site::Trusted));
        assert_eq!(host("localhost:8080"), Ok(Site::Trusted));
        assert_eq!(host("10.1.2.3:9090"), Err(Refusal::ForeignHost));
        assert_eq!(host("rebind.evil.example:8080"), Err(Refusal::ForeignHost));
    }

    #[test]
    fn origins_are_the_public_one_and_the_extras() {
        assert_eq!(
            get(&[("origin", "https://gw.example.com")]),
            Ok(Site::Trusted)
        );
        assert_eq!(
            get(&[("origin", "https://portal.example.org")]),
            Ok(Site::Trusted)
        );
        for bad in [
            "https://evil.example",
            "http://gw.example.com",
            "https://gw.example.com:8443",
            "https://gw.example.com/prefix",
            "https://gw.example.com.evil.example",
            "not a url",
            "",
        ] {
            assert_eq!(
                get(&[("origin", bad)]),
                Err(Refusal::ForeignOrigin),
                "{bad:?}"
            );
        }
        assert_eq!(get(&[("origin", "null")]), Err(Refusal::NullOrigin));
        assert_eq!(
            get(&[
                ("origin", "https://gw.example.com"),
                ("origin", "https://evil.example")
            ]),
            Err(Refusal::ForeignOrigin)
        );
    }

    #[test]
    fn cross_site_needs_an_allowed_origin_or_is_a_get_navigation() {
        let post = |pairs: &[(&'static str, &str)]| req(&Method::POST, pairs);
        assert_eq!(
            post(&[("sec-fetch-site", "same-origin")]),
            Ok(Site::Trusted)
        );
        assert_eq!(post(&[("sec-fetch-site", "none")]), Ok(Site::Trusted));
        // The reproduced attack: a `text/plain` form post from another site. Browsers send its
        // Origin, but even a request without one is refused by its Fetch Metadata.
        assert_eq!(
            post(&[
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://evil.example")
            ]),
            Err(Refusal::ForeignOrigin)
        );
        assert_eq!(
            post(&[
                ("sec-fetch-site", "cross-site"),
                ("sec-fetch-mode", "navigate")
            ]),
            Err(Refusal::CrossSite)
        );
        assert_eq!(
            post(&[("sec-fetch-site", "same-site")]),
            Err(Refusal::CrossSite)
        );
        assert_eq!(
            get(&[
                ("sec-fetch-site", "cross-site"),
                ("sec-fetch-mode", "no-cors")
            ]),
            Err(Refusal::CrossSite),
            "an <img> or no-cors fetch"
        );
        assert_eq!(
            get(&[
                ("sec-fetch-site", "cross-site"),
                ("sec-fetch-mode", "navigate")
            ]),
            Ok(Site::CrossSiteNavigation)
        );
        assert_eq!(
            get(&[
                ("sec-fetch-site", "cross-site"),
                ("sec-fetch-mode", "navigate"),
                ("sec-fetch-dest", "document")
            ]),
            Ok(Site::CrossSiteNavigation)
        );
        assert_eq!(
            get(&[
                ("sec-fetch-site", "cross-site"),
                ("sec-fetch-mode", "navigate"),
                ("sec-fetch-dest", "iframe")
            ]),
            Err(Refusal::CrossSite),
            "a foreign page's frame"
        );
        assert_eq!(
            post(&[
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://portal.example.org")
            ]),
            Ok(Site::Trusted),
            "an allowed origin may call cross-site"
        );
        assert_eq!(
            get(&[("sec-fetch-site", "sideways")]),
            Err(Refusal::CrossSite)
        );
    }

    #[test]
    fn settings_are_validated() {
        let public = Url::parse("https://gw.example.com").expect("url");
        for bad in [
            "https://x.example/path",
            "null",
            "x.example",
            "https://x.example//",
        ] {
            assert!(
                matches!(
                    OriginPolicy::new(&public, None, &[bad.to_owned()], &[]),
                    Err(PolicyError::BadOrigin(_))
                ),
                "{bad}"
            );
        }
        for bad in ["a@b", "x/y", "x:", "x:port"] {
            assert!(
                matches!(
                    OriginPolicy::new(&public, None, &[], &[bad.to_owned()]),
                    Err(PolicyError::BadHost(_))
                ),
                "{bad}"
            );
        }
        assert!(OriginPolicy::new(&public, None, &[" ".to_owned()], &[String::new()]).is_ok());
        assert!(OriginPolicy::new(&public, None, &["https://x.example/".to_owned()], &[]).is_ok());
    }

    proptest! {
        /// Any header values: a typed answer, never a panic; a foreign host never passes.
        #[test]
        fn arbitrary_headers_get_a_typed_answer(
            host in proptest::option::of("[ -~]{0,40}"),
            origin in proptest::option::of("[ -~]{0,40}"),
            site in proptest::option::of("[a-z-]{0,12}"),
            mode in proptest::option::of("[a-z-]{0,12}"),
            post in any::<bool>(),
        ) {
            let mut h = HeaderMap::new();
            for (name, value) in [("host", &host), ("origin", &origin), ("sec-fetch-site", &site), ("sec-fetch-mode", &mode)] {
                if let Some(v) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                    h.insert(name, v);
                }
            }
            let method = if post { Method::POST } else { Method::GET };
            let verdict = check(&method, &Uri::from_static("/mcp/a/b"), &h, &policy());
            if let Some(host) = h.get("host").and_then(|v| v.to_str().ok()) {
                let lower = host.trim().to_ascii_lowercase();
                let known = ["gw.example.com", "gw.example.com:443", "127.0.0.1:8080", "localhost:8080", "gateway.team.svc:8080"];
                if verdict.is_ok() && !known.contains(&lower.as_str()) {
                    prop_assert!(lower.starts_with("internal-gw"), "{host:?} passed");
                }
            }
            if post {
                prop_assert_ne!(verdict, Ok(Site::CrossSiteNavigation));
            }
        }

        /// A foreign origin is refused whatever else the request says.
        #[test]
        fn foreign_origins_never_pass(name in "[a-z]{1,12}", site in proptest::option::of("(same-origin|none|cross-site|same-site)")) {
            prop_assume!(name != "gw");
            let origin = format!("https://{name}.example.com");
            let mut pairs = vec![("origin", origin.as_str())];
            if let Some(s) = site.as_deref() {
                pairs.push(("sec-fetch-site", s));
            }
            prop_assert_eq!(req(&Method::POST, &pairs), Err(Refusal::ForeignOrigin));
        }
    }
}
