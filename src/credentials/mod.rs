//! The credentials stage of a request: what to send to one remote server for one caller, per the
//! server's auth mode, and what to do (once) when the remote server refuses it.
//!
//! Each auth mode is one [`CredentialSource`] in a module of its own:
//! - [`none`] mode: nothing.
//! - [`oauth`] mode: the caller's stored token bound to the server (its issuer, namespace and
//!   resource), refreshed near expiry; none stored → the user must authorize. A refusal acts on
//!   the refused token's own entry only.
//! - [`forward`] mode: the caller's own token when its audience is allowed.
//! - [`exchange`] mode: the caller's token exchanged (RFC 8693) per the server's
//!   `TokenExchangePolicy` (cached); a refused exchanged token is evicted and exchanged again
//!   once.
//!
//! [`CredentialSources`] holds one source per mode and picks a registration's source in one
//! `match` (`with_source!`). The dispatch is static: the hot path (a stored token the remote
//! server accepts) pays no allocation or virtual call for it.
//!
//! Adding an auth mode: its settings as a variant of [`AuthSettings`] (from its CRD field), a
//! module here with a type implementing [`CredentialSource`] for those settings, a field for it
//! in [`CredentialSources`] and its arm in `with_source!`. If the mode must remember what it sent
//! (to act on a refusal), a [`Credentials`] variant for it.

pub mod error;
pub mod exchange;
pub mod forward;
pub mod none;
pub mod oauth;

pub use error::CredentialsError;
pub use oauth::{AccessToken, OAuthTokens};

use crate::identity::Authenticated;
use crate::net::headers::bearer;
use crate::registry::{AuthSettings, Registry, ServerRegistration};
use exchange::{Exchanged, Exchanger};
use http::HeaderValue;
use secrecy::ExposeSecret as _;
use std::future::Future;
use std::sync::Arc;

/// What to send upstream.
#[derive(Debug)]
pub enum Credentials {
    /// No credentials (auth mode `none`).
    Anonymous,
    /// The caller's OAuth token for this server.
    OAuth(AccessToken),
    /// `oauth` mode without a usable token: the user must authorize first.
    AuthorizationRequired,
    /// `forward` mode: the caller's own token (its audience checked), as a header value.
    Forwarded(HeaderValue),
    /// `exchange` mode: a token obtained by RFC 8693 exchange of the caller's token.
    Exchanged(Exchanged),
}

impl Credentials {
    /// The `Authorization` header value to send, if any.
    pub fn authorization(&self) -> Option<HeaderValue> {
        match self {
            Credentials::OAuth(token) => bearer(token.value.expose_secret()),
            Credentials::Forwarded(value) => Some(value.clone()),
            Credentials::Exchanged(ex) => bearer(ex.token.expose_secret()),
            Credentials::Anonymous | Credentials::AuthorizationRequired => None,
        }
    }
}

/// How a remote server refused the credentials it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 401: the credential is not (or no longer) accepted.
    Unauthorized,
    /// 403 `insufficient_scope`: the credential lacks scopes.
    InsufficientScope,
}

/// What to do after a refusal.
#[derive(Debug)]
pub enum AfterRefusal {
    /// Send the request again with these (the leg does so once).
    Retry(Credentials),
    /// The user must authorize (again) at the gateway: answer with the auth challenge.
    Authorize,
    /// The user may authorize again for more scopes: `granted` are those the refused token was
    /// obtained with (requested and granted), which the new authorization keeps.
    StepUp { granted: Vec<String> },
    /// Nothing this mode can do: the refusal stands.
    Stands,
}

/// One auth mode's source of credentials.
pub trait CredentialSource: Send + Sync {
    /// The mode's settings in a registration (its [`AuthSettings`] variant).
    type Settings: Sync;

    /// The credentials to send for `auth` to `server`.
    fn get(
        &self,
        server: &ServerRegistration,
        settings: &Self::Settings,
        auth: &Authenticated,
    ) -> impl Future<Output = Result<Credentials, CredentialsError>> + Send;

