//! The key-rotation sweep: re-encrypt every value in Valkey under the primary key, with
//! progress in the logs and the outcome in metrics. Run by `rotate-keys` and, while a key ring
//! holds more than one key, once in the background at start-up.

use crate::crypto::KeyRing;
use crate::metrics::Metrics;
use crate::store::ValkeySettings;
use crate::store::valkey::{Codec, RotationReport, ValkeyStores};
use std::time::Duration;

/// The `rotate-keys` command: connect, wait for Valkey, sweep once.
pub async fn run_command(args: &ValkeySettings) -> Result<RotationReport, String> {
    let ring = crate::app::stores::load_key_ring(args)
        .map_err(|e| e.to_string())?
        .ok_or("rotate-keys needs --encryption-key-file (the key ring with the new primary key)")?;
    let cfg = crate::app::stores::valkey_config(args).map_err(|e| e.to_string())?;
    let stores = ValkeyStores::from_config(&cfg, Codec::Encrypted(ring.clone()))
        .await
        .map_err(|e| e.to_string())?;
    let mut attempts = 0;
    while let Err(e) = stores.ping().await {
        attempts += 1;
        if attempts >= 10 {
            return Err(format!("Valkey is not reachable: {e}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let metrics = Metrics::new();
    let report = sweep(&stores, &ring, &metrics)
        .await
        .ok_or("the sweep failed; see the log")?;
    stores.client().quit().await;
    Ok(report)
}

/// Sweep once; returns the report (or `None` when the sweep itself failed).
pub async fn sweep(
    stores: &ValkeyStores,
    ring: &KeyRing,
    metrics: &Metrics,
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
            metrics.record_rotation(&report);
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
            metrics
                .rotation_sweeps
                .get_or_create(&crate::metrics::ResultLabel {
                    result: "error".to_owned(),
                })
                .inc();
            tracing::error!(error = %e, "key-rotation sweep failed");
            None
        }
    }
}
