//! Creating an auth challenge: work out which authorization server and scopes the flow needs,
//! record a pending flow, and hand back a link to our own `/oauth/connect`.

use super::{ChallengeError, Flows};
use crate::identity::Caller;
use crate::oauth::{ProtectedResourceMetadata, parse_bearer, select_scopes};
use crate::registry::{AuthSettings, ClientIdentity, OAuthSettings, ServerKey, ServerRegistration};
use crate::store::{FLOW_TTL_SECS, FlowId, PendingFlow};
use crate::telemetry::short;
use crate::time::unix_now;
use serde::Serialize;
use std::sync::Arc;

/// What a client is told when the user must authorize a server. Serialises to
/// `{"status":"auth_required","auth_url":…,"server_name":…,"message":…}`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuthChallenge {
    pub status: &'static str,
    pub auth_url: String,
    pub server_name: String,
    pub message: String,
}

impl Flows {
    /// Create (or reuse) the pending flow for `caller` and `server`.
    ///
    /// `www_authenticate` is the remote server's 401/403 header when there was one; its
    /// `resource_metadata` and `scope` steer discovery and the requested scopes.
    pub async fn create_auth_challenge(
        &self,
        server: &ServerKey,
        caller: &Caller,
        www_authenticate: Option<&str>,
    ) -> Result<AuthChallenge, ChallengeError> {
        let reg = self
            .registry
            .server(server)
            .ok_or_else(|| ChallengeError::UnknownServer(server.clone()))?;
        let AuthSettings::OAuth(settings) = &reg.auth else {
            return Err(ChallengeError::NotOAuth {
                server: server.clone(),
                mode: reg.auth.mode_name(),
            });
        };
        // A malformed header is not fatal: discovery falls back to the well-known locations.
        let challenge = www_authenticate.and_then(|h| match parse_bearer(h) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(server = %server, error = %e, "ignoring malformed WWW-Authenticate");
                None
            }
        });
        let challenge_scope = challenge
            .as_ref()
            .and_then(|c| c.scope.clone())
            .unwrap_or_default();
        let hint = challenge.as_ref().and_then(|c| c.resource_metadata.clone());

        let pending_key = (
            caller.session.clone(),
            server.clone(),
            challenge_scope.clone(),
        );
        // Concurrent requests for the same user and server share one flow.
        let id = self
            .pending
            .try_get_with(pending_key.clone(), async {
                self.new_flow(&reg, settings, caller, &challenge_scope, hint.as_deref())
                    .await
            })
            .await
            .map_err(unwrap_shared)?;
        // A cached flow may have been completed or expired meanwhile: then start a new one.
        let id = match self.flows.get(&id).await? {
            Some(_) => id,
            None => {
                self.pending.invalidate(&pending_key).await;
                let id = self
                    .new_flow(&reg, settings, caller, &challenge_scope, hint.as_deref())
                    .await?;
                self.pending.insert(pending_key, id.clone()).await;
                id
            }
        };
        Ok(AuthChallenge {
            status: "auth_required",
            auth_url: self.cfg.connect_url(id.as_str()).to_string(),
            server_name: server.to_string(),
            message: format!(
                "Authorization is required to use {server}. Open the link in your browser, sign \
                 in, then retry."
            ),
        })
    }

    async fn new_flow(
        &self,
        reg: &ServerRegistration,
        settings: &OAuthSettings,
        caller: &Caller,
        challenge_scope: &str,
        hint: Option<&str>,
    ) -> Result<FlowId, ChallengeError> {
        let server = &reg.key;
        let discovery_err = |source| ChallengeError::Discovery {
            server: server.clone(),
            source: Box::new(source),
        };
        // The protected-resource metadata names the authorization server(s). When the resource
        // pins an issuer, the metadata is optional but must agree if present.
        let prm = match self
            .discovery
            .protected_resource(&reg.url, hint, &settings.resource)
            .await
        {
            Ok(found) => {
                if let Some(e) = &found.hint_error {
                    tracing::debug!(server = %server, error = %e, "resource_metadata hint failed; used a well-known location");
                }
                Some(found.metadata)
            }
            Err(e) if settings.issuer.is_some() => {
                tracing::debug!(server = %server, error = %e, "no protected-resource metadata; using the configured issuer");
                None
            }
            Err(e) => return Err(discovery_err(e)),
        };
        let issuer = choose_issuer(server, settings, prm.as_ref())?;
        let md = self
            .discovery
            .authorization_server(&issuer)
            .await
            .map_err(discovery_err)?;
        if matches!(settings.client, ClientIdentity::Cimd)
            && !md.client_id_metadata_document_supported
        {
            return Err(ChallengeError::NoClientRegistration {
                server: server.clone(),
                issuer,
            });
        }
        let prm_scopes = prm
            .as_ref()
            .map(|p| p.scopes_supported.clone())
            .unwrap_or_default();
        let scopes = select_scopes(
            (!challenge_scope.is_empty()).then_some(challenge_scope),
            &settings.scopes,
            &prm_scopes,
            &md.scopes_supported,
        );
        self.credentials.oauth().learn_issuer(reg, issuer.clone());
        // Not `scopes` whole: the challenge and the resource metadata are the remote server's
        // words; the authorization server's own metadata vouches for what it will be asked.
        self.remember_scopes(&crate::oauth::cimd::advertisable_scopes(
            &scopes,
            &settings.scopes,
            &md.scopes_supported,
        ));

        let now = unix_now();
        let flow = PendingFlow {
            session: caller.session.clone(),
            user: caller.user.clone(),
            server: server.clone(),
            issuer,
            scopes,
            resource: settings.send_resource.then(|| settings.resource.clone()),
            token_resource: settings.token_resource(&reg.url).to_owned(),
            created_at: now,
            expires_at: now + FLOW_TTL_SECS,
            browser: None,
            pkce_verifier: None,
        };
        let id = FlowId::generate();
        self.flows.insert(&id, flow).await?;
        self.counters.flow_started(&server.to_string());
        tracing::info!(
            server = %server,
            session = %short(&caller.session),
            flow = %id.short(),
            "authorization required; flow created"
        );
        Ok(id)
    }
}

