//! Sign-out: drop the caller's tokens (this session, or every session of the user) and revoke
//! them at their authorization servers (RFC 7009) where those offer revocation. A revocation
//! problem is reported and logged (never the token), but the local delete always happens: the
//! user asked for the gateway to forget the tokens, and it must not keep them because an IdP is
//! down.

use super::Flows;
use crate::identity::Caller;
use crate::oauth::{ClientCredentials, RevocationOutcome, TokenTypeHint, revoke_token_set};
use crate::registry::{AuthSettings, ClientIdentity};
use crate::store::{StoreError, TokenKey, TokenRecord};
use crate::telemetry::short;
use crate::time::unix_now;
use futures::StreamExt as _;
use serde::Serialize;

/// Revocations run in parallel up to this many token sets (bounded: one user, few issuers).
const REVOKE_CONCURRENCY: usize = 4;

/// Which sessions a sign-out covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogoutScope {
    /// The caller's session only.
    Session,
    /// Every session of the caller's user.
    Everywhere,
}

/// One token the authorization server did not confirm as revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevocationFailure {
    pub issuer: String,
    /// `refresh_token` or `access_token`.
    pub token_type: &'static str,
    /// What went wrong (an error class or the server's error code; never a token).
    pub reason: String,
}

/// What a sign-out did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogoutReport {
    pub scope: LogoutScope,
    /// Token entries deleted from the gateway's store.
    pub removed: usize,
    /// Tokens the authorization server confirmed as revoked.
    pub revoked: usize,
    /// Tokens that cannot be revoked (no revocation endpoint, or a token type the server does
    /// not revoke, such as self-contained JWT access tokens); they simply expire.
    pub not_revocable: usize,
    /// Deleted entries that were not revoked: stored after the tokens to revoke were read
    /// (a flow completing during the logout). Normally 0.
    pub not_revoked: usize,
    pub failures: Vec<RevocationFailure>,
}

/// Sign-out failed: the tokens could not be read or deleted (revocation problems are not
/// errors; they are in [`LogoutReport::failures`]).
#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    #[error("token storage failed: {0}")]
    Store(#[from] StoreError),
}

/// The tally of revocation outcomes for one sign-out.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    revoked: usize,
    not_revocable: usize,
    failures: Vec<RevocationFailure>,
}

impl Tally {
    fn add(&mut self, issuer: &str, hint: TokenTypeHint, outcome: Outcome) {
        match outcome {
            Outcome::Done(RevocationOutcome::Revoked) => self.revoked += 1,
            Outcome::Done(RevocationOutcome::NoEndpoint)
            | Outcome::Done(RevocationOutcome::UnsupportedTokenType) => self.not_revocable += 1,
            Outcome::Done(RevocationOutcome::Failed(e)) => self.failures.push(RevocationFailure {
                issuer: issuer.to_owned(),
                token_type: hint_name(hint),
                reason: e.to_string(),
            }),
            Outcome::NoMetadata(reason) => self.failures.push(RevocationFailure {
                issuer: issuer.to_owned(),
                token_type: hint_name(hint),
                reason,
            }),
        }
    }
}

/// One token's revocation, including "the authorization server's metadata could not be read".
#[derive(Debug)]
enum Outcome {
    Done(RevocationOutcome),
    NoMetadata(String),
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Done(o) => o.label(),
            Outcome::NoMetadata(_) => "failed",
        }
    }
}

fn hint_name(hint: TokenTypeHint) -> &'static str {
    match hint {
        TokenTypeHint::RefreshToken => "refresh_token",
        TokenTypeHint::AccessToken => "access_token",
    }
}

/// The client credentials to revoke a token obtained by `client_id` at `issuer`.
///
/// A pre-registered client's secret is used only when a registered server pins (or has been
/// seen to use) exactly that issuer with that client id: a secret must never be sent to another
/// authorization server. Otherwise the gateway identifies as a public client (our CIMD URL, or a
/// client that is no longer configured) with `client_id` only.
fn credentials_for<'a>(
    client_id: &str,
    issuer: &str,
    servers: impl IntoIterator<Item = (Option<&'a str>, &'a ClientIdentity)>,
) -> ClientCredentials {
    servers
        .into_iter()
        .find_map(|(server_issuer, identity)| match identity {
            ClientIdentity::PreRegistered(c)
                if c.client_id == client_id && server_issuer == Some(issuer) =>
            {
                Some(ClientCredentials {
                    client_id: c.client_id.clone(),
                    client_secret: c.client_secret.clone(),
                    method: c.auth_method,
                })
            }
            _ => None,
        })
        .unwrap_or_else(|| ClientCredentials::public(client_id))
}

