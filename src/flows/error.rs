//! What can go wrong in each step, in terms a page or a JSON-RPC error can explain. Messages
//! name the kind of thing that failed, never a token, code, verifier or flow id.

use crate::identity::IdentityError;
use crate::oauth::{DiscoveryError, IssError, TokenError};
use crate::registry::ServerKey;
use crate::store::StoreError;
use std::sync::Arc;

/// Creating an auth challenge failed.
#[derive(Debug, thiserror::Error)]
pub enum ChallengeError {
    #[error("no remote MCP server {0} is registered")]
    UnknownServer(ServerKey),
    #[error("server {server} uses auth mode {mode}, not oauth")]
    NotOAuth {
        server: ServerKey,
        mode: &'static str,
    },
    #[error("authorization server discovery for {server} failed: {source}")]
    Discovery {
        server: ServerKey,
        #[source]
        source: Box<DiscoveryError>,
    },
    #[error("{0} names no authorization server; set spec.auth.oauth.issuer")]
    NoAuthorizationServer(ServerKey),
    #[error(
        "issuer {issuer} is not among the authorization servers that {server} advertises; \
         fix spec.auth.oauth.issuer"
    )]
    IssuerNotAdvertised { server: ServerKey, issuer: String },
    #[error(
        "the authorization server {issuer} supports neither Client ID Metadata Documents nor a \
         pre-registered client; set spec.auth.oauth.client for {server}"
    )]
    NoClientRegistration { server: ServerKey, issuer: String },
    /// Shared: concurrent requests for one flow all get the error of its one attempt.
    #[error("could not store the pending flow: {0}")]
    Store(#[source] Arc<StoreError>),
}

impl From<StoreError> for ChallengeError {
    fn from(e: StoreError) -> Self {
        ChallengeError::Store(Arc::new(e))
    }
}

/// Signing a browser in at the gateway's own identity provider failed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("no sign-in client")]
    NoClient,
    #[error("{0}")]
    Metadata(#[source] IdentityError),
    #[error("the token request failed: {0}")]
    TokenRequest(#[source] TokenError),
    #[error("the token response carries no id_token (may the client use scope openid?)")]
    NoIdToken,
    #[error("the ID token was refused: {0}")]
    IdToken(#[source] IdentityError),
}

/// `/oauth/connect` failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("this sign-in link is malformed")]
    MalformedFlow,
    #[error("this sign-in link is unknown, expired or already used")]
    UnknownFlow,
    #[error("this sign-in link was already opened in another browser")]
    OtherBrowser,
    #[error("this sign-in link was started by another user")]
    OtherUser,
    #[error("the server this sign-in link was for is no longer registered")]
    ServerGone,
    #[error("the authorization server could not be reached: {0}")]
    Discovery(#[from] DiscoveryError),
    #[error("the gateway's identity provider cannot be used for sign-in: {0}")]
    SignInUnavailable(#[source] SignInError),
    #[error("could not read or update the pending flow: {0}")]
    Store(#[from] StoreError),
}

/// `/oauth/callback` failed.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("the callback carries no state")]
    MissingState,
    #[error("the callback's state is malformed")]
    MalformedState,
    #[error("this browser did not start the sign-in (no binding cookie)")]
    NoBrowserBinding,
    #[error("this sign-in is unknown, expired or already completed")]
    UnknownState,
    #[error("this sign-in was started in another browser")]
    OtherBrowser,
    #[error("the authorization response's issuer is wrong: {0}")]
    Issuer(#[from] IssError),
    #[error("the authorization server refused: {error}")]
    AuthorizationDenied {
        error: String,
        description: Option<String>,
    },
    #[error("the callback carries no authorization code")]
    MissingCode,
    #[error("the server this sign-in was for is no longer registered or no longer uses oauth")]
    ServerGone,
    #[error(
        "this sign-in was started by an older version of the gateway, which did not record the \
         resource the token is for; retry the request to get a new link"
    )]
    UnboundFlow,
    #[error("the authorization server's metadata could not be loaded: {0}")]
    Discovery(#[from] DiscoveryError),
    #[error("the token request failed: {0}")]
    TokenExchange(#[from] TokenError),
    #[error("the token could not be stored: {0}")]
    Store(#[from] StoreError),
    #[error("the browser signed in as another user than the one who started this sign-in")]
    OtherUser,
    #[error("signing in at the gateway's identity provider failed: {0}")]
    SignIn(#[source] SignInError),
}

impl CallbackError {
    /// Stable reason label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            CallbackError::MissingState => "missing_state",
            CallbackError::MalformedState => "malformed_state",
            CallbackError::NoBrowserBinding => "no_browser_binding",
            CallbackError::UnknownState => "unknown_state",
            CallbackError::OtherBrowser => "other_browser",
            CallbackError::Issuer(_) => "iss_mismatch",
            CallbackError::AuthorizationDenied { .. } => "authorization_error",
            CallbackError::MissingCode => "missing_code",
            CallbackError::ServerGone => "server_gone",
            CallbackError::UnboundFlow => "unbound_flow",
            CallbackError::Discovery(_) => "discovery_failed",
            CallbackError::TokenExchange(_) => "token_exchange_failed",
            CallbackError::Store(_) => "store_failed",
            CallbackError::OtherUser => "other_user",
            CallbackError::SignIn(_) => "sign_in_failed",
        }
    }
}
