//! The issuer's signing keys, fetched and cached. The JWKS location comes from the issuer's
//! RFC 8414 / OIDC metadata (whose `issuer` must equal the configured one) unless configured.
//! Keys are cached by `kid`; a token naming an unknown `kid` triggers a refetch (the issuer may
//! have rotated its keys), at most once per `min_refresh`, so a flood of tokens with made-up
//! `kid`s costs the IdP at most one request per interval. Refetches are single-flight; requests
//! whose key is cached never wait for one.

use super::keys::{KeySet, KeysError};
use crate::identity::IdentityError;
use crate::net::{FetchError, OutboundClient};
use crate::oauth::AuthServerMetadataDocument;
use crate::oauth::metadata::{as_metadata_candidates, check_endpoint, parse_issuer};
use arc_swap::ArcSwap;
use jsonwebtoken::Algorithm;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use url::Url;

/// After this age the key set is refetched on the next request (to notice withdrawn keys); if
/// that fails the old keys stay in use.
const MAX_KEY_AGE: Duration = Duration::from_secs(60 * 60);
/// After a failed fetch, the next attempt waits at most this long (or `min_refresh` if shorter).
const FAILURE_RETRY: Duration = Duration::from_secs(5);

/// Why the keys could not be fetched. Messages name URLs of public metadata only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("no metadata document of the issuer names a usable jwks_uri (tried {0})")]
    NoJwksUri(String),
    #[error("fetching the JWKS at {url} failed: {source}")]
    Fetch {
        url: String,
        #[source]
        source: FetchError,
    },
    #[error("the JWKS at {url} was refused: {source}")]
    Keys {
        url: String,
        #[source]
        source: KeysError,
    },
}

#[derive(Debug, Default)]
struct RefreshState {
    jwks_uri: Option<Url>,
    last_attempt: Option<Instant>,
    last_error: Option<JwksError>,
}

/// A key set and when it was fetched (`None`: nothing loaded yet).
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub set: KeySet,
    loaded_at: Option<Instant>,
}

impl Loaded {
    fn is_stale(&self) -> bool {
        self.loaded_at.is_none_or(|t| t.elapsed() >= MAX_KEY_AGE)
    }
}

/// Cached JWKS of one issuer.
pub(crate) struct JwksCache {
    client: OutboundClient,
    issuer: String,
    configured_uri: Option<Url>,
    allow_insecure_http: bool,
    algorithms: Vec<Algorithm>,
    min_refresh: Duration,
    keys: ArcSwap<Loaded>,
    state: Mutex<RefreshState>,
    fetches: AtomicU64,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("issuer", &self.issuer)
            .field("keys", &self.keys.load())
            .field("min_refresh", &self.min_refresh)
            .field("fetches", &self.fetches.load(Ordering::Relaxed))
            .finish()
    }
}

impl JwksCache {
    pub fn new(
        client: OutboundClient,
        issuer: String,
        configured_uri: Option<Url>,
        allow_insecure_http: bool,
        algorithms: Vec<Algorithm>,
        min_refresh: Duration,
    ) -> Self {
        Self {
            client,
            issuer,
            configured_uri,
            allow_insecure_http,
            algorithms,
            min_refresh,
            keys: ArcSwap::from_pointee(Loaded::default()),
            state: Mutex::new(RefreshState::default()),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many JWKS documents were requested so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The key set to verify a token naming `kid` with: the cached one when it has the key
    /// (and is not too old), else the result of a refetch when one is due. The caller reports an
    /// unknown key when the returned set still lacks it. Fails only while no keys were ever
    /// loaded.
    pub async fn keys_for(&self, kid: Option<&str>) -> Result<Arc<Loaded>, IdentityError> {
        let current = self.keys.load_full();
        if current.set.get(kid).is_some() && !current.is_stale() {
            return Ok(current);
        }
        let mut state = self.state.lock().await;
        // Another request may have refreshed while this one waited.
        let current = self.keys.load_full();
        if current.set.get(kid).is_some() && !current.is_stale() {
            return Ok(current);
        }
        if !self.due(&state) {
            return Self::without_refresh(current, &state);
        }
        state.last_attempt = Some(Instant::now());
        match self.fetch(&mut state).await {
            Ok(set) => {
                tracing::info!(issuer = %self.issuer, keys = set.len(), "loaded the identity provider's signing keys");
                let loaded = Arc::new(Loaded {
                    set,
                    loaded_at: Some(Instant::now()),
                });
                self.keys.store(loaded.clone());
                state.last_error = None;
                Ok(loaded)
            }
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, error = %e, "cannot fetch the identity provider's signing keys");
                // Rediscover the JWKS location next time: it may have moved.
                state.jwks_uri = None;
                state.last_error = Some(e);
                Self::without_refresh(current, &state)
            }
        }
    }

    fn due(&self, state: &RefreshState) -> bool {
        let interval = if state.last_error.is_some() {
            self.min_refresh.min(FAILURE_RETRY)
        } else {
            self.min_refresh
        };
        state.last_attempt.is_none_or(|t| t.elapsed() >= interval)
    }

    fn without_refresh(
        current: Arc<Loaded>,
        state: &RefreshState,
    ) -> Result<Arc<Loaded>, IdentityError> {
        if current.set.len() > 0 {
            return Ok(current);
        }
        let reason = state
            .last_error
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_else(|| "the keys have not been loaded yet".to_owned());
        Err(IdentityError::Unavailable(reason))
    }

    async fn fetch(&self, state: &mut RefreshState) -> Result<KeySet, JwksError> {
        let uri = match (&self.configured_uri, &state.jwks_uri) {
            (Some(uri), _) | (None, Some(uri)) => uri.clone(),
            (None, None) => {
                let uri = self.discover().await?;
                state.jwks_uri = Some(uri.clone());
                uri
            }
        };
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let response = self
            .client
            .get(&uri)
            .await
            .map_err(|source| JwksError::Fetch {
                url: uri.to_string(),
                source,
            })?;
        if !response.status.is_success() {
            return Err(JwksError::Fetch {
                url: uri.to_string(),
                source: FetchError::Status(response.status.as_u16()),
            });
        }
        KeySet::parse(&response.body, &self.algorithms).map_err(|source| JwksError::Keys {
            url: uri.to_string(),
            source,
        })
    }

    /// `jwks_uri` from the first metadata document (in the MCP candidate order) whose `issuer`
    /// equals the configured issuer exactly.
    async fn discover(&self) -> Result<Url, JwksError> {
        let issuer = parse_issuer(&self.issuer, self.allow_insecure_http)
            .map_err(|e| JwksError::NoJwksUri(e.to_string()))?;
        let candidates = as_metadata_candidates(&issuer);
        for url in &candidates {
            let Ok(doc) = self
                .client
                .get_json::<AuthServerMetadataDocument>(url)
                .await
            else {
                continue;
            };
            if doc.issuer.as_deref() != Some(self.issuer.as_str()) {
                continue;
            }
            if let Some(raw) = doc.jwks_uri.as_deref()
                && let Ok(uri) = check_endpoint("jwks_uri", raw, self.allow_insecure_http)
            {
                return Ok(uri);
            }
        }
        let tried: Vec<String> = candidates.iter().map(ToString::to_string).collect();
        Err(JwksError::NoJwksUri(tried.join(", ")))
    }
}
