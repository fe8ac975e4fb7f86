//! The issuer learned per server when its resource pins none (from its protected-resource
//! metadata, from the challenge that started a flow, or from a completed flow).
//!
//! A learned issuer belongs to the registration it was learned for: an entry remembers the
//! registration's generation, URL and resource, and a lookup for a registration that differs in
//! any of them misses (the server may now name another authorization server, or be another
//! server). So a re-registration needs no hook to clear the cache, whoever registers.

use crate::registry::{AuthSettings, ServerKey, ServerRegistration};
use dashmap::DashMap;
use url::Url;

/// Bound on remembered servers: entries of deleted servers are never looked up again, and the
/// map is cleared (everything is learned again) rather than grown past this.
const MAX_SERVERS: usize = 10_000;

#[derive(Debug)]
struct Learned {
    generation: i64,
    url: Url,
    resource: String,
    issuer: String,
}

impl Learned {
    fn is_for(&self, reg: &ServerRegistration, resource: &str) -> bool {
        self.generation == reg.generation && self.url == reg.url && self.resource == resource
    }
}

/// Issuers per server, each valid for the registration it was learned for.
#[derive(Debug, Default)]
pub(super) struct LearnedIssuers {
    by_server: DashMap<ServerKey, Learned>,
}

/// The resource an `oauth` registration's issuer is discovered for; `None` for other modes.
fn resource(reg: &ServerRegistration) -> Option<&str> {
    match &reg.auth {
        AuthSettings::OAuth(s) => Some(&s.resource),
        _ => None,
    }
}

impl LearnedIssuers {
    /// The issuer learned for `reg`, if it was learned for this registration.
    pub(super) fn get(&self, reg: &ServerRegistration) -> Option<String> {
        let resource = resource(reg)?;
        self.by_server
            .get(&reg.key)
            .filter(|l| l.is_for(reg, resource))
            .map(|l| l.issuer.clone())
    }

    /// Remember `issuer` for `reg` (replacing what was learned for it or an older registration).
    pub(super) fn insert(&self, reg: &ServerRegistration, issuer: String) {
        let Some(resource) = resource(reg) else {
            return;
        };
        if self.by_server.len() >= MAX_SERVERS && !self.by_server.contains_key(&reg.key) {
            self.by_server.clear();
        }
        self.by_server.insert(
            reg.key.clone(),
            Learned {
                generation: reg.generation,
                url: reg.url.clone(),
                resource: resource.to_owned(),
                issuer,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{ClientIdentity, OAuthSettings};

    fn reg(url: &str, resource: &str, generation: i64) -> ServerRegistration {
        ServerRegistration {
            key: ServerKey::new("ns", "s"),
            url: Url::parse(url).expect("url"),
            auth: AuthSettings::OAuth(OAuthSettings {
                issuer: None,
                scopes: Vec::new(),
                resource: resource.to_owned(),
                send_resource: true,
                client: ClientIdentity::Cimd,
            }),
            generation,
            forward_headers: Vec::new(),
        }
    }

    #[test]
    fn an_issuer_is_served_only_for_the_registration_it_was_learned_for() {
        let issuers = LearnedIssuers::default();
        let first = reg("https://mcp.example/a", "https://mcp.example/a", 1);
        issuers.insert(&first, "https://idp-a".into());
        assert_eq!(issuers.get(&first).as_deref(), Some("https://idp-a"));
        for changed in [
            reg("https://mcp.example/b", "https://mcp.example/a", 1),
            reg("https://mcp.example/a", "https://mcp.example/b", 1),
            reg("https://mcp.example/a", "https://mcp.example/a", 2),
        ] {
            assert_eq!(issuers.get(&changed), None, "{changed:?}");
        }
        let second = reg("https://mcp.example/a", "https://mcp.example/a", 2);
        issuers.insert(&second, "https://idp-b".into());
        assert_eq!(issuers.get(&second).as_deref(), Some("https://idp-b"));
        assert_eq!(issuers.get(&first), None);
    }

    #[test]
    fn other_modes_learn_nothing() {
        let issuers = LearnedIssuers::default();
        let mut none = reg("https://mcp.example/a", "https://mcp.example/a", 1);
        none.auth = AuthSettings::None;
        issuers.insert(&none, "https://idp".into());
        assert_eq!(issuers.get(&none), None);
    }
}
