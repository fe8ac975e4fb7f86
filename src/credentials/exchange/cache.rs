//! The exchanged-token cache: bounded, each entry kept until shortly before its token expires,
//! one token-endpoint call per key at a time (concurrent misses wait for the same call).
//!
//! The key holds everything that changes the issued token: the policy and its generation (an
//! edited policy never serves tokens obtained under the old spec), the user, the audience and
//! resource, and the scopes. The subject token is not part of the key: a user's next sign-in
//! must not make the cache miss, and the key must never hold a token.

use super::error::ExchangeError;
use crate::registry::{PolicyRegistration, ServerKey};
use moka::Expiry;
use moka::future::Cache;
use secrecy::{ExposeSecret as _, SecretString};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Default bound on cached tokens.
pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;
/// Default time before a token's expiry at which it is no longer served from the cache.
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(30);

/// What one cached token is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub policy: ServerKey,
    pub generation: i64,
    pub user: String,
    pub audience: Option<String>,
    pub resource: Option<String>,
    /// The requested scopes, space-separated in the policy's order.
    pub scopes: String,
}

impl CacheKey {
    pub fn new(policy: &PolicyRegistration, user: &str, scopes: &str) -> Self {
        Self {
            policy: policy.key.clone(),
            generation: policy.generation,
            user: user.to_owned(),
            audience: policy.audience.clone(),
            resource: policy.resource.clone(),
            scopes: scopes.to_owned(),
        }
    }
}

/// A cached exchange result.
#[derive(Clone)]
pub struct CachedToken {
    pub token: SecretString,
    /// How long the cache may serve it (its lifetime minus the margin; zero: not at all).
    pub keep_for: Duration,
}

impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedToken")
            .field("keep_for", &self.keep_for)
            .finish_non_exhaustive()
    }
}

/// How long a token living `lifetime` seconds may be served: its lifetime minus `margin`, and
/// not at all when the lifetime is unknown or not longer than the margin.
pub fn keep_for(lifetime: Option<u64>, margin: Duration) -> Duration {
    lifetime
        .map(Duration::from_secs)
        .and_then(|l| l.checked_sub(margin))
        .unwrap_or(Duration::ZERO)
}

struct PerEntry;

impl Expiry<CacheKey, CachedToken> for PerEntry {
    fn expire_after_create(&self, _: &CacheKey, v: &CachedToken, _: Instant) -> Option<Duration> {
        Some(v.keep_for)
    }
}

/// Where a token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Served from the cache (or from a concurrent request's exchange).
    Cache,
    /// This request called the token endpoint.
    Exchange,
}

/// The cache.
#[derive(Clone)]
pub struct ExchangeCache {
    inner: Cache<CacheKey, CachedToken>,
}

impl std::fmt::Debug for ExchangeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeCache")
            .field("entries", &self.inner.entry_count())
            .finish()
    }
}

impl ExchangeCache {
    pub fn new(max_entries: u64) -> Self {
        Self {
            inner: Cache::builder()
                .max_capacity(max_entries)
                .expire_after(PerEntry)
                .support_invalidation_closures()
                .build(),
        }
    }

    /// The cached token for `key`, or the result of `exchange` (run once for all concurrent
    /// callers of the same key).
    pub async fn get_or_exchange<F>(
        &self,
        key: CacheKey,
        exchange: F,
    ) -> Result<(CachedToken, Source), ExchangeError>
    where
        F: Future<Output = Result<CachedToken, ExchangeError>>,
    {
        let ran = AtomicBool::new(false);
        let init = async {
            ran.store(true, Ordering::Relaxed);
            exchange.await
        };
        let result = self.inner.try_get_with(key, init).await;
        let source = if ran.load(Ordering::Relaxed) {
            Source::Exchange
        } else {
            Source::Cache
        };
        result
            .map(|t| (t, source))
            .map_err(|e: Arc<ExchangeError>| ExchangeError::clone(&e))
    }

    /// Drop the entry for `key` when it still holds `rejected` (a remote server refused it);
    /// a newer token that a concurrent request obtained stays.
    pub async fn evict_rejected(&self, key: &CacheKey, rejected: &SecretString) {
        if let Some(cur) = self.inner.get(key).await
            && cur.token.expose_secret() == rejected.expose_secret()
        {
            self.inner.invalidate(key).await;
        }
    }

    /// Drop every entry of `user` (sign-out everywhere).
    pub fn invalidate_user(&self, user: &str) {
        let user = user.to_owned();
        if let Err(e) = self.inner.invalidate_entries_if(move |k, _| k.user == user) {
            // Only possible when the builder did not enable closures, which `new` does.
            tracing::warn!(error = %e, "could not drop the user's exchanged tokens");
        }
    }

    /// Entries currently held (approximate: moka counts lazily).
    pub fn entry_count(&self) -> u64 {
        self.inner.entry_count()
    }

