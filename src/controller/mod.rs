//! The Kubernetes side of `run`: controllers that reconcile `RemoteMCPServer` and
//! `TokenExchangePolicy` resources into the live registry the HTTP side serves from, and report
//! on each resource what they found.
//!
//! Each reconcile is a sequence of stages: validate (pure, [`crate::crd::validate`]) → resolve
//! references (Secrets and the exchange policy, same namespace only) → apply (registry) →
//! discover (oauth mode) → status (server-side apply, only when it changed, only on the Lease
//! holder) → Event (when the outcome changed).
//!
//! The folder reads top down:
//! - [`run`] wires the watches and the two controllers of each watch scope, [`lease`] decides
//!   which replica writes status, [`config`] is what they are told at start, [`context`] what
//!   they use of the rest of the process and what every reconcile can reach, [`metrics`] what
//!   they count, and [`backoff`] how long a failed object waits;
//! - [`watch`]: what makes a resource be reconciled and what the watches keep (triggers, the
//!   resources that read a changed Secret or policy, the referenced Secrets, sweeps after a
//!   re-list);
//! - [`reconcile`]: the skeleton every kind shares (finalizer, undecodable objects, status
//!   writes, conditions, Events, errors);
//! - [`server`] and [`policy`]: what is particular to each kind.

pub mod backoff;
pub mod config;
pub mod context;
pub mod lease;
pub mod metrics;
pub mod policy;
pub mod reconcile;
pub mod run;
pub mod server;
#[cfg(test)]
mod test_objects;
pub mod watch;

pub use config::{ControllerConfig, KubeSource, Leadership, Scope};
pub use context::{Exchanges, Services};
pub use reconcile::error::Error;
pub use reconcile::status::FIELD_MANAGER;
pub use run::{READINESS_GATE, spawn};

use crate::crd::{RemoteMCPServer, TokenExchangePolicy};
use crate::registry::ServerKey;
use kube::Resource;
use kube::core::DeserializeGuard;

/// Finalizer that keeps a resource until its registration is removed.
pub const FINALIZER: &str = "mcpoauth.dev/registration";

/// A `RemoteMCPServer` as watched: decoded, or the metadata of one that does not decode.
pub type ServerObject = DeserializeGuard<RemoteMCPServer>;
/// A `TokenExchangePolicy` as watched.
pub type PolicyObject = DeserializeGuard<TokenExchangePolicy>;

/// `namespace/name` of an object: the key of its registration (servers and policies alike).
pub fn object_key(obj: &impl Resource) -> ServerKey {
    let meta = obj.meta();
    ServerKey::new(
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}
