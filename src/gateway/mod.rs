//! The gateway: `/mcp/{namespace}/{name}`, a streaming reverse proxy for the MCP Streamable HTTP
//! transport that sends the user's credentials for one remote server.
//!
//! A request reads top to bottom in [`handler`]: identity → registry → body → credentials
//! ([`credentials`]) → upstream ([`upstream`]) → response (streamed back, or the auth challenge
//! when the remote server refuses and no credential helps).

pub mod challenge;
pub mod config;
pub mod credentials;
pub mod error;
pub mod forward;
pub mod handler;
pub mod jsonrpc;
pub mod metrics;
pub mod upstream;

pub use config::GatewayConfig;
pub use error::GatewayError;
pub use metrics::GatewayMetrics;
pub use upstream::sessions::SessionLimits;

use crate::identity::Caller;
use crate::manager::{CompletionEvent, CompletionHook, Manager};
use challenge::client_profile::ClientProfiles;
use challenge::step_up::StepUps;
use std::sync::{Arc, Weak};
use upstream::Upstream;
use upstream::session_start;
use upstream::sessions::Sessions;

/// The proxy's shared state: the upstream client and what it remembers between requests.
#[derive(Debug)]
pub struct Gateway {
    manager: Arc<Manager>,
    upstream: Upstream,
    cfg: GatewayConfig,
    profiles: ClientProfiles,
    sessions: Sessions,
    step_ups: StepUps,
}

impl Gateway {
    /// Fails only when the TLS trust store cannot be loaded.
    pub fn new(manager: Arc<Manager>, cfg: GatewayConfig) -> Result<Arc<Self>, std::io::Error> {
        Ok(Arc::new(Self {
            upstream: Upstream::new(&cfg.client())?,
            manager,
            cfg,
            profiles: ClientProfiles::default(),
            sessions: Sessions::new(cfg.sessions),
            step_ups: StepUps::default(),
        }))
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.cfg
    }

    /// The hook to install with [`Manager::set_completion_hook`]: after a login, sessions the
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
        let Some(reg) = self.manager.registry().server(&event.server) else {
            return;
        };
        let Ok(uri) = http::Uri::try_from(reg.url.as_str()) else {
            return;
        };
        let caller = Caller::new(event.user.clone(), event.session.clone());
        let creds = match self.manager.get_token(&event.server, &caller).await {
            Ok(Some(token)) => credentials::Credentials::OAuth(token),
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
