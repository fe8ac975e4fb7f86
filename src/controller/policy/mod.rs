//! The `TokenExchangePolicy` reconciler: validate (reading its Secrets, same namespace only) →
//! check the endpoint against the issuer's metadata ([`endpoint`]) → apply (registry:
//! registered unless the check refused it) → status (with the replica's exchange cache
//! counters) → Event. Servers that use a policy are reconciled again from the policy watch
//! itself (see `run.rs`), and check the policy on their own (spec, and a refusal in its status,
//! see [`refusal`]), so they never depend on the order in which the two reconcilers run.
//!
//! Every replica checks the endpoint itself, because the outcome decides whether the policy is
//! registered there.

pub mod endpoint;
pub mod status;

use crate::controller::context::Ctx;
use crate::controller::reconcile::conditions::Verdict;
use crate::controller::reconcile::error::Error;
use crate::controller::reconcile::invalid_spec::spec_verdict;
use crate::controller::reconcile::{self, Registered, events};
use crate::controller::{PolicyObject, object_key};
use crate::crd::TokenExchangePolicy;
use crate::crd::condition::READY;
use crate::crd::validate::validate_policy;
use crate::credentials::exchange::probe::{self as policy_probe, Outcome};
use crate::registry::{PolicyRegistration, ServerKey};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::Resource as _;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use std::sync::Arc;
use std::time::Duration;

/// Resource kind, for metrics and logs.
pub const KIND: &str = "TokenExchangePolicy";
/// How often a healthy policy is reconciled anyway on a replica that does not lead (drift
/// repair, endpoint re-check).
pub const RESYNC: Duration = policy_probe::RECHECK_VERIFIED;
/// How often the leader refreshes `status.cache` (at most one status write per interval).
pub const COUNTERS_INTERVAL: Duration = Duration::from_secs(60);

/// Reconciles one `TokenExchangePolicy`.
pub async fn reconcile(obj: Arc<PolicyObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    reconcile::reconcile(obj, ctx).await
}

/// Invalid specs wait for a change; API errors are retried with per-object backoff.
pub fn error_policy(obj: Arc<PolicyObject>, err: &Error, ctx: Arc<Ctx>) -> Action {
    reconcile::error_policy(obj, err, ctx)
}

/// Key of a policy in [`Retries`](crate::controller::backoff::Retries).
pub fn retry_key(key: &ServerKey) -> String {
    reconcile::retry_key::<TokenExchangePolicy>(key)
}

/// The `Ready` condition of `policy` when its status says the endpoint check refused the
/// policy for its current generation. Servers using the policy are not ready then; any other
/// state of the policy they judge from its spec themselves.
pub fn refusal(policy: &TokenExchangePolicy) -> Option<&Condition> {
    let status = policy.status.as_ref()?;
    if status.observed_generation != policy.metadata.generation {
        return None;
    }
    status.conditions.iter().find(|c| {
        c.type_ == READY
            && c.status == "False"
            && policy_probe::reason::REFUSALS.contains(&c.reason.as_str())
    })
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
        endpoint::forget(key);
        ctx.retries.reset(&retry_key(key));
    }

    async fn apply(&self, ctx: &Ctx, key: &ServerKey) -> Result<Action, Error> {
        let policy = self;
        // Only referenced Secrets are held in memory: fetch this policy's first.
        ctx.secrets
            .load(&key.namespace, &policy.referenced_secrets())
            .await
            .map_err(Error::Kube)?;
        let reg = match validate_policy(policy, &ctx.secrets) {
            Ok(reg) => reg,
            Err(errs) => {
                if ctx.registry().remove_policy(key) {
                    tracing::info!(policy = %key, "policy removed: the resource is no longer valid");
                }
                let ready = spec_verdict(&errs);
                write_status(policy, ctx, &ready, false).await?;
                return Err(Error::InvalidSpec {
                    reason: ready.reason,
                });
            }
        };
        let outcome = if ctx.services.exchanges.issuer_allowed(&reg.expected_issuer) {
            endpoint::check(key, &reg).await
        } else {
            endpoint::issuer_not_allowed(&reg)
        };
        if !still_current(policy, ctx) {
            // Deleted while the check ran: the delete already removed it.
            return Ok(Action::await_change());
        }
        if outcome.usable {
            ctx.registry().upsert_policy(PolicyRegistration {
                endpoint_verified: true,
                ..reg
            });
        } else if ctx.registry().remove_policy(key) {
            tracing::warn!(policy = %key, reason = %outcome.reason, "policy removed: its endpoint check failed (see its status)");
        }
        write_status(policy, ctx, &ready(&outcome), outcome.warning).await?;
        ctx.retries.reset(&retry_key(key));
        Ok(Action::requeue(next_reconcile(ctx, &outcome)))
    }
}

