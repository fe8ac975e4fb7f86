//! Which headers cross the gateway, in each direction. Pure functions over `HeaderMap`s.
//!
//! Everything end-to-end passes (so MCP headers — `Mcp-Session-Id`, `MCP-Protocol-Version`,
//! `Mcp-Method`, `Mcp-Name`, `Last-Event-ID` and future ones — flow both ways unchanged), except:
//! hop-by-hop headers (RFC 9110 §7.6.1, plus any the `Connection` header names), and headers that
//! belong to the gateway rather than to the remote server: the caller's credentials
//! (`Authorization`, `Cookie`), client-supplied forwarding claims, and cookies set by a remote
//! server (every remote server shares the gateway's origin, so its cookies would leak to the
//! others).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `Mcp-Session-Id` (lower-case, as `HeaderName` stores it).
pub const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
/// `MCP-Protocol-Version`.
pub const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
/// `Mcp-Method` (protocol `2026-07-28`).
pub const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");

/// Hop-by-hop headers: they describe one connection, not the message.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Request headers the gateway never passes upstream besides the hop-by-hop ones. `Host` and
/// `Content-Length` are set by the client for the upstream URI and body; the forwarding headers
/// would let a caller claim another client address to a server that trusts its proxy.
const REQUEST_ONLY: [HeaderName; 8] = [
    header::HOST,
    header::CONTENT_LENGTH,
    header::AUTHORIZATION,
    header::COOKIE,
    header::FORWARDED,
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-proto"),
];

/// Response headers the caller never sees besides the hop-by-hop ones. `WWW-Authenticate`
/// challenges are the gateway's to answer (they concern the gateway's credentials, not the
/// caller's); `Content-Length` is recomputed by the server for the streamed body.
const RESPONSE_ONLY: [HeaderName; 3] = [
    header::SET_COOKIE,
    header::WWW_AUTHENTICATE,
    header::CONTENT_LENGTH,
];

/// Whether `name` is hop-by-hop, including the `Upgrade` header (no protocol switch through the
/// gateway) and any header listed in `Connection`.
fn is_hop_by_hop(name: &HeaderName, connection_listed: &[HeaderName]) -> bool {
    HOP_BY_HOP.contains(name) || name == header::UPGRADE || connection_listed.contains(name)
}

/// Header names listed in the `Connection` header(s) (RFC 9110 §7.6.1).
fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect()
}

/// Copy `from` without the headers in `extra` and the hop-by-hop ones.
fn filtered(from: &HeaderMap, extra: &[HeaderName]) -> HeaderMap {
    // Usually empty: HTTP/2 forbids `Connection`, and HTTP/1.1 clients rarely name headers in it.
    let listed = if from.contains_key(header::CONNECTION) {
        connection_listed(from)
    } else {
        Vec::new()
    };
    let mut out = HeaderMap::with_capacity(from.keys_len());
    for (name, value) in from {
        if !extra.contains(name) && !is_hop_by_hop(name, &listed) {
            // `append`: a repeated header keeps every value, in order.
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The headers to send upstream for a caller's request: the caller's end-to-end headers, without
/// its credentials. `authorization` is what the credentials step decided to send (if anything);
/// it is marked sensitive so it never appears in debug output.
/// `identity` names the headers the caller's identity came from (`header` mode): they stay here.
pub fn to_upstream(
    from: &HeaderMap,
    authorization: Option<HeaderValue>,
    identity: &[HeaderName],
) -> HeaderMap {
    let mut out = filtered(from, &REQUEST_ONLY);
    for name in identity {
        out.remove(name);
    }
    if let Some(mut value) = authorization {
        value.set_sensitive(true);
        out.insert(header::AUTHORIZATION, value);
    }
    out
}

/// The headers to return to the caller from an upstream response.
pub fn to_caller(from: &HeaderMap) -> HeaderMap {
    filtered(from, &RESPONSE_ONLY)
}

/// The `Authorization` value for a bearer token. `None` when the token contains bytes a header
/// cannot carry (then nothing is sent and the remote server's 401 leads to a new authorization).
pub fn bearer(token: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::try_from(format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
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
        let out = to_upstream(&h, None, &[]);
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
        let out = to_upstream(&h, bearer("stored-token"), &[]);
        let values: Vec<_> = out.get_all("authorization").iter().collect();
        assert_eq!(values.len(), 1);
        assert_eq!(values[0], "Bearer stored-token");
        assert!(values[0].is_sensitive());
        assert!(!format!("{out:?}").contains("stored-token"));
    }

    #[test]
    fn identity_headers_of_header_mode_stay_at_the_gateway() {
        let h = map(&[
            ("x-forwarded-user", "alice"),
            ("x-session", "s1"),
            ("mcp-session-id", "abc"),
        ]);
        let names = [
            HeaderName::from_static("x-forwarded-user"),
            HeaderName::from_static("x-session"),
        ];
        let out = to_upstream(&h, None, &names);
        assert!(out.get("x-forwarded-user").is_none());
        assert!(out.get("x-session").is_none());
        assert_eq!(
            out.get("mcp-session-id").map(|v| v.as_bytes()),
            Some(&b"abc"[..])
        );
        let kept = to_upstream(&h, None, &[]);
        assert!(
            kept.get("x-session").is_some(),
            "only configured names are dropped"
        );
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_dropped() {
        let h = map(&[
            ("connection", "keep-alive, x-private-hop"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic abc"),
            ("x-private-hop", "1"),
            ("x-end-to-end", "1"),
        ]);
        for out in [to_upstream(&h, None, &[]), to_caller(&h)] {
            assert_eq!(out.len(), 1, "{out:?}");
            assert_eq!(out["x-end-to-end"], "1");
        }
    }

    #[test]
    fn repeated_headers_keep_every_value_in_order() {
        let h = map(&[("accept", "a"), ("accept", "b"), ("x-other", "c")]);
        let out = to_upstream(&h, None, &[]);
        let values: Vec<_> = out.get_all("accept").iter().collect();
        assert_eq!(values, ["a", "b"]);
    }

    #[test]
    fn responses_keep_mcp_headers_and_lose_cookies_and_challenges() {
        let h = map(&[
            ("content-type", "text/event-stream"),
            ("mcp-session-id", "s-1"),
            ("cache-control", "no-cache"),
            ("set-cookie", "upstream=1"),
            ("www-authenticate", "Bearer error=\"invalid_token\""),
            ("content-length", "10"),
        ]);
        let out = to_caller(&h);
        assert_eq!(out["content-type"], "text/event-stream");
        assert_eq!(out["mcp-session-id"], "s-1");
        assert_eq!(out["cache-control"], "no-cache");
        for dropped in ["set-cookie", "www-authenticate", "content-length"] {
            assert!(!out.contains_key(dropped), "{dropped} must not pass");
        }
    }

    #[test]
    fn a_token_that_cannot_be_a_header_is_not_sent() {
        assert!(bearer("bad\ntoken").is_none());
        assert_eq!(bearer("abc").expect("value"), "Bearer abc");
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
