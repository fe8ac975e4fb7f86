//! Outbound HTTP: the one place where the gateway talks to authorization servers, metadata
//! endpoints and remote MCP servers for discovery. Every outbound request is built in
//! [`outbound`], so caps, timeouts, the no-redirect rule and the address guard (SSRF: [`ssrf`]
//! decides, [`guard`] enforces) apply to all.

pub mod guard;
pub mod headers;
mod outbound;
pub mod ssrf;
#[cfg(test)]
pub(crate) mod testing;
mod tls;

pub use guard::{GuardedResolver, check_url, guard_reqwest};
pub use outbound::*;
pub use ssrf::{AddressClass, AddressPolicy, AddressRefused};
pub use tls::platform_client_config;
