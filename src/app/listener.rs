//! Accepting and serving the gateway's connections (HTTP/1.1, and HTTP/2 with prior
//! knowledge) with the limits a listener open to the network needs:
//!
//! - a deadline for a request's headers (HTTP/1.1): a client trickling its request line and
//!   headers is disconnected instead of holding a connection and a task forever;
//! - a cap on concurrent connections per client address, and on all connections: one address
//!   cannot take every file descriptor. IPv6 addresses count per /64, the smallest block a
//!   single client is usually given (counting each address alone would let one host use 2^64).
//!
//! Over a cap, the connection is accepted and closed at once (before any byte is read): the
//! kernel has completed the handshake already, and closing is the only answer TCP offers.
//! Request bodies have their own deadline in the gateway ([`crate::gateway::upstream::body`]).

use crate::metrics::Metrics;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// Limits of the listener (see the module docs). `0` for a cap means no cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerLimits {
    pub header_read_timeout: Duration,
    pub max_connections_per_client: usize,
    pub max_connections: usize,
    /// Peers exempt from the per-client cap (`--trusted-proxies`): every client behind an
    /// Ingress arrives from its pods, whose connections would otherwise share one client's
    /// allowance. They still count towards `max_connections`.
    pub trusted_proxies: Vec<crate::http::Cidr>,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections_per_client: 512,
            max_connections: 16_384,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Which connection cap closed a connection on accept (`per_client`, `total`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CapLabel {
    pub cap: String,
}

/// The listener's metrics, registered when the server is built.
#[derive(Debug, Clone, Default)]
pub struct ListenerMetrics {
    /// Connections closed on accept because a connection cap was reached.
    refused: Family<CapLabel, Counter>,
}

impl ListenerMetrics {
    /// Creates the listener's metrics and registers them in `metrics`.
    pub fn register(metrics: &Metrics) -> Self {
        let m = Self::default();
        metrics.register(
            "connections_refused",
            "Connections closed on accept because a connection cap was reached, by cap",
            m.refused.clone(),
        );
        m
    }

    fn refused(&self, refused: Refused) {
        self.refused
            .get_or_create(&CapLabel {
                cap: refused.cap().to_owned(),
            })
            .inc();
    }
}

/// The address a connection counts against: IPv4 (also when mapped into IPv6) as is, IPv6 by
/// its /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Open connections, per client and in all.
#[derive(Debug, Default)]
struct Counts {
    per_client: HashMap<IpAddr, usize>,
    total: usize,
}

/// The connection counter shared by the accept loop and the connection tasks.
#[derive(Debug)]
pub struct Connections {
    limits: ListenerLimits,
    counts: Mutex<Counts>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    PerClient,
    Total,
}

impl Refused {
    /// The metric label of the cap.
    pub fn cap(self) -> &'static str {
        match self {
            Refused::PerClient => "per_client",
            Refused::Total => "total",
        }
    }
}

/// One open connection; dropping it frees its place.
#[derive(Debug)]
pub struct Slot {
    connections: Arc<Connections>,
    /// The client key it counts against; `None` for a trusted proxy (counted in the total only).
    client: Option<IpAddr>,
}

impl Connections {
    pub fn new(limits: ListenerLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// A place for a new connection from `ip`, unless a cap is reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let client = client_key(ip);
        // A panic while holding the lock cannot leave the counts half-updated (each update is
        // one statement), so a poisoned lock is still usable.
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let max_total = self.limits.max_connections;
        if max_total > 0 && counts.total >= max_total {
            return Err(Refused::Total);
        }
        if self.limits.trusted_proxies.iter().any(|c| c.contains(ip)) {
            counts.total += 1;
            return Ok(Slot {
                connections: self.clone(),
                client: None,
            });
        }
        let max_client = self.limits.max_connections_per_client;
        let open = counts.per_client.get(&client).copied().unwrap_or(0);
        if max_client > 0 && open >= max_client {
            return Err(Refused::PerClient);
        }
        counts.per_client.insert(client, open + 1);
        counts.total += 1;
        Ok(Slot {
            connections: self.clone(),
            client: Some(client),
        })
    }

    /// Connections open from `ip`'s client key.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.per_client.get(&client_key(ip)).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .connections
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        // Forget clients with no connection left, so the map holds only open ones.
        if let Some(client) = self.client
            && let Some(n) = counts.per_client.get_mut(&client)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_client.remove(&client);
            }
        }
    }
}

