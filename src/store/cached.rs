//! A short-lived read cache in front of a shared token store (Valkey), so that the token
//! lookup every proxied request makes ([`TokenStore::get_bound`]) is a memory read instead
//! of a round trip, a decryption and a JSON parse.
//!
//! Correctness rules:
//! - Only `get_bound` hits are cached, and only while the token has not expired; misses
//!   (`None`) are never cached, so a login finished on another replica is seen at once.
//! - Every write or delete made through this process drops the session's entry, and a read
//!   that raced with such a write does not leave its (older) value behind (write epoch).
//! - Writes made by *other* replicas are seen after at most the TTL. A token revoked at the
//!   authorization server is still caught at once: the remote server answers 401 and the
//!   gateway's rejection handling writes through this store, which drops the entry.
//! - `get` (used by refresh, under the refresh lock) and the listing calls are never cached.

use super::{StoreError, TokenBinding, TokenKey, TokenRecord, TokenStore};
use crate::time::unix_now;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Cached entries of one session, by binding.
type SessionEntries = Arc<HashMap<TokenBinding, Arc<(TokenKey, TokenRecord)>>>;

/// [`TokenStore`] decorator caching `get_bound` hits for a short time.
pub struct CachedTokenStore {
    inner: Arc<dyn TokenStore>,
    sessions: moka::sync::Cache<String, SessionEntries>,
    /// Bumped after every write through this store; a read that saw it change while it was
    /// reading the inner store does not keep what it read.
    writes: AtomicU64,
}

impl CachedTokenStore {
    /// Cache `inner`'s hits for `ttl`, for at most `max_sessions` sessions.
    pub fn new(inner: Arc<dyn TokenStore>, ttl: Duration, max_sessions: u64) -> Self {
        Self {
            inner,
            sessions: moka::sync::Cache::builder()
                .max_capacity(max_sessions)
                .time_to_live(ttl)
                .build(),
            writes: AtomicU64::new(0),
        }
    }

    fn cached(&self, session: &str, binding: &TokenBinding) -> Option<(TokenKey, TokenRecord)> {
        let entries = self.sessions.get(session)?;
        let hit = entries.get(binding)?;
        // An expired token makes the inner store's choice among scopes time-dependent: ask it.
        if hit.1.expires_within(unix_now(), 0) {
            return None;
        }
        Some(hit.as_ref().clone())
    }

    fn remember(
        &self,
        epoch: u64,
        session: &str,
        binding: &TokenBinding,
        found: &(TokenKey, TokenRecord),
    ) {
        if self.writes.load(Ordering::Acquire) != epoch {
            return;
        }
        let mut entries = self
            .sessions
            .get(session)
            .map(|e| e.as_ref().clone())
            .unwrap_or_default();
        entries.insert(binding.clone(), Arc::new(found.clone()));
        self.sessions.insert(session.to_owned(), Arc::new(entries));
        // A write that finished between the check above and the insert has already dropped
        // the session; drop what was just inserted too.
        if self.writes.load(Ordering::Acquire) != epoch {
            self.sessions.invalidate(session);
        }
    }

    /// After a write to `session` (or to every session, `None`).
    fn forget(&self, session: Option<&str>) {
        self.writes.fetch_add(1, Ordering::AcqRel);
        match session {
            Some(s) => self.sessions.invalidate(s),
            None => self.sessions.invalidate_all(),
        }
    }
}

#[async_trait]
impl TokenStore for CachedTokenStore {
    async fn put(&self, key: &TokenKey, record: TokenRecord) -> Result<(), StoreError> {
        let result = self.inner.put(key, record).await;
        self.forget(Some(&key.session));
        result
    }

    async fn get(&self, key: &TokenKey) -> Result<Option<TokenRecord>, StoreError> {
        self.inner.get(key).await
    }

    async fn get_bound(
        &self,
        session: &str,
        binding: &TokenBinding,
    ) -> Result<Option<(TokenKey, TokenRecord)>, StoreError> {
        if let Some(hit) = self.cached(session, binding) {
            return Ok(Some(hit));
        }
        let epoch = self.writes.load(Ordering::Acquire);
        let found = self.inner.get_bound(session, binding).await?;
        if let Some(found) = &found {
            self.remember(epoch, session, binding, found);
        }
        Ok(found)
    }

