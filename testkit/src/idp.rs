//! The test identity provider (`tests/infra/node/idp.mjs`, node-oidc-provider).

use serde::Deserialize;
use url::Url;

use super::node::NodeProcess;

/// Pre-registered confidential client using `client_secret_basic`.
pub const CONFIDENTIAL_CLIENT_ID: &str = "gateway-confidential";
pub const CONFIDENTIAL_CLIENT_SECRET: &str = "gateway-secret";
/// Pre-registered confidential client using `client_secret_post`.
pub const POST_CLIENT_ID: &str = "gateway-post";
pub const POST_CLIENT_SECRET: &str = "post-secret";
/// Pre-registered public client (`token_endpoint_auth_method: none`).
pub const PUBLIC_CLIENT_ID: &str = "gateway-public";
/// The pre-registered clients' redirect URI; any loopback port is accepted (RFC 8252 §7.3).
pub const REGISTERED_REDIRECT_PATH: &str = "/oauth/callback";

/// How to configure the IdP. `Default` gives a plain issuer on a free port with
/// CIMD and dynamic registration enabled and 600 s access tokens.
#[derive(Debug, Clone, Default)]
pub struct IdpOptions {
    /// Access-token lifetime in seconds (IdP default 600).
    pub access_token_ttl: Option<u64>,
    /// Refresh-token lifetime in seconds (IdP default 86400).
    pub refresh_token_ttl: Option<u64>,
    /// Issuer path such as `/tenant-a` (RFC 8414 path-inserted metadata is served too).
    pub issuer_path: Option<String>,
    /// Listen on this port instead of a free one (e.g. to restart an IdP in place).
    pub port: Option<u16>,
    /// Extra redirect URIs for the pre-registered clients.
    pub redirect_uris: Vec<String>,
    /// Turn off Client ID Metadata Document support.
    pub disable_cimd: bool,
    /// Turn off dynamic client registration.
    pub disable_dcr: bool,
    /// Refresh grants return no new refresh token (the old one stays valid).
    pub no_refresh_rotation: bool,
    /// Lifetime in seconds of tokens issued by the RFC 8693 exchange grant (default: the
    /// access-token lifetime).
    pub exchange_token_ttl: Option<u64>,
}

/// The IdP's record of Client ID Metadata Document fetches (`GET /test/cimd-fetches`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CimdFetches {
    pub count: u64,
    pub last_url: Option<String>,
    pub last_error: Option<String>,
}

/// Protocol request counters (`GET /test/stats`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IdpStats {
    pub token_requests: u64,
    pub authorize_requests: u64,
    pub revocation_requests: u64,
    pub introspection_requests: u64,
}

/// A running IdP; killed on drop.
#[derive(Debug)]
pub struct Idp {
    process: NodeProcess,
    issuer: String,
    origin: Url,
    http: reqwest::Client,
}

impl Idp {
    /// Starts `idp.mjs` and waits until it serves requests.
    pub async fn start(opts: IdpOptions) -> Self {
        let mut env = vec![("PORT", opts.port.unwrap_or(0).to_string())];
        if let Some(ttl) = opts.access_token_ttl {
            env.push(("ACCESS_TOKEN_TTL", ttl.to_string()));
        }
        if let Some(ttl) = opts.refresh_token_ttl {
            env.push(("REFRESH_TOKEN_TTL", ttl.to_string()));
        }
        if let Some(path) = opts.issuer_path {
            env.push(("ISSUER_PATH", path));
        }
        if !opts.redirect_uris.is_empty() {
            env.push(("REDIRECT_URIS", opts.redirect_uris.join(",")));
        }
        if opts.disable_cimd {
            env.push(("ENABLE_CIMD", "0".to_owned()));
        }
        if opts.no_refresh_rotation {
            env.push(("ROTATE_REFRESH_TOKENS", "0".to_owned()));
        }
        if let Some(ttl) = opts.exchange_token_ttl {
            env.push(("EXCHANGE_TOKEN_TTL", ttl.to_string()));
        }
        if opts.disable_dcr {
            env.push(("ENABLE_DCR", "0".to_owned()));
        }
        let process = NodeProcess::start("idp", &["idp.mjs"], &env).await;
        let issuer = process.ready_value().to_owned();
        let mut origin = Url::parse(&issuer).expect("the IdP prints its issuer URL");
        origin.set_path("/");
        Self {
            process,
            issuer,
            origin,
            http: reqwest::Client::new(),
        }
    }

