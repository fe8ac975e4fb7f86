//! Starts the gateway in-process for integration tests and registers servers on it.

use clap::Parser as _;
use mcp_oauth_operator::app::{self, Registrations, RunningServer};
use mcp_oauth_operator::cli::{Cli, Command, ServerArgs};
use mcp_oauth_operator::flows::Flows;
use mcp_oauth_operator::identity::Caller;
use mcp_oauth_operator::registry::{
    AuthSettings, ClientAuthMethod, ClientIdentity, OAuthSettings, PreRegisteredClient, Registry,
    ServerKey, ServerRegistration,
};
use mcp_oauth_operator::store::{FlowStore, TokenStore};
use secrecy::SecretString;
use std::sync::Arc;
use url::Url;

/// Server args as the CLI would parse them, with extra flags.
pub fn server_args(extra: &[&str]) -> ServerArgs {
    let mut argv = vec![
        "mcp-oauth-operator",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--rate-limit-per-minute",
        "100000",
        "--rate-limit-burst",
        "100000",
        // The test IdPs and MCP servers listen on loopback (parsing without the subcommand
        // defaults would leave the guard closed). Later flags override it.
        "--outbound-allow-private-networks",
    ];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv)
        .expect("test CLI args parse")
        .command
    {
        Command::Serve(s) => s.server,
        _ => unreachable!("serve was requested"),
    }
}

pub struct Gateway {
    pub server: RunningServer,
}

impl Gateway {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    pub async fn start_with(extra: &[&str]) -> Self {
        let args = server_args(extra);
        let server = app::start(&args.app_config(), Registrations::Programmatic)
            .await
            .expect("gateway starts");
        Self { server }
    }

    pub fn flows(&self) -> &Arc<Flows> {
        &self.server.flows
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.server.registry
    }

    pub fn token_store(&self) -> &Arc<dyn TokenStore> {
        &self.server.token_store
    }

    pub fn flow_store(&self) -> &Arc<dyn FlowStore> {
        &self.server.flow_store
    }

    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub fn base(&self) -> String {
        format!("http://{}", self.server.local_addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base(), path)
    }

    /// Register `default/<name>` in oauth mode with our CIMD client.
    pub fn register_oauth(&self, name: &str, mcp_url: &str) -> ServerKey {
        self.register(name, mcp_url, oauth_settings(mcp_url, ClientIdentity::Cimd))
    }

    pub fn register(&self, name: &str, mcp_url: &str, settings: OAuthSettings) -> ServerKey {
        let key = ServerKey::new("default", name);
        self.registry().upsert_server(ServerRegistration {
            key: key.clone(),
            url: Url::parse(mcp_url).expect("server url"),
            auth: AuthSettings::OAuth(settings),
            generation: 1,
            forward_headers: Vec::new(),
        });
        key
    }

    /// Register `default/<name>` with auth mode `none` (the gateway sends no credentials).
    pub fn register_none(&self, name: &str, mcp_url: &str) -> ServerKey {
        let key = ServerKey::new("default", name);
        self.registry().upsert_server(ServerRegistration {
            key: key.clone(),
            url: Url::parse(mcp_url).expect("server url"),
            auth: AuthSettings::None,
            generation: 1,
            forward_headers: Vec::new(),
        });
        key
    }

    /// Register `default/<name>` with auth mode `none` and `spec.forwardHeaders` = `headers`.
    pub fn register_none_forwarding(
        &self,
        name: &str,
        mcp_url: &str,
        headers: &[&str],
    ) -> ServerKey {
        let key = ServerKey::new("default", name);
        self.registry().upsert_server(ServerRegistration {
            key: key.clone(),
            url: Url::parse(mcp_url).expect("server url"),
            auth: AuthSettings::None,
            generation: 1,
            forward_headers: headers
                .iter()
                .map(|h| http::HeaderName::from_bytes(h.as_bytes()).expect("header name"))
                .collect(),
        });
        key
    }

    /// Register `default/<name>` in forward mode: the caller's token goes upstream when its
    /// audience is one of `audiences`.
    pub fn register_forward(&self, name: &str, mcp_url: &str, audiences: &[&str]) -> ServerKey {
        let key = ServerKey::new("default", name);
        self.registry().upsert_server(ServerRegistration {
            key: key.clone(),
            url: Url::parse(mcp_url).expect("server url"),
            auth: AuthSettings::Forward(mcp_oauth_operator::registry::ForwardSettings {
                audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
            }),
            generation: 1,
            forward_headers: Vec::new(),
        });
        key
    }

