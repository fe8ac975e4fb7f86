//! Prometheus metrics (`/metrics`), kept in one typed registry with no global state.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

/// Every metric the gateway exports.
#[derive(Debug, Default)]
pub struct Metrics {
    pub flows_started: Family<ServerLabel, Counter>,
    pub flows_completed: Family<ServerLabel, Counter>,
    pub flows_failed: Family<FailureLabels, Counter>,
    pub token_refreshes: Family<ResultLabel, Counter>,
    pub rate_limited: Family<RouteLabel, Counter>,
    pub registered_servers: Gauge,
    pub manifest_problems: Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    fn registry(&self) -> Registry {
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
            "token_refreshes",
            "Access-token refreshes, by result",
            self.token_refreshes.clone(),
        );
        r.register(
            "rate_limited",
            "Requests refused by the per-IP rate limit",
            self.rate_limited.clone(),
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
        r
    }

    /// Text exposition format (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry());
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
}
