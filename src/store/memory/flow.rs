//! In-memory [`FlowStore`].
//!
//! `bind` and `consume` are each a single `DashMap::remove_if_mut` call: the check (expired?
//! bound to whom?) and the change (record the verifier, or remove the flow) happen under one
//! write lock of one shard, so two callbacks racing on one flow cannot both consume it (the
//! upstream looked the state up and deleted it in two separate locked steps). Expired flows are
//! removed lazily by whichever call meets them, and by the periodic sweep.

use super::cleanup::spawn_periodic;
use crate::store::{
    BindOutcome, BrowserBinding, ConsumeOutcome, FlowId, FlowStore, PendingFlow, StoreError,
};
use crate::time::unix_now;
use async_trait::async_trait;
use dashmap::DashMap;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Pending flows of this process. Cannot fail: every method returns `Ok`.
#[derive(Debug, Default)]
pub struct MemoryFlowStore {
    flows: DashMap<FlowId, PendingFlow>,
}

/// A flow is alive strictly before its `expires_at`.
fn expired(flow: &PendingFlow, now: u64) -> bool {
    now >= flow.expires_at
}

impl MemoryFlowStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Run [`FlowStore::remove_expired`] every `interval` until `cancel` fires (or the store is
    /// dropped: the task keeps only a weak reference).
    pub fn spawn_cleanup(
        self: Arc<Self>,
        interval: Duration,
        cancel: CancellationToken,
    ) -> JoinHandle<()> {
        spawn_periodic(self, interval, cancel, "flows", |store, now| {
            store.remove_expired_at(now)
        })
    }

    /// Number of stored flows, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    fn get_at(&self, id: &FlowId, now: u64) -> Option<PendingFlow> {
        // Read lock for the common case; the lazy removal re-checks under the write lock.
        let found = self.flows.get(id).map(|flow| {
            let flow = flow.value();
            (!expired(flow, now)).then(|| flow.clone())
        })?;
        if found.is_none() {
            self.flows.remove_if(id, |_, flow| expired(flow, now));
        }
        found
    }

    fn bind_at(
        &self,
        id: &FlowId,
        browser: BrowserBinding,
        pkce_verifier: SecretString,
        now: u64,
    ) -> BindOutcome {
        let mut outcome = BindOutcome::NotFound;
        self.flows.remove_if_mut(id, |_, flow| {
            if expired(flow, now) {
                return true;
            }
            match flow.browser {
                Some(bound) if !bound.matches(&browser) => outcome = BindOutcome::OtherBrowser,
                _ => {
                    flow.browser = Some(browser);
                    flow.pkce_verifier = Some(pkce_verifier);
                    outcome = BindOutcome::Bound(flow.clone());
                }
            }
            false
        });
        outcome
    }

    fn consume_at(&self, id: &FlowId, browser: BrowserBinding, now: u64) -> ConsumeOutcome {
        let mut other_browser = false;
        let removed = self.flows.remove_if_mut(id, |_, flow| {
            if expired(flow, now) {
                return true;
            }
            let ours = flow.browser.is_some_and(|bound| bound.matches(&browser));
            other_browser = !ours;
            ours
        });
        match removed {
            Some((_, flow)) if !expired(&flow, now) => ConsumeOutcome::Consumed(flow),
            Some(_) => ConsumeOutcome::NotFound,
            None if other_browser => ConsumeOutcome::OtherBrowser,
            None => ConsumeOutcome::NotFound,
        }
    }

    fn remove_expired_at(&self, now: u64) -> usize {
        let mut removed = 0;
        self.flows.retain(|_, flow| {
            let keep = !expired(flow, now);
            if !keep {
                removed += 1;
            }
            keep
        });
        removed
    }
}

#[async_trait]
impl FlowStore for MemoryFlowStore {
    async fn insert(&self, id: &FlowId, flow: PendingFlow) -> Result<(), StoreError> {
        self.flows.insert(id.clone(), flow);
        Ok(())
    }

    async fn get(&self, id: &FlowId) -> Result<Option<PendingFlow>, StoreError> {
        Ok(self.get_at(id, unix_now()))
    }

    async fn bind(
        &self,
        id: &FlowId,
        browser: BrowserBinding,
        pkce_verifier: SecretString,
    ) -> Result<BindOutcome, StoreError> {
        Ok(self.bind_at(id, browser, pkce_verifier, unix_now()))
    }

