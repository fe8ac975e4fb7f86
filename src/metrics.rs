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
use prometheus_client::registry::Metric;
use prometheus_client::registry::Registry;
use std::sync::Mutex;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

/// Every metric the gateway exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Every metric registered so far; locked only to register and to scrape.
    registry: Mutex<Option<Registry>>,
    pub token_refreshes: Family<ResultLabel, Counter>,
    /// Requests through the gateway (`/mcp/{namespace}/{name}`).
    pub gateway: crate::gateway::GatewayMetrics,
    /// RFC 8693 token exchanges (cache hits, misses, errors) and token-endpoint latency.
    pub exchange: crate::exchange::ExchangeMetrics,
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
            "token_refreshes",
            "Access-token refreshes, by result",
            self.token_refreshes.clone(),
        );
        self.gateway.register(&mut r);
        self.exchange.register(&mut r);
        r
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
