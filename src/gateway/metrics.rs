//! The gateway's request metrics: how many proxied requests ended how, per server, and how long
//! the gateway took until the response headers (bodies may stream for hours).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

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
        }
    }
}

impl GatewayMetrics {
    /// Count one request that ended with `outcome` after `elapsed`.
    pub fn record(&self, server: &str, outcome: &'static str, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                server: server.to_owned(),
                outcome,
            })
            .inc();
        self.duration
            .get_or_create(&OutcomeLabel { outcome })
            .observe(elapsed.as_secs_f64());
    }

    pub fn register(&self, r: &mut Registry) {
        r.register(
            "gateway_requests",
            "Requests to /mcp/{namespace}/{name}, by server and outcome",
            self.requests.clone(),
        );
        r.register(
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
        let m = GatewayMetrics::default();
        m.record("default/echo", "proxied", Duration::from_micros(300));
        m.record("default/echo", "proxied", Duration::from_micros(300));
        let mut r = Registry::with_prefix("mcpoauth");
        m.register(&mut r);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).expect("encode");
        assert!(
            out.contains(
                "mcpoauth_gateway_requests_total{server=\"default/echo\",outcome=\"proxied\"} 2"
            ),
            "{out}"
        );
        assert!(out.contains("mcpoauth_gateway_response_seconds_count{outcome=\"proxied\"} 2"));
    }
}
