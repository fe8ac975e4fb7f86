//! Prometheus metrics (`/metrics`), kept in one typed registry with no global state.
//!
//! [`Metrics`] is the registry only: each component defines its own metrics next to its code and
//! registers them here when it is built ([`Metrics::register`], [`Metrics::register_collector`]),
//! so this module depends on no component.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Metric;
use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabel {
    pub server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub server: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

/// Which connection cap closed a connection on accept (`per_client`, `total`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CapLabel {
    pub cap: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyIdLabel {
    pub key_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

/// A reconcile of one resource kind and how it ended (`ok`, `invalid`, `error`, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub kind: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// Every metric the gateway exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Every metric registered so far; locked only to register and to scrape.
    registry: Mutex<Option<Registry>>,
    pub flows_started: Family<ServerLabel, Counter>,
    pub flows_completed: Family<ServerLabel, Counter>,
    pub flows_failed: Family<FailureLabels, Counter>,
    /// RFC 7009 revocations at sign-out, by result (`ok`, `failed`, `unsupported`, `no_endpoint`).
    pub token_revocations: Family<ResultLabel, Counter>,
    pub rate_limited: Family<RouteLabel, Counter>,
    /// Connections closed on accept because a connection cap was reached.
    pub connections_refused: Family<CapLabel, Counter>,
    pub registered_servers: Gauge,
    pub manifest_problems: Gauge,
    pub rotation_sweeps: Family<ResultLabel, Counter>,
    pub rotation_rewrapped: Gauge,
    pub rotation_unrewrappable: Family<KeyIdLabel, Gauge>,
    pub reconciles: Family<ReconcileLabels, Counter>,
    pub status_writes: Family<KindLabel, Counter>,
    /// Key-ring reloads that replaced the ring in use.
    pub keyring_reloads: Counter,
    /// Key-ring reloads refused (unparsable or missing ring; the last good ring stays in use).
    pub keyring_reload_failures: Counter,
    /// Key ids in the ring in use (0: no ring loaded yet).
    pub keyring_keys: Gauge,
    /// Generation of the ring in use: 1 for the first, +1 per replacement (0: none yet).
    pub keyring_generation: Gauge,
    store_stats: OnceLock<Arc<crate::store::valkey::ValkeyStoreStats>>,
}

impl Metrics {
    pub fn new() -> Self {
        let m = Self::default();
        let r = m.builtin_registry();
        if let Ok(mut slot) = m.registry.lock() {
            *slot = Some(r);
        }
        m
    }

    /// Register a component's metric under `mcpoauth_{name}`.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.with_registry(|r| r.register(name, help, metric));
    }

    /// Register a collector read at scrape time (values kept elsewhere).
    pub fn register_collector(&self, collector: Box<dyn Collector>) {
        self.with_registry(|r| r.register_collector(collector));
    }

    fn with_registry(&self, f: impl FnOnce(&mut Registry)) {
        // A poisoned lock only means a panic elsewhere mid-registration; the registry is still
        // usable.
        let mut slot = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        f(slot.get_or_insert_with(|| Registry::with_prefix("mcpoauth")));
    }

    fn builtin_registry(&self) -> Registry {
        let mut r = Registry::with_prefix("mcpoauth");
        r.register(
            "flows_started",
            "Authorization flows started (auth challenges created)",
            self.flows_started.clone(),
        );
        r.register(
            "flows_completed",
            "Authorization flows completed with a stored token",
            self.flows_completed.clone(),
        );
        r.register(
            "flows_failed",
            "Authorization flows that failed, by reason",
            self.flows_failed.clone(),
        );
        r.register(
            "token_revocations",
            "Token revocations at sign-out (RFC 7009), by result",
            self.token_revocations.clone(),
        );
        r.register(
            "rate_limited",
            "Requests refused by the per-IP rate limit",
            self.rate_limited.clone(),
        );
        r.register(
            "connections_refused",
            "Connections closed on accept because a connection cap was reached, by cap",
            self.connections_refused.clone(),
        );
        r.register(
            "registered_servers",
            "Remote MCP servers currently registered",
            self.registered_servers.clone(),
        );
        r.register(
            "manifest_problems",
            "Problems found in the last load of the manifests folder",
            self.manifest_problems.clone(),
        );
        r.register(
            "key_rotation_sweeps",
            "Key-rotation sweeps, by result",
            self.rotation_sweeps.clone(),
        );
        r.register(
            "key_rotation_last_rewrapped",
            "Values re-encrypted under the primary key by the last sweep",
            self.rotation_rewrapped.clone(),
        );
        r.register(
            "key_rotation_last_unrewrappable",
            "Values the last sweep could not re-encrypt, by the key id they are sealed with",
            self.rotation_unrewrappable.clone(),
        );
        r.register(
            "reconciles",
            "Controller reconciles, by resource kind and result",
            self.reconciles.clone(),
        );
        r.register(
            "status_writes",
            "Status updates written to the API server by this replica, by resource kind",
            self.status_writes.clone(),
        );
        r.register(
            "keyring_reloads",
            "Encryption key-ring reloads that replaced the ring in use",
            self.keyring_reloads.clone(),
        );
        r.register(
            "keyring_reload_failures",
            "Encryption key-ring reloads refused (the last good ring stays in use)",
            self.keyring_reload_failures.clone(),
        );
        r.register(
            "keyring_keys",
            "Key ids in the encryption key ring in use (0: none loaded yet)",
            self.keyring_keys.clone(),
        );
        r.register(
            "keyring_generation",
            "Generation of the encryption key ring in use (1 for the first, +1 per reload)",
            self.keyring_generation.clone(),
        );
        r
    }

    /// Export the Valkey store's counters (decrypt failures, unknown key ids, rewraps).
    pub fn set_store_stats(&self, stats: Arc<crate::store::valkey::ValkeyStoreStats>) {
        if self.store_stats.set(stats.clone()).is_ok() {
            self.register_collector(Box::new(StoreStatsCollector(stats)));
        }
    }

    pub fn record_rotation(&self, report: &crate::store::valkey::RotationReport) {
        let result = if report.failed_by_key_id.is_empty() {
            "complete"
        } else {
            "incomplete"
        };
        self.rotation_sweeps
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
        self.rotation_rewrapped.set(report.rewrapped as i64);
        self.rotation_unrewrappable.clear();
        for (key_id, n) in &report.failed_by_key_id {
            self.rotation_unrewrappable
                .get_or_create(&KeyIdLabel {
                    key_id: key_id.clone(),
                })
                .set(*n as i64);
        }
    }

    /// Text exposition format (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let slot = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = slot.as_ref() {
            // Writing into a String cannot fail.
            let _ = encode(&mut out, r);
        }
        out
    }

    pub fn flow_failed(&self, server: &str, reason: &str) {
        self.flows_failed
            .get_or_create(&FailureLabels {
                server: server.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }
}

/// Reads the Valkey store's counters at scrape time.
#[derive(Debug)]
struct StoreStatsCollector(Arc<crate::store::valkey::ValkeyStoreStats>);

impl prometheus_client::collector::Collector for StoreStatsCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric as _;
        use prometheus_client::metrics::MetricType;
        use prometheus_client::metrics::counter::ConstCounter;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters_with_labels() {
        let m = Metrics::new();
        m.flows_started
            .get_or_create(&ServerLabel {
                server: "default/github".into(),
            })
            .inc();
        m.flow_failed("default/github", "iss_mismatch");
        let text = m.encode();
        assert!(text.contains("mcpoauth_flows_started_total{server=\"default/github\"} 1"));
        assert!(text.contains(
            "mcpoauth_flows_failed_total{server=\"default/github\",reason=\"iss_mismatch\"} 1"
        ));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn a_component_registers_its_own_metric() {
        let m = Metrics::new();
        let hits: Counter = Counter::default();
        m.register("component_hits", "Hits of a component", hits.clone());
        hits.inc();
        assert!(m.encode().contains("mcpoauth_component_hits_total 1"));
    }
}
