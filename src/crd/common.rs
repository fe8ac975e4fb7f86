//! Small pieces shared by both resource types.

/// One entry of a Secret in the resource's own namespace (the namespace is never part of a
/// reference: see [`crate::crd::validate::SecretLookup`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SecretKeySelector<'a> {
    pub name: &'a str,
    pub key: &'a str,
}

/// serde default for booleans that are on unless switched off.
pub(crate) fn default_true() -> bool {
    true
}
