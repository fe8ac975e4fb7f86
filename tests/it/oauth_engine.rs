//! The OAuth engine against the real components: node-oidc-provider for discovery,
//! authorization requests, code exchange, refresh and revocation, and the official TS SDK MCP
//! server for RFC 9728 protected-resource discovery.

#![allow(clippy::unwrap_used)]

use mcp_oauth_operator::net::{OutboundClient, OutboundConfig};
use mcp_oauth_operator::oauth::{
    AuthServerMetadata, AuthorizeRequest, ClientCredentials, Discovery, DiscoveryConfig,
    DiscoveryError, MetadataError, PkcePair, TokenClient, TokenError, TokenTypeHint,
    authorization_url, check_iss, select_scopes,
};
use mcp_oauth_operator::registry::ClientAuthMethod;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use testkit::idp::{
    CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, POST_CLIENT_ID, POST_CLIENT_SECRET,
    PUBLIC_CLIENT_ID, REGISTERED_REDIRECT_PATH,
};
use testkit::{Browser, Idp, IdpOptions, McpServer, free_port, jwt_payload};
use url::Url;

fn outbound() -> OutboundClient {
    OutboundClient::new(OutboundConfig::default()).unwrap()
}

fn discovery() -> Discovery {
    Discovery::new(outbound(), DiscoveryConfig::default())
}

fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn discovers_and_validates_the_real_idp_metadata() {
    let idp = Idp::start(IdpOptions::default()).await;
    let md = discovery()
        .authorization_server(idp.issuer())
        .await
        .unwrap();
    assert_eq!(md.issuer, idp.issuer());
    assert!(
        md.code_challenge_methods_supported
            .iter()
            .any(|m| m == "S256")
    );
    assert!(md.authorization_response_iss_parameter_supported);
    assert!(md.client_id_metadata_document_supported);
    assert_eq!(md.token_endpoint.as_str(), idp.token_endpoint());
    assert_eq!(
        md.authorization_endpoint.as_str(),
        idp.authorization_endpoint()
    );
    assert_eq!(
        md.revocation_endpoint.as_ref().map(Url::as_str),
        Some(idp.revocation_endpoint().as_str())
    );
    assert!(md.supports_scope("offline_access"));
}

#[tokio::test]
async fn discovers_an_issuer_with_a_path_and_reads_the_cimd_flag() {
    let idp = Idp::start(IdpOptions {
        issuer_path: Some("/tenant-a".to_owned()),
        disable_cimd: true,
        ..IdpOptions::default()
    })
    .await;
    let md = discovery()
        .authorization_server(idp.issuer())
        .await
        .unwrap();
    assert_eq!(md.issuer, idp.issuer());
    assert!(md.issuer.ends_with("/tenant-a"));
    assert!(!md.client_id_metadata_document_supported);
}

#[tokio::test]
async fn an_issuer_that_differs_from_the_document_is_refused() {
    let idp = Idp::start(IdpOptions::default()).await;
    let d = discovery();
    let err = d
        .authorization_server(&format!("{}/", idp.issuer()))
        .await
        .unwrap_err();
    let refused = matches!(err, DiscoveryError::NotFound { .. })
        || matches!(
            err.metadata_error(),
            Some(MetadataError::IssuerMismatch { .. })
        );
    assert!(refused, "{err:?}");
    // The exact issuer still works on the same Discovery (no cross-contamination).
    assert!(d.authorization_server(idp.issuer()).await.is_ok());
}

/// The authorization URL for the IdP's pre-registered clients, on a loopback redirect URI.
fn authorize(
    md: &AuthServerMetadata,
    client_id: &str,
    redirect_uri: &str,
    pkce: &PkcePair,
    scopes: &[String],
    resource: &str,
) -> Url {
    authorization_url(
        md,
        &AuthorizeRequest {
            client_id,
            redirect_uri,
            state: "engine-test-state",
            code_challenge: &pkce.challenge,
            scopes,
            resource: Some(resource),
            prompt: None,
        },
    )
}

fn redirect_uri() -> String {
    format!("http://127.0.0.1:{}{REGISTERED_REDIRECT_PATH}", free_port())
}

#[tokio::test]
async fn authorization_url_leads_to_the_login_interaction() {
    let idp = Idp::start(IdpOptions::default()).await;
    let md = discovery()
        .authorization_server(idp.issuer())
        .await
        .unwrap();
    let scopes = select_scopes(Some("mcp:tools"), &[], &[], &md.scopes_supported);
    assert_eq!(scopes, ["mcp:tools", "offline_access"]);
    let pkce = PkcePair::generate();
    let resource = format!("http://127.0.0.1:{}/mcp", free_port());
    let url = authorize(
        &md,
        PUBLIC_CLIENT_ID,
        &redirect_uri(),
        &pkce,
        &scopes,
        &resource,
    );

    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = browser.get(url.as_str()).send().await.unwrap();
    assert!(resp.status().is_redirection(), "status {}", resp.status());
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.contains("/interaction/"),
        "expected the login interaction, got {location}"
    );
}

