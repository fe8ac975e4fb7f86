//! The `TokenExchangePolicy` reconciler: validate (reading its Secrets, same namespace only) →
//! apply (registry) → status → Event. Servers that use a policy are reconciled again from the
//! policy watch itself (see `run.rs`), and check the policy on their own, so they never depend
//! on the order in which the two reconcilers run.

use super::conditions::Verdict;
use super::context::Ctx;
use super::error::Error;
use super::finalizer::{self, Registered};
use super::server::spec_verdict;
use super::{PolicyObject, status};
use crate::crd::TokenExchangePolicy;
use crate::crd::condition::READY;
use crate::crd::validate::validate_policy;
use crate::registry::ServerKey;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use std::sync::Arc;
use std::time::Duration;

/// Resource kind, for metrics and logs.
pub const KIND: &str = "TokenExchangePolicy";
/// How often a healthy policy is reconciled anyway (drift repair).
pub const RESYNC: Duration = Duration::from_secs(3600);
/// Ready reason of a valid policy.
pub const REGISTERED: &str = "Registered";

/// Reconciles one `TokenExchangePolicy`.
pub async fn reconcile(obj: Arc<PolicyObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    finalizer::reconcile(obj, ctx).await
}

/// `namespace/name` of the object.
pub fn policy_key(obj: &PolicyObject) -> ServerKey {
    finalizer::object_key(obj)
}

/// Invalid specs wait for a change; API errors are retried with per-object backoff.
pub fn error_policy(obj: Arc<PolicyObject>, err: &Error, ctx: Arc<Ctx>) -> Action {
    finalizer::error_policy(obj, err, ctx)
}

/// Key of an object in [`super::error::Retries`].
pub fn retry_key(key: &ServerKey) -> String {
    finalizer::retry_key::<TokenExchangePolicy>(key)
}

impl Registered for TokenExchangePolicy {
    const KIND: &'static str = KIND;

    fn forget(ctx: &Ctx, key: &ServerKey) {
        ctx.registry().remove_policy(key);
    }

    fn cleanup(ctx: &Ctx, key: &ServerKey) {
        if ctx.registry().remove_policy(key) {
            tracing::info!(policy = %key, "policy removed (resource deleted)");
        }
        ctx.retries.reset(&retry_key(key));
    }

    async fn apply(&self, ctx: &Ctx, key: &ServerKey) -> Result<Action, Error> {
        let policy = self;
        match validate_policy(policy, &ctx.secrets) {
            Ok(reg) => {
                ctx.registry().upsert_policy(reg);
                let ready = Verdict::new(
                    READY,
                    true,
                    REGISTERED,
                    "the policy is valid and its Secrets were read",
                );
                write_status(policy, ctx, &ready).await?;
                ctx.retries.reset(&retry_key(key));
                Ok(Action::requeue(RESYNC))
            }
            Err(errs) => {
                if ctx.registry().remove_policy(key) {
                    tracing::info!(policy = %key, "policy removed: the resource is no longer valid");
                }
                let ready = spec_verdict(&errs);
                write_status(policy, ctx, &ready).await?;
                Err(Error::InvalidSpec {
                    reason: ready.reason,
                })
            }
        }
    }
}

async fn write_status(
    policy: &TokenExchangePolicy,
    ctx: &Ctx,
    ready: &Verdict,
) -> Result<(), Error> {
    if !ctx.is_leader() {
        return Ok(());
    }
    let current = policy.status.as_ref();
    let desired =
        status::policy_status(current, policy.metadata.generation, ready, Timestamp::now());
    finalizer::write_changed_status(policy, ctx, current, &desired, ready).await
}