    /// Run pending maintenance (tests and benchmarks want exact counts).
    pub async fn run_pending_tasks(&self) {
        self.inner.run_pending_tasks().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::exchange::request::tests::policy;
    use std::sync::atomic::AtomicUsize;

    fn token(v: &str, keep: Duration) -> CachedToken {
        CachedToken {
            token: SecretString::from(v.to_owned()),
            keep_for: keep,
        }
    }

    #[test]
    fn entries_live_their_lifetime_minus_the_margin() {
        let m = Duration::from_secs(30);
        assert_eq!(keep_for(Some(300), m), Duration::from_secs(270));
        assert_eq!(keep_for(Some(30), m), Duration::ZERO);
        assert_eq!(keep_for(Some(5), m), Duration::ZERO, "never negative");
        assert_eq!(keep_for(None, m), Duration::ZERO, "unknown: not cached");
    }

    #[test]
    fn the_key_separates_what_changes_the_token() {
        let p = policy();
        let base = CacheKey::new(&p, "alice", "openid");
        assert_ne!(base, CacheKey::new(&p, "bob", "openid"));
        assert_ne!(base, CacheKey::new(&p, "alice", "openid groups"));
        let mut q = p.clone();
        q.generation = 2;
        assert_ne!(base, CacheKey::new(&q, "alice", "openid"));
        let mut q = p.clone();
        q.audience = Some("b".into());
        assert_ne!(base, CacheKey::new(&q, "alice", "openid"));
        let mut q = p.clone();
        q.resource = Some("https://r".into());
        assert_ne!(base, CacheKey::new(&q, "alice", "openid"));
        assert_eq!(base, CacheKey::new(&p, "alice", "openid"));
    }

    #[tokio::test]
    async fn a_hit_does_not_exchange_and_concurrent_misses_exchange_once() {
        let cache = ExchangeCache::new(100);
        let calls = Arc::new(AtomicUsize::new(0));
        let key = CacheKey::new(&policy(), "alice", "openid");
        let run = || {
            let calls = calls.clone();
            let cache = cache.clone();
            let key = key.clone();
            async move {
                cache
                    .get_or_exchange(key, async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(token("t1", Duration::from_secs(60)))
                    })
                    .await
            }
        };
        let (a, b) = tokio::join!(run(), run());
        let (a, b) = (a.expect("a"), b.expect("b"));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one exchange for both");
        let sources = [a.1, b.1];
        assert!(sources.contains(&Source::Exchange) && sources.contains(&Source::Cache));
        let (t, source) = run().await.expect("hit");
        assert_eq!(source, Source::Cache);
        assert_eq!(t.token.expose_secret(), "t1");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failures_and_uncacheable_tokens_are_not_served_again() {
        let cache = ExchangeCache::new(100);
        let key = CacheKey::new(&policy(), "alice", "openid");
        let err = cache
            .get_or_exchange(key.clone(), async { Err(ExchangeError::Unavailable(503)) })
            .await
            .expect_err("fails");
        assert_eq!(err, ExchangeError::Unavailable(503));
        let (_, s) = cache
            .get_or_exchange(key.clone(), async { Ok(token("t", Duration::ZERO)) })
            .await
            .expect("ok");
        assert_eq!(s, Source::Exchange);
        let (_, s) = cache
            .get_or_exchange(key.clone(), async {
                Ok(token("t2", Duration::from_secs(60)))
            })
            .await
            .expect("ok");
        assert_eq!(s, Source::Exchange, "a zero-lifetime entry is not served");
    }

    #[tokio::test]
    async fn entries_expire() {
        let cache = ExchangeCache::new(100);
        let key = CacheKey::new(&policy(), "alice", "openid");
        let keep = Duration::from_millis(100);
        cache
            .get_or_exchange(key.clone(), async { Ok(token("t", keep)) })
            .await
            .expect("ok");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (t, s) = cache
            .get_or_exchange(key, async { Ok(token("t2", keep)) })
            .await
            .expect("ok");
        assert_eq!(s, Source::Exchange);
        assert_eq!(t.token.expose_secret(), "t2");
    }

    #[tokio::test]
    async fn eviction_drops_only_the_rejected_token_and_users_are_cleared() {
        let cache = ExchangeCache::new(100);
        let p = policy();
        let alice = CacheKey::new(&p, "alice", "openid");
        let bob = CacheKey::new(&p, "bob", "openid");
        let long = Duration::from_secs(60);
        for k in [&alice, &bob] {
            cache
                .get_or_exchange(k.clone(), async { Ok(token("t", long)) })
                .await
                .expect("ok");
        }
        cache
            .evict_rejected(&alice, &SecretString::from("other".to_owned()))
            .await;
        let (_, s) = cache
            .get_or_exchange(alice.clone(), async { Ok(token("new", long)) })
            .await
            .expect("ok");
        assert_eq!(s, Source::Cache, "a different token is not evicted");
        cache
            .evict_rejected(&alice, &SecretString::from("t".to_owned()))
            .await;
        let (t, s) = cache
            .get_or_exchange(alice.clone(), async { Ok(token("new", long)) })
            .await
            .expect("ok");
        assert_eq!((t.token.expose_secret(), s), ("new", Source::Exchange));

        cache.invalidate_user("alice");
        cache.run_pending_tasks().await;
        let (_, s) = cache
            .get_or_exchange(alice, async { Ok(token("x", long)) })
            .await
            .expect("ok");
        assert_eq!(s, Source::Exchange, "alice's entries are gone");
        let (_, s) = cache
            .get_or_exchange(bob, async { Ok(token("x", long)) })
            .await
            .expect("ok");
        assert_eq!(s, Source::Cache, "bob's stay");
    }
}
