//! What the controllers use of the rest of the process ([`Services`]), and what every reconcile
//! of one watch scope can reach ([`Ctx`]).
//!
//! The controllers write the registry themselves: it is the one place the gateway and the flows
//! read registrations from, so nothing else has to hear of a change. Of the exchange side they
//! need only two answers, behind [`Exchanges`].

use super::backoff::Retries;
use super::metrics::ControllerMetrics;
use super::watch::secrets::StoreSecrets;
use super::{PolicyObject, ServerObject};
use crate::credentials::exchange::{ExchangeCounts, Exchanger};
use crate::metrics::Metrics;
use crate::oauth::Discovery;
use crate::registry::{Registry, ServerKey};
use kube::Client;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;
use std::sync::Arc;
use tokio::sync::watch;
use url::Url;

/// The exchange side of this replica, as a policy's reconcile sees it.
pub trait Exchanges: Send + Sync {
    /// Whether the operator lets callers' tokens be sent to `issuer` (a policy naming another
    /// issuer is refused, whatever its endpoint).
    fn issuer_allowed(&self, issuer: &str) -> bool;
    /// Cache hits and misses of policy `policy` on this replica since start (its `status.cache`).
    fn counts(&self, policy: &ServerKey) -> ExchangeCounts;
}

impl Exchanges for Exchanger {
    fn issuer_allowed(&self, issuer: &str) -> bool {
        Exchanger::issuer_allowed(self, issuer)
    }

    fn counts(&self, policy: &ServerKey) -> ExchangeCounts {
        Exchanger::counts(self, policy)
    }
}

/// What the controllers use of the rest of the process.
#[derive(Clone)]
pub struct Services {
    /// The live registry the gateway serves from; the controllers write it.
    pub registry: Arc<Registry>,
    /// Where the controllers register their metrics.
    pub metrics: Arc<Metrics>,
    /// Authorization-server discovery, shared with the flows (and so its metadata cache).
    pub discovery: Discovery,
    /// Allowed issuers and cache counters of the token exchanges.
    pub exchanges: Arc<dyn Exchanges>,
    /// The gateway's public URL, under which each server is served (`status.endpoint`).
    pub public_url: Url,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("public_url", &self.public_url.as_str())
            .finish_non_exhaustive()
    }
}

/// Shared state of the reconcilers of one scope.
pub struct Ctx {
    pub client: Client,
    pub services: Services,
    /// Shared by every controller so repeated Events are aggregated.
    pub recorder: Recorder,
    /// `true` while this replica holds the Lease and may write status and finalizers.
    pub leader: watch::Receiver<bool>,
    pub metrics: ControllerMetrics,
    pub servers: Store<ServerObject>,
    pub policies: Store<PolicyObject>,
    pub secrets: StoreSecrets,
    pub retries: Retries,
}

impl Ctx {
    pub fn registry(&self) -> &Arc<Registry> {
        &self.services.registry
    }

    /// Whether this replica writes status now.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }
}
