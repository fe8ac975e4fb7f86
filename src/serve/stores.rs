//! Building the token store, flow store and refresh lock from the command line, and the
//! background work they need (expiry sweeps, readiness checks, key-rotation sweeps).
//!
//! Fails closed: a configured key ring that cannot be loaded stops start-up, and Valkey without
//! encryption needs an explicit opt-in.

use crate::cli::{StoreKind, ValkeyArgs, ValkeyTopology as CliTopology};
use crate::crypto::KeyRing;
use crate::http::Readiness;
use crate::metrics::Metrics;
use crate::store::memory::{MemoryFlowStore, MemoryTokenStore};
use crate::store::valkey::{Codec, ValkeyConfig, ValkeyStores, ValkeyTopology};
use crate::store::{FlowStore, ProcessLocalLock, RefreshLock, TokenStore};
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
    pub valkey: Option<ValkeyStores>,
    pub key_ring: Option<KeyRing>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreSetupError {
    #[error("{0}")]
    Config(String),
    #[error("encryption key ring: {0}")]
    KeyRing(#[from] crate::crypto::KeyRingError),
}

/// Load the key ring named by `--encryption-key-file`, if any (fail closed).
pub fn load_key_ring(args: &ValkeyArgs) -> Result<Option<KeyRing>, StoreSetupError> {
    match &args.encryption_key_file {
        Some(path) => Ok(Some(KeyRing::load(path)?)),
        None => Ok(None),
    }
}

/// The Valkey connection settings from the flags.
pub fn valkey_config(args: &ValkeyArgs) -> Result<ValkeyConfig, StoreSetupError> {
    if args.valkey_url.is_empty() {
        return Err(StoreSetupError::Config(
            "--store valkey needs --valkey-url (MCPOAUTH_VALKEY_URL), e.g. redis://valkey:6379"
                .to_owned(),
        ));
    }
    let mut cfg = ValkeyConfig::new(args.valkey_url.clone());
    cfg.topology = match args.valkey_topology {
        CliTopology::Standalone => ValkeyTopology::Standalone,
        CliTopology::Cluster => ValkeyTopology::Cluster,
        CliTopology::Sentinel => ValkeyTopology::Sentinel {
            service_name: args.valkey_sentinel_service.clone().ok_or_else(|| {
                StoreSetupError::Config(
                    "--valkey-topology sentinel needs --valkey-sentinel-service".to_owned(),
                )
            })?,
        },
    };
    cfg.username = args.valkey_username.clone();
    if let Some(path) = &args.valkey_password_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            StoreSetupError::Config(format!(
                "cannot read the Valkey password file {}: {e}",
                path.display()
            ))
        })?;
        cfg.password = Some(SecretString::from(text.trim().to_owned()));
    }
    cfg.tls_ca_file = args.valkey_tls_ca_file.clone();
    cfg.key_prefix = args.valkey_key_prefix.clone();
    cfg.pool_size = args.valkey_pool_size;
    cfg.connect_timeout = Duration::from_millis(args.valkey_connect_timeout_ms);
    cfg.command_timeout = Duration::from_millis(args.valkey_command_timeout_ms);
    cfg.session_ttl = Duration::from_secs(args.valkey_session_ttl_days.saturating_mul(86_400));
    cfg.validate()
        .map_err(|e| StoreSetupError::Config(e.to_string()))?;
    Ok(cfg)
}

/// The value codec: encrypted with the key ring, or plaintext only when explicitly allowed.
fn codec(args: &ValkeyArgs, ring: Option<&KeyRing>) -> Result<Codec, StoreSetupError> {
    match ring {
        Some(ring) => Ok(Codec::Encrypted(ring.clone())),
        None if args.valkey_allow_plaintext => {
            tracing::warn!(
                "Valkey values are stored UNENCRYPTED (--valkey-allow-plaintext): anyone who can read Valkey can read users' tokens"
            );
            Ok(Codec::Plaintext)
        }
        None => Err(StoreSetupError::Config(
            "refusing to keep tokens in Valkey unencrypted: set --encryption-key-file (see docs/encryption.md), or pass --valkey-allow-plaintext to accept the risk".to_owned(),
        )),
    }
}

/// Connect (or create) the stores for `kind`.
pub async fn build(kind: StoreKind, args: &ValkeyArgs) -> Result<Stores, StoreSetupError> {
    let key_ring = load_key_ring(args)?;
    match kind {
        StoreKind::Memory => {
            if key_ring.is_some() {
                tracing::info!(
                    "--encryption-key-file is loaded but unused: the memory store keeps values only in this process"
                );
            }
            Ok(Stores {
                tokens: Arc::new(MemoryTokenStore::new()),
                flows: Arc::new(MemoryFlowStore::new()),
                lock: Arc::new(ProcessLocalLock),
                valkey: None,
                key_ring,
            })
        }
        StoreKind::Valkey => {
            let cfg = valkey_config(args)?;
            let codec = codec(args, key_ring.as_ref())?;
            let stores = ValkeyStores::from_config(&cfg, codec)
                .await
                .map_err(|e| StoreSetupError::Config(e.to_string()))?;
            Ok(Stores {
                tokens: Arc::new(stores.tokens.clone()),
                flows: Arc::new(stores.flows.clone()),
                lock: Arc::new(stores.lock.clone()),
                valkey: Some(stores),
                key_ring,
            })
        }
    }
}

/// Background work: expiry sweeps, Valkey readiness, and a rotation sweep when the key ring
/// holds more than one key (a rotation is under way).
pub fn spawn_background(
    stores: &Stores,
    readiness: &Arc<Readiness>,
    metrics: &Arc<Metrics>,
    cancel: &CancellationToken,
) {
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

    let Some(valkey) = stores.valkey.clone() else {
        return;
    };
    metrics.set_store_stats(valkey.stats());
    readiness.block("store", "Valkey has not answered yet");
    let ready = readiness.clone();
    let pinger = valkey.clone();
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

    if let Some(ring) = stores.key_ring.clone().filter(|r| r.key_ids().len() > 1) {
        let metrics = metrics.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            // Let the server come up first; the sweep is background work.
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {
                    crate::serve::rotation::sweep(&valkey, &ring, &metrics).await;
                }
            }
        });
    }
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
