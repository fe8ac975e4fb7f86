//! Key and field names of the Valkey layout (see the module documentation of
//! [`crate::store::valkey`]). Pure string work, no I/O.
//!
//! Why the escaping: the token hash field is `@{issuer}|{namespace}|{resource}|{scope}`. Scopes
//! may contain `|`, so the separators are the first three unescaped `|`, which only works if the
//! issuer, namespace and resource cannot contain one: `%` and `|` in them are percent-escaped
//! (the upstream silently corrupted such keys).
//!
//! The leading `@` marks the layout in which tokens are bound to their resource. Fields of the
//! seed's layout, `{issuer}|{scope}`, start with the issuer (an absolute URL, never `@`); they
//! name no resource, so nothing can tell which server such a token is for: readers never use
//! them and the stores drop them ([`TokenField::Legacy`]).

use crate::store::hex::hex;
use crate::store::{FlowId, TokenBinding, TokenKey};
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
    /// parts, so odd characters in a session, binding or scope cannot make two locks meet.
    pub fn lock(&self, key: &TokenKey) -> String {
        let mut hasher = Sha256::new();
        let b = &key.binding;
        for part in [
            &key.session,
            &b.issuer,
            &b.namespace,
            &b.resource,
            &key.scope,
        ] {
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

/// Marks a field of the current layout (see the module documentation).
const BOUND_MARK: char = '@';

/// The hash field of a token: `@`, then the escaped issuer, namespace and resource, and the
/// scope, separated by `|`.
pub fn token_field(binding: &TokenBinding, scope: &str) -> String {
    let parts = [
        escape_issuer(&binding.issuer),
        escape_issuer(&binding.namespace),
        escape_issuer(&binding.resource),
    ];
    let len = parts.iter().map(|p| p.len() + 1).sum::<usize>() + 1 + scope.len();
    let mut field = String::with_capacity(len);
    field.push(BOUND_MARK);
    for part in &parts {
        field.push_str(part);
        field.push('|');
    }
    field.push_str(scope);
    field
}

/// A token hash field as read. Parts borrow from the field unless they were escaped (rare).
#[derive(Debug, PartialEq, Eq)]
pub enum TokenField<'a> {
    /// The current layout: the token's binding and requested scope.
    Bound {
        issuer: Cow<'a, str>,
        namespace: Cow<'a, str>,
        resource: Cow<'a, str>,
        scope: &'a str,
    },
    /// The seed's `{issuer}|{scope}` layout, which names no resource: never used, dropped.
    Legacy,
    /// Not a field any version of the gateway writes.
    Foreign,
}

impl TokenField<'_> {
    /// Whether this is exactly `binding`'s field (any scope).
    pub fn is_for(&self, binding: &TokenBinding) -> bool {
        matches!(self, TokenField::Bound { issuer, namespace, resource, .. }
            if *issuer == binding.issuer.as_str()
                && *namespace == binding.namespace.as_str()
                && *resource == binding.resource.as_str())
    }

    /// Whether the field is of the current layout and issued by `wanted`.
    pub fn is_of_issuer(&self, wanted: &str) -> bool {
        matches!(self, TokenField::Bound { issuer, .. } if *issuer == wanted)
    }

    /// The key of a current-layout field in `session`.
    pub fn key(&self, session: &str) -> Option<TokenKey> {
        match self {
            TokenField::Bound {
                issuer,
                namespace,
                resource,
                scope,
            } => Some(TokenKey::new(
                session,
                TokenBinding::new(issuer.as_ref(), namespace.as_ref(), resource.as_ref()),
                *scope,
            )),
            TokenField::Legacy | TokenField::Foreign => None,
        }
    }
}

