//! The browser flow: create the auth challenge that starts a flow, then connect (bind the
//! browser, optionally sign it in first), callback (redeem the code, store the token), and the
//! caller's status and sign-out pages. [`Flows`] does the work; [`routes`] are its thin HTTP
//! handlers, which [`crate::http`] mounts behind its origin checks and rate limit.
//!
//! The callback path, top to bottom: `routes::callback` reads the query and the flow's cookie
//! → `Flows::callback_binding` (which browser, which user) → `Flows::complete_callback` (or,
//! for a sign-in `state`, `Flows::complete_sign_in`) → [`crate::oauth`] (metadata, `iss`, token
//! request) → [`crate::store::TokenStore::put`] → the completion hook.
//!
//! Getting, refreshing and binding stored tokens, the issuers learned per server and the token
//! exchanger belong to the credentials stage ([`crate::credentials`]), which the flows share:
//! a callback stores the token the `oauth` source then hands out.

mod callback;
mod challenge;
mod config;
mod connect;
mod error;
mod logout;
mod metrics;
pub mod routes;
mod sign_in;
mod status;

pub use callback::{CallbackParams, CallbackSuccess};
pub use challenge::AuthChallenge;
pub use config::{CimdScope, FlowsConfig};
pub use error::{CallbackError, ChallengeError, ConnectError, SignInError};
pub use logout::{LogoutError, LogoutReport, LogoutScope, RevocationFailure};
pub use metrics::FlowMetrics;
pub use routes::{FlowRoutes, START_PATH, Site, routes};
pub use sign_in::{SIGN_IN_STATE_PREFIX, sign_in_flow};
pub use status::{ServerAuthStatus, StatusError};

use crate::credentials::CredentialSources;
use crate::metrics::Metrics;
use crate::oauth::{Discovery, TokenClient};
use crate::registry::{Registry, ServerKey};
use crate::store::{FlowId, FlowStore, TokenStore};
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

/// The browser flow.
pub struct Flows {
    cfg: FlowsConfig,
    registry: Arc<Registry>,
    tokens: Arc<dyn TokenStore>,
    flows: Arc<dyn FlowStore>,
    discovery: Discovery,
    token_client: TokenClient,
    /// Flows started, completed and failed; revocations at sign-out.
    counters: FlowMetrics,
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

impl std::fmt::Debug for Flows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flows")
            .field("public_url", &self.cfg.public_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Flows {
    /// The flow over `registry`'s servers. The token store, discovery and token client are
    /// `credentials`' own (see [`crate::credentials::OAuthTokens`]); the flow's metrics are
    /// registered in `metrics`.
    pub fn new(
        cfg: FlowsConfig,
        registry: Arc<Registry>,
        flows: Arc<dyn FlowStore>,
        credentials: Arc<CredentialSources>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let counters = FlowMetrics::default();
        counters.register(&metrics);
        let pending_ttl = Duration::from_secs(crate::store::FLOW_TTL_SECS.saturating_sub(60));
        let oauth = credentials.oauth();
        Self {
            discovery: oauth.discovery().clone(),
            token_client: oauth.token_client().clone(),
            tokens: oauth.store().clone(),
            credentials,
            registry,
            flows,
            counters,
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

    /// The credentials stage the flows share (tokens, learned issuers, exchanger).
    pub fn credentials(&self) -> &Arc<CredentialSources> {
        &self.credentials
    }

    /// The flow's settings and the URLs derived from the public URL.
    pub fn config(&self) -> &FlowsConfig {
        &self.cfg
    }

    /// The `scope` of our Client ID Metadata Document (`None`: omit the field). Authorization
    /// servers may treat it as the scopes this client is allowed to request, so by default it
    /// lists every scope configured on a registered server and those a flow requested that
    /// [`crate::oauth::cimd::advertisable_scopes`] lets through (never a remote server's own).
    fn advertised_scope(&self) -> Option<String> {
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

    /// Set the hook called after each completed flow (replacing any previous one).
    pub fn set_completion_hook(&self, hook: CompletionHook) {
        if let Ok(mut slot) = self.hook.write() {
            *slot = Some(hook);
        }
    }

    fn completion_hook(&self) -> Option<CompletionHook> {
        self.hook.read().ok().and_then(|h| h.clone())
    }
}
