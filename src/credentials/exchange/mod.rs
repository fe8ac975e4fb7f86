//! RFC 8693 token exchange (`exchange` auth mode): the caller's token is swapped, per a
//! `TokenExchangePolicy`, for a token of another identity provider, and that token is sent to
//! the remote MCP server.
//!
//! [`request`] builds the form, [`client`] sends it (SSRF-guarded, mTLS when configured),
//! [`response`] checks the answer (token type, issuer), [`cache`] keeps the result until shortly
//! before it expires, [`stats`] counts hits and misses per policy. [`verify`] (with [`probe`],
//! which the controller runs too) refuses a policy whose token endpoint is not verified before
//! any token is sent. [`source`] is the mode's [`super::CredentialSource`].

pub mod cache;
pub mod client;
mod error;
mod metrics;
pub mod probe;
pub mod request;
pub mod response;
mod source;
mod stats;
mod verify;

pub use cache::{CacheKey, DEFAULT_MARGIN, DEFAULT_MAX_ENTRIES, Source};
pub use client::ClientConfig;
pub use error::ExchangeError;
pub use metrics::ExchangeMetrics;
pub use source::ExchangeSource;
pub use stats::{ExchangeCounts, ExchangeStats};

use crate::metrics::Metrics;
use crate::registry::{PolicyRegistration, ServerKey};
use crate::time::unix_now;
use cache::{CachedToken, ExchangeCache};
use client::PolicyClients;
use secrecy::{ExposeSecret as _, SecretString};
use std::time::{Duration, Instant};

/// Settings of the [`Exchanger`].
#[derive(Debug, Clone)]
pub struct ExchangeConfig {
    /// Bound on cached tokens.
    pub max_entries: u64,
    /// A cached token is served until this long before it expires.
    pub margin: Duration,
    pub client: ClientConfig,
    /// Issuers whose token endpoints may receive callers' tokens (a policy's `expectedIssuer`
    /// must be one of them). A policy's author chooses its endpoint; only the gateway's
    /// operator decides whom callers' tokens may be sent to. Empty: no exchange at all.
    pub allowed_issuers: Vec<String>,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        Self {
            max_entries: DEFAULT_MAX_ENTRIES,
            margin: DEFAULT_MARGIN,
            client: ClientConfig::default(),
            allowed_issuers: Vec::new(),
        }
    }
}

impl ExchangeConfig {
    /// Reads a PEM bundle of CA certificates to trust for token endpoints (in addition to the
    /// platform's roots).
    pub fn with_ca_bundle(mut self, pem: &[u8]) -> Result<Self, ExchangeError> {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|_| ExchangeError::ClientSetup("the CA bundle is not valid PEM".into()))?;
        if certs.is_empty() {
            return Err(ExchangeError::ClientSetup(
                "the CA bundle holds no certificate".into(),
            ));
        }
        self.client.extra_roots = certs;
        Ok(self)
    }
}

/// An exchanged token and what it is cached under.
#[derive(Clone)]
pub struct Exchanged {
    pub token: SecretString,
    pub key: CacheKey,
    pub source: Source,
}

impl std::fmt::Debug for Exchanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchanged")
            .field("key", &self.key)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Exchanges callers' tokens per policy, with a cache.
pub struct Exchanger {
    cfg: ExchangeConfig,
    clients: PolicyClients,
    cache: ExchangeCache,
    stats: ExchangeStats,
    metrics: ExchangeMetrics,
    /// Refuses policies whose endpoint is not verified, before any token is sent.
    guard: verify::EndpointGuard,
}

