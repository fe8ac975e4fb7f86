//! The auth challenge as real MCP clients see it: the official TypeScript SDK client (through
//! `tests/infra/node/mcp-client.mjs`) for `2025-*` clients, raw JSON-RPC for `2026-07-28`.

use serde_json::json;
use testkit::EverythingServer;
use testkit::mcp_client::{ClientCommand, McpClient};

/// The driver itself, against the unauthenticated reference server: connect, list, call, and a
/// JSON-RPC error surfaced with its code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_driver_speaks_to_a_real_server() {
    let everything = EverythingServer::start().await;
    let run = McpClient::new(everything.url())
        .run(&[
            ClientCommand::ListTools,
            ClientCommand::call("echo", json!({"message": "hello"})),
            ClientCommand::Ping,
        ])
        .await;
    let connect = run.connect();
    assert_eq!(connect.ok, Some(true), "{run:?}");
    assert_eq!(connect.protocol_version.as_deref(), Some("2025-11-25"));
    assert!(
        connect.session_id.is_some(),
        "server-everything is stateful"
    );

    let tools = run.step(0).expect_ok();
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"echo"), "{names:?}");
    assert_eq!(run.step(1).expect_ok()["content"][0]["text"], "Echo: hello");
    assert_eq!(run.step(2).expect_ok(), &json!({}));

    // An older version requested by the override is what the server negotiates.
    let run = McpClient::new(everything.url())
        .protocol_version("2025-06-18")
        .url_elicitation(true)
        .run(&[ClientCommand::Ping])
        .await;
    assert_eq!(
        run.connect().protocol_version.as_deref(),
        Some("2025-06-18")
    );
    assert_eq!(run.step(0).expect_ok(), &json!({}));
}

/// A failed connection is reported as a line, not a hang.
#[tokio::test]
async fn sdk_driver_reports_connection_failures() {
    let port = testkit::free_port();
    let run = McpClient::new(&format!("http://127.0.0.1:{port}/mcp"))
        .list_tools()
        .await;
    let connect = run.connect();
    assert_eq!(connect.ok, Some(false), "{run:?}");
    assert!(run.steps().is_empty());
}

// ---------------------------------------------------------------------------------------------
// End to end through the gateway: real IdP, real OAuth-protected MCP server, in-process gateway
// (anonymous identity: one local user).
// ---------------------------------------------------------------------------------------------

use reqwest::StatusCode;
use serde_json::Value;
use testkit::gateway::Gateway;
use testkit::mcp_client::{post_jsonrpc, request_2026};
use testkit::{Browser, Idp, IdpOptions, McpServer};

struct World {
    _idp: Idp,
    _mcp: McpServer,
    gw: Gateway,
    /// `http://127.0.0.1:<port>/mcp/default/echo`
    endpoint: String,
}

async fn world() -> World {
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let gw = Gateway::start().await;
    gw.register_oauth("echo", mcp.url());
    let endpoint = gw.url("/mcp/default/echo");
    World {
        _idp: idp,
        _mcp: mcp,
        gw,
        endpoint,
    }
}

impl World {
    /// The link must be the gateway's own connect route with a flow id, nothing else.
    fn assert_connect_link(&self, url: &str) {
        let prefix = self.gw.url("/oauth/connect?flow=");
        assert!(url.starts_with(&prefix), "not our connect link: {url}");
        let flow = &url[prefix.len()..];
        assert!(
            !flow.is_empty() && !flow.contains('&'),
            "one flow parameter only: {url}"
        );
    }
}

/// The fallback `tools/call` result; returns its link.
fn assert_fallback_tool_result(w: &World, result: &Value) -> String {
    assert_eq!(result["isError"], true, "{result}");
    let sc = &result["structuredContent"];
    assert_eq!(sc["status"], "auth_required", "{result}");
    assert_eq!(sc["server_name"], "default/echo");
    assert!(sc["message"].as_str().is_some_and(|m| !m.is_empty()));
    let url = sc["auth_url"].as_str().expect("auth_url").to_owned();
    w.assert_connect_link(&url);
    let text = result["content"][0]["text"].as_str().expect("text content");
    assert!(text.contains(&url), "the link is in the text: {text}");
    url
}