    /// `server` refused `refused` (which this source returned); what to do next. `retried`:
    /// `refused` was already the second attempt (a source then never asks for a retry; it
    /// cleans up what it handed out instead).
    fn refused(
        &self,
        server: &ServerRegistration,
        settings: &Self::Settings,
        auth: &Authenticated,
        refused: &Credentials,
        refusal: Refusal,
        retried: bool,
    ) -> impl Future<Output = Result<AfterRefusal, CredentialsError>> + Send;
}

/// Every auth mode's source, built once at start-up and shared (the gateway's requests, the
/// browser flows' sign-out and the controller's policy status read it).
#[derive(Debug)]
pub struct CredentialSources {
    none: none::NoCredentials,
    oauth: Arc<OAuthTokens>,
    forward: forward::ForwardToken,
    exchange: exchange::ExchangeSource,
}

/// The one place a registration's auth mode picks its source: binds `$source` and `$settings`
/// for `$auth`'s mode and evaluates `$body` with them.
macro_rules! with_source {
    ($sources:expr, $auth:expr, |$source:ident, $settings:ident| $body:expr) => {
        match $auth {
            AuthSettings::None => {
                let ($source, $settings) = (&$sources.none, &());
                $body
            }
            AuthSettings::OAuth(s) => {
                let ($source, $settings) = (&*$sources.oauth, s);
                $body
            }
            AuthSettings::Forward(s) => {
                let ($source, $settings) = (&$sources.forward, s);
                $body
            }
            AuthSettings::Exchange(s) => {
                let ($source, $settings) = (&$sources.exchange, s);
                $body
            }
        }
    };
}

impl CredentialSources {
    /// `registry` is where exchange-mode servers find their policies.
    pub fn new(
        registry: Arc<Registry>,
        oauth: Arc<OAuthTokens>,
        exchanger: Arc<Exchanger>,
    ) -> Self {
        Self {
            none: none::NoCredentials,
            oauth,
            forward: forward::ForwardToken,
            exchange: exchange::ExchangeSource::new(registry, exchanger),
        }
    }

    /// The `oauth` mode's tokens (shared with the browser flows, which store them).
    pub fn oauth(&self) -> &Arc<OAuthTokens> {
        &self.oauth
    }

    /// The `exchange` mode's exchanger (its cache counts feed the policies' status).
    pub fn exchanger(&self) -> &Arc<Exchanger> {
        self.exchange.exchanger()
    }

    /// The credentials to send for `auth` to `server`, per its auth mode.
    pub async fn get(
        &self,
        server: &ServerRegistration,
        auth: &Authenticated,
    ) -> Result<Credentials, CredentialsError> {
        with_source!(self, &server.auth, |source, settings| source
            .get(server, settings, auth)
            .await)
    }

    /// `server` refused `refused`: what its auth mode does about it (see
    /// [`CredentialSource::refused`]).
    pub async fn refused(
        &self,
        server: &ServerRegistration,
        auth: &Authenticated,
        refused: &Credentials,
        refusal: Refusal,
        retried: bool,
    ) -> Result<AfterRefusal, CredentialsError> {
        with_source!(self, &server.auth, |source, settings| source
            .refused(server, settings, auth, refused, refusal, retried)
            .await)
    }

    /// Forget every credential cached for `user` outside the token store (sign-out everywhere):
    /// its exchanged tokens.
    pub fn forget_user(&self, user: &str) {
        self.exchange.exchanger().invalidate_user(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn only_tokens_become_an_authorization_header() {
        let token = AccessToken {
            value: SecretString::from("tok-123".to_owned()),
            token_type: "bearer".into(),
            expires_at: None,
            key: crate::store::TokenKey::new(
                "s",
                crate::store::TokenBinding::new("https://idp", "ns", "https://mcp"),
                "",
            ),
        };
        let h = Credentials::OAuth(token).authorization().expect("header");
        assert_eq!(h, "Bearer tok-123");
        assert!(h.is_sensitive());
        assert!(Credentials::Anonymous.authorization().is_none());
        assert!(Credentials::AuthorizationRequired.authorization().is_none());
    }
}
