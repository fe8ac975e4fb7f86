//! `GET /oauth/connect?flow=…`: bind the browser (cookie), then 302 to the authorization server.
//!
//! Each flow gets its own cookie holding a secret the gateway minted for it; the flow stores
//! only the secret's digest. The cookie is `HttpOnly`, `SameSite=Lax` (the authorization
//! server's redirect back is a top-level navigation, which Lax cookies follow), scoped to the
//! public URL's path, and `__Host-` whenever the public URL is HTTPS at the root.

use super::redirect::redirect;
use super::{BROWSER_COOKIE, FlowsApp, query};
use crate::flows::ConnectError;
use crate::store::{BrowserBinding, FlowId};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum_extra::extract::cookie::{Cookie, SameSite};
use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use url::Url;

/// Lifetime of the binding cookie: as long as a flow lives.
const COOKIE_MAX_AGE_SECS: i64 = crate::store::FLOW_TTL_SECS as i64;

pub(super) async fn connect(
    State(app): State<FlowsApp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let flow = match query::parse(raw.as_deref()) {
        Ok(mut q) => q.remove("flow"),
        Err(_) => None,
    };
    let Some(id) = flow.as_deref().and_then(FlowId::parse) else {
        return error_page(&ConnectError::MalformedFlow);
    };
    let scope = CookieScope::of(&app.flows.config().public_url);
    let name = scope.name(&id);
    // A value the browser sends is kept only when the flow is already bound to it (this browser
    // opening its link again); anything else — a cookie planted by a sibling subdomain, a stale
    // one — is ignored and a fresh secret minted, so no one can know a binding in advance.
    let presented = presented_secrets(&headers, &name);
    let secret = match app.flows.bound_secret(&id, &presented).await {
        Ok(Some(s)) => s.to_owned(),
        Ok(None) => new_secret(),
        Err(e) => return error_page(&e),
    };
    let binding = BrowserBinding::from_cookie_secret(&secret);
    let next = match app.identity.sign_in() {
        // `oidc` with a sign-in client: the browser proves whose it is first.
        Some(oidc) => app.flows.begin_sign_in(id.as_str(), binding, oidc).await,
        None => {
            let browser_user = app.identity.browser_user(&headers);
            app.flows
                .begin_connect(id.as_str(), binding, browser_user)
                .await
        }
    };
    match next {
        Ok(url) => {
            let mut resp = redirect(&url);
            scope.set(&mut resp, &name, &secret, COOKIE_MAX_AGE_SECS);
            resp
        }
        Err(e) => {
            tracing::info!(error = %e, "connect refused");
            error_page(&e)
        }
    }
}

/// Most cookies of one name read from a request (a planted cookie with a longer path can sit
/// next to ours; more than this is junk).
const MAX_PRESENTED: usize = 4;

/// Where the flow cookies live, from the public URL: `__Host-` at an HTTPS root (Secure,
/// `Path=/`, no `Domain`: no sibling subdomain can set or shadow it); under a path prefix
/// `__Secure-` with `Path={prefix}/oauth`; plain HTTP (loopback) unprefixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CookieScope {
    prefix: &'static str,
    path: String,
    secure: bool,
}

impl CookieScope {
    pub(super) fn of(public_url: &Url) -> Self {
        let base = public_url.path().trim_end_matches('/');
        let secure = public_url.scheme() == "https";
        match (secure, base.is_empty()) {
            (true, true) => Self {
                prefix: "__Host-",
                path: "/".to_owned(),
                secure,
            },
            (true, false) => Self {
                prefix: "__Secure-",
                path: format!("{base}/oauth"),
                secure,
            },
            (false, _) => Self {
                prefix: "",
                path: format!("{base}/oauth"),
                secure,
            },
        }
    }

    /// The cookie of flow `id`: one per flow, so flows opened in parallel in one browser each
    /// keep their own secret (named by a digest: the flow id is the OAuth `state`).
    pub(super) fn name(&self, id: &FlowId) -> String {
        let digest = Sha256::digest(id.as_str().as_bytes());
        let short: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}{BROWSER_COOKIE}_{short}", self.prefix)
    }

    /// Add `Set-Cookie` for `name=value` (`max_age` 0 deletes it).
    pub(super) fn set(&self, resp: &mut Response, name: &str, value: &str, max_age: i64) {
        let cookie = Cookie::build((name.to_owned(), value.to_owned()))
            .path(self.path.clone())
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .max_age(time::Duration::seconds(max_age))
            .build();
        if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
}

