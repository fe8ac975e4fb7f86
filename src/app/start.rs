//! Starting the server: bind the listener, build the stores and every component, start the
//! registrations source and the background work, serve. [`RunningServer`] is the handle that
//! stops it.

use super::build::{self, Parts};
use super::metrics_listener::{metrics_elsewhere, spawn_metrics_listener};
use super::{AppConfig, Registrations, StartError, listener, public_url, stores};
use crate::flows::Flows;
use crate::http::{AppState, Readiness};
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::store::{FlowStore, TokenStore};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

/// A started server.
pub struct RunningServer {
    pub local_addr: SocketAddr,
    pub public_url: Url,
    /// Where `/metrics` is served when it has its own listener (`--metrics-listen`).
    pub metrics_addr: Option<SocketAddr>,
    pub flows: Arc<Flows>,
    /// The live registrations (an embedding program registers its servers here).
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub token_store: Arc<dyn TokenStore>,
    pub flow_store: Arc<dyn FlowStore>,
    pub readiness: Arc<Readiness>,
    cancel: CancellationToken,
    server: JoinHandle<()>,
    metrics_server: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// Stop accepting, drain in-flight requests, stop background tasks.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.wait().await;
    }

    /// The token that stops this server when cancelled.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Wait until the server stops (after its cancel token fires).
    pub async fn wait(self) {
        let _ = self.server.await;
        if let Some(metrics) = self.metrics_server {
            let _ = metrics.await;
        }
    }
}

/// Bind, wire everything and start serving in the background.
pub async fn start(
    config: &AppConfig,
    registrations: Registrations,
) -> Result<RunningServer, StartError> {
    let listen = config.listen;
    let tcp = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: listen,
            source,
        })?;
    let local_addr = tcp.local_addr().map_err(|source| StartError::Bind {
        addr: listen,
        source,
    })?;
    let public_url = public_url(
        config.public_url.as_ref(),
        local_addr,
        config.allow_insecure_http,
    )
    .map_err(StartError::Config)?;
    let origin_policy = crate::http::OriginPolicy::new(
        &public_url,
        Some(local_addr),
        &config.allowed_origins,
        &config.allowed_hosts,
    )
    .map_err(|e| StartError::Config(e.to_string()))?;

    let cancel = CancellationToken::new();
    let metrics = Arc::new(Metrics::new());
    let registry = Arc::new(Registry::new());
    let readiness = Arc::new(Readiness::new());
    // Every mode exports the same metrics, whichever source fills the registry.
    registry.register_metrics(&metrics);
    let manifest_metrics = crate::manifests::ManifestMetrics::register(&metrics);
    let listener_metrics = listener::ListenerMetrics::register(&metrics);

    let stores = stores::build(config.store, &config.valkey, registrations.kube_client()).await?;
    stores::spawn_background(&stores, &readiness, &metrics, &cancel);

    // From here on, a failure stops the background work already started.
    let build::Components {
        flows,
        credentials,
        discovery,
        gateway,
        state,
    } = build::components(
        config,
        Parts {
            public_url: &public_url,
            origin_policy,
            stores: &stores,
            registry: registry.clone(),
            metrics: metrics.clone(),
            readiness: readiness.clone(),
        },
    )
    .inspect_err(|_| cancel.cancel())?;

    let services = crate::controller::Services {
        registry: registry.clone(),
        metrics: metrics.clone(),
        discovery,
        exchanges: credentials.exchanger().clone(),
        public_url: public_url.clone(),
    };
    registrations.start(services, &readiness, manifest_metrics, &cancel);
    spawn_housekeeping(&state, &gateway, &registry, &cancel);

    let metrics_server = spawn_metrics_listener(config.metrics_listen, &state, &cancel)
        .await
        .inspect_err(|_| cancel.cancel())?;
    let app = crate::http::router(state);
    let app = match metrics_server {
        Some(_) => app.layer(axum::middleware::from_fn(metrics_elsewhere)),
        None => app,
    };
    let server = tokio::spawn(listener::serve(
        tcp,
        app,
        config.listener.clone(),
        listener_metrics,
        cancel.clone(),
    ));
    tracing::info!(listen = %local_addr, public_url = %public_url, "gateway listening");
    let (metrics_addr, metrics_server) = metrics_server.unzip();
    Ok(RunningServer {
        local_addr,
        public_url,
        metrics_addr,
        flows,
        registry,
        metrics,
        token_store: stores.tokens.clone(),
        flow_store: stores.flows.clone(),
        readiness,
        cancel,
        server,
        metrics_server,
    })
}

/// Every minute until `cancel`: forgets idle rate-limit buckets and the request series of
/// deleted servers.
fn spawn_housekeeping(
    state: &AppState,
    gateway: &Arc<crate::gateway::Gateway>,
    registry: &Arc<Registry>,
    cancel: &CancellationToken,
) {
    let limiter = state.limiter.clone();
    let cancel = cancel.clone();
    let gateway = gateway.clone();
    let registry = registry.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {
                    limiter.retain_recent();
                    // Request series of deleted servers.
                    gateway.metrics().forget_servers(|label| {
                        label.split_once('/').is_some_and(|(ns, name)| {
                            registry.server(&crate::registry::ServerKey::new(ns, name)).is_some()
                        })
                    });
                }
            }
        }
    });
}
