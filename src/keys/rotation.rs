//! The key-rotation sweep's scheduling and reporting: re-seal every stored value under the
//! primary key, with progress in the logs and the outcome in metrics. Run by `rotate-keys`
//! ([`run_once`]) and, while a key ring holds more than one key, in the background at start-up
//! and after each reload ([`spawn_sweeps`]).
//!
//! The walk itself is the backend's (Valkey: [`ValkeyStores::rotate_all`]); re-sealing one value
//! is the sealed layer's ([`crate::store::sealed::reseal`]).

use super::metrics::RotationMetrics;
use super::reload::KeyRingReloader;
use crate::crypto::KeyRing;
use crate::store::StoreError;
use crate::store::sealed::{RotationReport, Sealing};
use crate::store::valkey::{ValkeyConfig, ValkeyConfigError, ValkeyStores};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Delay before a background sweep, so the server comes up (or settles after a reload) first.
const SWEEP_DELAY: Duration = Duration::from_secs(5);
/// Pings of Valkey before `rotate-keys` gives up, [`PING_INTERVAL`] apart.
const PING_ATTEMPTS: u32 = 10;
const PING_INTERVAL: Duration = Duration::from_millis(500);

/// Why a one-off sweep (`rotate-keys`) did not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Connect(#[from] ValkeyConfigError),
    #[error("Valkey is not reachable: {0}")]
    Unreachable(#[source] StoreError),
    #[error("the sweep failed; see the log")]
    SweepFailed,
}

/// Connect to Valkey with `config`, wait for it, sweep once under `ring`.
pub async fn run_once(config: &ValkeyConfig, ring: KeyRing) -> Result<RotationReport, RotateError> {
    let stores = ValkeyStores::from_config(config, Sealing::Encrypted(ring.clone())).await?;
    let mut attempts = 0;
    while let Err(e) = stores.ping().await {
        attempts += 1;
        if attempts >= PING_ATTEMPTS {
            return Err(RotateError::Unreachable(e));
        }
        tokio::time::sleep(PING_INTERVAL).await;
    }
    let report = sweep(&stores, &ring, &RotationMetrics::default())
        .await
        .ok_or(RotateError::SweepFailed)?;
    stores.client().quit().await;
    Ok(report)
}

/// Sweep once; returns the report (or `None` when the sweep itself failed).
pub async fn sweep(
    stores: &ValkeyStores,
    ring: &KeyRing,
    metrics: &RotationMetrics,
) -> Option<RotationReport> {
    tracing::info!(primary = ring.primary_id(), keys = ?ring.key_ids(), "key-rotation sweep started");
    let result = stores
        .rotate_all(ring, |p| {
            tracing::info!(
                phase = ?p.phase,
                scanned = p.scanned,
                rewrapped = p.rewrapped,
                already_current = p.already_current,
                failed = p.failed,
                "key-rotation sweep progress"
            );
        })
        .await;
    match result {
        Ok(report) => {
            metrics.record(&report);
            for (key_id, count) in &report.failed_by_key_id {
                tracing::warn!(key_id = %key_id, values = count, "values could not be re-encrypted (their key is missing or they are damaged)");
            }
            tracing::info!(
                scanned = report.scanned,
                rewrapped = report.rewrapped,
                already_current = report.already_current,
                failed = report.failed_by_key_id.values().sum::<u64>(),
                "key-rotation sweep finished"
            );
            Some(report)
        }
        Err(e) => {
            metrics.record_error();
            tracing::error!(error = %e, "key-rotation sweep failed");
            None
        }
    }
}

/// Runs a rotation sweep (re-encrypt everything under the primary key) whenever the ring in use
/// holds more than one key: at start-up and after each reload. `stores` yields the Valkey stores
/// once they exist.
pub fn spawn_sweeps(
    reloader: &Arc<KeyRingReloader>,
    stores: impl Fn() -> Option<ValkeyStores> + Send + 'static,
    metrics: RotationMetrics,
    cancel: CancellationToken,
) {
    let mut rings = reloader.subscribe();
    tokio::spawn(async move {
        let mut latest = rings.borrow_and_update().clone();
        loop {
            if let Some(handle) = latest.take()
                && handle.with(|r| r.key_ids().len() > 1)
            {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(SWEEP_DELAY) => {}
                }
                // A reload during the delay is swept next round with its own ring.
                if let Some(stores) = stores() {
                    sweep(&stores, &handle.current(), &metrics).await;
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                changed = rings.changed() => if changed.is_err() { return },
            }
            latest = rings.borrow_and_update().clone();
        }
    });
}