impl Flows {
    /// Sign `caller` out: of this session, or (`everywhere`) of every session of the user.
    ///
    /// This session's tokens are read first, then the local delete runs, then each token set is
    /// revoked at its issuer (refresh token, then the access token while it is unexpired) with
    /// the client it was obtained with. The delete's error, if any, is returned after the
    /// revocations were attempted.
    pub async fn logout(
        &self,
        caller: &Caller,
        everywhere: bool,
    ) -> Result<LogoutReport, LogoutError> {
        let entries = self.tokens_to_revoke(caller, everywhere).await?;
        let deleted = if everywhere {
            // Exchanged tokens are cached per user (not per session): only a sign-out
            // everywhere drops them; they are not stored and have no refresh token to revoke.
            self.credentials.forget_user(&caller.user);
            self.tokens.delete_by_user(&caller.user).await
        } else {
            self.tokens.delete_by_session(&caller.session).await
        };
        let tally = self.revoke_entries(&entries, &caller.session).await;
        let removed = deleted?;
        let scope = if everywhere {
            LogoutScope::Everywhere
        } else {
            LogoutScope::Session
        };
        // Entries stored between our read and the delete were removed but not revoked.
        let not_revoked = removed.saturating_sub(entries.len());
        tracing::info!(
            session = %short(&caller.session),
            ?scope,
            removed,
            revoked = tally.revoked,
            failed = tally.failures.len(),
            "signed out"
        );
        Ok(LogoutReport {
            scope,
            removed,
            revoked: tally.revoked,
            not_revocable: tally.not_revocable,
            not_revoked,
            failures: tally.failures,
        })
    }

    /// The caller's tokens: of this session, or (`everywhere`) of every session the user index
    /// names, each filtered by owner (a session may hold other users' entries).
    async fn tokens_to_revoke(
        &self,
        caller: &Caller,
        everywhere: bool,
    ) -> Result<Vec<(TokenKey, TokenRecord)>, LogoutError> {
        let mut sessions = vec![caller.session.clone()];
        if everywhere {
            for s in self.tokens.sessions_of_user(&caller.user).await? {
                if !sessions.contains(&s) {
                    sessions.push(s);
                }
            }
        }
        let mut entries = Vec::new();
        for session in &sessions {
            entries.extend(
                self.tokens
                    .all_for_session(session)
                    .await?
                    .into_iter()
                    .filter(|(_, r)| r.user == caller.user),
            );
        }
        Ok(entries)
    }

    async fn revoke_entries(&self, entries: &[(TokenKey, TokenRecord)], session: &str) -> Tally {
        // Owned items: a stream over borrowed ones trips the `Send` check of axum handlers.
        let records: Vec<TokenRecord> = entries.iter().map(|(_, r)| r.clone()).collect();
        let results: Vec<(String, Vec<(TokenTypeHint, Outcome)>)> = futures::stream::iter(records)
            .map(|record| async move {
                let outcomes = self.revoke_record(&record).await;
                (record.issuer, outcomes)
            })
            .buffer_unordered(REVOKE_CONCURRENCY)
            .collect()
            .await;
        let mut tally = Tally::default();
        for (issuer, outcomes) in results {
            for (hint, outcome) in outcomes {
                self.counters.revocation(outcome.label());
                if let Outcome::Done(RevocationOutcome::Failed(e)) = &outcome {
                    tracing::warn!(issuer = %issuer, session = %short(session), token_type = hint_name(hint), error = %e, "token revocation failed; the gateway's copy is deleted anyway");
                }
                if let Outcome::NoMetadata(reason) = &outcome {
                    tracing::warn!(issuer = %issuer, session = %short(session), token_type = hint_name(hint), error = %reason, "cannot revoke: authorization server metadata unavailable; the gateway's copy is deleted anyway");
                }
                tally.add(&issuer, hint, outcome);
            }
        }
        tally
    }

