//! The endpoint check of a policy as its reconcile runs it: the probe
//! ([`crate::credentials::exchange::probe`]) through one client, its outcomes remembered
//! ([`ProbeCache`]) so the frequent reconciles that refresh the counters do not fetch metadata
//! each time, and the refusal of an issuer the operator does not allow, which no probe can lift.

use crate::credentials::exchange::probe::{self as policy_probe, Outcome, ProbeCache, ProbeInput};
use crate::net::OutboundClient;
use crate::registry::{PolicyRegistration, ServerKey};
use std::sync::LazyLock;
use std::time::Instant;

/// The endpoint checks' client and remembered outcomes, shared by every scope of the process.
struct Probes {
    client: Result<OutboundClient, crate::net::FetchError>,
    cache: ProbeCache,
}

static PROBES: LazyLock<Probes> = LazyLock::new(|| Probes {
    client: policy_probe::probe_client(),
    cache: ProbeCache::default(),
});

/// A policy whose issuer the operator does not let receive callers' tokens: not used, whatever
/// its endpoint (its author could run that provider). Checked again when the policy changes, or
/// at the usual re-check of refused policies (the operator may change the flag and restart).
pub fn issuer_not_allowed(reg: &PolicyRegistration) -> Outcome {
    Outcome {
        reason: policy_probe::reason::ISSUER_NOT_ALLOWED,
        message: format!(
            "the gateway does not send callers' tokens to issuer {}: its operator allows \
             exchange issuers with --exchange-allowed-issuers (Helm: exchangeAllowedIssuers; \
             default: the callers' own --oidc-issuer)",
            reg.expected_issuer
        ),
        usable: false,
        warning: true,
        recheck: policy_probe::RECHECK_FAILED,
    }
}

/// The remembered outcome of the endpoint check, or a fresh check.
pub async fn check(key: &ServerKey, reg: &PolicyRegistration) -> Outcome {
    let input = ProbeInput {
        expected_issuer: reg.expected_issuer.clone(),
        token_endpoint: reg.token_endpoint.clone(),
        allow_private_networks: reg.allow_private_networks,
    };
    let probes = &*PROBES;
    if let Some(outcome) = probes.cache.fresh(key, &input, Instant::now()) {
        return outcome;
    }
    let outcome = match &probes.client {
        Ok(client) => policy_probe::probe(client, &input).await,
        Err(e) => policy_probe::decide(
            &input,
            &policy_probe::Fetched::Unavailable {
                detail: format!("the HTTP client could not be built: {e}"),
            },
        ),
    };
    tracing::debug!(policy = %key, reason = %outcome.reason, "endpoint checked");
    probes
        .cache
        .remember(key, input, outcome.clone(), Instant::now());
    outcome
}

/// Forgets the remembered outcome of policy `key` (deleted).
pub fn forget(key: &ServerKey) {
    PROBES.cache.forget(key);
}
