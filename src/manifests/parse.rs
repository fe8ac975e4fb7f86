//! One file's text → typed documents (servers, policies, Secrets) plus problems.
//! A broken document is reported and skipped; the rest of the file still loads.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::report::{ManifestProblem, ResourceKind, Severity};
use super::secrets::{SecretData, parse_secret_data};
use crate::crd::validate::DEFAULT_NAMESPACE;
use crate::crd::{API_VERSION, GROUP, RemoteMCPServer, TokenExchangePolicy};
use crate::registry::ServerKey;

/// Where a document came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub file: String,
    pub document: usize,
}

#[derive(Debug)]
pub(crate) enum Parsed {
    Server(Box<RemoteMCPServer>),
    Policy(Box<TokenExchangePolicy>),
    Secret(ServerKey, SecretData),
    /// One of our kinds whose manifest could not be read as that kind (it gets a not-ready
    /// status, and still claims its name against later duplicates).
    Invalid(ResourceKind, ServerKey, String),
}

/// A typed document with its origin.
#[derive(Debug)]
pub(crate) struct Document {
    pub origin: Origin,
    pub parsed: Parsed,
}

/// The output of parsing one file.
#[derive(Debug, Default)]
pub(crate) struct FileDocs {
    pub documents: Vec<Document>,
    pub problems: Vec<ManifestProblem>,
}

/// Events aliases may replay in one file; real manifests use few aliases, if any.
const MAX_ALIAS_REPLAYED_EVENTS: usize = 10_000;

pub(crate) fn parse_file(file: &str, text: &str) -> FileDocs {
    let mut out = FileDocs::default();
    // Aliases may replay at most this many events per file: a "billion laughs" manifest of a
    // few hundred bytes otherwise expands into the library's default of a million nodes.
    let mut alias_limits = serde_saphyr::options::AliasLimits::default();
    alias_limits.max_total_replayed_events = MAX_ALIAS_REPLAYED_EVENTS;
    let options = serde_saphyr::options! { with_snippet: false, alias_limits: alias_limits };
    let mut reader = std::io::Cursor::new(text.as_bytes());
    let docs = serde_saphyr::read_with_options::<_, Value>(&mut reader, options);
    for (i, doc) in docs.enumerate() {
        let origin = Origin {
            file: file.to_owned(),
            document: i + 1,
        };
        match doc {
            Ok(value) => parse_document(origin, value, &mut out),
            Err(e) => out.problems.push(problem(
                &origin,
                None,
                Severity::Error,
                format!("not valid YAML: {e}; the rest of this file is skipped"),
            )),
        }
    }
    out
}

