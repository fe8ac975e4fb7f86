//! Field-level checks shared by both validators. Messages name the field, never echo a value
//! that could carry credentials (a URL's user info) or control characters.

use url::Url;

use super::{SpecError, reason};

/// What a URL field may contain besides scheme, host and path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrlKind {
    /// An endpoint: a query is allowed (RFC 6749 §3.1/§3.2).
    Endpoint,
    /// An issuer identifier: no query (RFC 8414 §2).
    Issuer,
}

/// An absolute http(s) URL without user info or fragment.
pub(crate) fn http_url(field: &str, value: &str, kind: UrlKind) -> Result<Url, SpecError> {
    let invalid = |msg: String| SpecError::new(field, reason::INVALID_URL, msg);
    let url = Url::parse(value).map_err(|e| {
        invalid(format!(
            "{field} is not a valid absolute URL ({e}): use a URL such as https://host.example.com/path"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "{field} must use http or https, not `{}`",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(format!(
            "{field} must not contain user info (user:password@): remove it and put credentials in a Secret"
        )));
    }
    if url.fragment().is_some() {
        return Err(invalid(format!(
            "{field} must not contain a fragment (#...): remove it"
        )));
    }
    if kind == UrlKind::Issuer && url.query().is_some() {
        return Err(invalid(format!(
            "{field} must not contain a query (?...): an issuer identifier has none"
        )));
    }
    Ok(url)
}

/// A resource indicator on the server's own origin. Users' tokens for `resource` go to `url`:
/// a resource on another origin would let a namespace's author have the gateway obtain tokens
/// for someone else's server (with the users' consent to the gateway's client) and send them
/// to a server of their own (RFC 9728 §3.3 asks the same of protected-resource metadata).
pub(crate) fn same_origin(field: &str, resource: &Url, url: &Url) -> Result<(), SpecError> {
    if resource.origin() == url.origin() {
        return Ok(());
    }
    Err(SpecError::new(
        field,
        reason::RESOURCE_ON_ANOTHER_ORIGIN,
        format!(
            "{field} must be on the server's own origin ({}): users' tokens for this resource \
             are sent to spec.url; remove it, or register the server at the resource's URL",
            url.origin().ascii_serialization()
        ),
    ))
}

/// A plain-http URL is accepted only on a loopback host, unless the resource opts in: the
/// gateway sends users' access tokens and their MCP traffic to it.
pub(crate) fn transport_security(
    field: &str,
    opt_in: &str,
    url: &Url,
    allow_insecure_http: bool,
) -> Result<(), SpecError> {
    if url.scheme() != "http" || allow_insecure_http || is_loopback(url) {
        return Ok(());
    }
    Err(SpecError::new(
        field,
        reason::INSECURE_URL,
        format!(
            "{field} uses plain http on a host that is not loopback: users' access tokens and MCP \
             traffic would cross the network unencrypted; use https, or set {opt_in}: true if \
             the network to that host is trusted"
        ),
    ))
}

/// `localhost`, `127.0.0.0/8` or `::1`.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Every scope is one RFC 6749 §3.3 scope token: non-empty, printable ASCII, no space, `"` or `\`.
pub(crate) fn scopes(field: &str, scopes: &[String]) -> Vec<SpecError> {
    scopes
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let at = format!("{field}[{i}]");
            if s.is_empty() {
                Some(format!("{at} is empty: remove the entry"))
            } else if s.chars().any(char::is_whitespace) {
                Some(format!(
                    "{at} contains whitespace: list each scope as its own entry, e.g. [files:read, files:write]"
                ))
            } else if !s.bytes().all(is_scope_char) {
                Some(format!(
                    "{at} contains a character not allowed in a scope (RFC 6749 §3.3: printable ASCII except `\"` and `\\`)"
                ))
            } else {
                None
            }
            .map(|msg| SpecError::new(at, reason::INVALID_SCOPE, msg))
        })
        .collect()
}

fn is_scope_char(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
}

/// An audience value: non-empty, no whitespace or control characters.
pub(crate) fn audience(field: &str, value: &str) -> Result<(), SpecError> {
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(SpecError::new(
            field,
            reason::INVALID_AUDIENCE,
            format!("{field} must be a non-empty value without spaces, e.g. mcp-gateway"),
        ));
    }
    Ok(())
}

