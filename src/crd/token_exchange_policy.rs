//! The `TokenExchangePolicy` custom resource: where and how the gateway swaps a caller's token
//! for a token of a remote identity provider (RFC 8693), for `RemoteMCPServer`s in
//! `mode: exchange`.
//!
//! Every field carries a doc comment because it becomes the schema description that
//! `kubectl explain` prints. Cross-field rules are CEL rules here *and* checks in
//! [`crate::crd::validate`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::SecretKeySelector;
use super::remote_mcp_server::TokenEndpointAuthMethod;

/// Scopes requested when a policy does not list any.
pub const DEFAULT_EXCHANGE_SCOPES: [&str; 4] = ["openid", "profile", "email", "groups"];

/// Desired state of a `TokenExchangePolicy`.
// kube's repeated `printcolumn(type_ = ...)` items trip clippy's attribute-duplicate check.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mcpoauth.dev",
    version = "v1alpha1",
    kind = "TokenExchangePolicy",
    plural = "tokenexchangepolicies",
    shortname = "tep",
    category = "mcp",
    namespaced,
    status = "TokenExchangePolicyStatus",
    derive = "PartialEq",
    doc = "An RFC 8693 token exchange at a remote identity provider: RemoteMCPServers in mode exchange swap the caller's token for one issued by that provider before calling the server.",
    printcolumn(
        name = "Endpoint",
        type_ = "string",
        json_path = ".spec.tokenEndpoint",
        description = "Token endpoint the exchange is sent to"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the policy is valid and usable"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TokenExchangePolicySpec {
    /// Token endpoint of the remote identity provider, e.g.
    /// `https://dex.cluster-b.example.com/token`. Absolute http(s) URL without user info or
    /// fragment.
    #[schemars(length(min = 8, max = 2048), pattern(r"^https?://"))]
    pub token_endpoint: String,

    /// Issuer (`iss`) the exchanged token must carry, e.g. `https://dex.cluster-b.example.com`.
    /// Default: the token endpoint with a trailing `/token` path segment removed (Dex layout).
    /// Set it when the provider is reached through a proxy or uses another layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), pattern(r"^https?://"))]
    pub expected_issuer: Option<String>,

    /// Dex connector that vouches for the subject token on the remote side, e.g. `cluster-a`.
    /// Sent as `connector_id`; omit for providers other than Dex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), pattern(r"^[a-zA-Z0-9_-]+$"))]
    pub connector_id: Option<String>,

    /// RFC 8693 `audience` to request, e.g. the remote client id `mcp-cluster-b`. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub audience: Option<String>,

    /// RFC 8693 `resource` to request, e.g. `https://mcp.cluster-b.example.com/mcp`. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), pattern(r"^https?://"))]
    pub resource: Option<String>,

    /// Scopes to request. Each entry is one scope token (no spaces). Default:
    /// `[openid, profile, email, groups]`.
    #[serde(default = "default_scopes")]
    #[schemars(
        length(max = 64),
        inner(length(min = 1, max = 256), pattern(r"^[!#-\[\]-~]+$"))
    )]
    pub scopes: Vec<String>,

    /// Type of the caller's token sent as `subject_token`: `id_token` (default) or
    /// `access_token`.
    #[serde(default)]
    pub subject_token_type: SubjectTokenTypeSpec,

    /// RFC 8693 `requested_token_type` as a URN, e.g.
    /// `urn:ietf:params:oauth:token-type:id_token`. Default: not sent (the provider decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256), pattern(r"^urn:"))]
    pub requested_token_type: Option<String>,

    /// How the gateway authenticates itself at the token endpoint. Default: no client
    /// authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<ClientAuthSpec>,

    /// SSRF guard: when `false` (default) the token endpoint must not resolve to a private,
    /// loopback or link-local address. Set `true` only for providers inside a trusted network.
    #[serde(default)]
    pub allow_private_networks: bool,
}

fn default_scopes() -> Vec<String> {
    DEFAULT_EXCHANGE_SCOPES
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

/// Type of the subject token (RFC 8693 `subject_token_type`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SubjectTokenTypeSpec {
    /// An OpenID Connect ID token.
    #[default]
    IdToken,
    /// An OAuth access token.
    AccessToken,
}

