//! Discovery over the network: RFC 9728 protected-resource metadata (from a `WWW-Authenticate`
//! hint, then the well-known locations) and RFC 8414 / OIDC authorization-server metadata (the
//! MCP candidate order), each document checked by [`super::metadata`] before use.
//!
//! Authorization-server metadata is cached per issuer string: concurrent misses for one issuer
//! share one fetch (moka `try_get_with`; if the fetching caller is cancelled another waiter takes
//! over, so nobody fails because someone else went away), and failures are remembered briefly so
//! a burst of 401s does not hammer a broken server.

use super::metadata::{
    AuthServerMetadata, AuthServerMetadataDocument, MetadataError, ProtectedResourceMetadata,
    as_metadata_candidates, check_endpoint, parse_issuer, prm_candidates, validate_as_metadata,
    validate_prm,
};
use super::www_authenticate::{BearerChallenge, ParseError, bearer_from_headers};
use crate::net::{FetchError, OutboundClient};
use http::StatusCode;
use moka::future::Cache;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Discovery settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// How long validated authorization-server metadata is reused.
    pub metadata_ttl: Duration,
    /// How long a failed authorization-server discovery is remembered.
    pub negative_ttl: Duration,
    /// Accept plain-http issuers and endpoints on non-loopback hosts (development only).
    pub allow_insecure_http: bool,
    /// Most issuers kept in each cache.
    pub max_cached_issuers: u64,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            metadata_ttl: Duration::from_secs(15 * 60),
            negative_ttl: Duration::from_secs(30),
            allow_insecure_http: false,
            max_cached_issuers: 10_000,
        }
    }
}

/// Why discovery failed; each variant is something a status condition or an error page can
/// explain. URLs named here are metadata locations, never anything secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("no metadata document found (tried {})", tried.join(", "))]
    NotFound { tried: Vec<String> },
    #[error("metadata at {url} refused: {source}")]
    Invalid {
        url: String,
        #[source]
        source: MetadataError,
    },
    #[error("fetching {url} failed: {source}")]
    Fetch {
        url: String,
        #[source]
        source: FetchError,
    },
    #[error("issuer refused: {0}")]
    InvalidIssuer(#[source] MetadataError),
    #[error("the WWW-Authenticate challenge could not be parsed: {0}")]
    Challenge(#[source] ParseError),
}

impl DiscoveryError {
    /// A stable CamelCase reason, for status conditions and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            DiscoveryError::NotFound { .. } => "MetadataNotFound",
            DiscoveryError::Invalid { source, .. } => source.reason(),
            DiscoveryError::InvalidIssuer(source) => source.reason(),
            DiscoveryError::Fetch { source, .. } => match source {
                FetchError::Timeout => "MetadataTimeout",
                FetchError::Connect(_) => "MetadataUnreachable",
                FetchError::TooLarge { .. } => "MetadataTooLarge",
                FetchError::Redirect(_) => "MetadataRedirect",
                FetchError::InvalidJson => "MetadataInvalidJson",
                FetchError::Status(_) => "MetadataHttpError",
                _ => "MetadataFetchFailed",
            },
            DiscoveryError::Challenge(_) => "InvalidChallenge",
        }
    }

    /// The metadata check that failed, if that is what happened.
    pub fn metadata_error(&self) -> Option<&MetadataError> {
        match self {
            DiscoveryError::Invalid { source, .. } | DiscoveryError::InvalidIssuer(source) => {
                Some(source)
            }
            _ => None,
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, DiscoveryError::Fetch { source, .. } if source.is_transient())
    }

    /// How much this error tells an operator; the most informative one is reported when
    /// several candidates fail.
    fn rank(&self) -> u8 {
        match self {
            DiscoveryError::Invalid { .. } | DiscoveryError::InvalidIssuer(_) => 3,
            DiscoveryError::Fetch { .. } | DiscoveryError::Challenge(_) => 2,
            DiscoveryError::NotFound { .. } => 1,
        }
    }
}

/// Protected resource metadata that passed [`validate_prm`], with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredResource {
    pub metadata: ProtectedResourceMetadata,
    /// The URL the document was fetched from.
    pub url: Url,
    /// Why the `resource_metadata` hint was not used, when one was given and failed.
    pub hint_error: Option<DiscoveryError>,
}

/// Metadata discovery with an authorization-server metadata cache. Cheap to clone.
#[derive(Clone)]
pub struct Discovery {
    client: OutboundClient,
    cfg: DiscoveryConfig,
    metadata: Cache<String, Arc<AuthServerMetadata>>,
    failures: Cache<String, DiscoveryError>,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("cfg", &self.cfg)
            .field("cached_issuers", &self.metadata.entry_count())
            .finish()
    }
}

