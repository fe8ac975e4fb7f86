//! `GET /oauth/status`: the caller's per-server authorization status, as JSON (default) or as a
//! small HTML page when the client prefers `text/html` (a browser). `GET /oauth/start?server=
//! namespace/name`: the link the status offers for a server that needs authorization — creates
//! (or reuses: one pending flow per session and server) the flow, then 303 to `/oauth/connect`.

use super::page::{Page, escape_html, no_store, prefers_html};
use super::{FlowsApp, START_PATH, Site, query};
use crate::flows::{ChallengeError, ServerAuthStatus};
use crate::registry::ServerKey;
use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub(super) async fn status(State(app): State<FlowsApp>, headers: HeaderMap) -> Response {
    let caller = match app.identity.authenticate(&headers).await {
        Ok(a) => a.caller,
        Err(e) => {
            return crate::identity::unauthorized(
                &app.flows.config().public_url,
                "/oauth/status",
                &e,
            );
        }
    };
    let servers = match app.flows.auth_status(&caller).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "status unavailable");
            let body = serde_json::json!({
                "error": "temporarily_unavailable",
                "error_description": "the gateway's token storage is unavailable",
            });
            return no_store((StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response());
        }
    };
    let logout = app.flows.config().url_for("/oauth/logout").to_string();
    let resp = if prefers_html(&headers) {
        (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            render_html(&caller.user, &servers, &logout, crate::time::unix_now()),
        )
            .into_response()
    } else {
        Json(serde_json::json!({ "user": caller.user, "servers": servers })).into_response()
    };
    no_store(resp)
}

/// An expiry relative to `now`, for people: "in 9 min", "2 min ago".
fn relative(exp: u64, now: u64) -> String {
    let mins = |d: u64| d.div_ceil(60);
    if exp >= now {
        format!("in {} min", mins(exp - now))
    } else {
        format!("{} min ago", mins(now - exp))
    }
}

/// The status page: one table row per server; every value escaped.
fn render_html(user: &str, servers: &[ServerAuthStatus], logout: &str, now: u64) -> String {
    let mut rows = String::new();
    for s in servers {
        let state = if s.authorized {
            let mut t = "authorized".to_owned();
            if let Some(exp) = s.expires_at {
                t.push_str(&format!(", access token expires {}", relative(exp, now)));
            }
            if s.has_refresh_token {
                t.push_str(", refresh token present");
            }
            escape_html(&t)
        } else if let Some(link) = &s.connect_url {
            format!(
                "needs authorization: <a href=\"{}\">sign in</a>",
                escape_html(link)
            )
        } else {
            "no authorization needed".to_owned()
        };
        let error = s
            .error
            .as_deref()
            .map(|e| format!(" ({})", escape_html(e)))
            .unwrap_or_default();
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td></tr>",
            escape_html(&s.server),
            escape_html(s.mode),
            escape_html(s.issuer.as_deref().unwrap_or("")),
            state,
            error,
        ));
    }
    if servers.is_empty() {
        rows.push_str("<tr><td colspan=\"4\">No servers are registered.</td></tr>");
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>Authorization status</title></head><body><h1>Authorization status</h1><p>Signed in to the gateway as {}.</p><table><thead><tr><th>Server</th><th>Mode</th><th>Issuer</th><th>State</th></tr></thead><tbody>{rows}</tbody></table><p><a href=\"{}\">Sign out</a></p></body></html>",
        escape_html(user),
        escape_html(logout),
    )
}

/// `GET /oauth/start?server=…`. From the gateway's own pages, a typed address or a non-browser
/// client it starts the flow at once; when another site sent the browser here (a link on a
/// foreign page) nothing happens until the user confirms on a gateway page, whose form posts
/// back same-origin ([`start_confirmed`]).
pub(super) async fn start(
    State(app): State<FlowsApp>,
    site: Option<Extension<Site>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let server = query::parse(raw.as_deref())
        .ok()
        .and_then(|mut q| q.remove("server"));
    if site.is_some_and(|Extension(s)| s == Site::CrossSiteNavigation) {
        return match server.as_deref().and_then(parse_server_key) {
            Some(key) => confirm_start(&app, &key),
            None => start_failed(
                StatusCode::BAD_REQUEST,
                "The link must name one server as ?server=namespace/name.",
            ),
        };
    }
    start_flow(&app, &headers, server.as_deref()).await
}

