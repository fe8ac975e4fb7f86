//! Faults a real identity provider will not produce on demand, injected with a small fake
//! authorization server: wrong metadata issuer, no S256, oversized metadata, and a token
//! endpoint that is down, unavailable, rejecting or returning garbage. Each asserts the status
//! the browser sees and that nothing was stored.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode as AxStatus;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use mcp_oauth_operator::registry::ClientIdentity;
use reqwest::StatusCode;
use std::collections::HashMap;
use std::sync::Arc;
use testkit::Browser;
use testkit::gateway::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    IssuerDiffers,
    NoS256,
    NoPkceList,
    OversizedMetadata,
    TokenGarbage,
    TokenUnavailable,
    TokenHtml500,
    TokenInvalidGrant,
    TokenMissingAccessToken,
    TokenDown,
}

#[derive(Clone)]
struct FakeAs {
    issuer: String,
    fault: Fault,
}

async fn start_fake_as(fault: Fault) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let issuer = format!("http://{}", listener.local_addr().expect("addr"));
    let state = Arc::new(FakeAs {
        issuer: issuer.clone(),
        fault,
    });
    let app = Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .with_state(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    issuer
}

async fn metadata(State(s): State<Arc<FakeAs>>) -> Response {
    let closed = testkit::free_port();
    let token_endpoint = if s.fault == Fault::TokenDown {
        format!("http://127.0.0.1:{closed}/token")
    } else {
        format!("{}/token", s.issuer)
    };
    let mut md = serde_json::json!({
        "issuer": if s.fault == Fault::IssuerDiffers { format!("{}/other", s.issuer) } else { s.issuer.clone() },
        "authorization_endpoint": format!("{}/authorize", s.issuer),
        "token_endpoint": token_endpoint,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": if s.fault == Fault::NoS256 { serde_json::json!(["plain"]) } else { serde_json::json!(["S256"]) },
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": true,
    });
    if s.fault == Fault::NoPkceList {
        md.as_object_mut()
            .map(|o| o.remove("code_challenge_methods_supported"));
    }
    if s.fault == Fault::OversizedMetadata {
        md["padding"] = serde_json::Value::String("x".repeat(2 * 1024 * 1024));
    }
    axum::Json(md).into_response()
}

async fn authorize(
    State(s): State<Arc<FakeAs>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut back = url::Url::parse(&q["redirect_uri"]).expect("redirect_uri");
    back.query_pairs_mut()
        .append_pair("code", "fake-code")
        .append_pair("state", &q["state"])
        .append_pair("iss", &s.issuer);
    Redirect::to(back.as_str()).into_response()
}

async fn token(State(s): State<Arc<FakeAs>>) -> Response {
    match s.fault {
        Fault::TokenGarbage => (AxStatus::OK, "this is not json {").into_response(),
        Fault::TokenUnavailable => (AxStatus::SERVICE_UNAVAILABLE, "busy").into_response(),
        Fault::TokenHtml500 => (AxStatus::INTERNAL_SERVER_ERROR, "<html>oops</html>").into_response(),
        Fault::TokenInvalidGrant => (
            AxStatus::BAD_REQUEST,
            axum::Json(serde_json::json!({"error": "invalid_grant", "error_description": "code expired"})),
        )
            .into_response(),
        Fault::TokenMissingAccessToken => axum::Json(serde_json::json!({"token_type": "Bearer", "expires_in": 60})).into_response(),
        _ => axum::Json(serde_json::json!({"access_token": "fake-access", "token_type": "Bearer", "expires_in": 60})).into_response(),
    }
}

/// A gateway with one server pinned to the fake issuer (no protected-resource metadata).
async fn setup(fault: Fault) -> (Gateway, mcp_oauth_operator::registry::ServerKey, String) {
    let issuer = start_fake_as(fault).await;
    let gw = Gateway::start().await;
    let mcp_url = format!("{issuer}/mcp");
    let mut settings = oauth_settings(&mcp_url, ClientIdentity::Cimd);
    settings.issuer = Some(issuer.clone());
    let server = gw.register("fake", &mcp_url, settings);
    (gw, server, issuer)
}