/// Client authentication at the token endpoint: a client id + secret, or mutual TLS.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.secretRef) != has(self.tlsSecretRef)")
        .message("set exactly one of clientAuth.secretRef (client id and secret) or clientAuth.tlsSecretRef (mutual TLS)")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("!has(self.method) || has(self.secretRef)")
        .message("clientAuth.method applies to secretRef only: remove it or use secretRef")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.clientId) || has(self.tlsSecretRef)")
        .message("clientAuth.clientId applies to tlsSecretRef only: the secretRef carries its own client id")
        .reason(Reason::FieldValueForbidden)
)]
pub struct ClientAuthSpec {
    /// Secret (same namespace) holding the client id and client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<ClientCredentialsSecretRef>,

    /// How the secret is presented: `client_secret_basic` (HTTP Basic, default) or
    /// `client_secret_post` (form body). Only with `secretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<TokenEndpointAuthMethod>,

    /// A `kubernetes.io/tls` Secret (same namespace) whose `tls.crt` and `tls.key` are the client
    /// certificate and key for mutual TLS (RFC 8705).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_ref: Option<TlsSecretRef>,

    /// `client_id` sent with mutual-TLS authentication, e.g. `mcp-gateway`. Only with
    /// `tlsSecretRef`; omit when the provider identifies the client by its certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub client_id: Option<String>,
}

/// Reference to a Secret holding a client id and client secret.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClientCredentialsSecretRef {
    /// Name of a Secret in the same namespace as this policy, e.g. `cluster-b-client`.
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Key in the Secret's data holding the client id. Default `clientId`.
    #[serde(default = "default_client_id_key")]
    #[schemars(length(min = 1, max = 253), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub client_id_key: String,

    /// Key in the Secret's data holding the client secret. Default `clientSecret`.
    #[serde(default = "default_client_secret_key")]
    #[schemars(length(min = 1, max = 253), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub client_secret_key: String,
}

impl ClientCredentialsSecretRef {
    pub(crate) fn client_id(&self) -> SecretKeySelector<'_> {
        SecretKeySelector {
            name: &self.name,
            key: &self.client_id_key,
        }
    }

    pub(crate) fn client_secret(&self) -> SecretKeySelector<'_> {
        SecretKeySelector {
            name: &self.name,
            key: &self.client_secret_key,
        }
    }
}

fn default_client_id_key() -> String {
    "clientId".to_owned()
}

fn default_client_secret_key() -> String {
    "clientSecret".to_owned()
}

/// Reference to a `kubernetes.io/tls` Secret.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsSecretRef {
    /// Name of a `kubernetes.io/tls` Secret in the same namespace as this policy, e.g.
    /// `cluster-b-client-cert`. Its `tls.crt` and `tls.key` entries are used.
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
}

/// Data key of the certificate chain in a `kubernetes.io/tls` Secret.
pub const TLS_CERT_KEY: &str = "tls.crt";
/// Data key of the private key in a `kubernetes.io/tls` Secret.
pub const TLS_KEY_KEY: &str = "tls.key";

/// Observed state of a `TokenExchangePolicy`, written by the controller.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TokenExchangePolicyStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Exchange cache counters of the replica that wrote this status (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<ExchangeCacheStatus>,

    /// Current state. `Ready` True: the policy is valid, its Secrets were read and its endpoint
    /// is verified and in use (reason `EndpointVerified` or `ExchangeGrantNotAdvertised`);
    /// False: not used, the reason says why (`MetadataUnavailable`, `IssuerMismatch`,
    /// `TokenEndpointMismatch`, `AddressRefused`, or a spec reason such as `SecretNotFound`).
    /// One entry per `type`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// Exchange cache counters.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeCacheStatus {
    /// Exchanges answered from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hits: Option<i64>,

    /// Exchanges that had to call the token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misses: Option<i64>,
}

impl TokenExchangePolicy {
    /// Names of the Secrets (same namespace) this policy reads, so a Secret change can
    /// re-trigger it.
    pub fn referenced_secrets(&self) -> Vec<String> {
        let Some(auth) = self.spec.client_auth.as_ref() else {
            return Vec::new();
        };
        let mut names: Vec<String> = auth
            .secret_ref
            .iter()
            .map(|r| r.name.clone())
            .chain(auth.tls_secret_ref.iter().map(|r| r.name.clone()))
            .collect();
        names.dedup();
        names
    }
}
