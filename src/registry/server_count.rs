//! `mcpoauth_registered_servers`: the number of servers in the registry, read from the live
//! snapshot when `/metrics` is scraped. Whoever writes the registry (the controller, the
//! manifests source, an embedding program) needs no metric of its own, and the value is never
//! behind a write.

use super::Registry;
use crate::metrics::Metrics;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use std::sync::{Arc, Weak};

/// The registry's server count as a gauge. Holds the registry weakly: the metrics registry must
/// not keep it alive (a dropped registry counts 0).
#[derive(Debug)]
struct RegisteredServers(Weak<Registry>);

impl EncodeMetric for RegisteredServers {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let count = self
            .0
            .upgrade()
            .map_or(0, |registry| registry.snapshot().servers.len());
        ConstGauge::new(i64::try_from(count).unwrap_or(i64::MAX)).encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

impl Registry {
    /// Registers the registry's metrics (`registered_servers`) in `metrics`.
    pub fn register_metrics(self: &Arc<Self>, metrics: &Metrics) {
        metrics.register(
            "registered_servers",
            "Remote MCP servers currently registered",
            RegisteredServers(Arc::downgrade(self)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{AuthSettings, ServerKey, ServerRegistration};

    #[test]
    fn the_gauge_follows_the_registry() {
        let registry = Arc::new(Registry::new());
        let metrics = Metrics::new();
        registry.register_metrics(&metrics);
        assert!(metrics.encode().contains("mcpoauth_registered_servers 0\n"));
        registry.upsert_server(ServerRegistration {
            key: ServerKey::new("team-a", "a"),
            url: url::Url::parse("https://mcp.example.com/mcp").expect("url"),
            auth: AuthSettings::None,
            generation: 1,
            forward_headers: Vec::new(),
        });
        let text = metrics.encode();
        assert!(text.contains("mcpoauth_registered_servers 1\n"), "{text}");
        assert!(
            text.contains(
                "# HELP mcpoauth_registered_servers Remote MCP servers currently registered.\n"
            ),
            "{text}"
        );
        drop(registry);
        assert!(metrics.encode().contains("mcpoauth_registered_servers 0\n"));
    }
}
