//! Wiring of the HTTP server with its stores, registry, manager and registrations source.
//! `serve` (standalone) and, later, `run` (operator) share this; tests start it in-process.

use crate::cli::ServerArgs;
use crate::credentials::exchange::Exchanger;
use crate::credentials::oauth::OAuthConfig;
use crate::credentials::{CredentialSources, OAuthTokens};
use crate::http::{AppState, RateLimit, Readiness};
use crate::manager::{Manager, ManagerConfig};
use crate::metrics::Metrics;
use crate::net::{AddressPolicy, OutboundClient, OutboundConfig};
use crate::oauth::{Discovery, DiscoveryConfig, TokenClient};
use crate::registry::Registry;
use axum::response::IntoResponse as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

pub mod key_gate;
pub mod key_source;
pub mod keyring_file;
pub mod keyring_reload;
pub mod listener;
pub mod rotation;
pub mod stores;

/// Where registrations come from.
#[derive(Debug, Clone)]
pub enum Registrations {
    /// YAML manifests in a folder, watched for changes.
    Dir(PathBuf),
    /// The examples built into the binary.
    Embedded,
    /// Only what the embedding program registers through the [`Manager`].
    Programmatic,
    /// `RemoteMCPServer` / `TokenExchangePolicy` resources from the Kubernetes API server (`run`).
    Kubernetes(crate::controller::KubeSource),
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build the outbound HTTP client: {0}")]
    Outbound(String),
    #[error(transparent)]
    Store(#[from] stores::StoreSetupError),
}

/// Token-exchange settings: the outbound limits, plus the extra CA file when given.
fn exchange_config(
    args: &ServerArgs,
) -> Result<crate::credentials::exchange::ExchangeConfig, ServeError> {
    let mut cfg = crate::credentials::exchange::ExchangeConfig::default();
    cfg.client.timeout = Duration::from_secs(args.outbound_timeout_secs);
    cfg.client.max_body_bytes = args.outbound_max_body_bytes;
    cfg.allowed_issuers = allowed_exchange_issuers(args);
    let Some(path) = &args.exchange_ca_file else {
        return Ok(cfg);
    };
    let pem = std::fs::read(path)
        .map_err(|e| ServeError::Config(format!("--exchange-ca-file {}: {e}", path.display())))?;
    cfg.with_ca_bundle(&pem)
        .map_err(|e| ServeError::Config(format!("--exchange-ca-file {}: {e}", path.display())))
}

/// `--exchange-allowed-issuers`, else the callers' own issuer: exchanging a caller's token at
/// the provider that issued it hands it to no one new.
fn allowed_exchange_issuers(args: &ServerArgs) -> Vec<String> {
    let listed: Vec<String> = args
        .exchange_allowed_issuers
        .iter()
        .map(|i| i.trim().to_owned())
        .filter(|i| !i.is_empty())
        .collect();
    if listed.is_empty() {
        args.oidc_issuer.iter().cloned().collect()
    } else {
        listed
    }
}

impl Registrations {
    /// The API server connection, for `run` (reads the key-ring Secret).
    fn kube_client(&self) -> Option<&kube::Client> {
        match self {
            Registrations::Kubernetes(source) => Some(&source.client),
            _ => None,
        }
    }
}

/// A started server.
pub struct RunningServer {
    pub local_addr: SocketAddr,
    pub public_url: Url,
    /// Where `/metrics` is served when it has its own listener (`--metrics-listen`).
    pub metrics_addr: Option<SocketAddr>,
    pub manager: Arc<Manager>,
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
    args: &ServerArgs,
    registrations: Registrations,
) -> Result<RunningServer, ServeError> {
    let listen = args.listen.unwrap_or(crate::cli::SERVE_LISTEN);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: listen,
        source,
    })?;
    let public_url = public_url(
        args.public_url.as_ref(),
        local_addr,
        args.allow_insecure_http,
    )
    .map_err(ServeError::Config)?;
    let origin_policy = crate::http::OriginPolicy::new(
        &public_url,
        Some(local_addr),
        &args.allowed_origins,
        &args.allowed_hosts,
    )
    .map_err(|e| ServeError::Config(e.to_string()))?;

    let cancel = CancellationToken::new();
    let metrics = Arc::new(Metrics::new());
    let registry = Arc::new(Registry::new());
    let readiness = Arc::new(Readiness::new());

    let stores = stores::build(args.store, &args.valkey, registrations.kube_client()).await?;
    stores::spawn_background(&stores, &readiness, &metrics, &cancel);

    // SSRF guard for URLs resources and remote servers steer. Unset (an embedding that did not
    // apply the subcommand defaults) fails closed.
    let address_policy =
        AddressPolicy::from_allow_private(args.outbound_allow_private_networks.unwrap_or(false));
    let outbound = OutboundClient::new(OutboundConfig {
        timeout: Duration::from_secs(args.outbound_timeout_secs),
        max_body_bytes: args.outbound_max_body_bytes,
        address_policy,
        ..OutboundConfig::default()
    })
    .map_err(|e| ServeError::Outbound(e.to_string()))?;
    // The callers' identity provider is the operator's own configuration, often inside the
    // cluster: private networks allowed (cloud metadata still refused).
    let identity_outbound = outbound.with_private_networks(true);
    let identity = crate::identity::from_server_args(args, &public_url, identity_outbound)
        .map_err(|e| {
            cancel.cancel();
            ServeError::Config(e.to_string())
        })?;
    if identity.oidc_validator().is_some() && identity.sign_in().is_none() {
        tracing::warn!(
            "identity oidc without --oidc-client-id: a sign-in link is bound to the first \
             browser that opens it, not checked against its user; set --oidc-client-id (the \
             gateway's client at the issuer, redirect URI {{public-url}}/oauth/callback) so \
             browsers sign in first"
        );
    }
    let identity = Arc::new(identity);
    let mut cfg = ManagerConfig::new(public_url.clone());
    cfg.client_name = args.client_name.clone();
    cfg.cimd_scope = crate::manager::CimdScope::parse(&args.cimd_scope);
    cfg.discovery = DiscoveryConfig {
        metadata_ttl: Duration::from_secs(args.metadata_cache_ttl_secs),
        allow_insecure_http: args.allow_insecure_http,
        ..DiscoveryConfig::default()
    };
    let exchange_cfg = exchange_config(args).inspect_err(|_| cancel.cancel())?;
    // The credentials stage: one source per auth mode, shared by the gateway, the browser flows
    // and the controller.
    let mut oauth_cfg = OAuthConfig::new(cfg.cimd_client_id());
    oauth_cfg.refresh_margin = Duration::from_secs(args.refresh_margin_secs);
    // A lease outlives the slowest token request it protects.
    oauth_cfg.refresh_lease = Duration::from_secs(args.outbound_timeout_secs + 5);
    let oauth = Arc::new(OAuthTokens::new(
        oauth_cfg,
        registry.clone(),
        stores.tokens.clone(),
        stores.lock.clone(),
        Discovery::new(outbound.clone(), cfg.discovery),
        TokenClient::new(outbound),
        &metrics,
    ));
    let exchanger = Arc::new(Exchanger::new(exchange_cfg, &metrics));
    let credentials = Arc::new(CredentialSources::new(registry.clone(), oauth, exchanger));
    let manager = Arc::new(Manager::new(
        cfg,
        registry.clone(),
        stores.flows.clone(),
        credentials.clone(),
        metrics.clone(),
    ));

    start_registrations(registrations, &manager, &readiness, &metrics, &cancel);

    let gateway_cfg = crate::gateway::GatewayConfig {
        address_policy,
        ..args.gateway.config()
    };
    let gateway = crate::gateway::Gateway::new(
        gateway_cfg,
        registry.clone(),
        credentials,
        identity.clone(),
        manager.clone(),
        &metrics,
    )
    .map_err(|e| ServeError::Outbound(format!("gateway upstream client: {e}")))?;
    manager.set_completion_hook(gateway.completion_hook());
    let state = AppState::new(
        manager.clone(),
        identity,
        readiness.clone(),
        RateLimit {
            per_minute: args.rate_limit_per_minute,
            burst: args.rate_limit_burst,
            trusted_proxies: args.trusted_proxies.clone(),
        },
        gateway.clone(),
    );
    let state = state.with_origin_policy(origin_policy);
    let limiter = state.limiter.clone();
    let sweep_cancel = cancel.clone();
    let sweep_gateway = gateway.clone();
    let sweep_registry = manager.registry().clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = sweep_cancel.cancelled() => break,
                _ = tick.tick() => {
                    limiter.retain_recent();
                    // Request series of deleted servers.
                    sweep_gateway.metrics().forget_servers(|label| {
                        label.split_once('/').is_some_and(|(ns, name)| {
                            sweep_registry.server(&crate::registry::ServerKey::new(ns, name)).is_some()
                        })
                    });
                }
            }
        }
    });

    let metrics_server = spawn_metrics_listener(args.metrics_listen, &state, &cancel)
        .await
        .inspect_err(|_| cancel.cancel())?;
    let app = crate::http::router(state);
    let app = match metrics_server {
        Some(_) => app.layer(axum::middleware::from_fn(metrics_elsewhere)),
        None => app,
    };
    let server = tokio::spawn(listener::serve(
        listener,
        app,
        crate::serve::listener::ListenerLimits {
            trusted_proxies: args.trusted_proxies.clone(),
            ..args.listener.limits()
        },
        metrics.connections_refused.clone(),
        cancel.clone(),
    ));
    tracing::info!(listen = %local_addr, public_url = %public_url, "gateway listening");
    let (metrics_addr, metrics_server) = metrics_server.unzip();
    Ok(RunningServer {
        local_addr,
        public_url,
        metrics_addr,
        manager,
        readiness,
        cancel,
        server,
        metrics_server,
    })
}

