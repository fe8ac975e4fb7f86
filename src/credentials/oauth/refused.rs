//! What a remote server's refusal of an `oauth` token changes in the token store. Only the
//! refused token's own entry is ever touched (the one it was read from, bound to the refusing
//! server, of the calling user), and only while it still holds that very token: a concurrent
//! refresh or login that replaced it wins.

use super::{AccessToken, OAuthTokens, TokenAccessError};
use crate::identity::Caller;
use crate::registry::{OAuthSettings, ServerKey, ServerRegistration};
use crate::store::{StoreError, TokenRecord};
use crate::telemetry::short;
use secrecy::ExposeSecret as _;

impl OAuthTokens {
    /// The remote server answered 401 to `rejected`: stop using that access token. When its
    /// entry still holds it and has a refresh token, it is marked expired so that the next read
    /// refreshes it (a revoked access token with a live grant needs no new login); without a
    /// refresh token it is deleted. Returns the token to try next (`None`: the user must
    /// authorize).
    pub(super) async fn after_rejection(
        &self,
        reg: &ServerRegistration,
        settings: &OAuthSettings,
        caller: &Caller,
        rejected: &AccessToken,
    ) -> Result<Option<AccessToken>, TokenAccessError> {
        let server = &reg.key;
        if let Some(record) = self.still_stored(caller, rejected).await? {
            if record.refresh_token.is_some() {
                self.tokens.put(&rejected.key, expired(record)).await?;
                tracing::info!(server = %server, session = %short(&caller.session), "remote server rejected the access token; refreshing it");
            } else {
                self.tokens.delete(&rejected.key).await?;
                tracing::info!(server = %server, session = %short(&caller.session), "remote server rejected the access token; dropped it");
            }
        }
        match self.token(reg, settings, caller).await? {
            // The same token again (e.g. the store would not take the change): do not loop.
            Some(t) if t.value.expose_secret() == rejected.value.expose_secret() => Ok(None),
            next => Ok(next),
        }
    }

    /// Drop the token the remote server refused twice (after a refresh, too): the grant is
    /// useless.
    pub(super) async fn drop_token(
        &self,
        server: &ServerKey,
        caller: &Caller,
        rejected: &AccessToken,
    ) -> Result<(), StoreError> {
        if self.still_stored(caller, rejected).await?.is_some() {
            self.tokens.delete(&rejected.key).await?;
            tracing::info!(server = %server, session = %short(&caller.session), "remote server rejected the refreshed token too; dropped it");
        }
        Ok(())
    }

    /// The record `rejected` was read from, if it still holds that very access token and
    /// belongs to `caller` (nothing of another user's is ever touched).
    async fn still_stored(
        &self,
        caller: &Caller,
        rejected: &AccessToken,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let record = self.tokens.get(&rejected.key).await?;
        Ok(record.filter(|r| {
            r.user == caller.user
                && rejected.key.session == caller.session
                && r.access_token.expose_secret() == rejected.value.expose_secret()
        }))
    }

    /// The scopes `token` was obtained with (requested and granted), for a step-up that must
    /// not lose them.
    pub(super) async fn current_scopes(
        &self,
        token: &AccessToken,
    ) -> Result<Vec<String>, StoreError> {
        let granted = self
            .tokens
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
}

/// `record` with its access token marked expired (the refresh token is kept).
fn expired(mut record: TokenRecord) -> TokenRecord {
    record.expires_at = Some(0);
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

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