/// The configured issuer (which must be advertised when metadata exists), else the first
/// authorization server the protected resource names.
fn choose_issuer(
    server: &ServerKey,
    settings: &OAuthSettings,
    prm: Option<&ProtectedResourceMetadata>,
) -> Result<String, ChallengeError> {
    match (&settings.issuer, prm) {
        (Some(issuer), Some(prm)) => {
            if prm.authorization_servers.iter().any(|a| a == issuer) {
                Ok(issuer.clone())
            } else {
                Err(ChallengeError::IssuerNotAdvertised {
                    server: server.clone(),
                    issuer: issuer.clone(),
                })
            }
        }
        (Some(issuer), None) => Ok(issuer.clone()),
        (None, Some(prm)) => prm
            .authorization_servers
            .first()
            .cloned()
            .ok_or_else(|| ChallengeError::NoAuthorizationServer(server.clone())),
        (None, None) => Err(ChallengeError::NoAuthorizationServer(server.clone())),
    }
}

/// moka shares one loader error between all waiters behind an `Arc`; give each caller its own.
fn unwrap_shared(e: Arc<ChallengeError>) -> ChallengeError {
    match Arc::try_unwrap(e) {
        Ok(e) => e,
        Err(shared) => match &*shared {
            ChallengeError::UnknownServer(k) => ChallengeError::UnknownServer(k.clone()),
            ChallengeError::NoAuthorizationServer(k) => {
                ChallengeError::NoAuthorizationServer(k.clone())
            }
            ChallengeError::NotOAuth { server, mode } => ChallengeError::NotOAuth {
                server: server.clone(),
                mode,
            },
            ChallengeError::IssuerNotAdvertised { server, issuer } => {
                ChallengeError::IssuerNotAdvertised {
                    server: server.clone(),
                    issuer: issuer.clone(),
                }
            }
            ChallengeError::NoClientRegistration { server, issuer } => {
                ChallengeError::NoClientRegistration {
                    server: server.clone(),
                    issuer: issuer.clone(),
                }
            }
            ChallengeError::Discovery { server, source } => ChallengeError::Discovery {
                server: server.clone(),
                source: source.clone(),
            },
            ChallengeError::Store(e) => ChallengeError::Store(e.clone()),
        },
    }
}
