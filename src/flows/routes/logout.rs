//! `/oauth/logout`: sign-out of this session, or with `everywhere=true` of every session of the
//! user (tokens deleted, and revoked at the IdP where it offers revocation).
//!
//! Only `POST` signs out. A `GET` can be triggered by any other site (an `<img>`, a link), so it
//! only renders a confirmation page whose form posts back (browsers), or answers 405 (API
//! clients). A `POST` that a browser marks as cross-site is refused (403) by the origin checks
//! in front of this route (`crate::http::origin`): its `Origin` must be allowed, and its `Sec-Fetch-Site`
//! `same-origin` or `none` unless that `Origin` is an allowed one. A request with neither is
//! not from a browser form and is accepted. `everywhere` comes from the query or the form body
//! (`true` or `false`).

use super::page::{Page, escape_html, no_store, prefers_html};
use super::{FlowsApp, query};
use crate::flows::{LogoutReport, LogoutScope};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const PATH: &str = "/oauth/logout";

/// Why a sign-out request was refused before anything happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum Refusal {
    #[error("`everywhere` must be `true` or `false`, given once")]
    BadEverywhere,
}

/// `everywhere` from the query and (for a form post) the body: `true`/`false`; absent means
/// `false`; a duplicate, another value, or the two places disagreeing is refused.
pub(super) fn everywhere(query: Option<&str>, form: Option<&str>) -> Result<bool, Refusal> {
    let one = |raw: Option<&str>| -> Result<Option<bool>, Refusal> {
        let mut q = query::parse(raw).map_err(|_| Refusal::BadEverywhere)?;
        match q.remove("everywhere").as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(Refusal::BadEverywhere),
        }
    };
    match (one(query)?, one(form)?) {
        (Some(a), Some(b)) if a != b => Err(Refusal::BadEverywhere),
        (a, b) => Ok(a.or(b).unwrap_or(false)),
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        })
}

fn refused(r: Refusal, html: bool) -> Response {
    let status = match r {
        Refusal::BadEverywhere => StatusCode::BAD_REQUEST,
    };
    let resp = if html {
        Page {
            status,
            title: "Not signed out",
            message: &r.to_string(),
            detail: Some("Use the sign-out button on the gateway's own page."),
            link: None,
        }
        .into_response()
    } else {
        let code = match r {
            Refusal::BadEverywhere => "invalid_request",
        };
        (
            status,
            Json(serde_json::json!({"error": code, "error_description": r.to_string()})),
        )
            .into_response()
    };
    no_store(resp)
}

/// `POST /oauth/logout`.
pub(super) async fn logout(
    State(app): State<FlowsApp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let html = prefers_html(&headers);
    let form = is_form(&headers)
        .then(|| std::str::from_utf8(&body).ok())
        .flatten();
    let everywhere = match everywhere(raw.as_deref(), form) {
        Ok(e) => e,
        Err(r) => return refused(r, html),
    };
    let caller = match app.identity.authenticate(&headers).await {
        Ok(a) => a.caller,
        Err(e) => {
            return crate::identity::unauthorized(&app.flows.config().public_url, PATH, &e);
        }
    };
    match app.flows.logout(&caller, everywhere).await {
        Ok(report) if html => no_store(signed_out_page(&report)),
        Ok(report) => no_store(Json(report).into_response()),
        Err(e) => {
            tracing::warn!(error = %e, "sign-out failed");
            let resp = if html {
                Page {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    title: "Sign-out failed",
                    message: "The gateway's token storage is unavailable, so your tokens may not have been deleted. Try again in a moment.",
                    detail: None,
                    link: None,
                }
                .into_response()
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(serde_json::json!({
                        "error": "temporarily_unavailable",
                        "error_description": "the gateway's token storage is unavailable",
                    })),
                )
                    .into_response()
            };
            no_store(resp)
        }
    }
}

fn signed_out_page(report: &LogoutReport) -> Response {
    let message = match report.scope {
        LogoutScope::Session => "The gateway deleted this session's tokens.",
        LogoutScope::Everywhere => "The gateway deleted your tokens in every session.",
    };
    let detail = if report.failures.is_empty() {
        format!(
            "{} stored token set(s) removed; {} token(s) revoked at the authorization server.",
            report.removed, report.revoked
        )
    } else {
        format!(
            "{} stored token set(s) removed. {} token(s) could not be revoked at the authorization server; they stay valid there until they expire.",
            report.removed,
            report.failures.len()
        )
    };
    Page {
        status: StatusCode::OK,
        title: "Signed out",
        message,
        detail: Some(&detail),
        link: None,
    }
    .into_response()
}

/// `GET /oauth/logout`: nothing is deleted. Browsers get a confirmation form, others a 405.
pub(super) async fn confirm(
    State(app): State<FlowsApp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let Ok(everywhere) = everywhere(raw.as_deref(), None) else {
        return refused(Refusal::BadEverywhere, prefers_html(&headers));
    };
    if !prefers_html(&headers) {
        let mut resp = (
            StatusCode::METHOD_NOT_ALLOWED,
            Json(serde_json::json!({
                "error": "method_not_allowed",
                "error_description": "sign out with POST /oauth/logout (optionally everywhere=true)",
            })),
        )
            .into_response();
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return no_store(resp);
    }
    let action = app.flows.config().url_for(PATH).to_string();
    super::page::form_page(confirmation_html(&action, everywhere))
}

fn confirmation_html(action: &str, everywhere: bool) -> String {
    let (what, value) = if everywhere {
        ("in every session", "true")
    } else {
        ("in this session", "false")
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>Sign out</title></head><body><h1>Sign out</h1><p>Delete the tokens the gateway holds for you {what}? They are also revoked at the authorization servers that support it.</p><form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"everywhere\" value=\"{value}\"><button type=\"submit\">Sign out</button></form></body></html>",
        escape_html(action),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn everywhere_is_read_strictly() {
        assert_eq!(everywhere(None, None), Ok(false));
        assert_eq!(everywhere(Some("everywhere=true"), None), Ok(true));
        assert_eq!(everywhere(None, Some("everywhere=true")), Ok(true));
        assert_eq!(everywhere(Some("everywhere=false"), None), Ok(false));
        assert_eq!(
            everywhere(Some("everywhere=true"), Some("everywhere=true")),
            Ok(true)
        );
        for (q, f) in [
            (Some("everywhere=yes"), None),
            (Some("everywhere=true&everywhere=false"), None),
            (Some("everywhere=true"), Some("everywhere=false")),
            (None, Some("everywhere=1")),
        ] {
            assert_eq!(everywhere(q, f), Err(Refusal::BadEverywhere), "{q:?} {f:?}");
        }
    }

    #[test]
    fn form_content_type_is_recognised() {
        assert!(is_form(&headers(&[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8"
        )])));
        assert!(!is_form(&headers(&[("content-type", "application/json")])));
        assert!(!is_form(&HeaderMap::new()));
    }

    #[test]
    fn confirmation_posts_the_choice_back() {
        let html = confirmation_html("https://gw/oauth/logout?\"x", true);
        assert!(html.contains("method=\"post\""));
        assert!(html.contains("action=\"https://gw/oauth/logout?&quot;x\""));
        assert!(html.contains("name=\"everywhere\" value=\"true\""));
    }
}
