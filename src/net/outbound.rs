//! The shared outbound HTTP client: pooled `reqwest` clients (aws-lc-rs TLS), redirects never
//! followed (a redirect could carry a PKCE verifier or client secret to a host nobody vetted),
//! bounded time and bounded response size, and the address guard (SSRF, see [`super::guard`]):
//! names resolved and checked before connecting, IP-literal URLs checked in
//! [`OutboundClient::request`], through which every request goes.

use super::guard::{check_url, find_refusal, guard_reqwest};
use super::ssrf::{AddressPolicy, AddressRefused};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use reqwest::RequestBuilder;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use url::Url;

/// `User-Agent` of every outbound request.
pub const USER_AGENT: &str = concat!("mcp-oauth-operator/", env!("CARGO_PKG_VERSION"));

/// Limits of the outbound client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundConfig {
    /// Time allowed to establish a connection (TCP + TLS).
    pub connect_timeout: Duration,
    /// Time allowed for the whole exchange, body included.
    pub timeout: Duration,
    /// Largest response body accepted; enforced while the body streams in.
    pub max_body_bytes: usize,
    /// Which addresses requests may go to. The default is the standalone one (`serve`, where
    /// identity providers and MCP servers are often on loopback); `run` passes
    /// [`AddressPolicy::PublicOnly`] unless told otherwise.
    pub address_policy: AddressPolicy,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            max_body_bytes: 1024 * 1024,
            address_policy: AddressPolicy::AllowPrivate,
        }
    }
}

/// Why an outbound request failed. Messages never contain URLs, bodies or credentials; callers
/// add the context (which endpoint) they know to be safe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("only http and https URLs may be fetched (got scheme `{0}`)")]
    UnsupportedScheme(String),
    #[error("request timed out")]
    Timeout,
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("response body exceeds the {limit}-byte limit")]
    TooLarge { limit: usize },
    #[error("unexpected HTTP status {0}")]
    Status(u16),
    #[error("refused to follow a redirect (HTTP {0})")]
    Redirect(u16),
    #[error("response is not JSON of the expected shape")]
    InvalidJson,
    #[error("transport error: {0}")]
    Transport(String),
    #[error("the HTTP client could not be built: {0}")]
    Setup(String),
    #[error("{0}")]
    AddressRefused(AddressRefused),
}

impl FetchError {
    /// Whether trying again later may succeed (network trouble, not a refusal).
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Timeout | FetchError::Connect(_) | FetchError::Transport(_) => true,
            FetchError::Status(code) => *code >= 500 || *code == 429,
            _ => false,
        }
    }
}

/// A response whose body has been read within the size cap. Redirects never get here.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Shared outbound HTTP client; cheap to clone (the connection pools are shared).
///
/// It holds one pooled client per [`AddressPolicy`] (the resolver is fixed when a `reqwest`
/// client is built), so [`OutboundClient::with_private_networks`] switches policy per use — for
/// example per `TokenExchangePolicy` — without losing pooling.
#[derive(Debug, Clone)]
pub struct OutboundClient {
    public_only: reqwest::Client,
    allow_private: reqwest::Client,
    policy: AddressPolicy,
    max_body_bytes: usize,
}

impl OutboundClient {
    pub fn new(cfg: OutboundConfig) -> Result<Self, FetchError> {
        let mut tls = super::tls::platform_client_config().map_err(FetchError::Setup)?;
        // reqwest speaks both; with a preconfigured TLS config it offers what the config says.
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Self::with_builder(cfg, || {
            reqwest::Client::builder().use_preconfigured_tls(tls.clone())
        })
    }

    /// A client whose `reqwest` clients start from `builder()` (called once per policy), for
    /// settings this type does not know, such as a client certificate for mutual TLS. The guard,
    /// the no-redirect rule, the timeouts and the body cap are applied on top.
    pub fn with_builder(
        cfg: OutboundConfig,
        builder: impl Fn() -> reqwest::ClientBuilder,
    ) -> Result<Self, FetchError> {
        let build = |policy| {
            guard_reqwest(builder(), policy)
                .connect_timeout(cfg.connect_timeout)
                .timeout(cfg.timeout)
                .user_agent(USER_AGENT)
                .build()
                .map_err(|e| FetchError::Setup(describe(&e)))
        };
        Ok(Self {
            public_only: build(AddressPolicy::PublicOnly)?,
            allow_private: build(AddressPolicy::AllowPrivate)?,
            policy: cfg.address_policy,
            max_body_bytes: cfg.max_body_bytes,
        })
    }

