//! Command-line interface. Every flag can also be given as an environment variable
//! `MCPOAUTH_<FLAG>` (for example `--public-url` ↔ `MCPOAUTH_PUBLIC_URL`).
//!
//! Clap only: the argument structs here are converted into each component's plain
//! configuration ([`ServerArgs::app_config`], [`RunArgs::controller_config`],
//! [`ValkeyArgs::settings`], …), and no component imports this module. The value enums are
//! mirrors of the components' own, so a clap detail never leaks into them.

use clap::{Args, CommandFactory as _, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// Default listen address of `serve` (a laptop: loopback only).
pub const SERVE_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
/// Default listen address of `run` (a pod: reachable by its Service).
pub const RUN_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080);

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
    /// Run the operator in a cluster (the default): reconcile `RemoteMCPServer` and
    /// `TokenExchangePolicy` resources from the API server and serve the gateway.
    Run(RunArgs),
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

impl Cli {
    /// Parses `argv` as the binary does: `run` when no subcommand is given, and the listen
    /// address defaulted per subcommand.
    pub fn try_parse_with_defaults<I, T>(argv: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let argv = with_default_subcommand(argv.into_iter().map(Into::into).collect());
        let mut cli = Self::try_parse_from(argv)?;
        cli.command.default_listen();
        cli.command.default_identity();
        cli.command.default_outbound_private_networks();
        Ok(cli)
    }
}

impl Command {
    /// Fills in the listen address the subcommand defaults to when none was given.
    pub fn default_listen(&mut self) {
        match self {
            Command::Run(args) => {
                args.server.listen.get_or_insert(RUN_LISTEN);
            }
            Command::Serve(args) => {
                args.server.listen.get_or_insert(SERVE_LISTEN);
            }
            Command::Crds | Command::RotateKeys(_) => {}
        }
    }

    /// Fills in whether outbound connections may reach private networks when not told:
    /// allowed for `serve` (a laptop's identity provider and MCP servers are often local),
    /// refused for `run` (in a cluster, a resource author must not reach the pod network).
    pub fn default_outbound_private_networks(&mut self) {
        match self {
            Command::Run(args) => {
                args.server
                    .outbound_allow_private_networks
                    .get_or_insert(false);
            }
            Command::Serve(args) => {
                args.server
                    .outbound_allow_private_networks
                    .get_or_insert(true);
            }
            Command::Crds | Command::RotateKeys(_) => {}
        }
    }

    /// Fills in the identity mode the subcommand defaults to when none was given: `oidc` for
    /// `run` (a shared gateway must know who calls), `anonymous` for `serve` (a laptop).
    pub fn default_identity(&mut self) {
        match self {
            Command::Run(args) => {
                args.server.identity.get_or_insert(IdentityMode::Oidc);
            }
            Command::Serve(args) => {
                args.server.identity.get_or_insert(IdentityMode::Anonymous);
            }
            Command::Crds | Command::RotateKeys(_) => {}
        }
    }
}

impl Command {
    /// Refuses `anonymous` identity where it would let anyone who can reach the gateway use
    /// every stored token: `run` (a cluster), and `serve` on a non-loopback address, unless
    /// `--allow-anonymous-identity` says the operator means it. Call after the defaults are
    /// applied.
    pub fn refuse_unsafe_identity(&self) -> Result<(), String> {
        let (args, subcommand) = match self {
            Command::Run(a) => (&a.server, "run"),
            Command::Serve(a) => (&a.server, "serve"),
            Command::Crds | Command::RotateKeys(_) => return Ok(()),
        };
        if args.identity != Some(IdentityMode::Anonymous) || args.allow_anonymous_identity {
            return Ok(());
        }
        let listen = args.listen.unwrap_or(SERVE_LISTEN);
        if subcommand == "serve" && listen.ip().is_loopback() {
            return Ok(());
        }
        let place = if subcommand == "run" {
            "`run` (a cluster)".to_owned()
        } else {
            format!("`serve` listening on {listen} (not loopback)")
        };
        Err(format!(
            "--identity anonymous with {place}: every caller who can reach the gateway would \
             share one user and use its stored tokens; use --identity oidc or header, or pass \
             --allow-anonymous-identity (MCPOAUTH_ALLOW_ANONYMOUS_IDENTITY=true) if that is \
             really meant"
        ))
    }
}

/// Global flags that take a value (they may come before the subcommand).
const GLOBAL_FLAGS_WITH_VALUE: [&str; 2] = ["--log-format", "--log-level"];