/// A Kubernetes object name (DNS subdomain, RFC 1123).
pub(crate) fn object_name(field: &str, value: &str, what: &str) -> Result<(), SpecError> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && value
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && value
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(SpecError::new(
            field,
            reason::INVALID_NAME,
            format!(
                "{field} must be the name of a {what} in the same namespace (lowercase letters, digits, '-' and '.')"
            ),
        ))
    }
}

/// A key of a Secret's data (`[-._a-zA-Z0-9]+`).
pub(crate) fn secret_key(field: &str, value: &str) -> Result<(), SpecError> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(SpecError::new(
            field,
            reason::INVALID_SECRET_REF,
            format!("{field} must be a Secret data key (letters, digits, '-', '_' and '.')"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_url_accepts_http_and_https() {
        assert!(http_url("f", "https://a.example.com/mcp?x=1", UrlKind::Endpoint).is_ok());
        assert!(http_url("f", "http://127.0.0.1:3001/mcp", UrlKind::Endpoint).is_ok());
    }

    #[test]
    fn http_url_rejects_relative_other_scheme_userinfo_fragment() {
        for bad in [
            "/mcp",
            "ftp://a.example.com",
            "https://user:pw@a.example.com",
            "https://user@a.example.com",
            "https://a.example.com/#frag",
        ] {
            let err = http_url("spec.url", bad, UrlKind::Endpoint).expect_err("must fail");
            assert_eq!(err.reason, reason::INVALID_URL, "{bad}");
            assert_eq!(err.field, "spec.url");
        }
    }

    #[test]
    fn userinfo_is_never_echoed() {
        let err = http_url(
            "spec.url",
            "https://u:hunter2@a.example.com",
            UrlKind::Endpoint,
        )
        .expect_err("must fail");
        assert!(!err.message.contains("hunter2"));
    }

    #[test]
    fn issuer_rejects_query_but_endpoint_allows_it() {
        assert!(http_url("f", "https://idp.example.com?x=1", UrlKind::Issuer).is_err());
        assert!(http_url("f", "https://idp.example.com?x=1", UrlKind::Endpoint).is_ok());
    }

    #[test]
    fn resource_must_share_the_servers_origin() {
        let url = |s: &str| Url::parse(s).expect("url");
        let server = url("https://mcp.example.com/v1/mcp");
        for same in [
            "https://mcp.example.com/",
            "https://mcp.example.com:443/other",
        ] {
            assert!(same_origin("r", &url(same), &server).is_ok(), "{same}");
        }
        for other in [
            "https://victim.example.com/mcp",
            "http://mcp.example.com/v1/mcp",
            "https://mcp.example.com:8443/v1/mcp",
            "https://sub.mcp.example.com/v1/mcp",
        ] {
            let e = same_origin("r", &url(other), &server).expect_err(other);
            assert_eq!(e.reason, reason::RESOURCE_ON_ANOTHER_ORIGIN);
            assert!(
                e.message.contains("https://mcp.example.com"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn scopes_rules() {
        let ok = vec!["openid".to_owned(), "files:read".to_owned()];
        assert!(scopes("s", &ok).is_empty());
        let bad = vec![
            String::new(),
            "a b".to_owned(),
            "quo\"te".to_owned(),
            "fine".to_owned(),
        ];
        let errs = scopes("s", &bad);
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["s[0]", "s[1]", "s[2]"]);
        assert!(errs.iter().all(|e| e.reason == reason::INVALID_SCOPE));
    }

    #[test]
    fn object_name_rules() {
        assert!(object_name("f", "cluster-b.v1", "x").is_ok());
        for bad in ["", "Upper", "-lead", "trail-", "a_b"] {
            assert!(object_name("f", bad, "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_key_rules() {
        assert!(secret_key("f", "tls.crt").is_ok());
        assert!(secret_key("f", "client_Secret-1").is_ok());
        assert!(secret_key("f", "").is_err());
        assert!(secret_key("f", "a/b").is_err());
    }

    #[test]
    fn audience_rules() {
        assert!(audience("f", "mcp-cluster-b").is_ok());
        assert!(audience("f", "").is_err());
        assert!(audience("f", "a b").is_err());
    }
}
