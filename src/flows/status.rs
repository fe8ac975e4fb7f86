//! The caller's per-server authorization status (`/oauth/status`): for every registered
//! server its auth mode and, for `oauth` servers, whether the caller's session holds a usable
//! token (expiry, refresh token, granted scope) or needs to authorize, with a link to start.
//!
//! Reading the status creates no flow: the link points at `/oauth/start`, which creates (or
//! reuses) the pending flow only when the user follows it. One store round trip reads the
//! session's tokens; issuers are the pinned or already learned ones, and are discovered (with
//! bounded concurrency, then remembered) only when the session holds tokens to match.

use super::{Flows, START_PATH};
use crate::credentials::OAuthTokens;
use crate::identity::Caller;
use crate::registry::{AuthSettings, ServerKey, ServerRegistration};
use crate::store::ranking::best_for_binding;
use crate::store::{StoreError, TokenKey, TokenRecord};
use crate::time::unix_now;
use futures::StreamExt as _;
use serde::Serialize;
use std::sync::Arc;

/// Issuer discoveries run in parallel up to this many.
const DISCOVERY_CONCURRENCY: usize = 8;

/// One server as the caller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerAuthStatus {
    /// `namespace/name`.
    pub server: String,
    /// `none`, `oauth`, `forward` or `exchange`.
    pub mode: &'static str,
    /// The authorization server (pinned or learned); `None` when not known yet.
    pub issuer: Option<String>,
    /// The session holds a usable token (unexpired, or refreshable).
    pub authorized: bool,
    /// Unix seconds when the access token expires (`None`: unknown or no token).
    pub expires_at: Option<u64>,
    pub has_refresh_token: bool,
    /// The scope the authorization server granted.
    pub scopes: Option<String>,
    /// An `oauth` server without a usable token: the user must authorize.
    pub needs_authorization: bool,
    /// Where to start that authorization (present exactly when `needs_authorization`).
    pub connect_url: Option<String>,
    /// Why the state could not be fully determined (for example: discovery failed).
    pub error: Option<String>,
}

/// Reading the status failed.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("token storage failed: {0}")]
    Store(#[from] StoreError),
}

/// The status line of one server, given its issuer (if known) and the session's entries.
fn status_of(
    reg: &ServerRegistration,
    issuer: Option<String>,
    error: Option<String>,
    entries: &[(TokenKey, TokenRecord)],
    connect_url: impl FnOnce() -> String,
    now: u64,
) -> ServerAuthStatus {
    let mut status = ServerAuthStatus {
        server: reg.key.to_string(),
        mode: reg.auth.mode_name(),
        issuer: None,
        authorized: false,
        expires_at: None,
        has_refresh_token: false,
        scopes: None,
        needs_authorization: false,
        connect_url: None,
        error,
    };
    let AuthSettings::OAuth(settings) = &reg.auth else {
        return status;
    };
    let token = issuer.as_ref().and_then(|i| {
        let binding = OAuthTokens::token_binding(reg, settings, i.clone());
        best_for_binding(entries, &binding, now)
    });
    status.issuer = issuer;
    match token {
        Some(t) => {
            status.authorized = true;
            status.expires_at = t.expires_at;
            status.has_refresh_token = t.refresh_token.is_some();
            status.scopes = t.granted_scope.clone();
        }
        None => {
            status.needs_authorization = true;
            status.connect_url = Some(connect_url());
        }
    }
    status
}

impl Flows {
    /// The authorization status of `caller` for every registered server, sorted by server.
    pub(super) async fn auth_status(
        &self,
        caller: &Caller,
    ) -> Result<Vec<ServerAuthStatus>, StatusError> {
        let entries: Vec<(TokenKey, TokenRecord)> = self
            .tokens
            .all_for_session(&caller.session)
            .await?
            .into_iter()
            .filter(|(_, r)| r.user == caller.user)
            .collect();
        let snapshot = self.registry.snapshot();
        // Owned items: a stream over borrowed ones trips the `Send` check of axum handlers.
        let mut servers: Vec<Arc<ServerRegistration>> =
            snapshot.servers.values().cloned().collect();
        servers.sort_by(|a, b| a.key.cmp(&b.key));
        let now = unix_now();
        let lines: Vec<ServerAuthStatus> = futures::stream::iter(servers)
            .map(|reg| {
                let entries = &entries;
                async move {
                    let (issuer, error) = self.known_issuer(&reg, !entries.is_empty()).await;
                    status_of(
                        &reg,
                        issuer,
                        error,
                        entries,
                        || self.start_url(&reg.key),
                        now,
                    )
                }
            })
            .buffered(DISCOVERY_CONCURRENCY)
            .collect()
            .await;
        Ok(lines)
    }

    /// `{public_url}/oauth/start?server=namespace/name`.
    fn start_url(&self, server: &ServerKey) -> String {
        let mut url = self.cfg.url_for(START_PATH);
        url.query_pairs_mut()
            .append_pair("server", &server.to_string());
        url.to_string()
    }

