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
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::load::{DirContents, load_contents, read_dir};
use super::report::{LoadReport, ManifestProblem, Severity};
use crate::registry::{Registry, Snapshot};

/// Quiet time after the last filesystem event before reloading.
const DEBOUNCE: Duration = Duration::from_millis(250);
/// Longest a stream of events can delay a reload.
const MAX_DEBOUNCE: Duration = Duration::from_secs(2);
/// Poll interval when no watcher is available.
const FALLBACK_POLL: Duration = Duration::from_secs(2);
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
        let watcher = start_watcher(&dir, &events_tx, true);
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
                self.watcher = start_watcher(&self.dir, &self.events_tx, false);
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

/// Waits until no event arrived for [`DEBOUNCE`] (at most [`MAX_DEBOUNCE`], so a file that is
/// written continuously still gets loaded); `false` when cancelled meanwhile.
async fn debounce(events: &mut mpsc::Receiver<()>, cancel: &CancellationToken) -> bool {
    let deadline = tokio::time::Instant::now() + MAX_DEBOUNCE;
    loop {
        let quiet_until = (tokio::time::Instant::now() + DEBOUNCE).min(deadline);
        tokio::select! {
            () = cancel.cancelled() => return false,
            () = tokio::time::sleep_until(quiet_until) => return true,
            Some(()) = events.recv() => {}
        }
    }
}

/// Watches `dir` (non-recursively). `None` when the platform watcher cannot be set up; the
/// caller then polls. Only the first failure is logged at WARN, so polling stays quiet.
fn start_watcher(dir: &Path, events: &mpsc::Sender<()>, first: bool) -> Option<RecommendedWatcher> {
    let tx = events.clone();
    let handler = move |res: notify::Result<notify::Event>| {
        let relevant = match res {
            Ok(event) => is_change(&event.kind),
            // A watcher error may mean missed events: re-read to be safe.
            Err(_) => true,
        };
        if relevant {
            // Full means a reload is already pending; dropping this one coalesces.
            let _ = tx.try_send(());
        }
    };
    let result = notify::recommended_watcher(handler)
        .and_then(|mut w| w.watch(dir, RecursiveMode::NonRecursive).map(|()| w));
    match result {
        Ok(w) => {
            tracing::debug!(dir = %dir.display(), "watching manifests folder");
            Some(w)
        }
        Err(e) if first => {
            tracing::warn!(dir = %dir.display(), error = %e, poll_secs = FALLBACK_POLL.as_secs(), "cannot watch manifests folder; polling it instead");
            None
        }
        Err(e) => {
            tracing::debug!(dir = %dir.display(), error = %e, "cannot watch manifests folder yet");
            None
        }
    }
}

/// Events that can change what a reload reads. Opens and reads (our own reloads cause them)
/// and metadata-only changes are not.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => false,
        _ => true,
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

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessMode, CreateKind, DataChange, MetadataKind, ModifyKind, RenameMode};

    #[test]
    fn our_own_reads_do_not_count_as_changes() {
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!is_change(&EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::Any
        ))));
    }

    #[test]
    fn writes_creates_and_renames_count() {
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Data(
            DataChange::Any
        ))));
        assert!(is_change(&EventKind::Modify(ModifyKind::Name(
            RenameMode::To
        ))));
        assert!(is_change(&EventKind::Remove(
            notify::event::RemoveKind::File
        )));
    }
}
