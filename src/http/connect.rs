//! `GET /oauth/connect?flow=…`: bind the browser (cookie), then 302 to the authorization server.

use super::pages::Page;
use super::redirect::redirect;
use super::{AppState, BROWSER_COOKIE, query};
use crate::manager::ConnectError;
use crate::store::BrowserBinding;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use base64::Engine as _;
use rand::RngCore as _;

/// Lifetime of the binding cookie: as long as a flow lives.
const COOKIE_MAX_AGE_SECS: i64 = crate::store::FLOW_TTL_SECS as i64;

pub(super) async fn connect(
    State(app): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    RawQuery(raw): RawQuery,
) -> Response {
    let flow = match query::parse(raw.as_deref()) {
        Ok(mut q) => q.remove("flow"),
        Err(_) => None,
    };
    let Some(flow) = flow else {
        return error_page(&ConnectError::MalformedFlow);
    };
    // Reuse this browser's secret if it has one, so several flows can run in one browser.
    let secret = jar
        .get(BROWSER_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| valid_secret(v))
        .unwrap_or_else(new_secret);
    let binding = BrowserBinding::from_cookie_secret(&secret);
    let next = match app.identity.sign_in() {
        // `oidc` with a sign-in client: the browser proves whose it is first.
        Some(oidc) => app.manager.begin_sign_in(&flow, binding, oidc).await,
        None => {
            let browser_user = app.identity.browser_user(&headers);
            app.manager
                .begin_connect(&flow, binding, browser_user)
                .await
        }
    };
    match next {
        Ok(url) => {
            let cookie = Cookie::build((BROWSER_COOKIE, secret))
                .path("/oauth")
                .http_only(true)
                .same_site(SameSite::Lax)
                .secure(app.secure_cookies())
                .max_age(time_duration(COOKIE_MAX_AGE_SECS))
                .build();
            (jar.add(cookie), redirect(&url)).into_response()
        }
        Err(e) => {
            tracing::info!(error = %e, "connect refused");
            error_page(&e)
        }
    }
}

fn time_duration(secs: i64) -> time::Duration {
    time::Duration::seconds(secs)
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
    Page {
        status,
        title: "Cannot start sign-in",
        message,
        detail: None,
        link: None,
    }
    .into_response()
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
}
