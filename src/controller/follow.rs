//! What each watch event does besides filling its reflector store (which has already happened
//! when these run): signal the first complete list, unregister deleted resources on every
//! replica, sweep registrations a re-list no longer has, and re-trigger the resources that read
//! a changed Secret or policy.

use super::config::Scope;
use super::secrets::{SecretMeta, StoreSecrets};
use super::{PolicyObject, ServerObject, policy, relations, server, sweep};
use crate::registry::Registry;
use futures::channel::mpsc::UnboundedSender;
use kube::ResourceExt as _;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::watch;

/// Where re-triggered resources are sent (the controllers' `reconcile_on` streams).
#[derive(Clone)]
pub struct Retrigger {
    pub servers: UnboundedSender<ObjectRef<ServerObject>>,
    pub policies: UnboundedSender<ObjectRef<PolicyObject>>,
}

impl Retrigger {
    fn send(&self, dependents: relations::Dependents) {
        self.send_servers(dependents.servers);
        for r in dependents.policies {
            // Err: the controller has stopped (shutdown).
            let _ = self.policies.unbounded_send(r);
        }
    }

    fn send_servers(&self, servers: Vec<ObjectRef<ServerObject>>) {
        for r in servers {
            let _ = self.servers.unbounded_send(r);
        }
    }
}

/// Secret events: re-trigger whatever reads the Secret, and drop from memory the data of
/// Secrets nothing references (any longer).
pub struct SecretFollower {
    pub secrets: StoreSecrets,
    pub servers: Store<ServerObject>,
    pub policies: Store<PolicyObject>,
    pub retrigger: Retrigger,
    pub listed: watch::Sender<bool>,
}

impl SecretFollower {
    pub fn observe(&self, event: &Event<SecretMeta>) {
        match event {
            Event::Apply(s) | Event::Delete(s) => {
                let namespace = s.namespace().unwrap_or_default();
                let name = s.name_any();
                let dependents =
                    relations::of_secret(&self.servers, &self.policies, &namespace, &name);
                if matches!(event, Event::Delete(_))
                    || (dependents.servers.is_empty() && dependents.policies.is_empty())
                {
                    self.secrets.forget(&namespace, &name);
                }
                self.retrigger.send(dependents);
            }
            Event::InitDone => {
                self.secrets.retain(|namespace, name| {
                    let d = relations::of_secret(&self.servers, &self.policies, namespace, name);
                    !(d.servers.is_empty() && d.policies.is_empty())
                });
                self.listed.send_replace(true);
                self.retrigger
                    .send(relations::of_any_secret(&self.servers, &self.policies));
            }
            Event::Init | Event::InitApply(_) => {}
        }
    }
}

/// TokenExchangePolicy events: keep the registry's policies in step, re-trigger the servers
/// that use a policy.
pub struct PolicyFollower {
    pub registry: Arc<Registry>,
    pub policies: Store<PolicyObject>,
    pub servers: Store<ServerObject>,
    pub scope: Scope,
    pub retrigger: Retrigger,
    pub listed: watch::Sender<bool>,
}

impl PolicyFollower {
    pub fn observe(&self, event: &Event<PolicyObject>) {
        match event {
            Event::Apply(p) => {
                let key = policy::policy_key(p);
                self.retrigger.send_servers(relations::of_policy(
                    &self.servers,
                    &key.namespace,
                    &key.name,
                ));
            }
            Event::Delete(p) => {
                let key = policy::policy_key(p);
                if self.registry.remove_policy(&key) {
                    tracing::info!(policy = %key, "policy removed (resource deleted)");
                }
                self.retrigger.send_servers(relations::of_policy(
                    &self.servers,
                    &key.namespace,
                    &key.name,
                ));
            }
            Event::InitDone => {
                self.listed.send_replace(true);
                let live: HashSet<_> = self
                    .policies
                    .state()
                    .iter()
                    .map(|p| policy::policy_key(p))
                    .collect();
                let snapshot = self.registry.snapshot();
                for key in sweep::stale(snapshot.policies.keys(), &live, &self.scope) {
                    self.registry.remove_policy(&key);
                    tracing::info!(policy = %key, "policy removed (gone after a re-list)");
                }
                self.retrigger
                    .send_servers(relations::of_any_policy(&self.servers));
            }
            Event::Init | Event::InitApply(_) => {}
        }
    }
}

/// RemoteMCPServer events: unregister deleted servers at once.
pub struct ServerFollower {
    pub registry: Arc<Registry>,
    pub servers: Store<ServerObject>,
    pub scope: Scope,
    pub listed: watch::Sender<bool>,
}

impl ServerFollower {
    pub fn observe(&self, event: &Event<ServerObject>) {
        match event {
            Event::Delete(s) => {
                let key = server::server_key(s);
                if self.registry.remove_server(&key) {
                    tracing::info!(server = %key, "unregistered (resource deleted)");
                }
            }
            Event::InitDone => {
                self.listed.send_replace(true);
                let live: HashSet<_> = self
                    .servers
                    .state()
                    .iter()
                    .map(|s| server::server_key(s))
                    .collect();
                let snapshot = self.registry.snapshot();
                for key in sweep::stale(snapshot.servers.keys(), &live, &self.scope) {
                    self.registry.remove_server(&key);
                    tracing::info!(server = %key, "unregistered (gone after a re-list)");
                }
            }
            Event::Apply(_) | Event::Init | Event::InitApply(_) => {}
        }
    }
}
