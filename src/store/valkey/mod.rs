//! Valkey stores: tokens and flow state shared by every replica, sealed at rest by
//! [`crate::store::sealed`].
//!
//! # Layout
//!
//! Every key starts with the configured prefix (default `mcpoauth:`):
//!
//! | Key | Type | Content | Expiry |
//! |---|---|---|---|
//! | `{prefix}oauth:token:{session}` | hash | field `@{issuer}\|{namespace}\|{resource}\|{scope}` → sealed token record | `session_ttl` after the last put into the session |
//! | `{prefix}oauth:user:{user}` | set | ids of sessions holding (or having held) the user's tokens | `session_ttl` after the user's last put |
//! | `{prefix}oauth:state:{hex sha256(flow id)}` | hash | `v` → sealed flow; `b` → hex browser binding (once bound) | the flow's `expires_at` (PEXPIREAT) |
//! | `{prefix}oauth:lock:{hex sha256(session, issuer, namespace, resource, scope)}` | string | random holder token | the lease (PX) |
//!
//! * In the hash field, `%` and `|` of the issuer, namespace and resource are percent-escaped
//!   (`%25`, `%7C`), so the first three `|` separate them from the scope and parts containing
//!   `|` round-trip.
//! * Fields of the first layout, `{issuer}|{scope}` (no `@`), name no resource: nothing can tell
//!   which server such a token is for. They are never returned by any read; the first read of
//!   their session, the periodic sweep and `delete_by_user` delete them, and their users
//!   authorize those servers once more.
//! * The four key spaces differ in their fixed middle part, so no session, user or flow id can
//!   produce a key of another space (a session named `user:alice` is not alice's index).
//! * The flow key holds a hash of the flow id, not the id: the id is a bearer capability and
//!   must not be readable from the key space.
//! * Values are the bytes the sealed layer ([`crate::store::sealed`]) hands over, stored at
//!   the address (Valkey key and hash field) they were sealed for; this module holds no crypto.
//!   Values sealed with an older key of the ring are re-sealed when read (written back with a
//!   compare-and-set, so a concurrent update wins) and by [`ValkeyStores::rotate_all`].
//!
//! # Atomicity
//!
//! Every multi-step change is one Lua script ([`scripts`]): put (entry + session TTL + user
//! index + index TTL), delete by session (entries + index members), delete by user (per session,
//! a compare-and-delete over the session as read), flow insert / bind (compare-and-set) /
//! consume (check binding + delete), lock release (compare-and-delete). Standalone and sentinel
//! run them over all keys involved. In a cluster, keys of different slots cannot share a
//! script: a put writes the user index first and the session second, so a crash in between
//! leaves only an index member pointing at nothing; index members are then never removed early
//! (see [`token_delete`]). All failures are returned as [`StoreError`]; none is swallowed.

mod client;
mod config;
mod flow;
mod keys;
mod lock;
mod rotation;
mod scan;
mod scripts;
mod shared;
mod tls;
mod token;
mod token_delete;
mod token_sweep;

pub use client::{ValkeyClient, connect};
pub use config::{
    CaProblem, DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_KEY_PREFIX,
    DEFAULT_POOL_SIZE, DEFAULT_SESSION_TTL, Endpoints, ValkeyConfig, ValkeyConfigError,
    ValkeyTopology,
};
pub use flow::ValkeyFlowStore;
pub use lock::ValkeyRefreshLock;
pub use token::ValkeyTokenStore;

use crate::crypto::KeyRing;
use crate::store::StoreError;
use crate::store::sealed::{RotationProgress, RotationReport, SealStats, Sealer, Sealing};
use shared::Shared;
use std::sync::Arc;
use std::time::Duration;

/// The token store, flow store and refresh lock over one client, key prefix and sealer, with
/// its shared counters. Each store is cheap to clone.
#[derive(Debug, Clone)]
pub struct ValkeyStores {
    pub tokens: ValkeyTokenStore,
    pub flows: ValkeyFlowStore,
    pub lock: ValkeyRefreshLock,
    shared: Shared,
}

impl ValkeyStores {
    /// Stores under `key_prefix` on an existing client. Several sets of stores may share one
    /// client (e.g. tests with distinct prefixes).
    pub fn new(
        client: ValkeyClient,
        key_prefix: impl Into<String>,
        session_ttl: Duration,
        sealing: Sealing,
    ) -> Self {
        let shared = Shared {
            client,
            keys: keys::KeySpace::new(key_prefix),
            sealer: Sealer::new(sealing),
            session_ttl,
        };
        Self {
            tokens: ValkeyTokenStore::new(shared.clone()),
            flows: ValkeyFlowStore::new(shared.clone()),
            lock: ValkeyRefreshLock::new(shared.clone()),
            shared,
        }
    }

    /// Connect (without waiting for the server, see [`connect`]) and build the stores with the
    /// configured prefix and session TTL.
    pub async fn from_config(
        config: &ValkeyConfig,
        sealing: Sealing,
    ) -> Result<Self, ValkeyConfigError> {
        let client = connect(config).await?;
        Ok(Self::new(
            client,
            config.key_prefix.clone(),
            config.session_ttl,
            sealing,
        ))
    }

    pub fn client(&self) -> &ValkeyClient {
        &self.shared.client
    }

    /// Counters of unreadable and re-encrypted values.
    pub fn stats(&self) -> Arc<SealStats> {
        Arc::clone(self.shared.sealer.stats())
    }

    /// Export the counters of [`Self::stats`] through `metrics` (`mcpoauth_store_*`).
    pub fn register_metrics(&self, metrics: &crate::metrics::Metrics) {
        self.shared.sealer.register_metrics(metrics);
    }

    /// Readiness: see [`ValkeyClient::ping`].
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.shared.client.ping().await
    }

    /// Re-encrypt every token and flow value under `ring`'s primary key; `progress` is called
    /// after each SCAN page. Run it after adding a new primary key and before removing the old
    /// one; the report's `failed_by_key_id` must be empty before a key is removed.
    pub async fn rotate_all(
        &self,
        ring: &KeyRing,
        progress: impl Fn(RotationProgress),
    ) -> Result<RotationReport, StoreError> {
        rotation::rotate_all(&self.shared, ring, progress).await
    }
}
