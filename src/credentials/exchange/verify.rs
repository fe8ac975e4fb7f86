//! The gateway's own guard against sending a caller's token to an unverified token endpoint.
//! The controller checks every policy's endpoint against the expected issuer's metadata before
//! registering it ([`PolicyRegistration::endpoint_verified`]); where no controller runs
//! (`serve --manifests`), the exchanger runs the same check ([`probe`]) before the first
//! exchange of a policy and again when the outcome is due, and refuses while it fails.

use super::error::ExchangeError;
use super::probe::{self, Outcome, ProbeCache, ProbeInput};
use crate::net::OutboundClient;
use crate::registry::PolicyRegistration;
use std::time::Instant;

/// Remembered outcomes of the gateway's own checks.
#[derive(Clone, Default)]
pub struct EndpointGuard {
    checked: ProbeCache,
}

impl std::fmt::Debug for EndpointGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointGuard").finish_non_exhaustive()
    }
}

impl EndpointGuard {
    /// `Ok` when `policy`'s endpoint may receive a caller's token: verified by the controller,
    /// or by a check of this guard (fresh or remembered) run with `client`, the policy's own
    /// outbound client (its CA roots and address rule).
    pub async fn ensure(
        &self,
        policy: &PolicyRegistration,
        client: &OutboundClient,
    ) -> Result<(), ExchangeError> {
        if policy.endpoint_verified {
            return Ok(());
        }
        let input = ProbeInput {
            expected_issuer: policy.expected_issuer.clone(),
            token_endpoint: policy.token_endpoint.clone(),
            allow_private_networks: policy.allow_private_networks,
        };
        let outcome = match self.checked.fresh(&policy.key, &input, Instant::now()) {
            Some(outcome) => outcome,
            None => {
                let outcome = probe::probe(client, &input).await;
                if outcome.usable {
                    tracing::info!(policy = %policy.key, reason = %outcome.reason, "token endpoint verified");
                } else {
                    tracing::warn!(policy = %policy.key, reason = %outcome.reason, message = %outcome.message, "token endpoint not verified: the policy is not used");
                }
                self.checked
                    .remember(&policy.key, input, outcome.clone(), Instant::now());
                outcome
            }
        };
        verdict(outcome)
    }
}

/// The check's outcome as the exchange's answer.
fn verdict(outcome: Outcome) -> Result<(), ExchangeError> {
    if outcome.usable {
        Ok(())
    } else {
        Err(ExchangeError::EndpointUnverified {
            reason: outcome.reason.to_owned(),
            message: outcome.message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::probe::{Fetched, decide};
    use super::*;
    use crate::credentials::exchange::request::tests::policy;

    #[tokio::test]
    async fn a_controller_verified_policy_needs_no_check() {
        let client = probe::probe_client().expect("client");
        let guard = EndpointGuard::default();
        // dex.example.com is never contacted: the registration says it was verified.
        assert!(guard.ensure(&policy(), &client).await.is_ok());
    }

    #[tokio::test]
    async fn an_unverified_policy_whose_check_fails_is_refused_without_a_token_sent() {
        let guard = EndpointGuard::default();
        let mut p = policy();
        p.endpoint_verified = false;
        p.allow_private_networks = true;
        // Nothing listens on port 1 of loopback: the metadata cannot be read.
        p.expected_issuer = "http://127.0.0.1:1".into();
        p.token_endpoint = url::Url::parse("http://127.0.0.1:1/token").expect("url");
        let client = probe::probe_client().expect("client");
        let err = guard.ensure(&p, &client).await.expect_err("refused");
        assert!(
            matches!(&err, ExchangeError::EndpointUnverified { reason, .. } if reason == probe::reason::METADATA_UNAVAILABLE),
            "{err:?}"
        );
        assert_eq!(err.kind(), "endpoint_unverified");
        assert!(err.to_string().contains("no token was sent"), "{err}");
    }

    #[test]
    fn only_a_usable_outcome_lets_the_exchange_through() {
        let p = policy();
        let input = ProbeInput {
            expected_issuer: p.expected_issuer.clone(),
            token_endpoint: p.token_endpoint.clone(),
            allow_private_networks: false,
        };
        let down = decide(
            &input,
            &Fetched::Unavailable {
                detail: "404".into(),
            },
        );
        assert!(verdict(down).is_err());
    }
}
