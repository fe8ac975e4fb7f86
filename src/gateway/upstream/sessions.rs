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
use std::time::{Duration, Instant};

/// Prefix of every session id the gateway issues, so other ids skip the lookup.
pub const GATEWAY_SESSION_PREFIX: &str = "mcpgw-";

/// What a session costs besides its `initialize` body: its ids, the owner index entry and the
/// cache's own bookkeeping (an estimate; it keeps a flood of tiny sessions bounded too).
const OVERHEAD_BYTES: usize = 512;

/// How much the gateway's sessions may hold, and for how long. A session costs memory from the
/// first unauthenticated `initialize` on, so both its size and the time it is kept without a
/// signed-in user are bounded; once started at the remote server it lives as long as the
/// client uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Total weight of all sessions (their `initialize` bodies plus [`OVERHEAD_BYTES`] each);
    /// the least recently used are forgotten first.
    pub max_bytes: u64,
    /// Largest `initialize` body a session keeps.
    pub max_initialize_bytes: usize,
    /// A session not started at the remote server (its user has not signed in) is forgotten
    /// after this long without use.
    pub pending_ttl: Duration,
    /// A started session is forgotten after this long without use (the client then gets 404
    /// and initializes again, as the transport specifies).
    pub idle: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            max_initialize_bytes: 64 * 1024,
            pending_ttl: Duration::from_secs(600),
            idle: Duration::from_secs(24 * 3600),
        }
    }
}

/// The `initialize` to remember exceeds [`SessionLimits::max_initialize_bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the initialize request exceeds the {limit}-byte limit for sessions opened before sign-in")]
pub struct InitializeTooLarge {
    pub limit: usize,
}

/// Per-session expiry: short while pending, the idle time once started.
#[derive(Debug)]
struct SessionExpiry {
    pending_ttl: Duration,
    idle: Duration,
}

impl SessionExpiry {
    fn ttl(&self, session: &GatewaySession) -> Duration {
        if session.upstream.get().is_some() {
            self.idle
        } else {
            self.pending_ttl
        }
    }
}

impl moka::Expiry<String, Arc<GatewaySession>> for SessionExpiry {
    fn expire_after_create(
        &self,
        _id: &String,
        session: &Arc<GatewaySession>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(self.ttl(session))
    }

    fn expire_after_read(
        &self,
        _id: &String,
        session: &Arc<GatewaySession>,
        _read_at: Instant,
        _remaining: Option<Duration>,
        _last_modified_at: Instant,
    ) -> Option<Duration> {
        Some(self.ttl(session))
    }
}

/// A session's weight in bytes (saturating: the cache counts in `u32`). The signature is the
/// cache's weigher's, hence `&String`.
#[allow(clippy::ptr_arg)]
fn weight(id: &String, session: &Arc<GatewaySession>) -> u32 {
    let bytes = id.len() + session.owner.len() + session.initialize.len() + OVERHEAD_BYTES;
    u32::try_from(bytes).unwrap_or(u32::MAX)
}
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
    max_initialize_bytes: usize,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::new(SessionLimits::default())
    }
}

/// Whether `id` is one the gateway issued (and so must be looked up).
pub fn is_gateway_id(id: &[u8]) -> bool {
    id.starts_with(GATEWAY_SESSION_PREFIX.as_bytes())
}

impl Sessions {
    pub fn new(limits: SessionLimits) -> Self {
        Self {
            by_id: moka::sync::Cache::builder()
                .max_capacity(limits.max_bytes)
                .weigher(weight)
                // Least recently used first: an older session gives way to a new one (the
                // default admission policy could refuse new sessions while a flood's are kept).
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .expire_after(SessionExpiry {
                    pending_ttl: limits.pending_ttl,
                    idle: limits.idle,
                })
                .build(),
            by_owner: DashMap::new(),
            created: AtomicU64::new(0),
            max_initialize_bytes: limits.max_initialize_bytes,
        }
    }

