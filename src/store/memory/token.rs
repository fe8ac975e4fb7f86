//! In-memory [`TokenStore`].
//!
//! Layout: `session → SessionEntries` in a [`DashMap`] (a sharded `RwLock<HashMap>`), plus a
//! [`UserIndex`] for `delete_by_user`. Why a `DashMap` keyed by session: the hot path is a `get`
//! or `get_bound` of one session, which takes a *read* lock on one shard only, so it never
//! waits for gets of other sessions and only briefly for writes that hash to the same shard. Every
//! operation on one session (put, delete, delete_by_issuer, ...) is one locked step on one shard.
//!
//! Locking rules: all work is synchronous (the async trait methods call the sync ones, so no lock
//! is ever held across an `.await`); at most one shard of the sessions map is held at a time,
//! and while holding it only the user index may be locked (never the reverse), so no lock cycle
//! exists. Records are cloned in and out: callers never share a record with the store.

use super::cleanup::spawn_periodic;
use super::session::SessionEntries;
use super::user_index::UserIndex;
use crate::store::ranking::preferred;
use crate::store::{StoreError, TokenBinding, TokenKey, TokenRecord, TokenStore};
use crate::time::unix_now;
use async_trait::async_trait;
use dashmap::DashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Tokens of every session, in process memory. Cannot fail: every method returns `Ok`.
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    sessions: DashMap<String, SessionEntries>,
    users: UserIndex,
    /// Number of entries, so `count` does not walk every shard. Changed under the session lock
    /// that adds or removes the entry; read without a lock (a diagnostic figure).
    entries: AtomicUsize,
}

