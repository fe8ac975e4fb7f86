//! mcp-oauth-operator: a gateway that lets MCP clients use OAuth-protected remote MCP servers,
//! holding the users' tokens server-side, and a Kubernetes operator that configures it from
//! `RemoteMCPServer` and `TokenExchangePolicy` resources.
//!
//! The map (`docs/architecture.md` has the long version):
//!
//! - Start-up: `main.rs` parses the command line ([`cli`], clap only), converts it into each
//!   component's plain configuration and hands them to [`app`], which builds every component,
//!   starts the listeners and the registrations source ([`manifests`] for `serve`,
//!   [`controller`] for `run`) and shuts them down. [`telemetry`] sets up logging; [`metrics`]
//!   is the registry every component registers its own metrics in.
//! - A request's path: [`http`] (the router) → [`gateway`]: [`identity`] (who calls) →
//!   [`registry`] (which server, with its settings) → [`credentials`] (what to send for that
//!   user and server: none, OAuth, forwarded or exchanged) → the leg (one exchange with one
//!   upstream, with its retry on 401/403) → upstream.
//! - The callback path: [`http`] → [`flows::routes`] connect → the authorization server
//!   ([`oauth`] engine) → [`flows`] callback → the token kept in the [`store`] (for the
//!   `oauth` credentials source to hand out), the waiting MCP session resumed.
//! - Beneath them: [`crd`] (the resources), [`net`] (outbound clients, SSRF guard, TLS),
//!   [`crypto`] (encryption at rest) and the key ring's loading and rotation.

pub mod app;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod credentials;
pub mod crypto;
pub mod flows;
pub mod gateway;
pub mod http;
pub mod identity;
pub mod keys;
pub mod manifests;
pub mod metrics;
pub mod net;
pub mod oauth;
pub mod registry;
pub mod store;
pub mod telemetry;
pub mod time;
