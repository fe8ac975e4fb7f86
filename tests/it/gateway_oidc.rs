//! The gateway with `oidc` identity, end to end: MCP clients present the IdP's JWTs, and each
//! user's tokens for a remote server stay that user's. Real parts: node-oidc-provider (issues
//! both the callers' tokens and, as the remote server's authorization server, the tokens the
//! gateway keeps), the TypeScript-SDK MCP server whose `whoami` names the token's user, and a
//! scripted browser per user.

use serde_json::{Value, json};
use testkit::gateway::{Gateway, location, sign_in_flags};
use testkit::{Browser, Idp, IdpOptions, McpServer};

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

    // Without a sign-in client there are no sign-in answers to accept.
    let stray = format!(
        "{}/oauth/callback?state=signin.{}&code=x",
        gw.base(),
        "A".repeat(43)
    );
    let (status, _, page) = Browser::new().get_text(&stray).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{page}");

    // A token the IdP did not sign (bob's, tampered) is refused before anything is proxied.
    let mut forged = bob.clone();
    forged.pop();
    forged.push(if bob.ends_with('A') { 'B' } else { 'A' });
    let (status, _) = call_whoami(&url, Some(&forged)).await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);

    gw.shutdown().await;
}

/// Starts a gateway in `oidc` mode whose browsers sign in with the IdP's confidential client
/// before following a sign-in link.
async fn gateway_with_sign_in(idp: &Idp, secret_dir: &std::path::Path, secret: &str) -> Gateway {
    let secret_file = secret_dir.join("client-secret");
    std::fs::write(&secret_file, format!("{secret}\n")).expect("write the client secret file");
    let secret_file = secret_file.to_str().expect("utf-8 temp path");
    Gateway::start_with(&sign_in_flags(idp.issuer(), secret_file)).await
}

fn query_value(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_sign_in_client_only_the_links_own_user_can_follow_it() {
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let gw = gateway_with_sign_in(&idp, dir.path(), testkit::idp::CONFIDENTIAL_CLIENT_SECRET).await;
    gw.register_oauth("whoami", mcp.url());
    let url = gw.mcp_url("whoami");
    let alice = idp.user_access_token("alice", &url).await;
    let (_, body) = call_whoami(&url, Some(&alice)).await;
    let link = auth_url(&body);

    // Bob is handed alice's link. His browser is sent to sign in at the gateway's issuer first
    // (the gateway's own client, scope openid, a nonce), as bob, and is refused.
    let bob = Browser::new();
    let sign_in = bob.login_at_idp(&link, "bob").await;
    let state = query_value(&sign_in, "state").expect("state in the sign-in answer");
    assert!(state.starts_with("signin."), "a sign-in answer: {sign_in}");
    let (status, _, page) = bob.get_text(sign_in.as_str()).await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("different user"), "{page}");
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(
            "mcpoauth_flows_failed_total{server=\"default/whoami\",reason=\"other_user\"} 1"
        ),
        "{metrics}"
    );
    // Nothing reached the remote authorization server for alice's session, and the link is
    // spent: it is refused now, and alice's next request brings a new one.
    let (status, _, page) = Browser::new().get_text(&link).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{page}");
    let (_, body) = call_whoami(&url, Some(&alice)).await;
    let fresh = auth_url(&body);
    assert_ne!(fresh, link, "a refused link is not handed out again");

    // Alice follows her own link: sign-in as alice, then on to the remote server's
    // authorization, then her call goes through as alice.
    let browser = Browser::new();
    let sign_in = browser.login_at_idp(&fresh, "alice").await;
    let onward = browser.get(sign_in.as_str()).await;
    let remote = location(&onward);
    let remote_url = url::Url::parse(&remote).expect("remote authorization URL");
    assert_eq!(
        query_value(&remote_url, "client_id").as_deref(),
        Some(format!("{}/.well-known/oauth-client.json", gw.base()).as_str()),
        "the remote leg uses the gateway's CIMD client, not the sign-in client"
    );
    assert!(
        !query_value(&remote_url, "state").is_some_and(|s| s.starts_with("signin.")),
        "the remote leg's state is the bare flow id"
    );
    let callback = browser.login_at_idp(&remote, "alice").await;
    let (status, _, page) = browser.get_text(callback.as_str()).await;
    assert!(status.is_success(), "callback {status}: {page}");
    let (_, body) = call_whoami(&url, Some(&alice)).await;
    assert_eq!(tool_text(&body), "alice");

    // A sign-in answer cannot be replayed into another browser, nor forged without a flow.
    let (status, _, _) = Browser::new().get_text(sign_in.as_str()).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    let forged = format!(
        "{}/oauth/callback?state=signin.{}&code=x",
        gw.base(),
        "A".repeat(43)
    );
    let (status, _, _) = browser.get_text(&forged).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);

    gw.shutdown().await;
}