impl MemoryTokenStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Run [`TokenStore::remove_expired`] every `interval` until `cancel` fires (or the store is
    /// dropped: the task keeps only a weak reference).
    pub fn spawn_cleanup(
        self: Arc<Self>,
        interval: Duration,
        cancel: CancellationToken,
    ) -> JoinHandle<()> {
        spawn_periodic(self, interval, cancel, "tokens", |store, now| {
            store.remove_expired_sync(now)
        })
    }

    /// Synchronous [`TokenStore::put`].
    pub fn put_sync(&self, key: &TokenKey, record: TokenRecord) {
        let session_id = key.session.as_str();
        // `get_mut` first: overwriting an existing session must not allocate its key again. No
        // guard is held in the `None` arm, so `entry` cannot deadlock on the same shard.
        let mut session = match self.sessions.get_mut(session_id) {
            Some(session) => session,
            None => self.sessions.entry(key.session.clone()).or_default(),
        };
        let previous_same_user = session
            .get(&key.binding, &key.scope)
            .map(|old| old.user == record.user);
        match previous_same_user {
            Some(true) => {}
            Some(false) => self.users.add(&record.user, session_id),
            None => {
                self.users.add(&record.user, session_id);
                self.entries.fetch_add(1, Ordering::Relaxed);
            }
        }
        let replaced = session.put(&key.binding, &key.scope, record);
        if let Some(old) = replaced
            && previous_same_user == Some(false)
        {
            self.users.sub(&old.user, session_id, 1);
        }
    }

    /// Synchronous [`TokenStore::get`].
    pub fn get_sync(&self, key: &TokenKey) -> Option<TokenRecord> {
        let session = self.sessions.get(key.session.as_str())?;
        session.get(&key.binding, &key.scope).cloned()
    }

    /// Synchronous [`TokenStore::get_bound`], with the clock passed in.
    pub fn get_bound_at(
        &self,
        session: &str,
        binding: &TokenBinding,
        now: u64,
    ) -> Option<(TokenKey, TokenRecord)> {
        let entries = self.sessions.get(session)?;
        let (scope, record) = preferred(entries.scopes_of(binding), now)?;
        Some((
            TokenKey::new(session, binding.clone(), scope),
            record.clone(),
        ))
    }

    /// Synchronous [`TokenStore::all_for_session`].
    pub fn all_for_session_sync(&self, session: &str) -> Vec<(TokenKey, TokenRecord)> {
        let Some(entries) = self.sessions.get(session) else {
            return Vec::new();
        };
        entries
            .iter()
            .map(|(binding, scope, record)| {
                (
                    TokenKey::new(session, binding.clone(), scope),
                    record.clone(),
                )
            })
            .collect()
    }

    /// Synchronous [`TokenStore::delete`].
    pub fn delete_sync(&self, key: &TokenKey) -> bool {
        let mut removed = false;
        self.edit_session(&key.session, |entries| {
            if let Some(old) = entries.remove(&key.binding, &key.scope) {
                self.users.sub(&old.user, &key.session, 1);
                removed = true;
            }
        });
        if removed {
            self.entries.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// Synchronous [`TokenStore::delete_by_session`].
    pub fn delete_by_session_sync(&self, session: &str) -> usize {
        let mut removed = 0;
        self.edit_session(session, |entries| {
            for (_, _, record) in entries.iter() {
                self.users.sub(&record.user, session, 1);
                removed += 1;
            }
            *entries = SessionEntries::default();
        });
        self.entries.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    /// Synchronous [`TokenStore::delete_by_user`].
    ///
    /// Visits the sessions the index lists for `user`, one at a time. An entry of `user` put
    /// into a session that was not yet indexed while this runs may survive: the call behaves as
    /// if it ran just before that concurrent put.
    pub fn delete_by_user_sync(&self, user: &str) -> usize {
        let mut total = 0;
        for session in self.users.sessions_of(user) {
            let mut removed = 0;
            self.edit_session(&session, |entries| {
                entries.retain(|record| record.user != user, |_| removed += 1);
                self.users.sub(user, &session, removed);
            });
            total += removed;
        }
        self.entries.fetch_sub(total, Ordering::Relaxed);
        total
    }

    /// Synchronous [`TokenStore::delete_by_issuer`].
    pub fn delete_by_issuer_sync(&self, session: &str, issuer: &str) -> usize {
        let mut removed = 0;
        self.edit_session(session, |entries| {
            for record in entries.remove_issuer(issuer) {
                self.users.sub(&record.user, session, 1);
                removed += 1;
            }
        });
        self.entries.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    /// Synchronous [`TokenStore::count`].
    pub fn len(&self) -> usize {
        self.entries.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Synchronous [`TokenStore::remove_expired`]: drops entries not usable at `now` (expired
    /// and without a refresh token, see [`TokenRecord::is_usable`]).
    ///
    /// Sweeps shard by shard; each shard is write-locked only while it is swept.
    pub fn remove_expired_sync(&self, now: u64) -> usize {
        let mut total = 0;
        self.sessions.retain(|session, entries| {
            entries.retain(
                |record| record.is_usable(now),
                |record| {
                    self.users.sub(&record.user, session, 1);
                    total += 1;
                },
            );
            !entries.is_empty()
        });
        self.entries.fetch_sub(total, Ordering::Relaxed);
        total
    }

    /// Apply `edit` to one session under its write lock, and drop the session if that left it
    /// empty — in the same locked step, so a concurrent put cannot land in a dropped session.
    fn edit_session(&self, session: &str, edit: impl FnOnce(&mut SessionEntries)) {
        self.sessions.remove_if_mut(session, |_, entries| {
            edit(entries);
            entries.is_empty()
        });
    }

    /// Panics when the user index or the entry count disagrees with the stored entries.
    #[cfg(test)]
    pub(super) fn assert_consistent(&self) {
        let mut expected = std::collections::BTreeMap::new();
        let mut entries = 0;
        for session in self.sessions.iter() {
            assert!(!session.value().is_empty(), "an empty session was kept");
            for (_, _, record) in session.value().iter() {
                *expected
                    .entry((record.user.clone(), session.key().clone()))
                    .or_insert(0usize) += 1;
                entries += 1;
            }
        }
        assert_eq!(self.users.snapshot(), expected, "user index out of step");
        assert_eq!(self.len(), entries, "entry count out of step");
    }
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    async fn put(&self, key: &TokenKey, record: TokenRecord) -> Result<(), StoreError> {
        self.put_sync(key, record);
        Ok(())
    }

    async fn get(&self, key: &TokenKey) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.get_sync(key))
    }

    async fn get_bound(
        &self,
        session: &str,
        binding: &TokenBinding,
    ) -> Result<Option<(TokenKey, TokenRecord)>, StoreError> {
        Ok(self.get_bound_at(session, binding, unix_now()))
    }

    async fn all_for_session(
        &self,
        session: &str,
    ) -> Result<Vec<(TokenKey, TokenRecord)>, StoreError> {
        Ok(self.all_for_session_sync(session))
    }

    async fn delete(&self, key: &TokenKey) -> Result<bool, StoreError> {
        Ok(self.delete_sync(key))
    }

    async fn delete_by_session(&self, session: &str) -> Result<usize, StoreError> {
        Ok(self.delete_by_session_sync(session))
    }

    async fn sessions_of_user(&self, user: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.users.sessions_of(user))
    }

    async fn delete_by_user(&self, user: &str) -> Result<usize, StoreError> {
        Ok(self.delete_by_user_sync(user))
    }

    async fn delete_by_issuer(&self, session: &str, issuer: &str) -> Result<usize, StoreError> {
        Ok(self.delete_by_issuer_sync(session, issuer))
    }

    async fn count(&self) -> Result<usize, StoreError> {
        Ok(self.len())
    }

    async fn remove_expired(&self, now: u64) -> Result<usize, StoreError> {
        Ok(self.remove_expired_sync(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::{ExposeSecret as _, SecretString};

    fn bind(issuer: impl Into<String>) -> TokenBinding {
        TokenBinding::new(issuer, "ns", "https://mcp/r")
    }

    fn rec(user: &str, expires_at: Option<u64>, refresh: bool) -> TokenRecord {
        TokenRecord {
            access_token: SecretString::from("at"),
            token_type: "Bearer".into(),
            refresh_token: refresh.then(|| SecretString::from("rt")),
            expires_at,
            granted_scope: None,
            issuer: "iss".into(),
            client_id: "c".into(),
            user: user.into(),
            obtained_at: 0,
        }
    }

    #[test]
    fn index_follows_overwrites_by_another_user() {
        let s = MemoryTokenStore::new();
        let k = TokenKey::new("s", bind("i"), "");
        s.put_sync(&k, rec("a", None, false));
        s.put_sync(&k, rec("b", None, false));
        s.assert_consistent();
        assert_eq!(s.delete_by_user_sync("a"), 0);
        assert_eq!(s.delete_by_user_sync("b"), 1);
        s.assert_consistent();
        assert!(s.is_empty());
    }

    #[test]
    fn every_operation_keeps_the_index_consistent() {
        let s = MemoryTokenStore::new();
        for (sess, iss, scope, user, exp) in [
            ("s1", "i1", "a", "u1", Some(10)),
            ("s1", "i1", "b", "u2", None),
            ("s1", "i2", "", "u1", Some(10)),
            ("s2", "i1", "", "u1", None),
            ("s3", "i1", "", "u3", Some(10)),
        ] {
            s.put_sync(
                &TokenKey::new(sess, bind(iss), scope),
                rec(user, exp, false),
            );
            s.assert_consistent();
        }
        assert!(s.delete_sync(&TokenKey::new("s1", bind("i1"), "b")));
        s.assert_consistent();
        assert_eq!(s.remove_expired_sync(100), 3);
        s.assert_consistent();
        assert_eq!(s.delete_by_issuer_sync("s2", "i1"), 1);
        s.assert_consistent();
        assert!(s.is_empty());
        assert!(s.sessions.is_empty(), "empty sessions must be dropped");
    }

    #[test]
    fn records_are_not_aliased() {
        let s = MemoryTokenStore::new();
        let k = TokenKey::new("s", bind("i"), "");
        s.put_sync(&k, rec("u", None, false));
        let mut out = s.get_sync(&k).into_iter().next();
        if let Some(r) = out.as_mut() {
            r.access_token = SecretString::from("changed");
            r.user = "other".into();
        }
        let again = s.get_sync(&k);
        assert_eq!(again.as_ref().map(|r| r.user.as_str()), Some("u"));
        assert_eq!(
            again
                .as_ref()
                .map(|r| r.access_token.expose_secret().to_owned()),
            Some("at".to_owned())
        );
    }

    /// Many threads racing puts, deletes and sweeps over a few sessions and users must leave the
    /// index and the count exact.
    #[test]
    fn concurrent_mutations_keep_the_index_consistent() {
        let s = Arc::new(MemoryTokenStore::new());
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    for i in 0..2_000u64 {
                        let x = i.wrapping_mul(2_654_435_761).wrapping_add(t * 97);
                        let key =
                            TokenKey::new(format!("s{}", x % 5), bind(format!("i{}", x % 3)), "");
                        let user = format!("u{}", (x / 7) % 3);
                        match x % 6 {
                            0..=2 => s.put_sync(&key, rec(&user, Some(x % 50), x % 4 == 0)),
                            3 => {
                                s.delete_sync(&key);
                            }
                            4 => {
                                s.delete_by_user_sync(&user);
                            }
                            _ => {
                                s.remove_expired_sync(25);
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().is_ok(), "worker panicked");
        }
        s.assert_consistent();
    }

    #[tokio::test(start_paused = true)]
    async fn cleanup_task_sweeps_until_cancelled() {
        let s = Arc::new(MemoryTokenStore::new());
        s.put_sync(
            &TokenKey::new("s", bind("i"), "old"),
            rec("u", Some(1), false),
        );
        s.put_sync(
            &TokenKey::new("s", bind("i"), "kept"),
            rec("u", Some(1), true),
        );
        let cancel = CancellationToken::new();
        let task = Arc::clone(&s).spawn_cleanup(Duration::from_secs(60), cancel.clone());
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(s.len(), 1, "the expired unrefreshable entry is swept");
        assert!(s.get_sync(&TokenKey::new("s", bind("i"), "kept")).is_some());
        cancel.cancel();
        assert!(task.await.is_ok(), "cleanup task ends cleanly on cancel");
    }

    #[tokio::test(start_paused = true)]
    async fn cleanup_task_ends_when_the_store_is_dropped() {
        let s = Arc::new(MemoryTokenStore::new());
        let task = Arc::clone(&s).spawn_cleanup(Duration::from_secs(1), CancellationToken::new());
        drop(s);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let ended = tokio::time::timeout(Duration::from_secs(5), task).await;
        assert!(
            matches!(ended, Ok(Ok(()))),
            "task must end without a cancel"
        );
    }
}
