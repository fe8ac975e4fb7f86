//! The browser flow's metrics: flows started, completed and failed (by reason), and token
//! revocations at sign-out. Registered by [`super::Flows::new`] in the shared registry.

use crate::metrics::{Metrics, ResultLabel};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabel {
    pub server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub server: String,
    pub reason: String,
}

/// The flow's counters; cloning shares them.
#[derive(Debug, Default, Clone)]
pub struct FlowMetrics {
    pub flows_started: Family<ServerLabel, Counter>,
    pub flows_completed: Family<ServerLabel, Counter>,
    pub flows_failed: Family<FailureLabels, Counter>,
    /// RFC 7009 revocations at sign-out, by result (`ok`, `failed`, `unsupported`, `no_endpoint`).
    pub token_revocations: Family<ResultLabel, Counter>,
}

impl FlowMetrics {
    /// Register every counter in `metrics` under its `mcpoauth_` name.
    pub fn register(&self, metrics: &Metrics) {
        metrics.register(
            "flows_started",
            "Authorization flows started (auth challenges created)",
            self.flows_started.clone(),
        );
        metrics.register(
            "flows_completed",
            "Authorization flows completed with a stored token",
            self.flows_completed.clone(),
        );
        metrics.register(
            "flows_failed",
            "Authorization flows that failed, by reason",
            self.flows_failed.clone(),
        );
        metrics.register(
            "token_revocations",
            "Token revocations at sign-out (RFC 7009), by result",
            self.token_revocations.clone(),
        );
    }

    pub fn flow_started(&self, server: &str) {
        self.flows_started
            .get_or_create(&ServerLabel {
                server: server.to_owned(),
            })
            .inc();
    }

    pub fn flow_completed(&self, server: &str) {
        self.flows_completed
            .get_or_create(&ServerLabel {
                server: server.to_owned(),
            })
            .inc();
    }

    pub fn flow_failed(&self, server: &str, reason: &str) {
        self.flows_failed
            .get_or_create(&FailureLabels {
                server: server.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn revocation(&self, result: &str) {
        self.token_revocations
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_counters_are_exported_under_their_names() {
        let metrics = Metrics::new();
        let m = FlowMetrics::default();
        m.register(&metrics);
        m.flow_started("default/github");
        m.flow_completed("default/github");
        m.flow_failed("default/github", "iss_mismatch");
        m.revocation("ok");
        let text = metrics.encode();
        assert!(text.contains("mcpoauth_flows_started_total{server=\"default/github\"} 1"));
        assert!(text.contains(
            "mcpoauth_flows_failed_total{server=\"default/github\",reason=\"iss_mismatch\"} 1"
        ));
        assert!(text.contains("mcpoauth_token_revocations_total{result=\"ok\"} 1"));
        assert!(text.contains(
            "# HELP mcpoauth_flows_completed Authorization flows completed with a stored token"
        ));
    }
}
