//! The registrations of `serve`: YAML manifests in a folder (followed for changes), or the
//! examples built into the binary when no folder is given.

use crate::http::Readiness;
use crate::manifests::ManifestMetrics;
use crate::registry::Registry;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Registers the built-in examples once.
pub(super) fn embedded_examples(registry: &Registry) {
    let report = crate::manifests::embedded_examples();
    for p in &report.problems {
        tracing::warn!(problem = %p, "built-in example manifest problem");
    }
    registry.replace(report.snapshot.clone());
    tracing::info!(
        servers = report.snapshot.servers.len(),
        "no --manifests given; serving the built-in examples"
    );
}

/// Loads `dir` into the registry and follows it until `cancel`; `/readyz` waits for the first
/// load.
pub(super) fn follow_manifests(
    dir: PathBuf,
    registry: &Arc<Registry>,
    readiness: &Arc<Readiness>,
    metrics: ManifestMetrics,
    cancel: &CancellationToken,
) {
    readiness.block("manifests", format!("{} not loaded yet", dir.display()));
    let (_task, mut reports) =
        crate::manifests::ManifestsSource::spawn(dir, registry.clone(), cancel.clone());
    let readiness = readiness.clone();
    let cancel = cancel.clone();
    tokio::spawn(async move {
        loop {
            {
                let report = reports.borrow_and_update().clone();
                metrics.record(&report);
                readiness.unblock("manifests");
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                changed = reports.changed() => if changed.is_err() { break },
            }
        }
    });
}