/// Whether an accept error concerns only the one connection (the next accept may succeed at
/// once); other errors (out of file descriptors) call for a pause.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Serve `app` on `listener` until `shutdown` fires, then stop accepting and wait for open
/// connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ListenerLimits,
    metrics: ListenerMetrics,
    shutdown: CancellationToken,
) {
    let connections = Connections::new(limits.clone());
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    // Closes HTTP/2 connections whose peer stopped answering pings.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    // Every connection task holds a receiver; shutdown waits until all are dropped.
    let (close_tx, close_rx) = tokio::sync::watch::channel(());
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "accepting a connection failed; pausing for a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let slot = match connections.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refused) => {
                metrics.refused(refused);
                tracing::debug!(client = %client_key(peer.ip()), ?refused, "connection refused: too many open connections");
                drop(tcp);
                continue;
            }
        };
        // SSE events and JSON-RPC answers are small writes: with Nagle's algorithm each would
        // wait for the client's delayed ACK (about 40 ms) behind the previous one.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on an accepted connection");
        }
        let app = app.clone();
        let served = Arc::new(AtomicBool::new(false));
        let first = served.clone();
        let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            first.store(true, Ordering::Relaxed);
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req.map(Body::new))
        });
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        let close_rx = close_rx.clone();
        tokio::spawn(async move {
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => log_end(result),
                () = first_request_missed(&served, limits.header_read_timeout) => {
                    tracing::trace!("no complete request within the header read timeout; connection closed");
                }
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    log_end(conn.await);
                }
            }
            drop(slot);
            drop(close_rx);
        });
    }
    drop(listener);
    drop(close_rx);
    close_tx.closed().await;
}

/// Completes when no request has arrived within `limit` of the connection's start (then the
/// connection is dropped, which closes it); never completes once one has. hyper's header
/// deadline covers HTTP/1.1 requests, but not the bytes before it knows the protocol (a client
/// sending nothing, or the first bytes of the HTTP/2 preface) nor an HTTP/2 connection's first
/// request.
async fn first_request_missed(served: &AtomicBool, limit: Duration) {
    tokio::time::sleep(limit).await;
    if served.load(Ordering::Relaxed) {
        std::future::pending::<()>().await;
    }
}

fn log_end(result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(e) = result {
        tracing::trace!(error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(client_key(ip("10.0.0.1")), ip("10.0.0.1"));
        assert_eq!(client_key(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
    }

    #[test]
    fn trusted_proxies_skip_the_per_client_cap_but_not_the_total() {
        let c = Connections::new(ListenerLimits {
            max_connections_per_client: 1,
            max_connections: 3,
            trusted_proxies: vec![crate::http::Cidr::parse("10.1.0.0/16").expect("cidr")],
            ..ListenerLimits::default()
        });
        let p1 = c.admit(ip("10.1.2.3")).expect("proxy");
        let _p2 = c
            .admit(ip("10.1.2.3"))
            .expect("the proxy's second connection");
        let _x = c.admit(ip("10.9.0.1")).expect("a client");
        assert_eq!(c.admit(ip("10.9.0.1")).err(), Some(Refused::Total));
        assert_eq!(c.admit(ip("10.1.2.3")).err(), Some(Refused::Total));
        drop(p1);
        let _y = c
            .admit(ip("10.9.0.2"))
            .expect("a proxy's closed connection frees its place in the total");
        assert_eq!(c.admit(ip("10.1.2.3")).err(), Some(Refused::Total));
        assert_eq!(
            c.open_from(ip("10.1.2.3")),
            0,
            "proxies are not counted per client"
        );
    }

    #[test]
    fn caps_per_client_and_in_all_and_frees_places_on_drop() {
        let c = Connections::new(ListenerLimits {
            max_connections_per_client: 2,
            max_connections: 3,
            ..ListenerLimits::default()
        });
        let a1 = c.admit(ip("10.0.0.1")).expect("first");
        let a2 = c.admit(ip("10.0.0.1")).expect("second");
        assert_eq!(c.admit(ip("10.0.0.1")).err(), Some(Refused::PerClient));
        let b1 = c.admit(ip("2001:db8::1")).expect("other client");
        assert_eq!(c.admit(ip("10.0.0.2")).err(), Some(Refused::Total));
        drop(b1);
        let _b2 = c.admit(ip("2001:db8::2")).expect("a freed place is reused");
        drop(a1);
        drop(a2);
        assert_eq!(c.open_from(ip("10.0.0.1")), 0);
        assert!(
            c.counts.lock().expect("lock").per_client.len() == 1,
            "closed clients are forgotten"
        );
    }

    #[test]
    fn zero_means_no_cap() {
        let c = Connections::new(ListenerLimits {
            max_connections_per_client: 0,
            max_connections: 0,
            ..ListenerLimits::default()
        });
        let slots: Vec<_> = (0..100).map(|_| c.admit(ip("10.0.0.1"))).collect();
        assert!(slots.iter().all(Result::is_ok));
    }
}
