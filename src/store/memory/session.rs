//! The token entries of one session, as a pure data structure (no locking, no I/O).
//!
//! One vector of `(binding, scope, record)` slots kept sorted by `(binding, scope)`, rather than
//! nested maps: a session holds a handful of entries, so one contiguous allocation costs less
//! memory and fewer cache misses than tree nodes (a `BTreeMap` leaf reserves room for 11
//! values), and a binary search finds a key from borrowed values without allocating. Bindings
//! are compared whole (issuer, namespace and resource by exact equality), never by prefix or by
//! splitting on a separator, and in-order iteration is already the order of [`TokenKey`]. A
//! binding sorts by issuer first, so the bindings of one issuer form one contiguous run.
//!
//! [`TokenKey`]: crate::store::TokenKey

use crate::store::{TokenBinding, TokenRecord};
use std::cmp::Ordering;

#[derive(Debug)]
struct Slot {
    binding: TokenBinding,
    scope: Box<str>,
    record: TokenRecord,
}

impl Slot {
    fn cmp_key(&self, binding: &TokenBinding, scope: &str) -> Ordering {
        (&self.binding, &*self.scope).cmp(&(binding, scope))
    }
}

/// Invariant: `slots` is sorted by `(binding, scope)` with no duplicates.
#[derive(Debug, Default)]
pub(super) struct SessionEntries {
    slots: Vec<Slot>,
}

impl SessionEntries {
    pub(super) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn find(&self, binding: &TokenBinding, scope: &str) -> Result<usize, usize> {
        self.slots
            .binary_search_by(|slot| slot.cmp_key(binding, scope))
    }

    pub(super) fn get(&self, binding: &TokenBinding, scope: &str) -> Option<&TokenRecord> {
        let i = self.find(binding, scope).ok()?;
        self.slots.get(i).map(|slot| &slot.record)
    }

    /// The slots matching `belongs`, which must hold for one contiguous run of the sort order
    /// and be false before it (a binding, or every binding of one issuer).
    fn run(
        &self,
        before: impl Fn(&Slot) -> bool,
        belongs: impl Fn(&Slot) -> bool,
    ) -> std::ops::Range<usize> {
        let start = self.slots.partition_point(before);
        let len = self.slots[start..]
            .iter()
            .take_while(|slot| belongs(slot))
            .count();
        start..start + len
    }

    fn binding_range(&self, binding: &TokenBinding) -> std::ops::Range<usize> {
        self.run(
            |slot| &slot.binding < binding,
            |slot| &slot.binding == binding,
        )
    }

    fn issuer_range(&self, issuer: &str) -> std::ops::Range<usize> {
        self.run(
            |slot| slot.binding.issuer.as_str() < issuer,
            |slot| slot.binding.issuer == issuer,
        )
    }

    /// Every scope of exactly `binding`, in ascending scope order.
    pub(super) fn scopes_of(
        &self,
        binding: &TokenBinding,
    ) -> impl Iterator<Item = (&str, &TokenRecord)> {
        self.slots[self.binding_range(binding)]
            .iter()
            .map(|slot| (&*slot.scope, &slot.record))
    }