/// Runs the browser part of a flow and returns the authorization code, after the RFC 9207
/// check the gateway's callback performs.
async fn login(md: &AuthServerMetadata, url: &Url, redirect_uri: &str) -> String {
    let callback = Browser::new().login_at_idp(url.as_str(), "alice").await;
    assert!(
        callback.as_str().starts_with(redirect_uri),
        "redirected to {callback}"
    );
    assert_eq!(
        query_param(&callback, "state").as_deref(),
        Some("engine-test-state")
    );
    let iss = query_param(&callback, "iss");
    check_iss(
        &md.issuer,
        md.authorization_response_iss_parameter_supported,
        iss.as_deref(),
    )
    .unwrap();
    query_param(&callback, "code").expect("an authorization code")
}

#[tokio::test]
async fn public_client_flow_exchange_refresh_and_revoke() {
    let idp = Idp::start(IdpOptions::default()).await;
    let md = discovery()
        .authorization_server(idp.issuer())
        .await
        .unwrap();
    let resource = format!("http://127.0.0.1:{}/mcp", free_port());
    let scopes = select_scopes(Some("mcp:tools"), &[], &[], &md.scopes_supported);
    let pkce = PkcePair::generate();
    let redirect = redirect_uri();
    let url = authorize(&md, PUBLIC_CLIENT_ID, &redirect, &pkce, &scopes, &resource);
    let code = login(&md, &url, &redirect).await;

    let tokens = TokenClient::new(outbound());
    let creds = ClientCredentials::public(PUBLIC_CLIENT_ID);
    // A wrong verifier is refused as invalid_grant (PKCE is really checked).
    let wrong = PkcePair::generate();
    let err = tokens
        .exchange_code(
            &md,
            &creds,
            &code,
            &wrong.verifier,
            &redirect,
            Some(&resource),
        )
        .await
        .unwrap_err();
    assert!(err.is_invalid_grant(), "{err:?}");

    // The code was burnt by the failed attempt; run a fresh login.
    let pkce = PkcePair::generate();
    let url = authorize(&md, PUBLIC_CLIENT_ID, &redirect, &pkce, &scopes, &resource);
    let code = login(&md, &url, &redirect).await;
    let t = tokens
        .exchange_code(
            &md,
            &creds,
            &code,
            &pkce.verifier,
            &redirect,
            Some(&resource),
        )
        .await
        .unwrap();
    assert_eq!(t.token_type, "Bearer");
    assert!(t.expires_in.is_some_and(|s| s > 0));
    let claims = jwt_payload(t.access_token.expose_secret());
    assert_eq!(claims["aud"], json!(resource), "RFC 8707 resource honoured");
    assert_eq!(claims["iss"], json!(idp.issuer()));
    let first_refresh = t.refresh_token.expect("a refresh token");

    let r = tokens
        .refresh(&md, &creds, &first_refresh, Some(&resource))
        .await
        .unwrap();
    assert_eq!(
        jwt_payload(r.access_token.expose_secret())["aud"],
        json!(resource)
    );
    let second_refresh = r.refresh_token.expect("a rotated refresh token");
    assert_ne!(
        second_refresh.expose_secret(),
        first_refresh.expose_secret()
    );

    assert!(
        tokens
            .revoke(
                &md,
                &creds,
                &second_refresh,
                Some(TokenTypeHint::RefreshToken)
            )
            .await
            .unwrap()
    );
    let err = tokens
        .refresh(&md, &creds, &second_refresh, Some(&resource))
        .await
        .unwrap_err();
    assert!(err.is_invalid_grant(), "revoked refresh token: {err:?}");
    assert!(!err.to_string().contains(second_refresh.expose_secret()));
}