/// A sign-in that cannot be completed never lets the browser on: a client secret the IdP
/// refuses gives a 502 page at the callback, and an unreachable IdP a 502 page at the link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sign_in_stops_the_link_with_a_page() {
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let gw = gateway_with_sign_in(&idp, dir.path(), "not-the-secret").await;
    gw.register_oauth("whoami", mcp.url());
    let url = gw.mcp_url("whoami");
    let alice = idp.user_access_token("alice", &url).await;
    let (_, body) = call_whoami(&url, Some(&alice)).await;
    let link = auth_url(&body);

    let browser = Browser::new();
    let sign_in = browser.login_at_idp(&link, "alice").await;
    let (status, headers, page) = browser.get_text(sign_in.as_str()).await;
    assert_eq!(status, reqwest::StatusCode::BAD_GATEWAY, "{page}");
    assert!(headers.get(reqwest::header::LOCATION).is_none());
    assert!(page.contains("identity provider"), "{page}");
    assert!(!page.contains("not-the-secret"), "{page}");
    let (_, body) = call_whoami(&url, Some(&alice)).await;
    assert_eq!(
        body["result"]["structuredContent"]["status"], "auth_required",
        "{body}"
    );

    // A gateway whose browsers have not signed in yet (the issuer's metadata is not loaded)
    // when the IdP goes away: the link answers 502, not a redirect. The callers' keys stay
    // cached, so the flow itself can still be created.
    let fresh_gw =
        gateway_with_sign_in(&idp, dir.path(), testkit::idp::CONFIDENTIAL_CLIENT_SECRET).await;
    fresh_gw.register_oauth("whoami", mcp.url());
    let fresh_url = fresh_gw.mcp_url("whoami");
    let bearer = idp.user_access_token("alice", &fresh_url).await;
    let (_, body) = call_whoami(&fresh_url, Some(&bearer)).await;
    let fresh_link = auth_url(&body);
    idp.stop().await;
    let (status, headers, page) = Browser::new().get_text(&fresh_link).await;
    assert_eq!(status, reqwest::StatusCode::BAD_GATEWAY, "{page}");
    assert!(headers.get(reqwest::header::LOCATION).is_none());
    assert!(page.contains("could not be reached"), "{page}");

    gw.shutdown().await;
    fresh_gw.shutdown().await;
}

/// A gateway below a path prefix (`http://127.0.0.1:P/gw`) with `oidc` identity: the 401 points
/// at prefixed protected-resource metadata that is served (also at the RFC 9728 location with
/// the path inserted, and at the root for an Ingress that strips the prefix), tokens for the
/// prefixed resource are accepted, and the challenge link completes the flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_below_a_path_prefix_serves_its_metadata_and_flows() {
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let port = testkit::net::free_port();
    let listen = format!("127.0.0.1:{port}");
    let public = format!("http://127.0.0.1:{port}/gw");
    let gw = Gateway::start_with(&[
        "--identity",
        "oidc",
        "--oidc-issuer",
        idp.issuer(),
        "--listen",
        &listen,
        "--public-url",
        &public,
    ])
    .await;
    gw.register_oauth("whoami", mcp.url());
    let url = format!("{public}/mcp/default/whoami");

    let resp = reqwest::Client::new()
        .post(&url)
        .header("Accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(resp.status(), reqwest::StatusCode::UNAUTHORIZED);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let metadata = format!("{public}/.well-known/oauth-protected-resource/mcp/default/whoami");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata}\"")),
        "{challenge}"
    );
    let inserted = format!(
        "http://127.0.0.1:{port}/.well-known/oauth-protected-resource/gw/mcp/default/whoami"
    );
    let stripped = gw.url("/.well-known/oauth-protected-resource/mcp/default/whoami");
    for doc_url in [&metadata, &inserted, &stripped] {
        let doc: Value = reqwest::get(doc_url.as_str())
            .await
            .expect("metadata")
            .json()
            .await
            .expect("metadata JSON");
        assert_eq!(doc["resource"], url.as_str(), "{doc_url}");
        assert_eq!(doc["authorization_servers"][0], idp.issuer(), "{doc_url}");
    }

    let alice = idp.user_access_token("alice", &url).await;
    let (status, body) = call_whoami(&url, Some(&alice)).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let link = auth_url(&body);
    assert!(
        link.starts_with(&format!("{public}/oauth/connect?flow=")),
        "{link}"
    );
    authorize(&link, "alice").await;
    let (_, body) = call_whoami(&url, Some(&alice)).await;
    assert_eq!(tool_text(&body), "alice");
    // The same call through an Ingress that strips `/gw`.
    let (_, body) = call_whoami(&gw.mcp_url("whoami"), Some(&alice)).await;
    assert_eq!(tool_text(&body), "alice");
}
