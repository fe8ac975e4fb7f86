//! Captures every log line (TRACE, all crates) of a complete flow and a refresh, and asserts
//! that no token, authorization code, PKCE verifier, state/flow id or cookie secret appears,
//! and that session ids appear only truncated.

use mcp_oauth_operator::store::FlowId;
use secrecy::ExposeSecret as _;
use std::io::Write;
use std::sync::{Arc, Mutex};
use testkit::gateway::*;
use testkit::{Browser, Idp, IdpOptions, McpServer};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_the_logs_of_a_full_flow_and_refresh() {
    let capture = Capture::default();
    tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(capture.clone())
        .with_ansi(false)
        .init();

    let idp = Idp::start(IdpOptions {
        access_token_ttl: Some(2),
        ..Default::default()
    })
    .await;
    let mcp = McpServer::start(idp.issuer()).await;
    let gw = Gateway::start_with(&["--refresh-margin-secs", "1"]).await;
    let server = gw.register_oauth("echo", mcp.url());
    let caller = alice();

    let challenge = gw
        .flows()
        .create_auth_challenge(&server, &caller, None)
        .await
        .expect("challenge");
    let browser = Browser::new();
    let callback = browser.login_at_idp(&challenge.auth_url, "alice").await;
    let state = query_param(&callback, "state").expect("state");
    let code = query_param(&callback, "code").expect("code");
    let flow = gw
        .flow_store()
        .get(&FlowId::parse(&state).expect("id"))
        .await
        .expect("get")
        .expect("pending");
    let verifier = flow
        .pkce_verifier
        .expect("bound")
        .expose_secret()
        .to_owned();
    let cookie = browser
        .cookies_for(&gw.url("/oauth/callback"))
        .expect("cookie");
    let cookie_secret = cookie.split('=').nth(1).expect("cookie value").to_owned();
    let (status, _, _) = browser.get_text(callback.as_str()).await;
    assert_eq!(status, reqwest::StatusCode::OK);

    let (_, first) = gw
        .token_store()
        .only_token_from(&caller.session, idp.issuer())
        .await
        .expect("store")
        .expect("token");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let refreshed = gw
        .flows()
        .credentials()
        .oauth()
        .get_token(&server, &caller)
        .await
        .expect("get")
        .expect("refreshed");
    let (_, second) = gw
        .token_store()
        .only_token_from(&caller.session, idp.issuer())
        .await
        .expect("store")
        .expect("token");
    assert_ne!(
        refreshed.value.expose_secret(),
        first.access_token.expose_secret()
    );
    // Make sure a failing path is logged too.
    let (status, _, _) = browser.get_text(callback.as_str()).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    gw.shutdown().await;

    let logs = String::from_utf8(capture.0.lock().expect("lock").clone()).expect("utf8");
    assert!(
        logs.contains("authorization completed"),
        "capture works: {}",
        &logs[..logs.len().min(2000)]
    );
    assert!(
        logs.contains("access token refreshed"),
        "refresh was logged"
    );

    let mut secrets = vec![
        ("authorization code", code),
        ("PKCE verifier", verifier),
        ("state / flow id", state),
        ("browser cookie secret", cookie_secret),
        (
            "first access token",
            first.access_token.expose_secret().to_owned(),
        ),
        (
            "second access token",
            second.access_token.expose_secret().to_owned(),
        ),
        ("full session id", caller.session.clone()),
    ];
    if let Some(rt) = &first.refresh_token {
        secrets.push(("first refresh token", rt.expose_secret().to_owned()));
    }
    if let Some(rt) = &second.refresh_token {
        secrets.push(("second refresh token", rt.expose_secret().to_owned()));
    }
    for (what, value) in &secrets {
        assert!(value.len() >= 8, "{what} is long enough to search for");
        assert!(
            !logs.contains(value.as_str()),
            "the {what} appears in the logs"
        );
    }
    // A JWT's signature part alone must not leak either.
    let sig = first
        .access_token
        .expose_secret()
        .rsplit('.')
        .next()
        .expect("sig")
        .to_owned();
    assert!(
        !logs.contains(&sig),
        "access token signature appears in the logs"
    );
    assert!(
        logs.contains(&caller.session[..8]),
        "session ids are logged truncated"
    );
}
