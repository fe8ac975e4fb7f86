//! Prometheus metrics (`/metrics`), kept in one typed registry with no global state.
//!
//! [`Metrics`] is the registry only: each component defines its own metrics next to its code and
//! registers them here when it is built ([`Metrics::register`], [`Metrics::register_collector`]),
//! so this module depends on no component.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Metric;
use prometheus_client::registry::Registry;
use std::sync::Mutex;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

/// The registry of every metric the process exports, under the `mcpoauth_` prefix.
#[derive(Debug)]
pub struct Metrics {
    /// Every metric registered so far; locked only to register (at start) and to scrape.
    registry: Mutex<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            registry: Mutex::new(Registry::with_prefix("mcpoauth")),
        }
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
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut registry);
    }

    /// Text exposition format (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;

    #[test]
    fn encodes_counters_with_labels() {
        #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
        struct Labels {
            server: String,
            reason: String,
        }
        let m = Metrics::new();
        let failures: Family<Labels, Counter> = Family::default();
        m.register("failures", "Failures, by reason", failures.clone());
        failures
            .get_or_create(&Labels {
                server: "default/github".into(),
                reason: "iss_mismatch".into(),
            })
            .inc();
        let text = m.encode();
        assert!(text.contains(
            "mcpoauth_failures_total{server=\"default/github\",reason=\"iss_mismatch\"} 1"
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
