//! The plain configuration the server is built from. The command line fills it in
//! (`cli::ServerArgs::app_config`); tests and embedding programs may build or adjust it
//! directly. Nothing here knows about clap.

use crate::gateway::GatewayConfig;
use crate::http::RateLimit;
use crate::identity::IdentitySettings;
use crate::store::{StoreKind, ValkeySettings};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

use super::listener::ListenerLimits;

/// Everything [`super::start`] needs besides the registrations source.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Address of the main listener (port 0: any free port).
    pub listen: SocketAddr,
    /// URL at which browsers and identity providers reach the gateway; `None`: `http://` + the
    /// listen address (see [`super::public_url`]).
    pub public_url: Option<Url>,
    /// Accept a plain-HTTP public URL on a non-loopback host, and plain-HTTP metadata.
    pub allow_insecure_http: bool,
    /// Origins besides the public URL's whose pages may call the gateway.
    pub allowed_origins: Vec<String>,
    /// `Host` values besides the public URL's and the listen address.
    pub allowed_hosts: Vec<String>,
    /// How callers are identified.
    pub identity: IdentitySettings,
    /// Where tokens and pending flows are kept.
    pub store: StoreKind,
    /// Valkey and encryption-at-rest settings (with [`StoreKind::Valkey`]).
    pub valkey: ValkeySettings,
    /// `client_name` of the Client ID Metadata Document.
    pub client_name: String,
    /// `scope` of the Client ID Metadata Document (`auto`, `none` or a list).
    pub cimd_scope: String,
    /// Refresh an access token this long before it expires.
    pub refresh_margin: Duration,
    /// Per-IP rate limit of the browser-flow endpoints, and the proxies trusted to name the
    /// client.
    pub rate_limit: RateLimit,
    /// Serve `/metrics` on this separate address instead of the main listener.
    pub metrics_listen: Option<SocketAddr>,
    /// Outbound requests (metadata, token endpoints, remote servers' addresses).
    pub outbound: OutboundSettings,
    /// How long discovered authorization-server metadata is cached.
    pub metadata_cache_ttl: Duration,
    /// Extra CA certificates (PEM) for `TokenExchangePolicy` token endpoints.
    pub exchange_ca_file: Option<PathBuf>,
    /// Issuers whose token endpoints may receive callers' tokens; empty: the `oidc` issuer.
    pub exchange_allowed_issuers: Vec<String>,
    /// Limits of the proxy path. Its address policy is replaced by the outbound one.
    pub gateway: GatewayConfig,
    /// Limits of the main listener.
    pub listener: ListenerLimits,
}

/// Limits of every outbound request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundSettings {
    pub timeout: Duration,
    pub max_body_bytes: usize,
    /// Allow loopback, private, link-local and shared addresses (cloud metadata never).
    pub allow_private_networks: bool,
}