    /// The issuer URL, e.g. `http://127.0.0.1:41234` or `http://127.0.0.1:41234/tenant-a`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `{issuer}/auth`.
    pub fn authorization_endpoint(&self) -> String {
        format!("{}/auth", self.issuer)
    }

    /// `{issuer}/token`.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// `{issuer}/token/introspection`.
    pub fn introspection_endpoint(&self) -> String {
        format!("{}/token/introspection", self.issuer)
    }

    /// `{issuer}/token/revocation`.
    pub fn revocation_endpoint(&self) -> String {
        format!("{}/token/revocation", self.issuer)
    }

    /// The OpenID discovery document.
    pub async fn discovery(&self) -> serde_json::Value {
        self.get_json(&format!("{}/.well-known/openid-configuration", self.issuer))
            .await
    }

    /// How many CIMD documents the IdP fetched, and the last one.
    pub async fn cimd_fetches(&self) -> CimdFetches {
        let url = self.test_url("test/cimd-fetches");
        serde_json::from_value(self.get_json(&url).await).expect("cimd-fetches shape")
    }

    /// Token/authorize/revocation/introspection request counters.
    pub async fn stats(&self) -> IdpStats {
        let url = self.test_url("test/stats");
        serde_json::from_value(self.get_json(&url).await).expect("stats shape")
    }

    /// Zeroes the request and CIMD counters.
    pub async fn reset_stats(&self) {
        let status = self
            .http
            .post(self.test_url("test/reset"))
            .send()
            .await
            .expect("POST /test/reset")
            .status();
        assert!(status.is_success(), "POST /test/reset answered {status}");
    }

    /// The node process (logs, pid).
    pub fn process(&self) -> &NodeProcess {
        &self.process
    }

    /// Logs `login` in through a fresh scripted browser with the public client and redeems the
    /// code for an access token bound to `resource` (RFC 8707): an ES256 JWT with
    /// `aud` = `resource` — what an MCP client holds to call the gateway in `oidc` mode.
    pub async fn user_access_token(&self, login: &str, resource: &str) -> String {
        let body = self.user_tokens(login, Some(resource), None).await;
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// The OpenID Connect ID token of `login` for the public client (`aud` = it), carrying
    /// `nonce` when given.
    pub async fn user_id_token(&self, login: &str, nonce: Option<&str>) -> String {
        let body = self.user_tokens(login, None, nonce).await;
        body["id_token"].as_str().expect("id_token").to_owned()
    }

    /// The token response of an authorization-code flow of the public client with scope
    /// `openid mcp:tools`, `login` logging in through a fresh scripted browser.
    async fn user_tokens(
        &self,
        login: &str,
        resource: Option<&str>,
        nonce: Option<&str>,
    ) -> serde_json::Value {
        let redirect_uri = format!("http://127.0.0.1:{}/oauth/callback", super::free_port());
        let pkce = super::Pkce::new();
        let mut start = Url::parse(&self.authorization_endpoint()).expect("authorization endpoint");
        {
            let mut q = start.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", PUBLIC_CLIENT_ID)
                .append_pair("redirect_uri", &redirect_uri)
                .append_pair("scope", "openid mcp:tools")
                .append_pair("code_challenge", &pkce.challenge)
                .append_pair("code_challenge_method", "S256")
                .append_pair("state", "user-tokens");
            if let Some(resource) = resource {
                q.append_pair("resource", resource);
            }
            if let Some(nonce) = nonce {
                q.append_pair("nonce", nonce);
            }
        }
        let callback = super::Browser::new()
            .login_at_idp(start.as_str(), login)
            .await;
        let code = callback
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("authorization response has a code");
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("client_id", PUBLIC_CLIENT_ID),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", pkce.verifier.as_str()),
        ];
        if let Some(resource) = resource {
            form.push(("resource", resource));
        }
        let response = reqwest::Client::new()
            .post(self.token_endpoint())
            .form(&form)
            .send()
            .await
            .expect("token request");
        assert!(response.status().is_success(), "token endpoint status");
        response.json().await.expect("token response JSON")
    }

    /// Kills the IdP and waits until its port is free.
    pub async fn stop(self) {
        self.process.stop().await;
    }

    fn test_url(&self, path: &str) -> String {
        self.origin
            .join(path)
            .expect("test endpoint URL")
            .to_string()
    }

    async fn get_json(&self, url: &str) -> serde_json::Value {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {url}: {err}"));
        assert!(
            response.status().is_success(),
            "GET {url} answered {}",
            response.status()
        );
        response
            .json()
            .await
            .unwrap_or_else(|err| panic!("GET {url}: body is not JSON: {err}"))
    }
}
