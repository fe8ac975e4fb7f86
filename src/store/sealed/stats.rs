//! Counters of stored values that could not be opened or were re-sealed, exported as the
//! `mcpoauth_store_*` metrics (a value whose key is gone must be *reported*, not crash or vanish
//! silently).

use crate::metrics::Metrics;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Distinct key ids tracked in [`SealStats::unknown_key_ids`]; more are counted under
/// [`OTHER_KEY_IDS`]. Key ids come from stored data, so this bounds metric label cardinality.
pub const MAX_TRACKED_KEY_IDS: usize = 32;
/// Label for unknown key ids beyond [`MAX_TRACKED_KEY_IDS`].
pub const OTHER_KEY_IDS: &str = "_other";

/// Shared by the stores of one [`super::Sealer`]; cheap to update (only failures take a lock).
#[derive(Debug, Default)]
pub struct SealStats {
    decrypt_failures: Mutex<BTreeMap<&'static str, u64>>,
    unknown_key_ids: Mutex<BTreeMap<String, u64>>,
    corrupt: AtomicU64,
    rewrapped: AtomicU64,
    rewrap_failures: AtomicU64,
}

/// A point-in-time copy of [`SealStats`]; all counters are totals since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealStatsSnapshot {
    /// Values that failed to decrypt, by [`crate::crypto::DecryptError::reason`].
    pub decrypt_failures: BTreeMap<&'static str, u64>,
    /// Values sealed with a key id that is not in the key ring, by key id.
    pub unknown_key_ids: BTreeMap<String, u64>,
    /// Values that decrypted (or were plaintext) but are not a valid record.
    pub corrupt: u64,
    /// Values re-encrypted under the primary key (on read or by the rotation sweep).
    pub rewrapped: u64,
    /// Re-encryptions on read whose write-back failed (the sweep will retry them).
    pub rewrap_failures: u64,
}

impl SealStats {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn snapshot(&self) -> SealStatsSnapshot {
        SealStatsSnapshot {
            decrypt_failures: lock(&self.decrypt_failures).clone(),
            unknown_key_ids: lock(&self.unknown_key_ids).clone(),
            corrupt: self.corrupt.load(Ordering::Relaxed),
            rewrapped: self.rewrapped.load(Ordering::Relaxed),
            rewrap_failures: self.rewrap_failures.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn decrypt_failed(&self, reason: &'static str, unknown_key_id: Option<&str>) {
        *lock(&self.decrypt_failures).entry(reason).or_default() += 1;
        if let Some(id) = unknown_key_id {
            let mut ids = lock(&self.unknown_key_ids);
            let label = if ids.contains_key(id) || ids.len() < MAX_TRACKED_KEY_IDS {
                id
            } else {
                OTHER_KEY_IDS
            };
            *ids.entry(label.to_owned()).or_default() += 1;
        }
    }

    pub(crate) fn corrupt_value(&self) {
        self.corrupt.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_rewrapped(&self, n: u64) {
        self.rewrapped.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn rewrap_failed(&self) {
        self.rewrap_failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// Export `stats` through `metrics`, read at scrape time.
pub(super) fn register(stats: &Arc<SealStats>, metrics: &Metrics) {
    metrics.register_collector(Box::new(StatsCollector(Arc::clone(stats))));
}

/// Reads the counters at scrape time.
#[derive(Debug)]
struct StatsCollector(Arc<SealStats>);

impl Collector for StatsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = self.0.snapshot();

        let mut family = encoder.encode_descriptor(
            "store_decrypt_failures",
            "Stored values that failed to decrypt, by reason",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in &snap.decrypt_failures {
            let labels = [("reason", *reason)];
            ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "store_unknown_key_ids",
            "Stored values sealed with a key id missing from the key ring, by key id",
            None,
            MetricType::Counter,
        )?;
        for (key_id, n) in &snap.unknown_key_ids {
            let labels = [("key_id", key_id.as_str())];
            ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
        }
        for (name, help, value) in [
            (
                "store_corrupt_values",
                "Stored values that are not valid records",
                snap.corrupt,
            ),
            (
                "store_rewrapped",
                "Values re-encrypted under the primary key",
                snap.rewrapped,
            ),
            (
                "store_rewrap_failures",
                "Re-encryptions whose write-back failed",
                snap.rewrap_failures,
            ),
        ] {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(metric)?;
        }
        Ok(())
    }
}

/// A poisoned counter map is still a valid map: keep counting.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_reason_and_key_id() {
        let stats = SealStats::new();
        stats.decrypt_failed("authentication", None);
        stats.decrypt_failed("unknown_key_id", Some("k1"));
        stats.decrypt_failed("unknown_key_id", Some("k1"));
        stats.corrupt_value();
        stats.add_rewrapped(3);
        let s = stats.snapshot();
        assert_eq!(s.decrypt_failures.get("authentication"), Some(&1));
        assert_eq!(s.decrypt_failures.get("unknown_key_id"), Some(&2));
        assert_eq!(s.unknown_key_ids.get("k1"), Some(&2));
        assert_eq!((s.corrupt, s.rewrapped, s.rewrap_failures), (1, 3, 0));
    }

    #[test]
    fn counters_are_exported_at_scrape_time() {
        let stats = Arc::new(SealStats::new());
        let metrics = Metrics::new();
        register(&stats, &metrics);
        stats.decrypt_failed("unknown_key_id", Some("k1"));
        stats.add_rewrapped(2);
        let text = metrics.encode();
        for line in [
            "mcpoauth_store_decrypt_failures_total{reason=\"unknown_key_id\"} 1",
            "mcpoauth_store_unknown_key_ids_total{key_id=\"k1\"} 1",
            "mcpoauth_store_corrupt_values_total 0",
            "mcpoauth_store_rewrapped_total 2",
            "mcpoauth_store_rewrap_failures_total 0",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }

    #[test]
    fn key_id_labels_are_bounded() {
        let stats = SealStats::new();
        for i in 0..MAX_TRACKED_KEY_IDS + 10 {
            stats.decrypt_failed("unknown_key_id", Some(&format!("k{i}")));
        }
        stats.decrypt_failed("unknown_key_id", Some("k0"));
        let s = stats.snapshot();
        assert_eq!(s.unknown_key_ids.len(), MAX_TRACKED_KEY_IDS + 1);
        assert_eq!(s.unknown_key_ids.get(OTHER_KEY_IDS), Some(&10));
        assert_eq!(s.unknown_key_ids.get("k0"), Some(&2));
    }
}
