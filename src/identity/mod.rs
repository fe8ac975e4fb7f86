//! Who is calling the gateway. Every mode turns a request's headers into an [`Authenticated`]
//! caller: `anonymous` (one local user and session), `oidc` (a bearer JWT validated against the
//! configured issuer) or `header` (trusted headers set by an authenticating proxy).

mod bearer;
mod caller;
mod challenge;
pub mod header;
pub mod oidc;
mod rejection;
mod settings;

pub use bearer::bearer_token;
pub use caller::{ANONYMOUS_SESSION, ANONYMOUS_USER, Caller};
pub use challenge::{
    PROTECTED_RESOURCE_PATH, resource_for, resource_metadata_url, unauthorized, www_authenticate,
};
pub use header::HeaderConfig;
pub use oidc::{AudienceTarget, OidcAuthenticator, OidcConfig, SignInClient};
pub use rejection::TokenRejection;
pub use settings::{IdentityMode, IdentitySettings, from_settings};

use crate::net::OutboundClient;
use http::HeaderMap;
use secrecy::SecretString;

/// The result of authenticating one request.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub caller: Caller,
    /// The caller's own bearer token (`oidc` mode), for `forward` and `exchange` servers.
    pub bearer: Option<SecretString>,
    /// The `aud` values of that token (empty when there is no token).
    pub audiences: Vec<String>,
    /// Those of `audiences` that would let the token be used at this gateway (its public URL,
    /// any URL below it, a configured audience). A token with any is never forwarded.
    pub gateway_audiences: Vec<String>,
}

impl Authenticated {
    pub fn without_token(caller: Caller) -> Self {
        Self {
            caller,
            bearer: None,
            audiences: Vec::new(),
            gateway_audiences: Vec::new(),
        }
    }
}

/// Why a request could not be authenticated. Messages name the problem, never a token.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("no bearer token in the Authorization header")]
    MissingToken,
    #[error("the bearer token was rejected: {0}")]
    InvalidToken(String),
    /// A presented bearer token failed validation, for a specific reason.
    #[error("the bearer token was rejected: {0}")]
    Rejected(TokenRejection),
    #[error("the identity header {0} is missing or invalid")]
    MissingHeader(String),
    #[error("the identity provider's keys cannot be fetched: {0}")]
    Unavailable(String),
}

/// Why an identity configuration cannot be used (a start-up error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "identity mode oidc (the default of `run`) needs an issuer: set --oidc-issuer / \
         MCPOAUTH_OIDC_ISSUER, or choose another mode with --identity anonymous|header"
    )]
    MissingIssuer,
    #[error("the oidc issuer is not usable: {0}")]
    InvalidIssuer(String),
    #[error(
        "identity mode oidc accepts no audience: set --oidc-audience or a public URL for the gateway"
    )]
    NoAudience,
    #[error("signature algorithm {0} cannot be used to validate inbound tokens")]
    UnsupportedAlgorithm(String),
    #[error("the oidc JWKS URI is not usable: {0}")]
    InvalidJwksUri(String),
    #[error("`{0}` is not a valid HTTP header name")]
    InvalidHeaderName(String),
    #[error("the oidc sign-in client is not usable: {0}")]
    SignInClient(String),
}

/// Authenticates callers per the configured identity mode.
#[derive(Debug)]
pub struct Authenticator {
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    Anonymous,
    Oidc(Box<OidcAuthenticator>),
    Header(HeaderConfig),
}

impl Authenticator {
    /// `anonymous` mode: every request is the one local caller.
    pub fn anonymous() -> Self {
        Self {
            mode: Mode::Anonymous,
        }
    }

    /// `oidc` mode: callers present a bearer JWT of `cfg.issuer`, validated against its JWKS
    /// (fetched with `client` on first use).
    pub fn oidc(cfg: OidcConfig, client: OutboundClient) -> Result<Self, ConfigError> {
        Ok(Self {
            mode: Mode::Oidc(Box::new(OidcAuthenticator::new(cfg, client)?)),
        })
    }

    /// `header` mode: an authenticating proxy in front names the caller in headers. Only safe
    /// behind a proxy that strips client-supplied copies of them (see [`header`]).
    pub fn header(cfg: HeaderConfig) -> Self {
        Self {
            mode: Mode::Header(cfg),
        }
    }

    /// Whether callers present a bearer token (the gateway then publishes RFC 9728 metadata and
    /// answers unauthenticated calls with 401).
    pub fn requires_bearer(&self) -> bool {
        match self.mode {
            Mode::Anonymous | Mode::Header(_) => false,
            Mode::Oidc(_) => true,
        }
    }

    /// The mode's name as on the command line (`anonymous`, `oidc`, `header`).
    /// Request headers that carry the caller's identity (`header` mode): they are the gateway's
    /// input and never go on to a remote server, which might trust the same names.
    pub fn identity_headers(&self) -> Vec<http::HeaderName> {
        match &self.mode {
            Mode::Header(cfg) => std::iter::once(cfg.user_header.clone())
                .chain(cfg.session_header.clone())
                .collect(),
            Mode::Anonymous | Mode::Oidc(_) => Vec::new(),
        }
    }

    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            Mode::Anonymous => "anonymous",
            Mode::Oidc(_) => "oidc",
            Mode::Header(_) => "header",
        }
    }

    /// The `oidc` mode validator, for the protected-resource metadata and metrics.
    pub fn oidc_validator(&self) -> Option<&OidcAuthenticator> {
        match &self.mode {
            Mode::Oidc(o) => Some(o),
            Mode::Anonymous | Mode::Header(_) => None,
        }
    }

    /// The issuer callers log in at (`oidc` mode).
    pub fn issuer(&self) -> Option<&str> {
        self.oidc_validator().map(OidcAuthenticator::issuer)
    }

    /// The `oidc` validator when browsers must sign in before following a sign-in link
    /// (`--oidc-client-id` is set).
    pub fn sign_in(&self) -> Option<&OidcAuthenticator> {
        self.oidc_validator()
            .filter(|o| o.sign_in_client().is_some())
    }

    /// The gateway user a *browser* request comes from, where the mode can tell: in `header`
    /// mode the authenticating proxy names the user on browser requests too. `None` in
    /// `anonymous` mode (one user) and `oidc` mode (browsers carry no bearer token), and when
    /// the proxy names nobody.
    pub fn browser_user<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        match &self.mode {
            Mode::Header(cfg) => cfg.user(headers),
            Mode::Anonymous | Mode::Oidc(_) => None,
        }
    }

    /// Who sent a request with these headers to the gateway as a whole (`/oauth/*`): in
    /// `oidc` mode a token for the gateway's public URL or a configured audience, not one for a
    /// single server.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Authenticated, IdentityError> {
        self.authenticate_at(headers, AudienceTarget::Gateway).await
    }

    /// Who sent a request with these headers to `target` (see [`AudienceTarget`]: in `oidc`
    /// mode a server's path accepts the gateway-wide audiences, that server's own URL, and the
    /// audiences its resource names as its own).
    pub async fn authenticate_at(
        &self,
        headers: &HeaderMap,
        target: AudienceTarget<'_>,
    ) -> Result<Authenticated, IdentityError> {
        match &self.mode {
            Mode::Anonymous => Ok(Authenticated::without_token(Caller::anonymous())),
            Mode::Oidc(oidc) => oidc.authenticate(headers, target).await,
            Mode::Header(cfg) => cfg.caller(headers).map(Authenticated::without_token),
        }
    }
}
