//! Outbound HTTP: the one place where the gateway talks to authorization servers, metadata
//! endpoints and remote MCP servers for discovery. Every outbound request is built in
//! [`outbound`], so caps, timeouts, the no-redirect rule (and later the SSRF guard) apply to all.

mod outbound;
#[cfg(test)]
pub(crate) mod testing;

pub use outbound::*;