    /// Every entry as `(binding, scope, record)`, sorted by `(binding, scope)`.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&TokenBinding, &str, &TokenRecord)> {
        self.slots
            .iter()
            .map(|slot| (&slot.binding, &*slot.scope, &slot.record))
    }

    /// Insert or replace; returns the replaced record. Allocates only for a new key.
    pub(super) fn put(
        &mut self,
        binding: &TokenBinding,
        scope: &str,
        record: TokenRecord,
    ) -> Option<TokenRecord> {
        match self.find(binding, scope) {
            Ok(i) => self
                .slots
                .get_mut(i)
                .map(|slot| std::mem::replace(&mut slot.record, record)),
            Err(i) => {
                let slot = Slot {
                    binding: binding.clone(),
                    scope: scope.into(),
                    record,
                };
                self.slots.insert(i, slot);
                None
            }
        }
    }

    pub(super) fn remove(&mut self, binding: &TokenBinding, scope: &str) -> Option<TokenRecord> {
        let i = self.find(binding, scope).ok()?;
        Some(self.slots.remove(i).record)
    }

    /// Remove every binding and scope of `issuer`; returns the removed records.
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

    /// A binding of `issuer` for the one resource `ns`'s servers share.
    fn b(issuer: &str) -> TokenBinding {
        TokenBinding::new(issuer, "ns", "https://mcp/r")
    }

    fn keys(e: &SessionEntries) -> Vec<(String, String)> {
        e.iter()
            .map(|(b, s, _)| (b.issuer.clone(), s.to_owned()))
            .collect()
    }

    #[test]
    fn put_replaces_and_returns_old() {
        let mut e = SessionEntries::default();
        assert!(e.put(&b("i"), "s", rec("a")).is_none());
        let old = e.put(&b("i"), "s", rec("b"));
        assert_eq!(old.map(|r| r.user), Some("a".to_owned()));
        assert_eq!(e.get(&b("i"), "s").map(|r| r.user.as_str()), Some("b"));
    }

    #[test]
    fn iteration_is_sorted_by_issuer_then_scope() {
        let mut e = SessionEntries::default();
        for (i, s) in [("b", "y"), ("a", "z"), ("b", ""), ("a", "a b")] {
            e.put(&b(i), s, rec("u"));
        }
        let want: Vec<(String, String)> = [("a", "a b"), ("a", "z"), ("b", ""), ("b", "y")]
            .iter()
            .map(|(i, s)| ((*i).to_owned(), (*s).to_owned()))
            .collect();
        assert_eq!(keys(&e), want);
    }

    #[test]
    fn bindings_of_one_issuer_are_kept_apart() {
        let mut e = SessionEntries::default();
        let mine = TokenBinding::new("https://idp", "team-a", "https://mcp/a");
        let other_resource = TokenBinding::new("https://idp", "team-a", "https://mcp/b");
        let other_namespace = TokenBinding::new("https://idp", "team-b", "https://mcp/a");
        e.put(&mine, "s", rec("mine"));
        e.put(&other_resource, "s", rec("b"));
        e.put(&other_namespace, "s", rec("c"));
        let users = |e: &SessionEntries, binding: &TokenBinding| -> Vec<String> {
            e.scopes_of(binding).map(|(_, r)| r.user.clone()).collect()
        };
        assert_eq!(users(&e, &mine), ["mine"]);
        assert_eq!(users(&e, &other_resource), ["b"]);
        assert_eq!(users(&e, &other_namespace), ["c"]);
        let unknown = TokenBinding::new("https://idp", "team-c", "https://mcp/a");
        assert!(users(&e, &unknown).is_empty());
        assert_eq!(
            e.remove(&other_namespace, "s").map(|r| r.user),
            Some("c".into())
        );
        assert_eq!(
            users(&e, &mine),
            ["mine"],
            "removing another binding leaves this one"
        );
    }

    #[test]
    fn removing_last_scope_leaves_no_empty_issuer() {
        let mut e = SessionEntries::default();
        e.put(&b("i"), "s", rec("u"));
        assert!(e.remove(&b("i"), "other").is_none());
        assert!(e.remove(&b("i"), "s").is_some());
        assert!(e.is_empty());
        assert_eq!(e.scopes_of(&b("i")).count(), 0);
    }

    #[test]
    fn retain_reports_removed_and_drops_empty_issuers() {
        let mut e = SessionEntries::default();
        e.put(&b("i1"), "s", rec("a"));
        e.put(&b("i2"), "s", rec("b"));
        e.put(&b("i2"), "t", rec("a"));
        let mut gone = Vec::new();
        e.retain(|r| r.user != "a", |r| gone.push(r.user.clone()));
        assert_eq!(gone, vec!["a".to_owned(), "a".to_owned()]);
        assert_eq!(keys(&e), vec![("i2".to_owned(), "s".to_owned())]);
    }

    #[test]
    fn remove_issuer_takes_all_bindings_and_scopes_only_of_that_issuer() {
        let mut e = SessionEntries::default();
        e.put(&b("https://idp"), "a", rec("u"));
        e.put(&b("https://idp"), "b", rec("u"));
        e.put(
            &TokenBinding::new("https://idp", "other", "https://x"),
            "a",
            rec("u"),
        );
        e.put(&b("https://idp/x"), "a", rec("u"));
        assert_eq!(e.remove_issuer("https://idp").len(), 3);
        assert_eq!(keys(&e), vec![("https://idp/x".to_owned(), "a".to_owned())]);
        assert!(e.remove_issuer("missing").is_empty());
    }
}
