//! The `RemoteMCPServer` reconciler: validate → resolve (Secrets, exchange policy; same
//! namespace only) → apply (register) → discover (oauth mode) → status → Event.
//!
//! Every replica registers and unregisters in its own registry, so every replica can serve;
//! only the leader adds and removes the finalizer, probes the authorization server (its result
//! only goes into status) and writes status and Events.

pub mod discover;
pub mod status;

use crate::controller::ServerObject;
use crate::controller::backoff::BACKOFF_MAX;
use crate::controller::context::Ctx;
use crate::controller::reconcile::conditions::Verdict;
use crate::controller::reconcile::error::Error;
use crate::controller::reconcile::invalid_spec::{join_messages, spec_verdict};
use crate::controller::reconcile::{self, Registered, events};
use crate::crd::RemoteMCPServer;
use crate::crd::condition::READY;
use crate::crd::validate::{validate_policy, validate_server};
use crate::registry::{AuthSettings, ServerKey, ServerRegistration};
use discover::Discovered;
use k8s_openapi::jiff::Timestamp;
use kube::Resource as _;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Resource kind, for metrics and logs.
pub const KIND: &str = "RemoteMCPServer";
/// How often a healthy server is reconciled anyway (re-discovery, drift repair).
pub const RESYNC: Duration = Duration::from_secs(3600);

/// Ready reasons of this reconciler (spec problems use
/// [`SpecError::reason`](crate::crd::validate::SpecError::reason)).
pub mod reason {
    pub const REGISTERED: &str = "Registered";
    pub const POLICY_NOT_FOUND: &str = "PolicyNotFound";
    pub const POLICY_INVALID: &str = "PolicyInvalid";
    /// The policy's endpoint check refused it (see the policy's status).
    pub const POLICY_NOT_READY: &str = "PolicyNotReady";
}

/// Reconciles one `RemoteMCPServer`.
pub async fn reconcile(obj: Arc<ServerObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    reconcile::reconcile(obj, ctx).await
}

impl Registered for RemoteMCPServer {
    const KIND: &'static str = KIND;

    fn forget(ctx: &Ctx, key: &ServerKey) {
        ctx.registry().remove_server(key);
    }

    fn cleanup(ctx: &Ctx, key: &ServerKey) {
        if ctx.registry().remove_server(key) {
            tracing::info!(server = %key, "unregistered (resource deleted)");
        }
        ctx.retries.reset(&retry_key(key));
    }

    async fn apply(&self, ctx: &Ctx, key: &ServerKey) -> Result<Action, Error> {
        let server = self;
        load_secrets(server, ctx, &key.namespace).await?;
        match resolve(server, ctx) {
            Ok(reg) => {
                if !still_current(server, ctx) {
                    // Deleted while this reconcile waited to run: the delete already
                    // unregistered it.
                    return Ok(Action::await_change());
                }
                let settings = match &reg.auth {
                    AuthSettings::OAuth(settings) => Some((reg.url.clone(), settings.clone())),
                    _ => None,
                };
                ctx.registry().upsert_server(reg);
                let endpoint = endpoint(&ctx.services.public_url, key);
                let ready = Verdict::new(
                    READY,
                    true,
                    reason::REGISTERED,
                    format!("served at {endpoint}"),
                );
                // Discovery feeds only the status, which only the leader writes.
                let discovered = match settings {
                    Some((url, settings)) if ctx.is_leader() => {
                        Some(discover::discover(&ctx.services.discovery, &url, &settings).await)
                    }
                    _ => None,
                };
                write_status(server, ctx, endpoint, &ready, discovered.as_ref()).await?;
                Ok(next_action(ctx, key, discovered.as_ref()))
            }
            Err(ready) => {
                if ctx.registry().remove_server(key) {
                    tracing::info!(server = %key, reason = %ready.reason, "unregistered: the resource is no longer valid");
                }
                write_status(
                    server,
                    ctx,
                    endpoint(&ctx.services.public_url, key),
                    &ready,
                    None,
                )
                .await?;
                Err(Error::InvalidSpec {
                    reason: ready.reason,
                })
            }
        }
    }
}

