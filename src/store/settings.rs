//! Which store a server runs on and how it reaches Valkey, as plain values.
//!
//! The command line (`cli`) fills these in from its flags; the wiring (`app::stores`), the key
//! source and `rotate-keys` read them. Keeping them here, not in the clap structs, lets those
//! components be built without the command line (tests, an embedding program) and keeps the
//! dependency one way: `cli` → components. Field names follow the flags they come from.

use std::path::PathBuf;

/// Where tokens and pending flows are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreKind {
    /// In this process (lost on restart; one replica only).
    #[default]
    Memory,
    /// In Valkey (or Redis): survives restarts, shared by several replicas.
    Valkey,
}

/// How the Valkey URLs are used (the sentinel service name is a separate setting, checked when
/// the connection settings are built).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValkeyTopologyKind {
    #[default]
    Standalone,
    Cluster,
    Sentinel,
}

/// Valkey store and encryption-at-rest settings (used with the Valkey store and by
/// `rotate-keys`).
#[derive(Debug, Clone, Default)]
pub struct ValkeySettings {
    /// `redis://`, `rediss://`, `valkey://` or `valkeys://` URLs (several: cluster seeds or
    /// sentinels).
    pub valkey_url: Vec<String>,
    pub valkey_topology: ValkeyTopologyKind,
    /// Sentinel service (master group) name, with the sentinel topology.
    pub valkey_sentinel_service: Option<String>,
    pub valkey_username: Option<String>,
    /// File holding the password; surrounding whitespace is ignored.
    pub valkey_password_file: Option<PathBuf>,
    /// CA bundle (PEM) to verify the server's TLS certificate.
    pub valkey_tls_ca_file: Option<PathBuf>,
    /// Prefix of every key the gateway writes.
    pub valkey_key_prefix: String,
    pub valkey_pool_size: usize,
    /// How long a token read from Valkey is reused from memory (0: not at all).
    pub valkey_token_cache_ms: u64,
    pub valkey_connect_timeout_ms: u64,
    pub valkey_command_timeout_ms: u64,
    /// Idle sessions' tokens expire after this many days.
    pub valkey_session_ttl_days: u64,
    /// Store values unencrypted when no key ring is configured (never in production).
    pub valkey_allow_plaintext: bool,
    /// Encryption key ring file (or mounted Secret directory).
    pub encryption_key_file: Option<PathBuf>,
    /// Name of a Secret in the operator's namespace holding the key ring (`run` only).
    pub encryption_key_secret: Option<String>,
}
