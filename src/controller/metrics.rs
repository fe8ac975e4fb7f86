//! The controllers' own metrics: reconciles by kind and result, and status writes by kind
//! (which show that a status write does not wake the controller again, and which replica
//! leads). Registered in the process's [`Metrics`] by the controllers when they start.

use crate::metrics::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// A reconcile of one resource kind and how it ended (`ok`, `invalid`, `error`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub kind: String,
    pub result: String,
}

/// A resource kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// What the controllers count (cheap to clone: every clone counts into the same metrics).
#[derive(Clone, Debug)]
pub struct ControllerMetrics {
    reconciles: Family<ReconcileLabels, Counter>,
    status_writes: Family<KindLabel, Counter>,
}

impl ControllerMetrics {
    /// Registers the controllers' metrics in `metrics` (once per process).
    pub fn register(metrics: &Metrics) -> Self {
        let m = Self {
            reconciles: Family::default(),
            status_writes: Family::default(),
        };
        metrics.register(
            "reconciles",
            "Controller reconciles, by resource kind and result",
            m.reconciles.clone(),
        );
        metrics.register(
            "status_writes",
            "Status updates written to the API server by this replica, by resource kind",
            m.status_writes.clone(),
        );
        m
    }

    /// Counts one reconcile of `kind` that ended with `result`.
    pub fn reconciled(&self, kind: &str, result: &str) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind: kind.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts one status write on a resource of `kind`.
    pub fn status_written(&self, kind: &str) {
        self.status_writes
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_controllers_metrics_are_exported_under_their_names() {
        let metrics = Metrics::new();
        let m = ControllerMetrics::register(&metrics);
        m.reconciled("RemoteMCPServer", "ok");
        m.reconciled("RemoteMCPServer", "ok");
        m.status_written("TokenExchangePolicy");
        let text = metrics.encode();
        assert!(
            text.contains("mcpoauth_reconciles_total{kind=\"RemoteMCPServer\",result=\"ok\"} 2")
        );
        assert!(text.contains("mcpoauth_status_writes_total{kind=\"TokenExchangePolicy\"} 1"));
        assert!(text.contains(
            "# HELP mcpoauth_reconciles Controller reconciles, by resource kind and result"
        ));
    }
}
