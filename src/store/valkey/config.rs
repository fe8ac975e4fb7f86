//! Valkey connection settings and their validation (pure: no I/O, no network).
//!
//! Every error says what to change. URLs never carry credentials: a password in a URL ends up
//! in process listings, logs and error messages, so it must come from a file or Secret instead
//! (and URLs are therefore safe to quote in messages).

use secrecy::SecretString;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

pub const DEFAULT_KEY_PREFIX: &str = "mcpoauth:";
pub const DEFAULT_POOL_SIZE: usize = 4;
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a session's tokens live after its last write.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

const DEFAULT_PORT: u16 = 6379;
const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// How the Valkey servers are deployed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ValkeyTopology {
    /// One server (URL count: exactly one).
    #[default]
    Standalone,
    /// A Valkey cluster; the URLs are seed nodes, the rest is discovered.
    Cluster,
    /// Servers behind Sentinel; the URLs are the sentinels, `service_name` the monitored primary.
    Sentinel { service_name: String },
}

/// Everything needed to reach Valkey and lay out keys.
#[derive(Debug, Clone)]
pub struct ValkeyConfig {
    /// `redis://`, `valkey://` (plain) or `rediss://`, `valkeys://` (TLS) URLs: `host[:port][/db]`.
    pub urls: Vec<String>,
    pub topology: ValkeyTopology,
    /// ACL user; needs `password`.
    pub username: Option<String>,
    /// Also used for the sentinels in the sentinel topology.
    pub password: Option<SecretString>,
    /// PEM bundle of the CA(s) that sign the server certificates; without it, the system roots.
    pub tls_ca_file: Option<PathBuf>,
    /// Prepended to every key, so several deployments can share one Valkey.
    pub key_prefix: String,
    /// Connections (each multiplexes many concurrent commands).
    pub pool_size: usize,
    /// Limit for establishing one connection (TCP + TLS + AUTH).
    pub connect_timeout: Duration,
    /// Limit for one command, including waiting for a reconnection: a dead Valkey makes
    /// operations fail after this long instead of hanging.
    pub command_timeout: Duration,
    /// Lifetime of a session's tokens (and its user index entries) after its last write.
    pub session_ttl: Duration,
}

impl ValkeyConfig {
    /// Defaults for everything but the URLs.
    pub fn new(urls: Vec<String>) -> Self {
        Self {
            urls,
            topology: ValkeyTopology::Standalone,
            username: None,
            password: None,
            tls_ca_file: None,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            session_ttl: DEFAULT_SESSION_TTL,
        }
    }

    /// Check the settings and extract where to connect.
    pub fn validate(&self) -> Result<Endpoints, ValkeyConfigError> {
        use ValkeyConfigError as E;
        if self.urls.is_empty() {
            return Err(E::NoUrl);
        }
        let sentinel = matches!(self.topology, ValkeyTopology::Sentinel { .. });
        let default_port = if sentinel {
            DEFAULT_SENTINEL_PORT
        } else {
            DEFAULT_PORT
        };
        let mut servers = Vec::with_capacity(self.urls.len());
        let mut tls = None;
        let mut database = None;
        for (i, raw) in self.urls.iter().enumerate() {
            let n = i + 1;
            let url = parse_url(n, raw)?;
            let url_tls = matches!(url.scheme(), "rediss" | "valkeys");
            if tls.is_some_and(|t| t != url_tls) {
                return Err(E::MixedTls);
            }
            tls = Some(url_tls);
            let host = url.host_str().unwrap_or_default();
            if host.is_empty() {
                return Err(E::BadUrl {
                    n,
                    reason: "it has no host".into(),
                });
            }
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            servers.push((host, url.port().unwrap_or(default_port)));
            let db = parse_database(n, &url)?;
            if db.is_some() && database.is_some() && db != database {
                return Err(E::BadUrl {
                    n,
                    reason: "it names another database than an earlier URL".into(),
                });
            }
            database = database.or(db);
        }
        match &self.topology {
            ValkeyTopology::Standalone if servers.len() != 1 => {
                return Err(E::StandaloneNeedsOneUrl(servers.len()));
            }
            ValkeyTopology::Cluster if database.is_some_and(|d| d != 0) => {
                return Err(E::ClusterDatabase);
            }
            ValkeyTopology::Sentinel { service_name } if service_name.trim().is_empty() => {
                return Err(E::NoSentinelService);
            }
            _ => {}
        }
        let tls = tls.unwrap_or(false);
        if self.tls_ca_file.is_some() && !tls {
            return Err(E::CaWithoutTls);
        }
        if self.username.is_some() && self.password.is_none() {
            return Err(E::UsernameWithoutPassword);
        }
        if self.key_prefix.chars().any(char::is_control) {
            return Err(E::BadPrefix);
        }
        if self.pool_size == 0 {
            return Err(E::PoolSize);
        }
        for (what, value) in [
            ("connect timeout", self.connect_timeout),
            ("command timeout", self.command_timeout),
            ("session TTL", self.session_ttl),
        ] {
            if value.is_zero() {
                return Err(E::ZeroDuration(what));
            }
        }
        Ok(Endpoints {
            servers,
            tls,
            database: if matches!(self.topology, ValkeyTopology::Cluster) {
                None
            } else {
                database
            },
        })
    }
}

