//! Complete browser flows through the gateway against the real node-oidc-provider IdP and a
//! real OAuth-protected MCP server (official TypeScript SDK), and every bad-input case of the
//! callback: each asserts the status and that nothing was stored.

use mcp_oauth_operator::credentials::oauth::AccessToken;
use mcp_oauth_operator::registry::{ClientAuthMethod, ClientIdentity, ServerKey};
use mcp_oauth_operator::store::{FlowId, TokenKey, TokenRecord};
use reqwest::StatusCode;
use secrecy::ExposeSecret as _;
use testkit::gateway::*;
use testkit::{Browser, Idp, IdpOptions, McpServer};
use url::Url;

struct World {
    idp: Idp,
    mcp: McpServer,
    gw: Gateway,
}

async fn world() -> World {
    world_with(IdpOptions::default(), &[]).await
}

async fn world_with(opts: IdpOptions, gw_args: &[&str]) -> World {
    let idp = Idp::start(opts).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let gw = Gateway::start_with(gw_args).await;
    World { idp, mcp, gw }
}

/// A default world with server `echo` registered in oauth mode (CIMD client).
async fn echo_world() -> (World, ServerKey) {
    let w = world().await;
    let server = w.gw.register_oauth("echo", w.mcp.url());
    (w, server)
}

/// How many tokens the gateway holds.
async fn stored_count(w: &World) -> usize {
    w.gw.token_store().count().await.expect("count")
}

fn without_cimd() -> IdpOptions {
    IdpOptions {
        disable_cimd: true,
        ..Default::default()
    }
}

/// A world whose IdP issues 2-second access tokens (refresh margin 1 s, so they need a refresh
/// within a few seconds) with `alice` already logged in to server `echo`.
async fn logged_in_with_short_tokens(opts: IdpOptions) -> (World, ServerKey) {
    let opts = IdpOptions {
        access_token_ttl: Some(2),
        ..opts
    };
    let w = world_with(opts, &["--refresh-margin-secs", "1"]).await;
    let server = w.gw.register_oauth("echo", w.mcp.url());
    let (_, status, body) = run_flow(&w, &server, "alice").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (w, server)
}

/// Alice's current access token for `server` (refreshed if due); panics when there is none.
async fn alice_token(w: &World, server: &ServerKey) -> AccessToken {
    w.gw.flows()
        .credentials()
        .oauth()
        .get_token(server, &alice())
        .await
        .expect("get_token")
        .expect("a token")
}

/// Alice's stored record for the IdP's issuer; panics when there is none.
async fn stored(w: &World) -> (TokenKey, TokenRecord) {
    w.gw.token_store()
        .only_token_from(&alice().session, w.idp.issuer())
        .await
        .expect("store")
        .expect("a stored token")
}

/// Alice's auth challenge (a pending flow and its link) for `server`.
async fn alice_challenge(
    w: &World,
    server: &ServerKey,
) -> mcp_oauth_operator::flows::AuthChallenge {
    w.gw.flows()
        .create_auth_challenge(server, &alice(), None)
        .await
        .expect("challenge")
}

