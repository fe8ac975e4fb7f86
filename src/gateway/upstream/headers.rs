//! Which headers cross the gateway, in each direction: pure functions over `HeaderMap`s that
//! apply the header-name rules of [`crate::net::headers`].
//!
//! Both directions are allowlists. A denylist has to name every header some piece of
//! infrastructure might add, and it goes stale: ingress controllers and auth proxies put the
//! caller's own tokens and client claims in headers of their own (`X-Forwarded-Access-Token`,
//! `X-Auth-Request-Access-Token`, `X-Real-IP`, `True-Client-IP`, ...), and browsers keep
//! growing the set of response headers that act on an origin. So only what the MCP Streamable
//! HTTP transport needs crosses, plus a few names a resource author lists per server
//! (`spec.forwardHeaders`, validated in [`crate::crd::validate`]).
//!
//! Toward the remote server: MCP headers (any `Mcp-*` name — the protocol reserves the prefix
//! and adds headers under it, e.g. `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*` — and
//! `Last-Event-ID`), content negotiation (`Accept`, `Accept-Encoding`, `Content-Type`,
//! `Content-Encoding`: the body passes through unchanged, and neither hyper's server nor its
//! client decodes or re-encodes it, so these stay end-to-end), and the gateway's own
//! `Authorization`. Never the caller's `Authorization` or `Cookie`, `Host`, `Content-Length`
//! (set for the upstream URI and body), hop-by-hop headers, or forwarding claims.
//!
//! Toward the caller: every remote server shares the gateway's origin, so a header that acts on
//! an origin (cookies, CORS, HSTS, `Clear-Site-Data`, CSP, `Alt-Svc`, `Refresh`, `Link`,
//! `Cross-Origin-*`, ...) would let one server act on the gateway's pages and on every other
//! server's clients. Only MCP headers, the content description and caching headers pass.

use crate::net::headers::{TO_CALLER, TO_UPSTREAM, is_mcp};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub use crate::net::headers::{MCP_METHOD, MCP_PROTOCOL_VERSION, MCP_SESSION_ID, bearer};

/// Header names listed in the `Connection` header(s) (RFC 9110 §7.6.1): they concern the one
/// connection they came on, even when allowlisted.
fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect()
}

