//! A spec that cannot be registered as it is: the `Ready=False` verdict that says why and how to
//! fix it, from the validators' problems ([`crate::crd::validate`]). Both kinds report spec
//! problems this way; the reconcile then fails with [`Error::InvalidSpec`](super::error::Error)
//! and waits for a change.

use super::conditions::Verdict;
use crate::crd::condition::READY;
use crate::crd::validate::SpecError;

/// `Ready=False` for spec problems: the first problem's reason, every problem's message.
pub fn spec_verdict(errs: &[SpecError]) -> Verdict {
    let reason = errs.first().map_or("InvalidSpec", |e| e.reason);
    Verdict::new(READY, false, reason, join_messages(errs))
}

/// Every problem's message, in order, in one line.
pub fn join_messages(errs: &[SpecError]) -> String {
    errs.iter()
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_verdict_uses_the_first_reason_and_every_message() {
        let v = spec_verdict(&[
            SpecError::new("spec.url", "InvalidURL", "spec.url is not a URL: fix it"),
            SpecError::new("spec.auth", "MissingPolicyRef", "set policyRef"),
        ]);
        assert!(!v.ok);
        assert_eq!(v.type_, READY);
        assert_eq!(v.reason, "InvalidURL");
        assert_eq!(v.message, "spec.url is not a URL: fix it; set policyRef");
    }
}
