//! Validated, resolved registrations: what a `RemoteMCPServer` / `TokenExchangePolicy` becomes
//! once its spec has been checked and its Secret references read. Downstream code takes these,
//! never the raw spec ("parse, don't validate").

use secrecy::SecretString;
use std::fmt;
use url::Url;

/// `namespace/name` of a resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerKey {
    pub namespace: String,
    pub name: String,
}

impl ServerKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A remote MCP server the gateway may call.
#[derive(Debug, Clone)]
pub struct ServerRegistration {
    pub key: ServerKey,
    /// Streamable HTTP endpoint of the remote server.
    pub url: Url,
    pub auth: AuthSettings,
    /// `metadata.generation` of the source resource (0 when unknown).
    pub generation: i64,
    /// Request headers passed from the caller beyond the gateway's allowlist
    /// (`spec.forwardHeaders`, validated).
    pub forward_headers: Vec<http::HeaderName>,
}

/// How the gateway authenticates to the remote server.
#[derive(Debug, Clone)]
pub enum AuthSettings {
    /// No credentials are sent.
    None,
    /// Per-user OAuth 2.1 authorization-code flow run by the gateway.
    OAuth(OAuthSettings),
    /// The caller's own token is forwarded when its audience is allowed.
    Forward(ForwardSettings),
    /// The caller's token is exchanged (RFC 8693) per a `TokenExchangePolicy`.
    Exchange(ExchangeSettings),
}

impl AuthSettings {
    pub fn mode_name(&self) -> &'static str {
        match self {
            AuthSettings::None => "none",
            AuthSettings::OAuth(_) => "oauth",
            AuthSettings::Forward(_) => "forward",
            AuthSettings::Exchange(_) => "exchange",
        }
    }
}

#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// Issuer pinned by the resource author; when `None` it is discovered from the server's
    /// protected-resource metadata. Compared by exact string equality.
    pub issuer: Option<String>,
    /// Scopes to request in addition to those the server's challenge asks for.
    pub scopes: Vec<String>,
    /// RFC 8707 resource indicator (default: the server URL).
    pub resource: String,
    /// Whether to send `resource` on authorize, token and refresh requests.
    pub send_resource: bool,
    pub client: ClientIdentity,
}

impl OAuthSettings {
    /// The resource the server's tokens are bound to: the RFC 8707 `resource` when it is sent
    /// (so servers of one namespace that declare the same `resource` share their users'
    /// tokens: explicit single sign-on), else the server's own URL (the authorization server
    /// was told nothing, so the token is this one server's alone).
    pub fn token_resource<'a>(&'a self, url: &'a Url) -> &'a str {
        if self.send_resource {
            &self.resource
        } else {
            url.as_str()
        }
    }
}

/// Who the gateway is towards the authorization server.
#[derive(Debug, Clone)]
pub enum ClientIdentity {
    /// Public client identified by our Client ID Metadata Document URL.
    Cimd,
    /// A client registered in advance at the authorization server.
    PreRegistered(PreRegisteredClient),
}

#[derive(Debug, Clone)]
pub struct PreRegisteredClient {
    pub client_id: String,
    /// `None` for a public pre-registered client.
    pub client_secret: Option<SecretString>,
    pub auth_method: ClientAuthMethod,
}

/// How a confidential client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuthMethod {
    /// `client_secret_basic` (HTTP Basic).
    #[default]
    Basic,
    /// `client_secret_post` (credentials in the form body).
    Post,
}

#[derive(Debug, Clone)]
pub struct ForwardSettings {
    /// The caller's token is forwarded only when its `aud` contains one of these.
    pub audiences: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ExchangeSettings {
    /// Name of a `TokenExchangePolicy` in the server's own namespace.
    pub policy: String,
}

/// A validated `TokenExchangePolicy` (RFC 8693 exchange at a remote identity provider).
#[derive(Debug, Clone)]
pub struct PolicyRegistration {
    pub key: ServerKey,
    pub token_endpoint: Url,
    /// Issuer the exchanged token must carry (explicit, or derived from the token endpoint).
    pub expected_issuer: String,
    pub connector_id: Option<String>,
    pub audience: Option<String>,
    pub resource: Option<String>,
    pub scopes: Vec<String>,
    pub subject_token_type: SubjectTokenType,
    pub requested_token_type: Option<String>,
    pub client_auth: Option<PolicyClientAuth>,
    pub allow_private_networks: bool,
    pub generation: i64,
    /// Whether `token_endpoint` was checked against the expected issuer's metadata (the
    /// controller does so before registering the policy). When false (`serve --manifests`,
    /// where no controller runs), the gateway runs that check itself before the first exchange
    /// and refuses to send a caller's token to an endpoint that fails it.
    pub endpoint_verified: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectTokenType {
    #[default]
    IdToken,
    AccessToken,
}

impl SubjectTokenType {
    pub fn urn(self) -> &'static str {
        match self {
            SubjectTokenType::IdToken => "urn:ietf:params:oauth:token-type:id_token",
            SubjectTokenType::AccessToken => "urn:ietf:params:oauth:token-type:access_token",
        }
    }
}

/// Client authentication towards a token-exchange endpoint.
#[derive(Debug, Clone)]
pub enum PolicyClientAuth {
    Secret {
        client_id: String,
        client_secret: SecretString,
        method: ClientAuthMethod,
    },
    MutualTls {
        client_id: Option<String>,
        cert_pem: SecretString,
        key_pem: SecretString,
    },
}
