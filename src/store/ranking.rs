//! Which stored token wins when several match one session and binding: the one rule every
//! backend's `TokenStore::get_bound` follows ([`preferred`]) and the status page reports by
//! ([`best_for_binding`]), as pure functions.
//!
//! The choice does not depend on the order candidates are fed in, so a store that reads entries
//! in an arbitrary order (a hash, a scan) makes the same choice as the in-memory store. The
//! upstream picked whichever entry its map iteration met first, which could return a stale,
//! rotated token.

use crate::store::{TokenBinding, TokenKey, TokenRecord};
use secrecy::ExposeSecret as _;
use std::cmp::{Ordering, Reverse};

/// Among `(scope, record)` candidates of one session and binding, the one `get_bound` returns:
/// skip records expired at `now` without a refresh token; prefer a non-empty access token; then
/// the latest expiry (`None` = never expires = latest); then the smallest scope string.
pub fn preferred<'a, I>(candidates: I, now: u64) -> Option<(&'a str, &'a TokenRecord)>
where
    I: IntoIterator<Item = (&'a str, &'a TokenRecord)>,
{
    candidates
        .into_iter()
        .filter(|(_, record)| record.is_usable(now))
        .max_by(|a, b| compare(*a, *b))
}

/// The entry `get_bound` returns for `binding`, among a session's `entries` as
/// `all_for_session` returns them.
pub fn best_for_binding<'a>(
    entries: &'a [(TokenKey, TokenRecord)],
    binding: &TokenBinding,
    now: u64,
) -> Option<&'a TokenRecord> {
    let candidates = entries
        .iter()
        .filter(|(k, _)| k.binding == *binding)
        .map(|(k, r)| (k.scope.as_str(), r));
    preferred(candidates, now).map(|(_, r)| r)
}

fn compare(a: (&str, &TokenRecord), b: (&str, &TokenRecord)) -> Ordering {
    rank(a).cmp(&rank(b))
}

/// Larger is better. Scopes are unique per (session, binding), so no two candidates tie.
fn rank<'a>((scope, record): (&'a str, &TokenRecord)) -> (bool, u64, Reverse<&'a str>) {
    (
        !record.access_token.expose_secret().is_empty(),
        record.expires_at.unwrap_or(u64::MAX),
        Reverse(scope),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    const NOW: u64 = 1_000_000;

    fn rec(access: &str, expires_at: Option<u64>, refresh: bool) -> TokenRecord {
        TokenRecord {
            access_token: SecretString::from(access),
            token_type: "Bearer".into(),
            refresh_token: refresh.then(|| SecretString::from("rt")),
            expires_at,
            granted_scope: None,
            issuer: "iss".into(),
            client_id: "c".into(),
            user: "u".into(),
            obtained_at: 0,
        }
    }

    fn pick<'a>(c: &'a [(&'a str, TokenRecord)]) -> Option<&'a str> {
        preferred(c.iter().map(|(s, r)| (*s, r)), NOW).map(|(s, _)| s)
    }

    /// Every permutation of the candidates must give the same answer.
    fn pick_all_orders(c: &[(&str, TokenRecord)]) -> Option<String> {
        let forward = pick(c).map(str::to_owned);
        let reversed: Vec<(&str, TokenRecord)> = c.iter().rev().cloned().collect();
        assert_eq!(
            pick(&reversed).map(str::to_owned),
            forward,
            "order changed the choice"
        );
        forward
    }

    #[test]
    fn non_empty_access_token_beats_later_expiry() {
        let c = [
            ("a", rec("", None, true)),
            ("b", rec("x", Some(NOW + 10), false)),
        ];
        assert_eq!(pick_all_orders(&c).as_deref(), Some("b"));
    }

    #[test]
    fn later_expiry_wins_and_none_is_latest() {
        let c = [
            ("a", rec("x", Some(NOW + 10), false)),
            ("b", rec("x", Some(NOW + 1000), false)),
        ];
        assert_eq!(pick_all_orders(&c).as_deref(), Some("b"));
        let c = [
            ("a", rec("x", Some(NOW + 1000), false)),
            ("b", rec("x", None, false)),
        ];
        assert_eq!(pick_all_orders(&c).as_deref(), Some("b"));
    }

    #[test]
    fn smallest_scope_breaks_ties() {
        let c = [
            ("b", rec("x", Some(NOW + 5), false)),
            ("a b", rec("x", Some(NOW + 5), false)),
            ("c", rec("x", Some(NOW + 5), false)),
        ];
        assert_eq!(pick_all_orders(&c).as_deref(), Some("a b"));
    }

    #[test]
    fn expired_without_refresh_is_skipped_but_refreshable_is_kept() {
        let c = [("a", rec("x", Some(NOW - 1), false))];
        assert_eq!(pick_all_orders(&c), None);
        let c = [("a", rec("x", Some(NOW), false))];
        assert_eq!(pick_all_orders(&c), None, "expiring exactly now is expired");
        let c = [
            ("a", rec("x", Some(NOW - 1), false)),
            ("b", rec("x", Some(NOW - 5), true)),
        ];
        assert_eq!(pick_all_orders(&c).as_deref(), Some("b"));
        // Skipping comes before the access-token preference.
        let c = [
            ("a", rec("x", Some(NOW - 1), false)),
            ("b", rec("", None, false)),
        ];
        assert_eq!(pick_all_orders(&c).as_deref(), Some("b"));
    }

    #[test]
    fn no_candidates_gives_none() {
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn best_for_binding_looks_only_at_that_binding() {
        let mine = TokenBinding::new("https://idp", "ns", "https://mcp");
        let other = TokenBinding::new("https://idp", "ns", "https://other");
        let entries = vec![
            (
                TokenKey::new("s", mine.clone(), "a"),
                rec("x", Some(NOW + 10), false),
            ),
            (
                TokenKey::new("s", mine.clone(), "b"),
                rec("x", Some(NOW + 20), false),
            ),
            (
                TokenKey::new("s", other.clone(), "a"),
                rec("x", Some(NOW + 99), false),
            ),
        ];
        let best = best_for_binding(&entries, &mine, NOW);
        assert_eq!(best.and_then(|r| r.expires_at), Some(NOW + 20));
        let best = best_for_binding(&entries, &other, NOW);
        assert_eq!(best.and_then(|r| r.expires_at), Some(NOW + 99));
        let none = TokenBinding::new("https://idp", "ns2", "https://mcp");
        assert!(best_for_binding(&entries, &none, NOW).is_none());
    }
}
