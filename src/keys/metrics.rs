//! The key ring's metrics (reloads, failures, keys and generation in use) and the rotation
//! sweep's (sweeps by result, values re-sealed, values left under other keys), kept by the
//! components that update them and registered by them in the shared registry.

use crate::metrics::{Metrics, ResultLabel};
use crate::store::sealed::RotationReport;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// Label of values a sweep could not re-seal: the key id they are sealed with.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyIdLabel {
    pub key_id: String,
}

/// Updated by the [`super::KeyRingReloader`]. Cheap to clone (shared handles). A value built
/// with `default()` counts without being exported (tests).
#[derive(Debug, Clone, Default)]
pub struct KeyRingMetrics {
    /// Key-ring reloads that replaced the ring in use.
    pub reloads: Counter,
    /// Key-ring reloads refused (unparsable or missing ring; the last good ring stays in use).
    pub reload_failures: Counter,
    /// Key ids in the ring in use (0: no ring loaded yet).
    pub keys: Gauge,
    /// Generation of the ring in use: 1 for the first, +1 per replacement (0: none yet).
    pub generation: Gauge,
}

impl KeyRingMetrics {
    /// New handles, exported through `metrics`.
    pub fn register(metrics: &Metrics) -> Self {
        let m = Self::default();
        metrics.register(
            "keyring_reloads",
            "Encryption key-ring reloads that replaced the ring in use",
            m.reloads.clone(),
        );
        metrics.register(
            "keyring_reload_failures",
            "Encryption key-ring reloads refused (the last good ring stays in use)",
            m.reload_failures.clone(),
        );
        metrics.register(
            "keyring_keys",
            "Key ids in the encryption key ring in use (0: none loaded yet)",
            m.keys.clone(),
        );
        metrics.register(
            "keyring_generation",
            "Generation of the encryption key ring in use (1 for the first, +1 per reload)",
            m.generation.clone(),
        );
        m
    }
}

/// Updated by the rotation sweep ([`super::rotation::sweep`]).
#[derive(Debug, Clone, Default)]
pub struct RotationMetrics {
    pub sweeps: Family<ResultLabel, Counter>,
    pub rewrapped: Gauge,
    pub unrewrappable: Family<KeyIdLabel, Gauge>,
}

impl RotationMetrics {
    /// New handles, exported through `metrics`.
    pub fn register(metrics: &Metrics) -> Self {
        let m = Self::default();
        metrics.register(
            "key_rotation_sweeps",
            "Key-rotation sweeps, by result",
            m.sweeps.clone(),
        );
        metrics.register(
            "key_rotation_last_rewrapped",
            "Values re-encrypted under the primary key by the last sweep",
            m.rewrapped.clone(),
        );
        metrics.register(
            "key_rotation_last_unrewrappable",
            "Values the last sweep could not re-encrypt, by the key id they are sealed with",
            m.unrewrappable.clone(),
        );
        m
    }

    /// A finished sweep: `complete` when every value is under the primary key, else
    /// `incomplete` with the values left by key id.
    pub fn record(&self, report: &RotationReport) {
        let result = if report.failed_by_key_id.is_empty() {
            "complete"
        } else {
            "incomplete"
        };
        self.count(result);
        self.rewrapped
            .set(i64::try_from(report.rewrapped).unwrap_or(i64::MAX));
        self.unrewrappable.clear();
        for (key_id, n) in &report.failed_by_key_id {
            self.unrewrappable
                .get_or_create(&KeyIdLabel {
                    key_id: key_id.clone(),
                })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
    }

    /// A sweep that failed as a whole (the store could not be walked).
    pub fn record_error(&self) {
        self.count("error");
    }

    fn count(&self, result: &str) {
        self.sweeps
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn names_and_values_are_exported() {
        let registry = Metrics::new();
        let keys = KeyRingMetrics::register(&registry);
        let rotation = RotationMetrics::register(&registry);
        keys.generation.set(2);
        keys.reloads.inc();
        rotation.record(&RotationReport {
            rewrapped: 3,
            failed_by_key_id: BTreeMap::from([("k0".to_owned(), 1)]),
            ..RotationReport::default()
        });
        rotation.record_error();
        let text = registry.encode();
        for line in [
            "mcpoauth_keyring_generation 2",
            "mcpoauth_keyring_reloads_total 1",
            "mcpoauth_keyring_keys 0",
            "mcpoauth_keyring_reload_failures_total 0",
            "mcpoauth_key_rotation_sweeps_total{result=\"incomplete\"} 1",
            "mcpoauth_key_rotation_sweeps_total{result=\"error\"} 1",
            "mcpoauth_key_rotation_last_rewrapped 3",
            "mcpoauth_key_rotation_last_unrewrappable{key_id=\"k0\"} 1",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
