//! Manifests → [`LoadReport`]: parse every file, then resolve and validate across files (a
//! server may reference a policy or Secret defined in another file), exactly as the controller
//! would, and build one registry snapshot.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::parse::{Document, Origin, Parsed, parse_file, problem};
use super::report::{LoadReport, ManifestProblem, ResourceKind, ResourceStatus, Severity, reason};
use super::secrets::ManifestSecrets;
use crate::crd::validate::{SpecError, validate_policy, validate_server};
use crate::crd::{RemoteMCPServer, TokenExchangePolicy};
use crate::registry::{AuthSettings, ServerKey, Snapshot};

/// Manifest files larger than this are refused rather than parsed.
const MAX_FILE_BYTES: u64 = 4 << 20;

/// The files of a folder as read from disk: what a reload compares to decide whether anything
/// changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DirContents {
    /// Files sorted by name; each is its text or why it could not be read.
    Files(Vec<(String, Result<String, String>)>),
    /// The folder itself could not be listed.
    Unreadable(String),
}

/// Reads `*.yaml` / `*.yml` files of `dir` (not recursive, hidden files skipped, symlinks
/// followed so Kubernetes ConfigMap mounts work).
pub(crate) fn read_dir(dir: &Path) -> DirContents {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            return DirContents::Unreadable(format!(
                "cannot read directory {}: {e}",
                dir.display()
            ));
        }
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_manifest = name.ends_with(".yaml") || name.ends_with(".yml");
        if name.starts_with('.') || !is_manifest {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        if meta.len() > MAX_FILE_BYTES {
            let msg = format!("file is larger than {} MiB; split it", MAX_FILE_BYTES >> 20);
            files.push((name, Err(msg)));
            continue;
        }
        let content = std::fs::read(&path)
            .map_err(|e| format!("cannot read file: {e}"))
            .and_then(|b| String::from_utf8(b).map_err(|_| "file is not valid UTF-8".to_owned()));
        files.push((name, content));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    DirContents::Files(files)
}

/// Loads every manifest file of `dir`. Never fails: unreadable folders and files are problems
/// in the report.
pub fn load_dir(dir: &Path) -> LoadReport {
    load_contents(&read_dir(dir))
}

pub(crate) fn load_contents(contents: &DirContents) -> LoadReport {
    match contents {
        DirContents::Unreadable(msg) => LoadReport {
            problems: vec![ManifestProblem {
                file: String::new(),
                document: 0,
                resource: None,
                severity: Severity::Error,
                message: msg.clone(),
            }],
            ..LoadReport::default()
        },
        DirContents::Files(files) => {
            let mut file_problems = Vec::new();
            let readable = files.iter().filter_map(|(name, content)| match content {
                Ok(text) => Some((name.as_str(), text.as_str())),
                Err(msg) => {
                    file_problems.push(ManifestProblem {
                        file: name.clone(),
                        document: 0,
                        resource: None,
                        severity: Severity::Error,
                        message: msg.clone(),
                    });
                    None
                }
            });
            let mut report = load_sources(readable.collect::<Vec<_>>());
            file_problems.append(&mut report.problems);
            report.problems = file_problems;
            sort_problems(&mut report.problems);
            report
        }
    }
}

/// Loads one YAML text (one or more documents) named `name` in problems.
pub fn load_str(name: &str, yaml: &str) -> LoadReport {
    load_sources([(name, yaml)])
}

/// Loads several named YAML texts as one set, in the order given (later duplicates lose).
pub fn load_sources<'a>(sources: impl IntoIterator<Item = (&'a str, &'a str)>) -> LoadReport {
    let mut acc = Accumulator::default();
    for (name, text) in sources {
        let file = parse_file(name, text);
        acc.problems.extend(file.problems);
        for doc in file.documents {
            acc.add(doc);
        }
    }
    acc.finish()
}

#[derive(Default)]
struct Accumulator {
    problems: Vec<ManifestProblem>,
    statuses: Vec<ResourceStatus>,
    /// First origin of every (kind, key), to report later duplicates.
    seen: HashMap<(ResourceKind, ServerKey), Origin>,
    secrets: ManifestSecrets,
    policies: Vec<(Origin, TokenExchangePolicy)>,
    servers: Vec<(Origin, RemoteMCPServer)>,
}

impl Accumulator {
    /// Records the first definition of a resource; a later one is reported and must be ignored.
    fn claim(&mut self, kind: ResourceKind, key: &ServerKey, origin: &Origin) -> bool {
        if let Some(first) = self.seen.get(&(kind, key.clone())) {
            let msg = format!(
                "duplicate {kind} {key}: already defined in {} (document {}); this one is ignored",
                first.file, first.document
            );
            self.problems.push(problem(
                origin,
                Some((kind, key.clone())),
                Severity::Error,
                msg,
            ));
            return false;
        }
        self.seen.insert((kind, key.clone()), origin.clone());
        true
    }

