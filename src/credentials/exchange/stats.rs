//! Cache hit and miss counts per `TokenExchangePolicy`, for the policy's status and for anyone
//! asking how well the cache works. Lock-free on the hot path once a policy has been seen.

use crate::registry::ServerKey;
use dashmap::DashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How often exchanges for one policy were answered from the cache (`hits`) and how often the
/// token endpoint was called (`misses`) since the gateway started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExchangeCounts {
    pub hits: u64,
    pub misses: u64,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Counters per policy.
#[derive(Debug, Default)]
pub struct ExchangeStats {
    by_policy: DashMap<ServerKey, Arc<Counters>>,
}

impl ExchangeStats {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn hit(&self, policy: &ServerKey) {
        self.counters(policy).hits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn miss(&self, policy: &ServerKey) {
        self.counters(policy).misses.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts of `policy` (zero for a policy never used).
    pub fn counts(&self, policy: &ServerKey) -> ExchangeCounts {
        self.by_policy
            .get(policy)
            .map(|c| ExchangeCounts {
                hits: c.hits.load(Ordering::Relaxed),
                misses: c.misses.load(Ordering::Relaxed),
            })
            .unwrap_or_default()
    }

    fn counters(&self, policy: &ServerKey) -> Arc<Counters> {
        if let Some(c) = self.by_policy.get(policy) {
            return c.clone();
        }
        self.by_policy.entry(policy.clone()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_per_policy() {
        let stats = ExchangeStats::new();
        let a = ServerKey::new("team-a", "p");
        let b = ServerKey::new("team-b", "p");
        stats.miss(&a);
        stats.hit(&a);
        stats.hit(&a);
        stats.miss(&b);
        assert_eq!(stats.counts(&a), ExchangeCounts { hits: 2, misses: 1 });
        assert_eq!(stats.counts(&b), ExchangeCounts { hits: 0, misses: 1 });
        assert_eq!(
            stats.counts(&ServerKey::new("x", "y")),
            ExchangeCounts::default()
        );
    }
}