/// Challenge → scripted login → callback page. Returns the callback URL and the page status.
async fn run_flow(w: &World, server: &ServerKey, login: &str) -> (Url, StatusCode, String) {
    let challenge =
        w.gw.flows()
            .create_auth_challenge(server, &alice(), None)
            .await
            .expect("challenge");
    let browser = Browser::new();
    let callback = browser.login_at_idp(&challenge.auth_url, login).await;
    let (status, _, body) = browser.get_text(callback.as_str()).await;
    (callback, status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cimd_client_flow_stores_a_token_the_remote_server_accepts() {
    let (w, server) = echo_world().await;

    let challenge = alice_challenge(&w, &server).await;
    assert_eq!(challenge.status, "auth_required");
    assert_eq!(challenge.server_name, "default/echo");
    assert!(
        challenge
            .auth_url
            .starts_with(&w.gw.url("/oauth/connect?flow=")),
        "the link is our own connect route, never the IdP: {}",
        challenge.auth_url
    );
    let json = serde_json::to_value(&challenge).expect("json");
    for field in ["status", "auth_url", "server_name", "message"] {
        assert!(json.get(field).is_some(), "challenge JSON lacks {field}");
    }

    let browser = Browser::new();
    let callback = browser.login_at_idp(&challenge.auth_url, "alice").await;
    assert!(callback.as_str().starts_with(&w.gw.url("/oauth/callback")));
    assert_eq!(
        query_param(&callback, "iss").as_deref(),
        Some(w.idp.issuer()),
        "the IdP sends RFC 9207 iss"
    );
    let (status, headers, body) = browser.get_text(callback.as_str()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Authorization complete"));
    assert_eq!(headers["cache-control"], "no-store");

    let fetches = w.idp.cimd_fetches().await;
    assert!(fetches.count >= 1, "the IdP fetched our CIMD over HTTP");
    assert_eq!(
        fetches.last_url.as_deref(),
        Some(w.gw.url("/.well-known/oauth-client.json").as_str())
    );

    let token = alice_token(&w, &server).await;
    assert_eq!(token.issuer(), w.idp.issuer());
    let claims = testkit::jwt_payload(token.value.expose_secret());
    assert_eq!(
        claims["aud"],
        w.mcp.url(),
        "RFC 8707: audience is the MCP server"
    );
    let who = whoami(w.mcp.url(), token.value.expose_secret()).await;
    assert_eq!(who, "alice");
    assert_eq!(stored_count(&w).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_registered_clients_basic_and_post_complete_flows() {
    let w = world_with(without_cimd(), &[]).await;
    let basic = w.gw.register(
        "basic",
        w.mcp.url(),
        oauth_settings(
            w.mcp.url(),
            pre_registered(
                "gateway-confidential",
                "gateway-secret",
                ClientAuthMethod::Basic,
            ),
        ),
    );
    let post = w.gw.register(
        "post",
        w.mcp.url(),
        oauth_settings(
            w.mcp.url(),
            pre_registered("gateway-post", "post-secret", ClientAuthMethod::Post),
        ),
    );
    for (server, login) in [(&basic, "bob"), (&post, "carol")] {
        let (_, status, body) = run_flow(&w, server, login).await;
        assert_eq!(status, StatusCode::OK, "{server}: {body}");
        let token = alice_token(&w, server).await;
        let who = whoami(w.mcp.url(), token.value.expose_secret()).await;
        assert_eq!(who, login);
    }
    assert_eq!(
        w.idp.cimd_fetches().await.count,
        0,
        "no CIMD with pre-registered clients"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cimd_without_as_support_and_without_a_client_is_refused_clearly() {
    let w = world_with(without_cimd(), &[]).await;
    let server = w.gw.register_oauth("echo", w.mcp.url());
    let err =
        w.gw.flows()
            .create_auth_challenge(&server, &alice(), None)
            .await
            .expect_err("no usable client identity");
    assert!(err.to_string().contains("pre-registered client"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_access_token_is_refreshed_without_a_new_login() {
    let (w, server) = logged_in_with_short_tokens(IdpOptions::default()).await;
    let first = alice_token(&w, &server).await;
    let (key, before) = stored(&w).await;
    assert!(
        before.refresh_token.is_some(),
        "the IdP issued a refresh token"
    );
    let authorizations = w.idp.stats().await.authorize_requests;

    // Past expiry minus the margin; a 3 s TTL keeps the refreshed token clear of the margin
    // even when the waiters re-check across a whole-second boundary.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let stats_before = w.idp.stats().await;
    // Concurrent callers during the refresh: exactly one refresh request reaches the IdP
    // (it revokes the whole grant if a rotated refresh token is reused).
    let m = w.gw.flows().clone();
    let calls = (0..8).map(|_| {
        let m = m.clone();
        let server = server.clone();
        tokio::spawn(async move { m.credentials().oauth().get_token(&server, &alice()).await })
    });
    let results = futures::future::join_all(calls).await;
    let mut values = Vec::new();
    for r in results {
        let t = r
            .expect("join")
            .expect("get_token")
            .expect("token after refresh");
        values.push(t.value.expose_secret().to_owned());
    }
    let stats_after = w.idp.stats().await;
    assert_eq!(
        stats_after.token_requests - stats_before.token_requests,
        1,
        "one refresh for 8 callers"
    );
    assert!(
        values.iter().all(|v| v == &values[0]),
        "every caller got the refreshed token"
    );
    assert_ne!(values[0], first.value.expose_secret(), "a new access token");
    assert_eq!(
        stats_after.authorize_requests, authorizations,
        "no new login"
    );

    let after =
        w.gw.token_store()
            .get(&key)
            .await
            .expect("store")
            .expect("still stored");
    assert_ne!(
        after
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        before
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        "the rotated refresh token replaced the old one"
    );
    let who = whoami(w.mcp.url(), &values[0]).await;
    assert_eq!(who, "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_challenges_share_one_pending_flow() {
    let (w, server) = echo_world().await;
    let m = w.gw.flows().clone();
    let calls = (0..6).map(|_| {
        let m = m.clone();
        let server = server.clone();
        tokio::spawn(async move { m.create_auth_challenge(&server, &alice(), None).await })
    });
    let urls: Vec<String> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.expect("join").expect("challenge").auth_url)
        .collect();
    assert!(
        urls.iter().all(|u| u == &urls[0]),
        "one flow for concurrent requests: {urls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_unknown_and_expired_states_are_refused() {
    let (w, server) = echo_world().await;
    let (browser, callback) = start_login(w.gw.flows(), &server, &alice(), "alice").await;
    let (status, _, _) = browser.get_text(callback.as_str()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored_count(&w).await, 1);

    // Replay of the same callback.
    let (status, _, body) = browser.get_text(callback.as_str()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains("already completed") || body.contains("expired"),
        "{body}"
    );
    assert_eq!(stored_count(&w).await, 1, "replay stored nothing");

    // Unknown state (well-formed) and malformed state.
    let unknown = with_param(&callback, "state", Some(FlowId::generate().as_str()));
    assert_eq!(
        browser.get_text(unknown.as_str()).await.0,
        StatusCode::BAD_REQUEST
    );
    let malformed = with_param(&callback, "state", Some("not-a-state"));
    assert_eq!(
        browser.get_text(malformed.as_str()).await.0,
        StatusCode::BAD_REQUEST
    );
    let missing = with_param(&callback, "state", None);
    assert_eq!(
        browser.get_text(missing.as_str()).await.0,
        StatusCode::BAD_REQUEST
    );
    let duplicated = Url::parse(&format!("{}&state=x", callback)).expect("url");
    assert_eq!(
        browser.get_text(duplicated.as_str()).await.0,
        StatusCode::BAD_REQUEST
    );

    // An expired flow behaves like an unknown one.
    w.gw.token_store()
        .delete_by_session(&alice().session)
        .await
        .expect("delete");
    let challenge =
        w.gw.flows()
            .create_auth_challenge(
                &server,
                &mcp_oauth_operator::identity::Caller::new("dave", "s-dave"),
                None,
            )
            .await
            .expect("challenge");
    let cb = browser.login_at_idp(&challenge.auth_url, "dave").await;
    let id = FlowId::parse(&query_param(&cb, "state").expect("state")).expect("flow id");
    let flows = w.gw.flow_store();
    let mut flow = flows.get(&id).await.expect("get").expect("pending");
    flow.expires_at = mcp_oauth_operator::time::unix_now() - 1;
    flows.insert(&id, flow).await.expect("age it");
    let (status, _, _) = browser.get_text(cb.as_str()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(stored_count(&w).await, 0, "expired flow stored nothing");
}

/// Defence in depth: a record that names another user is never handed to this caller, even
/// under their own session id (a session header shared by mistake, a forged one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_token_of_another_user_is_never_used() {
    let (w, server) = echo_world().await;
    let (_, status, body) = run_flow(&w, &server, "alice").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (key, mut record) = stored(&w).await;
    record.user = "mallory".into();
    w.gw.token_store().put(&key, record).await.expect("plant");
    assert!(
        w.gw.flows()
            .credentials()
            .oauth()
            .get_token(&server, &alice())
            .await
            .expect("get_token")
            .is_none(),
        "another user's record under alice's session was used"
    );
    // Nor does the refusal path touch it.
    assert!(stored(&w).await.1.user == "mallory");
}

/// A flow stored by a version that did not record the token's resource cannot say what the
/// token would be for: its callback stores nothing and asks for a new link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_without_a_token_resource_stores_nothing() {
    let (w, server) = echo_world().await;
    let challenge = alice_challenge(&w, &server).await;
    let browser = Browser::new();
    let cb = browser.login_at_idp(&challenge.auth_url, "alice").await;
    let id = FlowId::parse(&query_param(&cb, "state").expect("state")).expect("flow id");
    let flows = w.gw.flow_store();
    let mut flow = flows.get(&id).await.expect("get").expect("pending");
    assert_eq!(
        flow.token_resource,
        w.mcp.url(),
        "the flow records the resource"
    );
    flow.token_resource = String::new();
    flows
        .insert(&id, flow)
        .await
        .expect("as an older version stored it");
    let (status, _, body) = browser.get_text(cb.as_str()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("get a new link"), "{body}");
    assert_eq!(stored_count(&w).await, 0, "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_needs_the_browser_that_opened_the_link() {
    let (w, server) = echo_world().await;
    let challenge = alice_challenge(&w, &server).await;
    let owner = Browser::new();
    let callback = owner.login_at_idp(&challenge.auth_url, "alice").await;

    // No cookie at all.
    let stranger = Browser::new();
    let (status, _, body) = stranger.get_text(callback.as_str()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Another browser with its own (valid) binding cookie from its own flow.
    let other_challenge =
        w.gw.flows()
            .create_auth_challenge(
                &server,
                &mcp_oauth_operator::identity::Caller::new("mallory", "s-m"),
                None,
            )
            .await
            .expect("challenge");
    let _ = stranger
        .login_at_idp(&other_challenge.auth_url, "mallory")
        .await;
    assert!(
        stranger.cookies_for(&w.gw.url("/oauth/callback")).is_some(),
        "stranger has a cookie"
    );
    let (status, _, _) = stranger.get_text(callback.as_str()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(stored_count(&w).await, 0);

    // The connect link opened in another browser is refused too.
    let (status, _, body) = stranger.get_text(&challenge.auth_url).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("another browser"), "{body}");

    // The failed attempts did not burn the flow: the owner still completes it.
    let (status, _, body) = owner.get_text(callback.as_str()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(stored_count(&w).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iss_mismatch_or_missing_is_refused_and_error_text_is_not_shown() {
    let (w, server) = echo_world().await;
    for tamper in [Some("http://127.0.0.1:1/evil"), None] {
        let challenge =
            w.gw.flows()
                .create_auth_challenge(&server, &alice(), None)
                .await
                .expect("challenge");
        let browser = Browser::new();
        let callback = browser.login_at_idp(&challenge.auth_url, "alice").await;
        let mut bad = with_param(&callback, "iss", tamper);
        // A mix-up response's error text must not be shown.
        bad = with_param(&bad, "error_description", Some("<script>evil()</script>"));
        let (status, _, body) = browser.get_text(bad.as_str()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "iss={tamper:?}: {body}");
        assert!(!body.contains("evil"), "{body}");
        assert_eq!(stored_count(&w).await, 0);
        // The flow was consumed: the genuine response cannot be used afterwards either.
        assert_eq!(
            browser.get_text(callback.as_str()).await.0,
            StatusCode::BAD_REQUEST
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_error_parameter_is_shown_escaped_with_a_truthful_status() {
    let (w, server) = echo_world().await;
    let (browser, callback) = start_login(w.gw.flows(), &server, &alice(), "alice").await;
    let mut denied = with_param(&callback, "code", None);
    denied = with_param(&denied, "error", Some("access_denied"));
    denied = with_param(
        &denied,
        "error_description",
        Some("<img src=x onerror=alert(1)> & more"),
    );
    let (status, headers, body) = browser.get_text(denied.as_str()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("access_denied"));
    assert!(
        body.contains("&lt;img src=x onerror=alert(1)&gt; &amp; more"),
        "{body}"
    );
    assert!(!body.contains("<img"), "{body}");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .expect("csp")
            .contains("default-src 'none'")
    );
    assert_eq!(stored_count(&w).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_cookies_carry_the_security_attributes() {
    let (w, server) = echo_world().await;
    let challenge = alice_challenge(&w, &server).await;
    let browser = Browser::new();
    let resp = browser.get(&challenge.auth_url).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/oauth", "Max-Age=600"] {
        assert!(cookie.contains(attr), "cookie lacks {attr}: {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "no Secure on a plain-HTTP loopback URL"
    );
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
    let auth = Url::parse(&location).expect("IdP URL");
    assert!(auth.as_str().starts_with(w.idp.issuer()));
    assert_eq!(
        query_param(&auth, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(query_param(&auth, "resource").as_deref(), Some(w.mcp.url()));
    assert_eq!(
        query_param(&auth, "client_id").as_deref(),
        Some(w.gw.url("/.well-known/oauth-client.json").as_str())
    );
    assert_eq!(
        query_param(&auth, "redirect_uri").as_deref(),
        Some(w.gw.url("/oauth/callback").as_str())
    );
    let scope = query_param(&auth, "scope").expect("scope");
    assert!(
        scope.split(' ').any(|s| s == "mcp:tools"),
        "challenge/PRM scope requested: {scope}"
    );
    assert_eq!(
        query_param(&auth, "state").map(|s| s.len()),
        Some(43),
        "opaque 256-bit state"
    );

    for path in ["/oauth/callback?state=x", "/nope", "/healthz"] {
        let (_, h, _) = browser.get_text(&w.gw.url(path)).await;
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert!(
            h["content-security-policy"]
                .to_str()
                .expect("csp")
                .contains("frame-ancestors 'none'")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_parameter_can_be_turned_off_per_server() {
    let w = world().await;
    let mut settings = oauth_settings(w.mcp.url(), ClientIdentity::Cimd);
    settings.send_resource = false;
    let server = w.gw.register("nores", w.mcp.url(), settings);
    let challenge = alice_challenge(&w, &server).await;
    let resp = Browser::new().get(&challenge.auth_url).await;
    let auth = Url::parse(resp.headers()["location"].to_str().expect("loc")).expect("url");
    assert_eq!(query_param(&auth, "resource"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_callback_are_rate_limited_per_ip() {
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let gw =
        Gateway::start_with(&["--rate-limit-per-minute", "1", "--rate-limit-burst", "2"]).await;
    let _server = gw.register_oauth("echo", mcp.url());
    let browser = Browser::new();
    let url = gw.url("/oauth/callback?state=x");
    assert_eq!(browser.get_text(&url).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(browser.get_text(&url).await.0, StatusCode::BAD_REQUEST);
    let resp = browser.get(&gw.url("/oauth/connect?flow=y")).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "60");
    let metrics = browser.get_text(&gw.url("/metrics")).await.2;
    assert!(metrics.contains("mcpoauth_rate_limited_total"), "{metrics}");
    assert_eq!(
        browser.get_text(&gw.url("/healthz")).await.0,
        StatusCode::OK,
        "health is not limited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_metadata_document_has_the_cimd_fields() {
    let w = world().await;
    let mut settings = oauth_settings(w.mcp.url(), ClientIdentity::Cimd);
    settings.scopes = vec!["mcp:resources".into()];
    let server = w.gw.register("echo", w.mcp.url(), settings);
    let fetch = |url: String| async move {
        let resp = reqwest::get(url).await.expect("get");
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json::<serde_json::Value>().await.expect("json")
    };
    let doc = fetch(w.gw.url("/.well-known/oauth-client.json")).await;
    assert_eq!(doc["client_id"], w.gw.url("/.well-known/oauth-client.json"));
    assert_eq!(doc["client_name"], "MCP OAuth Gateway");
    assert_eq!(
        doc["redirect_uris"],
        serde_json::json!([w.gw.url("/oauth/callback")])
    );
    assert_eq!(doc["token_endpoint_auth_method"], "none");
    assert_eq!(
        doc["grant_types"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(doc["response_types"], serde_json::json!(["code"]));
    assert!(doc["application_type"].is_string());
    assert_eq!(
        doc["scope"], "mcp:resources",
        "configured scopes are advertised"
    );

    // After a challenge, the scopes it requested are advertised too (the IdP checks them).
    w.gw.flows()
        .create_auth_challenge(&server, &alice(), None)
        .await
        .expect("challenge");
    let doc = fetch(w.gw.url("/.well-known/oauth-client.json")).await;
    let scope = doc["scope"].as_str().expect("scope");
    for s in ["mcp:resources", "offline_access"] {
        assert!(scope.split(' ').any(|x| x == s), "{s} missing from {scope}");
    }

    let omit = Gateway::start_with(&["--cimd-scope", "none"]).await;
    let doc = fetch(omit.url("/.well-known/oauth-client.json")).await;
    assert!(
        doc.get("scope").is_none(),
        "--cimd-scope none omits the field: {doc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_www_authenticate_falls_back_to_well_known_discovery() {
    let (w, server) = echo_world().await;
    let challenge =
        w.gw.flows()
            .create_auth_challenge(
                &server,
                &alice(),
                Some("Bearer resource_metadata=\"unterminated"),
            )
            .await
            .expect("challenge despite a malformed header");
    let browser = Browser::new();
    let cb = browser.login_at_idp(&challenge.auth_url, "alice").await;
    assert_eq!(browser.get_text(cb.as_str()).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_hook_runs_after_the_token_is_stored() {
    let (w, server) = echo_world().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let store = w.gw.token_store().clone();
    w.gw.flows()
        .set_completion_hook(std::sync::Arc::new(move |ev| {
            let tx = tx.clone();
            let store = store.clone();
            Box::pin(async move {
                let stored = store.count().await.map_err(|e| e.to_string())?;
                tx.send((ev, stored)).map_err(|e| e.to_string())
            })
        }));
    let (_, status, _) = run_flow(&w, &server, "alice").await;
    assert_eq!(status, StatusCode::OK);
    let (ev, stored) = rx.try_recv().expect("hook ran");
    assert_eq!(ev.server, server);
    assert_eq!(ev.session, alice().session);
    assert_eq!(ev.user, alice().user);
    assert_eq!(ev.issuer, w.idp.issuer());
    assert_eq!(stored, 1, "the token was stored before the hook ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_can_be_deleted_by_session_user_and_issuer() {
    let (w, server) = echo_world().await;
    let (_, status, _) = run_flow(&w, &server, "alice").await;
    assert_eq!(status, StatusCode::OK);
    let m = w.gw.flows();
    let store = w.gw.token_store();
    assert!(
        m.credentials()
            .oauth()
            .get_token(&server, &alice())
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(
        store
            .delete_by_issuer(&alice().session, "http://other")
            .await
            .expect("del"),
        0
    );
    assert_eq!(store.delete_by_user("someone-else").await.expect("del"), 0);
    assert_eq!(store.delete_by_user(&alice().user).await.expect("del"), 1);
    assert!(
        m.credentials()
            .oauth()
            .get_token(&server, &alice())
            .await
            .expect("get")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_without_rotation_keeps_the_old_refresh_token() {
    let (w, server) = logged_in_with_short_tokens(IdpOptions {
        no_refresh_rotation: true,
        ..Default::default()
    })
    .await;
    let store = w.gw.token_store();
    let (key, before) = stored(&w).await;
    let rt = before
        .refresh_token
        .as_ref()
        .expect("refresh token")
        .expose_secret()
        .to_owned();

    for _ in 0..2 {
        tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
        let t = alice_token(&w, &server).await;
        let who = whoami(w.mcp.url(), t.value.expose_secret()).await;
        assert_eq!(who, "alice");
        let now = store.get(&key).await.expect("store").expect("token");
        assert_eq!(
            now.refresh_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned())
                .as_deref(),
            Some(rt.as_str()),
            "the refresh token the IdP did not replace is kept"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_the_idp_rejects_drops_the_token_and_asks_for_authorization() {
    let (w, server) = logged_in_with_short_tokens(IdpOptions::default()).await;
    let store = w.gw.token_store();
    let (_, record) = stored(&w).await;
    // Revoke the grant at the IdP (as a user would from their account page).
    let rt = record.refresh_token.expect("refresh token");
    let resp = reqwest::Client::new()
        .post(w.idp.revocation_endpoint())
        .form(&[
            ("token", rt.expose_secret()),
            (
                "client_id",
                w.gw.url("/.well-known/oauth-client.json").as_str(),
            ),
        ])
        .send()
        .await
        .expect("revoke");
    assert!(resp.status().is_success(), "revocation: {}", resp.status());

    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let t =
        w.gw.flows()
            .credentials()
            .oauth()
            .get_token(&server, &alice())
            .await
            .expect("no error, just no token");
    assert!(
        t.is_none(),
        "a rejected refresh means authorization is needed again"
    );
    assert_eq!(
        store.count().await.expect("count"),
        0,
        "the dead token was removed"
    );
    let metrics = w.gw.server.metrics.encode();
    assert!(
        metrics.contains("mcpoauth_token_refreshes_total{result=\"rejected\"} 1"),
        "{metrics}"
    );
    // And a new challenge can be made.
    w.gw.flows()
        .create_auth_challenge(&server, &alice(), None)
        .await
        .expect("new challenge");
}

/// `header` identity: the authenticating proxy names the user on browser requests too, so a
/// sign-in link opened by another user is refused before it binds — a link planted on someone
/// else cannot make their authorization land in the planter's session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_mode_refuses_a_link_opened_by_another_user() {
    let w = world_with(IdpOptions::default(), &["--identity", "header"]).await;
    let server = w.gw.register_oauth("echo", w.mcp.url());
    let mallory = mcp_oauth_operator::identity::Caller::new("mallory", "mallory");
    let challenge =
        w.gw.flows()
            .create_auth_challenge(&server, &mallory, None)
            .await
            .expect("challenge");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let open = |user: &'static str| {
        http.get(challenge.auth_url.as_str())
            .header("X-Forwarded-User", user)
            .send()
    };

    let resp = open("alice").await.expect("connect as alice");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body = resp.text().await.expect("page");
    assert!(body.contains("another user"), "{body}");

    // Refused before binding: the flow's own user can still use the link.
    let resp = open("mallory").await.expect("connect as mallory");
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()["location"].to_str().expect("location");
    assert!(location.starts_with(w.idp.issuer()), "{location}");
    assert_eq!(stored_count(&w).await, 0);
}

/// A hostile remote server whose protected-resource metadata names the real IdP but lists junk
/// `scopes_supported`, and whose challenge asks for junk scopes: the flow may request them from
/// the IdP, but the gateway's Client ID Metadata Document (what its client says about itself to
/// every authorization server) is not rewritten by them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_servers_junk_scopes_do_not_reach_the_client_metadata_document() {
    let w = world().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/mcp", listener.local_addr().expect("addr"));
    let junk: Vec<String> = (0..50).map(|i| format!("junk:{i}")).collect();
    let prm = serde_json::json!({
        "resource": url,
        "authorization_servers": [w.idp.issuer()],
        "scopes_supported": junk,
    });
    let app = axum::Router::new().route(
        "/.well-known/oauth-protected-resource/mcp",
        axum::routing::get(move || {
            let prm = prm.clone();
            async move { axum::Json(prm) }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut settings = oauth_settings(&url, ClientIdentity::Cimd);
    settings.scopes = vec!["mcp:resources".into()];
    let hostile = w.gw.register("hostile", &url, settings);
    // Once from the metadata alone (no configured scopes would have used them), once with a
    // challenge naming more junk.
    let bare =
        w.gw.register("bare", &url, oauth_settings(&url, ClientIdentity::Cimd));
    w.gw.flows()
        .create_auth_challenge(&bare, &alice(), None)
        .await
        .expect("challenge from metadata");
    w.gw.flows()
        .create_auth_challenge(
            &hostile,
            &alice(),
            Some(r#"Bearer scope="junk:challenge mcp:resources""#),
        )
        .await
        .expect("challenge with junk scope");
    let doc: serde_json::Value = reqwest::get(w.gw.url("/.well-known/oauth-client.json"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let scope = doc["scope"].as_str().expect("scope").to_owned();
    assert!(
        !scope.contains("junk"),
        "junk reached the document: {scope}"
    );
    let mut advertised: Vec<&str> = scope.split(' ').collect();
    advertised.sort_unstable();
    assert_eq!(advertised, ["mcp:resources", "offline_access"], "{scope}");
}

/// Behind an Ingress (`--trusted-proxies` naming it), each client has its own sign-in budget,
/// taken from the rightmost `X-Forwarded-For` entry the proxy appended; a client cannot escape
/// its budget by writing more addresses to the left. Without the setting the header is ignored
/// and the peer address counts, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_rate_limit_counts_the_forwarded_client() {
    let limits = ["--rate-limit-per-minute", "1", "--rate-limit-burst", "1"];
    let http = reqwest::Client::new();
    let callback = |gw: &Gateway, forwarded: &'static str| {
        let req = http
            .get(gw.url("/oauth/callback?state=x"))
            .header("x-forwarded-for", forwarded);
        async move { req.send().await.expect("callback").status() }
    };
    let mut args = limits.to_vec();
    args.extend(["--trusted-proxies", "127.0.0.0/8"]);
    let gw = Gateway::start_with(&args).await;
    assert_eq!(callback(&gw, "198.51.100.1").await, StatusCode::BAD_REQUEST);
    assert_eq!(
        callback(&gw, "198.51.100.1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        callback(&gw, "198.51.100.2").await,
        StatusCode::BAD_REQUEST,
        "another client behind the same proxy has its own budget"
    );
    assert_eq!(
        callback(&gw, "203.0.113.77, 198.51.100.1").await,
        StatusCode::TOO_MANY_REQUESTS,
        "a forged address left of the proxy's entry is not believed"
    );

    let direct = Gateway::start_with(&limits).await;
    assert_eq!(
        callback(&direct, "198.51.100.1").await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        callback(&direct, "198.51.100.2").await,
        StatusCode::TOO_MANY_REQUESTS,
        "without --trusted-proxies the header is ignored"
    );
}

/// The name of flow `flow`'s binding cookie on a plain-HTTP gateway (one cookie per flow).
fn flow_cookie_name(flow: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(flow.as_bytes());
    let short: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("mcpoauth_browser_{short}")
}

/// The `flow` parameter of a sign-in link.
fn flow_of(link: &str) -> String {
    query_param(&Url::parse(link).expect("link"), "flow").expect("flow parameter")
}

/// `name=value` of the first `Set-Cookie` of a response.
fn set_cookie(resp: &reqwest::Response) -> (String, String, String) {
    let raw = resp.headers()["set-cookie"]
        .to_str()
        .expect("set-cookie")
        .to_owned();
    let pair = raw.split(';').next().expect("pair").trim().to_owned();
    let (name, value) = pair.split_once('=').expect("name=value");
    (name.to_owned(), value.to_owned(), raw)
}

/// Issue 12 point 6: a binding secret planted in the browser (cookie tossing from a sibling
/// subdomain) is never adopted: the gateway mints its own, the planted one completes nothing,
/// and the real one still works next to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_binding_cookie_is_never_adopted() {
    let (w, server) = echo_world().await;
    let challenge = alice_challenge(&w, &server).await;
    let flow = flow_of(&challenge.auth_url);
    let name = flow_cookie_name(&flow);
    let planted = "P".repeat(43);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let resp = http
        .get(&challenge.auth_url)
        .header("cookie", format!("{name}={planted}"))
        .send()
        .await
        .expect("connect");
    assert_eq!(resp.status(), StatusCode::FOUND);
    let (set_name, minted, _) = set_cookie(&resp);
    assert_eq!(set_name, name);
    assert_ne!(minted, planted, "the planted secret was adopted");
    let idp_url = location(&resp);
    let id = FlowId::parse(&flow).expect("flow id");
    let bound = w.gw.flow_store().get(&id).await.expect("get");
    let bound = bound.and_then(|f| f.browser).expect("bound");
    use mcp_oauth_operator::store::BrowserBinding;
    assert!(!bound.matches(&BrowserBinding::from_cookie_secret(&planted)));
    assert!(bound.matches(&BrowserBinding::from_cookie_secret(&minted)));

    let callback = Browser::new().login_at_idp(&idp_url, "alice").await;
    let with = |cookie: String| http.get(callback.as_str()).header("cookie", cookie).send();
    let resp = with(format!("{name}={planted}")).await.expect("callback");
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST,
        "planted secret refused"
    );
    assert_eq!(stored_count(&w).await, 0);
    // A planted cookie next to the real one (a longer path shadows ours) does not lock it out.
    let resp = with(format!("{name}={planted}; {name}={minted}"))
        .await
        .expect("callback");
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, cleared, raw) = set_cookie(&resp);
    assert!(cleared.is_empty() && raw.contains("Max-Age=0"), "{raw}");
    assert_eq!(stored_count(&w).await, 1);
}

/// Several flows open at once in one browser each keep their own cookie and complete in any
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_flows_in_one_browser_complete_in_any_order() {
    let (w, server) = echo_world().await;
    let browser = Browser::new();
    let mut callbacks = Vec::new();
    for session in ["s-one", "s-two"] {
        let caller = mcp_oauth_operator::identity::Caller::new("alice", session);
        let challenge =
            w.gw.flows()
                .create_auth_challenge(&server, &caller, None)
                .await
                .expect("challenge");
        callbacks.push(browser.login_at_idp(&challenge.auth_url, "alice").await);
    }
    for callback in callbacks.iter().rev() {
        let (status, _, body) = browser.get_text(callback.as_str()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(stored_count(&w).await, 2);
}

/// `__Host-` at an HTTPS root (Secure, `Path=/`, no `Domain`); below a path prefix the cookie is
/// scoped to `{prefix}/oauth`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_take_the_host_prefix_at_an_https_root_and_the_prefix_path_below_one() {
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    for (public, path, prefix) in [
        ("https://gw.example.com", "/", "__Host-"),
        ("https://gw.example.com/gw", "/gw/oauth", "__Secure-"),
    ] {
        let gw = Gateway::start_with(&["--public-url", public]).await;
        let server = gw.register_oauth("echo", mcp.url());
        let challenge = gw
            .flows()
            .create_auth_challenge(&server, &alice(), None)
            .await
            .expect("challenge");
        // The browser would reach it through the public URL; the test reaches the listener.
        let link = challenge.auth_url.replace(public, &gw.base());
        let resp = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
            .get(&link)
            .send()
            .await
            .expect("connect");
        assert_eq!(resp.status(), StatusCode::FOUND, "{public}");
        let (name, _, raw) = set_cookie(&resp);
        assert!(name.starts_with(prefix), "{public}: {raw}");
        assert!(
            raw.contains(&format!("Path={path};")) || raw.ends_with(&format!("Path={path}")),
            "{raw}"
        );
        assert!(raw.contains("Secure") && raw.contains("HttpOnly"), "{raw}");
        assert!(!raw.contains("Domain"), "{raw}");
        gw.shutdown().await;
    }
}

/// A public URL with a path (`http://127.0.0.1:P/gw`): links, CIMD document, redirect URI and
/// cookie carry the prefix, and flows complete both through `/gw/…` and through an Ingress that
/// strips the prefix before the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_below_a_path_prefix_completes_flows_end_to_end() {
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let port = testkit::net::free_port();
    let listen = format!("127.0.0.1:{port}");
    let public = format!("http://127.0.0.1:{port}/gw");
    let gw = Gateway::start_with(&["--listen", &listen, "--public-url", &public]).await;
    let server = gw.register_oauth("echo", mcp.url());
    // `anonymous` identity: the MCP calls below are this caller's.
    let me = mcp_oauth_operator::identity::Caller::anonymous();

    let doc: serde_json::Value = reqwest::get(format!("{public}/.well-known/oauth-client.json"))
        .await
        .expect("CIMD")
        .json()
        .await
        .expect("CIMD JSON");
    assert_eq!(
        doc["client_id"],
        format!("{public}/.well-known/oauth-client.json")
    );
    assert_eq!(
        doc["redirect_uris"],
        serde_json::json!([format!("{public}/oauth/callback")])
    );

    // Through the prefix, as a browser sees it.
    let challenge = gw
        .flows()
        .create_auth_challenge(&server, &me, None)
        .await
        .expect("challenge");
    assert!(
        challenge
            .auth_url
            .starts_with(&format!("{public}/oauth/connect?flow=")),
        "{}",
        challenge.auth_url
    );
    let browser = Browser::new();
    let callback = browser.login_at_idp(&challenge.auth_url, "alice").await;
    assert!(
        callback
            .as_str()
            .starts_with(&format!("{public}/oauth/callback?")),
        "{callback}"
    );
    let (status, _, body) = browser.get_text(callback.as_str()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(gw.token_store().count().await.expect("count"), 1);
    let name = whoami(&format!("{public}/mcp/default/echo"), "ignored").await;
    assert!(name.contains("alice"), "{name}");

    // Behind an Ingress that strips `/gw`: the browser still sends the cookie for `/gw/oauth`,
    // the gateway receives `/oauth/callback`.
    gw.token_store()
        .delete_by_session(&me.session)
        .await
        .expect("delete");
    let challenge = gw
        .flows()
        .create_auth_challenge(&server, &me, None)
        .await
        .expect("challenge");
    let browser = Browser::new();
    let callback = browser.login_at_idp(&challenge.auth_url, "alice").await;
    let cookie = browser
        .cookies_for(callback.as_str())
        .expect("the flow cookie is sent to the prefixed callback");
    let stripped = callback.as_str().replacen("/gw/oauth/", "/oauth/", 1);
    let resp = reqwest::Client::new()
        .get(&stripped)
        .header("cookie", cookie)
        .send()
        .await
        .expect("stripped callback");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(gw.token_store().count().await.expect("count"), 1);
}

/// `header` identity: the callback re-checks the user the authenticating proxy names; another
/// user (same browser) gets 403, the flow is dropped and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_mode_callback_rechecks_the_user() {
    let w = world_with(IdpOptions::default(), &["--identity", "header"]).await;
    let server = w.gw.register_oauth("echo", w.mcp.url());
    let alice = mcp_oauth_operator::identity::Caller::new("alice", "alice");
    let challenge =
        w.gw.flows()
            .create_auth_challenge(&server, &alice, None)
            .await
            .expect("challenge");
    let browser = Browser::new();
    let resp = browser
        .client()
        .get(&challenge.auth_url)
        .header("X-Forwarded-User", "alice")
        .send()
        .await
        .expect("connect");
    assert_eq!(resp.status(), StatusCode::FOUND);
    let callback = browser.login_at_idp(&location(&resp), "alice").await;
    let resp = browser
        .client()
        .get(callback.as_str())
        .header("X-Forwarded-User", "mallory")
        .send()
        .await
        .expect("callback");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(stored_count(&w).await, 0);
    let id = FlowId::parse(&flow_of(&challenge.auth_url)).expect("flow id");
    assert!(
        w.gw.flow_store().get(&id).await.expect("get").is_none(),
        "the flow was dropped"
    );
    // Alice herself now gets "unknown": the link is spent.
    let resp = browser
        .client()
        .get(callback.as_str())
        .header("X-Forwarded-User", "alice")
        .send()
        .await
        .expect("callback");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(stored_count(&w).await, 0);
}

/// The sign-in link is a navigation: followed from another site it works, but loaded as a
/// cross-site subresource (`<img src=…>`) or under a foreign Host it binds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_is_a_navigation_never_a_cross_site_subresource() {
    let (w, server) = echo_world().await;
    let challenge = alice_challenge(&w, &server).await;
    let id = FlowId::parse(&flow_of(&challenge.auth_url)).expect("flow id");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let bound = || async {
        w.gw.flow_store()
            .get(&id)
            .await
            .expect("get")
            .expect("pending")
            .browser
            .is_some()
    };
    for headers in [
        vec![
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "no-cors"),
        ],
        vec![("host", "rebind.evil.example")],
    ] {
        let mut req = http.get(&challenge.auth_url);
        for (k, v) in &headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("connect");
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{headers:?}");
        assert!(resp.headers().get("set-cookie").is_none());
        assert!(!bound().await, "{headers:?} bound the flow");
    }
    let resp = http
        .get(&challenge.auth_url)
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .expect("connect");
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert!(bound().await);
}
