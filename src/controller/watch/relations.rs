//! Which resources to reconcile again when something they reference changes: a Secret (read by
//! servers' pre-registered clients and by policies' client authentication) or a
//! TokenExchangePolicy (read by servers in exchange mode). References never leave a namespace,
//! so only resources in the changed object's namespace are considered.

use crate::controller::{PolicyObject, ServerObject};
use kube::ResourceExt as _;
use kube::runtime::reflector::{ObjectRef, Store};

/// Resources to reconcile after a change.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dependents {
    pub servers: Vec<ObjectRef<ServerObject>>,
    pub policies: Vec<ObjectRef<PolicyObject>>,
}

/// Servers and policies that read Secret `namespace/name`, directly or (servers) through the
/// policy they use.
pub fn of_secret(
    servers: &Store<ServerObject>,
    policies: &Store<PolicyObject>,
    namespace: &str,
    name: &str,
) -> Dependents {
    let policies: Vec<_> = policies
        .state_filter(|p| {
            in_namespace(p, namespace)
                && p.0
                    .as_ref()
                    .is_ok_and(|p| p.referenced_secrets().iter().any(|s| s == name))
        })
        .iter()
        .map(|p| ObjectRef::from_obj(&**p))
        .collect();
    let servers = servers
        .state_filter(|s| {
            in_namespace(s, namespace)
                && s.0.as_ref().is_ok_and(|s| {
                    s.referenced_secrets().iter().any(|r| r == name)
                        || s.referenced_policy()
                            .is_some_and(|p| policies.iter().any(|r| r.name == p))
                })
        })
        .iter()
        .map(|s| ObjectRef::from_obj(&**s))
        .collect();
    Dependents { servers, policies }
}

/// Every server and policy that reads any Secret (after the Secret store was re-listed).
pub fn of_any_secret(servers: &Store<ServerObject>, policies: &Store<PolicyObject>) -> Dependents {
    let policies = policies
        .state_filter(|p| {
            p.0.as_ref()
                .is_ok_and(|p| !p.referenced_secrets().is_empty())
        })
        .iter()
        .map(|p| ObjectRef::from_obj(&**p))
        .collect();
    let servers = servers
        .state_filter(|s| {
            s.0.as_ref().is_ok_and(|s| {
                !s.referenced_secrets().is_empty() || s.referenced_policy().is_some()
            })
        })
        .iter()
        .map(|s| ObjectRef::from_obj(&**s))
        .collect();
    Dependents { servers, policies }
}

/// Servers that use TokenExchangePolicy `namespace/name`.
pub fn of_policy(
    servers: &Store<ServerObject>,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<ServerObject>> {
    servers
        .state_filter(|s| {
            in_namespace(s, namespace)
                && s.0
                    .as_ref()
                    .is_ok_and(|s| s.referenced_policy() == Some(name))
        })
        .iter()
        .map(|s| ObjectRef::from_obj(&**s))
        .collect()
}

/// Servers that use any TokenExchangePolicy (after the policy store was re-listed).
pub fn of_any_policy(servers: &Store<ServerObject>) -> Vec<ObjectRef<ServerObject>> {
    servers
        .state_filter(|s| s.0.as_ref().is_ok_and(|s| s.referenced_policy().is_some()))
        .iter()
        .map(|s| ObjectRef::from_obj(&**s))
        .collect()
}

fn in_namespace<K: kube::Resource>(obj: &K, namespace: &str) -> bool {
    obj.namespace().as_deref() == Some(namespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::test_objects::{policy, server};
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    fn stores(
        servers: Vec<ServerObject>,
        policies: Vec<PolicyObject>,
    ) -> (Store<ServerObject>, Store<PolicyObject>) {
        let (s, mut sw) = reflector::store();
        for o in servers {
            sw.apply_watcher_event(&Event::Apply(o));
        }
        let (p, mut pw) = reflector::store();
        for o in policies {
            pw.apply_watcher_event(&Event::Apply(o));
        }
        (s, p)
    }

    fn names<K: kube::runtime::reflector::Lookup>(refs: &[ObjectRef<K>]) -> Vec<String> {
        let mut v: Vec<String> = refs.iter().map(|r| r.name.clone()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_secret_change_reaches_direct_users_and_servers_behind_a_policy_in_its_namespace_only() {
        let (servers, policies) = stores(
            vec![
                server(
                    "a",
                    "direct",
                    r#"{"mode":"oauth","oauth":{"client":{"id":"c","secretRef":{"name":"creds"}}}}"#,
                ),
                server(
                    "a",
                    "via-policy",
                    r#"{"mode":"exchange","exchange":{"policyRef":{"name":"p"}}}"#,
                ),
                server("a", "unrelated", r#"{"mode":"none"}"#),
                server(
                    "b",
                    "direct",
                    r#"{"mode":"oauth","oauth":{"client":{"id":"c","secretRef":{"name":"creds"}}}}"#,
                ),
            ],
            vec![
                policy("a", "p", Some("creds")),
                policy("a", "other", Some("else")),
                policy("b", "p", Some("creds")),
            ],
        );
        let d = of_secret(&servers, &policies, "a", "creds");
        assert_eq!(names(&d.servers), ["direct", "via-policy"]);
        assert!(
            d.servers
                .iter()
                .all(|r| r.namespace.as_deref() == Some("a"))
        );
        assert_eq!(names(&d.policies), ["p"]);
        assert_eq!(d.policies[0].namespace.as_deref(), Some("a"));

        let none = of_secret(&servers, &policies, "c", "creds");
        assert_eq!(none, Dependents::default());
    }

    #[test]
    fn a_policy_change_reaches_the_servers_that_use_it() {
        let (servers, _) = stores(
            vec![
                server(
                    "a",
                    "x",
                    r#"{"mode":"exchange","exchange":{"policyRef":{"name":"p"}}}"#,
                ),
                server(
                    "a",
                    "y",
                    r#"{"mode":"exchange","exchange":{"policyRef":{"name":"q"}}}"#,
                ),
                server(
                    "b",
                    "z",
                    r#"{"mode":"exchange","exchange":{"policyRef":{"name":"p"}}}"#,
                ),
            ],
            vec![],
        );
        assert_eq!(names(&of_policy(&servers, "a", "p")), ["x"]);
        assert_eq!(names(&of_any_policy(&servers)), ["x", "y", "z"]);
    }

    #[test]
    fn after_a_relist_every_secret_user_is_reached() {
        let (servers, policies) = stores(
            vec![
                server(
                    "a",
                    "direct",
                    r#"{"mode":"oauth","oauth":{"client":{"id":"c","secretRef":{"name":"creds"}}}}"#,
                ),
                server("a", "plain", r#"{"mode":"none"}"#),
            ],
            vec![policy("a", "p", Some("creds")), policy("a", "open", None)],
        );
        let d = of_any_secret(&servers, &policies);
        assert_eq!(names(&d.servers), ["direct"]);
        assert_eq!(names(&d.policies), ["p"]);
    }
}
