//! Building the token store, flow store and refresh lock from their settings, and the
//! background work they need (expiry sweeps, readiness checks, key-rotation sweeps).
//!
//! Fails closed: a configured key ring file that cannot be loaded stops start-up, Valkey stores
//! behind a key-ring Secret refuse every operation until its first good ring is read, and Valkey
//! without encryption needs an explicit opt-in. A changed key file or Secret replaces the ring
//! without a restart (see [`crate::keys`]).
//!
//! This is where the command line meets the components: the flags become plain configurations
//! ([`key_source_config`], [`valkey_config`]) before the store and key-ring code sees them.

use crate::crypto::{KeyRing, KeyRingHandle};
use crate::http::Readiness;
use crate::keys::rotation::{self, RotateError};
use crate::keys::{
    KeyGate, KeyRingMetrics, KeyRingReloader, KeySource, KeySourceConfig, KeySourceError,
    RotationMetrics,
};
use crate::metrics::Metrics;
use crate::store::memory::{MemoryFlowStore, MemoryTokenStore};
use crate::store::sealed::{RotationReport, Sealing};
use crate::store::valkey::{ValkeyClient, ValkeyConfig, ValkeyStores, ValkeyTopology, connect};
use crate::store::{CachedTokenStore, FlowStore, ProcessLocalLock, RefreshLock, TokenStore};
use crate::store::{StoreKind, ValkeySettings, ValkeyTopologyKind};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often Valkey is pinged for `/readyz`.
const READINESS_INTERVAL: Duration = Duration::from_secs(5);
/// How often unrefreshable expired tokens are removed.
const EXPIRY_SWEEP_INTERVAL: Duration = Duration::from_secs(300);

/// The stores a server runs on.
pub struct Stores {
    pub tokens: Arc<dyn TokenStore>,
    pub flows: Arc<dyn FlowStore>,
    pub lock: Arc<dyn RefreshLock>,
    /// Set for Valkey (health checks, stats, rotation).
    valkey: Option<Valkey>,
    keys: KeySource,
}

/// The Valkey side: built at once, or behind a [`KeyGate`] until the key ring is read.
struct Valkey {
    client: ValkeyClient,
    config: ValkeyConfig,
    stores: ValkeyState,
}

#[derive(Clone)]
enum ValkeyState {
    Ready(Box<ValkeyStores>),
    Gated(KeyGate),
}

/// The token store, flow store and refresh lock as the manager uses them.
type StoreHandles = (
    Arc<dyn TokenStore>,
    Arc<dyn FlowStore>,
    Arc<dyn RefreshLock>,
);

impl ValkeyState {
    fn handles(&self) -> StoreHandles {
        match self {
            ValkeyState::Ready(stores) => (
                Arc::new(stores.tokens.clone()),
                Arc::new(stores.flows.clone()),
                Arc::new(stores.lock.clone()),
            ),
            ValkeyState::Gated(gate) => (
                Arc::new(gate.clone()),
                Arc::new(gate.clone()),
                Arc::new(gate.clone()),
            ),
        }
    }

    fn stores(&self) -> Option<ValkeyStores> {
        match self {
            ValkeyState::Ready(stores) => Some(ValkeyStores::clone(stores)),
            ValkeyState::Gated(gate) => gate.stores().cloned(),
        }
    }
}

impl Stores {
    /// The Valkey stores, once they exist (behind a key-ring Secret: after its first good ring).
    pub fn valkey(&self) -> Option<ValkeyStores> {
        self.valkey.as_ref().and_then(|v| v.stores.stores())
    }

