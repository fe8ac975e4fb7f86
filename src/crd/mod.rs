//! Custom resource types (`RemoteMCPServer`, `TokenExchangePolicy`), their generated CRD YAML,
//! and the pure validation that turns a resource into a registry registration.

mod common;
mod generate;
mod remote_mcp_server;
mod token_exchange_policy;
pub mod validate;

pub use generate::{CrdYamlError, crd_files, crd_yaml};
pub use remote_mcp_server::{
    AuthMode, AuthSpec, AuthorizationServerStatus, ClientSecretRef, ExchangeSpec, ForwardSpec,
    OAuthClientSpec, OAuthSpec, PolicyRef, RemoteMCPServer, RemoteMCPServerSpec,
    RemoteMCPServerStatus, TokenEndpointAuthMethod,
};
pub use token_exchange_policy::{
    ClientAuthSpec, ClientCredentialsSecretRef, DEFAULT_EXCHANGE_SCOPES, ExchangeCacheStatus,
    SubjectTokenTypeSpec, TLS_CERT_KEY, TLS_KEY_KEY, TlsSecretRef, TokenExchangePolicy,
    TokenExchangePolicySpec, TokenExchangePolicyStatus,
};

/// API group of both resources.
pub const GROUP: &str = "mcpoauth.dev";
/// API version of both resources.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "mcpoauth.dev/v1alpha1";

/// Condition types written to `status.conditions`.
pub mod condition {
    /// The resource is registered and usable through the gateway.
    pub const READY: &str = "Ready";
    /// The server's authorization server metadata was fetched and is usable (oauth mode).
    pub const AUTHORIZATION_SERVER_DISCOVERED: &str = "AuthorizationServerDiscovered";
}