async fn confidential_exchange(client_id: &str, secret: &str, method: ClientAuthMethod) {
    let idp = Idp::start(IdpOptions::default()).await;
    let md = discovery()
        .authorization_server(idp.issuer())
        .await
        .unwrap();
    let resource = format!("http://127.0.0.1:{}/mcp", free_port());
    let scopes = vec!["mcp:tools".to_owned()];
    let pkce = PkcePair::generate();
    let redirect = redirect_uri();
    let url = authorize(&md, client_id, &redirect, &pkce, &scopes, &resource);
    let code = login(&md, &url, &redirect).await;
    let tokens = TokenClient::new(outbound());
    let bad = ClientCredentials {
        client_id: client_id.to_owned(),
        client_secret: Some(SecretString::from("wrong-secret")),
        method,
    };
    let err = tokens
        .exchange_code(&md, &bad, &code, &pkce.verifier, &redirect, Some(&resource))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TokenError::Rejected { error, .. } if error == "invalid_client"),
        "{err:?}"
    );
    let creds = ClientCredentials {
        client_id: client_id.to_owned(),
        client_secret: Some(SecretString::from(secret)),
        method,
    };
    let t = tokens
        .exchange_code(
            &md,
            &creds,
            &code,
            &pkce.verifier,
            &redirect,
            Some(&resource),
        )
        .await
        .unwrap();
    let claims = jwt_payload(t.access_token.expose_secret());
    assert_eq!(claims["aud"], json!(resource));
    assert_eq!(claims["client_id"], json!(client_id));
}

#[tokio::test]
async fn confidential_client_with_basic_auth() {
    confidential_exchange(
        CONFIDENTIAL_CLIENT_ID,
        CONFIDENTIAL_CLIENT_SECRET,
        ClientAuthMethod::Basic,
    )
    .await;
}

#[tokio::test]
async fn confidential_client_with_post_auth() {
    confidential_exchange(POST_CLIENT_ID, POST_CLIENT_SECRET, ClientAuthMethod::Post).await;
}

#[tokio::test]
async fn protected_resource_discovery_against_the_ts_mcp_server() {
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let server = Url::parse(mcp.url()).unwrap();
    let d = discovery();

    // The 401 header hint path.
    let challenge = d
        .probe_challenge(&server)
        .await
        .unwrap()
        .expect("a challenge");
    assert_eq!(
        challenge.resource_metadata.as_deref(),
        Some(mcp.resource_metadata_url().as_str())
    );
    assert_eq!(challenge.scopes(), ["mcp:tools"]);
    let via_hint = d
        .protected_resource(&server, challenge.resource_metadata.as_deref(), mcp.url())
        .await
        .unwrap();
    assert_eq!(via_hint.hint_error, None);
    assert_eq!(via_hint.url.as_str(), mcp.resource_metadata_url());
    assert_eq!(via_hint.metadata.authorization_servers, [idp.issuer()]);

    // The well-known path, no hint.
    let well_known = d
        .protected_resource(&server, None, mcp.url())
        .await
        .unwrap();
    assert_eq!(well_known.metadata.authorization_servers, [idp.issuer()]);
    assert_eq!(well_known.url.as_str(), mcp.resource_metadata_url());

    // The issuer it names is discoverable and valid.
    let issuer = &well_known.metadata.authorization_servers[0];
    assert_eq!(
        d.authorization_server(issuer).await.unwrap().issuer,
        *issuer
    );

    // A gateway expecting another resource refuses the metadata.
    let other = format!("http://127.0.0.1:{}/mcp", free_port());
    let err = d
        .protected_resource(&server, challenge.resource_metadata.as_deref(), &other)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "ResourceMismatch", "{err:?}");
}

#[tokio::test]
async fn a_token_from_the_engine_is_accepted_by_the_mcp_server() {
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let server = Url::parse(mcp.url()).unwrap();
    let d = discovery();
    let challenge = d.probe_challenge(&server).await.unwrap().unwrap();
    let prm = d
        .protected_resource(&server, challenge.resource_metadata.as_deref(), mcp.url())
        .await
        .unwrap();
    let md = d
        .authorization_server(&prm.metadata.authorization_servers[0])
        .await
        .unwrap();
    let scopes = select_scopes(
        challenge.scope.as_deref(),
        &[],
        &prm.metadata.scopes_supported,
        &md.scopes_supported,
    );
    let pkce = PkcePair::generate();
    let redirect = redirect_uri();
    let url = authorize(&md, PUBLIC_CLIENT_ID, &redirect, &pkce, &scopes, mcp.url());
    let code = login(&md, &url, &redirect).await;
    let t = TokenClient::new(outbound())
        .exchange_code(
            &md,
            &ClientCredentials::public(PUBLIC_CLIENT_ID),
            &code,
            &pkce.verifier,
            &redirect,
            Some(mcp.url()),
        )
        .await
        .unwrap();
    let resp = reqwest::Client::new()
        .post(mcp.url())
        .header("accept", "application/json, text/event-stream")
        .bearer_auth(t.access_token.expose_secret())
        .json(&json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "engine-test", "version": "0"}}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
}
