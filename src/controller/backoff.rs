//! The per-object exponential backoff of failed reconciles: how long to wait before the next
//! attempt, counted per object so one failing resource does not slow down the others.
//!
//! Apart from [`reconcile`](super::reconcile) because the [`Ctx`](super::context::Ctx) every
//! reconcile reaches holds the counts.

use dashmap::DashMap;
use std::time::Duration;

/// First retry delay after a transient failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(5);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// The delay before retry number `attempt` (1-based): doubling from [`BACKOFF_BASE`], capped
/// at [`BACKOFF_MAX`].
pub fn backoff(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    BACKOFF_BASE
        .saturating_mul(1u32 << doublings)
        .min(BACKOFF_MAX)
}

/// Consecutive failures per object, for [`backoff`].
#[derive(Debug, Default)]
pub struct Retries {
    attempts: DashMap<String, u32>,
}

impl Retries {
    /// Counts one more failure of `key` and returns how long to wait before the next attempt.
    pub fn next_delay(&self, key: &str) -> Duration {
        let mut attempts = self.attempts.entry(key.to_owned()).or_insert(0);
        *attempts = attempts.saturating_add(1);
        backoff(*attempts)
    }

    /// Forgets the failures of `key` (it succeeded or is gone).
    pub fn reset(&self, key: &str) {
        self.attempts.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(3), Duration::from_secs(20));
        assert_eq!(backoff(7), Duration::from_secs(300));
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn retries_are_counted_per_object_and_reset_on_success() {
        let r = Retries::default();
        assert_eq!(r.next_delay("a"), Duration::from_secs(5));
        assert_eq!(r.next_delay("a"), Duration::from_secs(10));
        assert_eq!(r.next_delay("b"), Duration::from_secs(5));
        r.reset("a");
        assert_eq!(r.next_delay("a"), Duration::from_secs(5));
    }
}
