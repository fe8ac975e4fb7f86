//! The `RemoteMCPServer` custom resource: one remote MCP server the gateway exposes at
//! `/mcp/{namespace}/{name}`, and how the gateway authenticates to it.
//!
//! Every field carries a doc comment because it becomes the schema description that
//! `kubectl explain remotemcpservers.spec...` prints. Cross-field rules are CEL rules in the
//! schema *and* checks in [`crate::crd::validate`], because old API servers and `serve` mode do
//! not run CEL.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{SecretKeySelector, default_true};

/// Desired state of a `RemoteMCPServer`.
// kube's repeated `printcolumn(type_ = ...)` items trip clippy's attribute-duplicate check.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mcpoauth.dev",
    version = "v1alpha1",
    kind = "RemoteMCPServer",
    plural = "remotemcpservers",
    shortname = "rms",
    category = "mcp",
    namespaced,
    status = "RemoteMCPServerStatus",
    derive = "PartialEq",
    doc = "A remote MCP server (Streamable HTTP transport) that the gateway exposes at /mcp/{namespace}/{name}, and how the gateway authenticates to it on the calling user's behalf.",
    printcolumn(
        name = "URL",
        type_ = "string",
        json_path = ".spec.url",
        description = "Streamable HTTP endpoint of the remote MCP server"
    ),
    printcolumn(
        name = "Mode",
        type_ = "string",
        json_path = ".spec.auth.mode",
        description = "How the gateway authenticates to the server"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the server is registered and usable"
    ),
    printcolumn(
        name = "Issuer",
        type_ = "string",
        json_path = ".status.authorizationServer.issuer",
        description = "Issuer of the server's authorization server (oauth mode)"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RemoteMCPServerSpec {
    /// Streamable HTTP endpoint of the remote MCP server, e.g. `https://mcp.example.com/mcp`.
    /// Must be an absolute http(s) URL without user info or fragment. Plain `http://` is
    /// accepted only for a loopback host (`localhost`, `127.0.0.0/8`, `::1`) unless
    /// `allowInsecureHttp` is set.
    #[schemars(length(min = 8, max = 2048), pattern(r"^https?://"))]
    pub url: String,

    /// Accept a plain `http://` `url` on a host other than loopback, e.g. a server inside the
    /// cluster on a network you trust. Users' access tokens and their MCP traffic then cross
    /// that network unencrypted, readable and alterable by anyone on the path. Default: false
    /// (such a server is not registered: Ready=False, reason `InsecureURL`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_insecure_http: bool,

    /// How the gateway authenticates to the remote server. Default: `mode: oauth` with every
    /// OAuth setting discovered from the server.
    #[serde(default)]
    pub auth: AuthSpec,

    /// Extra request headers the gateway passes from the caller to this server, e.g.
    /// `[X-Tenant]` (case-insensitive, at most 16). By default only the MCP transport's headers
    /// (`Mcp-*`, `Last-Event-ID`), content negotiation (`Accept`, `Accept-Encoding`,
    /// `Content-Type`, `Content-Encoding`) and the gateway's own `Authorization` reach the
    /// server; every other header the caller or a proxy in front of the gateway added is
    /// dropped. Refused here: hop-by-hop headers, `Host`, `Content-Length`, credentials
    /// (`Authorization`, `Cookie`, `Proxy-*`, `X-Auth-Request-*`, `X-Api-Key`, ...) and claims
    /// about the client or the request path (`Forwarded`, `X-Forwarded-*`, `X-Real-IP`,
    /// `True-Client-IP`, `Via`, `Sec-*`, ...). Headers the gateway's `header` identity reads
    /// are never passed, even when listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(length(min = 1, max = 128), pattern(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"))
    )]
    pub forward_headers: Vec<String>,
}

