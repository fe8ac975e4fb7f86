//! `mcpoauth_manifest_problems`: how many problems the last load of the manifests folder found,
//! so an alert can fire on a bad edit that the log alone would hide.

use super::report::LoadReport;
use crate::metrics::Metrics;
use prometheus_client::metrics::gauge::Gauge;

/// The manifests source's metrics, registered when the server is built.
#[derive(Debug, Clone, Default)]
pub struct ManifestMetrics {
    problems: Gauge,
}

impl ManifestMetrics {
    /// Creates the metrics and registers them in `metrics`.
    pub fn register(metrics: &Metrics) -> Self {
        let m = Self::default();
        metrics.register(
            "manifest_problems",
            "Problems found in the last load of the manifests folder",
            m.problems.clone(),
        );
        m
    }

    /// Records the outcome of a load.
    pub fn record(&self, report: &LoadReport) {
        self.problems
            .set(i64::try_from(report.problems.len()).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gauge_counts_the_last_loads_problems() {
        let metrics = Metrics::new();
        let m = ManifestMetrics::register(&metrics);
        assert!(metrics.encode().contains("mcpoauth_manifest_problems 0\n"));
        m.record(&crate::manifests::load_str("x.yaml", "kind: [unclosed"));
        let text = metrics.encode();
        assert!(text.contains("mcpoauth_manifest_problems 1\n"), "{text}");
    }
}
