//! Per-client-IP rate limiting of the browser endpoints (GCRA via `governor`), so a flood of
//! callbacks cannot grind the token endpoint or the stores.
//!
//! Behind an Ingress every request comes from the Ingress controller's address, so all clients
//! would share one bucket. With `--trusted-proxies`, a request whose peer is a trusted proxy is
//! counted against the client address that proxy appended to `X-Forwarded-For`. Only the
//! rightmost untrusted entry is believed: everything left of it was written by the client (or
//! by proxies the operator did not name) and can be forged to dodge the limit.

use super::AppState;
use crate::flows::routes::page::Page;
use crate::metrics::Metrics;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

/// The route a refused request was for (its path).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

/// Requests per minute and burst, per client IP.
#[derive(Debug, Clone)]
pub struct RateLimit {
    pub per_minute: u32,
    pub burst: u32,
    /// Proxies whose `X-Forwarded-For` names the client (empty: the peer is the client).
    pub trusted_proxies: Vec<Cidr>,
}

/// An address range (`10.0.0.0/8`, `fd00::/8`) or a single address (`10.1.2.3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a `--trusted-proxies` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} is not an IP address or address/prefix")]
    Address(String),
    #[error("prefix /{prefix} is longer than the address ({max} bits) in {text:?}")]
    Prefix { text: String, prefix: u32, max: u32 },
}

impl Cidr {
    /// Parses `addr` or `addr/prefix`.
    pub fn parse(text: &str) -> Result<Self, CidrError> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::Address(text.to_owned()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u32>()
                .map_err(|_| CidrError::Address(text.to_owned()))?,
        };
        if prefix > max {
            return Err(CidrError::Prefix {
                text: text.to_owned(),
                prefix,
                max,
            });
        }
        Ok(Self {
            addr,
            // `prefix <= 128` was checked just above.
            prefix: u8::try_from(prefix).unwrap_or(128),
        })
    }

    /// Whether `ip` lies in this range. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, as a
    /// dual-stack socket reports IPv4 peers) is compared as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The address a request is counted against: `peer` itself, unless `peer` is a trusted proxy;
/// then the rightmost `X-Forwarded-For` entry that is not a trusted proxy (every entry to its
/// left could have been written by the client). When all entries are trusted proxies, the
/// leftmost is used; when the header is missing or an entry does not parse, `peer` (a proxy that
/// does not say who its client is shares its bucket with everything else it forwards).
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &[Cidr],
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    // Several headers are one list, in order (RFC 9110 5.3).
    let entries: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        let Some(ip) = parse_forwarded_entry(entry) else {
            // A malformed hop: what lies left of it cannot be trusted either.
            return client;
        };
        client = ip;
        if !is_trusted(ip) {
            return ip;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, optionally `[v6]` or with a `:port` some proxies
/// append.
fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = entry.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .and_then(|e| e.parse().ok())
}

pub struct IpRateLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    trusted_proxies: Vec<Cidr>,
    /// Requests refused, by route (`mcpoauth_rate_limited`).
    refused: Family<RouteLabel, Counter>,
}

