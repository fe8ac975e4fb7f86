//! Command-line interface. Every flag can also be given as an environment variable
//! `MCPOAUTH_<FLAG>` (for example `--public-url` ↔ `MCPOAUTH_PUBLIC_URL`).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use url::Url;

#[derive(Debug, Parser)]
#[command(name = "mcp-oauth-operator", version, about, long_about = None, args_override_self = true)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start-up; the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway standalone, with registrations read from YAML manifests in a folder
    /// (no cluster needed).
    Serve(ServeArgs),
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
    /// Re-encrypt every value in Valkey under the primary key of the key ring, then report how
    /// many values are still sealed with each other key. Exit code 0: all current; 2: some
    /// values could not be re-encrypted (their key is missing or they are damaged); 1: error.
    RotateKeys(RotateKeysArgs),
}

#[derive(Debug, Args)]
pub struct RotateKeysArgs {
    #[command(flatten)]
    pub valkey: ValkeyArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log output format.
    #[arg(long, env = "MCPOAUTH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info` or `mcp_oauth_operator=debug`).
    /// `RUST_LOG` takes precedence when set.
    #[arg(
        long,
        env = "MCPOAUTH_LOG_LEVEL",
        default_value = "info",
        global = true
    )]
    pub log_level: String,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Folder of `RemoteMCPServer` / `TokenExchangePolicy` / `Secret` YAML files. Re-read when it
    /// changes. Without it, the built-in examples are served.
    #[arg(long, env = "MCPOAUTH_MANIFESTS")]
    pub manifests: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// How the gateway learns who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum IdentityMode {
    /// One local user and one default session (for `serve` on a laptop).
    #[default]
    Anonymous,
}

/// Where tokens and pending flows are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum StoreKind {
    /// In this process (lost on restart; one replica only).
    #[default]
    Memory,
    /// In Valkey (or Redis): survives restarts, shared by several replicas.
    Valkey,
}

/// Valkey topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ValkeyTopology {
    #[default]
    Standalone,
    Cluster,
    Sentinel,
}

/// Valkey store and encryption-at-rest options (used with `--store valkey`).
#[derive(Debug, Clone, Args)]
pub struct ValkeyArgs {
    /// Valkey URL(s), comma-separated: `redis://`, `rediss://` (TLS), `valkey://`, `valkeys://`.
    /// Several for cluster seeds or sentinels.
    #[arg(long, env = "MCPOAUTH_VALKEY_URL", value_delimiter = ',')]
    pub valkey_url: Vec<String>,
    /// How the URLs are to be used.
    #[arg(long, env = "MCPOAUTH_VALKEY_TOPOLOGY", value_enum, default_value_t = ValkeyTopology::Standalone)]
    pub valkey_topology: ValkeyTopology,
    /// Sentinel service (master group) name, with `--valkey-topology sentinel`.
    #[arg(long, env = "MCPOAUTH_VALKEY_SENTINEL_SERVICE")]
    pub valkey_sentinel_service: Option<String>,
    /// ACL user name.
    #[arg(long, env = "MCPOAUTH_VALKEY_USERNAME")]
    pub valkey_username: Option<String>,
    /// File holding the password (for example a mounted Secret); surrounding whitespace is
    /// ignored.
    #[arg(long, env = "MCPOAUTH_VALKEY_PASSWORD_FILE")]
    pub valkey_password_file: Option<PathBuf>,
    /// CA bundle (PEM) to verify the server's TLS certificate (with `rediss://`/`valkeys://`).
    #[arg(long, env = "MCPOAUTH_VALKEY_TLS_CA_FILE")]
    pub valkey_tls_ca_file: Option<PathBuf>,
    /// Prefix of every key the gateway writes.
    #[arg(long, env = "MCPOAUTH_VALKEY_KEY_PREFIX", default_value = "mcpoauth:")]
    pub valkey_key_prefix: String,
    /// Connections in the pool.
    #[arg(long, env = "MCPOAUTH_VALKEY_POOL_SIZE", default_value_t = 4)]
    pub valkey_pool_size: usize,
    /// Connection timeout in milliseconds.
    #[arg(
        long,
        env = "MCPOAUTH_VALKEY_CONNECT_TIMEOUT_MS",
        default_value_t = 5000
    )]
    pub valkey_connect_timeout_ms: u64,
    /// Per-command timeout in milliseconds (a failed command returns an error, never hangs).
    #[arg(
        long,
        env = "MCPOAUTH_VALKEY_COMMAND_TIMEOUT_MS",
        default_value_t = 2000
    )]
    pub valkey_command_timeout_ms: u64,
    /// Idle sessions' tokens expire from Valkey after this many days (renewed on each write).
    #[arg(long, env = "MCPOAUTH_VALKEY_SESSION_TTL_DAYS", default_value_t = 30)]
    pub valkey_session_ttl_days: u64,
    /// Store values in Valkey unencrypted when no encryption key is configured. Never do this in
    /// production: Valkey then holds users' tokens in clear text.
    #[arg(long, env = "MCPOAUTH_VALKEY_ALLOW_PLAINTEXT", default_value_t = false)]
    pub valkey_allow_plaintext: bool,
    /// Encryption key ring: a file with one base64 32-byte key, a YAML key ring
    /// (`primary: <id>` plus `<id>: <base64 key>`), or a directory (a mounted Secret) with one
    /// entry per key id and a `primary` entry.
    #[arg(long, env = "MCPOAUTH_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: Option<PathBuf>,
}