    /// Revoke one stored token set at its issuer.
    async fn revoke_record(&self, record: &TokenRecord) -> Vec<(TokenTypeHint, Outcome)> {
        // An expired access token is dead already; revoking it would only add a request.
        let access = (!record.expires_within(unix_now(), 0)).then_some(&record.access_token);
        let refresh = record.refresh_token.as_ref();
        let md = match self.discovery.authorization_server(&record.issuer).await {
            Ok(md) => md,
            Err(e) => {
                let reason = format!("authorization server metadata unavailable: {e}");
                let mut out = Vec::new();
                if refresh.is_some() {
                    out.push((
                        TokenTypeHint::RefreshToken,
                        Outcome::NoMetadata(reason.clone()),
                    ));
                }
                if access.is_some() {
                    out.push((TokenTypeHint::AccessToken, Outcome::NoMetadata(reason)));
                }
                return out;
            }
        };
        let creds = self.revocation_credentials(record);
        let done = revoke_token_set(&self.token_client, &md, &creds, refresh, access).await;
        done.outcomes()
            .map(|(hint, o)| (hint, Outcome::Done(o.clone())))
            .collect()
    }

    /// See [`credentials_for`]; a server's issuer is the pinned one or the one learned from it.
    fn revocation_credentials(&self, record: &TokenRecord) -> ClientCredentials {
        if record.client_id == self.cfg.cimd_client_id() {
            return ClientCredentials::public(record.client_id.clone());
        }
        let snapshot = self.registry.snapshot();
        let servers: Vec<(Option<String>, &ClientIdentity)> = snapshot
            .servers
            .values()
            .filter_map(|reg| match &reg.auth {
                AuthSettings::OAuth(s) => {
                    let issuer = s
                        .issuer
                        .clone()
                        .or_else(|| self.credentials.oauth().learned_issuer(reg));
                    Some((issuer, &s.client))
                }
                _ => None,
            })
            .collect();
        credentials_for(
            &record.client_id,
            &record.issuer,
            servers.iter().map(|(i, c)| (i.as_deref(), *c)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::TokenError;
    use crate::registry::{ClientAuthMethod, PreRegisteredClient};
    use secrecy::{ExposeSecret as _, SecretString};

    fn pre(id: &str, secret: &str) -> ClientIdentity {
        ClientIdentity::PreRegistered(PreRegisteredClient {
            client_id: id.to_owned(),
            client_secret: Some(SecretString::from(secret.to_owned())),
            auth_method: ClientAuthMethod::Post,
        })
    }

    #[test]
    fn a_secret_is_used_only_for_its_own_issuer() {
        let a = pre("gw", "secret-a");
        let b = pre("gw", "secret-b");
        let servers = [(Some("https://a"), &a), (Some("https://b"), &b)];
        let creds = credentials_for("gw", "https://b", servers);
        assert_eq!(creds.client_id, "gw");
        assert_eq!(
            creds.client_secret.as_ref().map(|s| s.expose_secret()),
            Some("secret-b")
        );
        assert_eq!(creds.method, ClientAuthMethod::Post);
        // Same client id at an issuer no server names: public, no secret sent.
        let creds = credentials_for("gw", "https://c", servers);
        assert!(creds.client_secret.is_none());
        // Issuer unknown (not pinned, not learned): no secret either.
        let creds = credentials_for("gw", "https://a", [(None, &a)]);
        assert!(creds.client_secret.is_none());
        // A CIMD client or one that is no longer configured: client_id only.
        let creds = credentials_for("https://gw/cimd", "https://a", [(Some("https://a"), &a)]);
        assert_eq!(creds.client_id, "https://gw/cimd");
        assert!(creds.client_secret.is_none());
    }

    #[test]
    fn tally_counts_and_reports_failures_without_tokens() {
        let mut t = Tally::default();
        t.add(
            "https://a",
            TokenTypeHint::RefreshToken,
            Outcome::Done(RevocationOutcome::Revoked),
        );
        t.add(
            "https://a",
            TokenTypeHint::AccessToken,
            Outcome::Done(RevocationOutcome::UnsupportedTokenType),
        );
        t.add(
            "https://b",
            TokenTypeHint::AccessToken,
            Outcome::Done(RevocationOutcome::NoEndpoint),
        );
        t.add(
            "https://c",
            TokenTypeHint::RefreshToken,
            Outcome::Done(RevocationOutcome::Failed(TokenError::Unavailable)),
        );
        t.add(
            "https://d",
            TokenTypeHint::AccessToken,
            Outcome::NoMetadata("metadata unavailable".into()),
        );
        assert_eq!(t.revoked, 1);
        assert_eq!(t.not_revocable, 2);
        assert_eq!(t.failures.len(), 2);
        assert_eq!(t.failures[0].issuer, "https://c");
        assert_eq!(t.failures[0].token_type, "refresh_token");
        assert!(t.failures[0].reason.contains("503"));
        assert_eq!(t.failures[1].token_type, "access_token");
    }
}