    /// The key ring in use, when one is loaded.
    pub fn key_ring(&self) -> Option<KeyRing> {
        self.keys.handle().map(KeyRingHandle::current)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreSetupError {
    #[error("{0}")]
    Config(String),
    #[error("cannot read the Valkey password file {}: {source}", path.display())]
    PasswordFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Valkey(#[from] crate::store::valkey::ValkeyConfigError),
    #[error(transparent)]
    Keys(#[from] KeySourceError),
}

/// The key-ring flags as the key-ring code takes them.
pub fn key_source_config(args: &ValkeySettings) -> KeySourceConfig {
    KeySourceConfig {
        file: args.encryption_key_file.clone(),
        secret: args.encryption_key_secret.clone(),
    }
}

/// Load the key ring named by `--encryption-key-file`, if any (fail closed). For commands
/// without an API server connection (`rotate-keys`), so a key-ring Secret is refused here.
pub fn load_key_ring(args: &ValkeySettings) -> Result<Option<KeyRing>, StoreSetupError> {
    Ok(KeySource::resolve(&key_source_config(args), None)?
        .handle()
        .map(KeyRingHandle::current))
}

/// Why `rotate-keys` did not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum RotateKeysError {
    #[error(transparent)]
    Setup(#[from] StoreSetupError),
    #[error("rotate-keys needs --encryption-key-file (the key ring with the new primary key)")]
    NoKeyRing,
    #[error(transparent)]
    Rotate(#[from] RotateError),
}

/// The `rotate-keys` command: connect, wait for Valkey, sweep once.
pub async fn rotate_keys(args: &ValkeySettings) -> Result<RotationReport, RotateKeysError> {
    let ring = load_key_ring(args)?.ok_or(RotateKeysError::NoKeyRing)?;
    let config = valkey_config(args)?;
    Ok(rotation::run_once(&config, ring).await?)
}

/// The Valkey connection settings from the flags.
pub fn valkey_config(args: &ValkeySettings) -> Result<ValkeyConfig, StoreSetupError> {
    if args.valkey_url.is_empty() {
        return Err(StoreSetupError::Config(
            "--store valkey needs --valkey-url (MCPOAUTH_VALKEY_URL), e.g. redis://valkey:6379"
                .to_owned(),
        ));
    }
    let mut cfg = ValkeyConfig::new(args.valkey_url.clone());
    cfg.topology = match args.valkey_topology {
        ValkeyTopologyKind::Standalone => ValkeyTopology::Standalone,
        ValkeyTopologyKind::Cluster => ValkeyTopology::Cluster,
        ValkeyTopologyKind::Sentinel => ValkeyTopology::Sentinel {
            service_name: args.valkey_sentinel_service.clone().ok_or_else(|| {
                StoreSetupError::Config(
                    "--valkey-topology sentinel needs --valkey-sentinel-service".to_owned(),
                )
            })?,
        },
    };
    cfg.username = args.valkey_username.clone();
    if let Some(path) = &args.valkey_password_file {
        let text =
            std::fs::read_to_string(path).map_err(|source| StoreSetupError::PasswordFile {
                path: path.clone(),
                source,
            })?;
        cfg.password = Some(SecretString::from(text.trim().to_owned()));
    }
    cfg.tls_ca_file = args.valkey_tls_ca_file.clone();
    cfg.key_prefix = args.valkey_key_prefix.clone();
    cfg.pool_size = args.valkey_pool_size;
    cfg.connect_timeout = Duration::from_millis(args.valkey_connect_timeout_ms);
    cfg.command_timeout = Duration::from_millis(args.valkey_command_timeout_ms);
    cfg.session_ttl = Duration::from_secs(args.valkey_session_ttl_days.saturating_mul(86_400));
    cfg.validate()?;
    Ok(cfg)
}

/// How stores built at once seal values: with the (reloadable) key ring, or plaintext only
/// when explicitly allowed.
fn sealing(
    args: &ValkeySettings,
    ring: Option<&KeyRingHandle>,
) -> Result<Sealing, StoreSetupError> {
    match ring {
        Some(handle) => Ok(Sealing::Reloadable(handle.clone())),
        None if args.valkey_allow_plaintext => {
            tracing::warn!(
                "Valkey values are stored UNENCRYPTED (--valkey-allow-plaintext): anyone who can read Valkey can read users' tokens"
            );
            Ok(Sealing::Plaintext)
        }
        None => Err(StoreSetupError::Config(
            "refusing to keep tokens in Valkey unencrypted: set --encryption-key-file or --encryption-key-secret (see docs/encryption.md), or pass --valkey-allow-plaintext to accept the risk".to_owned(),
        )),
    }
}

/// Connect (or create) the stores for `kind`. `kube` is the API server connection of `run`,
/// through which `--encryption-key-secret` is read (`None` for `serve`).
pub async fn build(
    kind: StoreKind,
    args: &ValkeySettings,
    kube: Option<&kube::Client>,
) -> Result<Stores, StoreSetupError> {
    let keys = KeySource::resolve(&key_source_config(args), kube)?;
    match kind {
        StoreKind::Memory => {
            if keys.is_configured() {
                tracing::info!(
                    keys = %keys.describe(),
                    "an encryption key ring is configured but unused: the memory store keeps values only in this process"
                );
            }
            Ok(Stores {
                tokens: Arc::new(MemoryTokenStore::new()),
                flows: Arc::new(MemoryFlowStore::new()),
                lock: Arc::new(ProcessLocalLock),
                valkey: None,
                keys: KeySource::None,
            })
        }
        StoreKind::Valkey => {
            let config = valkey_config(args)?;
            let client = connect(&config).await?;
            let stores = if let KeySource::Secret { .. } = &keys {
                // The ring arrives after start-up: closed until then (fail closed).
                ValkeyState::Gated(KeyGate::new(keys.describe()))
            } else {
                ValkeyState::Ready(Box::new(ValkeyStores::new(
                    client.clone(),
                    config.key_prefix.clone(),
                    config.session_ttl,
                    sealing(args, keys.handle())?,
                )))
            };
            let (tokens, flows, lock) = stores.handles();
            let tokens = token_cache(tokens, args.valkey_token_cache_ms);
            Ok(Stores {
                tokens,
                flows,
                lock,
                valkey: Some(Valkey {
                    client,
                    config,
                    stores,
                }),
                keys,
            })
        }
    }
}

/// Sessions whose tokens the request-path cache holds at most.
const TOKEN_CACHE_SESSIONS: u64 = 100_000;

/// `tokens` behind the request path's short-lived read cache, unless it is turned off.
fn token_cache(tokens: Arc<dyn TokenStore>, ttl_ms: u64) -> Arc<dyn TokenStore> {
    if ttl_ms == 0 {
        return tokens;
    }
    Arc::new(CachedTokenStore::new(
        tokens,
        Duration::from_millis(ttl_ms),
        TOKEN_CACHE_SESSIONS,
    ))
}

/// Background work: expiry sweeps, Valkey readiness, following the key ring (file or Secret)
/// and a rotation sweep whenever the ring in use holds more than one key.
pub fn spawn_background(
    stores: &Stores,
    readiness: &Arc<Readiness>,
    metrics: &Arc<Metrics>,
    cancel: &CancellationToken,
) {
    // Exported whatever the store, as before components registered their own metrics.
    let key_metrics = KeyRingMetrics::register(metrics);
    let rotation_metrics = RotationMetrics::register(metrics);
    let tokens = stores.tokens.clone();
    let interval = if stores.valkey.is_some() {
        EXPIRY_SWEEP_INTERVAL
    } else {
        Duration::from_secs(60)
    };
    let flows = stores.flows.clone();
    every(interval, cancel.clone(), move || {
        let tokens = tokens.clone();
        let flows = flows.clone();
        async move {
            let now = crate::time::unix_now();
            if let Err(e) = tokens.remove_expired(now).await {
                tracing::warn!(error = %e, "expired-token sweep failed");
            }
            if let Err(e) = flows.remove_expired(now).await {
                tracing::warn!(error = %e, "expired-flow sweep failed");
            }
        }
    });

    let Some(valkey) = &stores.valkey else {
        return;
    };
    readiness.block("store", "Valkey has not answered yet");
    let ready = readiness.clone();
    let pinger = valkey.client.clone();
    every(READINESS_INTERVAL, cancel.clone(), move || {
        let ready = ready.clone();
        let pinger = pinger.clone();
        async move {
            match pinger.ping().await {
                Ok(()) => ready.unblock("store"),
                Err(e) => ready.block("store", format!("Valkey unavailable: {e}")),
            }
        }
    });

    let reloader = match (&valkey.stores, &stores.keys) {
        (ValkeyState::Ready(ready), KeySource::File { handle, .. }) => {
            ready.register_metrics(metrics);
            KeyRingReloader::loaded(
                stores.keys.describe(),
                handle.clone(),
                key_metrics,
                readiness.clone(),
            )
        }
        (ValkeyState::Gated(gate), KeySource::Secret { .. }) => {
            let gate = gate.clone();
            let client = valkey.client.clone();
            let prefix = valkey.config.key_prefix.clone();
            let ttl = valkey.config.session_ttl;
            let stats_metrics = metrics.clone();
            KeyRingReloader::pending(
                stores.keys.describe(),
                Box::new(move |handle| {
                    let built = ValkeyStores::new(
                        client.clone(),
                        prefix.clone(),
                        ttl,
                        Sealing::Reloadable(handle.clone()),
                    );
                    built.register_metrics(&stats_metrics);
                    gate.open(built);
                }),
                key_metrics,
                readiness.clone(),
            )
        }
        (ValkeyState::Ready(ready), _) => {
            // Plaintext (explicitly allowed): no key ring to follow.
            ready.register_metrics(metrics);
            return;
        }
        (ValkeyState::Gated(_), _) => return,
    };
    crate::keys::source::follow(&stores.keys, &reloader, cancel);
    let state = valkey.stores.clone();
    rotation::spawn_sweeps(
        &reloader,
        move || state.stores(),
        rotation_metrics,
        cancel.clone(),
    );
}

/// Run `job` every `interval` (first run after one interval) until cancelled.
fn every<F, Fut>(interval: Duration, cancel: CancellationToken, job: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => job().await,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(file: Option<&str>, secret: Option<&str>) -> ValkeySettings {
        ValkeySettings {
            encryption_key_file: file.map(Into::into),
            encryption_key_secret: secret.map(str::to_owned),
            ..ValkeySettings::default()
        }
    }

    #[test]
    fn the_key_flags_become_the_key_source_config() {
        assert_eq!(
            key_source_config(&settings(None, Some("mcp-keys"))),
            KeySourceConfig {
                file: None,
                secret: Some("mcp-keys".to_owned()),
            }
        );
        assert_eq!(
            key_source_config(&settings(Some("/k"), None)).file,
            Some("/k".into())
        );
        let err = load_key_ring(&settings(None, Some("mcp-keys")))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("only works with `run`"), "{err}");
    }
}