    async fn all_for_session(
        &self,
        session: &str,
    ) -> Result<Vec<(TokenKey, TokenRecord)>, StoreError> {
        self.inner.all_for_session(session).await
    }

    async fn delete(&self, key: &TokenKey) -> Result<bool, StoreError> {
        let result = self.inner.delete(key).await;
        self.forget(Some(&key.session));
        result
    }

    async fn delete_by_session(&self, session: &str) -> Result<usize, StoreError> {
        let result = self.inner.delete_by_session(session).await;
        self.forget(Some(session));
        result
    }

    async fn sessions_of_user(&self, user: &str) -> Result<Vec<String>, StoreError> {
        self.inner.sessions_of_user(user).await
    }

    async fn delete_by_user(&self, user: &str) -> Result<usize, StoreError> {
        let result = self.inner.delete_by_user(user).await;
        // Which sessions the user had is the inner store's knowledge; logging out everywhere
        // is rare, so drop everything.
        self.forget(None);
        result
    }

    async fn delete_by_issuer(&self, session: &str, issuer: &str) -> Result<usize, StoreError> {
        let result = self.inner.delete_by_issuer(session, issuer).await;
        self.forget(Some(session));
        result
    }

    async fn count(&self) -> Result<usize, StoreError> {
        self.inner.count().await
    }

    async fn remove_expired(&self, now: u64) -> Result<usize, StoreError> {
        // Only expired, unrefreshable entries go, and expired entries are never served from
        // the cache: nothing to drop.
        self.inner.remove_expired(now).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryTokenStore;
    use secrecy::{ExposeSecret, SecretString};
    use std::sync::atomic::AtomicUsize;

    fn bound() -> TokenBinding {
        TokenBinding::new("https://as", "ns", "https://mcp")
    }

    fn record(token: &str, expires_at: Option<u64>) -> TokenRecord {
        TokenRecord {
            access_token: SecretString::from(token),
            refresh_token: None,
            token_type: "Bearer".into(),
            expires_at,
            granted_scope: None,
            issuer: "https://as".into(),
            client_id: "c".into(),
            user: "alice".into(),
            obtained_at: 0,
        }
    }

    /// Counts inner `get_bound` calls, so a test can tell a hit from a read-through.
    struct Counting {
        inner: MemoryTokenStore,
        reads: AtomicUsize,
    }

    #[async_trait]
    impl TokenStore for Counting {
        async fn put(&self, key: &TokenKey, record: TokenRecord) -> Result<(), StoreError> {
            self.inner.put(key, record).await
        }
        async fn get(&self, key: &TokenKey) -> Result<Option<TokenRecord>, StoreError> {
            self.inner.get(key).await
        }
        async fn get_bound(
            &self,
            session: &str,
            binding: &TokenBinding,
        ) -> Result<Option<(TokenKey, TokenRecord)>, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.inner.get_bound(session, binding).await
        }
        async fn all_for_session(
            &self,
            session: &str,
        ) -> Result<Vec<(TokenKey, TokenRecord)>, StoreError> {
            self.inner.all_for_session(session).await
        }
        async fn delete(&self, key: &TokenKey) -> Result<bool, StoreError> {
            self.inner.delete(key).await
        }
        async fn delete_by_session(&self, session: &str) -> Result<usize, StoreError> {
            self.inner.delete_by_session(session).await
        }
        async fn sessions_of_user(&self, user: &str) -> Result<Vec<String>, StoreError> {
            self.inner.sessions_of_user(user).await
        }
        async fn delete_by_user(&self, user: &str) -> Result<usize, StoreError> {
            self.inner.delete_by_user(user).await
        }
        async fn delete_by_issuer(&self, session: &str, issuer: &str) -> Result<usize, StoreError> {
            self.inner.delete_by_issuer(session, issuer).await
        }
        async fn count(&self) -> Result<usize, StoreError> {
            self.inner.count().await
        }
        async fn remove_expired(&self, now: u64) -> Result<usize, StoreError> {
            self.inner.remove_expired(now).await
        }
    }

    fn setup(ttl: Duration) -> (Arc<Counting>, CachedTokenStore) {
        let inner = Arc::new(Counting {
            inner: MemoryTokenStore::new(),
            reads: AtomicUsize::new(0),
        });
        let cached = CachedTokenStore::new(inner.clone(), ttl, 100);
        (inner, cached)
    }

