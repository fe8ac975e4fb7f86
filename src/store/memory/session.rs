//! The token entries of one session, as a pure data structure (no locking, no I/O).
//!
//! One vector of `(issuer, scope, record)` slots kept sorted by `(issuer, scope)`, rather than
//! nested maps: a session holds a handful of entries, so one contiguous allocation costs less
//! memory and fewer cache misses than tree nodes (a `BTreeMap` leaf reserves room for 11
//! values), and a binary search finds a key from borrowed `&str`s without allocating. Issuers are
//! compared whole, never by prefix or by splitting on a separator, and in-order iteration is
//! already the order of [`TokenKey`].
//!
//! [`TokenKey`]: crate::store::TokenKey

use crate::store::TokenRecord;
use std::cmp::Ordering;

#[derive(Debug)]
struct Slot {
    issuer: Box<str>,
    scope: Box<str>,
    record: TokenRecord,
}

impl Slot {
    fn cmp_key(&self, issuer: &str, scope: &str) -> Ordering {
        (&*self.issuer, &*self.scope).cmp(&(issuer, scope))
    }
}

/// Invariant: `slots` is sorted by `(issuer, scope)` with no duplicates.
#[derive(Debug, Default)]
pub(super) struct SessionEntries {
    slots: Vec<Slot>,
}

impl SessionEntries {
    pub(super) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn find(&self, issuer: &str, scope: &str) -> Result<usize, usize> {
        self.slots
            .binary_search_by(|slot| slot.cmp_key(issuer, scope))
    }

    pub(super) fn get(&self, issuer: &str, scope: &str) -> Option<&TokenRecord> {
        let i = self.find(issuer, scope).ok()?;
        self.slots.get(i).map(|slot| &slot.record)
    }

    /// The slots of `issuer`: a contiguous run, since slots are sorted by issuer first.
    fn issuer_range(&self, issuer: &str) -> std::ops::Range<usize> {
        let start = self.slots.partition_point(|slot| &*slot.issuer < issuer);
        let len = self.slots[start..]
            .iter()
            .take_while(|slot| &*slot.issuer == issuer)
            .count();
        start..start + len
    }

    /// Every scope of `issuer`, in ascending scope order.
    pub(super) fn scopes_of(&self, issuer: &str) -> impl Iterator<Item = (&str, &TokenRecord)> {
        self.slots[self.issuer_range(issuer)]
            .iter()
            .map(|slot| (&*slot.scope, &slot.record))
    }

    /// Every entry as `(issuer, scope, record)`, sorted by `(issuer, scope)`.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &str, &TokenRecord)> {
        self.slots
            .iter()
            .map(|slot| (&*slot.issuer, &*slot.scope, &slot.record))
    }

    /// Insert or replace; returns the replaced record. Allocates only for a new key.
    pub(super) fn put(
        &mut self,
        issuer: &str,
        scope: &str,
        record: TokenRecord,
    ) -> Option<TokenRecord> {
        match self.find(issuer, scope) {
            Ok(i) => self
                .slots
                .get_mut(i)
                .map(|slot| std::mem::replace(&mut slot.record, record)),
            Err(i) => {
                let slot = Slot {
                    issuer: issuer.into(),
                    scope: scope.into(),
                    record,
                };
                self.slots.insert(i, slot);
                None
            }
        }
    }

    pub(super) fn remove(&mut self, issuer: &str, scope: &str) -> Option<TokenRecord> {
        let i = self.find(issuer, scope).ok()?;
        Some(self.slots.remove(i).record)
    }

    /// Remove every scope of `issuer`; returns the removed records.
    pub(super) fn remove_issuer(&mut self, issuer: &str) -> Vec<TokenRecord> {
        let range = self.issuer_range(issuer);
        self.slots.drain(range).map(|slot| slot.record).collect()
    }

    /// Keep the records for which `keep` holds; `removed` sees each record before it is dropped.
    pub(super) fn retain(
        &mut self,
        mut keep: impl FnMut(&TokenRecord) -> bool,
        mut removed: impl FnMut(&TokenRecord),
    ) {
        self.slots.retain(|slot| {
            let k = keep(&slot.record);
            if !k {
                removed(&slot.record);
            }
            k
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn rec(user: &str) -> TokenRecord {
        TokenRecord {
            access_token: SecretString::from("at"),
            token_type: "Bearer".into(),
            refresh_token: None,
            expires_at: None,
            granted_scope: None,
            issuer: "iss".into(),
            client_id: "client".into(),
            user: user.into(),
            obtained_at: 0,
        }
    }

    fn keys(e: &SessionEntries) -> Vec<(String, String)> {
        e.iter()
            .map(|(i, s, _)| (i.to_owned(), s.to_owned()))
            .collect()
    }

    #[test]
    fn put_replaces_and_returns_old() {
        let mut e = SessionEntries::default();
        assert!(e.put("i", "s", rec("a")).is_none());
        let old = e.put("i", "s", rec("b"));
        assert_eq!(old.map(|r| r.user), Some("a".to_owned()));
        assert_eq!(e.get("i", "s").map(|r| r.user.as_str()), Some("b"));
    }

    #[test]
    fn iteration_is_sorted_by_issuer_then_scope() {
        let mut e = SessionEntries::default();
        for (i, s) in [("b", "y"), ("a", "z"), ("b", ""), ("a", "a b")] {
            e.put(i, s, rec("u"));
        }
        let want: Vec<(String, String)> = [("a", "a b"), ("a", "z"), ("b", ""), ("b", "y")]
            .iter()
            .map(|(i, s)| ((*i).to_owned(), (*s).to_owned()))
            .collect();
        assert_eq!(keys(&e), want);
    }

    #[test]
    fn removing_last_scope_leaves_no_empty_issuer() {
        let mut e = SessionEntries::default();
        e.put("i", "s", rec("u"));
        assert!(e.remove("i", "other").is_none());
        assert!(e.remove("i", "s").is_some());
        assert!(e.is_empty());
        assert_eq!(e.scopes_of("i").count(), 0);
    }

    #[test]
    fn retain_reports_removed_and_drops_empty_issuers() {
        let mut e = SessionEntries::default();
        e.put("i1", "s", rec("a"));
        e.put("i2", "s", rec("b"));
        e.put("i2", "t", rec("a"));
        let mut gone = Vec::new();
        e.retain(|r| r.user != "a", |r| gone.push(r.user.clone()));
        assert_eq!(gone, vec!["a".to_owned(), "a".to_owned()]);
        assert_eq!(keys(&e), vec![("i2".to_owned(), "s".to_owned())]);
    }

    #[test]
    fn remove_issuer_takes_all_scopes_only_of_that_issuer() {
        let mut e = SessionEntries::default();
        e.put("https://idp", "a", rec("u"));
        e.put("https://idp", "b", rec("u"));
        e.put("https://idp/x", "a", rec("u"));
        assert_eq!(e.remove_issuer("https://idp").len(), 2);
        assert_eq!(keys(&e), vec![("https://idp/x".to_owned(), "a".to_owned())]);
        assert!(e.remove_issuer("missing").is_empty());
    }
}
