//! The issuer learned per server (from its protected-resource metadata) when its settings pin
//! none, so that a token lookup need not discover it on every request.
//!
//! What a server advertises belongs to its registration: an entry is used only while the
//! server is registered with the very registration it was learned under, so a re-registered
//! (changed, or merely reconciled again) or removed server is discovered afresh. The registry's
//! writers need not know this cache exists.

use crate::registry::{Registry, ServerKey, ServerRegistration};
use dashmap::DashMap;
use std::sync::{Arc, Weak};

/// Issuers learned per server, each valid for one registration.
pub(super) struct LearnedIssuers {
    registry: Arc<Registry>,
    /// The registration an issuer was learned under: a `Weak` keeps its allocation (not its
    /// value), so a newer registration can never have the same address.
    learned: DashMap<ServerKey, (Weak<ServerRegistration>, String)>,
}

impl LearnedIssuers {
    pub(super) fn new(registry: Arc<Registry>) -> Self {
        Self {
            registry,
            learned: DashMap::new(),
        }
    }

    /// The issuer learned for `server`'s current registration.
    pub(super) fn get(&self, server: &ServerKey) -> Option<String> {
        let current = self.registry.server(server);
        let entry = self.learned.get(server)?;
        let (under, issuer) = entry.value();
        if current.is_some_and(|reg| std::ptr::eq(under.as_ptr(), Arc::as_ptr(&reg))) {
            return Some(issuer.clone());
        }
        drop(entry);
        // Learned under an older registration (or the server is gone): forget it.
        self.learned.remove_if(server, |_, (under, _)| {
            self.registry
                .server(server)
                .is_none_or(|reg| !std::ptr::eq(under.as_ptr(), Arc::as_ptr(&reg)))
        });
        None
    }

    /// Remember `issuer` for `server`'s current registration (nothing when it is not
    /// registered).
    pub(super) fn insert(&self, server: ServerKey, issuer: String) {
        if let Some(reg) = self.registry.server(&server) {
            self.learned.insert(server, (Arc::downgrade(&reg), issuer));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::AuthSettings;

    fn reg(url: &str) -> ServerRegistration {
        ServerRegistration {
            key: ServerKey::new("team-a", "github"),
            url: url::Url::parse(url).expect("url"),
            auth: AuthSettings::None,
            generation: 1,
            forward_headers: Vec::new(),
        }
    }

    #[test]
    fn an_issuer_holds_for_the_registration_it_was_learned_under() {
        let registry = Arc::new(Registry::new());
        let issuers = LearnedIssuers::new(registry.clone());
        let key = ServerKey::new("team-a", "github");
        issuers.insert(key.clone(), "https://unregistered".into());
        assert_eq!(issuers.get(&key), None, "nothing is learned for no server");

        registry.upsert_server(reg("https://mcp.example.com/mcp"));
        issuers.insert(key.clone(), "https://a".into());
        assert_eq!(issuers.get(&key).as_deref(), Some("https://a"));

        // Registered again (even unchanged): discovered afresh, as a new registration may
        // name another server.
        registry.upsert_server(reg("https://mcp.example.com/mcp"));
        assert_eq!(issuers.get(&key), None);
        issuers.insert(key.clone(), "https://b".into());
        assert_eq!(issuers.get(&key).as_deref(), Some("https://b"));

        assert!(registry.remove_server(&key));
        assert_eq!(issuers.get(&key), None);
        registry.upsert_server(reg("https://mcp.example.com/mcp"));
        assert_eq!(issuers.get(&key), None, "forgotten with its registration");
    }
}
