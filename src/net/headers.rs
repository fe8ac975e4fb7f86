//! The header-name rules of the gateway's proxy path, in one leaf module: which request headers
//! always cross to a remote server, which response headers cross back, and which names a
//! resource author may never list in `spec.forwardHeaders`. The gateway applies them to each
//! request ([`crate::gateway`]'s upstream headers); the CRD validation ([`crate::crd`]) checks
//! `spec.forwardHeaders` against them. Both read the same lists, so what validation admits is
//! what the proxy forwards.
//!
//! Both directions are allowlists. A denylist has to name every header some piece of
//! infrastructure might add, and it goes stale: ingress controllers and auth proxies put the
//! caller's own tokens and client claims in headers of their own (`X-Forwarded-Access-Token`,
//! `X-Auth-Request-Access-Token`, `X-Real-IP`, `True-Client-IP`, ...), and browsers keep
//! growing the set of response headers that act on an origin.

use http::header::{self, HeaderName, HeaderValue};

/// `Mcp-Session-Id` (lower-case, as `HeaderName` stores it).
pub const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
/// `MCP-Protocol-Version`.
pub const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
/// `Mcp-Method` (protocol `2026-07-28`).
pub const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
/// `Last-Event-ID`: resumes an SSE stream.
pub const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// The prefix the MCP transport's headers share (`HeaderName`s are lower-case).
pub const MCP_PREFIX: &str = "mcp-";

/// Request headers that reach the remote server besides the `Mcp-*` ones.
pub const TO_UPSTREAM: [HeaderName; 5] = [
    header::ACCEPT,
    header::ACCEPT_ENCODING,
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    LAST_EVENT_ID,
];

/// Response headers that reach the caller besides the `Mcp-*` ones: what describes the body and
/// how long it may be cached, when to retry, and `X-Accel-Buffering: no`, which SSE servers send
/// so that an nginx in front of the gateway does not buffer the stream.
pub const TO_CALLER: [HeaderName; 9] = [
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::CONTENT_LANGUAGE,
    header::CACHE_CONTROL,
    header::EXPIRES,
    header::PRAGMA,
    header::VARY,
    header::RETRY_AFTER,
    HeaderName::from_static("x-accel-buffering"),
];

/// Whether `name` is one of the MCP transport's headers (any `Mcp-*` name).
pub fn is_mcp(name: &HeaderName) -> bool {
    name.as_str().starts_with(MCP_PREFIX)
}

/// Request header names a resource author may not list in `spec.forwardHeaders`: hop-by-hop
/// headers, those the gateway sets itself, credentials, and claims about the client or the path
/// (a server behind the gateway may trust them, and the caller could forge them).
pub const NEVER_FORWARDED: [&str; 26] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "authorization",
    "cookie",
    "cookie2",
    "forwarded",
    "via",
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "client-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-api-key",
];

/// Prefixes of request header names a resource author may not list in `spec.forwardHeaders`
/// (same reasons as [`NEVER_FORWARDED`]; `mcp-` ones pass anyway). Among them the headers in
/// which common authenticating proxies hand the user's tokens and claims to their backend
/// (oauth2-proxy, AWS ALB, Azure App Service, Google IAP, Cloudflare Access, Pomerium): a
/// resource author must not be able to collect them.
pub const NEVER_FORWARDED_PREFIXES: [&str; 17] = [
    "proxy-",
    "x-forwarded-",
    "x-auth-request-",
    "x-amzn-oidc-",
    "x-ms-client-principal",
    "x-ms-token-",
    "x-goog-authenticated-",
    "x-goog-iap-",
    "cf-access-",
    "x-pomerium-",
    "x-jwt-",
    "x-id-token",
    "x-access-token",
    "x-refresh-token",
    "x-envoy-",
    "x-original-",
    "sec-",
];

/// Why a header name cannot be in `spec.forwardHeaders`, if it cannot. `name` is compared
/// case-insensitively.
pub fn forward_header_problem(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if HeaderName::from_bytes(lower.as_bytes()).is_err() {
        return Some("is not a valid HTTP header name");
    }
    if lower.starts_with(MCP_PREFIX) || TO_UPSTREAM.iter().any(|h| h.as_str() == lower) {
        return Some("is always forwarded; do not list it");
    }
    if NEVER_FORWARDED.contains(&lower.as_str())
        || NEVER_FORWARDED_PREFIXES
            .iter()
            .any(|p| lower.starts_with(p))
    {
        return Some(
            "is a hop-by-hop header, a credential or a client/forwarding claim, which the gateway never forwards",
        );
    }
    None
}

/// The `Authorization` value for a bearer token. `None` when the token contains bytes a header
/// cannot carry (then nothing is sent and the remote server's 401 leads to a new authorization).
pub fn bearer(token: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::try_from(format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_headers_refuse_credentials_claims_and_hop_by_hop_names() {
        for ok in ["X-Tenant", "x-request-id", "User-Agent", "traceparent"] {
            assert_eq!(forward_header_problem(ok), None, "{ok}");
        }
        for bad in [
            "Authorization",
            "cookie",
            "Host",
            "Connection",
            "Transfer-Encoding",
            "Proxy-Authorization",
            "X-Forwarded-For",
            "X-Forwarded-Access-Token",
            "X-Auth-Request-Access-Token",
            "X-Real-IP",
            "True-Client-IP",
            "Forwarded",
            "Sec-Fetch-Site",
            "X-Amzn-Oidc-Data",
            "X-Goog-Iap-Jwt-Assertion",
            "Cf-Access-Jwt-Assertion",
            "X-Pomerium-Jwt-Assertion",
            "X-Access-Token",
            "Accept",
            "Mcp-Session-Id",
            "bad header",
            "",
        ] {
            assert!(forward_header_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn a_token_that_cannot_be_a_header_is_not_sent() {
        assert!(bearer("bad\ntoken").is_none());
        assert_eq!(bearer("abc").expect("value"), "Bearer abc");
    }
}
