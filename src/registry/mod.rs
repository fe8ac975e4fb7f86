//! The live registry: what the HTTP side serves from. Filled by the controller (`run`) or by the
//! manifests source (`serve`); read on every request, so reads are a lock-free snapshot load.
//!
//! The maps are persistent (`imbl`): a write copies only the path to the changed entry, so one
//! upsert costs O(log n) instead of a copy of every registration. With plain hash maps, 10,000
//! resources reconciled at start-up meant 10,000 copies of a map growing to 10,000 entries.

mod server_count;
mod types;

pub use types::*;

use arc_swap::ArcSwap;
use std::sync::Arc;

/// Registrations by `namespace/name`; cloning one is O(1) and shares its structure.
pub type Registrations<T> = imbl::HashMap<ServerKey, Arc<T>>;

/// One consistent view of every registration. Cheap to clone.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub servers: Registrations<ServerRegistration>,
    pub policies: Registrations<PolicyRegistration>,
}

/// Registry of live registrations, cheap to read concurrently.
#[derive(Debug, Default)]
pub struct Registry {
    current: ArcSwap<Snapshot>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current snapshot (one atomic load).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn server(&self, key: &ServerKey) -> Option<Arc<ServerRegistration>> {
        self.current.load().servers.get(key).cloned()
    }

    pub fn policy(&self, key: &ServerKey) -> Option<Arc<PolicyRegistration>> {
        self.current.load().policies.get(key).cloned()
    }

    /// Replace everything at once (the manifests source reloads whole directories).
    pub fn replace(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }

    /// Insert or replace one server registration.
    pub fn upsert_server(&self, reg: ServerRegistration) {
        let reg = Arc::new(reg);
        self.current.rcu(|cur| {
            let mut next = Snapshot::clone(cur);
            next.servers.insert(reg.key.clone(), reg.clone());
            next
        });
    }

    /// Remove one server registration; returns whether it existed.
    pub fn remove_server(&self, key: &ServerKey) -> bool {
        let mut existed = false;
        self.current.rcu(|cur| {
            let mut next = Snapshot::clone(cur);
            existed = next.servers.remove(key).is_some();
            next
        });
        existed
    }

    pub fn upsert_policy(&self, reg: PolicyRegistration) {
        let reg = Arc::new(reg);
        self.current.rcu(|cur| {
            let mut next = Snapshot::clone(cur);
            next.policies.insert(reg.key.clone(), reg.clone());
            next
        });
    }

    pub fn remove_policy(&self, key: &ServerKey) -> bool {
        let mut existed = false;
        self.current.rcu(|cur| {
            let mut next = Snapshot::clone(cur);
            existed = next.policies.remove(key).is_some();
            next
        });
        existed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use url::Url;

    fn server(name: &str, generation: i64) -> ServerRegistration {
        ServerRegistration {
            key: ServerKey::new("team-a", name),
            url: Url::parse("https://mcp.example.com/mcp").expect("url"),
            auth: AuthSettings::None,
            generation,
            forward_headers: Vec::new(),
        }
    }

    #[test]
    fn writes_replace_the_snapshot_and_leave_older_snapshots_alone() {
        let registry = Registry::new();
        registry.upsert_server(server("a", 1));
        let before = registry.snapshot();
        registry.upsert_server(server("a", 2));
        registry.upsert_server(server("b", 1));
        let a = ServerKey::new("team-a", "a");
        let b = ServerKey::new("team-a", "b");
        assert_eq!(before.servers.len(), 1);
        assert_eq!(
            before.servers[&a].generation, 1,
            "an older snapshot is unchanged"
        );
        assert_eq!(registry.server(&a).map(|r| r.generation), Some(2));
        assert!(registry.server(&b).is_some());

        assert!(registry.remove_server(&a));
        assert!(!registry.remove_server(&a), "already gone");
        assert!(registry.server(&a).is_none());
        assert_eq!(registry.snapshot().servers.len(), 1);
    }

    #[test]
    fn replace_swaps_everything_at_once() {
        let registry = Registry::new();
        registry.upsert_server(server("old", 1));
        let mut next = Snapshot::default();
        let reg = Arc::new(server("new", 1));
        next.servers.insert(reg.key.clone(), reg);
        registry.replace(next);
        assert!(registry.server(&ServerKey::new("team-a", "old")).is_none());
        assert!(registry.server(&ServerKey::new("team-a", "new")).is_some());
        assert!(!registry.remove_policy(&ServerKey::new("team-a", "new")));
    }
}
