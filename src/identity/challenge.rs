//! The answer to a request whose caller could not be authenticated: 401 with an RFC 6750
//! `WWW-Authenticate: Bearer` challenge whose `resource_metadata` (RFC 9728) points at the
//! gateway's own protected-resource metadata, so MCP clients can discover where to log in.

use super::IdentityError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use url::Url;

/// Path prefix of the gateway's RFC 9728 metadata documents.
pub const PROTECTED_RESOURCE_PATH: &str = "/.well-known/oauth-protected-resource";

/// Seconds a client should wait before retrying when the IdP's keys cannot be fetched.
const RETRY_AFTER_SECS: &str = "5";

/// `request_path` normalised for use as a resource path: no query or fragment, one leading `/`,
/// no trailing `/`. Only a server (`/mcp/…`) is a resource of its own; every other path (the
/// root, `/oauth/*`) is the gateway as a whole, whose tokens are for its public URL (see
/// `AudiencePolicy`), so its challenge points at the gateway's own metadata.
fn resource_path(request_path: &str) -> &str {
    let path = request_path
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    if path.starts_with("/mcp/") { path } else { "" }
}

/// `path` below the public URL's own path (its path prefix is kept), without query or fragment.
fn below(public_url: &Url, path: &str) -> String {
    let mut u = public_url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let base = u.path().trim_end_matches('/').to_owned();
    let joined = format!("{base}{path}");
    u.set_path(if joined.is_empty() { "/" } else { &joined });
    u.to_string()
}

/// The resource identifier of `request_path` (e.g. `/mcp/team-a/github`) on this gateway:
/// `{public_url}{path}`, or the public URL itself for the root.
pub fn resource_for(public_url: &Url, request_path: &str) -> String {
    below(public_url, resource_path(request_path))
}

/// URL of the RFC 9728 metadata of `request_path`:
/// `{public_url}/.well-known/oauth-protected-resource{path}`. With a public URL without a path
/// this is exactly the RFC 9728 well-known location; under a path prefix the document is served
/// below the prefix (where the gateway's router can see it) and clients find it through this URL.
pub fn resource_metadata_url(public_url: &Url, request_path: &str) -> String {
    below(
        public_url,
        &format!("{PROTECTED_RESOURCE_PATH}{}", resource_path(request_path)),
    )
}

/// The RFC 6750 error code for a rejection, `None` when no token was presented (RFC 6750 §3.1:
/// a request without credentials gets no error code).
fn error_code(err: &IdentityError) -> Option<&'static str> {
    match err {
        IdentityError::MissingToken => None,
        IdentityError::InvalidToken(_) | IdentityError::Rejected(_) => Some("invalid_token"),
        IdentityError::MissingHeader(_) | IdentityError::Unavailable(_) => None,
    }
}

/// The `WWW-Authenticate` value for `err`, or `None` when a bearer challenge does not apply:
/// `header` mode (the authenticating proxy in front is responsible for logging users in) and an
/// unreachable IdP (logging in again would not help).
pub fn www_authenticate(
    public_url: &Url,
    request_path: &str,
    err: &IdentityError,
) -> Option<String> {
    if matches!(
        err,
        IdentityError::MissingHeader(_) | IdentityError::Unavailable(_)
    ) {
        return None;
    }
    let metadata = resource_metadata_url(public_url, request_path);
    // The URL comes from a parsed `Url`, which percent-encodes `"` and `\`, so quoting is safe.
    let mut value = format!("Bearer resource_metadata=\"{metadata}\"");
    if let Some(code) = error_code(err) {
        value.push_str(&format!(", error=\"{code}\""));
    }
    Some(value)
}

