//! mcp-oauth-operator: a gateway that lets MCP clients use OAuth-protected remote MCP servers,
//! holding the users' tokens server-side, and a Kubernetes operator that configures it from
//! `RemoteMCPServer` and `TokenExchangePolicy` resources.
//!
//! A request's path: [`http`] (router) → [`gateway`]: identity → [`registry`] →
//! [`credentials`] → the leg to the upstream. Browser flows: [`http`] connect/callback →
//! [`manager`] → [`oauth`] engine → [`store`].

pub mod cli;
pub mod controller;
pub mod crd;
pub mod credentials;
pub mod crypto;
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
pub mod serve;
pub mod store;
pub mod telemetry;
pub mod time;