/// Copy the headers of `from` that `keep` accepts and `Connection` does not name; a repeated
/// header keeps every value, in order.
fn kept(from: &HeaderMap, keep: impl Fn(&HeaderName) -> bool) -> HeaderMap {
    // Usually empty: HTTP/2 forbids `Connection`, and HTTP/1.1 clients rarely name headers in it.
    let listed = connection_listed(from);
    let mut out = HeaderMap::new();
    for (name, value) in from {
        if keep(name) && !listed.contains(name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The headers to send upstream for a caller's request: the allowlisted ones, plus `extra`
/// (the server's `spec.forwardHeaders`, already validated), never the caller's credentials.
/// `authorization` is what the credentials step decided to send (if anything); it is marked
/// sensitive so it never appears in debug output.
/// `identity` names the headers the caller's identity came from (`header` mode): they stay
/// here even when a server lists them.
pub fn to_upstream(
    from: &HeaderMap,
    authorization: Option<HeaderValue>,
    extra: &[HeaderName],
    identity: &[HeaderName],
) -> HeaderMap {
    let mut out = kept(from, |name| {
        !identity.contains(name)
            && (is_mcp(name) || TO_UPSTREAM.contains(name) || extra.contains(name))
    });
    if let Some(mut value) = authorization {
        value.set_sensitive(true);
        out.insert(header::AUTHORIZATION, value);
    }
    out
}

/// The headers to return to the caller from an upstream response.
pub fn to_caller(from: &HeaderMap) -> HeaderMap {
    kept(from, |name| is_mcp(name) || TO_CALLER.contains(name))
}

/// Whether a response's `Content-Type` is one an MCP Streamable HTTP server sends: JSON or an
/// SSE stream (parameters such as `charset` are ignored).
pub fn is_mcp_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.eq_ignore_ascii_case("text/event-stream")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn mcp_headers_pass_upstream_and_credentials_do_not() {
        let h = map(&[
            ("accept", "application/json, text/event-stream"),
            ("content-type", "application/json"),
            ("mcp-session-id", "s-1"),
            ("mcp-protocol-version", "2025-11-25"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
            ("last-event-id", "7"),
            ("authorization", "Bearer caller-token"),
            ("cookie", "mcpoauth_browser=x"),
            ("host", "gateway.example.com"),
            ("content-length", "42"),
            ("x-forwarded-for", "10.0.0.1"),
            ("forwarded", "for=10.0.0.1"),
        ]);
        let out = to_upstream(&h, None, &[], &[]);
        for kept in [
            "accept",
            "content-type",
            "mcp-session-id",
            "mcp-protocol-version",
            "mcp-method",
            "mcp-name",
            "last-event-id",
        ] {
            assert_eq!(out.get(kept), h.get(kept), "{kept} must pass");
        }
        for dropped in [
            "authorization",
            "cookie",
            "host",
            "content-length",
            "x-forwarded-for",
            "forwarded",
        ] {
            assert!(!out.contains_key(dropped), "{dropped} must not pass");
        }
    }

    #[test]
    fn the_injected_credential_replaces_the_callers_and_is_sensitive() {
        let h = map(&[("authorization", "Bearer caller-token")]);
        let out = to_upstream(&h, bearer("stored-token"), &[], &[]);
        let values: Vec<_> = out.get_all("authorization").iter().collect();
        assert_eq!(values.len(), 1);
        assert_eq!(values[0], "Bearer stored-token");
        assert!(values[0].is_sensitive());
        assert!(!format!("{out:?}").contains("stored-token"));
    }

    #[test]
    fn identity_headers_of_header_mode_stay_at_the_gateway_even_when_a_server_lists_them() {
        let h = map(&[
            ("x-forwarded-user", "alice"),
            ("x-session", "s1"),
            ("x-tenant", "t1"),
            ("mcp-session-id", "abc"),
        ]);
        let identity = [
            HeaderName::from_static("x-forwarded-user"),
            HeaderName::from_static("x-session"),
        ];
        let extra = [
            HeaderName::from_static("x-session"),
            HeaderName::from_static("x-tenant"),
        ];
        let out = to_upstream(&h, None, &extra, &identity);
        assert!(out.get("x-forwarded-user").is_none());
        assert!(out.get("x-session").is_none());
        assert_eq!(out["x-tenant"], "t1", "listed by the server");
        assert_eq!(out["mcp-session-id"], "abc");
        let unlisted = to_upstream(&h, None, &[], &[]);
        assert!(unlisted.get("x-tenant").is_none(), "only listed names pass");
    }

    #[test]
    fn forwarding_claims_and_proxy_tokens_never_reach_the_upstream() {
        let h = map(&[
            ("x-forwarded-access-token", "idp-access-token"),
            ("x-auth-request-access-token", "idp-access-token"),
            ("x-auth-request-user", "alice"),
            ("x-real-ip", "10.0.0.9"),
            ("true-client-ip", "10.0.0.9"),
            ("cf-connecting-ip", "10.0.0.9"),
            ("x-forwarded-host", "evil.example"),
            ("x-original-url", "/admin"),
            ("via", "1.1 ingress"),
            ("user-agent", "client/1"),
            ("origin", "https://evil.example"),
            ("referer", "https://evil.example/"),
            ("accept", "application/json"),
        ]);
        let out = to_upstream(&h, None, &[], &[]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out["accept"], "application/json");
    }

    #[test]
    fn any_mcp_header_passes_both_ways() {
        let h = map(&[("mcp-param-region", "eu"), ("mcp-future", "1")]);
        assert_eq!(to_upstream(&h, None, &[], &[]).len(), 2);
        assert_eq!(to_caller(&h).len(), 2);
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_dropped() {
        let h = map(&[
            ("connection", "keep-alive, mcp-private-hop"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic abc"),
            ("proxy-authenticate", "Basic"),
            ("mcp-private-hop", "1"),
            ("mcp-end-to-end", "1"),
        ]);
        for out in [to_upstream(&h, None, &[], &[]), to_caller(&h)] {
            assert_eq!(out.len(), 1, "{out:?}");
            assert_eq!(out["mcp-end-to-end"], "1");
        }
    }

    #[test]
    fn repeated_headers_keep_every_value_in_order() {
        let h = map(&[("accept", "a"), ("accept", "b"), ("x-other", "c")]);
        let out = to_upstream(&h, None, &[], &[]);
        let values: Vec<_> = out.get_all("accept").iter().collect();
        assert_eq!(values, ["a", "b"]);
    }

    #[test]
    fn responses_keep_mcp_and_content_headers_and_nothing_that_acts_on_the_origin() {
        let h = map(&[
            ("content-type", "text/event-stream"),
            ("content-encoding", "gzip"),
            ("mcp-session-id", "s-1"),
            ("cache-control", "no-cache"),
            ("x-accel-buffering", "no"),
            ("retry-after", "3"),
            ("set-cookie", "upstream=1"),
            ("set-cookie2", "upstream=1"),
            ("www-authenticate", "Bearer error=\"invalid_token\""),
            ("content-length", "10"),
            ("access-control-allow-origin", "*"),
            ("access-control-allow-credentials", "true"),
            ("strict-transport-security", "max-age=0"),
            ("clear-site-data", "\"*\""),
            ("content-security-policy", "default-src *"),
            ("alt-svc", "h3=\":443\""),
            ("refresh", "0; url=https://evil.example"),
            ("link", "<https://evil.example>; rel=preload"),
            ("location", "https://evil.example"),
            ("content-location", "/other"),
            ("public-key-pins", "pin-sha256=\"x\""),
            ("expect-ct", "max-age=0"),
            ("origin-agent-cluster", "?0"),
            ("cross-origin-opener-policy", "unsafe-none"),
            ("cross-origin-resource-policy", "cross-origin"),
            ("permissions-policy", "camera=*"),
            ("service-worker-allowed", "/"),
            ("x-frame-options", "ALLOWALL"),
            ("server", "upstream/1.0"),
        ]);
        let out = to_caller(&h);
        let mut names: Vec<_> = out.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "cache-control",
                "content-encoding",
                "content-type",
                "mcp-session-id",
                "retry-after",
                "x-accel-buffering"
            ]
        );
    }

    #[test]
    fn recognises_mcp_content_types() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Text/Event-Stream",
        ] {
            assert!(is_mcp_content_type(&map(&[("content-type", ok)])), "{ok}");
        }
        for bad in ["text/html", "application/jsonx", ""] {
            assert!(
                !is_mcp_content_type(&map(&[("content-type", bad)])),
                "{bad}"
            );
        }
        assert!(!is_mcp_content_type(&HeaderMap::new()));
    }
}