/// The check's outcome as the policy's `Ready` condition (true exactly when it is usable).
fn ready(outcome: &Outcome) -> Verdict {
    Verdict::new(
        READY,
        outcome.usable,
        outcome.reason,
        outcome.message.clone(),
    )
}

/// The leader comes back every [`COUNTERS_INTERVAL`] to refresh the counters; every replica
/// comes back when the endpoint is due for another check.
fn next_reconcile(ctx: &Ctx, outcome: &Outcome) -> Duration {
    if ctx.is_leader() {
        COUNTERS_INTERVAL.min(outcome.recheck)
    } else {
        outcome.recheck
    }
}

/// Whether the object this reconcile started from is still the one in the store (not deleted,
/// not re-created under the same name).
fn still_current(policy: &TokenExchangePolicy, ctx: &Ctx) -> bool {
    let (Some(name), Some(namespace)) = (&policy.metadata.name, &policy.metadata.namespace) else {
        return false;
    };
    let Some(stored) = ctx.policies.get(&ObjectRef::new(name).within(namespace)) else {
        return false;
    };
    stored.meta().uid == policy.metadata.uid && stored.meta().deletion_timestamp.is_none()
}

/// Writes the status when it changed (leader only), and publishes an Event when the Ready
/// outcome changed: a Warning when the policy is refused, or usable with a `warning`.
async fn write_status(
    policy: &TokenExchangePolicy,
    ctx: &Ctx,
    ready: &Verdict,
    warning: bool,
) -> Result<(), Error> {
    if !ctx.is_leader() {
        return Ok(());
    }
    let key = object_key(policy);
    let current = policy.status.as_ref();
    let desired = status::policy_status(
        current,
        policy.metadata.generation,
        ready,
        Some(status::cache_status(ctx.services.exchanges.counts(&key))),
        Timestamp::now(),
    );
    let mut event = events::outcome_event(ready);
    if warning {
        event.type_ = EventType::Warning;
    }
    reconcile::status::write_changed(policy, ctx, current, &desired, &event).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::test_objects;
    use crate::crd::TokenExchangePolicyStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn with_ready(observed: i64, status: &str, reason: &str) -> TokenExchangePolicy {
        let mut policy = test_objects::policy("team-a", "p", None)
            .0
            .expect("decodes");
        policy.status = Some(TokenExchangePolicyStatus {
            observed_generation: Some(observed),
            cache: None,
            conditions: vec![Condition {
                type_: READY.to_owned(),
                status: status.to_owned(),
                reason: reason.to_owned(),
                message: "m".to_owned(),
                observed_generation: Some(observed),
                last_transition_time: Time(Timestamp::UNIX_EPOCH),
            }],
        });
        policy
    }

    #[test]
    fn only_a_current_endpoint_refusal_counts_against_servers() {
        let refused = with_ready(1, "False", policy_probe::reason::ISSUER_MISMATCH);
        assert_eq!(
            refusal(&refused).map(|c| c.reason.as_str()),
            Some("IssuerMismatch")
        );
        // Spec problems the servers see for themselves, from the spec.
        assert!(refusal(&with_ready(1, "False", "SecretNotFound")).is_none());
        // A status about an older generation says nothing about this one.
        assert!(refusal(&with_ready(0, "False", "AddressRefused")).is_none());
        assert!(refusal(&with_ready(1, "True", "EndpointVerified")).is_none());
        // An endpoint that could not be verified is not used: servers see that too.
        assert_eq!(
            refusal(&with_ready(1, "False", "MetadataUnavailable")).map(|c| c.reason.as_str()),
            Some("MetadataUnavailable")
        );
        let mut none = refused.clone();
        none.status = None;
        assert!(refusal(&none).is_none());
    }
}
