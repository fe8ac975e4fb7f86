//! The credentials step: what to send upstream for one caller and one remote server, per the
//! server's auth mode, and what to do when the remote server refuses it.
//!
//! - `none`: nothing.
//! - `oauth`: the caller's stored token bound to the server (its issuer, namespace and
//!   resource), refreshed near expiry by the [`Manager`]; none stored → the user must
//!   authorize. A refusal acts on the refused token's own entry only.
//! - `forward`: the caller's own token when its audience is allowed ([`super::forward`]).
//! - `exchange`: the caller's token exchanged (RFC 8693) per the server's `TokenExchangePolicy`
//!   by the manager's [`crate::exchange::Exchanger`] (cached); a refused exchanged token is
//!   evicted and exchanged again once.

use super::error::GatewayError;
use super::upstream::headers;
use crate::exchange::Exchanged;
use crate::identity::{Authenticated, Caller};
use crate::manager::{AccessToken, Manager};
use crate::registry::{
    AuthSettings, ExchangeSettings, PolicyRegistration, ServerKey, ServerRegistration,
};
use crate::store::TokenRecord;
use crate::telemetry::short;
use http::HeaderValue;
use secrecy::ExposeSecret as _;
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
            Credentials::OAuth(token) => headers::bearer(token.value.expose_secret()),
            Credentials::Forwarded(value) => Some(value.clone()),
            Credentials::Exchanged(ex) => headers::bearer(ex.token.expose_secret()),
            Credentials::Anonymous | Credentials::AuthorizationRequired => None,
        }
    }
}

/// The credentials for `caller` at `reg`.
pub async fn resolve(
    manager: &Manager,
    reg: &ServerRegistration,
    auth: &Authenticated,
) -> Result<Credentials, GatewayError> {
    match &reg.auth {
        AuthSettings::None => Ok(Credentials::Anonymous),
        AuthSettings::OAuth(_) => match manager.get_token(&reg.key, &auth.caller).await {
            Ok(Some(token)) => Ok(Credentials::OAuth(token)),
            Ok(None) => Ok(Credentials::AuthorizationRequired),
            Err(source) => Err(GatewayError::token(&reg.key, source)),
        },
        AuthSettings::Forward(settings) => super::forward::credentials(&reg.key, settings, auth),
        AuthSettings::Exchange(settings) => {
            let (policy, subject) = exchange_inputs(manager, &reg.key, settings, auth)?;
            manager
                .exchanger()
                .exchange(&policy, &auth.caller.user, subject)
                .await
                .map(Credentials::Exchanged)
                .map_err(|source| exchange_error(&reg.key, &policy, source))
        }
    }
}

/// The remote server answered 401 to an exchanged token: evict it from the cache and exchange
/// again (once; the caller decides about further retries).
pub async fn after_exchange_rejection(
    manager: &Manager,
    reg: &ServerRegistration,
    auth: &Authenticated,
    rejected: &Exchanged,
) -> Result<Credentials, GatewayError> {
    let AuthSettings::Exchange(settings) = &reg.auth else {
        return Err(GatewayError::UpstreamRejected {
            server: reg.key.clone(),
            status: 401,
            mode: reg.auth.mode_name(),
        });
    };
    let (policy, subject) = exchange_inputs(manager, &reg.key, settings, auth)?;
    tracing::info!(server = %reg.key, policy = %policy.key, "remote server rejected the exchanged token; exchanging again");
    manager
        .exchanger()
        .after_rejection(&policy, &auth.caller.user, subject, rejected)
        .await
        .map(Credentials::Exchanged)
        .map_err(|source| exchange_error(&reg.key, &policy, source))
}

/// The remote server refused the re-exchanged token too: drop it, so that the next request
/// exchanges afresh instead of replaying it.
pub async fn drop_exchanged(manager: &Manager, rejected: &Exchanged) {
    manager.exchanger().evict(rejected).await;
}

/// The policy of an exchange-mode server and the caller's token to exchange.
fn exchange_inputs<'a>(
    manager: &Manager,
    server: &ServerKey,
    settings: &ExchangeSettings,
    auth: &'a Authenticated,
) -> Result<(Arc<PolicyRegistration>, &'a secrecy::SecretString), GatewayError> {
    let Some(subject) = &auth.bearer else {
        return Err(GatewayError::ExchangeWithoutToken {
            server: server.clone(),
        });
    };
    // Policies are looked up in the server's own namespace only.
    let policy_key = ServerKey::new(server.namespace.clone(), settings.policy.clone());
    let policy = manager.registry().policy(&policy_key).ok_or_else(|| {
        GatewayError::ExchangePolicyMissing {
            server: server.clone(),
            policy: policy_key,
        }
    })?;
    Ok((policy, subject))
}