    async fn consume(
        &self,
        id: &FlowId,
        browser: BrowserBinding,
    ) -> Result<ConsumeOutcome, StoreError> {
        Ok(self.consume_at(id, browser, unix_now()))
    }

    async fn remove_expired(&self, now: u64) -> Result<usize, StoreError> {
        Ok(self.remove_expired_at(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ServerKey;

    const NOW: u64 = 1_000_000;

    fn flow(expires_at: u64, browser: Option<BrowserBinding>) -> PendingFlow {
        PendingFlow {
            session: "s".into(),
            user: "u".into(),
            server: ServerKey::new("ns", "name"),
            issuer: "https://idp".into(),
            scopes: vec!["a".into()],
            resource: None,
            token_resource: "https://mcp".into(),
            created_at: NOW - 1,
            expires_at,
            browser,
            pkce_verifier: None,
        }
    }

    fn browser(n: u8) -> BrowserBinding {
        BrowserBinding::from_bytes([n; 32])
    }

    #[test]
    fn expired_flows_are_removed_lazily_by_any_access() {
        let s = MemoryFlowStore::new();
        let ids: Vec<FlowId> = (0..3).map(|_| FlowId::generate()).collect();
        for id in &ids {
            s.flows.insert(id.clone(), flow(NOW, Some(browser(1))));
        }
        assert!(s.get_at(&ids[0], NOW).is_none());
        let bound = s.bind_at(&ids[1], browser(1), SecretString::from("v"), NOW);
        assert!(matches!(bound, BindOutcome::NotFound));
        assert!(matches!(
            s.consume_at(&ids[2], browser(1), NOW),
            ConsumeOutcome::NotFound
        ));
        assert!(s.is_empty(), "each access removed the expired flow it met");
    }

    #[test]
    fn flow_is_alive_until_its_expiry_second() {
        let s = MemoryFlowStore::new();
        let id = FlowId::generate();
        s.flows.insert(id.clone(), flow(NOW + 1, None));
        assert!(s.get_at(&id, NOW).is_some());
        assert!(s.get_at(&id, NOW + 1).is_none());
    }

    #[test]
    fn remove_expired_counts_and_keeps_live_flows() {
        let s = MemoryFlowStore::new();
        let live = FlowId::generate();
        s.flows.insert(live.clone(), flow(NOW + 10, None));
        s.flows.insert(FlowId::generate(), flow(NOW - 10, None));
        s.flows.insert(FlowId::generate(), flow(NOW, None));
        assert_eq!(s.remove_expired_at(NOW), 2);
        assert_eq!(s.len(), 1);
        assert!(s.get_at(&live, NOW).is_some());
    }

    /// Real OS threads hammering one flow: exactly one consume wins, every round.
    #[test]
    fn consume_is_exactly_once_across_threads() {
        let s = Arc::new(MemoryFlowStore::new());
        for _ in 0..200 {
            let id = FlowId::generate();
            s.flows.insert(id.clone(), flow(NOW + 60, Some(browser(7))));
            let barrier = Arc::new(std::sync::Barrier::new(4));
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let (s, id, barrier) = (Arc::clone(&s), id.clone(), Arc::clone(&barrier));
                    std::thread::spawn(move || {
                        barrier.wait();
                        matches!(
                            s.consume_at(&id, browser(7), NOW),
                            ConsumeOutcome::Consumed(_)
                        )
                    })
                })
                .collect();
            let wins = workers
                .into_iter()
                .map(|w| w.join().unwrap_or(false))
                .filter(|won| *won)
                .count();
            assert_eq!(wins, 1);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn cleanup_task_sweeps_until_cancelled() {
        let s = Arc::new(MemoryFlowStore::new());
        s.flows.insert(FlowId::generate(), flow(1, None));
        let live = FlowId::generate();
        s.flows.insert(live.clone(), flow(u64::MAX, None));
        let cancel = CancellationToken::new();
        let task = Arc::clone(&s).spawn_cleanup(Duration::from_secs(60), cancel.clone());
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(s.len(), 1);
        assert!(s.flows.contains_key(&live));
        cancel.cancel();
        assert!(task.await.is_ok());
    }
}