/// Inserts `run` where the subcommand would be when none is given, so
/// `mcp-oauth-operator --public-url …` (or no arguments at all) runs the operator. Leaves the
/// arguments alone when a subcommand is present or help/version is asked for.
pub fn with_default_subcommand(mut argv: Vec<OsString>) -> Vec<OsString> {
    let cmd = Cli::command();
    let is_subcommand = |arg: &str| {
        arg == "help"
            || cmd
                .get_subcommands()
                .any(|c| c.get_name() == arg || c.get_all_aliases().any(|a| a == arg))
    };
    let mut i = 1;
    while i < argv.len() {
        let Some(arg) = argv[i].to_str() else { break };
        if GLOBAL_FLAGS_WITH_VALUE.contains(&arg) {
            i += 2;
            continue;
        }
        if GLOBAL_FLAGS_WITH_VALUE.iter().any(|f| {
            arg.strip_prefix(f)
                .is_some_and(|rest| rest.starts_with('='))
        }) {
            i += 1;
            continue;
        }
        if is_subcommand(arg) || ["-h", "--help", "-V", "--version"].contains(&arg) {
            return argv;
        }
        break;
    }
    argv.insert(i.min(argv.len()), OsString::from("run"));
    argv
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Namespaces to watch, comma-separated. Empty: all namespaces.
    #[arg(long, env = "MCPOAUTH_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Namespace of the leader-election Lease. Default: `POD_NAMESPACE`, else `default`.
    #[arg(long, env = "MCPOAUTH_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Name of the leader-election Lease (only its holder writes status).
    #[arg(
        long,
        env = "MCPOAUTH_LEASE_NAME",
        default_value = "mcp-oauth-operator"
    )]
    pub lease_name: String,
    /// Seconds a leader may go without renewing before another replica takes over.
    #[arg(long, env = "MCPOAUTH_LEASE_DURATION_SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    pub lease_duration_secs: u64,
    /// This replica's identity (Lease holder, Event reporter). Default: `POD_NAME`, else the
    /// host name.
    #[arg(long, env = "MCPOAUTH_POD_NAME")]
    pub pod_name: Option<String>,
}

impl RunArgs {
    /// The Lease namespace: the flag, else `POD_NAMESPACE` (from `env`), else `default`.
    pub fn lease_namespace(&self, env: impl Fn(&str) -> Option<String>) -> String {
        self.leader_election_namespace
            .clone()
            .or_else(|| env("POD_NAMESPACE"))
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| "default".to_owned())
    }

    /// This replica's identity: the flag, else `POD_NAME`, else `HOSTNAME` (from `env`), else
    /// the kernel's host name.
    pub fn identity(&self, env: impl Fn(&str) -> Option<String>) -> String {
        self.pod_name
            .clone()
            .or_else(|| env("POD_NAME"))
            .or_else(|| env("HOSTNAME"))
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
            })
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| "mcp-oauth-operator".to_owned())
    }

    pub fn lease_duration(&self) -> Duration {
        Duration::from_secs(self.lease_duration_secs)
    }

    /// The controller's settings: watched namespaces, this replica's identity and its Lease,
    /// with the pod's environment (`env`) filling in what the flags leave out.
    pub fn controller_config(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> crate::controller::ControllerConfig {
        crate::controller::ControllerConfig {
            namespaces: self.namespaces.clone(),
            leadership: crate::controller::Leadership::Lease {
                namespace: self.lease_namespace(&env),
                name: self.lease_name.clone(),
                duration: self.lease_duration(),
            },
            identity: self.identity(&env),
        }
    }
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

impl From<LogFormat> for crate::telemetry::LogFormat {
    fn from(format: LogFormat) -> Self {
        match format {
            LogFormat::Text => Self::Text,
            LogFormat::Json => Self::Json,
        }
    }
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
    /// Callers present a bearer JWT of `--oidc-issuer` (validated against its JWKS); user =
    /// `sub`, session = `sid` (else the user).
    Oidc,
    /// An authenticating proxy in front names the user (and session) in request headers. Only
    /// behind a proxy that removes client-supplied copies of those headers.
    Header,
}

impl From<IdentityMode> for crate::identity::IdentityMode {
    fn from(mode: IdentityMode) -> Self {
        match mode {
            IdentityMode::Anonymous => Self::Anonymous,
            IdentityMode::Oidc => Self::Oidc,
            IdentityMode::Header => Self::Header,
        }
    }
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

impl From<StoreKind> for crate::store::StoreKind {
    fn from(kind: StoreKind) -> Self {
        match kind {
            StoreKind::Memory => Self::Memory,
            StoreKind::Valkey => Self::Valkey,
        }
    }
}

/// Valkey topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ValkeyTopology {
    #[default]
    Standalone,
    Cluster,
    Sentinel,
}

impl From<ValkeyTopology> for crate::store::ValkeyTopologyKind {
    fn from(topology: ValkeyTopology) -> Self {
        match topology {
            ValkeyTopology::Standalone => Self::Standalone,
            ValkeyTopology::Cluster => Self::Cluster,
            ValkeyTopology::Sentinel => Self::Sentinel,
        }
    }
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
    /// How long (milliseconds) a token read from Valkey is reused from memory by the request
    /// path; `0` reads Valkey on every request. Writes through this replica drop the entry at
    /// once; writes by other replicas (a logout there) are seen after at most this long.
    #[arg(long, env = "MCPOAUTH_VALKEY_TOKEN_CACHE_MS", default_value_t = 2000)]
    pub valkey_token_cache_ms: u64,
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
    /// Name of a Secret in the operator's own namespace holding the encryption key ring (one
    /// entry per key id plus `primary`), read through the API server and followed: a changed
    /// Secret applies without a restart. `run` only; excludes `--encryption-key-file`.
    #[arg(
        long,
        env = "MCPOAUTH_ENCRYPTION_KEY_SECRET",
        conflicts_with = "encryption_key_file"
    )]
    pub encryption_key_secret: Option<String>,
}

