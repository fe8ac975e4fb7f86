//! Counters of stored values that could not be read or were re-encrypted, for the metrics
//! exporter (a value whose key is gone must be *reported*, not crash or vanish silently).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinct key ids tracked in [`ValkeyStoreStats::unknown_key_ids`]; more are counted under
/// [`OTHER_KEY_IDS`]. Key ids come from stored data, so this bounds metric label cardinality.
pub const MAX_TRACKED_KEY_IDS: usize = 32;
/// Label for unknown key ids beyond [`MAX_TRACKED_KEY_IDS`].
pub const OTHER_KEY_IDS: &str = "_other";

/// Shared by every store built on one client; cheap to update (only failures take a lock).
#[derive(Debug, Default)]
pub struct ValkeyStoreStats {
    decrypt_failures: Mutex<BTreeMap<&'static str, u64>>,
    unknown_key_ids: Mutex<BTreeMap<String, u64>>,
    corrupt: AtomicU64,
    rewrapped: AtomicU64,
    rewrap_failures: AtomicU64,
}

/// A point-in-time copy of [`ValkeyStoreStats`]; all counters are totals since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValkeyStatsSnapshot {
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

impl ValkeyStoreStats {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn snapshot(&self) -> ValkeyStatsSnapshot {
        ValkeyStatsSnapshot {
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

/// A poisoned counter map is still a valid map: keep counting.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_reason_and_key_id() {
        let stats = ValkeyStoreStats::new();
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
    fn key_id_labels_are_bounded() {
        let stats = ValkeyStoreStats::new();
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