/// Where to connect, as checked by [`ValkeyConfig::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// `(host, port)`: the server, the cluster seed nodes or the sentinels.
    pub servers: Vec<(String, u16)>,
    pub tls: bool,
    pub database: Option<u8>,
}

fn parse_url(n: usize, raw: &str) -> Result<Url, ValkeyConfigError> {
    use ValkeyConfigError as E;
    // `url`'s errors never quote the input, which may hold a password.
    let url = Url::parse(raw.trim()).map_err(|source| E::InvalidUrl { n, source })?;
    if !matches!(url.scheme(), "redis" | "rediss" | "valkey" | "valkeys") {
        return Err(E::BadUrl {
            n,
            reason: format!(
                "its scheme is {:?}; use redis:// or valkey:// (plain) or rediss:// or \
                 valkeys:// (TLS)",
                url.scheme()
            ),
        });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(E::CredentialsInUrl { n });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(E::BadUrl {
            n,
            reason: "it has a query or fragment; set topology and options with their own flags"
                .into(),
        });
    }
    Ok(url)
}

fn parse_database(n: usize, url: &Url) -> Result<Option<u8>, ValkeyConfigError> {
    let path = url.path().trim_matches('/');
    if path.is_empty() {
        return Ok(None);
    }
    path.parse::<u8>()
        .map(Some)
        .map_err(|_| ValkeyConfigError::BadUrl {
            n,
            reason: "its path must be empty or a database number (0-255)".into(),
        })
}

