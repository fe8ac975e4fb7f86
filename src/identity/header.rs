//! `header` identity mode: an authenticating proxy in front of the gateway (oauth2-proxy, an
//! ingress with external auth, a service mesh) has already logged the user in and names them in
//! request headers.
//!
//! The gateway trusts these headers blindly, so this mode is only safe when every request
//! reaches the gateway through that proxy, and the proxy removes any copy of the headers a
//! client sent itself (otherwise anyone can claim to be anyone). Do not expose the gateway's
//! port any other way (use a NetworkPolicy in a cluster).

use super::{Caller, ConfigError, IdentityError};
use http::{HeaderMap, HeaderName};

/// Default user header: the name oauth2-proxy and many ingress controllers use.
pub const DEFAULT_USER_HEADER: &str = "X-Forwarded-User";
/// Longest accepted identity header value, in bytes.
pub const MAX_HEADER_VALUE_BYTES: usize = 256;

/// Settings of `header` mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderConfig {
    /// Header naming the user.
    pub user_header: HeaderName,
    /// Header naming the session; `None`: one session per user (the session is the user).
    pub session_header: Option<HeaderName>,
}

impl HeaderConfig {
    /// Parses the header names.
    pub fn new(user_header: &str, session_header: Option<&str>) -> Result<Self, ConfigError> {
        let name = |raw: &str| {
            HeaderName::from_bytes(raw.trim().as_bytes())
                .map_err(|_| ConfigError::InvalidHeaderName(raw.to_owned()))
        };
        Ok(Self {
            user_header: name(user_header)?,
            session_header: session_header
                .filter(|s| !s.trim().is_empty())
                .map(name)
                .transpose()?,
        })
    }

    /// The caller named by `headers`. A configured session header is required (it is not
    /// silently replaced by the user).
    /// The user the proxy names in `headers`, if it names one validly (browser requests carry
    /// the user header but not always the session header).
    pub fn user<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        header_value(headers, &self.user_header).ok()
    }

    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, IdentityError> {
        let user = header_value(headers, &self.user_header)?;
        let session = match &self.session_header {
            Some(name) => header_value(headers, name)?,
            None => user,
        };
        Ok(Caller::new(user, session))
    }
}

/// The single value of `name`: present once, 1 to [`MAX_HEADER_VALUE_BYTES`] bytes of visible
/// ASCII (no spaces, no control characters), so it is safe as a store key and in logs.
fn header_value<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<&'a str, IdentityError> {
    let invalid = || IdentityError::MissingHeader(name.as_str().to_owned());
    let mut values = headers.get_all(name).iter();
    let value = values.next().ok_or_else(invalid)?;
    if values.next().is_some() {
        return Err(invalid());
    }
    let bytes = value.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_HEADER_VALUE_BYTES
        || !bytes.iter().all(u8::is_ascii_graphic)
    {
        return Err(invalid());
    }
    value.to_str().map_err(|_| invalid())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn user_only_means_one_session_per_user() {
        let cfg = HeaderConfig::new(DEFAULT_USER_HEADER, None).unwrap();
        let caller = cfg
            .caller(&headers(&[("x-forwarded-user", b"alice@example.com")]))
            .unwrap();
        assert_eq!(
            caller,
            Caller::new("alice@example.com", "alice@example.com")
        );
    }

    #[test]
    fn session_header_names_the_session_and_is_required() {
        let cfg = HeaderConfig::new("X-User", Some("X-Session")).unwrap();
        let caller = cfg
            .caller(&headers(&[("x-user", b"bob"), ("x-session", b"s-42")]))
            .unwrap();
        assert_eq!(caller, Caller::new("bob", "s-42"));
        let err = cfg.caller(&headers(&[("x-user", b"bob")])).unwrap_err();
        assert!(matches!(err, IdentityError::MissingHeader(h) if h == "x-session"));
    }

    #[test]
    fn bad_values_are_refused() {
        let cfg = HeaderConfig::new("X-User", None).unwrap();
        let long = vec![b'a'; MAX_HEADER_VALUE_BYTES + 1];
        let cases: Vec<HeaderMap> = vec![
            headers(&[]),
            headers(&[("x-user", b"")]),
            headers(&[("x-user", b"two words")]),
            headers(&[("x-user", b"tab\there")]),
            headers(&[("x-user", "zoë".as_bytes())]),
            headers(&[("x-user", &long)]),
            headers(&[("x-user", b"a"), ("x-user", b"b")]),
        ];
        for h in cases {
            let err = cfg.caller(&h).unwrap_err();
            assert!(
                matches!(&err, IdentityError::MissingHeader(n) if n == "x-user"),
                "{h:?}"
            );
            assert!(err.to_string().contains("x-user"));
        }
        let max = vec![b'a'; MAX_HEADER_VALUE_BYTES];
        assert!(cfg.caller(&headers(&[("x-user", &max)])).is_ok());
    }

    #[test]
    fn header_names_are_validated() {
        assert!(matches!(
            HeaderConfig::new("bad header", None),
            Err(ConfigError::InvalidHeaderName(_))
        ));
        assert!(matches!(
            HeaderConfig::new("X-User", Some("x:y")),
            Err(ConfigError::InvalidHeaderName(_))
        ));
        let cfg = HeaderConfig::new("X-User", Some("  ")).unwrap();
        assert_eq!(cfg.session_header, None, "blank session header means none");
    }
}
