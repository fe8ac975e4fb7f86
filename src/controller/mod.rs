//! The Kubernetes side of `run`: controllers that reconcile `RemoteMCPServer` and
//! `TokenExchangePolicy` resources into the live registry the HTTP side serves from, and report
//! on each resource what they found.
//!
//! Each reconcile is a sequence of stages: validate (pure, [`crate::crd::validate`]) → resolve
//! references (Secrets and the exchange policy, same namespace only) → apply (registry) →
//! discover (oauth mode) → status (server-side apply, only when it changed, only on the Lease
//! holder) → Event (when the outcome changed). See [`run`] for how the watches are wired.

pub mod conditions;
pub mod config;
pub mod context;
pub mod discover;
pub mod error;
pub mod events;
pub mod finalizer;
pub mod follow;
pub mod invalid;
pub mod keyring;
pub mod lease;
pub mod policy;
pub mod relations;
pub mod run;
pub mod secrets;
pub mod server;
pub mod status;
pub mod sweep;
#[cfg(test)]
mod test_objects;
pub mod triggers;
pub mod trim;

pub use config::{ControllerConfig, KubeSource, Leadership, Scope};
pub use error::Error;
pub use run::{READINESS_GATE, spawn};
pub use status::FIELD_MANAGER;

use crate::crd::{RemoteMCPServer, TokenExchangePolicy};
use kube::core::DeserializeGuard;

/// Finalizer that keeps a resource until its registration is removed.
pub const FINALIZER: &str = "mcpoauth.dev/registration";

/// A `RemoteMCPServer` as watched: decoded, or the metadata of one that does not decode.
pub type ServerObject = DeserializeGuard<RemoteMCPServer>;
/// A `TokenExchangePolicy` as watched.
pub type PolicyObject = DeserializeGuard<TokenExchangePolicy>;