/// Authentication towards the remote server. Exactly the sub-block matching `mode` may be set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.mode != 'exchange' || has(self.exchange)")
        .message("auth.exchange.policyRef is required when mode is exchange")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("self.mode != 'forward' || (has(self.forward) && size(self.forward.audiences) > 0)")
        .message("auth.forward.audiences must be non-empty when mode is forward")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("!has(self.oauth) || self.mode == 'oauth'")
        .message("auth.oauth is only allowed with mode: oauth (remove auth.oauth or set mode: oauth)")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.exchange) || self.mode == 'exchange'")
        .message("auth.exchange is only allowed with mode: exchange (remove auth.exchange or set mode: exchange)")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.forward) || self.mode == 'forward'")
        .message("auth.forward is only allowed with mode: forward (remove auth.forward or set mode: forward)")
        .reason(Reason::FieldValueForbidden)
)]
pub struct AuthSpec {
    /// Authentication mode. `oauth` (default): the gateway runs the OAuth 2.1
    /// authorization-code flow per user and keeps the tokens server-side. `forward`: the caller's
    /// own bearer token is passed on when its audience is allowed (see `forward`). `exchange`: the
    /// caller's token is swapped via RFC 8693 token exchange per a TokenExchangePolicy (see
    /// `exchange`). `none`: no credentials are sent.
    #[serde(default)]
    pub mode: AuthMode,

    /// OAuth settings for `mode: oauth`. All optional: by default the authorization server,
    /// scopes and resource are discovered from the server (RFC 9728) and the gateway identifies
    /// itself with its Client ID Metadata Document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthSpec>,

    /// Token exchange settings for `mode: exchange` (required in that mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<ExchangeSpec>,

    /// Token forwarding settings for `mode: forward` (required in that mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<ForwardSpec>,
}

/// How the gateway authenticates to a remote MCP server.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No credentials are sent.
    None,
    /// Per-user OAuth 2.1 authorization-code flow run by the gateway.
    #[default]
    OAuth,
    /// The caller's own token is forwarded.
    Forward,
    /// The caller's token is exchanged (RFC 8693).
    Exchange,
}

impl AuthMode {
    /// The value as written in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::OAuth => "oauth",
            AuthMode::Forward => "forward",
            AuthMode::Exchange => "exchange",
        }
    }
}

/// OAuth 2.1 settings for `mode: oauth`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OAuthSpec {
    /// Issuer URL of the authorization server to use, e.g. `https://idp.example.com`. Default:
    /// discovered from the server's protected-resource metadata (RFC 9728). When set, discovery
    /// must confirm it (exact string match), which pins the server to this issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), pattern(r"^https?://"))]
    pub issuer: Option<String>,

    /// Scopes to request in addition to those the server's challenge asks for, e.g.
    /// `[files:read]`. Each entry is one scope token (no spaces). Default: none extra.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(length(min = 1, max = 256), pattern(r"^[!#-\[\]-~]+$"))
    )]
    pub scopes: Vec<String>,

    /// RFC 8707 resource indicator sent on authorize, token and refresh requests, e.g.
    /// `https://mcp.example.com/mcp`, on the same origin as `url` (scheme, host and port;
    /// reason `ResourceOnAnotherOrigin` otherwise). Default: the server's `url`. Users' tokens are bound to
    /// it: they are sent only to servers of this namespace that declare the same resource (one
    /// sign-in then serves them all), never to servers of other namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), pattern(r"^https?://"))]
    pub resource: Option<String>,

    /// Whether to send the `resource` parameter. Default `true`; set `false` only for
    /// authorization servers that reject it. Then tokens are bound to this server's `url`
    /// and no other server shares them.
    #[serde(default = "default_true")]
    pub send_resource_parameter: bool,

    /// A client registered in advance at the authorization server. Default: none, the gateway
    /// identifies itself with its Client ID Metadata Document URL as `client_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<OAuthClientSpec>,
}

impl Default for OAuthSpec {
    fn default() -> Self {
        Self {
            issuer: None,
            scopes: Vec::new(),
            resource: None,
            send_resource_parameter: true,
            client: None,
        }
    }
}

/// A pre-registered OAuth client.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.tokenEndpointAuthMethod) || has(self.secretRef)")
    .message("tokenEndpointAuthMethod needs secretRef (a public client sends no secret): remove it or add secretRef")
    .reason(Reason::FieldValueForbidden))]
