//! Key and field names of the Valkey layout (see the module documentation of
//! [`crate::store::valkey`]). Pure string work, no I/O.
//!
//! Why the escaping: the token hash field is `{issuer}|{scope}`. Scopes may contain `|`, so the
//! separator is the *first* unescaped `|`, which only works if the issuer cannot contain one:
//! `%` and `|` in the issuer are percent-escaped (the upstream silently corrupted such keys).

use crate::store::{FlowId, TokenKey};
use sha2::{Digest as _, Sha256};
use std::borrow::Cow;

/// Names of every key this store writes, all under one configurable prefix.
///
/// The four key spaces (`oauth:token:`, `oauth:user:`, `oauth:state:`, `oauth:lock:`) are
/// disjoint by their fixed middle part, so no session id, user id or flow id can make a key of
/// one space equal a key of another (a session called `user:alice` is
/// `{prefix}oauth:token:user:alice`, never `{prefix}oauth:user:alice`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpace {
    prefix: String,
}

impl KeySpace {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The hash holding every token of `session`.
    pub fn token(&self, session: &str) -> String {
        format!("{}oauth:token:{session}", self.prefix)
    }

    /// The set of sessions in which `user` has (or recently had) tokens.
    pub fn user_index(&self, user: &str) -> String {
        format!("{}oauth:user:{user}", self.prefix)
    }

    /// The hash of one pending flow. The flow id is a bearer capability, so the key holds its
    /// SHA-256 instead: reading the key space (SCAN, MONITOR, a slow log) never reveals one.
    pub fn flow(&self, id: &FlowId) -> String {
        format!(
            "{}oauth:state:{}",
            self.prefix,
            hex(&Sha256::digest(id.as_str().as_bytes()))
        )
    }

    /// The refresh lock of one token key: a fixed-length hash of the unambiguous (length-framed)
    /// triple, so odd characters in a session, issuer or scope cannot make two locks meet.
    pub fn lock(&self, key: &TokenKey) -> String {
        let mut hasher = Sha256::new();
        for part in [&key.session, &key.issuer, &key.scope] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        format!("{}oauth:lock:{}", self.prefix, hex(&hasher.finalize()))
    }

    /// SCAN pattern matching every token hash under this prefix (and nothing else).
    pub fn token_pattern(&self) -> String {
        format!("{}oauth:token:*", glob_escape(&self.prefix))
    }

    /// SCAN pattern matching every flow hash under this prefix.
    pub fn flow_pattern(&self) -> String {
        format!("{}oauth:state:*", glob_escape(&self.prefix))
    }

    /// The session id of a token hash key, if `key` is one of ours.
    pub fn session_of<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(&self.prefix)?.strip_prefix("oauth:token:")
    }
}

/// The hash field of a token: escaped issuer, `|`, scope.
pub fn token_field(issuer: &str, scope: &str) -> String {
    let issuer = escape_issuer(issuer);
    let mut field = String::with_capacity(issuer.len() + 1 + scope.len());
    field.push_str(&issuer);
    field.push('|');
    field.push_str(scope);
    field
}

/// `(issuer, scope)` of a token hash field; `None` for a field we did not write. Borrows from
/// `field` unless the issuer was escaped (rare: only issuers containing `%` or `|`).
pub fn parse_token_field(field: &str) -> Option<(Cow<'_, str>, &str)> {
    let (issuer, scope) = field.split_once('|')?;
    Some((unescape_issuer(issuer)?, scope))
}