/// With `--metrics-listen`: binds it and serves `/metrics` (only) there until `cancel`.
async fn spawn_metrics_listener(
    listen: Option<SocketAddr>,
    state: &AppState,
    cancel: &CancellationToken,
) -> Result<Option<(SocketAddr, JoinHandle<()>)>, ServeError> {
    let Some(listen) = listen else {
        return Ok(None);
    };
    let bind_err = |source| ServeError::Bind {
        addr: listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(bind_err)?;
    let addr = listener.local_addr().map_err(bind_err)?;
    let app = crate::http::metrics_router(state.clone());
    let shutdown = cancel.clone();
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "metrics listener stopped with an error");
        }
    });
    tracing::info!(listen = %addr, "metrics listening");
    Ok(Some((addr, task)))
}

/// On the main listener when metrics have their own: `/metrics` is not found there.
async fn metrics_elsewhere(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if req.uri().path() == "/metrics" {
        return axum::http::StatusCode::NOT_FOUND.into_response();
    }
    next.run(req).await
}

fn start_registrations(
    source: Registrations,
    manager: &Arc<Manager>,
    readiness: &Arc<Readiness>,
    metrics: &Arc<Metrics>,
    cancel: &CancellationToken,
) {
    let registry = manager.registry();
    match source {
        Registrations::Programmatic => {}
        Registrations::Kubernetes(source) => {
            crate::controller::spawn(source, manager.clone(), readiness.clone(), cancel.clone());
        }
        Registrations::Embedded => {
            let report = crate::manifests::embedded_examples();
            for p in &report.problems {
                tracing::warn!(problem = %p, "built-in example manifest problem");
            }
            metrics
                .registered_servers
                .set(report.snapshot.servers.len() as i64);
            registry.replace(report.snapshot.clone());
            tracing::info!(
                servers = report.snapshot.servers.len(),
                "no --manifests given; serving the built-in examples"
            );
        }
        Registrations::Dir(dir) => {
            readiness.block("manifests", format!("{} not loaded yet", dir.display()));
            let (_task, mut reports) =
                crate::manifests::ManifestsSource::spawn(dir, registry.clone(), cancel.clone());
            let readiness = readiness.clone();
            let metrics = metrics.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                loop {
                    {
                        let report = reports.borrow_and_update().clone();
                        metrics
                            .registered_servers
                            .set(report.snapshot.servers.len() as i64);
                        metrics.manifest_problems.set(report.problems.len() as i64);
                        readiness.unblock("manifests");
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        changed = reports.changed() => if changed.is_err() { break },
                    }
                }
            });
        }
    }
}