impl IpRateLimiter {
    pub fn new(rate: RateLimit) -> Self {
        let per_minute = NonZeroU32::new(rate.per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(rate.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(
                Quota::per_minute(per_minute).allow_burst(burst),
            ),
            trusted_proxies: rate.trusted_proxies,
            refused: Family::default(),
        }
    }

    /// Export the count of refused requests as `mcpoauth_rate_limited`.
    pub fn register_metrics(&self, metrics: &Metrics) {
        metrics.register(
            "rate_limited",
            "Requests refused by the per-IP rate limit",
            self.refused.clone(),
        );
    }

    /// The address `req` from `peer` is counted against.
    pub fn client_of(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        if self.trusted_proxies.is_empty() {
            return peer;
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        client_ip(peer, forwarded, &self.trusted_proxies)
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
    let peer = ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let ip = app.limiter.client_of(peer, req.headers());
    if app.limiter.check(ip) {
        return next.run(req).await;
    }
    let route = req.uri().path().to_owned();
    app.limiter
        .refused
        .get_or_create(&RouteLabel { route })
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
            trusted_proxies: Vec::new(),
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

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| Cidr::parse(c).expect("cidr")).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn cidr_parsing_and_membership() {
        let net = Cidr::parse("10.0.0.0/8").expect("v4");
        assert!(net.contains(ip("10.255.1.2")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.1.1.1")), "v4-mapped peers match");
        let one = Cidr::parse(" 192.168.1.7 ").expect("single");
        assert!(one.contains(ip("192.168.1.7")) && !one.contains(ip("192.168.1.8")));
        let all = Cidr::parse("0.0.0.0/0").expect("all v4");
        assert!(all.contains(ip("8.8.8.8")) && !all.contains(ip("2001:db8::1")));
        let v6 = Cidr::parse("fd00::/8").expect("v6");
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "ten",
            "10.0.0.0/x",
            "",
            "10.0.0.0/-1",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies_and_only_its_rightmost_untrusted_entry()
    {
        let trusted = cidrs(&["10.0.0.0/8"]);
        let proxy = ip("10.0.0.5");
        // No setting: the peer, whatever the header says.
        assert_eq!(client_ip(proxy, ["1.2.3.4"], &[]), proxy);
        // A client that is not a proxy cannot pick its own bucket.
        assert_eq!(
            client_ip(ip("203.0.113.9"), ["1.2.3.4"], &trusted),
            ip("203.0.113.9")
        );
        // The Ingress appended the real client; the client forged the left part.
        assert_eq!(
            client_ip(proxy, ["6.6.6.6, 198.51.100.7"], &trusted),
            ip("198.51.100.7")
        );
        // Several proxies in the chain, several header lines, a port and brackets.
        assert_eq!(
            client_ip(
                proxy,
                ["198.51.100.7:5555", "10.1.1.1 , 10.2.2.2"],
                &trusted
            ),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(proxy, ["[2001:db8::7]"], &trusted),
            ip("2001:db8::7")
        );
        // No header, a garbage hop, or only proxies.
        assert_eq!(client_ip(proxy, [], &trusted), proxy);
        assert_eq!(client_ip(proxy, ["1.2.3.4, junk"], &trusted), proxy);
        assert_eq!(
            client_ip(proxy, ["10.9.9.9, 10.8.8.8"], &trusted),
            ip("10.9.9.9")
        );
    }

    proptest::proptest! {
        /// Whatever a client writes into `X-Forwarded-For`, the result is the peer, an address
        /// from the header, and never an address left of the rightmost untrusted one; with an
        /// untrusted peer, always the peer.
        #[test]
        fn forwarded_for_never_panics_and_cannot_be_steered(
            header in "[0-9a-f:.,\\[\\] ]{0,80}",
            forged in proptest::collection::vec(proptest::prelude::any::<[u8; 4]>(), 0..4),
            client in proptest::prelude::any::<[u8; 4]>(),
        ) {
            let trusted = cidrs(&["10.0.0.0/8"]);
            let peer = ip("10.0.0.5");
            let outsider = IpAddr::from([203, 0, 113, 1]);
            proptest::prop_assert_eq!(client_ip(outsider, [header.as_str()], &trusted), outsider);
            let got = client_ip(peer, [header.as_str()], &trusted);
            let named: Vec<IpAddr> = header.split(',').filter_map(|e| parse_forwarded_entry(e.trim())).collect();
            proptest::prop_assert!(got == peer || named.contains(&got), "{got} from {header:?}");
            // A forged prefix never changes which address is chosen once an untrusted client
            // address was appended by the proxy.
            let client = IpAddr::from(client);
            let mut line: Vec<String> = forged.iter().map(|o| IpAddr::from(*o).to_string()).collect();
            line.push(client.to_string());
            line.push("10.3.3.3".to_owned());
            let chosen = client_ip(peer, [line.join(", ").as_str()], &trusted);
            if trusted.iter().any(|c| c.contains(client)) {
                proptest::prop_assert!(line.iter().any(|e| *e == chosen.to_string()));
            } else {
                proptest::prop_assert_eq!(chosen, client);
            }
        }
    }
}