async fn browser_flow(
    gw: &Gateway,
    server: &mcp_oauth_operator::registry::ServerKey,
) -> (Browser, StatusCode, String, String) {
    let challenge = gw
        .flows()
        .create_auth_challenge(server, &alice(), None)
        .await
        .expect("challenge");
    let browser = Browser::new();
    let to_as = browser.get(&challenge.auth_url).await;
    assert_eq!(to_as.status(), StatusCode::FOUND);
    let authorize = to_as.headers()["location"]
        .to_str()
        .expect("loc")
        .to_owned();
    let back = browser.get(&authorize).await;
    let callback = back.headers()["location"].to_str().expect("loc").to_owned();
    let (status, _, body) = browser.get_text(&callback).await;
    (browser, status, body, challenge.auth_url)
}

#[tokio::test]
async fn fake_as_happy_path_works() {
    // Sanity check of the fake itself, so the fault tests below fail for the fault only.
    let (gw, server, _) = setup(Fault::None).await;
    let (_, status, body, _) = browser_flow(&gw, &server).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(gw.token_store().count().await.expect("count"), 1);
}

#[tokio::test]
async fn metadata_with_another_issuer_is_refused() {
    let (gw, server, _) = setup(Fault::IssuerDiffers).await;
    let err = gw
        .flows()
        .create_auth_challenge(&server, &alice(), None)
        .await
        .expect_err("refused");
    assert!(err.to_string().to_lowercase().contains("issuer"), "{err}");
}

#[tokio::test]
async fn authorization_server_without_s256_is_refused() {
    for fault in [Fault::NoS256, Fault::NoPkceList] {
        let (gw, server, _) = setup(fault).await;
        let err = gw
            .flows()
            .create_auth_challenge(&server, &alice(), None)
            .await
            .expect_err("refused");
        assert!(err.to_string().contains("S256"), "{fault:?}: {err}");
    }
}

#[tokio::test]
async fn oversized_metadata_is_refused() {
    let (gw, server, _) = setup(Fault::OversizedMetadata).await;
    let err = gw
        .flows()
        .create_auth_challenge(&server, &alice(), None)
        .await
        .expect_err("refused");
    let text = format!("{err:?}").to_lowercase();
    assert!(text.contains("large") || text.contains("limit"), "{text}");
}

#[tokio::test]
async fn token_endpoint_failures_never_look_like_success() {
    let cases = [
        (Fault::TokenGarbage, StatusCode::BAD_GATEWAY),
        (Fault::TokenHtml500, StatusCode::BAD_GATEWAY),
        (Fault::TokenMissingAccessToken, StatusCode::BAD_GATEWAY),
        (Fault::TokenUnavailable, StatusCode::SERVICE_UNAVAILABLE),
        (Fault::TokenDown, StatusCode::BAD_GATEWAY),
        (Fault::TokenInvalidGrant, StatusCode::BAD_REQUEST),
    ];
    for (fault, expected) in cases {
        let (gw, server, _) = setup(fault).await;
        let (_, status, body, _) = browser_flow(&gw, &server).await;
        assert_eq!(status, expected, "{fault:?}: {body}");
        assert!(!body.contains("Authorization complete"), "{fault:?}");
        assert!(
            !body.contains("oops") && !body.contains("not json"),
            "upstream body not echoed: {body}"
        );
        assert_eq!(
            gw.token_store().count().await.expect("count"),
            0,
            "{fault:?}"
        );
    }
}

#[tokio::test]
async fn transient_token_failure_offers_a_working_retry() {
    let (gw, server, _) = setup(Fault::TokenUnavailable).await;
    let (browser, status, body, connect_url) = browser_flow(&gw, &server).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("Try again"), "{body}");
    assert!(
        body.contains(&mcp_oauth_operator::flows::routes::page::escape_html(
            &connect_url
        )),
        "retry link is the same connect URL"
    );
    // The flow was put back for the same browser: retrying redirects to the AS again.
    let again = browser.get(&connect_url).await;
    assert_eq!(again.status(), StatusCode::FOUND);
}
