//! The gateway's request metrics: how many proxied requests ended how, per server, and how long
//! the gateway took until the response headers (bodies may stream for hours).
//!
//! The `server` label only ever names a registered server: anyone can request
//! `/mcp/<anything>/<anything>`, and a series per made-up path would grow the page (and the
//! monitoring system's storage) without bound. Such requests share [`UNKNOWN_SERVER`]; series of
//! servers that are no longer registered are removed by [`GatewayMetrics::forget_servers`].

use crate::metrics::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use std::sync::Arc;
use std::time::Duration;

/// The `server` label of requests for a path that names no registered server.
pub const UNKNOWN_SERVER: &str = "unknown";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub server: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

type HistogramFamily = Family<OutcomeLabel, Histogram, fn() -> Histogram>;

/// Request counters and the time-to-headers histogram.
#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub duration: HistogramFamily,
    /// The label sets of `requests` created so far, to remove those of unregistered servers.
    seen: Arc<dashmap::DashSet<RequestLabels>>,
}

/// 100 µs to ~52 s.
fn histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(histogram),
            seen: Arc::default(),
        }
    }
}

impl GatewayMetrics {
    /// New metrics, registered in `metrics`.
    pub fn new(metrics: &Metrics) -> Self {
        let m = Self::default();
        m.register(metrics);
        m
    }

    /// Count one request that ended with `outcome` after `elapsed`.
    /// `server` must be a registered server's name or [`UNKNOWN_SERVER`].
    pub fn record(&self, server: &str, outcome: &'static str, elapsed: Duration) {
        let labels = RequestLabels {
            server: server.to_owned(),
            outcome,
        };
        self.requests.get_or_create(&labels).inc();
        if !self.seen.contains(&labels) {
            self.seen.insert(labels);
        }
        self.duration
            .get_or_create(&OutcomeLabel { outcome })
            .observe(elapsed.as_secs_f64());
    }

    /// Remove the request series of servers for which `registered` is false (they were
    /// deleted): their counts would otherwise stay on the page forever.
    pub fn forget_servers(&self, registered: impl Fn(&str) -> bool) {
        self.seen.retain(|labels| {
            let keep = labels.server == UNKNOWN_SERVER || registered(&labels.server);
            if !keep {
                self.requests.remove(labels);
            }
            keep
        });
    }

    fn register(&self, metrics: &Metrics) {
        metrics.register(
            "gateway_requests",
            "Requests to /mcp/{namespace}/{name}, by server and outcome",
            self.requests.clone(),
        );
        metrics.register(
            "gateway_response_seconds",
            "Time until the response headers of a gateway request, by outcome",
            self.duration.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_requests_and_durations_by_outcome() {
        let registry = Metrics::new();
        let m = GatewayMetrics::new(&registry);
        m.record("default/echo", "proxied", Duration::from_micros(300));
        m.record("default/echo", "proxied", Duration::from_micros(300));
        let out = registry.encode();
        assert!(
            out.contains(
                "mcpoauth_gateway_requests_total{server=\"default/echo\",outcome=\"proxied\"} 2"
            ),
            "{out}"
        );
        assert!(out.contains("mcpoauth_gateway_response_seconds_count{outcome=\"proxied\"} 2"));
    }

    #[test]
    fn series_of_servers_no_longer_registered_are_removed() {
        let registry = Metrics::new();
        let m = GatewayMetrics::new(&registry);
        m.record("default/echo", "proxied", Duration::from_micros(300));
        m.record("default/gone", "proxied", Duration::from_micros(300));
        m.record(UNKNOWN_SERVER, "unknown_server", Duration::from_micros(300));
        m.forget_servers(|s| s == "default/echo");
        let out = registry.encode();
        assert!(out.contains("server=\"default/echo\""), "{out}");
        assert!(out.contains("server=\"unknown\""), "{out}");
        assert!(!out.contains("default/gone"), "{out}");
    }
}