    /// The issuer of an `oauth` server: pinned, learned, or (when `discover` — the session has
    /// tokens to match) discovered from its protected-resource metadata and remembered. A
    /// discovery failure is returned as the second value, for the status line.
    async fn known_issuer(
        &self,
        reg: &ServerRegistration,
        discover: bool,
    ) -> (Option<String>, Option<String>) {
        let AuthSettings::OAuth(settings) = &reg.auth else {
            return (None, None);
        };
        if let Some(i) = &settings.issuer {
            return (Some(i.clone()), None);
        }
        if let Some(i) = self.credentials.oauth().learned_issuer(reg) {
            return (Some(i), None);
        }
        if !discover {
            return (None, None);
        }
        match self
            .discovery
            .protected_resource(&reg.url, None, &settings.resource)
            .await
        {
            Ok(found) => {
                let issuer = found.metadata.authorization_servers.first().cloned();
                if let Some(i) = &issuer {
                    self.credentials.oauth().learn_issuer(reg, i.clone());
                }
                (issuer, None)
            }
            Err(e) => (
                None,
                Some(format!("authorization server discovery failed: {e}")),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{ClientIdentity, OAuthSettings};
    use crate::store::TokenBinding;
    use secrecy::SecretString;

    fn record(issuer: &str, at: &str, exp: Option<u64>, rt: bool) -> TokenRecord {
        TokenRecord {
            access_token: SecretString::from(at.to_owned()),
            token_type: "Bearer".into(),
            refresh_token: rt.then(|| SecretString::from("rt".to_owned())),
            expires_at: exp,
            granted_scope: Some("mcp:tools".into()),
            issuer: issuer.into(),
            client_id: "c".into(),
            user: "alice".into(),
            obtained_at: 0,
        }
    }

    /// An entry bound to `reg`'s binding for `issuer`.
    fn entry(issuer: &str, scope: &str, r: TokenRecord) -> (TokenKey, TokenRecord) {
        (TokenKey::new("s", binding(issuer), scope), r)
    }

    fn binding(issuer: &str) -> TokenBinding {
        TokenBinding::new(issuer, "team-a", "https://mcp.example.com/mcp")
    }

    fn reg(auth: AuthSettings) -> ServerRegistration {
        ServerRegistration {
            key: ServerKey::new("team-a", "github"),
            url: url::Url::parse("https://mcp.example.com/mcp").expect("url"),
            auth,
            generation: 1,
            forward_headers: Vec::new(),
        }
    }

    fn oauth() -> AuthSettings {
        AuthSettings::OAuth(OAuthSettings {
            issuer: None,
            scopes: vec![],
            resource: "https://mcp.example.com/mcp".into(),
            send_resource: true,
            client: ClientIdentity::Cimd,
        })
    }

    #[test]
    fn best_entry_skips_dead_ones_and_prefers_the_latest_expiry() {
        let now = 1000;
        let entries = vec![
            entry(
                "https://a",
                "x",
                record("https://a", "at1", Some(500), false),
            ),
            entry(
                "https://a",
                "y",
                record("https://a", "at2", Some(2000), true),
            ),
            entry(
                "https://a",
                "z",
                record("https://a", "at3", Some(3000), false),
            ),
            entry(
                "https://b",
                "x",
                record("https://b", "at4", Some(9000), true),
            ),
        ];
        let best = best_for_binding(&entries, &binding("https://a"), now).expect("a token");
        assert_eq!(best.expires_at, Some(3000));
        assert!(best_for_binding(&entries[..1], &binding("https://a"), now).is_none());
        assert!(best_for_binding(&entries, &binding("https://c"), now).is_none());
        // An expired access token with a refresh token still counts (it will be refreshed).
        let refreshable = vec![entry(
            "https://a",
            "x",
            record("https://a", "at", Some(10), true),
        )];
        assert!(best_for_binding(&refreshable, &binding("https://a"), now).is_some());
    }

    #[test]
    fn a_token_bound_elsewhere_does_not_authorize_the_server() {
        let now = 1000;
        let elsewhere = [
            TokenBinding::new("https://a", "team-b", "https://mcp.example.com/mcp"),
            TokenBinding::new("https://a", "team-a", "https://other.example.com/mcp"),
        ];
        for b in elsewhere {
            let entries = vec![(
                TokenKey::new("s", b.clone(), "mcp:tools"),
                record("https://a", "at", Some(5000), true),
            )];
            let s = status_of(
                &reg(oauth()),
                Some("https://a".into()),
                None,
                &entries,
                || "link".into(),
                now,
            );
            assert!(!s.authorized && s.needs_authorization, "{b:?}");
        }
    }

    #[test]
    fn an_oauth_server_with_a_token_is_authorized() {
        let entries = vec![entry(
            "https://a",
            "mcp:tools",
            record("https://a", "at", Some(5000), true),
        )];
        let s = status_of(
            &reg(oauth()),
            Some("https://a".into()),
            None,
            &entries,
            || unreachable!("no link for an authorized server"),
            1000,
        );
        assert!(s.authorized && !s.needs_authorization);
        assert_eq!(s.server, "team-a/github");
        assert_eq!(s.mode, "oauth");
        assert_eq!(s.expires_at, Some(5000));
        assert!(s.has_refresh_token);
        assert_eq!(s.scopes.as_deref(), Some("mcp:tools"));
        assert_eq!(s.connect_url, None);
    }

    #[test]
    fn without_a_token_or_issuer_authorization_is_needed_with_a_link() {
        let s = status_of(&reg(oauth()), None, None, &[], || "link".into(), 1000);
        assert!(!s.authorized && s.needs_authorization);
        assert_eq!(s.connect_url.as_deref(), Some("link"));
        assert_eq!(s.issuer, None);
    }

    #[test]
    fn other_modes_need_no_authorization() {
        let s = status_of(&reg(AuthSettings::None), None, None, &[], || "x".into(), 0);
        assert_eq!(s.mode, "none");
        assert!(!s.authorized && !s.needs_authorization && s.connect_url.is_none());
    }

    #[test]
    fn status_serialises_with_stable_field_names() {
        let s = status_of(&reg(oauth()), None, None, &[], || "l".into(), 0);
        let v = serde_json::to_value(&s).expect("json");
        for f in [
            "server",
            "mode",
            "issuer",
            "authorized",
            "expires_at",
            "has_refresh_token",
            "scopes",
            "needs_authorization",
            "connect_url",
            "error",
        ] {
            assert!(v.get(f).is_some(), "missing {f}");
        }
    }
}