fn escape_issuer(issuer: &str) -> Cow<'_, str> {
    if !issuer.contains(['%', '|']) {
        return Cow::Borrowed(issuer);
    }
    let mut out = String::with_capacity(issuer.len() + 4);
    for c in issuer.chars() {
        match c {
            '%' => out.push_str("%25"),
            '|' => out.push_str("%7C"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Inverse of [`escape_issuer`]; rejects any `%` sequence it would not have produced.
fn unescape_issuer(escaped: &str) -> Option<Cow<'_, str>> {
    if !escaped.contains('%') {
        return Some(Cow::Borrowed(escaped));
    }
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        let code = rest.get(pos + 1..pos + 3)?;
        out.push(match code {
            "25" => '%',
            "7C" => '|',
            _ => return None,
        });
        rest = &rest[pos + 3..];
    }
    out.push_str(rest);
    Some(Cow::Owned(out))
}

/// Escape the glob metacharacters of SCAN MATCH so a prefix matches only itself.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// Bytes of lower- or upper-case hex; `None` if `s` is not exactly `N` bytes of hex.
pub fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let digits = s.as_bytes();
    if digits.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn key_spaces_are_disjoint() {
        let keys = KeySpace::new("mcpoauth:");
        assert_eq!(keys.token("user:alice"), "mcpoauth:oauth:token:user:alice");
        assert_eq!(keys.user_index("alice"), "mcpoauth:oauth:user:alice");
        assert_ne!(keys.token("user:alice"), keys.user_index("alice"));
        assert_eq!(keys.session_of("mcpoauth:oauth:token:s1"), Some("s1"));
        assert_eq!(keys.session_of("mcpoauth:oauth:user:alice"), None);
        assert_eq!(keys.session_of("other:oauth:token:s1"), None);
    }

    #[test]
    fn flow_key_does_not_contain_the_flow_id() {
        let keys = KeySpace::new("p:");
        let id = FlowId::generate();
        let key = keys.flow(&id);
        assert!(key.starts_with("p:oauth:state:"));
        assert!(!key.contains(id.as_str()));
        assert_eq!(key.len(), "p:oauth:state:".len() + 64);
        assert_eq!(key, keys.flow(&id), "deterministic");
    }

    #[test]
    fn lock_keys_are_unambiguous() {
        let keys = KeySpace::new("p:");
        let a = keys.lock(&TokenKey::new("s|i", "x", "y"));
        let b = keys.lock(&TokenKey::new("s", "i|x", "y"));
        let c = keys.lock(&TokenKey::new("s", "i", "x|y"));
        assert_ne!(a, b);
        assert_ne!(b, c);
        assert_ne!(a, c);
        assert!(a.starts_with("p:oauth:lock:"));
    }

    #[test]
    fn issuer_with_pipe_and_percent_round_trips() {
        let field = token_field("https://idp|x%7C", "a|b c");
        assert_eq!(field, "https://idp%7Cx%257C|a|b c");
        let (issuer, scope) = parse_token_field(&field).unwrap_or_else(|| panic!("parse"));
        assert_eq!(issuer, "https://idp|x%7C");
        assert_eq!(scope, "a|b c");
    }

    #[test]
    fn plain_issuers_are_borrowed_not_copied() {
        assert!(matches!(escape_issuer("https://idp"), Cow::Borrowed(_)));
        assert!(matches!(escape_issuer("https://idp|x"), Cow::Owned(_)));
        let field = token_field("https://idp", "s");
        assert!(matches!(
            parse_token_field(&field),
            Some((Cow::Borrowed(_), "s"))
        ));
    }

    #[test]
    fn foreign_fields_are_rejected() {
        assert_eq!(parse_token_field("no-separator"), None);
        assert_eq!(parse_token_field("bad%escape|s"), None);
        assert_eq!(parse_token_field("short%7|s"), None);
        assert_eq!(
            parse_token_field("plain|").map(|(i, s)| (i.into_owned(), s.to_owned())),
            Some(("plain".to_owned(), String::new()))
        );
    }

    #[test]
    fn glob_metacharacters_in_the_prefix_are_escaped() {
        let keys = KeySpace::new("a*b?[c]\\:");
        assert_eq!(keys.token_pattern(), "a\\*b\\?\\[c\\]\\\\:oauth:token:*");
        assert_eq!(KeySpace::new("x:").flow_pattern(), "x:oauth:state:*");
    }

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&bytes), "0001abff");
        assert_eq!(unhex::<4>("0001abff"), Some(bytes));
        assert_eq!(unhex::<4>("0001ABFF"), Some(bytes));
        assert_eq!(unhex::<4>("0001abf"), None);
        assert_eq!(unhex::<4>("0001abfg"), None);
    }

    proptest! {
        #[test]
        fn any_issuer_and_scope_round_trip(issuer in ".*", scope in ".*") {
            let field = token_field(&issuer, &scope);
            let parsed = parse_token_field(&field).map(|(i, s)| (i.into_owned(), s));
            prop_assert_eq!(parsed, Some((issuer.clone(), scope.as_str())));
        }

        #[test]
        fn distinct_keys_give_distinct_fields(
            a in "[a|%7C]{0,6}", b in "[a|%7C]{0,6}", c in "[a|%7C]{0,6}", d in "[a|%7C]{0,6}"
        ) {
            prop_assume!((a.as_str(), b.as_str()) != (c.as_str(), d.as_str()));
            prop_assert_ne!(token_field(&a, &b), token_field(&c, &d));
        }
    }
}