pub struct OAuthClientSpec {
    /// The `client_id` issued by the authorization server, e.g. `my-gateway`.
    #[schemars(length(min = 1, max = 1024))]
    pub id: String,

    /// Secret holding the client secret, in the resource's own namespace. Omit for a public
    /// client (PKCE only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<ClientSecretRef>,

    /// How the client secret is presented at the token endpoint: `client_secret_basic`
    /// (HTTP Basic, the default when `secretRef` is set) or `client_secret_post` (form body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<TokenEndpointAuthMethod>,
}

/// Reference to the key of a Secret holding an OAuth client secret.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClientSecretRef {
    /// Name of a Secret in the same namespace as this resource, e.g. `github-client`.
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Key in the Secret's data holding the client secret. Default `clientSecret`.
    #[serde(default = "default_client_secret_key")]
    #[schemars(length(min = 1, max = 253), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

impl ClientSecretRef {
    pub(crate) fn selector(&self) -> SecretKeySelector<'_> {
        SecretKeySelector {
            name: &self.name,
            key: &self.key,
        }
    }
}

fn default_client_secret_key() -> String {
    "clientSecret".to_owned()
}

// Client authentication method at a token endpoint (RFC 7591 names). A plain comment, not a
// doc comment: kube's schema rewrite would let a type description replace the description of
// every `Option<TokenEndpointAuthMethod>` field that uses it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpointAuthMethod {
    /// HTTP Basic authentication.
    #[default]
    ClientSecretBasic,
    /// Credentials in the form body.
    ClientSecretPost,
}

/// Settings for `mode: exchange`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeSpec {
    /// The TokenExchangePolicy (same namespace) that says where and how to exchange the
    /// caller's token.
    pub policy_ref: PolicyRef,
}

/// Reference to a TokenExchangePolicy in the same namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRef {
    /// Name of a TokenExchangePolicy in the same namespace as this resource, e.g. `cluster-b`.
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
}

/// Settings for `mode: forward`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ForwardSpec {
    /// The caller's token is forwarded only when its `aud` claim contains one of these values,
    /// e.g. `[mcp-cluster-b]`. At least one entry.
    #[schemars(length(min = 1, max = 64), inner(length(min = 1, max = 1024)))]
    pub audiences: Vec<String>,
}

/// Observed state of a `RemoteMCPServer`, written by the controller.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RemoteMCPServerStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Gateway URL that MCP clients use for this server, e.g.
    /// `https://gateway.example.com/mcp/team-a/github`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,

    /// What discovery found out about the server's authorization server (oauth mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_server: Option<AuthorizationServerStatus>,

    /// Current state. `Ready`: registered and usable through the gateway.
    /// `AuthorizationServerDiscovered`: the server's authorization server metadata was fetched
    /// and is usable (oauth mode). One entry per `type`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// Capabilities of the discovered authorization server.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationServerStatus {
    /// Issuer identifier of the authorization server, e.g. `https://idp.example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,

    /// Whether it advertises PKCE with S256 (required: servers without it are refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkce: Option<bool>,

    /// Whether it accepts Client ID Metadata Documents as `client_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cimd: Option<bool>,

    /// Whether it returns the RFC 9207 `iss` parameter on the authorization response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss_parameter: Option<bool>,
}

impl RemoteMCPServer {
    /// Names of the Secrets (same namespace) this resource reads, so a Secret change can
    /// re-trigger it.
    pub fn referenced_secrets(&self) -> Vec<String> {
        self.spec
            .auth
            .oauth
            .as_ref()
            .and_then(|o| o.client.as_ref())
            .and_then(|c| c.secret_ref.as_ref())
            .map(|r| vec![r.name.clone()])
            .unwrap_or_default()
    }

    /// Name of the TokenExchangePolicy (same namespace) this resource uses, if any.
    pub fn referenced_policy(&self) -> Option<&str> {
        self.spec
            .auth
            .exchange
            .as_ref()
            .map(|e| e.policy_ref.name.as_str())
    }
}