fn tool_names(list: &Value) -> Vec<String> {
    list["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect()
}

/// Clients without URL elicitation (an older version, or 2025-11-25 without the capability):
/// connect succeeds, `tools/list` offers `authenticate`, a tool call and `authenticate` both
/// return the `isError` result with the same link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_url_elicitation_get_the_authenticate_tool_and_a_tool_result() {
    let w = world().await;
    for client in [
        McpClient::new(&w.endpoint).protocol_version("2025-06-18"),
        McpClient::new(&w.endpoint).protocol_version("2025-03-26"),
        McpClient::new(&w.endpoint),
        // Declaring URL elicitation means nothing before 2025-11-25.
        McpClient::new(&w.endpoint)
            .protocol_version("2025-06-18")
            .url_elicitation(true),
    ] {
        let run = client
            .run(&[
                ClientCommand::ListTools,
                ClientCommand::call("whoami", json!({})),
                ClientCommand::call("authenticate", json!({})),
            ])
            .await;
        let connect = run.connect();
        assert_eq!(connect.ok, Some(true), "{run:?}");
        let instructions = connect.instructions.as_deref().unwrap_or_default();
        assert!(instructions.contains("authenticate"), "{instructions}");

        let list = run.step(0).expect_ok();
        assert_eq!(tool_names(list), ["authenticate"], "{list}");
        let tool = &list["tools"][0];
        assert!(tool["description"].as_str().is_some_and(|d| d.len() > 40));

        let via_tool = assert_fallback_tool_result(&w, run.step(1).expect_ok());
        let via_authenticate = assert_fallback_tool_result(&w, run.step(2).expect_ok());
        assert_eq!(via_tool, via_authenticate, "one pending flow");
    }
}

/// `2025-11-25` with URL elicitation: the SDK surfaces JSON-RPC error -32042 with a URL-mode
/// elicitation whose URL is our connect link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_elicitation_2025_11_25_gets_error_32042() {
    let w = world().await;
    let run = McpClient::new(&w.endpoint)
        .url_elicitation(true)
        .run(&[
            ClientCommand::call("whoami", json!({})),
            ClientCommand::ListTools,
            ClientCommand::call("authenticate", json!({})),
        ])
        .await;
    assert_eq!(run.connect().ok, Some(true), "{run:?}");
    assert_eq!(
        run.connect().protocol_version.as_deref(),
        Some("2025-11-25")
    );

    let err = run.step(0).expect_err();
    assert_eq!(err.code, Some(-32042), "{err:?}");
    let elicitations = err.data["elicitations"].as_array().expect("elicitations");
    assert_eq!(elicitations.len(), 1);
    let el = &elicitations[0];
    assert_eq!(el["mode"], "url");
    assert!(el["elicitationId"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(el["message"].as_str().is_some_and(|s| !s.is_empty()));
    let url = el["url"].as_str().expect("url");
    w.assert_connect_link(url);

    // The list still works (a failing list makes clients drop the server) ...
    assert_eq!(tool_names(run.step(1).expect_ok()), ["authenticate"]);
    // ... and `authenticate` answers in the same rich form, for the same flow.
    let err = run.step(2).expect_err();
    assert_eq!(err.code, Some(-32042));
    assert_eq!(err.data["elicitations"][0]["url"], url);
    assert_eq!(
        err.data["elicitations"][0]["elicitationId"],
        el["elicitationId"]
    );
}

fn headers_2026<'a>(method: &'a str, name: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", method),
    ];
    if let Some(n) = name {
        h.push(("mcp-name", n));
    }
    h
}

