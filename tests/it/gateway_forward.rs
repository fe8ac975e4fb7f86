//! `forward` mode end to end: with `oidc` identity, the caller's own token reaches a remote MCP
//! server that accepts it — only when the token's audience is one the server's resource allows,
//! and never when the token is also valid at the gateway itself (a remote server could replay
//! it there). Real parts: node-oidc-provider, the TypeScript-SDK MCP server (accepts only
//! tokens whose `aud` is its own URL; `whoami` names the token's user).

use testkit::gateway::{Gateway, call_whoami};
use testkit::{Idp, IdpOptions, McpServer};

/// A configured `--oidc-audience`: tokens for it are valid everywhere at the gateway.
const GATEWAY_AUDIENCE: &str = "http://127.0.0.1/gateway";

/// A gateway identifying callers by `idp`'s tokens, with [`GATEWAY_AUDIENCE`] configured.
async fn oidc_gateway(idp: &Idp) -> Gateway {
    Gateway::start_with(&[
        "--identity",
        "oidc",
        "--oidc-issuer",
        idp.issuer(),
        "--oidc-audience",
        GATEWAY_AUDIENCE,
    ])
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_sends_the_callers_token_only_for_an_allowed_audience() {
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let gw = oidc_gateway(&idp).await;
    gw.register_forward("fw", mcp.url(), &[mcp.url()]);
    gw.register_forward(
        "fw-other",
        mcp.url(),
        &["https://cluster-b.example.com/mcp"],
    );

    // A token for the remote server identifies the caller on the path of the server that
    // allows its audience (no `--oidc-audience` needed), and is forwarded there.
    let for_server = idp.user_access_token("alice", mcp.url()).await;
    let (status, body) = call_whoami(&gw.mcp_url("fw"), &for_server).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    assert_eq!(body["result"]["content"][0]["text"], "alice", "{body}");
    let before = mcp.stats().await;

    // The same token at a server whose resource allows another audience: not a token for that
    // path at all (401), and nothing is forwarded.
    let (status, body) = call_whoami(&gw.mcp_url("fw-other"), &for_server).await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED, "{body}");

    // A caller with a gateway-wide token at a server allowing another audience: refused,
    // naming both lists.
    let for_gateway = idp.user_access_token("alice", GATEWAY_AUDIENCE).await;
    let (status, body) = call_whoami(&gw.mcp_url("fw-other"), &for_gateway).await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["id"], 3);
    let message = body["error"]["message"].as_str().expect("error message");
    assert!(
        message.contains("https://cluster-b.example.com/mcp") && message.contains(GATEWAY_AUDIENCE),
        "{message}"
    );
    assert!(!message.contains(&for_gateway), "the token is never echoed");

    let after = mcp.stats().await;
    assert_eq!(
        (after.mcp_requests, after.authorized_requests),
        (before.mcp_requests, before.authorized_requests),
        "refused tokens never reached the remote server"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_valid_at_the_gateway_is_never_forwarded_whatever_the_resource_allows() {
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let gw = oidc_gateway(&idp).await;
    // A resource author who allows the gateway's own audiences (carelessly, or to collect
    // callers' gateway credentials at the remote server and replay them at the gateway).
    let public = format!("{}/", gw.base());
    let own_url = gw.mcp_url("greedy");
    let other_url = gw.mcp_url("someone-else");
    gw.register_forward(
        "greedy",
        mcp.url(),
        &[mcp.url(), &public, &own_url, &other_url, GATEWAY_AUDIENCE],
    );
    gw.register_oauth("someone-else", mcp.url());
    let before = mcp.stats().await;

    // The public URL, the server's own gateway URL, a configured audience: each is accepted at
    // the gateway, so none is forwarded. Another server's gateway URL is not even accepted on
    // this path.
    for (aud, expected) in [
        (public.as_str(), reqwest::StatusCode::FORBIDDEN),
        (own_url.as_str(), reqwest::StatusCode::FORBIDDEN),
        (GATEWAY_AUDIENCE, reqwest::StatusCode::FORBIDDEN),
        (other_url.as_str(), reqwest::StatusCode::UNAUTHORIZED),
    ] {
        let token = idp.user_access_token("alice", aud).await;
        let (status, body) = call_whoami(&gw.mcp_url("greedy"), &token).await;
        assert_eq!(status, expected, "{aud}: {body}");
        if expected == reqwest::StatusCode::FORBIDDEN {
            let message = body["error"]["message"].as_str().expect("error message");
            assert!(
                message.contains("default/greedy")
                    && message.contains("valid at this gateway")
                    && message.contains(aud),
                "{message}"
            );
            assert!(!message.contains(&token), "the token is never echoed");
        }
    }

    let after = mcp.stats().await;
    assert_eq!(
        (after.mcp_requests, after.authorized_requests),
        (before.mcp_requests, before.authorized_requests),
        "the remote server received nothing"
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(
            "mcpoauth_gateway_requests_total{server=\"default/greedy\",outcome=\"forward_gateway_token\"} 3"
        ),
        "{metrics}"
    );
    gw.shutdown().await;
}