    /// The same client (same pools) under another policy: `true` allows private networks
    /// (cloud metadata stays refused), `false` allows public addresses only.
    pub fn with_private_networks(&self, allow: bool) -> Self {
        Self {
            policy: AddressPolicy::from_allow_private(allow),
            ..self.clone()
        }
    }

    /// Which addresses this client's requests may go to.
    pub fn address_policy(&self) -> AddressPolicy {
        self.policy
    }

    /// The response body cap in bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// GET a JSON document; any status other than 2xx is an error.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &Url) -> Result<T, FetchError> {
        let resp = self.get(url).await?;
        if !resp.status.is_success() {
            return Err(FetchError::Status(resp.status.as_u16()));
        }
        serde_json::from_slice(&resp.body).map_err(|_| FetchError::InvalidJson)
    }

    /// GET with `Accept: application/json`; every non-redirect status is returned.
    pub async fn get(&self, url: &Url) -> Result<HttpResponse, FetchError> {
        let rb = self
            .request(Method::GET, url)?
            .header(ACCEPT, "application/json");
        self.execute(rb).await
    }

    /// POST an `application/x-www-form-urlencoded` body, optionally with HTTP Basic
    /// credentials (sent as given: OAuth's extra form-encoding is the caller's job).
    /// Every non-redirect status is returned, so OAuth error bodies can be read.
    pub async fn post_form(
        &self,
        url: &Url,
        form: &[(&str, &str)],
        basic_auth: Option<(&str, &SecretString)>,
    ) -> Result<HttpResponse, FetchError> {
        let mut rb = self
            .request(Method::POST, url)?
            .header(ACCEPT, "application/json")
            .form(form);
        if let Some((user, password)) = basic_auth {
            rb = rb.header(AUTHORIZATION, basic_header(user, password)?);
        }
        self.execute(rb).await
    }

    /// POST a JSON body with the given `Accept`; every non-redirect status is returned.
    pub async fn post_json<B: Serialize + ?Sized>(
        &self,
        url: &Url,
        body: &B,
        accept: &str,
    ) -> Result<HttpResponse, FetchError> {
        let body = serde_json::to_vec(body).map_err(|_| FetchError::InvalidJson)?;
        let rb = self
            .request(Method::POST, url)?
            .header(ACCEPT, accept)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        self.execute(rb).await
    }

    /// The single place where outbound requests are created. IP-literal hosts are checked
    /// here: resolvers never see them.
    fn request(&self, method: Method, url: &Url) -> Result<RequestBuilder, FetchError> {
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(FetchError::UnsupportedScheme(other.to_owned())),
        }
        check_url(url, self.policy).map_err(FetchError::AddressRefused)?;
        let http = match self.policy {
            AddressPolicy::PublicOnly => &self.public_only,
            AddressPolicy::AllowPrivate => &self.allow_private,
        };
        Ok(http.request(method, url.clone()))
    }

    async fn execute(&self, rb: RequestBuilder) -> Result<HttpResponse, FetchError> {
        let resp = rb.send().await.map_err(classify)?;
        let status = resp.status();
        if status.is_redirection() {
            return Err(FetchError::Redirect(status.as_u16()));
        }
        let headers = resp.headers().clone();
        let body = read_capped(resp, self.max_body_bytes).await?;
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// Reads the body chunk by chunk, failing as soon as it grows past `limit`, so an oversized
/// (or endless) body never sits in memory.
async fn read_capped(mut resp: reqwest::Response, limit: usize) -> Result<Bytes, FetchError> {
    if resp.content_length().is_some_and(|len| len > limit as u64) {
        return Err(FetchError::TooLarge { limit });
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(classify)? {
        if buf.len() + chunk.len() > limit {
            return Err(FetchError::TooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn basic_header(user: &str, password: &SecretString) -> Result<HeaderValue, FetchError> {
    let raw = format!("{user}:{}", password.expose_secret());
    let mut value = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(raw)))
        .map_err(|_| FetchError::Setup("invalid basic credentials".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

fn classify(err: reqwest::Error) -> FetchError {
    if let Some(refused) = find_refusal(&err) {
        FetchError::AddressRefused(refused.clone())
    } else if err.is_timeout() {
        FetchError::Timeout
    } else if err.is_connect() {
        FetchError::Connect(describe(&err))
    } else {
        FetchError::Transport(describe(&err))
    }
}

/// The error and its causes, without the URL reqwest would otherwise print.
fn describe(err: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    if parts.is_empty() {
        // Only the top-level error exists; drop the URL it would print.
        let mut text = err.to_string();
        if let Some(idx) = text.find(" for url (") {
            text.truncate(idx);
        }
        parts.push(text);
    }
    parts.join(": ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::net::testing::serve;
    use axum::Router;
    use axum::body::Body;
    use axum::http::{HeaderMap as AxHeaders, StatusCode as AxStatus};
    use axum::response::{IntoResponse, Redirect};
    use axum::routing::{get, post};
    use futures::stream;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn client() -> OutboundClient {
        OutboundClient::new(OutboundConfig {
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_millis(500),
            max_body_bytes: 1024,
            address_policy: AddressPolicy::AllowPrivate,
        })
        .expect("client")
    }

    fn app(hits: Arc<AtomicUsize>) -> Router {
        Router::new()
            .route(
                "/json",
                get(|| async { axum::Json(serde_json::json!({"a": 1})) }),
            )
            .route("/garbage", get(|| async { "not json" }))
            .route("/teapot", get(|| async { AxStatus::IM_A_TEAPOT }))
            .route(
                "/redirect",
                get(|| async { Redirect::temporary("/landing") }),
            )
            .route(
                "/landing",
                get(move || {
                    hits.fetch_add(1, Ordering::SeqCst);
                    async { axum::Json(serde_json::json!({"a": 2})) }
                }),
            )
            .route("/big", get(|| async { "x".repeat(4096) }))
            .route(
                "/big-stream",
                get(|| async {
                    let chunks =
                        (0..64).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'y'; 64])));
                    Body::from_stream(stream::iter(chunks))
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    "late"
                }),
            )
            .route(
                "/echo",
                post(|headers: AxHeaders, body: String| async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let ua = headers
                        .get("user-agent")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    axum::Json(serde_json::json!({"auth": auth, "ua": ua, "body": body}))
                        .into_response()
                }),
            )
    }

    #[derive(Debug, serde::Deserialize)]
    struct A {
        a: u32,
    }

    #[tokio::test]
    async fn fetches_json_and_classifies_failures() {
        let hits = Arc::new(AtomicUsize::new(0));
        let base = serve(app(hits.clone())).await;
        let c = client();
        let ok: A = c.get_json(&base.join("json").unwrap()).await.unwrap();
        assert_eq!(ok.a, 1);
        let garbage = c.get_json::<A>(&base.join("garbage").unwrap()).await;
        assert_eq!(garbage.err(), Some(FetchError::InvalidJson));
        let teapot = c.get_json::<A>(&base.join("teapot").unwrap()).await;
        assert_eq!(teapot.err(), Some(FetchError::Status(418)));
    }

    #[tokio::test]
    async fn never_follows_redirects() {
        let hits = Arc::new(AtomicUsize::new(0));
        let base = serve(app(hits.clone())).await;
        let err = client()
            .get_json::<A>(&base.join("redirect").unwrap())
            .await
            .err();
        assert_eq!(err, Some(FetchError::Redirect(307)));
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "redirect target was fetched"
        );
    }

    #[tokio::test]
    async fn caps_body_size_with_and_without_content_length() {
        let base = serve(app(Arc::default())).await;
        let c = client();
        let err = c.get(&base.join("big").unwrap()).await.err();
        assert_eq!(err, Some(FetchError::TooLarge { limit: 1024 }));
        let err = c.get(&base.join("big-stream").unwrap()).await.err();
        assert_eq!(err, Some(FetchError::TooLarge { limit: 1024 }));
    }

    #[tokio::test]
    async fn times_out() {
        let base = serve(app(Arc::default())).await;
        let err = client().get(&base.join("slow").unwrap()).await.err();
        assert_eq!(err, Some(FetchError::Timeout));
    }

    #[tokio::test]
    async fn connect_failure_is_classified() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let url = Url::parse(&format!("http://{addr}/")).unwrap();
        let err = client().get(&url).await.unwrap_err();
        assert!(matches!(err, FetchError::Connect(_)), "{err:?}");
        assert!(!err.to_string().contains(&addr.to_string()));
        assert!(err.is_transient());
    }

    #[tokio::test]
    async fn refuses_non_http_schemes() {
        let url = Url::parse("file:///etc/passwd").unwrap();
        let err = client().get(&url).await.unwrap_err();
        assert_eq!(err, FetchError::UnsupportedScheme("file".into()));
    }

    #[tokio::test]
    async fn public_only_refuses_loopback_literals_and_names_before_connecting() {
        let hits = Arc::new(AtomicUsize::new(0));
        let base = serve(app(hits.clone())).await;
        let strict = client().with_private_networks(false);
        assert_eq!(strict.address_policy(), AddressPolicy::PublicOnly);
        let err = strict
            .get_json::<A>(&base.join("landing").unwrap())
            .await
            .unwrap_err();
        let FetchError::AddressRefused(refused) = &err else {
            panic!("expected a refusal, got {err:?}")
        };
        assert_eq!(refused.class, crate::net::AddressClass::Loopback);
        assert!(!err.is_transient());
        // A name resolving to loopback: refused by the resolver, at connect time.
        let mut by_name = base.join("landing").unwrap();
        by_name.set_host(Some("localhost")).unwrap();
        let err = strict.get_json::<A>(&by_name).await.unwrap_err();
        let FetchError::AddressRefused(refused) = &err else {
            panic!("expected a refusal, got {err:?}")
        };
        assert_eq!(refused.host, "localhost");
        assert!(
            err.to_string()
                .contains("private address (loopback) for localhost"),
            "{err}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 0, "the server was reached");
        // The same client allowing private networks reaches it (pools are shared).
        let ok: A = strict
            .with_private_networks(true)
            .get_json(&by_name)
            .await
            .unwrap();
        assert_eq!(ok.a, 2);
    }

    #[tokio::test]
    async fn cloud_metadata_is_refused_even_when_private_networks_are_allowed() {
        let url = Url::parse("http://169.254.169.254/latest/meta-data/").unwrap();
        let err = client().get(&url).await.unwrap_err();
        let FetchError::AddressRefused(refused) = &err else {
            panic!("expected a refusal, got {err:?}")
        };
        assert_eq!(refused.class, crate::net::AddressClass::CloudMetadata);
        assert!(err.to_string().contains("never allowed"), "{err}");
    }

    #[tokio::test]
    async fn custom_builders_get_the_guard_too() {
        let base = serve(app(Arc::default())).await;
        let cfg = OutboundConfig {
            address_policy: AddressPolicy::PublicOnly,
            ..OutboundConfig::default()
        };
        // A builder that would follow redirects: the guard's settings win.
        let custom = OutboundClient::with_builder(cfg, || {
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::limited(5))
        })
        .unwrap();
        let err = custom.get(&base.join("json").unwrap()).await.unwrap_err();
        assert!(matches!(err, FetchError::AddressRefused(_)), "{err:?}");
        let hits = Arc::new(AtomicUsize::new(0));
        let base = serve(app(hits.clone())).await;
        let err = custom
            .with_private_networks(true)
            .get(&base.join("redirect").unwrap())
            .await
            .unwrap_err();
        assert_eq!(err, FetchError::Redirect(307));
        assert_eq!(hits.load(Ordering::SeqCst), 0, "redirect was followed");
    }

    #[tokio::test]
    async fn post_form_sends_basic_auth_and_user_agent() {
        let base = serve(app(Arc::default())).await;
        let secret = SecretString::from("s3cret");
        let resp = client()
            .post_form(
                &base.join("echo").unwrap(),
                &[("grant_type", "x y"), ("k", "v&w")],
                Some(("id", &secret)),
            )
            .await
            .unwrap();
        assert_eq!(resp.status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(v["auth"], format!("Basic {}", STANDARD.encode("id:s3cret")));
        assert_eq!(v["ua"], USER_AGENT);
        assert_eq!(v["body"], "grant_type=x+y&k=v%26w");
    }
}