impl Discovery {
    pub fn new(client: OutboundClient, cfg: DiscoveryConfig) -> Self {
        let metadata = Cache::builder()
            .max_capacity(cfg.max_cached_issuers)
            .time_to_live(cfg.metadata_ttl)
            .build();
        let failures = Cache::builder()
            .max_capacity(cfg.max_cached_issuers)
            .time_to_live(cfg.negative_ttl)
            .build();
        Self {
            client,
            cfg,
            metadata,
            failures,
        }
    }

    pub fn config(&self) -> &DiscoveryConfig {
        &self.cfg
    }

    /// Sends an unauthenticated JSON-RPC `ping` (harmless to any MCP server) to `server_url`
    /// and returns the Bearer challenge of a 401 (or 403) answer; `None` when the server
    /// answered without one.
    pub async fn probe_challenge(
        &self,
        server_url: &Url,
    ) -> Result<Option<BearerChallenge>, DiscoveryError> {
        let body = serde_json::json!({
            "jsonrpc": "2.0",
            "id": "mcp-oauth-operator-probe",
            "method": "ping",
        });
        let resp = self
            .client
            .post_json(server_url, &body, "application/json, text/event-stream")
            .await
            .map_err(|source| DiscoveryError::Fetch {
                url: server_url.to_string(),
                source,
            })?;
        if resp.status != StatusCode::UNAUTHORIZED && resp.status != StatusCode::FORBIDDEN {
            return Ok(None);
        }
        bearer_from_headers(&resp.headers).map_err(DiscoveryError::Challenge)
    }

    /// Finds and checks the protected resource metadata of `server_url`: the challenge's
    /// `resource_metadata` URL first (`hint`), then the two well-known locations. A 404 moves on
    /// to the next candidate; so does any other failure, but the most informative failure is the
    /// one reported. `expected_resource` is the resource the gateway will ask tokens for.
    pub async fn protected_resource(
        &self,
        server_url: &Url,
        hint: Option<&str>,
        expected_resource: &str,
    ) -> Result<DiscoveredResource, DiscoveryError> {
        let mut failures = Failures::default();
        let mut hint_error = None;
        if let Some(raw) = hint {
            match self.try_prm_hint(raw, expected_resource).await {
                Ok((metadata, url)) => {
                    return Ok(DiscoveredResource {
                        metadata,
                        url,
                        hint_error: None,
                    });
                }
                Err(err) => {
                    tracing::warn!(
                        reason = err.reason(),
                        error = %err,
                        "resource_metadata from WWW-Authenticate unusable; trying well-known locations"
                    );
                    failures.tried.push(super::metadata::clip(raw));
                    failures.record(err.clone());
                    hint_error = Some(err);
                }
            }
        }
        for url in prm_candidates(server_url) {
            failures.tried.push(url.to_string());
            match self
                .client
                .get_json::<ProtectedResourceMetadata>(&url)
                .await
            {
                Ok(metadata) => match validate_prm(&metadata, expected_resource) {
                    Ok(()) => {
                        return Ok(DiscoveredResource {
                            metadata,
                            url,
                            hint_error,
                        });
                    }
                    Err(source) => failures.record(DiscoveryError::Invalid {
                        url: url.to_string(),
                        source,
                    }),
                },
                Err(err) => failures.record_fetch(&url, err),
            }
        }
        Err(failures.into_error())
    }

    async fn try_prm_hint(
        &self,
        raw: &str,
        expected_resource: &str,
    ) -> Result<(ProtectedResourceMetadata, Url), DiscoveryError> {
        let invalid = |source| DiscoveryError::Invalid {
            url: super::metadata::clip(raw),
            source,
        };
        let url = check_endpoint("resource_metadata", raw, self.cfg.allow_insecure_http)
            .map_err(invalid)?;
        let metadata = self
            .client
            .get_json::<ProtectedResourceMetadata>(&url)
            .await
            .map_err(|source| DiscoveryError::Fetch {
                url: url.to_string(),
                source,
            })?;
        validate_prm(&metadata, expected_resource).map_err(invalid)?;
        Ok((metadata, url))
    }