fn exchange_error(
    server: &ServerKey,
    policy: &PolicyRegistration,
    source: crate::exchange::ExchangeError,
) -> GatewayError {
    GatewayError::Exchange {
        server: server.clone(),
        policy: policy.key.clone(),
        source: Box::new(source),
    }
}

/// The remote server answered 401 to `rejected`: stop using that access token. When its entry
/// (and only its entry: the one it was read from, bound to this server) still holds it and has
/// a refresh token, it is marked expired so that the next [`Manager::get_token`] refreshes it
/// (a revoked access token with a live grant needs no new login); without a refresh token it
/// is deleted. Returns the credentials to try next.
pub async fn after_rejection(
    manager: &Manager,
    server: &ServerKey,
    caller: &Caller,
    rejected: &AccessToken,
) -> Result<Credentials, GatewayError> {
    let token_err = |e: crate::store::StoreError| GatewayError::token(server, e);
    let store = manager.token_store();
    if let Some(record) = still_stored(manager, caller, rejected)
        .await
        .map_err(token_err)?
    {
        if record.refresh_token.is_some() {
            store
                .put(&rejected.key, expired(record))
                .await
                .map_err(token_err)?;
            tracing::info!(server = %server, session = %short(&caller.session), "remote server rejected the access token; refreshing it");
        } else {
            store.delete(&rejected.key).await.map_err(token_err)?;
            tracing::info!(server = %server, session = %short(&caller.session), "remote server rejected the access token; dropped it");
        }
    }
    match manager.get_token(server, caller).await {
        // The same token again (e.g. the store would not take the change): do not loop.
        Ok(Some(t)) if t.value.expose_secret() == rejected.value.expose_secret() => {
            Ok(Credentials::AuthorizationRequired)
        }
        Ok(Some(t)) => Ok(Credentials::OAuth(t)),
        Ok(None) => Ok(Credentials::AuthorizationRequired),
        Err(source) => Err(GatewayError::token(server, source)),
    }
}

/// Drop the token the remote server refused twice (after a refresh, too): the grant is useless.
pub async fn drop_token(
    manager: &Manager,
    server: &ServerKey,
    caller: &Caller,
    rejected: &AccessToken,
) -> Result<(), GatewayError> {
    let token_err = |e: crate::store::StoreError| GatewayError::token(server, e);
    if still_stored(manager, caller, rejected)
        .await
        .map_err(token_err)?
        .is_some()
    {
        manager
            .token_store()
            .delete(&rejected.key)
            .await
            .map_err(token_err)?;
        tracing::info!(server = %server, session = %short(&caller.session), "remote server rejected the refreshed token too; dropped it");
    }
    Ok(())
}

/// The record `rejected` was read from, if it still holds that very access token and belongs to
/// `caller` (a concurrent refresh or login that replaced it wins; nothing of another user's is
/// ever touched).
async fn still_stored(
    manager: &Manager,
    caller: &Caller,
    rejected: &AccessToken,
) -> Result<Option<TokenRecord>, crate::store::StoreError> {
    let record = manager.token_store().get(&rejected.key).await?;
    Ok(record.filter(|r| {
        r.user == caller.user
            && rejected.key.session == caller.session
            && r.access_token.expose_secret() == rejected.value.expose_secret()
    }))
}

/// `record` with its access token marked expired (the refresh token is kept).
fn expired(mut record: TokenRecord) -> TokenRecord {
    record.expires_at = Some(0);
    record
}

/// The scopes `token` was obtained with (requested and granted), for a step-up that must not
/// lose them.
pub async fn current_scopes(
    manager: &Manager,
    token: &AccessToken,
) -> Result<Vec<String>, crate::store::StoreError> {
    let granted = manager
        .token_store()
        .get(&token.key)
        .await?
        .and_then(|r| r.granted_scope);
    let mut scopes: Vec<String> = Vec::new();
    for s in token
        .key
        .scope
        .split_whitespace()
        .chain(granted.as_deref().unwrap_or("").split_whitespace())
    {
        if !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_owned());
        }
    }
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn only_oauth_tokens_become_an_authorization_header() {
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

    #[test]
    fn expiring_keeps_the_refresh_token() {
        let record = TokenRecord {
            access_token: SecretString::from("a".to_owned()),
            token_type: "Bearer".into(),
            refresh_token: Some(SecretString::from("r".to_owned())),
            expires_at: Some(u64::MAX),
            granted_scope: None,
            issuer: "https://idp".into(),
            client_id: "c".into(),
            user: "u".into(),
            obtained_at: 1,
        };
        let e = expired(record);
        assert!(e.expires_within(1, 0));
        assert_eq!(
            e.refresh_token.as_ref().map(|r| r.expose_secret()),
            Some("r")
        );
    }
}