    /// The `/metrics` page (Prometheus text).
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// The gateway endpoint of `default/<name>`.
    pub fn mcp_url(&self, name: &str) -> String {
        self.url(&format!("/mcp/default/{name}"))
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

pub fn oauth_settings(resource: &str, client: ClientIdentity) -> OAuthSettings {
    OAuthSettings {
        issuer: None,
        scopes: vec![],
        resource: resource.to_owned(),
        send_resource: true,
        client,
    }
}

pub fn pre_registered(id: &str, secret: &str, method: ClientAuthMethod) -> ClientIdentity {
    ClientIdentity::PreRegistered(PreRegisteredClient {
        client_id: id.to_owned(),
        client_secret: Some(SecretString::from(secret.to_owned())),
        auth_method: method,
    })
}

pub fn alice() -> Caller {
    Caller::new("alice", "session-alice-0001")
}

/// The `state` (flow id) of a URL's query, if any.
pub fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `url` with query parameter `name` replaced (or removed when `value` is None).
pub fn with_param(url: &Url, name: &str, value: Option<&str>) -> Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut out = url.clone();
    out.set_query(None);
    {
        let mut q = out.query_pairs_mut();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
        if let Some(v) = value {
            q.append_pair(name, v);
        }
    }
    out
}

/// Call a tool on a Streamable HTTP MCP server with a bearer token; returns the text content.
pub async fn call_tool(mcp_url: &str, token: &str, tool: &str, args: serde_json::Value) -> String {
    let client = reqwest::Client::new();
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": tool, "arguments": args}
    });
    let resp = client
        .post(mcp_url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&body)
        .send()
        .await
        .expect("tools/call request");
    let status = resp.status();
    let text = resp.text().await.expect("tools/call body");
    assert!(status.is_success(), "tools/call returned {status}: {text}");
    // JSON or a single SSE `data:` event.
    let json_text = text
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .unwrap_or(text.trim());
    let v: serde_json::Value = serde_json::from_str(json_text).expect("tools/call JSON");
    v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content in {v}"))
        .to_owned()
}

/// Create the challenge for `caller`, then log in at the IdP as `login` in a fresh scripted
/// browser; returns the browser (holding the binding cookie) and the callback URL, not yet loaded.
pub async fn start_login(
    flows: &Flows,
    server: &ServerKey,
    caller: &Caller,
    login: &str,
) -> (crate::Browser, Url) {
    let challenge = flows
        .create_auth_challenge(server, caller, None)
        .await
        .expect("challenge");
    let browser = crate::Browser::new();
    let callback = browser.login_at_idp(&challenge.auth_url, login).await;
    (browser, callback)
}

/// The `whoami` tool of the test MCP server, called with `token`.
pub async fn whoami(mcp_url: &str, token: &str) -> String {
    call_tool(mcp_url, token, "whoami", serde_json::json!({})).await
}

/// Calls the test MCP server's `whoami` tool through the gateway at `url` with `bearer`;
/// returns the status and the JSON body.
pub async fn call_whoami(url: &str, bearer: &str) -> (reqwest::StatusCode, serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2025-06-18")
        .bearer_auth(bearer)
        .json(
            &serde_json::json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                      "params": {"name": "whoami", "arguments": {}}}),
        )
        .send()
        .await
        .expect("gateway answers");
    let status = resp.status();
    let body = resp.json().await.expect("JSON body");
    (status, body)
}

/// The `Location` of a redirect response.
pub fn location(resp: &reqwest::Response) -> String {
    assert!(
        resp.status().is_redirection(),
        "expected a redirect, got {}",
        resp.status()
    );
    resp.headers()[reqwest::header::LOCATION]
        .to_str()
        .expect("ASCII Location")
        .to_owned()
}

/// Flags of `oidc` identity at `issuer` whose browsers sign in with the test IdP's confidential
/// client (its secret in `secret_file`) before following a sign-in link.
pub fn sign_in_flags<'a>(issuer: &'a str, secret_file: &'a str) -> Vec<&'a str> {
    vec![
        "--identity",
        "oidc",
        "--oidc-issuer",
        issuer,
        "--oidc-client-id",
        crate::idp::CONFIDENTIAL_CLIENT_ID,
        "--oidc-client-secret-file",
        secret_file,
    ]
}

/// Test lookups of stored tokens by issuer alone. The gateway never looks tokens up that way
/// (a token is found through its server's binding only); tests that register one server per
/// issuer use this to read "the" token without spelling out the binding.
#[async_trait::async_trait]
pub trait IssuerTokens {
    /// The entry of `session` issued by `issuer` that the store's ranking prefers (as the
    /// gateway's own lookup does among one binding's scopes); panics when entries of several
    /// bindings match.
    async fn only_token_from(
        &self,
        session: &str,
        issuer: &str,
    ) -> Result<
        Option<(
            mcp_oauth_operator::store::TokenKey,
            mcp_oauth_operator::store::TokenRecord,
        )>,
        mcp_oauth_operator::store::StoreError,
    >;
}

#[async_trait::async_trait]
impl IssuerTokens for Arc<dyn mcp_oauth_operator::store::TokenStore> {
    async fn only_token_from(
        &self,
        session: &str,
        issuer: &str,
    ) -> Result<
        Option<(
            mcp_oauth_operator::store::TokenKey,
            mcp_oauth_operator::store::TokenRecord,
        )>,
        mcp_oauth_operator::store::StoreError,
    > {
        let found: Vec<_> = self
            .all_for_session(session)
            .await?
            .into_iter()
            .filter(|(k, _)| k.issuer() == issuer)
            .collect();
        assert!(
            found.windows(2).all(|w| w[0].0.binding == w[1].0.binding),
            "tokens of {issuer} for several bindings in one session"
        );
        let now = mcp_oauth_operator::time::unix_now();
        let best = mcp_oauth_operator::store::ranking::preferred(
            found.iter().map(|(k, r)| (k.scope.as_str(), r)),
            now,
        )
        .map(|(scope, _)| scope.to_owned());
        Ok(found
            .into_iter()
            .find(|(k, _)| Some(&k.scope) == best.as_ref()))
    }
}
