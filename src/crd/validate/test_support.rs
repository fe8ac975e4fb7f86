//! Fixtures for the validator tests.

use std::collections::HashMap;

use secrecy::SecretString;

use super::{SecretLookup, SecretLookupError, SpecError};

/// Secrets keyed by (namespace, name), values as raw bytes.
#[derive(Default)]
pub(super) struct Secrets(HashMap<(String, String), HashMap<String, Vec<u8>>>);

impl Secrets {
    pub(super) fn with(mut self, ns: &str, name: &str, key: &str, value: &[u8]) -> Self {
        self.0
            .entry((ns.to_owned(), name.to_owned()))
            .or_default()
            .insert(key.to_owned(), value.to_vec());
        self
    }
}

impl SecretLookup for Secrets {
    fn get(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<SecretString, SecretLookupError> {
        let secret = self
            .0
            .get(&(namespace.to_owned(), name.to_owned()))
            .ok_or(SecretLookupError::NotFound)?;
        let value = secret.get(key).ok_or(SecretLookupError::KeyMissing)?;
        let text = std::str::from_utf8(value).map_err(|_| SecretLookupError::NotUtf8)?;
        Ok(SecretString::from(text.to_owned()))
    }
}

/// The (field, reason) pairs of a failed validation, for compact assertions.
pub(super) fn fields_and_reasons(errs: &[SpecError]) -> Vec<(&str, &'static str)> {
    errs.iter().map(|e| (e.field.as_str(), e.reason)).collect()
}
