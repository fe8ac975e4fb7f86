//! The `RemoteMCPServer` reconciler: validate → resolve (Secrets, exchange policy; same
//! namespace only) → apply (register) → discover (oauth mode) → status → Event.
//!
//! Every replica registers and unregisters in its own registry, so every replica can serve;
//! only the leader adds and removes the finalizer, probes the authorization server (its result
//! only goes into status) and writes status and Events.

use super::conditions::Verdict;
use super::context::Ctx;
use super::discover::{self, Discovered};
use super::error::{BACKOFF_MAX, Error};
use super::finalizer::{self, Registered};
use super::{ServerObject, status};
use crate::crd::RemoteMCPServer;
use crate::crd::condition::READY;
use crate::crd::validate::{SpecError, validate_policy, validate_server};
use crate::registry::{AuthSettings, ServerKey, ServerRegistration};
use k8s_openapi::jiff::Timestamp;
use kube::Resource as _;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use std::sync::Arc;
use std::time::Duration;

/// Resource kind, for metrics and logs.
pub const KIND: &str = "RemoteMCPServer";
/// How often a healthy server is reconciled anyway (re-discovery, drift repair).
pub const RESYNC: Duration = Duration::from_secs(3600);

/// Ready reasons of this reconciler (spec problems use [`SpecError::reason`]).
pub mod reason {
    pub const REGISTERED: &str = "Registered";
    pub const POLICY_NOT_FOUND: &str = "PolicyNotFound";
    pub const POLICY_INVALID: &str = "PolicyInvalid";
    /// The policy's endpoint check refused it (see the policy's status).
    pub const POLICY_NOT_READY: &str = "PolicyNotReady";
}

/// Reconciles one `RemoteMCPServer`.
pub async fn reconcile(obj: Arc<ServerObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    finalizer::reconcile(obj, ctx).await
}

/// `namespace/name` of the object.
pub fn server_key(obj: &ServerObject) -> ServerKey {
    finalizer::object_key(obj)
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
                let endpoint = ctx.endpoint(key);
                let ready = Verdict::new(
                    READY,
                    true,
                    reason::REGISTERED,
                    format!("served at {endpoint}"),
                );
                // Discovery feeds only the status, which only the leader writes.
                let discovered = match settings {
                    Some((url, settings)) if ctx.is_leader() => {
                        Some(discover::discover(&ctx.discovery, &url, &settings).await)
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
                write_status(server, ctx, ctx.endpoint(key), &ready, None).await?;
                Err(Error::InvalidSpec {
                    reason: ready.reason,
                })
            }
        }
    }
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
            match super::policy::refusal(policy) {
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

/// `Ready=False` for spec problems: the first problem's reason, every problem's message.
pub fn spec_verdict(errs: &[SpecError]) -> Verdict {
    let reason = errs.first().map_or("InvalidSpec", |e| e.reason);
    Verdict::new(READY, false, reason, join_messages(errs))
}

fn join_messages(errs: &[SpecError]) -> String {
    errs.iter()
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
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
    finalizer::write_changed_status(server, ctx, current, &desired, ready).await
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
    finalizer::error_policy(obj, err, ctx)
}

/// Key of an object in [`super::error::Retries`].
pub fn retry_key(key: &ServerKey) -> String {
    finalizer::retry_key::<RemoteMCPServer>(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_verdict_uses_the_first_reason_and_every_message() {
        let v = spec_verdict(&[
            SpecError::new("spec.url", "InvalidURL", "spec.url is not a URL: fix it"),
            SpecError::new("spec.auth", "MissingPolicyRef", "set policyRef"),
        ]);
        assert!(!v.ok);
        assert_eq!(v.type_, READY);
        assert_eq!(v.reason, "InvalidURL");
        assert_eq!(v.message, "spec.url is not a URL: fix it; set policyRef");
    }
}
