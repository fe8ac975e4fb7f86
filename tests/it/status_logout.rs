//! `/oauth/status` and sign-out (`/oauth/logout`, `?everywhere=true`) against the real
//! node-oidc-provider IdP and real OAuth-protected MCP servers: revocation is proven by the
//! IdP's own introspection endpoint. Also the Python-SDK MCP server as an OAuth upstream.

use mcp_oauth_operator::identity::Caller;
use mcp_oauth_operator::registry::{AuthSettings, ServerKey, ServerRegistration};
use reqwest::StatusCode;
use secrecy::ExposeSecret as _;
use serde_json::Value;
use testkit::gateway::*;
use testkit::idp::{CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET};
use testkit::{Browser, Idp, IdpOptions, McpServer, PythonMcpServer};
use url::Url;

struct World {
    idp: Idp,
    mcp: McpServer,
    gw: Gateway,
    server: ServerKey,
}

async fn world() -> World {
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let gw = Gateway::start().await;
    let server = gw.register_oauth("echo", mcp.url());
    World {
        idp,
        mcp,
        gw,
        server,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A full login of `caller` (as IdP user `login`) through the gateway's callback.
async fn login(w: &World, server: &ServerKey, caller: &Caller, login_name: &str) {
    let (browser, callback) = start_login(w.gw.flows(), server, caller, login_name).await;
    let (status, _, body) = browser.get_text(callback.as_str()).await;
    assert_eq!(status, StatusCode::OK, "callback page: {body}");
}

/// The refresh token stored for `session` (exactly one entry expected).
async fn stored_refresh_token(w: &World, session: &str) -> String {
    let entries =
        w.gw.token_store()
            .all_for_session(session)
            .await
            .expect("store");
    assert_eq!(entries.len(), 1, "one token set for {session}");
    entries[0]
        .1
        .refresh_token
        .as_ref()
        .expect("the IdP issued a refresh token")
        .expose_secret()
        .to_owned()
}

async fn session_entries(w: &World, session: &str) -> usize {
    w.gw.token_store()
        .all_for_session(session)
        .await
        .expect("store")
        .len()
}

/// RFC 7662 introspection at the IdP (as the confidential client, which may introspect any
/// token): whether `token` is still active there.
async fn active_at_idp(idp: &Idp, token: &str) -> bool {
    let resp = reqwest::Client::new()
        .post(idp.introspection_endpoint())
        .basic_auth(CONFIDENTIAL_CLIENT_ID, Some(CONFIDENTIAL_CLIENT_SECRET))
        .form(&[("token", token), ("token_type_hint", "refresh_token")])
        .send()
        .await
        .expect("introspection request");
    assert!(
        resp.status().is_success(),
        "introspection: {}",
        resp.status()
    );
    let v: Value = resp.json().await.expect("introspection JSON");
    v["active"].as_bool().expect("`active` is a boolean")
}

async fn get_status(
    gw: &Gateway,
    accept: &str,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let resp = reqwest::Client::new()
        .get(gw.url("/oauth/status"))
        .header("accept", accept)
        .send()
        .await
        .expect("GET /oauth/status");
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.expect("body"))
}

async fn status_json(gw: &Gateway) -> Value {
    let (status, headers, body) = get_status(gw, "application/json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    serde_json::from_str(&body).expect("status JSON")
}

fn server_line<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["servers"]
        .as_array()
        .expect("servers array")
        .iter()
        .find(|s| s["server"] == name)
        .unwrap_or_else(|| panic!("{name} missing in {status}"))
}

/// Whether any authorization flow was started (the `flows_started` counter).
fn flows_started(gw: &Gateway) -> bool {
    gw.server
        .metrics
        .encode()
        .contains("mcpoauth_flows_started_total{")
}

/// POST /oauth/logout as a same-origin browser form would.
async fn post_logout(gw: &Gateway, everywhere: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(gw.url("/oauth/logout"))
        .header("origin", gw.base())
        .header("sec-fetch-site", "same-origin");
    if let Some(e) = everywhere {
        req = req.form(&[("everywhere", e)]);
    }
    req.send().await.expect("POST /oauth/logout")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_what_needs_authorization_then_the_token_after_login() {
    let w = world().await;
    w.gw.registry().upsert_server(ServerRegistration {
        key: ServerKey::new("default", "open"),
        url: Url::parse(w.mcp.url()).expect("url"),
        auth: AuthSettings::None,
        generation: 1,
        forward_headers: Vec::new(),
    });

    let before = status_json(&w.gw).await;
    assert_eq!(before["user"], "anonymous");
    let echo = server_line(&before, "default/echo");
    assert_eq!(echo["mode"], "oauth");
    assert_eq!(echo["authorized"], false);
    assert_eq!(echo["needs_authorization"], true);
    let link = echo["connect_url"].as_str().expect("a link to start");
    assert_eq!(link, w.gw.url("/oauth/start?server=default%2Fecho"));
    let open = server_line(&before, "default/open");
    assert_eq!(open["mode"], "none");
    assert_eq!(open["needs_authorization"], false);
    assert!(open["connect_url"].is_null());
    assert!(!flows_started(&w.gw), "reading the status creates no flow");

    // The link starts the flow for this caller; the browser completes it.
    let browser = Browser::new();
    let callback = browser.login_at_idp(link, "alice").await;
    let (status, _, body) = browser.get_text(callback.as_str()).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let after = status_json(&w.gw).await;
    let echo = server_line(&after, "default/echo");
    assert_eq!(echo["authorized"], true);
    assert_eq!(echo["needs_authorization"], false);
    assert!(echo["connect_url"].is_null());
    assert_eq!(echo["issuer"], w.idp.issuer());
    assert_eq!(echo["has_refresh_token"], true);
    let expires_at = echo["expires_at"].as_u64().expect("expires_at");
    let now = unix_now();
    assert!(
        expires_at > now && expires_at <= now + 600,
        "expires_at {expires_at} (now {now})"
    );
    assert!(
        echo["scopes"]
            .as_str()
            .expect("scopes")
            .contains("mcp:tools"),
        "{echo}"
    );

    // A browser gets a small HTML page, escaped, not cached.
    let (status, headers, html) =
        get_status(&w.gw, "text/html,application/xhtml+xml,*/*;q=0.8").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/html")
    );
    assert_eq!(headers["cache-control"], "no-store");
    assert!(html.contains("default/echo") && html.contains("refresh token present"));
    assert!(html.contains("no authorization needed"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_link_refuses_unknown_or_malformed_servers() {
    let w = world().await;
    for (query, want) in [
        ("server=default%2Fnope", StatusCode::NOT_FOUND),
        ("server=nonsense", StatusCode::BAD_REQUEST),
        ("", StatusCode::BAD_REQUEST),
    ] {
        let (status, _, _) = Browser::new()
            .get_text(&w.gw.url(&format!("/oauth/start?{query}")))
            .await;
        assert_eq!(status, want, "{query}");
    }
    assert!(!flows_started(&w.gw));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_deletes_this_sessions_tokens_and_revokes_them_at_the_idp() {
    let w = world().await;
    let me = Caller::anonymous();
    login(&w, &w.server, &me, "alice").await;
    let refresh = stored_refresh_token(&w, &me.session).await;
    assert!(
        active_at_idp(&w.idp, &refresh).await,
        "active before sign-out"
    );
    w.idp.reset_stats().await;

    let resp = post_logout(&w.gw, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let report: Value = resp.json().await.expect("report JSON");
    assert_eq!(report["scope"], "session");
    assert_eq!(report["removed"], 1);
    assert!(
        report["revoked"].as_u64().expect("revoked") >= 1,
        "{report}"
    );
    assert_eq!(report["failures"], serde_json::json!([]), "{report}");

    assert_eq!(session_entries(&w, &me.session).await, 0);
    assert!(
        !active_at_idp(&w.idp, &refresh).await,
        "the IdP reports the refresh token revoked"
    );
    assert!(w.idp.stats().await.revocation_requests >= 1);
    let metrics = reqwest::get(w.gw.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains("mcpoauth_token_revocations_total{result=\"ok\"}"),
        "{metrics}"
    );
    let status = status_json(&w.gw).await;
    assert_eq!(
        server_line(&status, "default/echo")["needs_authorization"],
        true
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_everywhere_removes_every_session_of_the_user_and_no_one_else() {
    let w = world().await;
    let alice_1 = Caller::new("alice", "alice-session-1");
    let alice_2 = Caller::new("alice", "alice-session-2");
    let bob = Caller::new("bob", "bob-session-1");
    login(&w, &w.server, &alice_1, "alice").await;
    login(&w, &w.server, &alice_2, "alice").await;
    login(&w, &w.server, &bob, "bob").await;
    let alice_1_refresh = stored_refresh_token(&w, &alice_1.session).await;
    let alice_2_refresh_before = stored_refresh_token(&w, &alice_2.session).await;
    let bob_refresh = stored_refresh_token(&w, &bob.session).await;

    // This session only first: the other session stays.
    let report = w.gw.flows().logout(&alice_2, false).await.expect("logout");
    assert_eq!(report.removed, 1);
    assert_eq!(session_entries(&w, &alice_1.session).await, 1);
    assert!(!active_at_idp(&w.idp, &alice_2_refresh_before).await);
    login(&w, &w.server, &alice_2, "alice").await;
    let alice_2_refresh = stored_refresh_token(&w, &alice_2.session).await;

    let report = w.gw.flows().logout(&alice_1, true).await.expect("logout");
    assert_eq!(report.removed, 2, "{report:?}");
    assert!(report.failures.is_empty(), "{report:?}");
    // Every session of the user is found through the user index and revoked, not just deleted.
    assert_eq!(report.not_revoked, 0, "{report:?}");
    assert_eq!(session_entries(&w, &alice_1.session).await, 0);
    assert_eq!(session_entries(&w, &alice_2.session).await, 0);
    assert_eq!(
        session_entries(&w, &bob.session).await,
        1,
        "bob keeps his token"
    );
    assert!(!active_at_idp(&w.idp, &alice_1_refresh).await);
    assert!(
        !active_at_idp(&w.idp, &alice_2_refresh).await,
        "the other session's grant is revoked too"
    );
    assert!(
        active_at_idp(&w.idp, &bob_refresh).await,
        "bob's grant is untouched"
    );
    let token =
        w.gw.flows()
            .credentials()
            .oauth()
            .get_token(&w.server, &bob)
            .await
            .expect("get_token");
    assert!(token.is_some(), "bob can still use the server");

    // Over HTTP (anonymous identity: user `anonymous`): every session of that user goes.
    let me = Caller::anonymous();
    let other = Caller::new(me.user.clone(), "anonymous-second-session");
    login(&w, &w.server, &me, "carol").await;
    login(&w, &w.server, &other, "carol").await;
    let resp = post_logout(&w.gw, Some("true")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let report: Value = resp.json().await.expect("report");
    assert_eq!(report["scope"], "everywhere");
    assert_eq!(report["removed"], 2, "{report}");
    assert_eq!(session_entries(&w, &me.session).await, 0);
    assert_eq!(session_entries(&w, &other.session).await, 0);
    assert_eq!(session_entries(&w, &bob.session).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_revocation_is_reported_and_the_tokens_are_still_removed() {
    let w = world().await;
    let me = Caller::new("alice", "alice-session-1");
    login(&w, &w.server, &me, "alice").await;
    let World {
        idp,
        mcp: _mcp,
        gw,
        server: _,
    } = w;
    // The gateway has the IdP's metadata cached from the flow; now the IdP goes away.
    idp.stop().await;

    let report = gw.flows().logout(&me, false).await.expect("logout");
    assert_eq!(report.removed, 1);
    assert_eq!(report.revoked, 0);
    assert!(!report.failures.is_empty(), "{report:?}");
    assert_eq!(report.failures[0].token_type, "refresh_token");
    assert!(!report.failures[0].issuer.is_empty());
    assert!(
        gw.token_store()
            .all_for_session(&me.session)
            .await
            .expect("store")
            .is_empty(),
        "deleted locally despite the failure"
    );
    let metrics = gw.server.metrics.encode();
    assert!(
        metrics.contains("mcpoauth_token_revocations_total{result=\"failed\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_by_get_or_from_another_site_does_not_sign_out() {
    let w = world().await;
    let me = Caller::anonymous();
    login(&w, &w.server, &me, "alice").await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    // A GET (what an <img> or a link on another site triggers) only asks for confirmation.
    let resp = client
        .get(w.gw.url("/oauth/logout?everywhere=true"))
        .header("accept", "text/html")
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(csp.contains("form-action 'self'"), "{csp}");
    let page = resp.text().await.expect("page");
    assert!(page.contains("method=\"post\"") && page.contains("value=\"true\""));
    let resp = client
        .get(w.gw.url("/oauth/logout"))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "POST");
    assert_eq!(session_entries(&w, &me.session).await, 1);

    // Cross-site POSTs (a form on another site) are refused.
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let resp = client
            .post(w.gw.url("/oauth/logout"))
            .header(name, value)
            .form(&[("everywhere", "true")])
            .send()
            .await
            .expect("POST");
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{name}: {value}");
    }
    let resp = client
        .post(w.gw.url("/oauth/logout?everywhere=maybe"))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(session_entries(&w, &me.session).await, 1, "still signed in");

    // The confirmation form's own post (same origin) signs out.
    let resp = client
        .post(w.gw.url("/oauth/logout"))
        .header("origin", w.gw.base())
        .header("sec-fetch-site", "same-origin")
        .header("accept", "text/html")
        .form(&[("everywhere", "false")])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.expect("page").contains("Signed out"));
    assert_eq!(session_entries(&w, &me.session).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_server_challenges_with_resource_metadata() {
    let idp = Idp::start(IdpOptions::default()).await;
    let py = PythonMcpServer::start(idp.issuer()).await;
    let resp = reqwest::Client::new()
        .post(py.url())
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .expect("POST without a token");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .expect("header")
        .to_owned();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"{}\"",
            py.resource_metadata_url()
        )),
        "{challenge}"
    );
    let prm: Value = reqwest::get(py.resource_metadata_url())
        .await
        .expect("PRM")
        .json()
        .await
        .expect("PRM JSON");
    assert_eq!(prm["resource"], py.url());
    assert_eq!(
        prm["authorization_servers"],
        serde_json::json!([idp.issuer()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_server_works_as_an_oauth_upstream() {
    let idp = Idp::start(IdpOptions::default()).await;
    let py = PythonMcpServer::start(idp.issuer()).await;
    let gw = Gateway::start().await;
    let server = gw.register_oauth("py", py.url());
    let alice = alice();

    assert!(
        gw.flows()
            .credentials()
            .oauth()
            .get_token(&server, &alice)
            .await
            .expect("get_token")
            .is_none(),
        "no token before the login"
    );
    let (browser, callback) = start_login(gw.flows(), &server, &alice, "alice").await;
    let (status, _, body) = browser.get_text(callback.as_str()).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let token = gw
        .flows()
        .credentials()
        .oauth()
        .get_token(&server, &alice)
        .await
        .expect("get_token")
        .expect("a token after the login");
    assert_eq!(token.issuer(), idp.issuer());
    let value = token.value.expose_secret();
    assert_eq!(whoami(py.url(), value).await, "alice");
    assert_eq!(
        call_tool(py.url(), value, "echo", serde_json::json!({"text": "hi"})).await,
        "alice: hi"
    );

    // Sign-out revokes the grant: the Python server's token is from it, and the status flips.
    let report = gw.flows().logout(&alice, false).await.expect("logout");
    assert_eq!(report.removed, 1);
    assert!(report.failures.is_empty(), "{report:?}");
    assert!(
        gw.flows()
            .credentials()
            .oauth()
            .get_token(&server, &alice)
            .await
            .expect("get_token")
            .is_none()
    );
}

/// A request to the gateway endpoint of `default/echo` with `headers` and a `text/plain` body (a
/// form any site can post without CORS); returns the status and the body.
async fn post_mcp(gw: &Gateway, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let mut req = reqwest::Client::new()
        .post(gw.mcp_url("echo"))
        .header("content-type", "text/plain")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("POST /mcp");
    (resp.status(), resp.text().await.expect("body"))
}

/// Issue 12 point 3: a page on another site, or a DNS-rebinding name, gets nothing from the
/// endpoints that act with the caller's credentials, and the upstream sees no request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_and_foreign_host_requests_never_reach_the_upstream() {
    let w = world().await;
    login(&w, &w.server, &Caller::anonymous(), "alice").await;
    let before = w.mcp.stats().await.mcp_requests;
    let rebinding = format!("rebind.evil.example:{}", w.gw.server.local_addr.port());
    for headers in [
        vec![
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ],
        vec![("origin", "null")],
        vec![
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "no-cors"),
        ],
        vec![("sec-fetch-site", "same-site"), ("sec-fetch-mode", "cors")],
        vec![
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "navigate"),
        ],
        vec![("host", "evil.example")],
        vec![("host", rebinding.as_str())],
    ] {
        let (status, body) = post_mcp(&w.gw, &headers).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{headers:?}: {body}");
        let v: Value = serde_json::from_str(&body).expect("JSON-RPC error");
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["error"]["code"], -32600, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("refused")),
            "{v}"
        );
    }
    assert_eq!(
        w.mcp.stats().await.mcp_requests,
        before,
        "no refused request reached the upstream"
    );
    // The same request from the gateway's own origin (or a non-browser client) goes through.
    let base = w.gw.base();
    let (status, body) = post_mcp(&w.gw, &[("origin", base.as_str())]).await;
    assert_ne!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        w.mcp.stats().await.mcp_requests > before,
        "control reached the upstream"
    );

    // The status page (it names the caller and their servers) is not served to another host.
    let http = reqwest::Client::new();
    let resp = http
        .get(w.gw.url("/oauth/status"))
        .header("host", "evil.example")
        .send()
        .await
        .expect("status");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body = resp.text().await.expect("body");
    assert!(!body.contains("default/echo"), "{body}");
    let resp = http
        .get(w.gw.url("/oauth/status"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("status");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // Probes keep working whatever Host they send.
    let resp = http
        .get(w.gw.url("/healthz"))
        .header("host", "10.0.0.7:8080")
        .send()
        .await
        .expect("healthz");
    assert_eq!(resp.status(), StatusCode::OK);
}

/// `--allowed-origins` and `--allowed-hosts` widen the checks, and nothing else does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_origins_and_hosts_are_settings() {
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let gw = Gateway::start_with(&[
        "--allowed-origins",
        "https://portal.example,https://other.example/",
        "--allowed-hosts",
        "gateway.team.svc:8080",
    ])
    .await;
    gw.register_oauth("echo", mcp.url());
    for headers in [
        vec![
            ("origin", "https://portal.example"),
            ("sec-fetch-site", "cross-site"),
        ],
        vec![("origin", "https://other.example")],
        vec![("host", "gateway.team.svc:8080")],
    ] {
        let (status, body) = post_mcp(&gw, &headers).await;
        assert_ne!(status, StatusCode::FORBIDDEN, "{headers:?}: {body}");
    }
    for headers in [
        vec![("origin", "https://evil.example")],
        vec![("host", "gateway.team.svc:9090")],
    ] {
        let (status, body) = post_mcp(&gw, &headers).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{headers:?}: {body}");
    }
    let bad = mcp_oauth_operator::app::start(
        &server_args(&["--allowed-origins", "https://portal.example/path"]).app_config(),
        mcp_oauth_operator::app::Registrations::Programmatic,
    )
    .await;
    assert!(
        bad.is_err(),
        "an origin with a path is a configuration error"
    );
}

/// `GET /oauth/start` followed from another site starts nothing: the user confirms on a
/// gateway page whose form posts back same-origin. Cross-site posts and no-cors loads are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_from_another_site_needs_a_confirmation_on_the_gateway() {
    let w = world().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let url = w.gw.url("/oauth/start?server=default/echo");

    let resp = http
        .get(&url)
        .header("accept", "text/html")
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(csp.contains("form-action 'self'"), "{csp}");
    let page = resp.text().await.expect("page");
    assert!(page.contains("method=\"post\""), "{page}");
    assert!(
        page.contains(&format!("action=\"{}\"", w.gw.url("/oauth/start"))),
        "{page}"
    );
    assert!(
        page.contains("name=\"server\" value=\"default/echo\""),
        "{page}"
    );
    assert!(!flows_started(&w.gw), "a followed link started nothing");

    let resp = http
        .get(&url)
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "no-cors")
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = http
        .post(w.gw.url("/oauth/start"))
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .form(&[("server", "default/echo")])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(!flows_started(&w.gw), "cross-site requests started nothing");

    // The confirmation's own post starts the flow.
    let resp = http
        .post(w.gw.url("/oauth/start"))
        .header("origin", w.gw.base())
        .header("sec-fetch-site", "same-origin")
        .form(&[("server", "default/echo")])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to = location(&resp);
    assert!(to.starts_with(&w.gw.url("/oauth/connect?flow=")), "{to}");
    assert!(flows_started(&w.gw));
}
