//! Smoke tests of the test infrastructure itself: the real IdP, the protected
//! MCP server, server-everything and the scripted browser behave as the
//! gateway's integration tests assume.

use std::time::Duration;

use axum::Json;
use axum::routing::get;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::idp::{CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET};
use testkit::{
    Browser, EverythingServer, Idp, IdpOptions, McpServer, Pkce, free_port, jwt_payload,
};
use url::Url;

const MCP_ACCEPT: &str = "application/json, text/event-stream";

/// An authorization request URL at `idp` for `client_id`.
fn authorize_url(
    idp: &Idp,
    client_id: &str,
    redirect_uri: &str,
    resource: &str,
    pkce: &Pkce,
) -> String {
    let mut url = Url::parse(&idp.authorization_endpoint()).expect("authorization endpoint URL");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", "openid offline_access mcp:tools")
        .append_pair("resource", resource)
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "smoke-state");
    url.into()
}

fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// Logs `login` in through the browser and redeems the code with client_secret_basic.
async fn login_and_redeem(idp: &Idp, login: &str, resource: &str) -> Value {
    let redirect_uri = format!("http://127.0.0.1:{}/oauth/callback", free_port());
    let pkce = Pkce::new();
    let start = authorize_url(idp, CONFIDENTIAL_CLIENT_ID, &redirect_uri, resource, &pkce);
    let callback = Browser::new().login_at_idp(&start, login).await;

    assert!(
        callback.as_str().starts_with(&redirect_uri),
        "redirected to {callback}, expected {redirect_uri}"
    );
    assert_eq!(
        query_param(&callback, "state").as_deref(),
        Some("smoke-state")
    );
    assert_eq!(query_param(&callback, "iss").as_deref(), Some(idp.issuer()));
    let code = query_param(&callback, "code").expect("authorization response has a code");

    let response = reqwest::Client::new()
        .post(idp.token_endpoint())
        .basic_auth(CONFIDENTIAL_CLIENT_ID, Some(CONFIDENTIAL_CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", pkce.verifier.as_str()),
            ("resource", resource),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), StatusCode::OK, "token endpoint status");
    response.json().await.expect("token response JSON")
}

async fn refresh(idp: &Idp, refresh_token: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(idp.token_endpoint())
        .basic_auth(CONFIDENTIAL_CLIENT_ID, Some(CONFIDENTIAL_CLIENT_SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .send()
        .await
        .expect("refresh request");
    let status = response.status();
    (
        status,
        response.json().await.expect("refresh response JSON"),
    )
}

async fn mcp_post(url: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url)
        .header(reqwest::header::ACCEPT, MCP_ACCEPT)
        .json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("MCP POST")
}

#[tokio::test]
async fn idp_discovery_advertises_what_the_gateway_relies_on() {
    let idp = Idp::start(IdpOptions::default()).await;
    let discovery = idp.discovery().await;

    assert_eq!(discovery["issuer"], json!(idp.issuer()));
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        json!(["S256"])
    );
    assert_eq!(
        discovery["authorization_response_iss_parameter_supported"],
        json!(true)
    );
    assert_eq!(
        discovery["client_id_metadata_document_supported"],
        json!(true)
    );
    assert_eq!(discovery["response_types_supported"], json!(["code"]));
    assert!(discovery["revocation_endpoint"].is_string());
    assert!(discovery["introspection_endpoint"].is_string());
}

#[tokio::test]
async fn idp_with_issuer_path_serves_path_inserted_metadata() {
    let idp = Idp::start(IdpOptions {
        issuer_path: Some("/tenant-a".to_owned()),
        ..IdpOptions::default()
    })
    .await;
    assert!(
        idp.issuer().ends_with("/tenant-a"),
        "issuer {}",
        idp.issuer()
    );

    let origin = idp.issuer().trim_end_matches("/tenant-a");
    let metadata: Value = reqwest::get(format!(
        "{origin}/.well-known/oauth-authorization-server/tenant-a"
    ))
    .await
    .expect("RFC 8414 metadata request")
    .json()
    .await
    .expect("metadata JSON");
    assert_eq!(metadata["issuer"], json!(idp.issuer()));
    assert_eq!(
        metadata["token_endpoint"],
        json!(format!("{}/token", idp.issuer()))
    );
}

