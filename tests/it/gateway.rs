//! The gateway's proxy path `/mcp/{namespace}/{name}` against real MCP servers (the TS SDK's
//! `server-everything` with sessions and SSE, the OAuth-protected test server) and the real IdP,
//! plus raw TCP servers for the faults a real server cannot produce (down, slow, garbage).

use mcp_oauth_operator::identity::Caller;
use mcp_oauth_operator::store::TokenRecord;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use testkit::gateway::*;
use testkit::{Browser, EverythingServer, Idp, IdpOptions, McpServer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const ACCEPT: &str = "application/json, text/event-stream";

/// A minimal JSON-RPC client over Streamable HTTP, as an MCP client would send it.
struct Rpc {
    http: reqwest::Client,
    url: String,
    session: Option<String>,
    version: &'static str,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    /// The JSON-RPC response (from a JSON body or the SSE event holding it); `Null` if none.
    message: Value,
    raw: String,
}

impl Rpc {
    fn new(url: String) -> Self {
        Self {
            http: reqwest::Client::new(),
            url,
            session: None,
            version: "2025-06-18",
        }
    }

    fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut rb = self
            .http
            .request(method, &self.url)
            .header("accept", ACCEPT)
            .header("mcp-protocol-version", self.version);
        if let Some(s) = &self.session {
            rb = rb.header("mcp-session-id", s);
        }
        rb
    }

    async fn post(&self, body: &Value) -> Reply {
        let resp = self
            .request(reqwest::Method::POST)
            .json(body)
            .send()
            .await
            .expect("POST to the gateway");
        Reply::read(resp).await
    }

    async fn call(&self, id: u64, method: &str, params: Value) -> Reply {
        self.post(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await
    }

    /// `initialize` + `notifications/initialized`; keeps the session id the server issued.
    async fn initialize(&mut self) -> Reply {
        let reply = self
            .call(
                0,
                "initialize",
                json!({
                    "protocolVersion": self.version,
                    "capabilities": {},
                    "clientInfo": {"name": "gateway-test", "version": "1"},
                }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "initialize: {}", reply.raw);
        self.session = reply
            .headers
            .get("mcp-session-id")
            .map(|v| v.to_str().expect("ascii").to_owned());
        let ack = self
            .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(ack.status, StatusCode::ACCEPTED, "initialized: {}", ack.raw);
        reply
    }
}

impl Reply {
    async fn read(resp: reqwest::Response) -> Self {
        let status = resp.status();
        let headers = resp.headers().clone();
        let raw = resp.text().await.expect("body");
        let message = json_rpc_message(&raw);
        Self {
            status,
            headers,
            message,
            raw,
        }
    }

    fn error_message(&self) -> &str {
        self.message["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no JSON-RPC error in {}", self.raw))
    }

    fn text(&self) -> &str {
        self.message["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("no text content in {}", self.raw))
    }
}

/// The JSON-RPC response in a JSON body or an SSE stream (the event with `result`/`error`).
fn json_rpc_message(raw: &str) -> Value {
    if let Ok(v) = serde_json::from_str::<Value>(raw) {
        return v;
    }
    raw.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v.get("result").is_some() || v.get("error").is_some())
        .unwrap_or(Value::Null)
}

// ---------------------------------------------------------------------------------------------
// Streaming and sessions (auth mode none)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_and_session_ids_pass_through_unbuffered() {
    let everything = EverythingServer::start().await;
    let gw = Gateway::start().await;
    gw.register_none("everything", everything.url());
    let mut rpc = Rpc::new(gw.mcp_url("everything"));

    let init = rpc.initialize().await;
    assert_eq!(
        init.message["result"]["serverInfo"]["name"], "mcp-servers/everything",
        "{}",
        init.raw
    );
    let session = rpc
        .session
        .clone()
        .expect("the upstream session id reaches the client");
    assert!(
        !session.starts_with("mcpgw-"),
        "an upstream session is not remapped"
    );

    // A long-running tool with progress: the notifications must arrive while it runs, not all
    // at once at the end (that would be buffering).
    let resp = rpc
        .request(reqwest::Method::POST)
        .json(&json!({
            "jsonrpc": "2.0", "id": 5, "method": "tools/call",
            "params": {
                "name": "trigger-long-running-operation",
                "arguments": {"duration": 2, "steps": 4},
                "_meta": {"progressToken": "p1"},
            },
        }))
        .send()
        .await
        .expect("tools/call");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let started = Instant::now();
    let mut resp = resp;
    let mut first_progress = None;
    let mut result_at = None;
    let mut seen = String::new();
    while let Some(chunk) = resp.chunk().await.expect("stream chunk") {
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if first_progress.is_none() && seen.contains("notifications/progress") {
            first_progress = Some(started.elapsed());
        }
        if result_at.is_none() && seen.contains("Long running operation completed") {
            result_at = Some(started.elapsed());
        }
    }
    let (first_progress, result_at) = (
        first_progress.expect("progress notifications streamed"),
        result_at.expect("the result streamed"),
    );
    assert!(
        result_at - first_progress >= Duration::from_millis(800),
        "progress at {first_progress:?} and result at {result_at:?}: the stream was buffered"
    );
    assert_eq!(seen.matches("notifications/progress").count(), 4, "{seen}");

    // A GET opens the server-to-client SSE stream of the session; headers come back at once.
    let get = tokio::time::timeout(
        Duration::from_secs(5),
        rpc.request(reqwest::Method::GET).send(),
    )
    .await
    .expect("GET stream headers in time")
    .expect("GET");
    assert_eq!(get.status(), StatusCode::OK);
    assert_eq!(get.headers()["content-type"], "text/event-stream");
    drop(get);

    // DELETE ends the session; the remote server's refusal of the dead session (server-everything
    // answers 400 with a JSON-RPC error) passes through unchanged.
    let deleted = rpc
        .request(reqwest::Method::DELETE)
        .send()
        .await
        .expect("DELETE");
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let after = rpc.call(6, "tools/list", json!({})).await;
    assert_eq!(after.status, StatusCode::BAD_REQUEST, "{}", after.raw);
    assert!(
        after.error_message().contains("No valid session ID"),
        "{}",
        after.raw
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_above_the_page_limit_pass_and_huge_bodies_are_refused() {
    let everything = EverythingServer::start().await;
    let gw = Gateway::start_with(&["--max-request-body-bytes", "1048576"]).await;
    gw.register_none("everything", everything.url());
    let mut rpc = Rpc::new(gw.mcp_url("everything"));
    rpc.initialize().await;

    // 200 KiB: more than the 64 KiB limit of the other routes, within the gateway's.
    let text = "x".repeat(200 * 1024);
    let echo = rpc
        .call(
            1,
            "tools/call",
            json!({"name": "echo", "arguments": {"message": text}}),
        )
        .await;
    assert_eq!(
        echo.status,
        StatusCode::OK,
        "{}",
        &echo.raw[..echo.raw.len().min(300)]
    );
    assert!(echo.text().ends_with(&text[..100]));

    // 2 MiB with Content-Length: refused before reading.
    let huge = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "y".repeat(2 * 1024 * 1024)}}});
    let reply = rpc.post(&huge).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", reply.raw);
    assert_eq!(reply.message["error"]["code"], -32600);
    assert!(
        reply.error_message().contains("1048576-byte limit"),
        "{}",
        reply.raw
    );

    // The same without Content-Length (chunked): refused while reading.
    let bytes = serde_json::to_vec(&huge).expect("json");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let sent = rpc
        .request(reqwest::Method::POST)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await;
    // The gateway answers 413 once the limit is crossed and closes the connection without
    // reading the rest: a client still writing may see the close (a broken pipe) before it
    // reads the answer. Either way the body was refused; what must never happen is a success.
    match sent {
        Ok(resp) => {
            let reply = Reply::read(resp).await;
            assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", reply.raw);
        }
        Err(e) => {
            let broken_pipe = std::error::Error::source(&e)
                .map(|s| format!("{s:?}"))
                .is_some_and(|s| s.contains("BrokenPipe") || s.contains("ConnectionReset"));
            assert!(broken_pipe, "chunked POST failed otherwise: {e:?}");
        }
    }

    let unknown = Rpc::new(gw.mcp_url("nope"))
        .call(3, "tools/list", json!({}))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.message["id"], 3);
    assert!(
        unknown.error_message().contains("default/nope"),
        "{}",
        unknown.raw
    );
}

