//! mcp-oauth-operator: a gateway that lets MCP clients use OAuth-protected remote MCP servers,
//! holding the users' tokens server-side, and a Kubernetes operator that configures it from
//! `RemoteMCPServer` and `TokenExchangePolicy` resources.
//!
//! A request's path: [`http`] (router) → identity → [`registry`] → credentials ([`manager`]) →
//! upstream. Browser flows: [`http`] connect/callback → [`manager`] → [`oauth`] engine → [`store`].

pub mod app;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod crypto;
pub mod exchange;
pub mod fswatch;
pub mod gateway;
pub mod http;
pub mod identity;
pub mod manager;
pub mod manifests;
pub mod metrics;
pub mod net;
pub mod oauth;
pub mod registry;
/// Key-ring loading, reloading and rotation, declared from their files in `serve/` until they
/// move to their own module.
pub mod serve {
    pub mod key_gate;
    pub mod key_source;
    pub mod keyring_file;
    pub mod keyring_reload;
    pub mod rotation;
}
pub mod store;
pub mod telemetry;
pub mod time;