/// `2026-07-28` (raw JSON-RPC: the TypeScript SDK 1.32 cannot speak it): with URL elicitation a
/// tool call gets an `InputRequiredResult`; without, the fallback tool result; `tools/list`
/// offers `authenticate` with `resultType`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_2026_07_28_gets_input_required_or_the_fallback() {
    let w = world().await;
    let http = reqwest::Client::new();
    let call = |id: i64, url_elicitation: bool| {
        request_2026(
            json!(id),
            "tools/call",
            json!({"name": "whoami", "arguments": {}}),
            url_elicitation,
        )
    };

    let (status, body) = post_jsonrpc(
        &http,
        &w.endpoint,
        &headers_2026("tools/call", Some("whoami")),
        &call(1, true),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let body = body.expect("a JSON-RPC answer");
    assert_eq!(body["id"], 1);
    let result = &body["result"];
    assert_eq!(result["resultType"], "input_required", "{body}");
    let input = result["inputRequests"]
        .as_object()
        .expect("inputRequests")
        .values()
        .next()
        .expect("one input request");
    assert_eq!(input["method"], "elicitation/create");
    assert_eq!(input["params"]["mode"], "url");
    let url = input["params"]["url"].as_str().expect("url").to_owned();
    w.assert_connect_link(&url);

    let (status, body) = post_jsonrpc(
        &http,
        &w.endpoint,
        &headers_2026("tools/call", Some("whoami")),
        &call(2, false),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let body = body.expect("a JSON-RPC answer");
    assert_eq!(body["id"], 2);
    assert_eq!(body["result"]["resultType"], "complete", "{body}");
    let fallback_url = assert_fallback_tool_result(&w, &body["result"]);
    assert_eq!(fallback_url, url, "one pending flow");

    let (status, body) = post_jsonrpc(
        &http,
        &w.endpoint,
        &headers_2026("tools/list", None),
        &request_2026(json!("l"), "tools/list", json!({}), true),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let body = body.expect("a JSON-RPC answer");
    assert_eq!(body["result"]["resultType"], "complete", "{body}");
    assert_eq!(tool_names(&body["result"]), ["authenticate"]);
}

/// Many simultaneous requests of one user for one server share one pending flow, whatever form
/// each of them gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_flow() {
    let w = world().await;
    let http = reqwest::Client::new();
    let raw = (0..6).map(|i| {
        let http = http.clone();
        let endpoint = w.endpoint.clone();
        async move {
            let (status, body) = post_jsonrpc(
                &http,
                &endpoint,
                &[("mcp-protocol-version", "2025-06-18")],
                &json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                        "params": {"name": "whoami", "arguments": {}}}),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            let body = body.expect("body");
            body["result"]["structuredContent"]["auth_url"]
                .as_str()
                .unwrap_or_else(|| panic!("no link: {body}"))
                .to_owned()
        }
    });
    let sdk = McpClient::new(&w.endpoint).url_elicitation(true);
    let (mut urls, run) = tokio::join!(
        futures::future::join_all(raw),
        sdk.call_tool("whoami", json!({}))
    );
    let err = run.step(0).expect_err();
    urls.push(
        err.data["elicitations"][0]["url"]
            .as_str()
            .expect("url")
            .to_owned(),
    );
    w.assert_connect_link(&urls[0]);
    assert!(
        urls.iter().all(|u| u == &urls[0]),
        "one flow for all: {urls:?}"
    );
}

/// The link a client got from the gateway works only in the browser that opened it first;
/// after that browser signs in, the client's retry goes through to the remote server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_binds_to_one_browser_and_the_retry_succeeds() {
    let w = world().await;
    let client = McpClient::new(&w.endpoint).protocol_version("2025-06-18");
    let run = client.call_tool("whoami", json!({})).await;
    let url = assert_fallback_tool_result(&w, run.step(0).expect_ok());

    let owner = Browser::new();
    let callback = owner.login_at_idp(&url, "alice").await;
    // Forwarded to someone else: the connect link is refused in their browser.
    let stranger = Browser::new();
    let (status, _, body) = stranger.get_text(&url).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("another browser"), "{body}");
    let (status, _, body) = stranger.get_text(callback.as_str()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, _, body) = owner.get_text(callback.as_str()).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let run = client
        .run(&[
            ClientCommand::ListTools,
            ClientCommand::call("whoami", json!({})),
        ])
        .await;
    let names = tool_names(run.step(0).expect_ok());
    assert!(names.contains(&"whoami".to_owned()), "{names:?}");
    assert!(!names.contains(&"authenticate".to_owned()), "{names:?}");
    let result = run.step(1).expect_ok();
    assert_ne!(result["isError"], true, "{result}");
    assert_eq!(result["content"][0]["text"], "alice");
}