    /// Validated metadata of the authorization server `issuer` (compared by exact string
    /// equality with the document's `issuer`), from cache when fresh.
    pub async fn authorization_server(
        &self,
        issuer: &str,
    ) -> Result<Arc<AuthServerMetadata>, DiscoveryError> {
        if let Some(err) = self.failures.get(issuer).await {
            return Err(err);
        }
        let client = self.client.clone();
        let allow_insecure = self.cfg.allow_insecure_http;
        let owned = issuer.to_owned();
        let result = self
            .metadata
            .try_get_with(issuer.to_owned(), async move {
                fetch_as_metadata(&client, &owned, allow_insecure)
                    .await
                    .map(Arc::new)
            })
            .await;
        match result {
            Ok(md) => Ok(md),
            Err(shared) => {
                let err = DiscoveryError::clone(&shared);
                self.failures.insert(issuer.to_owned(), err.clone()).await;
                Err(err)
            }
        }
    }

    /// Forgets what is cached about `issuer` (success or failure), e.g. after the resource
    /// author changed it or an endpoint started failing.
    pub async fn invalidate(&self, issuer: &str) {
        self.metadata.invalidate(issuer).await;
        self.failures.invalidate(issuer).await;
    }
}

/// Tries the MCP candidate URLs for `issuer` in order. The first document whose `issuer`
/// matches is the server's metadata and is validated (a refusal there is final); documents for
/// another issuer and fetch failures move on to the next candidate.
async fn fetch_as_metadata(
    client: &OutboundClient,
    issuer: &str,
    allow_insecure_http: bool,
) -> Result<AuthServerMetadata, DiscoveryError> {
    let issuer_url =
        parse_issuer(issuer, allow_insecure_http).map_err(DiscoveryError::InvalidIssuer)?;
    let mut failures = Failures::default();
    for url in as_metadata_candidates(&issuer_url) {
        failures.tried.push(url.to_string());
        match client.get_json::<AuthServerMetadataDocument>(&url).await {
            Ok(doc) => match validate_as_metadata(issuer, &doc, allow_insecure_http) {
                Ok(md) => return Ok(md),
                Err(
                    source @ (MetadataError::IssuerMismatch { .. }
                    | MetadataError::MissingField("issuer")),
                ) => failures.record(DiscoveryError::Invalid {
                    url: url.to_string(),
                    source,
                }),
                Err(source) => {
                    return Err(DiscoveryError::Invalid {
                        url: url.to_string(),
                        source,
                    });
                }
            },
            Err(err) => failures.record_fetch(&url, err),
        }
    }
    Err(failures.into_error())
}

/// The failures of a candidate walk: every URL tried and the most informative error.
#[derive(Default)]
struct Failures {
    tried: Vec<String>,
    best: Option<DiscoveryError>,
}

impl Failures {
    fn record(&mut self, err: DiscoveryError) {
        if self.best.as_ref().is_none_or(|b| err.rank() > b.rank()) {
            self.best = Some(err);
        }
    }

    /// 404/410 just mean "not here"; anything else is worth reporting.
    fn record_fetch(&mut self, url: &Url, err: FetchError) {
        if !matches!(err, FetchError::Status(404 | 410)) {
            self.record(DiscoveryError::Fetch {
                url: url.to_string(),
                source: err,
            });
        }
    }