// ---------------------------------------------------------------------------------------------
// Upstream failures

/// A TCP server answering every connection with `answer` (or never, when `None`).
async fn raw_server(answer: Option<&'static [u8]>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = conn.read(&mut buf).await;
                match answer {
                    Some(bytes) => {
                        let _ = conn.write_all(bytes).await;
                        let _ = conn.shutdown().await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(60)).await,
                }
            });
        }
    });
    format!("http://{addr}/mcp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_become_json_rpc_errors_naming_the_server() {
    let gw = Gateway::start_with(&["--upstream-response-timeout-secs", "1"]).await;

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        drop(l);
        format!("http://{addr}/mcp")
    };
    gw.register_none("down", &closed);
    gw.register_none("slow", &raw_server(None).await);
    gw.register_none(
        "garbage",
        &raw_server(Some(b"SSH-2.0-OpenSSH\r\n\r\n")).await,
    );
    gw.register_none(
        "html",
        &raw_server(Some(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 13\r\nconnection: close\r\n\r\n<html></html>",
        ))
        .await,
    );
    gw.register_none(
        "crash",
        &raw_server(Some(
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\ncontent-length: 4\r\nconnection: close\r\n\r\noops",
        ))
        .await,
    );

    let cases = [
        ("down", StatusCode::BAD_GATEWAY, "unreachable"),
        (
            "slow",
            StatusCode::GATEWAY_TIMEOUT,
            "did not answer in time",
        ),
        ("garbage", StatusCode::BAD_GATEWAY, "failed"),
        (
            "html",
            StatusCode::BAD_GATEWAY,
            "text/html, which is not an MCP response",
        ),
        ("crash", StatusCode::BAD_GATEWAY, "failed with HTTP 500"),
    ];
    for (name, status, words) in cases {
        let started = Instant::now();
        let reply = Rpc::new(gw.mcp_url(name))
            .call(42, "tools/call", json!({"name": "echo", "arguments": {}}))
            .await;
        assert_eq!(reply.status, status, "{name}: {}", reply.raw);
        assert_eq!(reply.message["jsonrpc"], "2.0", "{name}");
        assert_eq!(reply.message["id"], 42, "{name}: the request id is kept");
        assert_eq!(reply.message["error"]["code"], -32000, "{name}");
        let msg = reply.error_message();
        assert!(
            msg.contains(&format!("default/{name}")) && msg.contains(words),
            "{name}: {msg}"
        );
        assert!(
            !msg.contains("127.0.0.1"),
            "{name}: no URLs in messages: {msg}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name} took too long"
        );
    }
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(
            "mcpoauth_gateway_requests_total{server=\"default/slow\",outcome=\"upstream_timeout\"} 1"
        ),
        "{metrics}"
    );
}