    fn value(found: Option<(TokenKey, TokenRecord)>) -> String {
        found
            .map(|(_, r)| r.access_token.expose_secret().to_owned())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn hits_are_served_from_memory_and_writes_drop_them() {
        let (inner, cached) = setup(Duration::from_secs(60));
        let key = TokenKey::new("s1", bound(), "s");
        cached.put(&key, record("one", None)).await.unwrap();
        for _ in 0..3 {
            let got = cached.get_bound("s1", &bound()).await.unwrap();
            assert_eq!(value(got), "one");
        }
        assert_eq!(inner.reads.load(Ordering::SeqCst), 1, "one read-through");

        cached.put(&key, record("two", None)).await.unwrap();
        let got = cached.get_bound("s1", &bound()).await.unwrap();
        assert_eq!(value(got), "two", "a write drops the cached entry");

        cached.delete(&key).await.unwrap();
        assert!(cached.get_bound("s1", &bound()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn hits_are_cached_per_binding() {
        let (_, cached) = setup(Duration::from_secs(60));
        let key = TokenKey::new("s1", bound(), "s");
        cached.put(&key, record("one", None)).await.unwrap();
        assert_eq!(
            value(cached.get_bound("s1", &bound()).await.unwrap()),
            "one"
        );
        // Same issuer, another namespace or resource: never the cached token.
        for other in [
            TokenBinding::new("https://as", "other", "https://mcp"),
            TokenBinding::new("https://as", "ns", "https://mcp/other"),
        ] {
            assert!(cached.get_bound("s1", &other).await.unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn misses_are_not_cached() {
        let (inner, cached) = setup(Duration::from_secs(60));
        assert!(cached.get_bound("s1", &bound()).await.unwrap().is_none());
        // Stored behind the cache's back (another replica): seen on the next read.
        let key = TokenKey::new("s1", bound(), "s");
        inner.put(&key, record("other", None)).await.unwrap();
        let got = cached.get_bound("s1", &bound()).await.unwrap();
        assert_eq!(value(got), "other");
    }

    #[tokio::test]
    async fn other_replicas_writes_are_seen_after_the_ttl() {
        let (inner, cached) = setup(Duration::from_millis(200));
        let key = TokenKey::new("s1", bound(), "s");
        cached.put(&key, record("one", None)).await.unwrap();
        assert_eq!(
            value(cached.get_bound("s1", &bound()).await.unwrap()),
            "one"
        );
        inner.put(&key, record("two", None)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            value(cached.get_bound("s1", &bound()).await.unwrap()),
            "two"
        );
    }

    #[tokio::test]
    async fn expired_tokens_are_never_served_from_the_cache() {
        let (inner, cached) = setup(Duration::from_secs(60));
        let key = TokenKey::new("s1", bound(), "s");
        let soon = unix_now() + 1;
        cached.put(&key, record("short", Some(soon))).await.unwrap();
        cached.get_bound("s1", &bound()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2100)).await;
        // Expired and not refreshable: the inner store skips it, and so must we.
        assert!(cached.get_bound("s1", &bound()).await.unwrap().is_none());
        assert_eq!(inner.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn logout_everywhere_drops_every_session() {
        let (_, cached) = setup(Duration::from_secs(60));
        for s in ["s1", "s2"] {
            let key = TokenKey::new(s, bound(), "s");
            cached.put(&key, record(s, None)).await.unwrap();
            cached.get_bound(s, &bound()).await.unwrap();
        }
        assert_eq!(cached.delete_by_user("alice").await.unwrap(), 2);
        for s in ["s1", "s2"] {
            assert!(cached.get_bound(s, &bound()).await.unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn a_read_racing_a_write_does_not_keep_the_older_value() {
        let (_, cached) = setup(Duration::from_secs(60));
        let key = TokenKey::new("s1", bound(), "s");
        cached.put(&key, record("old", None)).await.unwrap();
        // A reader took its epoch, then a write finished before it stored what it read.
        let epoch = cached.writes.load(Ordering::Acquire);
        let stale = cached
            .inner
            .get_bound("s1", &bound())
            .await
            .unwrap()
            .unwrap();
        cached.put(&key, record("new", None)).await.unwrap();
        cached.remember(epoch, "s1", &bound(), &stale);
        assert_eq!(
            value(cached.get_bound("s1", &bound()).await.unwrap()),
            "new"
        );
    }
}
