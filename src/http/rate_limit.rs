//! Per-client-IP rate limiting of the browser endpoints (GCRA via `governor`), so a flood of
//! callbacks cannot grind the token endpoint or the stores.

use super::AppState;
use super::pages::Page;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

/// Requests per minute and burst, per client IP.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub per_minute: u32,
    pub burst: u32,
}

pub struct IpRateLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl IpRateLimiter {
    pub fn new(rate: RateLimit) -> Self {
        let per_minute = NonZeroU32::new(rate.per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(rate.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(
                Quota::per_minute(per_minute).allow_burst(burst),
            ),
        }
    }

    pub fn check(&self, ip: IpAddr) -> bool {
        self.limiter.check_key(&ip).is_ok()
    }

    /// Forget idle clients; call periodically so the key space stays bounded.
    pub fn retain_recent(&self) {
        self.limiter.retain_recent();
    }
}

pub(super) async fn limit(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    // Without connection info (in-process tests) everything shares one bucket.
    let ip = ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if app.limiter.check(ip) {
        return next.run(req).await;
    }
    let route = req.uri().path().to_owned();
    app.manager
        .metrics()
        .rate_limited
        .get_or_create(&crate::metrics::RouteLabel { route })
        .inc();
    let mut resp = Page {
        status: StatusCode::TOO_MANY_REQUESTS,
        title: "Too many requests",
        message: "Too many sign-in requests came from your address. Wait a minute and try again.",
        detail: None,
        link: None,
    }
    .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_ip_after_the_burst() {
        let l = IpRateLimiter::new(RateLimit {
            per_minute: 1,
            burst: 3,
        });
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        assert!((0..3).all(|_| l.check(a)));
        assert!(
            !l.check(a),
            "fourth request within the burst window must be refused"
        );
        assert!(l.check(b), "another address has its own budget");
    }
}
