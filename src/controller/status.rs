//! The status a reconcile writes: built from the verdicts (pure), compared with what the object
//! already says (ignoring timestamps), and written by server-side apply with a stable field
//! manager — only when it changed, and only by the replica that holds the Lease.

use super::conditions::{self, Verdict};
use super::discover::Discovered;
use crate::crd::{ExchangeCacheStatus, RemoteMCPServerStatus, TokenExchangePolicyStatus};
use crate::credentials::exchange::ExchangeCounts;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DeserializeGuard;
use serde::Serialize;

/// Field manager of every write this controller makes.
pub const FIELD_MANAGER: &str = "mcp-oauth-operator";

/// A status type with conditions.
pub trait Conditioned: Clone + PartialEq {
    fn conditions(&self) -> &[Condition];
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
}

impl Conditioned for RemoteMCPServerStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
}

impl Conditioned for TokenExchangePolicyStatus {
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

/// The status of a `TokenExchangePolicy`: `ready`, and the exchange cache counters of the
/// writing replica when it has them.
pub fn policy_status(
    current: Option<&TokenExchangePolicyStatus>,
    generation: Option<i64>,
    ready: &Verdict,
    cache: Option<ExchangeCacheStatus>,
    now: Timestamp,
) -> TokenExchangePolicyStatus {
    let old = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    TokenExchangePolicyStatus {
        observed_generation: generation,
        cache,
        conditions: conditions::compute(old, std::slice::from_ref(ready), generation, now),
    }
}

/// `status.cache` from a replica's exchange counters (saturating: the API field is signed).
pub fn cache_status(counts: ExchangeCounts) -> ExchangeCacheStatus {
    let signed = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    ExchangeCacheStatus {
        hits: Some(signed(counts.hits)),
        misses: Some(signed(counts.misses)),
    }
}

/// Whether writing `desired` would change what `current` says (condition timestamps aside).
pub fn differs<S: Conditioned>(current: Option<&S>, desired: &S) -> bool {
    let Some(current) = current else {
        return true;
    };
    let blank = |s: &S| {
        let mut s = s.clone();
        let times = conditions::without_times(s.conditions());
        *s.conditions_mut() = times;
        s
    };
    blank(current) != blank(desired)
}

/// Whether the Ready outcome (status and reason) differs between two condition lists, which is
/// when an Event is worth publishing.
pub fn ready_outcome_changed(current: &[Condition], desired: &[Condition]) -> bool {
    let outcome = |c: &[Condition]| {
        conditions::find(c, crate::crd::condition::READY)
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    outcome(current) != outcome(desired)
}

/// Server-side apply of `status` to the status subresource of `name`, owned by
/// [`FIELD_MANAGER`] (forced: this controller is the only writer of these fields).
pub async fn apply<K>(
    api: &Api<DeserializeGuard<K>>,
    name: &str,
    status: &impl Serialize,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn policy_status_has_one_ready_condition() {
        let s = policy_status(None, Some(2), &registered(), None, at(0));
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(s.conditions.len(), 1);
        assert!(s.cache.is_none());
        let again = policy_status(Some(&s), Some(2), &registered(), None, at(9));
        assert!(!differs(Some(&s), &again));
    }

    #[test]
    fn counters_convert_saturating() {
        let c = cache_status(ExchangeCounts {
            hits: 7,
            misses: u64::MAX,
        });
        assert_eq!(c.hits, Some(7));
        assert_eq!(c.misses, Some(i64::MAX));
    }

    #[test]
    fn policy_counters_are_written_and_a_new_count_is_a_change() {
        let counts = |hits, misses| {
            Some(ExchangeCacheStatus {
                hits: Some(hits),
                misses: Some(misses),
            })
        };
        let s = policy_status(None, Some(1), &registered(), counts(3, 1), at(0));
        assert_eq!(s.cache, counts(3, 1));
        let same = policy_status(Some(&s), Some(1), &registered(), counts(3, 1), at(60));
        assert!(
            !differs(Some(&s), &same),
            "unchanged counters write nothing"
        );
        let more = policy_status(Some(&s), Some(1), &registered(), counts(4, 1), at(60));
        assert!(differs(Some(&s), &more));
        assert!(
            !ready_outcome_changed(&s.conditions, &more.conditions),
            "a counter change is no Event"
        );
    }
}
