//! What the controllers are told at start: the API server client, which namespaces to watch,
//! who this replica is, and how it learns whether it leads.

use kube::Client;
use std::time::Duration;
use tokio::sync::watch;

/// The Kubernetes API server as the source of registrations (`run`).
#[derive(Clone)]
pub struct KubeSource {
    pub client: Client,
    pub config: ControllerConfig,
}

impl std::fmt::Debug for KubeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSource")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Namespaces to watch; empty means all namespaces.
    pub namespaces: Vec<String>,
    /// This replica's name: the Lease holder identity and the Events' reporting instance.
    pub identity: String,
    pub leadership: Leadership,
}

/// How a replica learns whether it may write status.
#[derive(Debug, Clone)]
pub enum Leadership {
    /// Compete for a `coordination.k8s.io/v1` Lease.
    Lease {
        namespace: String,
        name: String,
        duration: Duration,
    },
    /// Told from outside (tests, or an embedding program with its own election).
    Fixed(watch::Receiver<bool>),
}

/// What one set of watches covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Namespace(String),
}

impl Scope {
    /// Whether `namespace` is inside this scope.
    pub fn contains(&self, namespace: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Namespace(ns) => ns == namespace,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::All => f.write_str("all namespaces"),
            Scope::Namespace(ns) => write!(f, "namespace {ns}"),
        }
    }
}

/// One scope per listed namespace (trimmed, without blanks or repeats), or [`Scope::All`] when
/// none is listed. References never cross namespaces, so each namespace's watches stand alone.
pub fn scopes(namespaces: &[String]) -> Vec<Scope> {
    let mut out: Vec<Scope> = Vec::new();
    for ns in namespaces
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
    {
        let scope = Scope::Namespace(ns.to_owned());
        if !out.contains(&scope) {
            out.push(scope);
        }
    }
    if out.is_empty() {
        out.push(Scope::All);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_namespaces_means_all_and_lists_are_cleaned() {
        assert_eq!(scopes(&[]), vec![Scope::All]);
        assert_eq!(scopes(&[" ".into(), String::new()]), vec![Scope::All]);
        assert_eq!(
            scopes(&["a".into(), " b ".into(), "a".into()]),
            vec![Scope::Namespace("a".into()), Scope::Namespace("b".into())]
        );
    }

    #[test]
    fn scope_membership() {
        assert!(Scope::All.contains("x"));
        assert!(Scope::Namespace("a".into()).contains("a"));
        assert!(!Scope::Namespace("a".into()).contains("b"));
    }
}
