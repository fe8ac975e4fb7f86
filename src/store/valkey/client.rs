//! The connection pool to Valkey: created without waiting for the server (it reconnects in the
//! background, forever, with backoff), every command bounded by the command timeout, and a
//! readiness check that says why Valkey is unreachable.

use super::config::{Endpoints, ValkeyConfig, ValkeyConfigError, ValkeyTopology};
use super::tls::tls_config;
use crate::store::StoreError;
use fred::error::{Error as FredError, ErrorKind};
use fred::prelude::*;
use fred::types::config::{ClusterDiscoveryPolicy, Server, ServerConfig};
use secrecy::ExposeSecret as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Reconnection backoff: quick first retries (a restarted Valkey is back within a second),
/// capped so a long outage costs at most one attempt every few seconds per connection.
const RECONNECT_MIN_DELAY_MS: u32 = 50;
const RECONNECT_MAX_DELAY_MS: u32 = 2_000;

/// A pool of Valkey connections. Cheap to clone (shared).
#[derive(Clone)]
pub struct ValkeyClient {
    pool: Pool,
    cluster: bool,
    command_timeout: Duration,
    /// The last connection error any pooled connection reported, for readiness messages.
    last_error: Arc<Mutex<Option<String>>>,
    /// `host:port` list, for messages.
    servers: Arc<str>,
}

impl std::fmt::Debug for ValkeyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValkeyClient")
            .field("servers", &self.servers)
            .field("cluster", &self.cluster)
            .field("pool_size", &self.pool.size())
            .finish()
    }
}

/// Create the pool and start connecting in the background. Fails only on configuration
/// errors: an unreachable server is not an error here (see [`ValkeyClient::ping`]).
pub async fn connect(config: &ValkeyConfig) -> Result<ValkeyClient, ValkeyConfigError> {
    let endpoints = config.validate()?;
    let fred_config = fred_config(config, &endpoints)?;
    let pool = Builder::from_config(fred_config)
        .with_performance_config(|perf| {
            perf.default_command_timeout = config.command_timeout;
        })
        .with_connection_config(|conn| {
            conn.connection_timeout = config.connect_timeout;
            conn.internal_command_timeout = config.command_timeout;
            conn.tcp.nodelay = Some(true);
        })
        .set_policy(ReconnectPolicy::new_exponential(
            0,
            RECONNECT_MIN_DELAY_MS,
            RECONNECT_MAX_DELAY_MS,
            2,
        ))
        .build_pool(config.pool_size)
        .map_err(ValkeyConfigError::Client)?;

    let last_error: Arc<Mutex<Option<String>>> = Arc::default();
    for client in pool.clients() {
        let on_error = Arc::clone(&last_error);
        client.on_error(move |(error, server)| {
            let at = server.map(|s| format!(" ({s})")).unwrap_or_default();
            set(&on_error, Some(format!("{}{at}", describe(&error))));
            async { Ok(()) }
        });
        let on_reconnect = Arc::clone(&last_error);
        client.on_reconnect(move |_| {
            set(&on_reconnect, None);
            async { Ok(()) }
        });
    }
    // The connection tasks run until `quit`; their handle is not needed.
    drop(pool.connect());

    let servers = endpoints
        .servers
        .iter()
        .map(|(h, p)| format!("{h}:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    Ok(ValkeyClient {
        pool,
        cluster: matches!(config.topology, ValkeyTopology::Cluster),
        command_timeout: config.command_timeout,
        last_error,
        servers: servers.into(),
    })
}

fn fred_config(config: &ValkeyConfig, endpoints: &Endpoints) -> Result<Config, ValkeyConfigError> {
    let hosts: Vec<Server> = endpoints
        .servers
        .iter()
        .map(|(h, p)| Server::new(h.as_str(), *p))
        .collect();
    let password = config
        .password
        .as_ref()
        .map(|p| p.expose_secret().to_owned());
    let server = match &config.topology {
        ValkeyTopology::Standalone => ServerConfig::Centralized {
            server: hosts.into_iter().next().ok_or(ValkeyConfigError::NoUrl)?,
        },
        ValkeyTopology::Cluster => ServerConfig::Clustered {
            hosts,
            policy: ClusterDiscoveryPolicy::default(),
        },
        ValkeyTopology::Sentinel { service_name } => ServerConfig::Sentinel {
            hosts,
            service_name: service_name.clone(),
            username: config.username.clone(),
            password: password.clone(),
        },
    };
    let tls = if endpoints.tls {
        Some(tls_config(config.tls_ca_file.as_deref())?)
    } else {
        None
    };
    Ok(Config {
        // Keep retrying an unreachable server instead of failing startup.
        fail_fast: false,
        server,
        username: config.username.clone(),
        password,
        database: endpoints.database,
        tls,
        ..Config::default()
    })
}

impl ValkeyClient {
    /// Readiness: one PING that fails at once when no connection is up, naming the reason.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let options = Options {
            fail_fast: true,
            timeout: Some(self.command_timeout),
            ..Options::default()
        };
        let result: Result<String, FredError> = self.pool.with_options(&options).ping(None).await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let last = self
                    .last_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                let reason = last.unwrap_or_else(|| describe(&e));
                Err(StoreError::unavailable_because(
                    format!(
                        "Valkey at {} is not reachable: {reason} (retrying in the background)",
                        self.servers
                    ),
                    e,
                ))
            }
        }
    }

    /// Whether the topology is a cluster (multi-key atomicity is per slot there).
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// Close every connection (commands after this fail).
    pub async fn quit(&self) {
        // Closing cannot meaningfully fail; there is nothing to do about it at shutdown.
        let _ = self.pool.quit().await;
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A failed command as a [`StoreError`], saying which operation and why; never any value.
    pub(crate) fn error(&self, op: &str, e: &FredError) -> StoreError {
        match e.kind() {
            ErrorKind::Timeout => StoreError::unavailable_because(
                format!(
                    "Valkey {op}: no answer within {:?} from {} (Valkey down or unreachable?)",
                    self.command_timeout, self.servers
                ),
                e.clone(),
            ),
            _ => {
                StoreError::unavailable_because(format!("Valkey {op}: {}", describe(e)), e.clone())
            }
        }
    }
}

fn set(slot: &Mutex<Option<String>>, value: Option<String>) {
    *slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = value;
}

/// `kind: details` of a fred error. Server replies to our commands never echo values.
fn describe(e: &FredError) -> String {
    format!("{:?}: {}", e.kind(), e.details())
}
