//! `forward` mode end to end: with `oidc` identity, the caller's own token reaches a remote MCP
//! server that accepts it — only when the token's audience is one the server's resource allows.
//! Real parts: node-oidc-provider, the TypeScript-SDK MCP server (accepts only tokens whose `aud`
//! is its own URL; `whoami` names the token's user).

mod gateway_support;
mod support;

use gateway_support::{Gateway, call_whoami};
use support::{Idp, IdpOptions, McpServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_sends_the_callers_token_only_for_an_allowed_audience() {
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    // Tokens for the remote server are accepted as caller identity too.
    let gw = Gateway::start_with(&[
        "--identity",
        "oidc",
        "--oidc-issuer",
        idp.issuer(),
        "--oidc-audience",
        mcp.url(),
    ])
    .await;
    gw.register_forward("fw", mcp.url(), &[mcp.url()]);
    gw.register_forward(
        "fw-other",
        mcp.url(),
        &["https://cluster-b.example.com/mcp"],
    );

    let for_server = idp.user_access_token("alice", mcp.url()).await;
    let (status, body) = call_whoami(&gw.mcp_url("fw"), &for_server).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    assert_eq!(body["result"]["content"][0]["text"], "alice", "{body}");
    let authorized_before = mcp.stats().await.authorized_requests;

    // The same token for a server whose resource allows another audience: refused, clearly.
    let (status, body) = call_whoami(&gw.mcp_url("fw-other"), &for_server).await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["id"], 3);
    let message = body["error"]["message"].as_str().expect("error message");
    assert!(
        message.contains("https://cluster-b.example.com/mcp") && message.contains(mcp.url()),
        "{message}"
    );
    assert!(!message.contains(&for_server), "the token is never echoed");

    // A token issued for the gateway itself is never replayed to the remote server.
    let for_gateway = idp.user_access_token("alice", &gw.mcp_url("fw")).await;
    let (status, body) = call_whoami(&gw.mcp_url("fw"), &for_gateway).await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        mcp.stats().await.authorized_requests,
        authorized_before,
        "refused tokens never reached the remote server"
    );
    gw.shutdown().await;
}