impl ValkeyArgs {
    /// The store's plain settings (also what `rotate-keys` runs with).
    pub fn settings(&self) -> crate::store::ValkeySettings {
        crate::store::ValkeySettings {
            valkey_url: self.valkey_url.clone(),
            valkey_topology: self.valkey_topology.into(),
            valkey_sentinel_service: self.valkey_sentinel_service.clone(),
            valkey_username: self.valkey_username.clone(),
            valkey_password_file: self.valkey_password_file.clone(),
            valkey_tls_ca_file: self.valkey_tls_ca_file.clone(),
            valkey_key_prefix: self.valkey_key_prefix.clone(),
            valkey_pool_size: self.valkey_pool_size,
            valkey_token_cache_ms: self.valkey_token_cache_ms,
            valkey_connect_timeout_ms: self.valkey_connect_timeout_ms,
            valkey_command_timeout_ms: self.valkey_command_timeout_ms,
            valkey_session_ttl_days: self.valkey_session_ttl_days,
            valkey_allow_plaintext: self.valkey_allow_plaintext,
            encryption_key_file: self.encryption_key_file.clone(),
            encryption_key_secret: self.encryption_key_secret.clone(),
        }
    }
}

/// Options shared by every subcommand that runs the HTTP server.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address to listen on. Default: `127.0.0.1:8080` for `serve`, `0.0.0.0:8080` for `run`.
    #[arg(long, env = "MCPOAUTH_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// URL at which browsers and identity providers reach this gateway (redirect URI and
    /// Client ID Metadata Document are derived from it). Default: `http://` + the listen address.
    #[arg(long, env = "MCPOAUTH_PUBLIC_URL")]
    pub public_url: Option<Url>,
    /// Allow a plain-HTTP public URL on a non-loopback host (never do this in production).
    #[arg(long, env = "MCPOAUTH_ALLOW_INSECURE_HTTP", default_value_t = false)]
    pub allow_insecure_http: bool,
    /// Origins besides the public URL's whose browser pages may call `/mcp/…` and the
    /// `/oauth/status|start|logout` endpoints (comma-separated `scheme://host[:port]`). A request
    /// with another `Origin`, or `Origin: null`, is refused with 403; one without is accepted.
    #[arg(long, env = "MCPOAUTH_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// `Host` values besides the public URL's host and the listen address that those endpoints
    /// answer (comma-separated `host` or `host:port`, e.g. an in-cluster Service name). Others
    /// are refused with 403 (DNS rebinding).
    #[arg(long, env = "MCPOAUTH_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// How callers are identified. Default: `anonymous` for `serve`, `oidc` for `run`.
    #[arg(long, env = "MCPOAUTH_IDENTITY", value_enum)]
    pub identity: Option<IdentityMode>,
    /// Accept `--identity anonymous` where it is not safe: with `run` (a cluster), or `serve`
    /// listening on a non-loopback address. Every caller then shares one user and its tokens.
    #[arg(
        long,
        env = "MCPOAUTH_ALLOW_ANONYMOUS_IDENTITY",
        default_value_t = false
    )]
    pub allow_anonymous_identity: bool,
    /// `oidc`: issuer of the callers' tokens (their `iss` must equal it exactly); its
    /// RFC 8414 / OpenID metadata gives the JWKS location.
    #[arg(long, env = "MCPOAUTH_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// `oidc`: extra accepted `aud` values, comma-separated or repeated (e.g. the client id an
    /// IdP without RFC 8707 support puts in `aud`). Tokens for the gateway's public URL or a
    /// server below `{public-url}/mcp/` are always accepted.
    #[arg(long, env = "MCPOAUTH_OIDC_AUDIENCE", value_delimiter = ',')]
    pub oidc_audience: Vec<String>,
    /// `oidc`: JWKS URL, instead of the issuer metadata's `jwks_uri`.
    #[arg(long, env = "MCPOAUTH_OIDC_JWKS_URI")]
    pub oidc_jwks_uri: Option<Url>,
    /// `oidc`: least seconds between two JWKS refetches caused by tokens naming an unknown key
    /// id (bounds the load a flood of bogus tokens can put on the IdP).
    #[arg(long, env = "MCPOAUTH_OIDC_JWKS_MIN_REFRESH_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub oidc_jwks_min_refresh_secs: u64,
    /// `oidc`: clock skew tolerated on `exp` / `nbf`, in seconds.
    #[arg(long, env = "MCPOAUTH_OIDC_LEEWAY_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=300))]
    pub oidc_leeway_secs: u64,
    /// `oidc`: scopes advertised in the gateway's protected-resource metadata, comma-separated.
    #[arg(long, env = "MCPOAUTH_OIDC_SCOPE", value_delimiter = ',')]
    pub oidc_scope: Vec<String>,
    /// `oidc`: the gateway's own client at `--oidc-issuer` (redirect URI
    /// `{public-url}/oauth/callback`). When set, a browser that opens a sign-in link first signs
    /// in there, and only the user who started the link may continue.
    #[arg(long, env = "MCPOAUTH_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// `oidc`: file holding the secret of `--oidc-client-id` (sent with HTTP Basic); without
    /// it the client is public (PKCE only).
    #[arg(
        long,
        env = "MCPOAUTH_OIDC_CLIENT_SECRET_FILE",
        requires = "oidc_client_id"
    )]
    pub oidc_client_secret_file: Option<PathBuf>,
    /// `header`: request header naming the authenticated user.
    #[arg(
        long,
        env = "MCPOAUTH_IDENTITY_USER_HEADER",
        default_value = "X-Forwarded-User"
    )]
    pub identity_user_header: String,
    /// `header`: request header naming the session. Default: none (one session per user).
    #[arg(long, env = "MCPOAUTH_IDENTITY_SESSION_HEADER")]
    pub identity_session_header: Option<String>,
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
    /// `scope` of the Client ID Metadata Document: `auto` (every scope configured on a server,
    /// plus `offline_access` once a flow requested it; never scopes named only by a remote
    /// server), a space-separated list, or `none` to omit the field (for several authorization
    /// servers that check it against different scope vocabularies).
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
    /// Addresses or CIDR ranges of proxies in front of the gateway (an Ingress controller, a
    /// load balancer), comma-separated, e.g. `10.0.0.0/8,fd00::/8`. A request from one of them
    /// is rate-limited by the client address in `X-Forwarded-For` (the rightmost address that
    /// is not itself a trusted proxy). Empty: the connection's peer address is used.
    #[arg(long, env = "MCPOAUTH_TRUSTED_PROXIES", value_delimiter = ',', value_parser = crate::http::Cidr::parse)]
    pub trusted_proxies: Vec<crate::http::Cidr>,
    /// Serve `/metrics` on this separate address (e.g. `0.0.0.0:9090`) instead of the main
    /// listener, so an Ingress in front of the main port never exposes it.
    #[arg(long, env = "MCPOAUTH_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub valkey: ValkeyArgs,
    /// Timeout in seconds for every outbound request (metadata, token endpoint).
    #[arg(long, env = "MCPOAUTH_OUTBOUND_TIMEOUT_SECS", default_value_t = 15)]
    pub outbound_timeout_secs: u64,
    /// Largest response body accepted from an outbound request, in bytes.
    #[arg(long, env = "MCPOAUTH_OUTBOUND_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub outbound_max_body_bytes: usize,
    /// Allow outbound connections (metadata discovery, token endpoints, remote MCP servers) to
    /// loopback, private, link-local and shared addresses. Cloud-metadata, unspecified and
    /// multicast addresses are refused regardless. `--outbound-allow-private-networks` alone
    /// means `true`; `=false` refuses. Default: `true` for `serve`, `false` for `run`.
    #[arg(
        long,
        env = "MCPOAUTH_OUTBOUND_ALLOW_PRIVATE_NETWORKS",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub outbound_allow_private_networks: Option<bool>,
    /// How long discovered authorization-server metadata is cached, in seconds.
    #[arg(long, env = "MCPOAUTH_METADATA_CACHE_TTL_SECS", default_value_t = 900)]
    pub metadata_cache_ttl_secs: u64,
    /// PEM file of CA certificates trusted (in addition to the system's) for the token
    /// endpoints of `TokenExchangePolicy` resources, e.g. a private CA of an mTLS endpoint.
    #[arg(long, env = "MCPOAUTH_EXCHANGE_CA_FILE")]
    pub exchange_ca_file: Option<PathBuf>,
    /// Issuers whose token endpoints may receive callers' tokens in `exchange` mode,
    /// comma-separated (a TokenExchangePolicy's `expectedIssuer` must be one of them; its
    /// endpoint is then checked against that issuer's metadata). Default: `--oidc-issuer`
    /// alone, the provider that issued the callers' tokens.
    #[arg(long, env = "MCPOAUTH_EXCHANGE_ALLOWED_ISSUERS", value_delimiter = ',')]
    pub exchange_allowed_issuers: Vec<String>,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    #[command(flatten)]
    pub listener: ListenerArgs,
}