impl std::fmt::Debug for Exchanger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchanger")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl Exchanger {
    /// `metrics` receives the exchanger's own metrics ([`ExchangeMetrics`]).
    pub fn new(cfg: ExchangeConfig, metrics: &Metrics) -> Self {
        let exchange_metrics = ExchangeMetrics::default();
        exchange_metrics.register(metrics);
        Self {
            clients: PolicyClients::new(cfg.client.clone()),
            cache: ExchangeCache::new(cfg.max_entries),
            stats: ExchangeStats::new(),
            metrics: exchange_metrics,
            guard: verify::EndpointGuard::default(),
            cfg,
        }
    }

    /// A token for `user` per `policy`, from the cache or by exchanging `subject_token`.
    pub async fn exchange(
        &self,
        policy: &PolicyRegistration,
        user: &str,
        subject_token: &SecretString,
    ) -> Result<Exchanged, ExchangeError> {
        // Fail closed: an issuer the operator did not allow, or an endpoint not verified against
        // the issuer's metadata, gets no token, and tokens cached from it are not served either.
        if let Err(e) = self.ensure_verified(policy).await {
            self.stats.miss(&policy.key);
            let result = match e {
                ExchangeError::IssuerNotAllowed { .. } => "issuer_not_allowed",
                _ => "unverified",
            };
            self.metrics.count(&policy.key.to_string(), result);
            return Err(e);
        }
        let scope = request::scope_of(policy);
        let key = CacheKey::new(policy, user, &scope);
        let result = self
            .cache
            .get_or_exchange(key.clone(), self.call(policy, subject_token, &scope))
            .await;
        let policy_name = policy.key.to_string();
        match result {
            Ok((cached, source)) => {
                match source {
                    Source::Cache => {
                        self.stats.hit(&policy.key);
                        self.metrics.count(&policy_name, "hit");
                    }
                    Source::Exchange => {
                        self.stats.miss(&policy.key);
                        self.metrics.count(&policy_name, "miss");
                    }
                }
                Ok(Exchanged {
                    token: cached.token,
                    key,
                    source,
                })
            }
            Err(e) => {
                self.stats.miss(&policy.key);
                self.metrics.count(&policy_name, "error");
                Err(e)
            }
        }
    }

    /// The remote server refused `rejected`: drop it from the cache (unless a newer token
    /// replaced it already) and exchange again.
    pub async fn after_rejection(
        &self,
        policy: &PolicyRegistration,
        user: &str,
        subject_token: &SecretString,
        rejected: &Exchanged,
    ) -> Result<Exchanged, ExchangeError> {
        self.cache
            .evict_rejected(&rejected.key, &rejected.token)
            .await;
        self.exchange(policy, user, subject_token).await
    }

    /// Drop `rejected` from the cache (when it is still the cached token).
    pub async fn evict(&self, rejected: &Exchanged) {
        self.cache
            .evict_rejected(&rejected.key, &rejected.token)
            .await;
    }

    /// Forget every exchanged token of `user` (sign-out everywhere).
    pub fn invalidate_user(&self, user: &str) {
        self.cache.invalidate_user(user);
    }

    /// Hit and miss counts of `policy` since start.
    pub fn counts(&self, policy: &ServerKey) -> ExchangeCounts {
        self.stats.counts(policy)
    }

    /// Tokens currently cached (approximate).
    pub fn cached_entries(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Whether the operator lets `issuer` receive callers' tokens.
    pub fn issuer_allowed(&self, issuer: &str) -> bool {
        self.cfg.allowed_issuers.iter().any(|i| i == issuer)
    }

    /// Whether `policy`'s endpoint may receive a caller's token: its issuer is one the operator
    /// allows, and the endpoint is that issuer's (see [`verify`]).
    async fn ensure_verified(&self, policy: &PolicyRegistration) -> Result<(), ExchangeError> {
        if !self.issuer_allowed(&policy.expected_issuer) {
            return Err(ExchangeError::IssuerNotAllowed {
                issuer: policy.expected_issuer.clone(),
            });
        }
        if policy.endpoint_verified {
            return Ok(());
        }
        let client = self.clients.for_policy(policy)?;
        self.guard.ensure(policy, &client).await
    }

    /// One call of the token endpoint.
    async fn call(
        &self,
        policy: &PolicyRegistration,
        subject_token: &SecretString,
        scope: &str,
    ) -> Result<CachedToken, ExchangeError> {
        let started = Instant::now();
        let result = self.call_inner(policy, subject_token, scope).await;
        let label = if result.is_ok() { "ok" } else { "error" };
        self.metrics.observe(label, started.elapsed());
        match &result {
            Ok(_) => tracing::debug!(policy = %policy.key, "token exchanged"),
            Err(e) => {
                tracing::warn!(policy = %policy.key, kind = e.kind(), error = %e, "token exchange failed")
            }
        }
        result
    }

    async fn call_inner(
        &self,
        policy: &PolicyRegistration,
        subject_token: &SecretString,
        scope: &str,
    ) -> Result<CachedToken, ExchangeError> {
        let http = self.clients.for_policy(policy)?;
        let req = request::build(policy, subject_token.expose_secret(), scope);
        let resp = client::post(&http, policy, &req).await?;
        let issued = response::parse(
            resp.status.as_u16(),
            &resp.body,
            response::Expectations {
                requested_token_type: policy.requested_token_type.as_deref(),
                expected_issuer: &policy.expected_issuer,
                now: unix_now(),
            },
        )?;
        Ok(CachedToken {
            keep_for: cache::keep_for(issued.lifetime, self.cfg.margin),
            token: issued.access_token,
        })
    }
}
