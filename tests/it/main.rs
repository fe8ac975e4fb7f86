//! The integration tests: one binary, one module per area, all sharing the `testkit` harness
//! (real IdP, MCP servers, Valkey, kube-apiserver, a scripted browser). One binary links the
//! crate graph once instead of once per area; nextest still runs every test in its own process.

mod cel;
mod chart;
mod cli;
mod controller;
mod controller_policy;
mod crds;
mod crypto;
mod dockerfile;
mod flow;
mod flow_faults;
mod gateway;
mod gateway_challenge;
mod gateway_exchange;
mod gateway_forward;
mod gateway_oidc;
mod gateway_valkey;
mod identity;
mod infra_smoke;
mod keyring_reload;
mod kube_smoke;
mod log_hygiene;
mod manifests;
mod oauth_engine;
mod ssrf;
mod status_logout;
mod store_memory;
mod store_valkey;
mod tls_platform;
