//! The status of a `RemoteMCPServer` (pure): the `Ready` verdict, then the discovery condition
//! and the authorization server's capabilities when discovery ran.

use super::discover::Discovered;
use crate::controller::reconcile::conditions::{self, Verdict};
use crate::controller::reconcile::status::Conditioned;
use crate::crd::RemoteMCPServerStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

impl Conditioned for RemoteMCPServerStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
}

/// The status of a `RemoteMCPServer`: `ready`, then the discovery condition when discovery ran.
pub fn server_status(
    current: Option<&RemoteMCPServerStatus>,
    generation: Option<i64>,
    endpoint: String,
    ready: &Verdict,
    discovered: Option<&Discovered>,
    now: Timestamp,
) -> RemoteMCPServerStatus {
    let mut verdicts = vec![ready.clone()];
    if let Some(d) = discovered {
        verdicts.push(d.verdict.clone());
    }
    let old = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    RemoteMCPServerStatus {
        observed_generation: generation,
        endpoint: Some(endpoint),
        authorization_server: discovered.and_then(|d| d.server.clone()),
        conditions: conditions::compute(old, &verdicts, generation, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::reconcile::status::{differs, ready_outcome_changed};
    use crate::crd::AuthorizationServerStatus;
    use crate::crd::condition::{AUTHORIZATION_SERVER_DISCOVERED, READY};

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("timestamp")
    }

    fn registered() -> Verdict {
        Verdict::new(READY, true, "Registered", "registered")
    }

    fn discovered() -> Discovered {
        Discovered {
            verdict: Verdict::new(AUTHORIZATION_SERVER_DISCOVERED, true, "Discovered", "ok"),
            server: Some(AuthorizationServerStatus {
                issuer: Some("https://idp.example.com".into()),
                pkce: Some(true),
                cimd: Some(true),
                iss_parameter: Some(false),
            }),
            transient: false,
        }
    }

    #[test]
    fn server_status_carries_generation_endpoint_and_discovery() {
        let s = server_status(
            None,
            Some(4),
            "http://gw/mcp/ns/x".into(),
            &registered(),
            Some(&discovered()),
            at(0),
        );
        assert_eq!(s.observed_generation, Some(4));
        assert_eq!(s.endpoint.as_deref(), Some("http://gw/mcp/ns/x"));
        assert_eq!(
            s.authorization_server
                .as_ref()
                .and_then(|a| a.issuer.as_deref()),
            Some("https://idp.example.com")
        );
        let types: Vec<_> = s.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [READY, AUTHORIZATION_SERVER_DISCOVERED]);
        assert!(
            s.conditions
                .iter()
                .all(|c| c.observed_generation == Some(4))
        );

        let without = server_status(Some(&s), Some(5), "e".into(), &registered(), None, at(1));
        assert_eq!(without.conditions.len(), 1);
        assert!(without.authorization_server.is_none());
    }

    #[test]
    fn the_same_outcome_later_is_not_a_change() {
        let first = server_status(None, Some(1), "e".into(), &registered(), None, at(0));
        let again = server_status(
            Some(&first),
            Some(1),
            "e".into(),
            &registered(),
            None,
            at(60),
        );
        assert!(!differs(Some(&first), &again));
        assert_eq!(first, again, "the transition time was preserved");
        assert!(differs(None, &again));
    }

    #[test]
    fn a_new_generation_reason_or_endpoint_is_a_change() {
        let first = server_status(None, Some(1), "e".into(), &registered(), None, at(0));
        let next_gen = server_status(
            Some(&first),
            Some(2),
            "e".into(),
            &registered(),
            None,
            at(1),
        );
        assert!(differs(Some(&first), &next_gen));
        let other_endpoint = server_status(
            Some(&first),
            Some(1),
            "f".into(),
            &registered(),
            None,
            at(1),
        );
        assert!(differs(Some(&first), &other_endpoint));
        let failing = Verdict::new(READY, false, "SecretNotFound", "create it");
        let failed = server_status(Some(&first), Some(1), "e".into(), &failing, None, at(1));
        assert!(differs(Some(&first), &failed));
        // Timestamps alone never count, even when they differ.
        let mut shifted = first.clone();
        shifted.conditions[0].last_transition_time =
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(500));
        assert!(!differs(Some(&first), &shifted));
    }

    #[test]
    fn ready_outcome_changes_on_status_or_reason_only() {
        let ok = server_status(None, Some(1), "e".into(), &registered(), None, at(0));
        let ok_later = server_status(Some(&ok), Some(2), "e".into(), &registered(), None, at(5));
        assert!(!ready_outcome_changed(&ok.conditions, &ok_later.conditions));
        let bad = server_status(
            Some(&ok),
            Some(2),
            "e".into(),
            &Verdict::new(READY, false, "InvalidURL", "fix"),
            None,
            at(5),
        );
        assert!(ready_outcome_changed(&ok.conditions, &bad.conditions));
        assert!(ready_outcome_changed(&[], &ok.conditions));
    }
}