fn parse_document(origin: Origin, value: Value, out: &mut FileDocs) {
    if !value.is_object() {
        out.problems.push(problem(
            &origin,
            None,
            Severity::Error,
            "document is not a mapping: expected a Kubernetes object with apiVersion, kind and metadata"
                .to_owned(),
        ));
        return;
    }
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    let key = key_of(&value);
    let ours = api_version.split('/').next() == Some(GROUP);

    let kind_enum = match kind {
        "RemoteMCPServer" if ours => ResourceKind::RemoteMCPServer,
        "TokenExchangePolicy" if ours => ResourceKind::TokenExchangePolicy,
        "Secret" if api_version == "v1" => ResourceKind::Secret,
        _ if api_version.is_empty() || kind.is_empty() => {
            out.problems.push(problem(
                &origin,
                None,
                Severity::Error,
                "document has no apiVersion or kind: add e.g. apiVersion: mcpoauth.dev/v1alpha1 and kind: RemoteMCPServer".to_owned(),
            ));
            return;
        }
        _ => {
            out.problems.push(problem(
                &origin,
                None,
                Severity::Warning,
                format!(
                    "kind `{kind}` (apiVersion `{api_version}`) is not used by serve --manifests; ignored"
                ),
            ));
            return;
        }
    };
    let Some(key) = key else {
        out.problems.push(problem(
            &origin,
            None,
            Severity::Error,
            format!("{kind} has no metadata.name: give it a name"),
        ));
        return;
    };
    if kind_enum != ResourceKind::Secret && api_version != API_VERSION {
        let msg = format!("unsupported apiVersion `{api_version}`: use {API_VERSION}");
        out.problems.push(problem(
            &origin,
            Some((kind_enum, key.clone())),
            Severity::Error,
            msg.clone(),
        ));
        out.documents.push(Document {
            origin,
            parsed: Parsed::Invalid(kind_enum, key, msg),
        });
        return;
    }

    let parsed = match kind_enum {
        ResourceKind::RemoteMCPServer => Some(
            typed::<RemoteMCPServer>(&value, &origin, &key, kind_enum, out).map_or_else(
                |msg| Parsed::Invalid(kind_enum, key.clone(), msg),
                |o| Parsed::Server(Box::new(o)),
            ),
        ),
        ResourceKind::TokenExchangePolicy => Some(
            typed::<TokenExchangePolicy>(&value, &origin, &key, kind_enum, out).map_or_else(
                |msg| Parsed::Invalid(kind_enum, key.clone(), msg),
                |o| Parsed::Policy(Box::new(o)),
            ),
        ),
        ResourceKind::Secret => match parse_secret_data(&value) {
            Ok(data) => Some(Parsed::Secret(key.clone(), data)),
            Err(msg) => {
                out.problems.push(problem(
                    &origin,
                    Some((kind_enum, key)),
                    Severity::Error,
                    msg,
                ));
                None
            }
        },
    };
    if let Some(parsed) = parsed {
        out.documents.push(Document { origin, parsed });
    }
}

/// Parses one of our kinds, warning about fields the type does not know (typos would
/// otherwise be silently ignored, as the API server prunes them). The error is the message
/// already reported.
fn typed<T: DeserializeOwned + serde::Serialize>(
    value: &Value,
    origin: &Origin,
    key: &ServerKey,
    kind: ResourceKind,
    out: &mut FileDocs,
) -> Result<T, String> {
    match serde_json::from_value::<T>(value.clone()) {
        Ok(obj) => {
            if let (Some(input), Ok(typed)) = (value.get("spec"), serde_json::to_value(&obj))
                && let Some(typed_spec) = typed.get("spec")
            {
                let mut unknown = Vec::new();
                unknown_fields(input, typed_spec, "spec", &mut unknown);
                for field in unknown {
                    out.problems.push(problem(
                        origin,
                        Some((kind, key.clone())),
                        Severity::Warning,
                        format!("unknown field {field} is ignored: check its spelling and place"),
                    ));
                }
            }
            Ok(obj)
        }
        Err(e) => {
            let msg = format!("not a valid {kind}: {e}");
            out.problems.push(problem(
                origin,
                Some((kind, key.clone())),
                Severity::Error,
                msg.clone(),
            ));
            Err(msg)
        }
    }
}

/// Paths present in `input` but not in its typed round trip.
fn unknown_fields(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(i), Value::Object(t)) => {
            for (k, v) in i {
                let p = format!("{path}.{k}");
                match t.get(k) {
                    None if !v.is_null() => out.push(p),
                    None => {}
                    Some(tv) => unknown_fields(v, tv, &p, out),
                }
            }
        }
        (Value::Array(i), Value::Array(t)) => {
            for (n, (iv, tv)) in i.iter().zip(t).enumerate() {
                unknown_fields(iv, tv, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

fn key_of(value: &Value) -> Option<ServerKey> {
    let meta = value.get("metadata")?;
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())?;
    let ns = meta
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE);
    Some(ServerKey::new(ns, name))
}

pub(crate) fn problem(
    origin: &Origin,
    resource: Option<(ResourceKind, ServerKey)>,
    severity: Severity,
    message: String,
) -> ManifestProblem {
    ManifestProblem {
        file: origin.file.clone(),
        document: origin.document,
        resource,
        severity,
        message,
    }
}

#[cfg(test)]
mod proptests;