/// A Valkey setting is unusable; each message says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ValkeyConfigError {
    #[error("no Valkey URL configured: set --valkey-url (e.g. redis://valkey:6379)")]
    NoUrl,
    #[error("Valkey URL #{n} is unusable: {reason}")]
    BadUrl { n: usize, reason: String },
    #[error("Valkey URL #{n} is unusable: it is not a valid URL ({source})")]
    InvalidUrl {
        n: usize,
        #[source]
        source: url::ParseError,
    },
    #[error(
        "Valkey URL #{n} contains credentials; remove them and give the password with \
         --valkey-password-file (or the Secret) so it never appears in process listings or logs"
    )]
    CredentialsInUrl { n: usize },
    #[error("the Valkey URLs mix TLS (rediss://, valkeys://) and plain schemes; use one kind")]
    MixedTls,
    #[error(
        "the standalone Valkey topology takes exactly one URL, got {0}; for several nodes set \
         the topology to cluster or sentinel"
    )]
    StandaloneNeedsOneUrl(usize),
    #[error("a Valkey cluster has only database 0; remove the database number from the URLs")]
    ClusterDatabase,
    #[error("the sentinel topology needs the name of the monitored primary (service name)")]
    NoSentinelService,
    #[error(
        "a Valkey CA file is configured but the URL does not use TLS; use rediss:// or valkeys://"
    )]
    CaWithoutTls,
    #[error("a Valkey username is configured without a password; configure the password file")]
    UsernameWithoutPassword,
    #[error("the Valkey key prefix contains control characters; use printable characters")]
    BadPrefix,
    #[error("the Valkey pool size must be at least 1")]
    PoolSize,
    #[error(
        "the Valkey {0} must be greater than zero (a zero limit would let a dead Valkey hang \
         requests or expire everything)"
    )]
    ZeroDuration(&'static str),
    #[error("cannot read the Valkey CA file {}: {source}", path.display())]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the Valkey CA file {} holds no usable PEM certificate: {source}", path.display())]
    CaContent {
        path: PathBuf,
        #[source]
        source: CaProblem,
    },
    #[error("cannot set up TLS for Valkey: loading the system roots: {0}")]
    SystemRoots(#[source] fred::error::Error),
    #[error("cannot set up TLS for Valkey: {0}")]
    Tls(#[source] rustls::Error),
    #[error("cannot create the Valkey client: {0}")]
    Client(#[source] fred::error::Error),
}

/// Why a CA bundle gives no trust anchor.
#[derive(Debug, thiserror::Error)]
pub enum CaProblem {
    #[error("malformed PEM ({0})")]
    Pem(#[source] rustls::pki_types::pem::Error),
    #[error("a certificate is not a usable CA ({0})")]
    NotCa(#[source] rustls::Error),
    #[error("no CERTIFICATE block found")]
    Empty,
}

impl From<ValkeyConfigError> for crate::store::StoreError {
    fn from(e: ValkeyConfigError) -> Self {
        crate::store::StoreError::unavailable_because(e.to_string(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(urls: &[&str]) -> ValkeyConfig {
        ValkeyConfig::new(urls.iter().map(|u| (*u).to_owned()).collect())
    }

    fn err(c: &ValkeyConfig) -> String {
        match c.validate() {
            Ok(e) => panic!("expected an error, got {e:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults() {
        let c = config(&["redis://valkey"]);
        assert_eq!(c.key_prefix, "mcpoauth:");
        assert_eq!(c.pool_size, 4);
        assert_eq!(c.session_ttl, Duration::from_secs(30 * 86400));
        let e = c.validate().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.servers, vec![("valkey".to_owned(), 6379)]);
        assert!(!e.tls);
        assert_eq!(e.database, None);
    }

    #[test]
    fn all_four_schemes_are_accepted() {
        for (url, tls) in [
            ("redis://h:1", false),
            ("valkey://h:1", false),
            ("rediss://h:1/2", true),
            ("valkeys://h:1", true),
        ] {
            let e = config(&[url])
                .validate()
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(e.tls, tls, "{url}");
            assert_eq!(e.servers, vec![("h".to_owned(), 1)]);
        }
        let e = config(&["rediss://h/2"])
            .validate()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.database, Some(2));
    }

    #[test]
    fn credentials_in_urls_are_refused_without_echoing_them() {
        let msg = err(&config(&["redis://user:hunter2@h"]));
        assert!(msg.contains("--valkey-password-file"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        let msg = err(&config(&["redis://:hunter2@h"]));
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[test]
    fn bad_urls_say_how_to_fix() {
        assert!(err(&config(&[])).contains("--valkey-url"));
        assert!(err(&config(&["http://h"])).contains("use redis://"));
        assert!(err(&config(&["not a url"])).contains("URL #1"));
        assert!(err(&config(&["redis://h/x"])).contains("database number"));
        assert!(err(&config(&["redis://h?x=1"])).contains("query"));
        assert!(err(&config(&["redis://a", "redis://b"])).contains("cluster or sentinel"));
        let mut c = config(&["redis://a:1", "rediss://b:2"]);
        c.topology = ValkeyTopology::Cluster;
        assert!(err(&c).contains("mix TLS"));
    }

    #[test]
    fn topologies() {
        let mut c = config(&["redis://a:7000", "redis://b"]);
        c.topology = ValkeyTopology::Cluster;
        let e = c.validate().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.servers.len(), 2);
        c.urls = vec!["redis://a/3".into()];
        assert!(err(&c).contains("only database 0"));

        let mut s = config(&["redis://s1", "redis://s2:5000"]);
        s.topology = ValkeyTopology::Sentinel {
            service_name: " ".into(),
        };
        assert!(err(&s).contains("service name"));
        s.topology = ValkeyTopology::Sentinel {
            service_name: "mymaster".into(),
        };
        let e = s.validate().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            e.servers,
            vec![("s1".to_owned(), 26379), ("s2".to_owned(), 5000)]
        );
    }

    #[test]
    fn other_settings() {
        let mut c = config(&["redis://h"]);
        c.tls_ca_file = Some("/ca.pem".into());
        assert!(err(&c).contains("rediss://"));
        let mut c = config(&["redis://h"]);
        c.username = Some("u".into());
        assert!(err(&c).contains("password"));
        let mut c = config(&["redis://h"]);
        c.pool_size = 0;
        assert!(err(&c).contains("pool size"));
        let mut c = config(&["redis://h"]);
        c.command_timeout = Duration::ZERO;
        assert!(err(&c).contains("command timeout"));
        let mut c = config(&["redis://h"]);
        c.key_prefix = "a\nb".into();
        assert!(err(&c).contains("prefix"));
    }

    #[test]
    fn ipv6_hosts_lose_their_brackets() {
        let e = config(&["redis://[::1]:7"])
            .validate()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.servers, vec![("::1".to_owned(), 7)]);
    }
}
