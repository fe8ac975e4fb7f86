//! What every reconcile of one watch scope can reach.

use super::error::Retries;
use super::secrets::StoreSecrets;
use super::{PolicyObject, ServerObject};
use crate::flows::Flows;
use crate::metrics::{KindLabel, Metrics, ReconcileLabels};
use crate::oauth::Discovery;
use crate::registry::{Registry, ServerKey};
use kube::Client;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;
use std::sync::Arc;
use tokio::sync::watch;

/// Shared state of the reconcilers of one scope.
pub struct Ctx {
    pub client: Client,
    /// Where reconciled servers and policies are registered.
    pub registry: Arc<Registry>,
    /// Authorization-server metadata for the status (shared with the flows' cache).
    pub discovery: Discovery,
    /// The token exchanger (policies' status) and the public URL (servers' endpoints).
    pub flows: Arc<Flows>,
    /// Shared by every controller so repeated Events are aggregated.
    pub recorder: Recorder,
    /// `true` while this replica holds the Lease and may write status and finalizers.
    pub leader: watch::Receiver<bool>,
    pub metrics: Arc<Metrics>,
    pub servers: Store<ServerObject>,
    pub policies: Store<PolicyObject>,
    pub secrets: StoreSecrets,
    pub retries: Retries,
}

impl Ctx {
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Whether this replica writes status now.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// The gateway URL of a server: `{public_url}/mcp/{namespace}/{name}`.
    pub fn endpoint(&self, key: &ServerKey) -> String {
        self.flows
            .config()
            .url_for(&format!("/mcp/{}/{}", key.namespace, key.name))
            .to_string()
    }

    pub fn count_reconcile(&self, kind: &str, result: &str) {
        self.metrics
            .reconciles
            .get_or_create(&ReconcileLabels {
                kind: kind.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    pub fn count_status_write(&self, kind: &str) {
        self.metrics
            .status_writes
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }
}