/// Options shared by every subcommand that runs the HTTP server.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "MCPOAUTH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// URL at which browsers and identity providers reach this gateway (redirect URI and
    /// Client ID Metadata Document are derived from it). Default: `http://` + the listen address.
    #[arg(long, env = "MCPOAUTH_PUBLIC_URL")]
    pub public_url: Option<Url>,
    /// Allow a plain-HTTP public URL on a non-loopback host (never do this in production).
    #[arg(long, env = "MCPOAUTH_ALLOW_INSECURE_HTTP", default_value_t = false)]
    pub allow_insecure_http: bool,
    /// How callers are identified.
    #[arg(long, env = "MCPOAUTH_IDENTITY", value_enum, default_value_t = IdentityMode::Anonymous)]
    pub identity: IdentityMode,
    /// Token and flow-state store.
    #[arg(long, env = "MCPOAUTH_STORE", value_enum, default_value_t = StoreKind::Memory)]
    pub store: StoreKind,
    /// `client_name` published in the Client ID Metadata Document and shown by consent pages.
    #[arg(
        long,
        env = "MCPOAUTH_CLIENT_NAME",
        default_value = "MCP OAuth Gateway"
    )]
    pub client_name: String,
    /// `scope` of the Client ID Metadata Document: `auto` (every scope configured on a server
    /// or requested by a flow), a space-separated list, or `none` to omit the field (for
    /// several authorization servers that check it against different scope vocabularies).
    #[arg(long, env = "MCPOAUTH_CIMD_SCOPE", default_value = "auto")]
    pub cimd_scope: String,
    /// Refresh an access token this many seconds before it expires.
    #[arg(long, env = "MCPOAUTH_REFRESH_MARGIN_SECS", default_value_t = 60)]
    pub refresh_margin_secs: u64,
    /// Requests per minute allowed per client IP on `/oauth/connect` and `/oauth/callback`.
    #[arg(long, env = "MCPOAUTH_RATE_LIMIT_PER_MINUTE", default_value_t = 60)]
    pub rate_limit_per_minute: u32,
    /// Burst allowed above the per-minute rate.
    #[arg(long, env = "MCPOAUTH_RATE_LIMIT_BURST", default_value_t = 20)]
    pub rate_limit_burst: u32,
    #[command(flatten)]
    pub valkey: ValkeyArgs,
    /// Timeout in seconds for every outbound request (metadata, token endpoint).
    #[arg(long, env = "MCPOAUTH_OUTBOUND_TIMEOUT_SECS", default_value_t = 15)]
    pub outbound_timeout_secs: u64,
    /// Largest response body accepted from an outbound request, in bytes.
    #[arg(long, env = "MCPOAUTH_OUTBOUND_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub outbound_max_body_bytes: usize,
    /// How long discovered authorization-server metadata is cached, in seconds.
    #[arg(long, env = "MCPOAUTH_METADATA_CACHE_TTL_SECS", default_value_t = 900)]
    pub metadata_cache_ttl_secs: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_flag_has_an_mcpoauth_env_var() {
        let cmd = Cli::command();
        let mut checked = 0;
        let mut visit = vec![cmd];
        while let Some(c) = visit.pop() {
            for arg in c.get_arguments() {
                if arg.is_positional() || ["help", "version"].contains(&arg.get_id().as_str()) {
                    continue;
                }
                let env = arg.get_env().and_then(|e| e.to_str()).unwrap_or("");
                let long = arg.get_long().unwrap_or("");
                let expected = format!("MCPOAUTH_{}", long.replace('-', "_").to_uppercase());
                assert_eq!(env, expected, "flag --{long} must read {expected}");
                checked += 1;
            }
            visit.extend(c.get_subcommands().cloned());
        }
        assert!(
            checked >= 10,
            "expected to check the server flags, checked {checked}"
        );
    }

    #[test]
    fn serve_starts_with_no_configuration() {
        let cli = Cli::try_parse_from(["mcp-oauth-operator", "serve"]).expect("parse");
        let Command::Serve(args) = cli.command else {
            panic!("expected serve")
        };
        assert!(args.manifests.is_none());
        assert_eq!(args.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(args.server.identity, IdentityMode::Anonymous);
        assert_eq!(args.server.store, StoreKind::Memory);
        assert!(args.server.public_url.is_none());
    }
}
