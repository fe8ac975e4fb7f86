//! MCP sessions the gateway opened itself. A client that initializes while the user has no
//! token gets the gateway's own `initialize` answer and a gateway session id (prefixed
//! [`GATEWAY_SESSION_PREFIX`]). Once the user is authorized, the gateway initializes the remote
//! server on the client's behalf — replaying the client's remembered `initialize` — and from then
//! on maps the gateway id to the remote server's session id, both ways. The client never has to
//! reconnect.
//!
//! Sessions the remote server opened directly (the user was authorized at `initialize`) are not
//! kept here: their ids pass through untouched.

use crate::registry::ServerKey;
use bytes::Bytes;
use dashmap::DashMap;
use http::HeaderValue;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Prefix of every session id the gateway issues, so other ids skip the lookup.
pub const GATEWAY_SESSION_PREFIX: &str = "mcpgw-";

/// Idle gateway sessions are forgotten after this long (the client then gets 404 and
/// initializes again, as the transport specifies).
const IDLE: Duration = Duration::from_secs(24 * 3600);
const CAPACITY: u64 = 100_000;
/// The owner index is swept of forgotten sessions every this many new sessions.
const SWEEP_EVERY: u64 = 1024;

/// The remote server's side of a gateway session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSession {
    /// The remote server's `Mcp-Session-Id` (`None`: a stateless server).
    pub id: Option<HeaderValue>,
}

/// A session the gateway opened.
#[derive(Debug)]
pub struct GatewaySession {
    pub id: String,
    /// The caller's session (the identity's, not MCP's): only its owner may use it.
    pub owner: String,
    pub server: ServerKey,
    /// The client's `initialize` request, as it sent it.
    pub initialize: Bytes,
    /// Set once the remote server has been initialized.
    pub upstream: tokio::sync::OnceCell<UpstreamSession>,
}

impl GatewaySession {
    pub fn belongs_to(&self, owner: &str, server: &ServerKey) -> bool {
        self.owner == owner && &self.server == server
    }
}

type Owner = (String, ServerKey);

/// The gateway's sessions, bounded and expiring.
#[derive(Debug)]
pub struct Sessions {
    by_id: moka::sync::Cache<String, Arc<GatewaySession>>,
    /// Sessions per (caller session, server), to start them upstream after a login.
    by_owner: DashMap<Owner, Vec<Weak<GatewaySession>>>,
    created: AtomicU64,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            by_id: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_idle(IDLE)
                .build(),
            by_owner: DashMap::new(),
            created: AtomicU64::new(0),
        }
    }
}

/// Whether `id` is one the gateway issued (and so must be looked up).
pub fn is_gateway_id(id: &[u8]) -> bool {
    id.starts_with(GATEWAY_SESSION_PREFIX.as_bytes())
}

impl Sessions {
    /// Open a session for `owner` at `server`, remembering its `initialize`.
    pub fn create(
        &self,
        owner: &str,
        server: &ServerKey,
        initialize: Bytes,
    ) -> Arc<GatewaySession> {
        let id = format!("{GATEWAY_SESSION_PREFIX}{:032x}", rand::random::<u128>());
        let session = Arc::new(GatewaySession {
            id: id.clone(),
            owner: owner.to_owned(),
            server: server.clone(),
            initialize,
            upstream: tokio::sync::OnceCell::new(),
        });
        self.by_id.insert(id, session.clone());
        self.by_owner
            .entry((owner.to_owned(), server.clone()))
            .or_default()
            .push(Arc::downgrade(&session));
        if self.created.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep();
        }
        session
    }

    /// The session `id` if it exists and belongs to `owner` at `server` (someone else's id is
    /// as unknown as a made-up one).
    pub fn get(&self, id: &str, owner: &str, server: &ServerKey) -> Option<Arc<GatewaySession>> {
        self.by_id.get(id).filter(|s| s.belongs_to(owner, server))
    }

    /// Forget a session (the client deleted it, or the remote server forgot its side).
    pub fn remove(&self, id: &str) {
        self.by_id.invalidate(id);
    }

    /// Sessions of `owner` at `server` not yet started upstream.
    pub fn pending(&self, owner: &str, server: &ServerKey) -> Vec<Arc<GatewaySession>> {
        let key = (owner.to_owned(), server.clone());
        let Some(mut list) = self.by_owner.get_mut(&key) else {
            return Vec::new();
        };
        list.retain(|w| w.strong_count() > 0);
        list.iter()
            .filter_map(Weak::upgrade)
            .filter(|s| s.upstream.get().is_none() && self.by_id.contains_key(&s.id))
            .collect()
    }

    /// Drop index entries of sessions that were forgotten.
    fn sweep(&self) {
        self.by_owner.retain(|_, list| {
            list.retain(|w| w.strong_count() > 0);
            !list.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_belong_to_their_owner_and_server() {
        let s = Sessions::default();
        let a = ServerKey::new("ns", "a");
        let b = ServerKey::new("ns", "b");
        let sess = s.create("alice", &a, Bytes::from_static(b"{}"));
        assert!(is_gateway_id(sess.id.as_bytes()));
        assert!(!is_gateway_id(b"upstream-id"));
        assert_eq!(sess.id.len(), GATEWAY_SESSION_PREFIX.len() + 32);
        assert!(s.get(&sess.id, "alice", &a).is_some());
        assert!(s.get(&sess.id, "mallory", &a).is_none());
        assert!(s.get(&sess.id, "alice", &b).is_none());
        assert!(s.get("mcpgw-unknown", "alice", &a).is_none());
        let other = s.create("alice", &a, Bytes::new());
        assert_ne!(other.id, sess.id);
    }

    #[test]
    fn pending_lists_sessions_not_yet_started_upstream() {
        let s = Sessions::default();
        let a = ServerKey::new("ns", "a");
        let one = s.create("alice", &a, Bytes::new());
        let two = s.create("alice", &a, Bytes::new());
        assert_eq!(s.pending("alice", &a).len(), 2);
        two.upstream
            .set(UpstreamSession { id: None })
            .expect("first set");
        let pending = s.pending("alice", &a);
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].id, one.id);
        s.remove(&one.id);
        assert!(s.pending("alice", &a).is_empty());
        assert!(s.pending("bob", &a).is_empty());
    }
}
