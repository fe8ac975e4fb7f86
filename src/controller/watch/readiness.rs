//! The `/readyz` gate of the watches: blocked until every store has its first list, with the
//! last watch error as the reason while that takes long, so a replica is not sent traffic
//! before its registry holds what the cluster says.

use crate::http::Readiness;
use kube::runtime::watcher;
use std::sync::{Arc, Mutex};

/// Name of the `/readyz` gate held until every watch has its first list.
pub const READINESS_GATE: &str = "kubernetes";

/// The `/readyz` gate of the watches: blocked until every store has its first list, with the
/// last watch error as the reason while that takes long.
pub struct SyncState {
    readiness: Arc<Readiness>,
    synced: Mutex<bool>,
}

impl SyncState {
    pub fn new(readiness: Arc<Readiness>) -> Self {
        readiness.block(
            READINESS_GATE,
            "waiting for the first list of RemoteMCPServers, TokenExchangePolicies and Secrets",
        );
        Self {
            readiness,
            synced: Mutex::new(false),
        }
    }

    pub fn watch_failed(&self, what: &str, error: &watcher::Error) {
        tracing::warn!(watch = what, error = %error, "watch failed; retrying with backoff");
        if let Ok(synced) = self.synced.lock()
            && !*synced
        {
            self.readiness
                .block(READINESS_GATE, format!("cannot watch {what}: {error}"));
        }
    }

    pub fn synced(&self) {
        if let Ok(mut synced) = self.synced.lock() {
            *synced = true;
            self.readiness.unblock(READINESS_GATE);
            tracing::info!("watches synced");
        }
    }
}
