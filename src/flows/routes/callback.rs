//! `GET /oauth/callback`: the authorization server's redirect back. The status code tells the
//! truth: 200 only when the token is stored; 4xx for a bad, replayed or foreign request; 5xx
//! when the authorization server or our storage failed.

use super::connect::{CookieScope, presented_secrets};
use super::page::Page;
use super::redirect::redirect;
use super::{FlowsApp, query};
use crate::flows::{CallbackError, CallbackParams, sign_in_flow};
use crate::oauth::TokenError;
use crate::store::{BrowserBinding, FlowId};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// Longest IdP-provided text shown on a page.
const MAX_SHOWN: usize = 200;

pub(super) async fn callback(
    State(app): State<FlowsApp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut q = match query::parse(raw.as_deref()) {
        Ok(q) => q,
        Err(dup) => {
            return Page {
                status: StatusCode::BAD_REQUEST,
                title: "Sign-in failed",
                message: "The authorization response is malformed (a parameter appears twice).",
                detail: Some(&format!("parameter: {}", truncate(&dup.0))),
                link: None,
            }
            .into_response();
        }
    };
    let params = CallbackParams {
        state: q.remove("state"),
        code: q.remove("code"),
        iss: q.remove("iss"),
        error: q.remove("error"),
        error_description: q.remove("error_description"),
    };
    // The flow's own cookie, named after the flow id that `state` carries (bare on the remote
    // leg, prefixed on the sign-in leg). A malformed state finds no cookie and is refused below.
    let flow = params
        .state
        .as_deref()
        .map(|s| sign_in_flow(s).unwrap_or(s))
        .and_then(FlowId::parse);
    let scope = CookieScope::of(&app.flows.config().public_url);
    let cookie = flow.as_ref().map(|id| scope.name(id));
    let presented = cookie
        .as_deref()
        .map(|name| presented_secrets(&headers, name))
        .unwrap_or_default();
    let binding = match &flow {
        Some(id) => {
            let user = app.identity.browser_user(&headers);
            match app.flows.callback_binding(id, &presented, user).await {
                Ok(b) => b,
                Err(e) => return failure_page(&e, None),
            }
        }
        None => None,
    };
    if params.state.as_deref().and_then(sign_in_flow).is_some() {
        return sign_in_callback(&app, params, binding).await;
    }
    match app.flows.complete_callback(params, binding).await {
        Ok(done) => {
            let mut resp = Page {
                status: StatusCode::OK,
                title: "Authorization complete",
                message: &format!(
                    "You are signed in to {}. You can close this window and retry the request in your MCP client.",
                    done.server
                ),
                detail: None,
                link: None,
            }
            .into_response();
            // The flow is spent: its cookie has nothing left to bind.
            if let Some(name) = &cookie {
                scope.set(&mut resp, name, "", 0);
            }
            resp
        }
        Err((e, retry)) => {
            let retry_url = retry.map(|id| app.flows.config().connect_url(id.as_str()));
            failure_page(&e, retry_url.as_ref().map(|u| u.as_str()))
        }
    }
}

/// The answer to a browser sign-in (`state` = `signin.` + flow id): on to the remote
/// authorization server, or a page saying why not.
async fn sign_in_callback(
    app: &FlowsApp,
    params: CallbackParams,
    binding: Option<BrowserBinding>,
) -> Response {
    let Some(oidc) = app.identity.sign_in() else {
        return failure_page(&CallbackError::MalformedState, None);
    };
    match app.flows.complete_sign_in(params, binding, oidc).await {
        Ok(url) => redirect(&url),
        Err(e) => {
            tracing::warn!(reason = e.reason(), error = %e, "browser sign-in failed");
            failure_page(&e, None)
        }
    }
}

