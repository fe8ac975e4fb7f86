//! The live registry: what the HTTP side serves from. Filled by the controller (`run`) or by the
//! manifests source (`serve`); read on every request, so reads are a lock-free snapshot load.

mod types;

pub use types::*;

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;

/// One consistent view of every registration.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub servers: HashMap<ServerKey, Arc<ServerRegistration>>,
    pub policies: HashMap<ServerKey, Arc<PolicyRegistration>>,
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
