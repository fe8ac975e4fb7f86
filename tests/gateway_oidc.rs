//! The gateway with `oidc` identity, end to end: MCP clients present the IdP's JWTs, and each
//! user's tokens for a remote server stay that user's. Real parts: node-oidc-provider (issues
//! both the callers' tokens and, as the remote server's authorization server, the tokens the
//! gateway keeps), the TypeScript-SDK MCP server whose `whoami` names the token's user, and a
//! scripted browser per user.

mod gateway_support;
mod support;

use gateway_support::Gateway;
use serde_json::{Value, json};
use support::{Browser, Idp, IdpOptions, McpServer};

/// POSTs `tools/call whoami` as the holder of `bearer` (none: no Authorization header).
async fn call_whoami(url: &str, bearer: Option<&str>) -> (reqwest::StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                      "params": {"name": "whoami", "arguments": {}}}));
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("gateway answers");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// The challenge link of a fallback-form tool result.
fn auth_url(body: &Value) -> String {
    assert_eq!(body["result"]["isError"], true, "a challenge: {body}");
    body["result"]["structuredContent"]["auth_url"]
        .as_str()
        .unwrap_or_else(|| panic!("auth_url in {body}"))
        .to_owned()
}

fn tool_text(body: &Value) -> String {
    assert_ne!(body["result"]["isError"], true, "a tool result: {body}");
    body["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("text content in {body}"))
        .to_owned()
}

/// `login` authorizes the remote server through the link, in their own browser.
async fn authorize(link: &str, login: &str) {
    let browser = Browser::new();
    let callback = browser.login_at_idp(link, login).await;
    let (status, _, page) = browser.get_text(callback.as_str()).await;
    assert!(status.is_success(), "callback {status}: {page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_never_see_each_others_tokens() {
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let gw = Gateway::start_with(&["--identity", "oidc", "--oidc-issuer", idp.issuer()]).await;
    gw.register_oauth("whoami", mcp.url());
    let url = gw.mcp_url("whoami");

    // No token: 401 pointing at the gateway's own protected-resource metadata.
    let (status, _) = call_whoami(&url, None).await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);

    let alice = idp.user_access_token("alice", &url).await;
    let bob = idp.user_access_token("bob", &url).await;

    let (status, body) = call_whoami(&url, Some(&alice)).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let alice_link = auth_url(&body);
    authorize(&alice_link, "alice").await;
    let (_, body) = call_whoami(&url, Some(&alice)).await;
    assert_eq!(tool_text(&body), "alice");

    // Bob is asked to authorize for himself; alice's token is not his.
    let (_, body) = call_whoami(&url, Some(&bob)).await;
    let bob_link = auth_url(&body);
    assert_ne!(bob_link, alice_link, "each user has their own flow");
    authorize(&bob_link, "bob").await;
    let (_, body) = call_whoami(&url, Some(&bob)).await;
    assert_eq!(tool_text(&body), "bob");
    let (_, body) = call_whoami(&url, Some(&alice)).await;
    assert_eq!(
        tool_text(&body),
        "alice",
        "alice still reaches the server as alice"
    );

    // A token the IdP did not sign (bob's, tampered) is refused before anything is proxied.
    let mut forged = bob.clone();
    forged.pop();
    forged.push(if bob.ends_with('A') { 'B' } else { 'A' });
    let (status, _) = call_whoami(&url, Some(&forged)).await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);

    gw.shutdown().await;
}
