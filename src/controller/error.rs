//! Reconcile errors, how each is retried, and the per-object exponential backoff.
//!
//! An invalid spec is reported on the resource (a `Ready=False` condition) and not retried until
//! the resource (or a Secret or policy it references) changes; everything else is an API
//! hiccup and retried with backoff.

use dashmap::DashMap;
use kube::runtime::controller::Action;
use kube::runtime::finalizer;
use std::time::Duration;

/// First retry delay after a transient failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(5);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec cannot be registered as it is; the status says why and how to fix it.
    #[error("the spec is invalid ({reason}); see the Ready condition")]
    InvalidSpec { reason: String },
    /// The stored object does not match the resource type (e.g. written under an older schema).
    #[error("the object cannot be decoded: {0}")]
    InvalidObject(String),
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[source] kube::Error),
    #[error("finalizer handling failed: {0}")]
    Finalizer(String),
}

impl Error {
    /// CamelCase category, for Warning Events and logs.
    pub fn category(&self) -> &str {
        match self {
            Error::InvalidSpec { reason } => reason,
            Error::InvalidObject(_) => "InvalidObject",
            Error::Kube(_) => "KubeApiError",
            Error::Finalizer(_) => "FinalizerError",
        }
    }

    /// Whether retrying without a change may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Kube(_) | Error::Finalizer(_))
    }

    /// The `result` label of the reconcile metric.
    pub fn metric_result(&self) -> &'static str {
        if self.is_transient() {
            "error"
        } else {
            "invalid"
        }
    }

    /// The action for this error: wait for a change, or retry after the object's next backoff.
    pub fn action(&self, retries: &Retries, key: &str) -> Action {
        if self.is_transient() {
            Action::requeue(retries.next_delay(key))
        } else {
            Action::await_change()
        }
    }
}

impl From<finalizer::Error<Error>> for Error {
    fn from(e: finalizer::Error<Error>) -> Self {
        match e {
            finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
            finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => {
                Error::Kube(e)
            }
            other => Error::Finalizer(other.to_string()),
        }
    }
}

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

    fn api_error() -> Error {
        Error::Kube(kube::Error::Api(
            kube::core::Status::failure("conflict", "Conflict")
                .with_code(409)
                .boxed(),
        ))
    }

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

    #[test]
    fn invalid_specs_wait_for_a_change_and_api_errors_back_off() {
        let r = Retries::default();
        let invalid = Error::InvalidSpec {
            reason: "SecretNotFound".into(),
        };
        assert!(!invalid.is_transient());
        assert_eq!(invalid.category(), "SecretNotFound");
        assert_eq!(invalid.metric_result(), "invalid");
        assert_eq!(invalid.action(&r, "k"), Action::await_change());
        assert_eq!(
            Error::InvalidObject("bad".into()).action(&r, "k"),
            Action::await_change()
        );

        let api = api_error();
        assert!(api.is_transient());
        assert_eq!(api.category(), "KubeApiError");
        assert_eq!(api.metric_result(), "error");
        assert_eq!(api.action(&r, "k"), Action::requeue(Duration::from_secs(5)));
        assert_eq!(
            api.action(&r, "k"),
            Action::requeue(Duration::from_secs(10))
        );
    }

    #[test]
    fn finalizer_errors_unwrap_to_their_cause() {
        let inner = finalizer::Error::ApplyFailed(Error::InvalidSpec {
            reason: "InvalidURL".into(),
        });
        assert_eq!(Error::from(inner).category(), "InvalidURL");
        let add = finalizer::Error::<Error>::AddFinalizer(kube::Error::Api(
            kube::core::Status::failure("x", "Conflict")
                .with_code(422)
                .boxed(),
        ));
        assert!(Error::from(add).is_transient());
        assert!(Error::from(finalizer::Error::<Error>::UnnamedObject).is_transient());
    }
}