#[tokio::test]
async fn auth_code_flow_on_any_loopback_port_yields_audience_bound_jwt_and_rotating_refresh_token()
{
    let idp = Idp::start(IdpOptions {
        access_token_ttl: Some(2),
        ..IdpOptions::default()
    })
    .await;
    let resource = format!("http://127.0.0.1:{}/mcp", free_port());

    let tokens = login_and_redeem(&idp, "alice", &resource).await;
    let access_token = tokens["access_token"].as_str().expect("access_token");
    let claims = jwt_payload(access_token);
    assert_eq!(claims["aud"], json!(resource));
    assert_eq!(claims["sub"], json!("alice"));
    assert_eq!(claims["iss"], json!(idp.issuer()));
    assert_eq!(
        tokens["expires_in"],
        json!(2),
        "ACCESS_TOKEN_TTL is honoured"
    );
    let first_refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned();

    let (status, refreshed) = refresh(&idp, &first_refresh).await;
    assert_eq!(status, StatusCode::OK, "refresh grant: {refreshed}");
    let second_refresh = refreshed["refresh_token"]
        .as_str()
        .expect("rotated refresh_token");
    assert_ne!(second_refresh, first_refresh, "refresh token rotates");
    let refreshed_claims = jwt_payload(refreshed["access_token"].as_str().expect("access_token"));
    assert_eq!(
        refreshed_claims["aud"],
        json!(resource),
        "refresh keeps the resource"
    );

    let (status, reused) = refresh(&idp, &first_refresh).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a rotated-out refresh token is refused"
    );
    assert_eq!(reused["error"], json!("invalid_grant"));

    let stats = idp.stats().await;
    assert_eq!(stats.authorize_requests, 1);
    assert_eq!(stats.token_requests, 3);
}

#[tokio::test]
async fn protected_mcp_server_challenges_then_accepts_the_idp_token() {
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let call_whoami = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": { "name": "whoami", "arguments": {} }
    });

    let unauthorized = mcp_post(mcp.url(), None, &call_whoami).await;
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
    let challenge = unauthorized
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .expect("401 carries WWW-Authenticate")
        .to_str()
        .expect("ASCII header")
        .to_owned();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"{}\"",
            mcp.resource_metadata_url()
        )),
        "{challenge}"
    );

    let metadata: Value = reqwest::get(mcp.resource_metadata_url())
        .await
        .expect("protected resource metadata")
        .json()
        .await
        .expect("metadata JSON");
    assert_eq!(metadata["resource"], json!(mcp.url()));
    assert_eq!(metadata["authorization_servers"], json!([idp.issuer()]));

    let tokens = login_and_redeem(&idp, "bob", mcp.url()).await;
    let access_token = tokens["access_token"].as_str().expect("access_token");
    let response = mcp_post(mcp.url(), Some(access_token), &call_whoami).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON-RPC response");
    assert_eq!(body["result"]["content"][0]["text"], json!("bob"), "{body}");

    let other_resource = login_and_redeem(&idp, "bob", "http://127.0.0.1:1/mcp").await;
    let wrong_audience = other_resource["access_token"]
        .as_str()
        .expect("access_token");
    let refused = mcp_post(mcp.url(), Some(wrong_audience), &call_whoami).await;
    assert_eq!(
        refused.status(),
        StatusCode::UNAUTHORIZED,
        "a token for another resource is refused"
    );
}

#[tokio::test]
async fn idp_fetches_loopback_client_id_metadata_documents() {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind CIMD host");
    let origin = format!("http://{}", listener.local_addr().expect("address"));
    let client_id = format!("{origin}/.well-known/oauth-client.json");
    let redirect_uri = format!("{origin}/oauth/callback");
    let document = json!({
        "client_id": client_id,
        "client_name": "smoke test",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    let app = axum::Router::new().route(
        "/.well-known/oauth-client.json",
        get(move || {
            let document = document.clone();
            async move { Json(document) }
        }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let idp = Idp::start(IdpOptions::default()).await;
    assert_eq!(idp.cimd_fetches().await.count, 0);
    let pkce = Pkce::new();
    let start = authorize_url(
        &idp,
        &client_id,
        &redirect_uri,
        "http://127.0.0.1:1/mcp",
        &pkce,
    );
    let callback = Browser::new().login_at_idp(&start, "carol").await;
    let code = query_param(&callback, "code").expect("authorization response has a code");

    let response = reqwest::Client::new()
        .post(idp.token_endpoint())
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", client_id.as_str()),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", pkce.verifier.as_str()),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), StatusCode::OK);

    let fetches = idp.cimd_fetches().await;
    assert!(fetches.count >= 1, "{fetches:?}");
    assert_eq!(fetches.last_url.as_deref(), Some(client_id.as_str()));
    assert_eq!(fetches.last_error, None);
    server.abort();
}

#[tokio::test]
async fn server_everything_listens_on_loopback_and_opens_sessions() {
    let server = EverythingServer::start().await;
    assert!(
        server.url().starts_with("http://127.0.0.1:"),
        "{}",
        server.url()
    );
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": { "name": "infra-smoke", "version": "0" }
        }
    });
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        mcp_post(server.url(), None, &initialize),
    )
    .await
    .expect("initialize answered in time");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("mcp-session-id"));
}