/// Read a token hash field.
pub fn parse_token_field(field: &str) -> TokenField<'_> {
    let Some(rest) = field.strip_prefix(BOUND_MARK) else {
        // The seed's layout: an escaped issuer, `|`, a scope.
        return match field.split_once('|') {
            Some((issuer, _)) if unescape_issuer(issuer).is_some() => TokenField::Legacy,
            _ => TokenField::Foreign,
        };
    };
    let mut parts = rest.splitn(4, '|');
    let (Some(issuer), Some(namespace), Some(resource), Some(scope)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return TokenField::Foreign;
    };
    match (
        unescape_issuer(issuer),
        unescape_issuer(namespace),
        unescape_issuer(resource),
    ) {
        (Some(issuer), Some(namespace), Some(resource)) => TokenField::Bound {
            issuer,
            namespace,
            resource,
            scope,
        },
        _ => TokenField::Foreign,
    }
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
        let bind = |i: &str, n: &str, r: &str| TokenBinding::new(i, n, r);
        let locks = [
            keys.lock(&TokenKey::new("s|i", bind("x", "n", "r"), "y")),
            keys.lock(&TokenKey::new("s", bind("i|x", "n", "r"), "y")),
            keys.lock(&TokenKey::new("s", bind("i", "x|n", "r"), "y")),
            keys.lock(&TokenKey::new("s", bind("i", "x", "n|r"), "y")),
            keys.lock(&TokenKey::new("s", bind("i", "x", "n"), "r|y")),
        ];
        for (i, a) in locks.iter().enumerate() {
            for b in &locks[i + 1..] {
                assert_ne!(a, b);
            }
        }
        let a = &locks[0];
        assert!(a.starts_with("p:oauth:lock:"));
    }

    fn bound(field: &str) -> Option<(String, String, String, String)> {
        match parse_token_field(field) {
            TokenField::Bound {
                issuer,
                namespace,
                resource,
                scope,
            } => Some((
                issuer.into_owned(),
                namespace.into_owned(),
                resource.into_owned(),
                scope.to_owned(),
            )),
            _ => None,
        }
    }

    #[test]
    fn pipes_and_percents_round_trip() {
        let binding = TokenBinding::new("https://idp|x%7C", "team|a", "https://mcp/r|%");
        let field = token_field(&binding, "a|b c");
        assert_eq!(
            field,
            "@https://idp%7Cx%257C|team%7Ca|https://mcp/r%7C%25|a|b c"
        );
        assert_eq!(
            bound(&field),
            Some((
                "https://idp|x%7C".into(),
                "team|a".into(),
                "https://mcp/r|%".into(),
                "a|b c".into()
            ))
        );
        assert!(parse_token_field(&field).is_for(&binding));
        assert!(!parse_token_field(&field).is_for(&TokenBinding::new(
            "https://idp|x%7C",
            "team|a",
            "https://mcp/other"
        )));
    }

    #[test]
    fn plain_parts_are_borrowed_not_copied() {
        assert!(matches!(escape_issuer("https://idp"), Cow::Borrowed(_)));
        assert!(matches!(escape_issuer("https://idp|x"), Cow::Owned(_)));
        let field = token_field(&TokenBinding::new("https://idp", "ns", "https://mcp"), "s");
        assert!(matches!(
            parse_token_field(&field),
            TokenField::Bound {
                issuer: Cow::Borrowed(_),
                namespace: Cow::Borrowed(_),
                resource: Cow::Borrowed(_),
                scope: "s"
            }
        ));
    }

    #[test]
    fn seed_layout_fields_are_legacy_and_never_bound() {
        for legacy in [
            "https://idp|",
            "https://idp|openid mcp",
            "https://i%7Cdp|a|b",
        ] {
            assert_eq!(parse_token_field(legacy), TokenField::Legacy, "{legacy}");
            assert_eq!(parse_token_field(legacy).key("s"), None);
            assert!(!parse_token_field(legacy).is_of_issuer("https://idp"));
        }
    }

    #[test]
    fn foreign_fields_are_rejected() {
        for foreign in [
            "no-separator",
            "bad%escape|s",
            "short%7|s",
            "@https://idp|ns|resource-without-scope-separator",
            "@https://idp|ns",
            "@bad%zz|ns|r|s",
            "@",
        ] {
            assert_eq!(parse_token_field(foreign), TokenField::Foreign, "{foreign}");
        }
        assert_eq!(
            bound("@i|n|r|"),
            Some(("i".into(), "n".into(), "r".into(), String::new()))
        );
    }

    #[test]
    fn glob_metacharacters_in_the_prefix_are_escaped() {
        let keys = KeySpace::new("a*b?[c]\\:");
        assert_eq!(keys.token_pattern(), "a\\*b\\?\\[c\\]\\\\:oauth:token:*");
        assert_eq!(KeySpace::new("x:").flow_pattern(), "x:oauth:state:*");
    }

    proptest! {
        #[test]
        fn any_binding_and_scope_round_trip(
            issuer in ".*", namespace in ".*", resource in ".*", scope in ".*"
        ) {
            let binding = TokenBinding::new(issuer.clone(), namespace.clone(), resource.clone());
            let field = token_field(&binding, &scope);
            prop_assert_eq!(bound(&field), Some((issuer, namespace, resource, scope.clone())));
            prop_assert_eq!(
                parse_token_field(&field).key("s"),
                Some(TokenKey::new("s", binding, scope))
            );
        }

        #[test]
        fn distinct_keys_give_distinct_fields(
            a in "[a|%7C@]{0,5}", b in "[a|%7C@]{0,5}", c in "[a|%7C@]{0,5}",
            d in "[a|%7C@]{0,5}", e in "[a|%7C@]{0,5}", f in "[a|%7C@]{0,5}"
        ) {
            prop_assume!((a.as_str(), b.as_str(), c.as_str()) != (d.as_str(), e.as_str(), f.as_str()));
            prop_assert_ne!(
                token_field(&TokenBinding::new(a.clone(), b.clone(), "r"), &c),
                token_field(&TokenBinding::new(d.clone(), e.clone(), "r"), &f)
            );
            prop_assert_ne!(
                token_field(&TokenBinding::new("i", a, b), &c),
                token_field(&TokenBinding::new("i", d, e), &f)
            );
        }

        #[test]
        fn parsing_any_field_never_panics(field in ".*") {
            let _ = parse_token_field(&field).key("s");
        }
    }
}
