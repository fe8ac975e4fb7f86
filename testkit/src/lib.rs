//! Test-support harness shared by the integration tests (`tests/it/`) and the benches. It starts the real components the tests talk to — the
//! node-oidc-provider IdP, an OAuth-protected MCP server and the unauthenticated
//! `server-everything` — and provides a scripted browser for the login pages.
//!
//! The node components live in `tests/infra/node`; install them with
//! `scripts/setup-test-deps.sh`.

pub mod browser;
pub mod certs;
pub mod controller_env;
pub mod gateway;
pub mod idp;
pub mod kube;
pub mod mcp;
pub mod mcp_client;
pub mod net;
pub mod node;
pub mod oauth;
pub mod python_mcp;
pub mod valkey;

pub use browser::{Browser, LoginError};
pub use idp::{CimdFetches, Idp, IdpOptions, IdpStats};
pub use mcp::{EverythingServer, McpServer};
pub use net::free_port;
pub use oauth::{Pkce, jwt_payload};
pub use python_mcp::PythonMcpServer;

/// The repository's root (this crate lives in `testkit/`): where `crds/`, `charts/` and
/// `tests/infra/` are.
pub fn repo_root() -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}