impl ServerArgs {
    /// The server's plain configuration. Call after the subcommand defaults are applied
    /// ([`Cli::try_parse_with_defaults`]) and [`Command::refuse_unsafe_identity`] has passed. A
    /// value still unset (an embedding that skipped the defaults) falls back as before: the
    /// `serve` listen address (loopback), `anonymous` identity, private networks refused.
    pub fn app_config(&self) -> crate::app::AppConfig {
        crate::app::AppConfig {
            listen: self.listen.unwrap_or(SERVE_LISTEN),
            public_url: self.public_url.clone(),
            allow_insecure_http: self.allow_insecure_http,
            allowed_origins: self.allowed_origins.clone(),
            allowed_hosts: self.allowed_hosts.clone(),
            identity: self.identity_settings(),
            store: self.store.into(),
            valkey: self.valkey.settings(),
            client_name: self.client_name.clone(),
            cimd_scope: self.cimd_scope.clone(),
            refresh_margin: Duration::from_secs(self.refresh_margin_secs),
            rate_limit: crate::http::RateLimit {
                per_minute: self.rate_limit_per_minute,
                burst: self.rate_limit_burst,
                trusted_proxies: self.trusted_proxies.clone(),
            },
            metrics_listen: self.metrics_listen,
            outbound: crate::app::OutboundSettings {
                timeout: Duration::from_secs(self.outbound_timeout_secs),
                max_body_bytes: self.outbound_max_body_bytes,
                allow_private_networks: self.outbound_allow_private_networks.unwrap_or(false),
            },
            metadata_cache_ttl: Duration::from_secs(self.metadata_cache_ttl_secs),
            exchange_ca_file: self.exchange_ca_file.clone(),
            exchange_allowed_issuers: self.exchange_allowed_issuers.clone(),
            gateway: self.gateway.config(),
            listener: crate::app::listener::ListenerLimits {
                trusted_proxies: self.trusted_proxies.clone(),
                ..self.listener.limits()
            },
        }
    }

