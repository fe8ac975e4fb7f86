//! Pure: the new `status.conditions` from the current ones and this reconcile's verdicts.
//!
//! `lastTransitionTime` moves only when a condition's status actually changes (True ↔ False, or
//! the condition is new); a changed reason, message or generation keeps it, so
//! `kubectl get -o wide` and alerting see how long a resource has been in its state.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Longest condition message written (the API allows 32 KiB; a screenful is enough).
pub const MAX_MESSAGE_CHARS: usize = 4096;

/// One condition as this reconcile decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Condition type, e.g. `Ready`.
    pub type_: &'static str,
    pub ok: bool,
    /// CamelCase reason.
    pub reason: String,
    /// What is the case and, when not ok, how to fix it.
    pub message: String,
}

impl Verdict {
    pub fn new(
        type_: &'static str,
        ok: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            ok,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// `"True"` or `"False"`.
    pub fn status(&self) -> &'static str {
        if self.ok { "True" } else { "False" }
    }
}

/// The conditions to write: exactly one per verdict, in the verdicts' order. Conditions of
/// other types are not carried over (server-side apply removes the ones this controller no
/// longer sets and leaves other field managers' conditions alone).
pub fn compute(
    current: &[Condition],
    verdicts: &[Verdict],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    verdicts
        .iter()
        .map(|v| {
            let status = v.status();
            let since = current
                .iter()
                .find(|c| c.type_ == v.type_ && c.status == status)
                .map_or(Time(now), |c| c.last_transition_time.clone());
            Condition {
                type_: v.type_.to_owned(),
                status: status.to_owned(),
                reason: v.reason.clone(),
                message: clip(&v.message),
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

/// The condition of `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Conditions with their timestamps blanked, to compare what they say.
pub fn without_times(conditions: &[Condition]) -> Vec<Condition> {
    conditions
        .iter()
        .map(|c| Condition {
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
            ..c.clone()
        })
        .collect()
}

fn clip(message: &str) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        None => message.to_owned(),
        Some((cut, _)) => format!("{}…", &message[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("timestamp")
    }

    fn ready(ok: bool, reason: &str) -> Verdict {
        Verdict::new("Ready", ok, reason, format!("{reason} message"))
    }

    #[test]
    fn a_new_condition_starts_now() {
        let out = compute(&[], &[ready(true, "Registered")], Some(3), at(10));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].type_, "Ready");
        assert_eq!(out[0].status, "True");
        assert_eq!(out[0].reason, "Registered");
        assert_eq!(out[0].observed_generation, Some(3));
        assert_eq!(out[0].last_transition_time, Time(at(10)));
    }

    #[test]
    fn unchanged_status_keeps_the_transition_time_even_when_reason_or_generation_change() {
        let first = compute(&[], &[ready(false, "SecretNotFound")], Some(1), at(0));
        let second = compute(&first, &[ready(false, "InvalidURL")], Some(2), at(50));
        assert_eq!(second[0].last_transition_time, Time(at(0)));
        assert_eq!(second[0].reason, "InvalidURL");
        assert_eq!(second[0].observed_generation, Some(2));
    }

    #[test]
    fn a_real_transition_moves_the_time() {
        let first = compute(&[], &[ready(false, "SecretNotFound")], Some(1), at(0));
        let second = compute(&first, &[ready(true, "Registered")], Some(1), at(50));
        assert_eq!(second[0].status, "True");
        assert_eq!(second[0].last_transition_time, Time(at(50)));
    }

    #[test]
    fn each_type_keeps_its_own_time_and_dropped_types_disappear() {
        let discovered = Verdict::new("AuthorizationServerDiscovered", true, "Discovered", "ok");
        let first = compute(
            &[],
            &[ready(true, "Registered"), discovered.clone()],
            Some(1),
            at(0),
        );
        let failed = Verdict::new("AuthorizationServerDiscovered", false, "Timeout", "slow");
        let second = compute(&first, &[ready(true, "Registered"), failed], Some(1), at(9));
        assert_eq!(second[0].last_transition_time, Time(at(0)));
        assert_eq!(second[1].last_transition_time, Time(at(9)));
        let third = compute(&second, &[ready(false, "Invalid")], Some(2), at(20));
        assert_eq!(third.len(), 1, "conditions not decided now are not written");
    }

    #[test]
    fn long_messages_are_clipped_on_a_char_boundary() {
        let long = "é".repeat(MAX_MESSAGE_CHARS + 10);
        let out = compute(&[], &[Verdict::new("Ready", false, "X", long)], None, at(0));
        assert_eq!(out[0].message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(out[0].message.ends_with('…'));
    }

    #[test]
    fn comparison_ignores_times_only() {
        let a = compute(&[], &[ready(true, "Registered")], Some(1), at(0));
        let b = compute(&[], &[ready(true, "Registered")], Some(1), at(99));
        assert_ne!(a, b);
        assert_eq!(without_times(&a), without_times(&b));
        let c = compute(&[], &[ready(true, "Other")], Some(1), at(0));
        assert_ne!(without_times(&a), without_times(&c));
        assert!(find(&a, "Ready").is_some());
        assert!(find(&a, "Missing").is_none());
    }
}
