//! The gateway: `/mcp/{namespace}/{name}`, a streaming reverse proxy for the MCP Streamable HTTP
//! transport that sends the user's credentials for one remote server.
//!
//! A request reads top to bottom in [`handler`]: identity → registry → body → the client's MCP
//! session → credentials ([`crate::credentials`]) → [`leg`] (one exchange with the remote server,
//! with one retry or the challenge when it refuses) → response (streamed back, or the auth
//! challenge in the client's richest form, [`challenge`]). [`upstream`] is the client side of
//! the proxy; [`routes`] is what the HTTP server mounts.

pub mod challenge;
pub mod config;
pub mod error;
pub mod handler;
pub mod jsonrpc;
pub mod leg;
pub mod metrics;
pub mod upstream;

pub use config::GatewayConfig;
pub use error::GatewayError;
pub use metrics::GatewayMetrics;
pub use upstream::sessions::SessionLimits;

use crate::credentials::{CredentialSources, Credentials};
use crate::flows::{CompletionEvent, CompletionHook, Flows};
use crate::identity::{Authenticated, Authenticator, Caller};
use crate::metrics::Metrics;
use crate::registry::{AuthSettings, Registry, ServerRegistration};
use challenge::client_profile::ClientProfiles;
use challenge::step_up::StepUps;
use leg::Leg;
use std::sync::{Arc, Weak};
use upstream::Upstream;
use upstream::session_start;
use upstream::sessions::Sessions;

/// The proxy's shared state: what it reads per request and what it remembers between requests.
pub struct Gateway {
    registry: Arc<Registry>,
    credentials: Arc<CredentialSources>,
    identity: Arc<Authenticator>,
    /// The browser flows: auth challenges are created there, and the public URL read.
    flows: Arc<Flows>,
    upstream: Upstream,
    cfg: GatewayConfig,
    profiles: ClientProfiles,
    sessions: Sessions,
    step_ups: StepUps,
    metrics: GatewayMetrics,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// The gateway's routes (`/mcp/{namespace}/{name}`), with the gateway as their state, for the
/// HTTP server to merge into its router.
pub fn routes<S: Clone + Send + Sync + 'static>(gateway: Arc<Gateway>) -> axum::Router<S> {
    axum::Router::new()
        .route(
            "/mcp/{namespace}/{name}",
            axum::routing::any(handler::proxy),
        )
        .with_state(gateway)
}

impl Gateway {
    /// Registers the gateway's metrics in `metrics`. Fails only when the TLS trust store cannot
    /// be loaded.
    pub fn new(
        cfg: GatewayConfig,
        registry: Arc<Registry>,
        credentials: Arc<CredentialSources>,
        identity: Arc<Authenticator>,
        flows: Arc<Flows>,
        metrics: &Metrics,
    ) -> Result<Arc<Self>, std::io::Error> {
        Ok(Arc::new(Self {
            upstream: Upstream::new(&cfg.client())?,
            registry,
            credentials,
            identity,
            flows,
            cfg,
            profiles: ClientProfiles::default(),
            sessions: Sessions::new(cfg.sessions),
            step_ups: StepUps::default(),
            metrics: GatewayMetrics::new(metrics),
        }))
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.cfg
    }

    /// The request metrics (the caller removes the series of deleted servers).
    pub fn metrics(&self) -> &GatewayMetrics {
        &self.metrics
    }

    /// The leg to `server` for `auth`.
    fn leg<'a>(&'a self, server: &'a ServerRegistration, auth: &'a Authenticated) -> Leg<'a> {
        Leg {
            upstream: &self.upstream,
            credentials: &self.credentials,
            step_ups: &self.step_ups,
            response_timeout: self.cfg.response_timeout,
            server,
            auth,
        }
    }

    /// The hook to install with [`Flows::set_completion_hook`]: after a login, sessions the
    /// gateway opened for that user and server are started at the remote server in the
    /// background, so the client's next request goes straight through. (Should that fail, or
    /// the login complete on another replica, the next request starts them itself.) The hook
    /// returns at once: the browser's callback page never waits for a remote server.
    pub fn completion_hook(self: &Arc<Self>) -> CompletionHook {
        let weak: Weak<Self> = Arc::downgrade(self);
        Arc::new(move |event: CompletionEvent| {
            if let Some(gw) = weak.upgrade() {
                tokio::spawn(async move { gw.start_pending(event).await });
            }
            Box::pin(async { Ok(()) })
        })
    }

    /// Start the remote side of every pending gateway session of the event's user and server.
    async fn start_pending(&self, event: CompletionEvent) {
        let pending = self.sessions.pending(&event.session, &event.server);
        if pending.is_empty() {
            return;
        }
        let Some(reg) = self.registry.server(&event.server) else {
            return;
        };
        let AuthSettings::OAuth(settings) = &reg.auth else {
            return;
        };
        let Ok(uri) = http::Uri::try_from(reg.url.as_str()) else {
            return;
        };
        let caller = Caller::new(event.user.clone(), event.session.clone());
        let creds = match self
            .credentials
            .oauth()
            .token(&reg, settings, &caller)
            .await
        {
            Ok(Some(token)) => Credentials::OAuth(token),
            _ => return,
        };
        let authorization = creds.authorization();
        for session in pending {
            let started = session
                .upstream
                .get_or_try_init(|| {
                    session_start::start(
                        &self.upstream,
                        &uri,
                        authorization.as_ref(),
                        session.initialize.clone(),
                        self.cfg.response_timeout,
                    )
                })
                .await;
            match started {
                Ok(_) => {
                    tracing::debug!(server = %event.server, "gateway session started at the remote server")
                }
                Err(_) => {
                    tracing::debug!(server = %event.server, "gateway session not started after login; the next request retries")
                }
            }
        }
    }
}