/// Every well-formed value of cookie `name` in the request (at most [`MAX_PRESENTED`]).
pub(super) fn presented_secrets<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, v)| *n == name && valid_secret(v))
        .map(|(_, v)| v)
        .take(MAX_PRESENTED)
        .collect()
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn valid_secret(v: &str) -> bool {
    v.len() == 43
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn error_page(e: &ConnectError) -> Response {
    let (status, message) = match e {
        ConnectError::MalformedFlow | ConnectError::UnknownFlow => (
            StatusCode::BAD_REQUEST,
            "This sign-in link is invalid, expired or already used. Go back to your MCP client and retry the request to get a new link.",
        ),
        ConnectError::OtherBrowser => (
            StatusCode::BAD_REQUEST,
            "This sign-in link was already opened in another browser. Links cannot be shared: retry the request in your MCP client to get your own link.",
        ),
        ConnectError::OtherUser => (
            StatusCode::FORBIDDEN,
            "This sign-in link was started by another user. Links cannot be shared: retry the request in your MCP client to get your own link.",
        ),
        ConnectError::ServerGone => (
            StatusCode::NOT_FOUND,
            "The server this link was for is no longer configured.",
        ),
        ConnectError::Discovery(_) => (
            StatusCode::BAD_GATEWAY,
            "The authorization server could not be reached. Try again in a moment.",
        ),
        ConnectError::SignInUnavailable(_) => (
            StatusCode::BAD_GATEWAY,
            "The gateway's identity provider, where you sign in first, could not be reached. Try again in a moment.",
        ),
        ConnectError::Store(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The gateway's storage is unavailable. Try again in a moment.",
        ),
    };
    super::status::start_failed(status, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_valid_and_distinct() {
        let a = new_secret();
        let b = new_secret();
        assert!(valid_secret(&a) && valid_secret(&b));
        assert_ne!(a, b);
        assert!(!valid_secret("short"));
        assert!(!valid_secret(&format!("{}!", &a[..42])));
    }

    fn scope(u: &str) -> CookieScope {
        CookieScope::of(&Url::parse(u).expect("url"))
    }

    #[test]
    fn cookie_scope_follows_the_public_url() {
        let id = FlowId::generate();
        let root = scope("https://gw.example.com/");
        assert!(root.name(&id).starts_with("__Host-mcpoauth_browser_"));
        assert_eq!((root.path.as_str(), root.secure), ("/", true));
        let prefixed = scope("https://example.com/gw/");
        assert!(prefixed.name(&id).starts_with("__Secure-mcpoauth_browser_"));
        assert_eq!(
            (prefixed.path.as_str(), prefixed.secure),
            ("/gw/oauth", true)
        );
        let local = scope("http://127.0.0.1:8080");
        assert!(local.name(&id).starts_with("mcpoauth_browser_"));
        assert_eq!((local.path.as_str(), local.secure), ("/oauth", false));
        assert_ne!(
            local.name(&id),
            local.name(&FlowId::generate()),
            "one cookie per flow"
        );
    }

    #[test]
    fn set_cookie_has_the_scope_attributes() {
        let mut resp = Response::new(axum::body::Body::empty());
        scope("https://gw.example.com").set(&mut resp, "__Host-x", "v", 600);
        let raw = resp.headers()[header::SET_COOKIE].to_str().expect("ascii");
        for attr in [
            "__Host-x=v",
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Path=/",
            "Max-Age=600",
        ] {
            assert!(raw.contains(attr), "{attr}: {raw}");
        }
        assert!(!raw.contains("Domain"), "{raw}");
    }

    #[test]
    fn presented_secrets_reads_every_well_formed_value_of_the_name_only() {
        let a = new_secret();
        let b = new_secret();
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_str(&format!("x={a}; n={a};n=short; other={b}")).expect("header"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_str(&format!("n={b}")).expect("header"),
        );
        assert_eq!(presented_secrets(&h, "n"), vec![a.as_str(), b.as_str()]);
        assert!(presented_secrets(&h, "missing").is_empty());
    }

    proptest::proptest! {
        /// Any Cookie header: no panic, at most a few values, each a well-formed secret.
        #[test]
        fn arbitrary_cookie_headers_yield_few_well_formed_values(raw in "[ -~]{0,400}") {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&raw) {
                h.insert(header::COOKIE, v);
            }
            let got = presented_secrets(&h, "n");
            proptest::prop_assert!(got.len() <= MAX_PRESENTED);
            proptest::prop_assert!(got.iter().all(|v| valid_secret(v)));
        }
    }
}
