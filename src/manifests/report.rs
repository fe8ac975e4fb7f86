//! What one load of a manifests folder produced: the registry snapshot, the problems found and
//! a status per resource (what a controller would write to `.status`).

use std::fmt;

use crate::registry::{ServerKey, Snapshot};

/// The resource kinds that get a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    TokenExchangePolicy,
    RemoteMCPServer,
    Secret,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::TokenExchangePolicy => "TokenExchangePolicy",
            ResourceKind::RemoteMCPServer => "RemoteMCPServer",
            ResourceKind::Secret => "Secret",
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad a problem is: errors drop the document or resource, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Warning,
    Error,
}

/// One problem, located as precisely as known. The message never contains a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestProblem {
    /// File name inside the folder (or the name given to [`super::load_str`]).
    pub file: String,
    /// 1-based index of the YAML document in the file; 0 for problems with the file itself.
    pub document: usize,
    /// Kind and `namespace/name` of the resource, when they could be read.
    pub resource: Option<(ResourceKind, ServerKey)>,
    pub severity: Severity,
    pub message: String,
}

impl fmt::Display for ManifestProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if self.document > 0 {
            write!(f, " (document {})", self.document)?;
        }
        if let Some((kind, key)) = &self.resource {
            write!(f, " {kind} {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The equivalent of a `Ready` condition for one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceStatus {
    pub kind: ResourceKind,
    pub key: ServerKey,
    pub ready: bool,
    /// CamelCase reason, e.g. `Registered`, `InvalidURL`, `SecretNotFound`.
    pub reason: &'static str,
    pub message: String,
}

/// Result of loading a set of manifests.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub snapshot: Snapshot,
    /// In file order, then document order.
    pub problems: Vec<ManifestProblem>,
    /// Sorted by kind, then key.
    pub statuses: Vec<ResourceStatus>,
}

impl LoadReport {
    /// Problems of severity [`Severity::Error`].
    pub fn errors(&self) -> impl Iterator<Item = &ManifestProblem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
    }

    pub fn status(&self, kind: ResourceKind, key: &ServerKey) -> Option<&ResourceStatus> {
        self.statuses
            .iter()
            .find(|s| s.kind == kind && &s.key == key)
    }
}

/// Status reasons the manifests source adds to those of [`crate::crd::validate::reason`].
pub mod reason {
    /// Valid and in the registry.
    pub const REGISTERED: &str = "Registered";
    /// The document could not be read as this kind.
    pub const INVALID_MANIFEST: &str = "InvalidManifest";
    /// An exchange-mode server names a policy that is missing or invalid.
    pub const POLICY_NOT_FOUND: &str = "PolicyNotFound";
}
