//! `v1` Secrets found in the manifests folder: the [`SecretLookup`] source in `serve` mode.
//!
//! Parsed by hand from the YAML value rather than through `k8s_openapi::Secret`, so that no
//! error message can ever quote a secret value.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde_json::Value;

use crate::crd::validate::{SecretLookup, SecretLookupError};
use crate::registry::ServerKey;

/// The data of one Secret (values redacted in `Debug`).
#[derive(Debug, Default)]
pub(crate) struct SecretData(BTreeMap<String, SecretSlice<u8>>);

/// Secrets keyed by `namespace/name`.
#[derive(Debug, Default)]
pub(crate) struct ManifestSecrets(HashMap<ServerKey, SecretData>);

impl ManifestSecrets {
    pub(crate) fn insert(&mut self, key: ServerKey, data: SecretData) {
        self.0.insert(key, data);
    }
}

impl SecretLookup for ManifestSecrets {
    fn get(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<SecretString, SecretLookupError> {
        let secret = self
            .0
            .get(&ServerKey::new(namespace, name))
            .ok_or(SecretLookupError::NotFound)?;
        let value = secret.0.get(key).ok_or(SecretLookupError::KeyMissing)?;
        let text =
            std::str::from_utf8(value.expose_secret()).map_err(|_| SecretLookupError::NotUtf8)?;
        Ok(SecretString::from(text.to_owned()))
    }
}

/// Reads `data` (base64) and `stringData` (plain, wins over `data` as in Kubernetes).
/// Error messages name keys, never values.
pub(crate) fn parse_secret_data(doc: &Value) -> Result<SecretData, String> {
    let mut out = BTreeMap::new();
    if let Some(data) = map_field(doc, "data")? {
        for (k, v) in data {
            let Some(s) = v.as_str() else {
                return Err(format!("data.{k} must be a base64 string"));
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map_err(|_| {
                    format!(
                        "data.{k} is not valid base64: encode the value, or put it under stringData"
                    )
                })?;
            out.insert(k.clone(), SecretSlice::from(bytes));
        }
    }
    if let Some(data) = map_field(doc, "stringData")? {
        for (k, v) in data {
            let Some(s) = v.as_str() else {
                return Err(format!("stringData.{k} must be a string: quote the value"));
            };
            out.insert(k.clone(), SecretSlice::from(s.as_bytes().to_vec()));
        }
    }
    Ok(SecretData(out))
}

fn map_field<'a>(
    doc: &'a Value,
    field: &str,
) -> Result<Option<&'a serde_json::Map<String, Value>>, String> {
    match doc.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(format!("{field} must be a mapping of key: value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lookup(doc: Value) -> ManifestSecrets {
        let mut secrets = ManifestSecrets::default();
        secrets.insert(
            ServerKey::new("ns", "s"),
            parse_secret_data(&doc).expect("valid"),
        );
        secrets
    }

    #[test]
    fn data_is_base64_and_string_data_wins() {
        let s =
            lookup(json!({"data": {"a": "aGVsbG8=", "b": "eA=="}, "stringData": {"b": "plain"}}));
        assert_eq!(s.get("ns", "s", "a").expect("a").expose_secret(), "hello");
        assert_eq!(s.get("ns", "s", "b").expect("b").expose_secret(), "plain");
    }

    #[test]
    fn lookup_errors() {
        let s = lookup(json!({"data": {"bin": "//4="}}));
        assert_eq!(
            s.get("other", "s", "bin").expect_err("must fail"),
            SecretLookupError::NotFound
        );
        assert_eq!(
            s.get("ns", "s", "nope").expect_err("must fail"),
            SecretLookupError::KeyMissing
        );
        assert_eq!(
            s.get("ns", "s", "bin").expect_err("must fail"),
            SecretLookupError::NotUtf8
        );
    }

    #[test]
    fn bad_values_are_named_but_not_quoted() {
        let err = parse_secret_data(&json!({"data": {"k": "not base64 hunter2!"}}))
            .expect_err("must fail");
        assert!(err.contains("data.k") && !err.contains("hunter2"), "{err}");
        let err = parse_secret_data(&json!({"stringData": {"k": 12345}})).expect_err("must fail");
        assert!(
            err.contains("stringData.k") && !err.contains("12345"),
            "{err}"
        );
        assert!(parse_secret_data(&json!({"data": "x"})).is_err());
    }

    #[test]
    fn debug_does_not_show_values() {
        let s = lookup(json!({"stringData": {"k": "hunter2"}}));
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