/// The response to a request that failed authentication, for the gateway handler:
/// 401 with a `WWW-Authenticate: Bearer resource_metadata="…/.well-known/oauth-protected-resource{path}"`
/// challenge (plus `error="invalid_token"` when a presented token was rejected) and a JSON body
/// `{"error", "error_description"}`. An [`IdentityError::Unavailable`] (the IdP's keys cannot be
/// fetched: the token may be fine) is a 503 with `Retry-After` instead, so clients do not start
/// a new login because of an outage. The description is the error's message, which never contains
/// a token.
pub fn unauthorized(public_url: &Url, request_path: &str, err: &IdentityError) -> Response {
    let (status, code) = match err {
        IdentityError::Unavailable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
        }
        IdentityError::MissingHeader(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        IdentityError::MissingToken => (StatusCode::UNAUTHORIZED, "unauthorized"),
        IdentityError::InvalidToken(_) | IdentityError::Rejected(_) => {
            (StatusCode::UNAUTHORIZED, "invalid_token")
        }
    };
    let body = serde_json::json!({ "error": code, "error_description": err.to_string() });
    let mut resp = (status, axum::Json(body)).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    if let Some(challenge) = www_authenticate(public_url, request_path, err)
        && let Ok(value) = HeaderValue::from_str(&challenge)
    {
        headers.insert(header::WWW_AUTHENTICATE, value);
    }
    resp
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::identity::TokenRejection;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn metadata_url_follows_rfc_9728_and_keeps_a_path_prefix() {
        let plain = url("https://gw.example.com");
        assert_eq!(
            resource_metadata_url(&plain, "/mcp/team-a/github"),
            "https://gw.example.com/.well-known/oauth-protected-resource/mcp/team-a/github"
        );
        assert_eq!(
            resource_metadata_url(&plain, "/mcp/team-a/github/?x=1"),
            "https://gw.example.com/.well-known/oauth-protected-resource/mcp/team-a/github"
        );
        assert_eq!(
            resource_metadata_url(&plain, ""),
            "https://gw.example.com/.well-known/oauth-protected-resource"
        );
        let prefixed = url("https://example.com/gw/?q#f");
        assert_eq!(
            resource_metadata_url(&prefixed, "/mcp/a/b"),
            "https://example.com/gw/.well-known/oauth-protected-resource/mcp/a/b"
        );
        assert_eq!(
            resource_for(&prefixed, "/mcp/a/b"),
            "https://example.com/gw/mcp/a/b"
        );
        assert_eq!(resource_for(&plain, ""), "https://gw.example.com/");
        assert_eq!(
            resource_for(&plain, "relative"),
            "https://gw.example.com/",
            "only absolute paths name a resource"
        );
    }

    #[test]
    fn challenge_names_metadata_and_error_only_for_presented_tokens() {
        let gw = url("https://gw.example.com");
        let meta = "https://gw.example.com/.well-known/oauth-protected-resource/mcp/a/b";
        assert_eq!(
            www_authenticate(&gw, "/mcp/a/b", &IdentityError::MissingToken).unwrap(),
            format!("Bearer resource_metadata=\"{meta}\"")
        );
        for err in [
            IdentityError::Rejected(TokenRejection::Expired),
            IdentityError::InvalidToken("x".into()),
        ] {
            assert_eq!(
                www_authenticate(&gw, "/mcp/a/b", &err).unwrap(),
                format!("Bearer resource_metadata=\"{meta}\", error=\"invalid_token\"")
            );
        }
        assert!(
            www_authenticate(&gw, "/", &IdentityError::MissingHeader("x-user".into())).is_none()
        );
        // `/oauth/*` is the gateway as a whole: its tokens are for the public URL.
        assert_eq!(
            www_authenticate(&gw, "/oauth/status", &IdentityError::MissingToken).unwrap(),
            "Bearer resource_metadata=\"https://gw.example.com/.well-known/oauth-protected-resource\""
        );
        assert!(www_authenticate(&gw, "/", &IdentityError::Unavailable("down".into())).is_none());
    }

    #[test]
    fn quotes_in_the_path_cannot_break_the_header() {
        let gw = url("https://gw.example.com");
        let v = www_authenticate(&gw, "/mcp/a\"b/c", &IdentityError::MissingToken).unwrap();
        assert_eq!(v.matches('"').count(), 2, "{v}");
    }

    #[test]
    fn responses_carry_status_and_json_body() {
        let gw = url("https://gw.example.com");
        let r = unauthorized(
            &gw,
            "/mcp/a/b",
            &IdentityError::Rejected(TokenRejection::WrongAudience),
        );
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
        let r = unauthorized(&gw, "/mcp/a/b", &IdentityError::Unavailable("down".into()));
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            r.headers().get(header::RETRY_AFTER).unwrap(),
            RETRY_AFTER_SECS
        );
        let r = unauthorized(
            &gw,
            "/mcp/a/b",
            &IdentityError::MissingHeader("x-user".into()),
        );
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(!r.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
