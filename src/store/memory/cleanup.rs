//! The periodic sweep shared by the in-memory stores.

use crate::time::unix_now;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// Shortest accepted interval: `tokio::time::interval` panics on zero.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Every `interval`, call `sweep(store, now)`, until `cancel` fires or the store is dropped.
///
/// The task holds only a `Weak` reference, so it never keeps a store alive on its own.
pub(super) fn spawn_periodic<T, F>(
    store: Arc<T>,
    interval: Duration,
    cancel: CancellationToken,
    what: &'static str,
    sweep: F,
) -> JoinHandle<()>
where
    T: Send + Sync + 'static,
    F: Fn(&T, u64) -> usize + Send + 'static,
{
    let store: Weak<T> = Arc::downgrade(&store);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval.max(MIN_INTERVAL));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let Some(store) = store.upgrade() else { break };
            let removed = sweep(&store, unix_now());
            if removed > 0 {
                tracing::debug!(store = what, removed, "removed expired entries");
            }
        }
    })
}