    /// How callers are identified (no `--identity`: `anonymous`; `run` has already filled in
    /// its `oidc` default).
    pub fn identity_settings(&self) -> crate::identity::IdentitySettings {
        crate::identity::IdentitySettings {
            mode: self.identity.unwrap_or_default().into(),
            oidc_issuer: self.oidc_issuer.clone(),
            oidc_audience: self.oidc_audience.clone(),
            oidc_jwks_uri: self.oidc_jwks_uri.clone(),
            oidc_jwks_min_refresh: Duration::from_secs(self.oidc_jwks_min_refresh_secs),
            oidc_leeway: Duration::from_secs(self.oidc_leeway_secs),
            oidc_scope: self.oidc_scope.clone(),
            oidc_client_id: self.oidc_client_id.clone(),
            oidc_client_secret_file: self.oidc_client_secret_file.clone(),
            user_header: self.identity_user_header.clone(),
            session_header: self.identity_session_header.clone(),
            allow_insecure_http: self.allow_insecure_http,
        }
    }
}

/// Limits of the gateway's proxy path (`/mcp/{namespace}/{name}`).
#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// Seconds allowed to open a connection (TCP + TLS) to a remote MCP server.
    #[arg(long, env = "MCPOAUTH_UPSTREAM_CONNECT_TIMEOUT_SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub upstream_connect_timeout_secs: u64,
    /// Seconds allowed until a remote MCP server's response headers arrive. Response bodies
    /// (SSE streams) have no time limit.
    #[arg(long, env = "MCPOAUTH_UPSTREAM_RESPONSE_TIMEOUT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub upstream_response_timeout_secs: u64,
    /// Largest request body accepted by the gateway, in bytes.
    #[arg(long, env = "MCPOAUTH_MAX_REQUEST_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_request_body_bytes: usize,
    /// Seconds allowed for a caller's whole request body to arrive (a body trickled slower is
    /// answered 408 and its connection closed).
    #[arg(long, env = "MCPOAUTH_REQUEST_BODY_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_body_timeout_secs: u64,
    /// Total bytes of `initialize` requests the gateway keeps for MCP sessions it opened before
    /// the user signed in (the oldest are forgotten first).
    #[arg(long, env = "MCPOAUTH_GATEWAY_SESSIONS_MAX_BYTES", default_value_t = 64 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub gateway_sessions_max_bytes: u64,
    /// Largest `initialize` request the gateway keeps for a session opened before sign-in; a
    /// larger one is refused with 413.
    #[arg(long, env = "MCPOAUTH_GATEWAY_SESSION_INITIALIZE_MAX_BYTES", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub gateway_session_initialize_max_bytes: u64,
    /// Seconds a gateway session whose user has not signed in yet (nothing started at the remote
    /// server) is kept without use.
    #[arg(long, env = "MCPOAUTH_GATEWAY_SESSION_PENDING_TTL_SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub gateway_session_pending_ttl_secs: u64,
    /// Seconds a started gateway session is kept without use.
    #[arg(long, env = "MCPOAUTH_GATEWAY_SESSION_IDLE_SECS", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..))]
    pub gateway_session_idle_secs: u64,
}

impl GatewayArgs {
    pub fn config(&self) -> crate::gateway::GatewayConfig {
        crate::gateway::GatewayConfig {
            connect_timeout: Duration::from_secs(self.upstream_connect_timeout_secs),
            response_timeout: Duration::from_secs(self.upstream_response_timeout_secs),
            max_request_body_bytes: self.max_request_body_bytes,
            request_body_timeout: Duration::from_secs(self.request_body_timeout_secs),
            sessions: crate::gateway::SessionLimits {
                max_bytes: self.gateway_sessions_max_bytes,
                max_initialize_bytes: usize::try_from(self.gateway_session_initialize_max_bytes)
                    .unwrap_or(usize::MAX),
                pending_ttl: Duration::from_secs(self.gateway_session_pending_ttl_secs),
                idle: Duration::from_secs(self.gateway_session_idle_secs),
            },
            ..crate::gateway::GatewayConfig::default()
        }
    }
}

/// Limits of the HTTP listener, against clients that hold connections open.
#[derive(Debug, Clone, Args)]
pub struct ListenerArgs {
    /// Seconds allowed for a request's headers to arrive (HTTP/1.1), also between requests on
    /// a kept-alive connection.
    #[arg(long, env = "MCPOAUTH_HEADER_READ_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout_secs: u64,
    /// Open connections allowed per client address (IPv6: per /64); more are closed on accept.
    /// Behind an Ingress or load balancer every connection comes from its few addresses: set
    /// this above the number of concurrent streams expected through one of them. 0: no limit.
    #[arg(
        long,
        env = "MCPOAUTH_MAX_CONNECTIONS_PER_CLIENT",
        default_value_t = 512
    )]
    pub max_connections_per_client: usize,
    /// Open connections allowed in all; more are closed on accept. 0: no limit.
    #[arg(long, env = "MCPOAUTH_MAX_CONNECTIONS", default_value_t = 16_384)]
    pub max_connections: usize,
}

