//! The programmatic API of the gateway's OAuth side (the seed's `Manager`): register servers,
//! create auth challenges, run the browser flow's two steps, hand out (refreshed) tokens, delete
//! tokens, and notify a completion hook. The HTTP handlers are thin wrappers around it. Tokens
//! are obtained, refreshed and bound by [`crate::credentials::oauth`], which it shares.

mod callback;
mod challenge;
mod config;
mod connect;
mod error;
mod logout;
mod sign_in;
mod status;

pub use callback::{CallbackParams, CallbackSuccess};
pub use challenge::AuthChallenge;
pub use config::{CimdScope, ManagerConfig};
pub use error::{CallbackError, ChallengeError, ConnectError};
pub use logout::{LogoutError, LogoutReport, LogoutScope, RevocationFailure};
pub use sign_in::{SIGN_IN_STATE_PREFIX, sign_in_flow};
pub use status::{START_PATH, ServerAuthStatus, StatusError};

use crate::credentials::CredentialSources;
use crate::metrics::Metrics;
use crate::oauth::{Discovery, TokenClient};
use crate::registry::{Registry, ServerKey, ServerRegistration};
use crate::store::{FlowId, FlowStore, StoreError, TokenStore};
use dashmap::DashSet;
use futures::future::BoxFuture;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// What the completion hook is told after a flow stored its token.
#[derive(Debug, Clone)]
pub struct CompletionEvent {
    pub server: ServerKey,
    pub session: String,
    pub user: String,
    pub issuer: String,
}

/// Called after every successful callback (for example to mark a session authorized). It runs
/// after the token is stored; its failure is logged, the stored token stays.
pub type CompletionHook =
    Arc<dyn Fn(CompletionEvent) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The gateway's OAuth client side.
pub struct Manager {
    cfg: ManagerConfig,
    registry: Arc<Registry>,
    tokens: Arc<dyn TokenStore>,
    flows: Arc<dyn FlowStore>,
    discovery: Discovery,
    token_client: TokenClient,
    metrics: Arc<Metrics>,
    /// The credentials stage: the `oauth` mode's tokens (stored by the flows, learned issuers)
    /// and the exchanger (sign-out forgets a user's exchanged tokens).
    credentials: Arc<CredentialSources>,
    /// One pending flow per (session, server, challenged scope), so concurrent requests share it.
    pending: moka::future::Cache<(String, ServerKey, String), FlowId>,
    hook: RwLock<Option<CompletionHook>>,
    /// Every scope a flow has requested, for the Client ID Metadata Document.
    scopes_seen: DashSet<String>,
}

/// Bound on remembered scopes (they come from remote servers' challenges).
const MAX_SCOPES_SEEN: usize = 1000;

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("public_url", &self.cfg.public_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// The token store, discovery and token client are `credentials`' own (see
    /// [`crate::credentials::OAuthTokens`]).
    pub fn new(
        cfg: ManagerConfig,
        registry: Arc<Registry>,
        flows: Arc<dyn FlowStore>,
        credentials: Arc<CredentialSources>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let pending_ttl = Duration::from_secs(crate::store::FLOW_TTL_SECS.saturating_sub(60));
        let oauth = credentials.oauth();
        Self {
            discovery: oauth.discovery().clone(),
            token_client: oauth.token_client().clone(),
            tokens: oauth.store().clone(),
            credentials,
            registry,
            flows,
            metrics,
            pending: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(pending_ttl)
                .support_invalidation_closures()
                .build(),
            hook: RwLock::new(None),
            scopes_seen: DashSet::new(),
            cfg,
        }
    }

    /// The credentials stage this manager shares (tokens, exchanger).
    pub fn credentials(&self) -> &Arc<CredentialSources> {
        &self.credentials
    }

    pub fn config(&self) -> &ManagerConfig {
        &self.cfg
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// The `scope` of our Client ID Metadata Document (`None`: omit the field). Authorization
    /// servers may treat it as the scopes this client is allowed to request, so by default it
    /// lists every scope configured on a registered server and those a flow requested that
    /// [`crate::oauth::cimd::advertisable_scopes`] lets through (never a remote server's own).
    pub fn advertised_scope(&self) -> Option<String> {
        match &self.cfg.cimd_scope {
            CimdScope::Omit => return None,
            CimdScope::Fixed(s) => return Some(s.clone()),
            CimdScope::Auto => {}
        }
        let mut all: Vec<String> = Vec::new();
        for reg in self.registry.snapshot().servers.values() {
            if let crate::registry::AuthSettings::OAuth(o) = &reg.auth {
                all.extend(o.scopes.iter().cloned());
            }
        }
        all.extend(self.scopes_seen.iter().map(|s| s.clone()));
        Some(crate::store::normalize_scope(&all))
    }

    pub(crate) fn remember_scopes(&self, scopes: &[String]) {
        for s in scopes {
            if self.scopes_seen.len() >= MAX_SCOPES_SEEN {
                break;
            }
            self.scopes_seen.insert(s.clone());
        }
    }

    /// Register (or replace) a remote server.
    pub fn register_server(&self, reg: ServerRegistration) {
        self.registry.upsert_server(reg);
    }

    /// Remove a remote server; returns whether it was registered.
    pub fn unregister_server(&self, key: &ServerKey) -> bool {
        self.registry.remove_server(key)
    }

    /// Set the hook called after each completed flow (replacing any previous one).
    pub fn set_completion_hook(&self, hook: CompletionHook) {
        if let Ok(mut slot) = self.hook.write() {
            *slot = Some(hook);
        }
    }

    fn completion_hook(&self) -> Option<CompletionHook> {
        self.hook.read().ok().and_then(|h| h.clone())
    }

    /// Drop every token of a session (sign-out on this device).
    pub async fn delete_tokens_by_session(&self, session: &str) -> Result<usize, StoreError> {
        self.tokens.delete_by_session(session).await
    }

    /// Drop every token of a user in every session (sign-out everywhere).
    pub async fn delete_tokens_by_user(&self, user: &str) -> Result<usize, StoreError> {
        self.tokens.delete_by_user(user).await
    }

    /// Drop a session's tokens for one issuer.
    pub async fn delete_tokens_by_issuer(
        &self,
        session: &str,
        issuer: &str,
    ) -> Result<usize, StoreError> {
        self.tokens.delete_by_issuer(session, issuer).await
    }

    /// Direct access to the token store (status pages, tests).
    pub fn token_store(&self) -> &Arc<dyn TokenStore> {
        &self.tokens
    }

    /// Direct access to the flow store (tests, diagnostics).
    pub fn flow_store(&self) -> &Arc<dyn FlowStore> {
        &self.flows
    }
}
