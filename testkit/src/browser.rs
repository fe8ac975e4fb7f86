//! A scripted browser: an HTTP client with a cookie jar that follows redirects
//! itself, so a test sees every hop, and that can fill in the IdP's login and
//! consent pages (node-oidc-provider's dev interactions: any login name works).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use regex::Regex;
use reqwest::cookie::{CookieStore as _, Jar};
use reqwest::header::{HeaderMap, LOCATION};
use reqwest::{Method, StatusCode};
use url::{Origin, Url};

/// Hops allowed between the start URL and the redirect back to the client.
const MAX_STEPS: usize = 25;

/// Why a scripted login did not reach a redirect back to the client.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("request to {url} failed: {source}")]
    Request {
        url: Url,
        #[source]
        source: reqwest::Error,
    },
    #[error("redirect from {url} has no usable Location header")]
    BadRedirect { url: Url },
    #[error("unexpected page at {url}: HTTP {status}: {excerpt}")]
    UnexpectedPage {
        url: Url,
        status: StatusCode,
        excerpt: String,
    },
    #[error("no redirect back to the client after {MAX_STEPS} steps (last URL {url})")]
    TooManySteps { url: Url },
}

/// The form on a dev-interaction page.
struct InteractionForm {
    action: Url,
    prompt: String,
}

/// A cookie-keeping client that never follows redirects on its own.
#[derive(Debug, Clone)]
pub struct Browser {
    client: reqwest::Client,
    jar: Arc<Jar>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(Arc::clone(&jar))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()
            .expect("build the browser's HTTP client");
        Self { client, jar }
    }

    /// The underlying client (shares the cookie jar), for requests beyond GET.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The `Cookie` header this browser would send to `url`.
    pub fn cookies_for(&self, url: &str) -> Option<String> {
        let url = Url::parse(url).expect("cookies_for: URL");
        self.jar
            .cookies(&url)
            .map(|value| value.to_str().expect("cookie header is ASCII").to_owned())
    }

    /// GET without following redirects.
    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.client
            .get(url)
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {url}: {err}"))
    }

    /// GET without following redirects; returns status, headers and body text.
    pub async fn get_text(&self, url: &str) -> (StatusCode, HeaderMap, String) {
        let response = self.get(url).await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .text()
            .await
            .unwrap_or_else(|err| panic!("GET {url}: reading body: {err}"));
        (status, headers, body)
    }

    /// Like [`Browser::try_login_at_idp`], panicking on failure.
    pub async fn login_at_idp(&self, start_url: &str, login: &str) -> Url {
        self.try_login_at_idp(start_url, login)
            .await
            .unwrap_or_else(|err| panic!("scripted IdP login failed: {err}"))
    }

    /// Starts at `start_url` (e.g. the gateway's `/oauth/connect?flow=…` or an
    /// IdP authorization URL), follows redirects, logs in as `login` and
    /// consents, and returns — without requesting it — the first redirect that
    /// leaves the IdP's origin after the IdP was reached: the authorization
    /// response (`code`, `state`, `iss`, or an `error`) to the client.
    ///
    /// The IdP is recognised as the origin of the first authorization request
    /// (`client_id` with `response_type` or `request_uri`) or interaction page.
    pub async fn try_login_at_idp(&self, start_url: &str, login: &str) -> Result<Url, LoginError> {
        let mut url = Url::parse(start_url).expect("login_at_idp: start URL");
        let mut form: Option<Vec<(&str, String)>> = None;
        let mut idp: Option<Origin> = None;

        for _ in 0..MAX_STEPS {
            if idp.is_none() && (is_authorization_request(&url) || is_interaction(&url)) {
                idp = Some(url.origin());
            }
            let request = match form.take() {
                Some(fields) => self.client.request(Method::POST, url.clone()).form(&fields),
                None => self.client.get(url.clone()),
            };
            let response = request.send().await.map_err(|source| LoginError::Request {
                url: url.clone(),
                source,
            })?;
            let status = response.status();

            if status.is_redirection() {
                let next = redirect_target(&url, response.headers())
                    .ok_or_else(|| LoginError::BadRedirect { url: url.clone() })?;
                if idp.as_ref().is_some_and(|origin| *origin != next.origin()) {
                    return Ok(next);
                }
                url = next;
                continue;
            }

            let body = response
                .text()
                .await
                .map_err(|source| LoginError::Request {
                    url: url.clone(),
                    source,
                })?;
            let page = status
                .is_success()
                .then(|| interaction_form(&url, &body))
                .flatten();
            let Some(page) = page else {
                return Err(LoginError::UnexpectedPage {
                    url,
                    status,
                    excerpt: excerpt(&body),
                });
            };
            idp.get_or_insert_with(|| url.origin());
            let fields = match page.prompt.as_str() {
                "login" => vec![
                    ("prompt", page.prompt.clone()),
                    ("login", login.to_owned()),
                    ("password", "any-password".to_owned()),
                ],
                _ => vec![("prompt", page.prompt.clone())],
            };
            form = Some(fields);
            url = page.action;
        }
        Err(LoginError::TooManySteps { url })
    }
}

fn is_authorization_request(url: &Url) -> bool {
    let has = |name: &str| url.query_pairs().any(|(key, _)| key == name);
    has("client_id") && (has("response_type") || has("request_uri"))
}

fn is_interaction(url: &Url) -> bool {
    url.path().contains("/interaction/")
}

fn redirect_target(base: &Url, headers: &HeaderMap) -> Option<Url> {
    let location = headers.get(LOCATION)?.to_str().ok()?;
    base.join(location).ok()
}

/// The POST form of a login or consent page, if `body` is one.
fn interaction_form(page_url: &Url, body: &str) -> Option<InteractionForm> {
    static FORM: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(?is)<form\b[^>]*\baction="([^"]*)"[^>]*>(.*?)</form>"#).expect("form regex")
    });
    static PROMPT: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r#"name="prompt"\s+value="([^"]*)""#).expect("prompt regex"));
    FORM.captures_iter(body).find_map(|form| {
        let prompt = PROMPT.captures(&form[2])?[1].to_owned();
        let action = page_url.join(&unescape_html(&form[1])).ok()?;
        Some(InteractionForm { action, prompt })
    })
}

/// Undoes the HTML escaping a template applies to an attribute value.
fn unescape_html(value: &str) -> String {
    value
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn excerpt(body: &str) -> String {
    const MAX: usize = 600;
    let text = body.trim();
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}