fn failure_page(e: &CallbackError, retry: Option<&str>) -> Response {
    let status = status_for(e);
    let (message, detail): (&str, Option<String>) = match e {
        CallbackError::MissingState
        | CallbackError::MalformedState
        | CallbackError::MissingCode => (
            "The authorization response is incomplete or malformed. Retry the request in your MCP client to get a new link.",
            None,
        ),
        CallbackError::NoBrowserBinding | CallbackError::OtherBrowser => (
            "This sign-in was started in another browser (or this browser's sign-in cookie is missing). Open the link from your MCP client in this browser.",
            None,
        ),
        CallbackError::UnknownState => (
            "This sign-in is unknown, expired or already completed. Retry the request in your MCP client to get a new link.",
            None,
        ),
        CallbackError::Issuer(_) => (
            "The response did not come from the expected authorization server, so it was rejected. Retry the request in your MCP client.",
            None,
        ),
        CallbackError::AuthorizationDenied { error, description } => (
            "The authorization server did not grant access.",
            Some(match description {
                Some(d) => format!("{}: {}", truncate(error), truncate(d)),
                None => truncate(error),
            }),
        ),
        CallbackError::ServerGone => (
            "The server this sign-in was for is no longer configured.",
            None,
        ),
        CallbackError::UnboundFlow => (
            "This sign-in link was made before the gateway was upgraded and can no longer be completed. Retry the request in your MCP client to get a new link.",
            None,
        ),
        CallbackError::Discovery(_) => (
            "The authorization server's configuration could not be loaded. Try again in a moment.",
            None,
        ),
        CallbackError::TokenExchange(t) if t.is_invalid_grant() => (
            "The authorization code was refused by the authorization server (expired or already used). Retry the request in your MCP client.",
            None,
        ),
        CallbackError::TokenExchange(_) => (
            "The authorization server failed to issue a token. No token was stored.",
            None,
        ),
        CallbackError::Store(_) => (
            "The token could not be saved, so sign-in did not complete. Try again in a moment.",
            None,
        ),
        CallbackError::OtherUser => (
            "You signed in as a different user than the one who started this sign-in link. Links cannot be shared: retry the request in your own MCP client to get your own link.",
            None,
        ),
        CallbackError::SignIn(_) => (
            "Signing in at the gateway's identity provider failed, so the link was not followed. Try again in a moment; if it keeps failing, tell the gateway's operator (the gateway's log says why).",
            None,
        ),
    };
    Page {
        status,
        title: "Sign-in failed",
        message,
        detail: detail.as_deref(),
        link: retry.map(|u| (u, "Try again")),
    }
    .into_response()
}

/// The HTTP status for each failure.
pub(super) fn status_for(e: &CallbackError) -> StatusCode {
    match e {
        CallbackError::MissingState
        | CallbackError::MalformedState
        | CallbackError::NoBrowserBinding
        | CallbackError::UnknownState
        | CallbackError::OtherBrowser
        | CallbackError::Issuer(_)
        | CallbackError::MissingCode
        | CallbackError::UnboundFlow => StatusCode::BAD_REQUEST,
        CallbackError::AuthorizationDenied { error, .. } => match error.as_str() {
            "access_denied" => StatusCode::FORBIDDEN,
            "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            "server_error" => StatusCode::BAD_GATEWAY,
            _ => StatusCode::BAD_REQUEST,
        },
        CallbackError::ServerGone => StatusCode::NOT_FOUND,
        CallbackError::Discovery(_) => StatusCode::BAD_GATEWAY,
        CallbackError::TokenExchange(t) => match t {
            t if t.is_invalid_grant() => StatusCode::BAD_REQUEST,
            TokenError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        },
        CallbackError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        CallbackError::OtherUser => StatusCode::FORBIDDEN,
        CallbackError::SignIn(_) => StatusCode::BAD_GATEWAY,
    }
}

fn truncate(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_SHOWN).collect();
    if s.chars().count() > MAX_SHOWN {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idp_errors_map_to_truthful_statuses() {
        let denied = |e: &str| CallbackError::AuthorizationDenied {
            error: e.into(),
            description: None,
        };
        assert_eq!(status_for(&denied("access_denied")), StatusCode::FORBIDDEN);
        assert_eq!(
            status_for(&denied("temporarily_unavailable")),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status_for(&denied("server_error")), StatusCode::BAD_GATEWAY);
        assert_eq!(
            status_for(&denied("invalid_scope")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status_for(&CallbackError::UnknownState),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status_for(&CallbackError::TokenExchange(TokenError::Unavailable)),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn long_idp_text_is_truncated() {
        let long = "x".repeat(500);
        assert_eq!(truncate(&long).chars().count(), MAX_SHOWN + 1);
    }
}
