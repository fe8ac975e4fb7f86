//! Prometheus metrics of token exchange: requests by policy and result (`hit`: served from the
//! cache, `miss`: the token endpoint issued a token, `error`: the exchange failed), and the
//! token endpoint's latency.

use crate::metrics::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExchangeLabels {
    pub policy: String,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabel {
    pub result: &'static str,
}

type HistogramFamily = Family<LatencyLabel, Histogram, fn() -> Histogram>;

#[derive(Debug, Clone)]
pub struct ExchangeMetrics {
    pub exchanges: Family<ExchangeLabels, Counter>,
    pub latency: HistogramFamily,
}

/// 1 ms to ~65 s.
fn histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Default for ExchangeMetrics {
    fn default() -> Self {
        Self {
            exchanges: Family::default(),
            latency: Family::new_with_constructor(histogram),
        }
    }
}

impl ExchangeMetrics {
    pub fn count(&self, policy: &str, result: &'static str) {
        self.exchanges
            .get_or_create(&ExchangeLabels {
                policy: policy.to_owned(),
                result,
            })
            .inc();
    }

    /// One call of a token endpoint that ended `ok` or `error` after `elapsed`.
    pub fn observe(&self, result: &'static str, elapsed: Duration) {
        self.latency
            .get_or_create(&LatencyLabel { result })
            .observe(elapsed.as_secs_f64());
    }

    /// Register in `metrics` (names and help texts as they always were).
    pub fn register(&self, metrics: &Metrics) {
        metrics.register(
            "token_exchanges",
            "RFC 8693 token exchanges, by policy and result (hit, miss, error)",
            self.exchanges.clone(),
        );
        metrics.register(
            "token_exchange_seconds",
            "Latency of token-exchange calls to the token endpoint, by result (ok, error)",
            self.latency.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_latency_are_exported() {
        let m = ExchangeMetrics::default();
        let registry = Metrics::new();
        m.register(&registry);
        m.count("team-a/b", "hit");
        m.count("team-a/b", "hit");
        m.observe("ok", Duration::from_millis(3));
        let out = registry.encode();
        assert!(
            out.contains("mcpoauth_token_exchanges_total{policy=\"team-a/b\",result=\"hit\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("mcpoauth_token_exchange_seconds_count{result=\"ok\"} 1"),
            "{out}"
        );
    }
}
