//! Reading Secret values for validation, confined to the resource's own namespace.

use secrecy::{ExposeSecret, SecretString};

use super::{SpecError, reason};
use crate::crd::common::SecretKeySelector;

/// Where Secret values come from (the controller's Secret store, or the Secrets of the
/// manifests folder in `serve` mode).
///
/// Cross-namespace references cannot be expressed: the resource types have no namespace field
/// in any Secret reference, and the validator is the only caller, always passing the
/// namespace of the resource being validated. Implementations must look up exactly the
/// `namespace` they are given.
pub trait SecretLookup {
    /// The value of `key` in Secret `namespace/name`.
    fn get(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<SecretString, SecretLookupError>;
}

/// Why a Secret value could not be read. Carries no value, only what was missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretLookupError {
    #[error("Secret not found")]
    NotFound,
    #[error("key not present in the Secret")]
    KeyMissing,
    #[error("value is not valid UTF-8")]
    NotUtf8,
}

/// A [`SecretLookup`] bound to one namespace: the only way the validators read Secrets.
pub(crate) struct OwnNamespace<'a> {
    lookup: &'a dyn SecretLookup,
    namespace: &'a str,
}

impl<'a> OwnNamespace<'a> {
    pub(crate) fn new(lookup: &'a dyn SecretLookup, namespace: &'a str) -> Self {
        Self { lookup, namespace }
    }

    pub(crate) fn namespace(&self) -> &str {
        self.namespace
    }

    /// Reads one non-empty value. `field` is the JSON path of the reference (`...secretRef`),
    /// `key_field` the path of the field naming the key, both used in the error.
    pub(crate) fn read(
        &self,
        field: &str,
        key_field: &str,
        sel: SecretKeySelector<'_>,
    ) -> Result<SecretString, SpecError> {
        let ns = self.namespace;
        let (name, key) = (sel.name, sel.key);
        match self.lookup.get(ns, name, key) {
            Ok(v) if v.expose_secret().is_empty() => Err(SpecError::new(
                key_field,
                reason::SECRET_VALUE_EMPTY,
                format!(
                    "key `{key}` of Secret `{name}` in namespace `{ns}` is empty: put the value in it"
                ),
            )),
            Ok(v) => Ok(v),
            Err(SecretLookupError::NotFound) => Err(SpecError::new(
                format!("{field}.name"),
                reason::SECRET_NOT_FOUND,
                format!(
                    "Secret `{name}` not found in namespace `{ns}`: create it there (Secret references are same-namespace only)"
                ),
            )),
            Err(SecretLookupError::KeyMissing) => Err(SpecError::new(
                key_field,
                reason::SECRET_KEY_NOT_FOUND,
                format!(
                    "Secret `{name}` in namespace `{ns}` has no key `{key}`: add it, or point {key_field} at the key that holds the value"
                ),
            )),
            Err(SecretLookupError::NotUtf8) => Err(SpecError::new(
                key_field,
                reason::SECRET_NOT_UTF8,
                format!(
                    "key `{key}` of Secret `{name}` in namespace `{ns}` is not valid UTF-8: store the value as text"
                ),
            )),
        }
    }
}
