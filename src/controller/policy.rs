//! The `TokenExchangePolicy` reconciler: validate (reading its Secrets, same namespace only) →
//! apply (registry) → status → Event. Servers that use a policy are reconciled again from the
//! policy watch itself (see `run.rs`), and check the policy on their own, so they never depend
//! on the order in which the two reconcilers run.

use super::conditions::Verdict;
use super::context::Ctx;
use super::error::Error;
use super::server::spec_verdict;
use super::{FINALIZER, PolicyObject, events, invalid, status};
use crate::crd::TokenExchangePolicy;
use crate::crd::condition::READY;
use crate::crd::validate::validate_policy;
use crate::registry::ServerKey;
use k8s_openapi::jiff::Timestamp;
use kube::Resource as _;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, Event as Finalizer};
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
    let key = policy_key(&obj);
    let result = run(&obj, &ctx, &key).await;
    ctx.count_reconcile(
        KIND,
        result.as_ref().map_or_else(Error::metric_result, |_| "ok"),
    );
    result
}

/// `namespace/name` of the object.
pub fn policy_key(obj: &PolicyObject) -> ServerKey {
    let meta = obj.meta();
    ServerKey::new(
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// Invalid specs wait for a change; API errors are retried with per-object backoff.
pub fn error_policy(obj: Arc<PolicyObject>, err: &Error, ctx: Arc<Ctx>) -> Action {
    err.action(&ctx.retries, &retry_key(&policy_key(&obj)))
}

/// Key of an object in [`super::error::Retries`].
pub fn retry_key(key: &ServerKey) -> String {
    format!("{KIND}/{key}")
}

async fn run(obj: &PolicyObject, ctx: &Ctx, key: &ServerKey) -> Result<Action, Error> {
    let deleting = obj.meta().deletion_timestamp.is_some();
    let policy = match &obj.0 {
        Ok(policy) => policy,
        Err(bad) => {
            ctx.registry().remove_policy(key);
            return invalid::handle::<TokenExchangePolicy>(bad, ctx).await;
        }
    };
    if deleting {
        cleanup(ctx, key);
    }
    if !ctx.is_leader() {
        return if deleting {
            Ok(Action::await_change())
        } else {
            apply(policy, ctx, key).await
        };
    }
    let api = Api::<TokenExchangePolicy>::namespaced(ctx.client.clone(), &key.namespace);
    finalizer::finalizer(
        &api,
        FINALIZER,
        Arc::new(policy.clone()),
        |event| async move {
            match event {
                Finalizer::Apply(policy) => apply(&policy, ctx, key).await,
                Finalizer::Cleanup(_) => {
                    cleanup(ctx, key);
                    Ok(Action::await_change())
                }
            }
        },
    )
    .await
    .map_err(Error::from)
}

fn cleanup(ctx: &Ctx, key: &ServerKey) {
    if ctx.registry().remove_policy(key) {
        tracing::info!(policy = %key, "policy removed (resource deleted)");
    }
    ctx.retries.reset(&retry_key(key));
}

async fn apply(policy: &TokenExchangePolicy, ctx: &Ctx, key: &ServerKey) -> Result<Action, Error> {
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
    if !status::differs(current, &desired) {
        return Ok(());
    }
    let name = policy.metadata.name.as_deref().unwrap_or_default();
    let namespace = policy.metadata.namespace.as_deref().unwrap_or_default();
    let api = Api::<PolicyObject>::namespaced(ctx.client.clone(), namespace);
    status::apply::<TokenExchangePolicy>(&api, name, &desired)
        .await
        .map_err(Error::Kube)?;
    ctx.count_status_write(KIND);
    let before = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    if status::ready_outcome_changed(before, &desired.conditions) {
        events::publish(
            &ctx.recorder,
            &events::outcome_event(ready),
            &policy.object_ref(&()),
        )
        .await;
    }
    Ok(())
}