    fn into_error(self) -> DiscoveryError {
        self.best
            .unwrap_or(DiscoveryError::NotFound { tried: self.tried })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::net::OutboundConfig;
    use crate::net::testing::serve;
    use axum::Router;
    use axum::http::{HeaderMap, StatusCode as AxStatus};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn discovery(negative_ttl: Duration) -> Discovery {
        let client = OutboundClient::new(OutboundConfig {
            timeout: Duration::from_secs(3),
            ..OutboundConfig::default()
        })
        .unwrap();
        Discovery::new(
            client,
            DiscoveryConfig {
                negative_ttl,
                ..DiscoveryConfig::default()
            },
        )
    }

    /// `http://{Host}` as seen by the test server, i.e. its own issuer.
    fn own_origin(h: &HeaderMap) -> String {
        format!("http://{}", h.get("host").unwrap().to_str().unwrap())
    }

    fn as_doc(issuer: &str) -> serde_json::Value {
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/auth"),
            "token_endpoint": format!("{issuer}/token"),
            "code_challenge_methods_supported": ["S256"],
            "response_types_supported": ["code"],
        })
    }

    fn counting_as(hits: Arc<AtomicUsize>, delay: Duration) -> Router {
        Router::new().route(
            "/.well-known/oauth-authorization-server",
            get(move |h: HeaderMap| {
                hits.fetch_add(1, Ordering::SeqCst);
                async move {
                    tokio::time::sleep(delay).await;
                    axum::Json(as_doc(&own_origin(&h)))
                }
            }),
        )
    }

    fn base_str(base: &Url) -> String {
        base.as_str().trim_end_matches('/').to_owned()
    }

    #[tokio::test]
    async fn concurrent_cold_misses_make_one_request() {
        let hits = Arc::new(AtomicUsize::new(0));
        let base = serve(counting_as(hits.clone(), Duration::from_millis(150))).await;
        let issuer = base_str(&base);
        let d = discovery(Duration::from_secs(30));
        let calls = (0..16).map(|_| d.authorization_server(&issuer));
        let results = futures::future::join_all(calls).await;
        assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let again = d.authorization_server(&issuer).await.unwrap();
        assert_eq!(again.issuer, issuer);
        assert_eq!(hits.load(Ordering::SeqCst), 1, "cached value not reused");
    }

    #[tokio::test]
    async fn cancelled_caller_does_not_fail_the_others() {
        let hits = Arc::new(AtomicUsize::new(0));
        let base = serve(counting_as(hits.clone(), Duration::from_millis(300))).await;
        let issuer = base_str(&base);
        let d = discovery(Duration::from_secs(30));
        let leader = {
            let (d, issuer) = (d.clone(), issuer.clone());
            tokio::spawn(async move {
                tokio::time::timeout(Duration::from_millis(50), d.authorization_server(&issuer))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let follower = d.authorization_server(&issuer).await;
        assert!(
            leader.await.unwrap().is_err(),
            "leader should have been cancelled"
        );
        assert_eq!(follower.unwrap().issuer, issuer);
    }

    #[tokio::test]
    async fn failures_are_cached_briefly() {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = Router::new().fallback(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { AxStatus::NOT_FOUND }
        });
        let base = serve(app).await;
        let issuer = base_str(&base);
        let d = discovery(Duration::from_millis(300));
        let err = d.authorization_server(&issuer).await.unwrap_err();
        let DiscoveryError::NotFound { tried } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(
            tried,
            &[
                format!("{issuer}/.well-known/oauth-authorization-server"),
                format!("{issuer}/.well-known/openid-configuration"),
            ]
        );
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert_eq!(d.authorization_server(&issuer).await.unwrap_err(), err);
        assert_eq!(hits.load(Ordering::SeqCst), 2, "negative cache not used");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(d.authorization_server(&issuer).await.is_err());
        assert_eq!(
            hits.load(Ordering::SeqCst),
            4,
            "negative entry did not expire"
        );
    }

    #[tokio::test]
    async fn issuer_mismatch_moves_on_then_is_reported() {
        // RFC 8414 location serves another issuer's document, OIDC location is missing.
        let app = Router::new().route(
            "/.well-known/oauth-authorization-server",
            get(|| async { axum::Json(as_doc("https://elsewhere.example.com")) }),
        );
        let base = serve(app).await;
        let err = discovery(Duration::from_secs(1))
            .authorization_server(&base_str(&base))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err.metadata_error(),
                Some(MetadataError::IssuerMismatch { .. })
            ),
            "{err:?}"
        );
        assert_eq!(err.reason(), "IssuerMismatch");
    }

    #[tokio::test]
    async fn oidc_location_used_when_rfc8414_missing_and_pkce_enforced() {
        let app =
            Router::new()
                .route(
                    "/t/.well-known/openid-configuration",
                    get(|h: HeaderMap| async move {
                        axum::Json(as_doc(&format!("{}/t", own_origin(&h))))
                    }),
                )
                .route(
                    "/.well-known/openid-configuration/nopkce",
                    get(|h: HeaderMap| async move {
                        let mut doc = as_doc(&format!("{}/nopkce", own_origin(&h)));
                        doc.as_object_mut()
                            .unwrap()
                            .remove("code_challenge_methods_supported");
                        axum::Json(doc)
                    }),
                );
        let base = serve(app).await;
        let d = discovery(Duration::from_secs(1));
        let md = d
            .authorization_server(&format!("{}/t", base_str(&base)))
            .await
            .unwrap();
        assert!(md.token_endpoint.as_str().ends_with("/t/token"));
        let err = d
            .authorization_server(&format!("{}/nopkce", base_str(&base)))
            .await
            .unwrap_err();
        assert_eq!(
            err.metadata_error(),
            Some(&MetadataError::PkceS256Unsupported)
        );
    }

    #[tokio::test]
    async fn insecure_issuer_is_refused_without_fetching() {
        let err = discovery(Duration::from_secs(1))
            .authorization_server("http://idp.example.com")
            .await
            .unwrap_err();
        assert!(matches!(err, DiscoveryError::InvalidIssuer(_)), "{err:?}");
    }

    #[tokio::test]
    async fn redirects_are_reported_not_followed() {
        let app = Router::new().fallback(|| async {
            axum::response::Redirect::temporary("https://example.com/").into_response()
        });
        let base = serve(app).await;
        let err = discovery(Duration::from_secs(1))
            .authorization_server(&base_str(&base))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                DiscoveryError::Fetch {
                    source: FetchError::Redirect(307),
                    ..
                }
            ),
            "{err:?}"
        );
    }

    fn prm_app() -> Router {
        let prm = |h: HeaderMap, resource_path: &'static str| {
            let origin = own_origin(&h);
            axum::Json(json!({
                "resource": format!("{origin}{resource_path}"),
                "authorization_servers": [format!("{origin}/issuer")],
                "scopes_supported": ["mcp:tools"],
            }))
        };
        Router::new()
            .route(
                "/.well-known/oauth-protected-resource/mcp",
                get(move |h: HeaderMap| async move { prm(h, "/mcp") }),
            )
            .route(
                "/meta/wrong",
                get(move |h: HeaderMap| async move { prm(h, "/other") }),
            )
            .route(
                "/mcp",
                post(|h: HeaderMap| async move {
                    let origin = own_origin(&h);
                    let value = format!(
                        "Bearer error=\"invalid_token\", scope=\"mcp:tools\", resource_metadata=\"{origin}/.well-known/oauth-protected-resource/mcp\""
                    );
                    Response::builder()
                        .status(401)
                        .header("www-authenticate", value)
                        .body(axum::body::Body::empty())
                        .unwrap()
                }),
            )
    }

    #[tokio::test]
    async fn prm_from_probe_hint() {
        let base = serve(prm_app()).await;
        let server = base.join("mcp").unwrap();
        let d = discovery(Duration::from_secs(1));
        let challenge = d.probe_challenge(&server).await.unwrap().unwrap();
        assert_eq!(challenge.scopes(), ["mcp:tools"]);
        let found = d
            .protected_resource(
                &server,
                challenge.resource_metadata.as_deref(),
                server.as_str(),
            )
            .await
            .unwrap();
        assert_eq!(found.hint_error, None);
        assert_eq!(
            found.metadata.authorization_servers,
            [format!("{}/issuer", base_str(&base))]
        );
    }

    #[tokio::test]
    async fn failing_hint_falls_back_and_says_so() {
        let base = serve(prm_app()).await;
        let server = base.join("mcp").unwrap();
        let hint = base.join("meta/wrong").unwrap();
        let found = discovery(Duration::from_secs(1))
            .protected_resource(&server, Some(hint.as_str()), server.as_str())
            .await
            .unwrap();
        assert_eq!(
            found.url.path(),
            "/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            found.hint_error.as_ref().map(DiscoveryError::reason),
            Some("ResourceMismatch")
        );
    }

    #[tokio::test]
    async fn wrong_expected_resource_is_refused() {
        let base = serve(prm_app()).await;
        let server = base.join("mcp").unwrap();
        let err = discovery(Duration::from_secs(1))
            .protected_resource(&server, None, "https://other.example.com/mcp")
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "ResourceMismatch", "{err:?}");
    }

    #[tokio::test]
    async fn missing_prm_lists_what_was_tried() {
        let base = serve(prm_app()).await;
        let server = base.join("nothing/here").unwrap();
        let err = discovery(Duration::from_secs(1))
            .protected_resource(&server, Some("not a url"), server.as_str())
            .await
            .unwrap_err();
        // The unusable hint is the most informative failure.
        assert_eq!(err.reason(), "InvalidEndpoint", "{err:?}");
        let err = discovery(Duration::from_secs(1))
            .protected_resource(&server, None, server.as_str())
            .await
            .unwrap_err();
        let DiscoveryError::NotFound { tried } = err else {
            panic!("{err:?}")
        };
        assert_eq!(tried.len(), 2);
        assert!(tried[0].ends_with("/.well-known/oauth-protected-resource/nothing/here"));
    }

    #[tokio::test]
    async fn probe_of_open_server_has_no_challenge() {
        let app = Router::new().route("/mcp", post(|| async { axum::Json(json!({})) }));
        let base = serve(app).await;
        let got = discovery(Duration::from_secs(1))
            .probe_challenge(&base.join("mcp").unwrap())
            .await
            .unwrap();
        assert_eq!(got, None);
    }
}