impl ListenerArgs {
    /// The listener's limits; the trusted proxies come from [`ServerArgs::trusted_proxies`].
    pub fn limits(&self) -> crate::app::listener::ListenerLimits {
        crate::app::listener::ListenerLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            max_connections_per_client: self.max_connections_per_client,
            max_connections: self.max_connections,
            trusted_proxies: Vec::new(),
        }
    }
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
        let cli = Cli::try_parse_with_defaults(["mcp-oauth-operator", "serve"]).expect("parse");
        let Command::Serve(args) = cli.command else {
            panic!("expected serve")
        };
        assert!(args.manifests.is_none());
        assert_eq!(
            args.server.listen.map(|l| l.to_string()).as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(args.server.identity, Some(IdentityMode::Anonymous));
        assert_eq!(args.server.store, StoreKind::Memory);
        assert!(args.server.public_url.is_none());
    }

    fn argv(args: &[&str]) -> Vec<String> {
        with_default_subcommand(args.iter().map(OsString::from).collect())
            .into_iter()
            .map(|a| a.into_string().expect("utf-8"))
            .collect()
    }

    #[test]
    fn run_is_the_default_subcommand() {
        assert_eq!(argv(&["op"]), ["op", "run"]);
        assert_eq!(
            argv(&["op", "--public-url", "https://gw"]),
            ["op", "run", "--public-url", "https://gw"]
        );
        assert_eq!(
            argv(&["op", "--log-format", "json", "--listen", "0.0.0.0:1"]),
            ["op", "--log-format", "json", "run", "--listen", "0.0.0.0:1"]
        );
        assert_eq!(
            argv(&["op", "--log-level=debug"]),
            ["op", "--log-level=debug", "run"]
        );
    }

    #[test]
    fn explicit_subcommands_help_and_version_are_left_alone() {
        for args in [
            &["op", "serve"][..],
            &["op", "crds"],
            &["op", "rotate-keys"],
            &["op", "run", "--namespaces", "a"],
            &["op", "--log-format", "json", "serve"],
            &["op", "help"],
            &["op", "--help"],
            &["op", "-V"],
        ] {
            assert_eq!(argv(args), args, "{args:?}");
        }
    }

    #[test]
    fn run_listens_on_all_interfaces_by_default_and_parses_its_flags() {
        let cli = Cli::try_parse_with_defaults([
            "op",
            "--public-url",
            "https://gw.example.com",
            "--namespaces",
            "team-a,team-b",
            "--pod-name",
            "replica-1",
        ])
        .expect("parse");
        let Command::Run(args) = cli.command else {
            panic!("expected run")
        };
        assert_eq!(args.server.listen, Some(RUN_LISTEN));
        assert_eq!(args.namespaces, ["team-a", "team-b"]);
        assert_eq!(args.lease_name, "mcp-oauth-operator");
        assert_eq!(args.lease_duration(), Duration::from_secs(15));
        assert_eq!(args.identity(|_| None), "replica-1");
        let explicit =
            Cli::try_parse_with_defaults(["op", "run", "--listen", "127.0.0.1:9"]).expect("parse");
        let Command::Run(explicit) = explicit.command else {
            panic!("expected run")
        };
        assert_eq!(explicit.server.listen.map(|l| l.port()), Some(9));
    }

    #[test]
    fn run_defaults_to_oidc_identity_and_parses_identity_flags() {
        let cli = Cli::try_parse_with_defaults(["op"]).expect("parse");
        let Command::Run(args) = cli.command else {
            panic!("expected run")
        };
        assert_eq!(args.server.identity, Some(IdentityMode::Oidc));
        assert_eq!(args.server.identity_user_header, "X-Forwarded-User");
        assert_eq!(args.server.identity_session_header, None);
        assert_eq!(args.server.oidc_jwks_min_refresh_secs, 60);
        assert_eq!(args.server.oidc_leeway_secs, 30);
        let cli = Cli::try_parse_with_defaults([
            "op",
            "run",
            "--identity",
            "header",
            "--oidc-issuer",
            "https://idp.example.com",
            "--oidc-audience",
            "a,b",
            "--oidc-audience",
            "c",
            "--identity-session-header",
            "X-Session",
        ])
        .expect("parse");
        let Command::Run(args) = cli.command else {
            panic!("expected run")
        };
        assert_eq!(args.server.identity, Some(IdentityMode::Header));
        assert_eq!(args.server.oidc_audience, ["a", "b", "c"]);
        assert_eq!(
            args.server.oidc_issuer.as_deref(),
            Some("https://idp.example.com")
        );
        assert_eq!(
            args.server.identity_session_header.as_deref(),
            Some("X-Session")
        );
        assert!(
            Cli::try_parse_with_defaults(["op", "run", "--oidc-jwks-min-refresh-secs", "0"])
                .is_err(),
            "a zero refetch interval would not bound anything"
        );
    }

    #[test]
    fn private_networks_are_allowed_for_serve_and_refused_for_run_by_default() {
        let parse = |argv: &[&str]| match Cli::try_parse_with_defaults(argv.iter().copied())
            .expect("parse")
            .command
        {
            Command::Run(a) => a.server.outbound_allow_private_networks,
            Command::Serve(a) => a.server.outbound_allow_private_networks,
            _ => unreachable!("run or serve"),
        };
        assert_eq!(parse(&["op"]), Some(false));
        assert_eq!(parse(&["op", "serve"]), Some(true));
        assert_eq!(
            parse(&["op", "run", "--outbound-allow-private-networks"]),
            Some(true)
        );
        assert_eq!(
            parse(&["op", "serve", "--outbound-allow-private-networks=false"]),
            Some(false)
        );
        assert!(
            Cli::try_parse_with_defaults(["op", "run", "--outbound-allow-private-networks=maybe"])
                .is_err()
        );
    }

    #[test]
    fn anonymous_identity_is_refused_outside_a_loopback_serve_unless_allowed() {
        let check = |argv: &[&str]| {
            Cli::try_parse_with_defaults(argv.iter().copied())
                .expect("parse")
                .command
                .refuse_unsafe_identity()
        };
        assert!(check(&["op", "serve"]).is_ok(), "a laptop's default");
        assert!(check(&["op", "serve", "--listen", "[::1]:9"]).is_ok());
        assert!(check(&["op"]).is_ok(), "run defaults to oidc");
        let err = check(&["op", "run", "--identity", "anonymous"]).expect_err("run");
        assert!(err.contains("--allow-anonymous-identity"), "{err}");
        let err = check(&["op", "serve", "--listen", "0.0.0.0:8080"]).expect_err("serve");
        assert!(err.contains("0.0.0.0:8080"), "{err}");
        assert!(
            check(&[
                "op",
                "serve",
                "--listen",
                "10.1.2.3:1",
                "--identity",
                "header"
            ])
            .is_ok()
        );
        assert!(
            check(&[
                "op",
                "run",
                "--identity",
                "anonymous",
                "--allow-anonymous-identity"
            ])
            .is_ok()
        );
        assert!(check(&["op", "crds"]).is_ok());
    }

    #[test]
    fn trusted_proxies_and_metrics_listen_parse() {
        let cli = Cli::try_parse_with_defaults([
            "op",
            "serve",
            "--trusted-proxies",
            "10.0.0.0/8,192.168.1.7,fd00::/8",
            "--metrics-listen",
            "0.0.0.0:9090",
        ])
        .expect("parse");
        let Command::Serve(args) = cli.command else {
            panic!("expected serve")
        };
        assert_eq!(args.server.trusted_proxies.len(), 3);
        assert_eq!(args.server.metrics_listen.map(|a| a.port()), Some(9090));
        assert!(
            Cli::try_parse_with_defaults(["op", "serve", "--trusted-proxies", "10.0.0.0/33"])
                .is_err()
        );
    }

    #[test]
    fn lease_namespace_and_identity_fall_back_to_the_pod_environment() {
        let cli = Cli::try_parse_with_defaults(["op"]).expect("parse");
        let Command::Run(args) = cli.command else {
            panic!("expected run")
        };
        let pod_env = |k: &str| match k {
            "POD_NAMESPACE" => Some("operators".to_owned()),
            "POD_NAME" => Some("op-7d9f-abc".to_owned()),
            _ => None,
        };
        assert_eq!(args.lease_namespace(pod_env), "operators");
        assert_eq!(args.identity(pod_env), "op-7d9f-abc");
        assert_eq!(args.lease_namespace(|_| None), "default");
        assert!(!args.identity(|_| None).is_empty());
    }

    fn server_args(argv: &[&str]) -> ServerArgs {
        let mut full = vec!["op"];
        full.extend_from_slice(argv);
        match Cli::try_parse_with_defaults(full).expect("parse").command {
            Command::Run(r) => r.server,
            Command::Serve(s) => s.server,
            _ => unreachable!("run or serve"),
        }
    }

    #[test]
    fn the_identity_flags_become_the_identity_settings() {
        use crate::identity::IdentityMode as Mode;
        assert_eq!(
            server_args(&["serve"]).identity_settings().mode,
            Mode::Anonymous
        );
        assert_eq!(server_args(&["run"]).identity_settings().mode, Mode::Oidc);
        let settings = server_args(&[
            "run",
            "--oidc-issuer",
            "https://idp.example.com",
            "--oidc-audience",
            "a,b",
            "--oidc-jwks-uri",
            "https://idp.example.com/jwks",
            "--oidc-jwks-min-refresh-secs",
            "7",
            "--oidc-leeway-secs",
            "3",
            "--oidc-scope",
            "mcp",
            "--oidc-client-id",
            "gw",
            "--oidc-client-secret-file",
            "/secret",
            "--identity-session-header",
            "X-Session",
            "--allow-insecure-http",
        ])
        .identity_settings();
        assert_eq!(
            settings.oidc_issuer.as_deref(),
            Some("https://idp.example.com")
        );
        assert_eq!(settings.oidc_audience, ["a", "b"]);
        assert_eq!(
            settings.oidc_jwks_uri.as_ref().map(Url::as_str),
            Some("https://idp.example.com/jwks")
        );
        assert_eq!(settings.oidc_jwks_min_refresh, Duration::from_secs(7));
        assert_eq!(settings.oidc_leeway, Duration::from_secs(3));
        assert_eq!(settings.oidc_scope, ["mcp"]);
        assert_eq!(settings.oidc_client_id.as_deref(), Some("gw"));
        assert_eq!(
            settings.oidc_client_secret_file.as_deref(),
            Some(std::path::Path::new("/secret"))
        );
        assert_eq!(settings.user_header, "X-Forwarded-User");
        assert_eq!(settings.session_header.as_deref(), Some("X-Session"));
        assert!(settings.allow_insecure_http);
        let defaults = server_args(&["serve"]).identity_settings();
        let plain = crate::identity::IdentitySettings::default();
        assert_eq!(defaults.oidc_jwks_min_refresh, plain.oidc_jwks_min_refresh);
        assert_eq!(defaults.oidc_leeway, plain.oidc_leeway);
        assert_eq!(defaults.user_header, plain.user_header);
    }

    #[test]
    fn a_client_secret_needs_a_client_id() {
        let argv = [
            "op",
            "run",
            "--oidc-issuer",
            "https://idp.example.com",
            "--oidc-client-secret-file",
            "/secret",
        ];
        assert!(Cli::try_parse_with_defaults(argv).is_err());
    }

    #[test]
    fn key_file_and_key_secret_exclude_each_other() {
        let argv = [
            "op",
            "serve",
            "--encryption-key-secret",
            "k",
            "--encryption-key-file",
            "/k",
        ];
        assert!(Cli::try_parse_with_defaults(argv).is_err());
    }

    #[test]
    fn the_server_flags_become_the_app_config() {
        let run = server_args(&["run"]).app_config();
        assert_eq!(run.listen, RUN_LISTEN);
        assert!(!run.outbound.allow_private_networks);
        assert_eq!(run.store, crate::store::StoreKind::Memory);
        let serve = server_args(&[
            "serve",
            "--store",
            "valkey",
            "--valkey-url",
            "redis://a:6379,redis://b:6379",
            "--valkey-topology",
            "sentinel",
            "--valkey-sentinel-service",
            "mymaster",
            "--encryption-key-file",
            "/keys",
            "--trusted-proxies",
            "10.0.0.0/8",
            "--max-connections",
            "9",
            "--outbound-timeout-secs",
            "4",
            "--refresh-margin-secs",
            "11",
            "--upstream-connect-timeout-secs",
            "2",
        ])
        .app_config();
        assert_eq!(serve.listen, SERVE_LISTEN);
        assert!(serve.outbound.allow_private_networks);
        assert_eq!(serve.outbound.timeout, Duration::from_secs(4));
        assert_eq!(serve.refresh_margin, Duration::from_secs(11));
        assert_eq!(serve.store, crate::store::StoreKind::Valkey);
        assert_eq!(
            serve.valkey.valkey_url,
            ["redis://a:6379", "redis://b:6379"]
        );
        assert_eq!(
            serve.valkey.valkey_topology,
            crate::store::ValkeyTopologyKind::Sentinel
        );
        assert_eq!(
            serve.valkey.valkey_sentinel_service.as_deref(),
            Some("mymaster")
        );
        assert_eq!(serve.valkey.valkey_key_prefix, "mcpoauth:");
        assert_eq!(
            serve.valkey.encryption_key_file.as_deref(),
            Some(std::path::Path::new("/keys"))
        );
        assert_eq!(serve.rate_limit.trusted_proxies.len(), 1);
        assert_eq!(
            serve.listener.trusted_proxies,
            serve.rate_limit.trusted_proxies
        );
        assert_eq!(serve.listener.max_connections, 9);
        assert_eq!(serve.gateway.connect_timeout, Duration::from_secs(2));
    }

    #[test]
    fn run_flags_become_the_controller_config() {
        let cli = Cli::try_parse_with_defaults([
            "op",
            "--namespaces",
            "a,b",
            "--lease-name",
            "gw",
            "--lease-duration-secs",
            "20",
        ])
        .expect("parse");
        let Command::Run(args) = cli.command else {
            panic!("expected run")
        };
        let env = |k: &str| (k == "POD_NAMESPACE").then(|| "ops".to_owned());
        let config = args.controller_config(env);
        assert_eq!(config.namespaces, ["a", "b"]);
        let crate::controller::Leadership::Lease {
            namespace,
            name,
            duration,
        } = config.leadership
        else {
            panic!("a Lease")
        };
        assert_eq!(
            (namespace.as_str(), name.as_str(), duration),
            ("ops", "gw", Duration::from_secs(20))
        );
        assert!(!config.identity.is_empty());
    }

    #[test]
    fn log_formats_map_to_telemetry() {
        assert_eq!(
            crate::telemetry::LogFormat::from(LogFormat::Json),
            crate::telemetry::LogFormat::Json
        );
        assert_eq!(
            crate::telemetry::LogFormat::from(LogFormat::Text),
            crate::telemetry::LogFormat::Text
        );
    }
}