// ---------------------------------------------------------------------------------------------
// OAuth servers

struct World {
    idp: Idp,
    mcp: McpServer,
    gw: Gateway,
}

async fn world(opts: IdpOptions, gw_args: &[&str]) -> World {
    let idp = Idp::start(opts).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let gw = Gateway::start_with(gw_args).await;
    gw.register_oauth("echo", mcp.url());
    World { idp, mcp, gw }
}

/// Log the gateway's (anonymous) caller in at the IdP as `login`.
async fn login(w: &World, login: &str) {
    let server = mcp_oauth_operator::registry::ServerKey::new("default", "echo");
    let (browser, callback) = start_login(w.gw.flows(), &server, &Caller::anonymous(), login).await;
    let (status, _, body) = browser.get_text(callback.as_str()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The stored token record of the anonymous caller.
async fn stored(w: &World) -> Option<(mcp_oauth_operator::store::TokenKey, TokenRecord)> {
    w.gw.token_store()
        .only_token_from(&Caller::anonymous().session, w.idp.issuer())
        .await
        .expect("store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_call_challenges_then_the_retry_after_login_reaches_the_user_tool() {
    let w = world(IdpOptions::default(), &[]).await;
    let mut rpc = Rpc::new(w.gw.mcp_url("echo"));

    // Without a token the gateway answers initialize and tools/list itself.
    let init = rpc.initialize().await;
    assert!(
        init.message["result"]["protocolVersion"].is_string(),
        "{}",
        init.raw
    );
    let session = rpc.session.clone().expect("a gateway session id");
    assert!(session.starts_with("mcpgw-"), "{session}");
    let tools = rpc.call(1, "tools/list", json!({})).await;
    assert_eq!(
        tools.message["result"]["tools"][0]["name"], "authenticate",
        "{}",
        tools.raw
    );

    // The first real call gets the challenge (fallback form: a tool result with the link).
    let challenged = rpc
        .call(2, "tools/call", json!({"name": "whoami", "arguments": {}}))
        .await;
    assert_eq!(challenged.status, StatusCode::OK, "{}", challenged.raw);
    assert_eq!(challenged.headers["cache-control"], "no-store");
    let result = &challenged.message["result"];
    assert_eq!(result["isError"], true, "{}", challenged.raw);
    assert_eq!(result["structuredContent"]["status"], "auth_required");
    let auth_url = result["structuredContent"]["auth_url"]
        .as_str()
        .expect("auth_url")
        .to_owned();
    assert!(
        auth_url.starts_with(&w.gw.url("/oauth/connect?flow=")),
        "{auth_url}"
    );
    assert_eq!(w.mcp.stats().await.authorized_requests, 0);

    // The user signs in from the link.
    let browser = Browser::new();
    let callback = browser.login_at_idp(&auth_url, "alice").await;
    let (status, _, body) = browser.get_text(callback.as_str()).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Same client, same session, no reconnect: the call now reaches the remote server with the
    // user's token.
    let who = rpc
        .call(3, "tools/call", json!({"name": "whoami", "arguments": {}}))
        .await;
    assert_eq!(who.status, StatusCode::OK, "{}", who.raw);
    assert_eq!(who.text(), "alice");
    assert_eq!(who.message["id"], 3);
    let tools = rpc.call(4, "tools/list", json!({})).await;
    let names: Vec<&str> = tools.message["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("tools in {}", tools.raw))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"whoami") && names.contains(&"echo"),
        "{names:?}"
    );
    // The synthetic tool, called after login, says "go ahead" instead of failing upstream.
    let again = rpc
        .call(
            5,
            "tools/call",
            json!({"name": "authenticate", "arguments": {}}),
        )
        .await;
    assert_eq!(again.message["result"]["isError"], false, "{}", again.raw);
    assert!(w.mcp.stats().await.authorized_requests >= 3);
}

// ---------------------------------------------------------------------------------------------
// Tokens are bound to their resource (issue: a namespace author steals users' tokens)

/// A remote server a namespace author controls. Its protected-resource metadata names someone
/// else's authorization server and whatever `resource` its author chose; it answers every MCP
/// request 401 and records each `Authorization` header it was sent.
struct Thief {
    url: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Thief {
    async fn start(issuer: &str, claimed_resource: Option<&str>) -> Self {
        use axum::response::IntoResponse as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let url = format!("{base}/mcp");
        let prm = json!({
            "resource": claimed_resource.unwrap_or(&url),
            "authorization_servers": [issuer],
            "scopes_supported": ["mcp:tools"],
        });
        let challenge = format!(
            "Bearer error=\"invalid_token\", resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\""
        );
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorder = seen.clone();
        let app = axum::Router::new()
            .route(
                "/.well-known/oauth-protected-resource/mcp",
                axum::routing::get(move || {
                    let prm = prm.clone();
                    async move { axum::Json(prm) }
                }),
            )
            .fallback(move |headers: axum::http::HeaderMap| {
                let recorder = recorder.clone();
                let challenge = challenge.clone();
                async move {
                    if let Some(v) = headers.get("authorization") {
                        let v = v.to_str().unwrap_or("<binary>").to_owned();
                        recorder.lock().expect("lock").push(v);
                    }
                    (
                        axum::http::StatusCode::UNAUTHORIZED,
                        [("www-authenticate", challenge)],
                    )
                        .into_response()
                }
            });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, seen, task }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for Thief {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Register `key` in oauth mode at `url` with `resource`.
fn register_at(
    w: &World,
    key: &mcp_oauth_operator::registry::ServerKey,
    url: &str,
    resource: &str,
) {
    use mcp_oauth_operator::registry::{AuthSettings, ClientIdentity, ServerRegistration};
    w.gw.registry().upsert_server(ServerRegistration {
        key: key.clone(),
        url: url::Url::parse(url).expect("url"),
        auth: AuthSettings::OAuth(oauth_settings(resource, ClientIdentity::Cimd)),
        forward_headers: Vec::new(),
        generation: 1,
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_naming_the_same_authorization_server_never_receives_another_servers_token() {
    let w = world(IdpOptions::default(), &[]).await;
    login(&w, "alice").await;
    let echo = Rpc::new(w.gw.mcp_url("echo"));
    let who = echo
        .call(1, "tools/call", json!({"name": "whoami", "arguments": {}}))
        .await;
    assert_eq!(who.text(), "alice", "{}", who.raw);
    let (_, before) = stored(&w).await.expect("alice's token for default/echo");
    let token = before.access_token.expose_secret().to_owned();
    let refresh = before
        .refresh_token
        .as_ref()
        .map(|r| r.expose_secret().to_owned());

    // Another namespace's author copies everything: the issuer, and even default/echo's
    // resource. Another server of the same namespace declares a resource of its own.
    let copycat = Thief::start(w.idp.issuer(), Some(w.mcp.url())).await;
    let own = Thief::start(w.idp.issuer(), None).await;
    let thieves = [
        (
            mcp_oauth_operator::registry::ServerKey::new("team-b", "thief"),
            &copycat,
            w.mcp.url().to_owned(),
        ),
        (
            mcp_oauth_operator::registry::ServerKey::new("default", "other"),
            &own,
            own.url.clone(),
        ),
    ];
    let tokens_before = w.idp.stats().await.token_requests;
    for (key, thief, resource) in &thieves {
        register_at(&w, key, &thief.url, resource);
        let rpc = Rpc::new(w.gw.url(&format!("/mcp/{}/{}", key.namespace, key.name)));
        for id in 1..=3 {
            let reply = rpc
                .call(id, "tools/call", json!({"name": "whoami", "arguments": {}}))
                .await;
            // Alice has authorized nothing for this server: she is asked to, each time.
            assert_eq!(
                reply.message["result"]["structuredContent"]["status"], "auth_required",
                "{key}: {}",
                reply.raw
            );
        }
        let seen = thief.seen();
        assert!(
            seen.iter().all(|h| !h.contains(&token)),
            "{key} received alice's token for default/echo"
        );
        assert!(
            seen.is_empty(),
            "{key} was sent credentials: {} header(s)",
            seen.len()
        );
    }

    // Her token for default/echo is untouched: not refreshed with a thief's resource, not
    // dropped because a thief answered 401.
    assert_eq!(
        w.idp.stats().await.token_requests,
        tokens_before,
        "no refresh was made for a thief"
    );
    let (_, after) = stored(&w)
        .await
        .expect("alice is still signed in to default/echo");
    assert!(after.access_token.expose_secret() == token);
    assert_eq!(
        after
            .refresh_token
            .as_ref()
            .map(|r| r.expose_secret().to_owned()),
        refresh
    );
    let again = echo
        .call(2, "tools/call", json!({"name": "whoami", "arguments": {}}))
        .await;
    assert_eq!(again.text(), "alice", "{}", again.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_of_one_namespace_declaring_one_resource_share_the_sign_in_and_no_one_else_does() {
    let w = world(IdpOptions::default(), &[]).await;
    // A second registration of the same remote server: same namespace and resource (explicit
    // single sign-on), and one in another namespace (no sharing across namespaces).
    let twin = mcp_oauth_operator::registry::ServerKey::new("default", "echo-twin");
    let foreign = mcp_oauth_operator::registry::ServerKey::new("team-b", "echo");
    register_at(&w, &twin, w.mcp.url(), w.mcp.url());
    register_at(&w, &foreign, w.mcp.url(), w.mcp.url());
    login(&w, "alice").await;

    let twin_rpc = Rpc::new(w.gw.url("/mcp/default/echo-twin"));
    let who = twin_rpc
        .call(1, "tools/call", json!({"name": "whoami", "arguments": {}}))
        .await;
    assert_eq!(
        who.text(),
        "alice",
        "single sign-on within the namespace: {}",
        who.raw
    );

    let authorized_before = w.mcp.stats().await.authorized_requests;
    let foreign_rpc = Rpc::new(w.gw.url("/mcp/team-b/echo"));
    let reply = foreign_rpc
        .call(1, "tools/call", json!({"name": "whoami", "arguments": {}}))
        .await;
    assert_eq!(
        reply.message["result"]["structuredContent"]["status"], "auth_required",
        "another namespace must authorize for itself: {}",
        reply.raw
    );
    assert_eq!(
        w.mcp.stats().await.authorized_requests,
        authorized_before,
        "no request with alice's token went out for team-b/echo"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refreshed_without_a_new_login() {
    let w = world(
        IdpOptions {
            access_token_ttl: Some(2),
            ..Default::default()
        },
        &["--refresh-margin-secs", "0"],
    )
    .await;
    login(&w, "bob").await;
    let rpc = Rpc::new(w.gw.mcp_url("echo"));
    let first = rpc
        .call(1, "tools/call", json!({"name": "whoami", "arguments": {}}))
        .await;
    assert_eq!(first.text(), "bob", "{}", first.raw);
    let (_, before) = stored(&w).await.expect("token stored");
    let logins = w.idp.stats().await.authorize_requests;

    tokio::time::sleep(Duration::from_secs(3)).await;
    let second = rpc
        .call(2, "tools/call", json!({"name": "whoami", "arguments": {}}))
        .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.raw);
    assert_eq!(second.text(), "bob");
    let (_, after) = stored(&w).await.expect("token still stored");
    assert_ne!(
        after.access_token.expose_secret(),
        before.access_token.expose_secret(),
        "the access token was refreshed"
    );
    assert_eq!(
        w.idp.stats().await.authorize_requests,
        logins,
        "no new login"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_token_is_refreshed_once_or_dropped() {
    let w = world(IdpOptions::default(), &[]).await;
    login(&w, "carol").await;
    let rpc = Rpc::new(w.gw.mcp_url("echo"));
    let store = w.gw.token_store().clone();

    // The remote server rejects the access token but the grant is alive: refreshed, retried.
    let (key, mut record) = stored(&w).await.expect("token stored");
    record.access_token = SecretString::from("revoked-access-token".to_owned());
    store.put(&key, record).await.expect("put");
    let who = rpc
        .call(1, "tools/call", json!({"name": "whoami", "arguments": {}}))
        .await;
    assert_eq!(who.status, StatusCode::OK, "{}", who.raw);
    assert_eq!(who.text(), "carol");
    let (_, refreshed) = stored(&w).await.expect("token kept");
    assert_ne!(
        refreshed.access_token.expose_secret(),
        "revoked-access-token"
    );

    // Without a refresh token, the rejected token is dropped and the user is challenged again.
    let (key, mut record) = stored(&w).await.expect("token stored");
    record.access_token = SecretString::from("revoked-access-token".to_owned());
    record.refresh_token = None;
    store.put(&key, record).await.expect("put");
    let challenged = rpc
        .call(2, "tools/call", json!({"name": "whoami", "arguments": {}}))
        .await;
    assert_eq!(challenged.status, StatusCode::OK, "{}", challenged.raw);
    assert_eq!(
        challenged.message["result"]["structuredContent"]["status"], "auth_required",
        "{}",
        challenged.raw
    );
    assert!(stored(&w).await.is_none(), "the rejected token was dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_opened_before_login_is_mapped_to_a_stateful_remote_session() {
    // server-everything keeps sessions (Mcp-Session-Id) and ignores the bearer token; with the
    // issuer pinned, it stands in for a stateful OAuth-protected server.
    let idp = Idp::start(IdpOptions::default()).await;
    let everything = EverythingServer::start().await;
    let gw = Gateway::start().await;
    let mut settings = oauth_settings(
        everything.url(),
        mcp_oauth_operator::registry::ClientIdentity::Cimd,
    );
    settings.issuer = Some(idp.issuer().to_owned());
    settings.scopes = vec!["mcp:tools".to_owned()];
    let server = gw.register("stateful", everything.url(), settings);
    let mut rpc = Rpc::new(gw.mcp_url("stateful"));

    rpc.initialize().await;
    let gateway_session = rpc.session.clone().expect("gateway session");
    assert!(gateway_session.starts_with("mcpgw-"), "{gateway_session}");
    let (browser, callback) = start_login(gw.flows(), &server, &Caller::anonymous(), "dave").await;
    let (status, _, body) = browser.get_text(callback.as_str()).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The gateway initializes server-everything on the client's behalf and maps the ids.
    let echo = rpc
        .call(
            1,
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "hi"}}),
        )
        .await;
    assert_eq!(echo.status, StatusCode::OK, "{}", echo.raw);
    assert!(echo.text().contains("hi"), "{}", echo.raw);
    if let Some(id) = echo.headers.get("mcp-session-id") {
        assert_eq!(
            id,
            gateway_session.as_str(),
            "the client only ever sees our id"
        );
    }
    let second = rpc
        .call(
            2,
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "again"}}),
        )
        .await;
    assert!(second.text().contains("again"), "{}", second.raw);

    // Ending the session ends the remote one; the id is then unknown.
    let deleted = rpc
        .request(reqwest::Method::DELETE)
        .send()
        .await
        .expect("DELETE");
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let gone = rpc.call(3, "tools/list", json!({})).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.raw);
    assert_eq!(gone.message["id"], 3);

    // A made-up gateway id is as unknown.
    rpc.session = Some("mcpgw-00000000000000000000000000000000".into());
    let made_up = rpc.call(4, "tools/list", json!({})).await;
    assert_eq!(made_up.status, StatusCode::NOT_FOUND, "{}", made_up.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_scope_starts_a_step_up_with_the_union_of_scopes() {
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start_with_scopes(idp.issuer(), "mcp:tools mcp:resources").await;
    let gw = Gateway::start().await;
    let mut settings = oauth_settings(
        mcp.url(),
        mcp_oauth_operator::registry::ClientIdentity::Cimd,
    );
    settings.scopes = vec!["mcp:tools".to_owned()];
    let server = gw.register("narrow", mcp.url(), settings);
    let (browser, callback) = start_login(gw.flows(), &server, &Caller::anonymous(), "erin").await;
    assert_eq!(browser.get_text(callback.as_str()).await.0, StatusCode::OK);

    // The token lacks mcp:resources: the remote server answers 403 insufficient_scope.
    let rpc = Rpc::new(gw.mcp_url("narrow"));
    let challenged = rpc
        .call(1, "tools/call", json!({"name": "whoami", "arguments": {}}))
        .await;
    let auth_url = challenged.message["result"]["structuredContent"]["auth_url"]
        .as_str()
        .unwrap_or_else(|| panic!("a step-up challenge: {}", challenged.raw))
        .to_owned();
    let browser = Browser::new();
    let callback = browser.login_at_idp(&auth_url, "erin").await;
    assert_eq!(browser.get_text(callback.as_str()).await.0, StatusCode::OK);

    let who = rpc
        .call(2, "tools/call", json!({"name": "whoami", "arguments": {}}))
        .await;
    assert_eq!(who.text(), "erin", "{}", who.raw);
    let (key, _) = gw
        .token_store()
        .only_token_from(&Caller::anonymous().session, idp.issuer())
        .await
        .expect("store")
        .expect("token");
    for scope in ["mcp:tools", "mcp:resources"] {
        assert!(
            key.scope.split(' ').any(|s| s == scope),
            "{scope} in {}",
            key.scope
        );
    }
}

// ---------------------------------------------------------------------------------------------
// What crosses the proxy, and what the gateway bounds

/// What the hostile upstream received: the headers of every request, in order.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<http::HeaderMap>>>;

/// A remote server that answers like an MCP server but adds every header that acts on the
/// gateway's origin (`/mcp`), or redirects elsewhere (`/redirect`); it records what it received.
async fn hostile_upstream() -> (String, Seen) {
    use axum::response::IntoResponse;
    let seen: Seen = Seen::default();
    let record = |seen: Seen| {
        move |headers: http::HeaderMap| {
            seen.lock().expect("lock").push(headers);
            std::future::ready(())
        }
    };
    let on_mcp = record(seen.clone());
    let on_redirect = record(seen.clone());
    let app = axum::Router::new()
        .route(
            "/mcp",
            axum::routing::post(move |headers: http::HeaderMap| async move {
                on_mcp(headers).await;
                (
                    [
                        ("content-type", "application/json"),
                        ("mcp-session-id", "upstream-session"),
                        ("access-control-allow-origin", "https://evil.example"),
                        ("access-control-allow-credentials", "true"),
                        ("set-cookie", "mcpoauth_browser=planted; Path=/"),
                        ("strict-transport-security", "max-age=0"),
                        ("clear-site-data", "\"*\""),
                        ("content-security-policy", "default-src *"),
                        ("alt-svc", "h2=\"evil.example:443\""),
                        ("refresh", "0; url=https://evil.example/"),
                        ("link", "<https://evil.example/x.js>; rel=preload"),
                        ("cross-origin-resource-policy", "cross-origin"),
                        ("location", "https://evil.example/"),
                    ],
                    r#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#,
                )
                    .into_response()
            }),
        )
        .route(
            "/redirect",
            axum::routing::post(move |headers: http::HeaderMap| async move {
                on_redirect(headers).await;
                (
                    StatusCode::FOUND,
                    [
                        ("location", "https://evil.example/steal"),
                        ("set-cookie", "planted=1"),
                        ("content-type", "text/html"),
                    ],
                    "<a href=\"https://evil.example/steal\">moved</a>",
                )
                    .into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

/// A request as it reaches the gateway through a careless chain of proxies: the auth proxy's
/// tokens and every kind of client-address claim, plus the caller's own credentials.
fn leaky_request(url: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(url)
        .header("accept", ACCEPT)
        .header("mcp-protocol-version", "2025-06-18")
        .header("mcp-method", "tools/call")
        .header("authorization", "Bearer caller-own-token")
        .header("cookie", "mcpoauth_browser=secret-binding")
        .header("x-forwarded-access-token", "idp-access-token")
        .header("x-auth-request-access-token", "idp-access-token")
        .header("x-auth-request-email", "alice@example.com")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "for=203.0.113.9")
        .header("x-real-ip", "203.0.113.9")
        .header("true-client-ip", "203.0.113.9")
        .header("cf-connecting-ip", "203.0.113.9")
        .header("x-tenant", "acme")
        .json(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {}}}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowlisted_headers_cross_the_proxy_and_upstream_redirects_become_errors() {
    let gw = Gateway::start().await;
    let (upstream, seen) = hostile_upstream().await;
    gw.register_none("hostile", &format!("{upstream}/mcp"));
    gw.register_none_forwarding("tenant", &format!("{upstream}/mcp"), &["x-tenant"]);
    gw.register_none("redirect", &format!("{upstream}/redirect"));

    // Toward the upstream: only MCP and content-negotiation headers, and `X-Tenant` only for
    // the server that lists it.
    let resp = leaky_request(&gw.mcp_url("hostile"))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(resp.status(), StatusCode::OK);
    let headers = resp.headers().clone();
    let body = resp.text().await.expect("body");
    assert!(body.contains("\"result\""), "{body}");
    resp_to_caller_is_clean(&headers);
    assert_eq!(headers["mcp-session-id"], "upstream-session");
    // The gateway's own: the upstream's body never runs as a page of the gateway's origin.
    assert!(
        headers["content-security-policy"]
            .to_str()
            .expect("ascii")
            .starts_with("sandbox"),
        "{headers:?}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");

    let resp = leaky_request(&gw.mcp_url("tenant"))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(resp.status(), StatusCode::OK);
    resp_to_caller_is_clean(resp.headers());

    // Toward the client: a redirect is neither followed nor relayed.
    let resp = leaky_request(&gw.mcp_url("redirect"))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let headers = resp.headers().clone();
    assert!(headers.get("location").is_none(), "{headers:?}");
    assert!(headers.get("set-cookie").is_none(), "{headers:?}");
    let reply: Value = resp.json().await.expect("JSON-RPC error");
    assert_eq!(reply["id"], 7);
    let msg = reply["error"]["message"].as_str().expect("message");
    assert!(
        msg.contains("default/redirect") && msg.contains("redirect (HTTP 302)"),
        "{msg}"
    );
    assert!(!msg.contains("evil.example"), "{msg}");

    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 3, "every request reached the upstream once");
    for (i, h) in seen.iter().enumerate() {
        let mut names: Vec<&str> = h
            .keys()
            .map(http::HeaderName::as_str)
            .filter(|n| !["host", "content-length", "accept-encoding"].contains(n))
            .collect();
        names.sort_unstable();
        let mut expected = vec![
            "accept",
            "content-type",
            "mcp-method",
            "mcp-protocol-version",
        ];
        if i == 1 {
            expected.push("x-tenant");
        }
        expected.sort_unstable();
        assert_eq!(names, expected, "request {i}: {h:?}");
        let all = format!("{h:?}");
        for secret in [
            "caller-own-token",
            "secret-binding",
            "idp-access-token",
            "203.0.113.9",
        ] {
            assert!(!all.contains(secret), "request {i} leaked {secret}");
        }
    }
    assert_eq!(seen[1]["x-tenant"], "acme");
    gw.shutdown().await;
}

/// No header the upstream set that acts on the gateway's origin reached the client.
fn resp_to_caller_is_clean(headers: &HeaderMap) {
    for name in [
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "set-cookie",
        "strict-transport-security",
        "clear-site-data",
        "alt-svc",
        "refresh",
        "link",
        "cross-origin-resource-policy",
        "location",
    ] {
        assert!(
            headers.get(name).is_none(),
            "{name} was relayed: {headers:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_unregistered_servers_share_one_metric_label() {
    let gw = Gateway::start().await;
    let client = reqwest::Client::new();
    for i in 0..40 {
        let resp = client
            .post(gw.url(&format!("/mcp/ns-{i}/made-up-{i}")))
            .header("accept", ACCEPT)
            .json(&json!({"jsonrpc": "2.0", "id": i, "method": "ping"}))
            .send()
            .await
            .expect("gateway answers");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }
    let metrics = gw.metrics().await;
    assert!(!metrics.contains("made-up"), "{metrics}");
    assert!(
        metrics.contains(
            "mcpoauth_gateway_requests_total{server=\"unknown\",outcome=\"unknown_server\"} 40"
        ),
        "{metrics}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_initialize_before_sign_in_is_not_kept() {
    let w = world(
        IdpOptions::default(),
        &["--gateway-session-initialize-max-bytes", "2048"],
    )
    .await;
    let initialize = |name: String| {
        json!({"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": name, "version": "1"}})
    };
    let reply = Rpc::new(w.gw.mcp_url("echo"))
        .call(1, "initialize", initialize("x".repeat(4096)))
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", reply.raw);
    assert!(reply.headers.get("mcp-session-id").is_none());
    assert!(
        reply.error_message().contains("2048 bytes"),
        "{}",
        reply.raw
    );

    // A normal one still opens a gateway session.
    let reply = Rpc::new(w.gw.mcp_url("echo"))
        .call(2, "initialize", initialize("client".to_owned()))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.raw);
    let id = reply.headers["mcp-session-id"].to_str().expect("ascii");
    assert!(id.starts_with("mcpgw-"), "{id}");
    w.gw.shutdown().await;
}

/// Read until the peer closes (or `limit` passes); returns what arrived and whether it closed.
async fn read_until_closed(conn: &mut tokio::net::TcpStream, limit: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_headers_and_bodies_are_cut_off() {
    let gw = Gateway::start_with(&[
        "--header-read-timeout-secs",
        "1",
        "--request-body-timeout-secs",
        "1",
    ])
    .await;
    let addr = gw.server.local_addr;

    // Headers, one line every 300 ms.
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let trickle = async {
        for i in 0..40 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if conn
                .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    };
    trickle.await;
    let (_, closed) = read_until_closed(&mut conn, Duration::from_secs(2)).await;
    assert!(closed, "the connection trickling headers is closed");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "closed after {:?}",
        started.elapsed()
    );

    // Nothing at all, or the start of the HTTP/2 preface and then nothing: before hyper knows
    // the protocol, the listener's own deadline applies.
    for opening in [&b""[..], &b"PRI * HTTP/2.0\r\n"[..]] {
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let started = Instant::now();
        conn.write_all(opening).await.expect("write");
        let (_, closed) = read_until_closed(&mut conn, Duration::from_secs(5)).await;
        assert!(closed, "a silent connection is closed ({opening:?})");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
    }

    // A /mcp body, one byte every 300 ms.
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    conn.write_all(
        format!(
            "POST /mcp/default/anything HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if conn.write_all(b" ").await.is_err() {
            break;
        }
    }
    let (answer, closed) = read_until_closed(&mut conn, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within"), "{answer}");
    assert!(closed, "the connection is closed after the 408");
    assert!(started.elapsed() < Duration::from_secs(8));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_per_client_cap_are_closed() {
    let gw = Gateway::start_with(&["--max-connections-per-client", "3"]).await;
    let addr = gw.server.local_addr;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    // Let the gateway accept them before the next one arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut extra = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let (answer, closed) = read_until_closed(&mut extra, Duration::from_secs(3)).await;
    assert!(
        closed && answer.is_empty(),
        "the fourth is closed unanswered: {answer:?}"
    );

    // The admitted ones are served.
    let first = &mut open[0];
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let (answer, _) = read_until_closed(first, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A closed connection frees its place.
    drop(open);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = tokio::net::TcpStream::connect(addr).await.expect("connect");
    again
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let (answer, _) = read_until_closed(&mut again, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(again);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("mcpoauth_connections_refused_total{cap=\"per_client\"} 1"),
        "the refusal is counted: {metrics}"
    );
    gw.shutdown().await;
}
