//! Pure validation: a `RemoteMCPServer` / `TokenExchangePolicy` becomes a registry
//! registration, or a list of [`SpecError`]s saying what is wrong and how to fix it.
//!
//! No I/O: Secrets are read through [`SecretLookup`], which the controller backs with its
//! reflector store and `serve` mode with the Secrets found in the manifests folder. The same
//! rules as the CRD's CEL rules are enforced here, because old API servers and `serve` mode do
//! not run CEL.

mod checks;
mod policy;
mod secrets;
mod server;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests_policy;
#[cfg(test)]
mod tests_server;

pub use policy::{derive_expected_issuer, validate_policy};
pub use secrets::{SecretLookup, SecretLookupError};
pub use server::validate_server;

use std::fmt;

/// Namespace assumed when `metadata.namespace` is absent (manifests written without one).
pub const DEFAULT_NAMESPACE: &str = "default";

/// One problem with a resource's spec. `reason` is a CamelCase condition reason; `message`
/// says what is wrong *and* how to fix it, and never contains a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// JSON path of the offending field, e.g. `spec.auth.oauth.resource`.
    pub field: String,
    /// Condition reason, one of [`reason`]'s constants.
    pub reason: &'static str,
    pub message: String,
}

impl SpecError {
    pub fn new(field: impl Into<String>, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason,
            message: message.into(),
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for SpecError {}

/// Condition reasons used in [`SpecError::reason`].
pub mod reason {
    pub const MISSING_NAME: &str = "MissingName";
    pub const INVALID_URL: &str = "InvalidURL";
    pub const RESOURCE_ON_ANOTHER_ORIGIN: &str = "ResourceOnAnotherOrigin";
    pub const INSECURE_URL: &str = "InsecureURL";
    pub const CONFLICTING_AUTH_SETTINGS: &str = "ConflictingAuthSettings";
    pub const MISSING_POLICY_REF: &str = "MissingPolicyRef";
    pub const MISSING_AUDIENCES: &str = "MissingAudiences";
    pub const INVALID_AUDIENCE: &str = "InvalidAudience";
    pub const INVALID_SCOPE: &str = "InvalidScope";
    pub const INVALID_NAME: &str = "InvalidName";
    pub const MISSING_CLIENT_ID: &str = "MissingClientId";
    pub const INVALID_CLIENT_AUTH: &str = "InvalidClientAuth";
    pub const INVALID_SECRET_REF: &str = "InvalidSecretRef";
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    pub const SECRET_KEY_NOT_FOUND: &str = "SecretKeyNotFound";
    pub const SECRET_NOT_UTF8: &str = "SecretNotUTF8";
    pub const SECRET_VALUE_EMPTY: &str = "SecretValueEmpty";
    pub const INVALID_CONNECTOR_ID: &str = "InvalidConnectorId";
    pub const INVALID_TOKEN_TYPE: &str = "InvalidTokenType";
    pub const CANNOT_DERIVE_ISSUER: &str = "CannotDeriveIssuer";
    pub const INVALID_FORWARD_HEADER: &str = "InvalidForwardHeader";
}

/// Accumulates every problem of one resource, so the user sees them all at once.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<SpecError>);

impl Problems {
    pub(crate) fn push(&mut self, err: SpecError) {
        self.0.push(err);
    }

    /// Keeps the value, or records the error and yields `None`.
    pub(crate) fn take<T>(&mut self, res: Result<T, SpecError>) -> Option<T> {
        match res {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }

    pub(crate) fn into_result<T>(self, value: Option<T>) -> Result<T, Vec<SpecError>> {
        match value {
            Some(v) if self.0.is_empty() => Ok(v),
            _ => Err(self.0),
        }
    }
}

/// `namespace/name` of a resource; the namespace defaults to [`DEFAULT_NAMESPACE`].
pub(crate) fn resource_key(
    meta: &kube::core::ObjectMeta,
    problems: &mut Problems,
) -> Option<crate::registry::ServerKey> {
    let namespace = meta
        .namespace
        .as_deref()
        .filter(|ns| !ns.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE);
    match meta.name.as_deref() {
        Some(name) if !name.is_empty() => Some(crate::registry::ServerKey::new(namespace, name)),
        _ => {
            problems.push(SpecError::new(
                "metadata.name",
                reason::MISSING_NAME,
                "metadata.name is missing: give the resource a name",
            ));
            None
        }
    }
}