    /// Open a session for `owner` at `server`, remembering its `initialize` (refused when it
    /// is larger than the limit).
    pub fn create(
        &self,
        owner: &str,
        server: &ServerKey,
        initialize: Bytes,
    ) -> Result<Arc<GatewaySession>, InitializeTooLarge> {
        if initialize.len() > self.max_initialize_bytes {
            return Err(InitializeTooLarge {
                limit: self.max_initialize_bytes,
            });
        }
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
        Ok(session)
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
        let sess = s
            .create("alice", &a, Bytes::from_static(b"{}"))
            .expect("fits");
        assert!(is_gateway_id(sess.id.as_bytes()));
        assert!(!is_gateway_id(b"upstream-id"));
        assert_eq!(sess.id.len(), GATEWAY_SESSION_PREFIX.len() + 32);
        assert!(s.get(&sess.id, "alice", &a).is_some());
        assert!(s.get(&sess.id, "mallory", &a).is_none());
        assert!(s.get(&sess.id, "alice", &b).is_none());
        assert!(s.get("mcpgw-unknown", "alice", &a).is_none());
        let other = s.create("alice", &a, Bytes::new()).expect("fits");
        assert_ne!(other.id, sess.id);
    }

    #[test]
    fn pending_lists_sessions_not_yet_started_upstream() {
        let s = Sessions::default();
        let a = ServerKey::new("ns", "a");
        let one = s.create("alice", &a, Bytes::new()).expect("fits");
        let two = s.create("alice", &a, Bytes::new()).expect("fits");
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

    fn limits() -> SessionLimits {
        SessionLimits {
            max_bytes: 8 * 1024,
            max_initialize_bytes: 1024,
            pending_ttl: Duration::from_millis(200),
            idle: Duration::from_secs(3600),
        }
    }

    #[test]
    fn an_initialize_above_the_limit_is_not_kept() {
        let s = Sessions::new(limits());
        let a = ServerKey::new("ns", "a");
        let err = s
            .create("alice", &a, Bytes::from(vec![b' '; 1025]))
            .expect_err("too large");
        assert_eq!(err.limit, 1024);
        assert!(s.create("alice", &a, Bytes::from(vec![b' '; 1024])).is_ok());
    }

    #[test]
    fn sessions_are_bounded_in_bytes_and_the_oldest_go_first() {
        let s = Sessions::new(limits());
        let a = ServerKey::new("ns", "a");
        let ids: Vec<String> = (0..40)
            .map(|_| {
                s.create("mallory", &a, Bytes::from(vec![b' '; 1024]))
                    .expect("fits")
                    .id
                    .clone()
            })
            .collect();
        s.by_id.run_pending_tasks();
        assert!(
            s.by_id.weighted_size() <= 8 * 1024,
            "{} bytes kept",
            s.by_id.weighted_size()
        );
        assert!(
            s.get(&ids[0], "mallory", &a).is_none(),
            "the oldest is gone"
        );
        assert!(
            s.get(&ids[39], "mallory", &a).is_some(),
            "the newest is kept"
        );
    }

    #[test]
    fn pending_sessions_expire_quickly_and_started_ones_live_on() {
        let s = Sessions::new(limits());
        let a = ServerKey::new("ns", "a");
        let pending = s.create("alice", &a, Bytes::new()).expect("fits");
        let started = s.create("alice", &a, Bytes::new()).expect("fits");
        started
            .upstream
            .set(UpstreamSession { id: None })
            .expect("first set");
        // A read after the start moves the session to the idle time.
        assert!(s.get(&started.id, "alice", &a).is_some());
        std::thread::sleep(Duration::from_millis(400));
        assert!(s.get(&pending.id, "alice", &a).is_none(), "pending expired");
        assert!(s.get(&started.id, "alice", &a).is_some(), "started kept");
    }
}