    fn add(&mut self, doc: Document) {
        let Document { origin, parsed } = doc;
        match parsed {
            Parsed::Invalid(kind, key, msg) => {
                if self.claim(kind, &key, &origin) {
                    self.status(kind, key, false, reason::INVALID_MANIFEST, msg);
                }
            }
            Parsed::Secret(key, data) => {
                if self.claim(ResourceKind::Secret, &key, &origin) {
                    self.secrets.insert(key, data);
                }
            }
            Parsed::Policy(obj) => {
                if let Some(key) = object_key(&obj.metadata)
                    && self.claim(ResourceKind::TokenExchangePolicy, &key, &origin)
                {
                    self.policies.push((origin, *obj));
                }
            }
            Parsed::Server(obj) => {
                if let Some(key) = object_key(&obj.metadata)
                    && self.claim(ResourceKind::RemoteMCPServer, &key, &origin)
                {
                    self.servers.push((origin, *obj));
                }
            }
        }
    }

    fn finish(mut self) -> LoadReport {
        let mut snapshot = Snapshot::default();
        for (origin, obj) in std::mem::take(&mut self.policies) {
            let Some(key) = object_key(&obj.metadata) else {
                continue;
            };
            match validate_policy(&obj, &self.secrets) {
                Ok(reg) => {
                    self.registered(ResourceKind::TokenExchangePolicy, key);
                    snapshot.policies.insert(reg.key.clone(), Arc::new(reg));
                }
                Err(errs) => self.invalid(ResourceKind::TokenExchangePolicy, key, &origin, &errs),
            }
        }
        for (origin, obj) in std::mem::take(&mut self.servers) {
            let Some(key) = object_key(&obj.metadata) else {
                continue;
            };
            match validate_server(&obj, &self.secrets) {
                Ok(reg) => {
                    if let AuthSettings::Exchange(ex) = &reg.auth {
                        let policy = ServerKey::new(key.namespace.clone(), ex.policy.clone());
                        if !snapshot.policies.contains_key(&policy) {
                            let msg = format!(
                                "spec.auth.exchange.policyRef.name: TokenExchangePolicy `{}` is missing or invalid in namespace `{}`: define it (same namespace) or fix its problems",
                                ex.policy, key.namespace
                            );
                            let kind = ResourceKind::RemoteMCPServer;
                            self.problems.push(problem(
                                &origin,
                                Some((kind, key.clone())),
                                Severity::Error,
                                msg.clone(),
                            ));
                            self.status(kind, key, false, reason::POLICY_NOT_FOUND, msg);
                            continue;
                        }
                    }
                    self.registered(ResourceKind::RemoteMCPServer, key);
                    snapshot.servers.insert(reg.key.clone(), Arc::new(reg));
                }
                Err(errs) => self.invalid(ResourceKind::RemoteMCPServer, key, &origin, &errs),
            }
        }
        sort_problems(&mut self.problems);
        self.statuses
            .sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
        LoadReport {
            snapshot,
            problems: self.problems,
            statuses: self.statuses,
        }
    }

    fn registered(&mut self, kind: ResourceKind, key: ServerKey) {
        self.status(kind, key, true, reason::REGISTERED, "registered".to_owned());
    }

    fn invalid(&mut self, kind: ResourceKind, key: ServerKey, origin: &Origin, errs: &[SpecError]) {
        for e in errs {
            self.problems.push(problem(
                origin,
                Some((kind, key.clone())),
                Severity::Error,
                e.to_string(),
            ));
        }
        let reason = errs.first().map_or(reason::INVALID_MANIFEST, |e| e.reason);
        let message = errs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        self.status(kind, key, false, reason, message);
    }

    fn status(
        &mut self,
        kind: ResourceKind,
        key: ServerKey,
        ready: bool,
        reason: &'static str,
        message: String,
    ) {
        self.statuses.push(ResourceStatus {
            kind,
            key,
            ready,
            reason,
            message,
        });
    }
}

fn object_key(meta: &kube::core::ObjectMeta) -> Option<ServerKey> {
    let name = meta.name.as_deref().filter(|n| !n.is_empty())?;
    let ns = meta
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(crate::crd::validate::DEFAULT_NAMESPACE);
    Some(ServerKey::new(ns, name))
}

/// File order, then document order; stable, so problems of one document keep their order.
fn sort_problems(problems: &mut [ManifestProblem]) {
    problems.sort_by(|a, b| (&a.file, a.document).cmp(&(&b.file, b.document)));
}