/// The public URL: explicit, or `http://` + the listen address. Plain HTTP is accepted only on
/// loopback unless explicitly allowed, because browsers send the binding cookie and the IdP
/// sends the code to this URL.
pub fn public_url(
    explicit: Option<&Url>,
    local_addr: SocketAddr,
    allow_insecure_http: bool,
) -> Result<Url, String> {
    let url = match explicit {
        Some(u) => u.clone(),
        None => {
            if local_addr.ip().is_unspecified() {
                return Err(format!(
                    "listening on {local_addr} (all interfaces) needs --public-url: the URL browsers use to reach this gateway"
                ));
            }
            Url::parse(&format!("http://{local_addr}")).map_err(|e| e.to_string())?
        }
    };
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure_http || is_loopback_host(&url) => {}
        "http" => {
            return Err(format!(
                "public URL {url} uses plain HTTP on a non-loopback host; use https or pass --allow-insecure-http"
            ));
        }
        other => return Err(format!("public URL scheme {other} is not http or https")),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("public URL must not have a query or fragment".to_owned());
    }
    if url.cannot_be_a_base() || url.host_str().is_none() {
        return Err(format!("public URL {url} has no host"));
    }
    crate::http::check_base_path(&url)?;
    Ok(url)
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn derives_public_url_from_listener() {
        let u = public_url(None, addr("127.0.0.1:8080"), false).expect("url");
        assert_eq!(u.as_str(), "http://127.0.0.1:8080/");
    }

    #[test]
    fn refuses_all_interfaces_without_public_url() {
        assert!(public_url(None, addr("0.0.0.0:8080"), false).is_err());
    }

    #[test]
    fn plain_http_only_on_loopback_unless_allowed() {
        let ext = Url::parse("http://gw.example.com").expect("url");
        assert!(public_url(Some(&ext), addr("0.0.0.0:8080"), false).is_err());
        assert!(public_url(Some(&ext), addr("0.0.0.0:8080"), true).is_ok());
        let https = Url::parse("https://gw.example.com/base").expect("url");
        assert!(public_url(Some(&https), addr("0.0.0.0:8080"), false).is_ok());
        let local = Url::parse("http://localhost:9000").expect("url");
        assert!(public_url(Some(&local), addr("127.0.0.1:1"), false).is_ok());
        let query = Url::parse("https://gw.example.com/?a=1").expect("url");
        assert!(public_url(Some(&query), addr("0.0.0.0:8080"), false).is_err());
    }
}
