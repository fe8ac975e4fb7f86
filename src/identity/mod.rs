//! Who is calling the gateway. Every mode turns a request's headers into an [`Authenticated`]
//! caller: `anonymous` (one local user and session), `oidc` (a bearer JWT validated against the
//! configured issuer) or `header` (trusted headers set by an authenticating proxy).

mod caller;

pub use caller::{ANONYMOUS_SESSION, ANONYMOUS_USER, Caller};

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
}

impl Authenticated {
    pub fn without_token(caller: Caller) -> Self {
        Self {
            caller,
            bearer: None,
            audiences: Vec::new(),
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
    #[error("the identity header {0} is missing or invalid")]
    MissingHeader(String),
    #[error("the identity provider's keys cannot be fetched: {0}")]
    Unavailable(String),
}

/// Authenticates callers per the configured identity mode.
#[derive(Debug)]
pub struct Authenticator {
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    Anonymous,
}

impl Authenticator {
    /// `anonymous` mode: every request is the one local caller.
    pub fn anonymous() -> Self {
        Self {
            mode: Mode::Anonymous,
        }
    }

    /// Whether callers present a bearer token (the gateway then publishes RFC 9728 metadata and
    /// answers unauthenticated calls with 401).
    pub fn requires_bearer(&self) -> bool {
        match self.mode {
            Mode::Anonymous => false,
        }
    }

    /// Who sent a request with these headers.
    pub async fn authenticate(&self, _headers: &HeaderMap) -> Result<Authenticated, IdentityError> {
        match self.mode {
            Mode::Anonymous => Ok(Authenticated::without_token(Caller::anonymous())),
        }
    }
}