/// The gateway URL of a server: `{public_url}/mcp/{namespace}/{name}`, under any path prefix of
/// the public URL.
pub fn endpoint(public_url: &Url, key: &ServerKey) -> String {
    let mut url = public_url.clone();
    let base = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{base}/mcp/{}/{}", key.namespace, key.name));
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

/// Fetches the data of the Secrets the server reads, directly or through its policy, before
/// [`resolve`] looks them up (only referenced Secrets are held in memory).
async fn load_secrets(server: &RemoteMCPServer, ctx: &Ctx, namespace: &str) -> Result<(), Error> {
    let mut names = server.referenced_secrets();
    if let Some(policy) = server.referenced_policy()
        && let Some(found) = ctx.policies.get(&ObjectRef::new(policy).within(namespace))
        && let Ok(policy) = &found.0
    {
        names.extend(policy.referenced_secrets());
    }
    ctx.secrets
        .load(namespace, &names)
        .await
        .map_err(Error::Kube)
}

/// Validate and resolve: the registration, or the `Ready=False` verdict saying why not.
fn resolve(server: &RemoteMCPServer, ctx: &Ctx) -> Result<ServerRegistration, Verdict> {
    let reg = validate_server(server, &ctx.secrets).map_err(|errs| spec_verdict(&errs))?;
    if let AuthSettings::Exchange(exchange) = &reg.auth {
        check_policy(ctx, &reg.key.namespace, &exchange.policy)?;
    }
    Ok(reg)
}

/// The policy a server in exchange mode uses must exist in its namespace and be valid.
fn check_policy(ctx: &Ctx, namespace: &str, name: &str) -> Result<(), Verdict> {
    let not_found = |why: &str| {
        Verdict::new(
            READY,
            false,
            reason::POLICY_NOT_FOUND,
            format!(
                "TokenExchangePolicy `{name}` {why} in namespace `{namespace}`: create it there or fix spec.auth.exchange.policyRef.name (policies are same-namespace only)"
            ),
        )
    };
    let invalid = |details: String| {
        Verdict::new(
            READY,
            false,
            reason::POLICY_INVALID,
            format!("TokenExchangePolicy `{name}` is not valid: {details}"),
        )
    };
    let Some(found) = ctx.policies.get(&ObjectRef::new(name).within(namespace)) else {
        return Err(not_found("not found"));
    };
    match &found.0 {
        Err(bad) => Err(invalid(format!(
            "it does not match the schema ({})",
            bad.error
        ))),
        Ok(policy) if policy.meta().deletion_timestamp.is_some() => {
            Err(not_found("is being deleted"))
        }
        Ok(policy) => {
            validate_policy(policy, &ctx.secrets).map_err(|errs| invalid(join_messages(&errs)))?;
            match crate::controller::policy::refusal(policy) {
                Some(ready) => Err(Verdict::new(
                    READY,
                    false,
                    reason::POLICY_NOT_READY,
                    format!(
                        "TokenExchangePolicy `{name}` is not ready ({}): {}",
                        ready.reason, ready.message
                    ),
                )),
                None => Ok(()),
            }
        }
    }
}

/// Whether the object this reconcile started from is still the one in the store (not deleted,
/// not re-created under the same name).
fn still_current(server: &RemoteMCPServer, ctx: &Ctx) -> bool {
    let (Some(name), Some(namespace)) = (&server.metadata.name, &server.metadata.namespace) else {
        return false;
    };
    let Some(stored) = ctx.servers.get(&ObjectRef::new(name).within(namespace)) else {
        return false;
    };
    stored.meta().uid == server.metadata.uid
}

async fn write_status(
    server: &RemoteMCPServer,
    ctx: &Ctx,
    endpoint: String,
    ready: &Verdict,
    discovered: Option<&Discovered>,
) -> Result<(), Error> {
    if !ctx.is_leader() {
        return Ok(());
    }
    let current = server.status.as_ref();
    let desired = status::server_status(
        current,
        server.metadata.generation,
        endpoint,
        ready,
        discovered,
        Timestamp::now(),
    );
    let event = events::outcome_event(ready);
    reconcile::status::write_changed(server, ctx, current, &desired, &event).await
}

/// Healthy: the periodic resync. Discovery failed: soon (backoff) when it may be a passing
/// network problem, else at the longest backoff.
fn next_action(ctx: &Ctx, key: &ServerKey, discovered: Option<&Discovered>) -> Action {
    match discovered {
        Some(d) if !d.verdict.ok && d.transient => {
            Action::requeue(ctx.retries.next_delay(&retry_key(key)))
        }
        Some(d) if !d.verdict.ok => Action::requeue(BACKOFF_MAX),
        _ => {
            ctx.retries.reset(&retry_key(key));
            Action::requeue(RESYNC)
        }
    }
}

/// Invalid specs wait for a change; API errors are retried with per-object backoff.
pub fn error_policy(obj: Arc<ServerObject>, err: &Error, ctx: Arc<Ctx>) -> Action {
    reconcile::error_policy(obj, err, ctx)
}

/// Key of a server in [`Retries`](crate::controller::backoff::Retries).
pub fn retry_key(key: &ServerKey) -> String {
    reconcile::retry_key::<RemoteMCPServer>(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_keeps_the_public_url_prefix_and_drops_its_query() {
        let key = ServerKey::new("team-a", "github");
        let at = |u: &str| endpoint(&Url::parse(u).expect("url"), &key);
        assert_eq!(
            at("https://gw.example.com"),
            "https://gw.example.com/mcp/team-a/github"
        );
        assert_eq!(
            at("https://gw.example.com/prefix/?x=1#f"),
            "https://gw.example.com/prefix/mcp/team-a/github"
        );
    }
}
