//! `serve --manifests DIR`: load the folder into the registry, then follow changes to it.
//!
//! Changes are seen through a filesystem watcher (`notify`), debounced so an editor's
//! write-to-temp-then-rename or a Kubernetes ConfigMap `..data` symlink swap causes one reload.
//! Every event in the folder triggers a re-read (a ConfigMap swap only touches hidden entries),
//! and a reload whose files are byte-identical to the last one is skipped. When no watcher can
//! be created, or the folder disappears, the folder is polled instead; while it is gone the last
//! registrations stay in place. Bad input never stops the source: it shows up as problems in the
//! report and in the log.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::RecommendedWatcher;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::load::{DirContents, load_contents, read_dir};
use super::report::{LoadReport, ManifestProblem, Severity};
use crate::keys::watch::{FALLBACK_POLL, debounce, watch_folder};
use crate::registry::{Registry, Snapshot};

/// How the watched folder is named in logs.
const MANIFESTS: &str = "manifests folder";
/// Re-read interval while a watcher runs, as a safety net for missed events.
const SAFETY_POLL: Duration = Duration::from_secs(30);

/// The manifests folder as a registration source.
pub struct ManifestsSource;

impl ManifestsSource {
    /// Loads `dir` once (synchronously, so the registry is filled when this returns), then
    /// spawns a task that reloads on change until `cancel` fires. The receiver always holds the
    /// latest report. Must be called within a Tokio runtime.
    pub fn spawn(
        dir: impl Into<PathBuf>,
        registry: Arc<Registry>,
        cancel: CancellationToken,
    ) -> (JoinHandle<()>, watch::Receiver<Arc<LoadReport>>) {
        let dir = dir.into();
        // Watch before the first read, so a change made right after this returns is not missed.
        let (events_tx, events) = mpsc::channel::<()>(1);
        let watcher = watch_folder(&dir, &events_tx, true, MANIFESTS);
        let contents = read_dir(&dir);
        let report = Arc::new(load_contents(&contents));
        publish(&registry, None, &report);
        let (tx, rx) = watch::channel(report);
        let task = Follow {
            dir,
            registry,
            tx,
            contents,
            events_tx,
            events,
            watcher,
        };
        (tokio::spawn(task.run(cancel)), rx)
    }
}

/// State of the follow task.
struct Follow {
    dir: PathBuf,
    registry: Arc<Registry>,
    tx: watch::Sender<Arc<LoadReport>>,
    /// What the current report was built from.
    contents: DirContents,
    /// Filesystem events, coalesced (capacity 1).
    events_tx: mpsc::Sender<()>,
    events: mpsc::Receiver<()>,
    /// `None` while polling.
    watcher: Option<RecommendedWatcher>,
}

impl Follow {
    async fn run(mut self, cancel: CancellationToken) {
        loop {
            let poll = if self.watcher.is_some() {
                SAFETY_POLL
            } else {
                FALLBACK_POLL
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                Some(()) = self.events.recv() => {
                    if !debounce(&mut self.events, &cancel).await {
                        return;
                    }
                }
                () = tokio::time::sleep(poll) => {}
            }

            // A watch dies with its folder: poll until the folder is back, then watch again
            // (before reading, so nothing changed in between is missed).
            if self.watcher.is_none() {
                self.watcher = watch_folder(&self.dir, &self.events_tx, false, MANIFESTS);
            }
            let dir = self.dir.clone();
            let contents = match tokio::task::spawn_blocking(move || read_dir(&dir)).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the manifests folder failed; retrying on the next change");
                    continue;
                }
            };
            if matches!(contents, DirContents::Unreadable(_)) {
                self.watcher = None;
            }
            if contents == self.contents {
                continue;
            }
            let previous = self.tx.borrow().clone();
            let report = Arc::new(match &contents {
                // Keep serving the last registrations while the folder is gone (e.g. being
                // replaced); the report says why nothing new is loaded.
                DirContents::Unreadable(_) => LoadReport {
                    problems: load_contents(&contents).problems,
                    ..LoadReport::clone(&previous)
                },
                DirContents::Files(_) => load_contents(&contents),
            });
            publish(&self.registry, Some(&previous), &report);
            self.contents = contents;
            self.tx.send_replace(report);
        }
    }
}

/// Swaps the registry to the report's snapshot and logs problems (WARN) and changes (INFO).
fn publish(registry: &Registry, previous: Option<&LoadReport>, report: &LoadReport) {
    for p in &report.problems {
        log_problem(p);
    }
    registry.replace(report.snapshot.clone());
    let before = previous
        .map(|r| fingerprints(&r.snapshot))
        .unwrap_or_default();
    let after = fingerprints(&report.snapshot);
    for (key, print) in &after {
        match before.get(key) {
            None => tracing::info!(resource = %key, "registered"),
            Some(old) if old != print => tracing::info!(resource = %key, "updated"),
            Some(_) => {}
        }
    }
    for key in before.keys().filter(|k| !after.contains_key(*k)) {
        tracing::info!(resource = %key, "removed");
    }
    let errors = report.errors().count();
    tracing::info!(
        servers = report.snapshot.servers.len(),
        policies = report.snapshot.policies.len(),
        problems = report.problems.len(),
        errors,
        "manifests loaded"
    );
}

fn log_problem(p: &ManifestProblem) {
    let resource = p
        .resource
        .as_ref()
        .map(|(kind, key)| format!("{kind} {key}"))
        .unwrap_or_default();
    match p.severity {
        Severity::Error => {
            tracing::warn!(file = %p.file, document = p.document, resource = %resource, "manifest problem: {}", p.message);
        }
        Severity::Warning => {
            tracing::warn!(file = %p.file, document = p.document, resource = %resource, "manifest warning: {}", p.message);
        }
    }
}

/// `kind namespace/name` → a printable digest of the registration, to tell updates apart.
/// Secret values are redacted in `Debug`, so a rotated secret alone is not logged as an update
/// (the registry is swapped regardless).
fn fingerprints(snapshot: &Snapshot) -> BTreeMap<String, String> {
    let servers = snapshot
        .servers
        .iter()
        .map(|(k, v)| (format!("RemoteMCPServer {k}"), format!("{v:?}")));
    let policies = snapshot
        .policies
        .iter()
        .map(|(k, v)| (format!("TokenExchangePolicy {k}"), format!("{v:?}")));
    servers.chain(policies).collect()
}