/// `POST /oauth/start` with the form field `server`: the confirmation page's button. The origin
/// checks ran before (a cross-site post never gets here).
pub(super) async fn start_confirmed(
    State(app): State<FlowsApp>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let server = std::str::from_utf8(&body)
        .ok()
        .and_then(|form| query::parse(Some(form)).ok())
        .and_then(|mut q| q.remove("server"));
    start_flow(&app, &headers, server.as_deref()).await
}

/// The page asking whether to sign in to `server`; its form posts to `/oauth/start`.
fn confirm_start(app: &FlowsApp, server: &ServerKey) -> Response {
    let action = app.flows.config().url_for(START_PATH).to_string();
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>Sign in</title></head><body><h1>Sign in</h1><p>Another site sent you here. Sign in to {server} through the gateway?</p><form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"server\" value=\"{server}\"><button type=\"submit\">Sign in</button></form></body></html>",
        escape_html(&action),
        server = escape_html(&server.to_string()),
    );
    super::page::form_page(html)
}

/// Create (or reuse) the caller's flow for `server` and send the browser to its link.
async fn start_flow(app: &FlowsApp, headers: &HeaderMap, server: Option<&str>) -> Response {
    let caller = match app.identity.authenticate(headers).await {
        Ok(a) => a.caller,
        Err(e) => {
            return crate::identity::unauthorized(&app.flows.config().public_url, START_PATH, &e);
        }
    };
    let Some(server) = server.and_then(parse_server_key) else {
        return start_failed(
            StatusCode::BAD_REQUEST,
            "The link must name one server as ?server=namespace/name.",
        );
    };
    match app
        .flows
        .create_auth_challenge(&server, &caller, None)
        .await
    {
        Ok(challenge) => match HeaderValue::from_str(&challenge.auth_url) {
            Ok(loc) => no_store((StatusCode::SEE_OTHER, [(header::LOCATION, loc)]).into_response()),
            Err(_) => start_failed(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The sign-in link is invalid.",
            ),
        },
        Err(e) => {
            tracing::info!(server = %server, error = %e, "could not start a flow from the status page");
            let (status, message) = match &e {
                ChallengeError::UnknownServer(_) | ChallengeError::NotOAuth { .. } => (
                    StatusCode::NOT_FOUND,
                    "This server is not registered, or it does not use OAuth.",
                ),
                ChallengeError::Store(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The gateway's storage is unavailable. Try again in a moment.",
                ),
                _ => (
                    StatusCode::BAD_GATEWAY,
                    "The server's authorization server could not be determined or reached.",
                ),
            };
            start_failed(status, message)
        }
    }
}

/// `namespace/name` with both parts non-empty and no further `/`.
fn parse_server_key(s: &str) -> Option<ServerKey> {
    let (ns, name) = s.split_once('/')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains('/')).then(|| ServerKey::new(ns, name))
}

/// The page of a sign-in that could not start (shared by `/oauth/start` and `/oauth/connect`).
pub(super) fn start_failed(status: StatusCode, message: &str) -> Response {
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
    fn server_keys_parse_strictly() {
        assert_eq!(
            parse_server_key("team-a/github"),
            Some(ServerKey::new("team-a", "github"))
        );
        for bad in ["", "github", "/x", "x/", "a/b/c"] {
            assert_eq!(parse_server_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_page_escapes_every_value() {
        let s = ServerAuthStatus {
            server: "ns/<b>".into(),
            mode: "oauth",
            issuer: Some("https://idp/\"x".into()),
            authorized: false,
            expires_at: None,
            has_refresh_token: false,
            scopes: None,
            needs_authorization: true,
            connect_url: Some("https://gw/oauth/start?server=ns%2F%3Cb%3E&x=1".into()),
            error: Some("<script>".into()),
        };
        let html = render_html("<user>", &[s], "https://gw/oauth/logout", 0);
        assert!(!html.contains("<b>") && !html.contains("<script>") && !html.contains("<user>"));
        assert!(html.contains("ns/&lt;b&gt;"));
        assert!(html.contains("href=\"https://gw/oauth/start?server=ns%2F%3Cb%3E&amp;x=1\""));
        assert!(html.contains("&lt;user&gt;"));
    }

    #[test]
    fn expiry_is_relative() {
        assert_eq!(relative(1000 + 540, 1000), "in 9 min");
        assert_eq!(relative(1000, 1000 + 61), "2 min ago");
    }
}
