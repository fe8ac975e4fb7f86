//! Limits of the gateway's proxy path.

use super::upstream::client::ClientConfig;
use super::upstream::sessions::SessionLimits;
use crate::net::AddressPolicy;
use std::time::Duration;

/// How long the gateway waits for remote servers and how much it accepts from callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Time allowed to open a connection (TCP + TLS) to a remote server.
    pub connect_timeout: Duration,
    /// Time allowed from sending a request until the response headers arrive. There is no
    /// limit on the body: an SSE stream may stay open as long as both sides want it.
    pub response_timeout: Duration,
    /// Largest request body accepted from a caller (JSON-RPC messages are small).
    pub max_request_body_bytes: usize,
    /// Time allowed for a caller's whole request body to arrive: a body trickled byte by byte
    /// would otherwise hold its connection and task for as long as the caller likes.
    pub request_body_timeout: Duration,
    /// Bounds of the sessions the gateway opens before sign-in.
    pub sessions: SessionLimits,
    /// Idle keep-alive connections to a remote server are closed after this long.
    pub pool_idle_timeout: Duration,
    /// Which addresses remote servers may be at (the SSRF guard). The default is the
    /// standalone one, like [`crate::net::OutboundConfig`]'s; `run` narrows it.
    pub address_policy: AddressPolicy,
}

impl GatewayConfig {
    /// The upstream client's share of these settings.
    pub fn client(&self) -> ClientConfig {
        ClientConfig {
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
            pool_idle_timeout: self.pool_idle_timeout,
            address_policy: self.address_policy,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            max_request_body_bytes: 4 * 1024 * 1024,
            request_body_timeout: Duration::from_secs(30),
            sessions: SessionLimits::default(),
            pool_idle_timeout: Duration::from_secs(90),
            address_policy: AddressPolicy::AllowPrivate,
        }
    }
}
