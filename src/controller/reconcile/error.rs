//! Reconcile errors and how each is retried.
//!
//! An invalid spec is reported on the resource (a `Ready=False` condition) and not retried until
//! the resource (or a Secret or policy it references) changes; everything else is an API
//! hiccup and retried with the object's backoff ([`crate::controller::backoff`]).

use crate::controller::backoff::Retries;
use kube::runtime::controller::Action;
use kube::runtime::finalizer;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec cannot be registered as it is; the status says why and how to fix it.
    #[error("the spec is invalid ({reason}); see the Ready condition")]
    InvalidSpec { reason: String },
    /// The stored object does not match the resource type (e.g. written under an older schema).
    /// The text is what the watch's decoder said (kube keeps only that message).
    #[error("the object cannot be decoded: {0}")]
    InvalidObject(String),
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[source] kube::Error),
    /// The finalizer helper refused the object (no name, or an invalid finalizer name).
    #[error("finalizer handling failed: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
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
            other => Error::Finalizer(Box::new(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn api_error() -> Error {
        Error::Kube(kube::Error::Api(
            kube::core::Status::failure("conflict", "Conflict")
                .with_code(409)
                .boxed(),
        ))
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
        let unnamed = Error::from(finalizer::Error::<Error>::UnnamedObject);
        assert!(unnamed.is_transient());
        assert!(
            std::error::Error::source(&unnamed).is_some(),
            "the finalizer error is kept as the source"
        );
    }
}
