//! The status of a `TokenExchangePolicy` (pure): the `Ready` verdict, and the exchange cache
//! counters of the replica that writes it.

use crate::controller::reconcile::conditions::{self, Verdict};
use crate::controller::reconcile::status::Conditioned;
use crate::crd::{ExchangeCacheStatus, TokenExchangePolicyStatus};
use crate::credentials::exchange::ExchangeCounts;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

impl Conditioned for TokenExchangePolicyStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::reconcile::status::{differs, ready_outcome_changed};
    use crate::crd::condition::READY;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("timestamp")
    }

    fn registered() -> Verdict {
        Verdict::new(READY, true, "Registered", "registered")
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
