//! The client that talks to remote MCP servers: one pooled hyper client (keep-alive connections
//! per remote server), a connect timeout and a response-header timeout, and no limit on how long
//! a response body streams. Request bodies are already in memory (they are small and were read
//! once); response bodies are handed on as hyper frames, unbuffered.

use super::connector::{self, UpstreamConnector};
use crate::net::AddressPolicy;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

/// The body of a request to a remote server.
pub type UpstreamBody = Full<Bytes>;

/// A transport failure, kept whole (its causes are the detail).
pub type TransportError = Box<dyn std::error::Error + Send + Sync>;

/// Why a remote server gave no response. Messages describe the transport failure only (never a
/// URL, which may carry a key in its query, nor a header): the innermost causes of the client's
/// error, which stays the source.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("could not connect: {}", describe(.0.as_ref()))]
    Connect(#[source] TransportError),
    #[error("connecting timed out after {0:?}")]
    ConnectTimeout(Duration),
    #[error("no response within {0:?}")]
    ResponseTimeout(Duration),
    #[error("the response is not valid HTTP or the connection broke: {}", describe(.0.as_ref()))]
    Protocol(#[source] TransportError),
}

impl UpstreamError {
    /// What went wrong in words: the innermost causes (see [`UpstreamError`]'s messages).
    pub fn detail(&self) -> String {
        match self {
            UpstreamError::Connect(e) | UpstreamError::Protocol(e) => describe(e.as_ref()),
            other => other.to_string(),
        }
    }
}

/// What the client takes from the gateway's settings ([`crate::gateway::GatewayConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// Time allowed to open a connection (TCP + TLS).
    pub connect_timeout: Duration,
    /// Time allowed from sending a request until the response headers arrive.
    pub response_timeout: Duration,
    /// Idle keep-alive connections are closed after this long.
    pub pool_idle_timeout: Duration,
    /// Which addresses remote servers may be at (the SSRF guard).
    pub address_policy: AddressPolicy,
}

/// The pooled client.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client<UpstreamConnector, UpstreamBody>,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl Upstream {
    pub fn new(cfg: &ClientConfig) -> Result<Self, std::io::Error> {
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(cfg.pool_idle_timeout)
            .build(connector::build(cfg.connect_timeout, cfg.address_policy)?);
        Ok(Self {
            client,
            connect_timeout: cfg.connect_timeout,
            response_timeout: cfg.response_timeout,
        })
    }

    /// Send `req` and wait for the response headers (at most the response timeout).
    pub async fn send(
        &self,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        match tokio::time::timeout(self.response_timeout, self.client.request(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(self.classify(e)),
            Err(_) => Err(UpstreamError::ResponseTimeout(self.response_timeout)),
        }
    }

    fn classify(&self, err: hyper_util::client::legacy::Error) -> UpstreamError {
        if !err.is_connect() {
            return UpstreamError::Protocol(Box::new(err));
        }
        let timed_out = source_chain(&err).any(|e| {
            e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        });
        if timed_out {
            UpstreamError::ConnectTimeout(self.connect_timeout)
        } else {
            UpstreamError::Connect(Box::new(err))
        }
    }
}

fn source_chain<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |&e| e.source())
}

/// The innermost causes of a client error ("client error (Connect)" alone says little); an
/// error without causes describes itself.
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = err.source();
    while let Some(e) = cur {
        let text = e.to_string();
        if !parts.iter().any(|p| p == &text) {
            parts.push(text);
        }
        cur = e.source();
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}
