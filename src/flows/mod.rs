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
//! Getting and refreshing stored tokens (`tokens.rs`, still included here) and the token
//! exchanger belong to the credentials stage; they move out of this module with issue 13.

mod callback;
mod challenge;
mod config;
mod connect;
mod error;
mod issuers;
mod logout;
mod metrics;
pub mod routes;
mod sign_in;
mod status;
// Token get and refresh: the credentials stage's, kept at its old path until it moves to
// `credentials::oauth` (issue 13), so that move and this one merge without a conflict.
#[path = "../manager/tokens.rs"]
mod tokens;

pub use callback::{CallbackParams, CallbackSuccess};
pub use challenge::AuthChallenge;
pub use config::{CimdScope, FlowsConfig};
pub use error::{CallbackError, ChallengeError, ConnectError, SignInError, TokenAccessError};
pub use logout::{LogoutError, LogoutReport, LogoutScope, RevocationFailure};
pub use metrics::FlowMetrics;
pub use routes::{FlowRoutes, START_PATH, Site, routes};
pub use sign_in::{SIGN_IN_STATE_PREFIX, sign_in_flow};
pub use status::{ServerAuthStatus, StatusError};
pub use tokens::AccessToken;

use crate::exchange::{ExchangeConfig, ExchangeCounts, Exchanger};
use crate::metrics::Metrics;
use crate::net::OutboundClient;
use crate::oauth::{Discovery, TokenClient};
use crate::registry::{Registry, ServerKey};
use crate::store::{FlowId, FlowStore, RefreshLock, TokenKey, TokenStore};
use dashmap::DashSet;
use futures::future::BoxFuture;
use issuers::LearnedIssuers;
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

/// The browser flow (and, until it moves, the OAuth token side the gateway asks for tokens).
pub struct Flows {
    cfg: FlowsConfig,
    registry: Arc<Registry>,
    tokens: Arc<dyn TokenStore>,
    flows: Arc<dyn FlowStore>,
    /// Serialises refreshes of one token across replicas.
    refresh_lock: Arc<dyn RefreshLock>,
    discovery: Discovery,
    token_client: TokenClient,
    metrics: Arc<Metrics>,
    /// Flows started, completed and failed; revocations at sign-out.
    counters: FlowMetrics,
    /// Issuer learned per server (from discovery), when the resource does not pin one.
    issuers: LearnedIssuers,
    /// One pending flow per (session, server, challenged scope), so concurrent requests share it.
    pending: moka::future::Cache<(String, ServerKey, String), FlowId>,
    /// One refresh at a time per token.
    refresh_locks: moka::sync::Cache<TokenKey, Arc<tokio::sync::Mutex<()>>>,
    hook: RwLock<Option<CompletionHook>>,
    /// Every scope a flow has requested, for the Client ID Metadata Document.
    scopes_seen: DashSet<String>,
    /// RFC 8693 exchanges for `exchange`-mode servers, with their cache.
    exchanger: Exchanger,
}

/// Bound on remembered scopes (they come from remote servers' challenges).
const MAX_SCOPES_SEEN: usize = 1000;

/// `tokens.rs` names the type by its old name until it moves.
type Manager = Flows;

impl std::fmt::Debug for Flows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flows")
            .field("public_url", &self.cfg.public_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Flows {
    /// The flow over `registry`'s servers and these stores. `discovery` is shared with whoever
    /// else reads authorization-server metadata (the controller), so they share its cache; the
    /// flow's metrics are registered in `metrics`.
    #[allow(clippy::too_many_arguments)] // until the token side moves out (issue 13)
    pub fn new(
        cfg: FlowsConfig,
        registry: Arc<Registry>,
        tokens: Arc<dyn TokenStore>,
        flows: Arc<dyn FlowStore>,
        refresh_lock: Arc<dyn RefreshLock>,
        outbound: OutboundClient,
        discovery: Discovery,
        metrics: Arc<Metrics>,
    ) -> Self {
        let counters = FlowMetrics::default();
        counters.register(&metrics);
        let pending_ttl = Duration::from_secs(crate::store::FLOW_TTL_SECS.saturating_sub(60));
        let exchanger = Exchanger::new(ExchangeConfig::default(), metrics.clone());
        Self {
            exchanger,
            discovery,
            token_client: TokenClient::new(outbound),
            issuers: LearnedIssuers::new(registry.clone()),
            registry,
            tokens,
            flows,
            refresh_lock,
            metrics,
            counters,
            pending: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(pending_ttl)
                .support_invalidation_closures()
                .build(),
            refresh_locks: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(300))
                .build(),
            hook: RwLock::new(None),
            scopes_seen: DashSet::new(),
            cfg,
        }
    }

    /// Replace the token-exchange settings (cache bound, margin, extra CA roots). Meant for
    /// start-up: the exchange cache starts empty.
    pub fn with_exchange_config(mut self, cfg: ExchangeConfig) -> Self {
        self.exchanger = Exchanger::new(cfg, self.metrics.clone());
        self
    }

    /// The token exchanger (`exchange` auth mode).
    pub(crate) fn exchanger(&self) -> &Exchanger {
        &self.exchanger
    }

    /// Cache hits and misses of the `TokenExchangePolicy` `policy` since start (for its status).
    pub fn exchange_counts(&self, policy: &ServerKey) -> ExchangeCounts {
        self.exchanger.counts(policy)
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

    /// The token store, for the gateway's handling of a refused token (the credentials stage's
    /// until it moves, issue 13).
    pub(crate) fn token_store(&self) -> &Arc<dyn TokenStore> {
        &self.tokens
    }
}
