//! Kubernetes Events on the reconciled resources: a Normal Event when a resource becomes ready, a
//! Warning (reason = error category) when it fails. One shared [`Recorder`] so repeated Events
//! are aggregated into a series instead of piling up.

use super::conditions::Verdict;
use super::error::Error;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};

/// Longest Event note (the API limit is 1 KiB).
const MAX_NOTE_BYTES: usize = 1000;

/// The Event for a changed Ready outcome.
pub fn outcome_event(ready: &Verdict) -> Event {
    Event {
        type_: if ready.ok {
            EventType::Normal
        } else {
            EventType::Warning
        },
        reason: ready.reason.clone(),
        note: Some(clip(&ready.message)),
        action: "Reconcile".to_owned(),
        secondary: None,
    }
}

/// The Warning Event for a failed reconcile.
pub fn failure_event(error: &Error) -> Event {
    Event {
        type_: EventType::Warning,
        reason: error.category().to_owned(),
        note: Some(clip(&error.to_string())),
        action: "Reconcile".to_owned(),
        secondary: None,
    }
}

/// Publishes `event`; a failure to publish is logged, never fails the reconcile.
pub async fn publish(recorder: &Recorder, event: &Event, regarding: &ObjectReference) {
    if let Err(e) = recorder.publish(event, regarding).await {
        tracing::warn!(
            object = regarding.name.as_deref().unwrap_or(""),
            namespace = regarding.namespace.as_deref().unwrap_or(""),
            reason = %event.reason,
            error = %e,
            "could not publish an Event"
        );
    }
}

fn clip(text: &str) -> String {
    if text.len() <= MAX_NOTE_BYTES {
        return text.to_owned();
    }
    let mut cut = MAX_NOTE_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_is_normal_and_failure_is_a_warning_with_the_reason() {
        let ok = outcome_event(&Verdict::new("Ready", true, "Registered", "served at x"));
        assert_eq!(ok.type_, EventType::Normal);
        assert_eq!(ok.reason, "Registered");
        let bad = outcome_event(&Verdict::new("Ready", false, "SecretNotFound", "create it"));
        assert_eq!(bad.type_, EventType::Warning);
        assert_eq!(bad.reason, "SecretNotFound");
        assert_eq!(bad.note.as_deref(), Some("create it"));
    }

    #[test]
    fn failures_carry_their_category_and_a_bounded_note() {
        let e = failure_event(&Error::InvalidObject("x".repeat(5000)));
        assert_eq!(e.type_, EventType::Warning);
        assert_eq!(e.reason, "InvalidObject");
        let note = e.note.expect("note");
        assert!(note.len() <= MAX_NOTE_BYTES + '…'.len_utf8());
        assert!(note.ends_with('…'));
    }
}
