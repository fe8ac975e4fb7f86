//! The gateway on the Valkey store, as operators run it: fail-closed start-up, readiness that
//! follows Valkey, two replicas sharing one Valkey (a flow started on one completes on the
//! other, a browser sign-in too; one refresh for both; a dead lease holder delays a refresh by
//! at most its lease), and key rotation with the `rotate-keys` command. Real Valkey, real IdP,
//! real MCP server.

use base64::Engine as _;
use mcp_oauth_operator::app::{self, Registrations};
use mcp_oauth_operator::store::RefreshLock as _;
use mcp_oauth_operator::store::sealed::Sealing;
use mcp_oauth_operator::store::valkey::ValkeyStores;
use rand::RngCore as _;
use reqwest::StatusCode;
use secrecy::ExposeSecret as _;
use std::path::Path;
use std::time::{Duration, Instant};
use testkit::gateway::*;
use testkit::valkey::{Valkey, random_prefix};
use testkit::{Browser, Idp, IdpOptions, McpServer};

fn key_b64() -> String {
    let mut k = [0u8; 32];
    rand::rng().fill_bytes(&mut k);
    base64::engine::general_purpose::STANDARD.encode(k)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write key file");
    p.to_str().expect("utf8 path").to_owned()
}

/// A one-key ring file (`primary: k1`, a random `k1`) in `dir`.
fn key_ring_file(dir: &Path) -> String {
    write(dir, "ring", &format!("primary: k1\nk1: {}\n", key_b64()))
}

fn valkey_flags<'a>(url: &'a str, prefix: &'a str, key_file: &'a str) -> Vec<&'a str> {
    vec![
        "--store",
        "valkey",
        "--valkey-url",
        url,
        "--valkey-key-prefix",
        prefix,
        "--encryption-key-file",
        key_file,
        "--valkey-command-timeout-ms",
        "1000",
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valkey_without_a_key_or_with_a_bad_key_does_not_start() {
    let valkey = Valkey::shared();
    let url = valkey.url();
    let dir = tempfile::tempdir().expect("tempdir");

    let args = server_args(&["--store", "valkey", "--valkey-url", &url]);
    let err = app::start(&args.app_config(), Registrations::Programmatic)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("--encryption-key-file"), "{err}");

    let short = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
    let bad = write(dir.path(), "bad", &format!("primary: k1\nk1: {short}\n"));
    let args = server_args(&[
        "--store",
        "valkey",
        "--valkey-url",
        &url,
        "--encryption-key-file",
        &bad,
    ]);
    let err = app::start(&args.app_config(), Registrations::Programmatic)
        .await
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("k1") && text.contains("32"),
        "names the key id and the length: {text}"
    );
    assert!(!text.contains(&short), "never the key material");

    let missing = dir.path().join("nope").to_str().expect("path").to_owned();
    let args = server_args(&[
        "--store",
        "valkey",
        "--valkey-url",
        &url,
        "--encryption-key-file",
        &missing,
    ]);
    assert!(
        app::start(&args.app_config(), Registrations::Programmatic)
            .await
            .is_err(),
        "a missing key file is fatal"
    );

    let args = server_args(&[
        "--store",
        "valkey",
        "--valkey-url",
        &url,
        "--valkey-allow-plaintext",
    ]);
    let gw = app::start(&args.app_config(), Registrations::Programmatic)
        .await
        .expect("explicit opt-in starts");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_valkey_and_the_server_never_exits() {
    let port = testkit::free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = write(dir.path(), "key", &key_b64());
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = random_prefix();
    let gw = Gateway::start_with(&valkey_flags(&url, &prefix, &key)).await;
    let readyz = || async {
        let r = reqwest::get(gw.url("/readyz")).await.expect("readyz");
        (r.status(), r.text().await.expect("body"))
    };
    let (status, body) = readyz().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("Valkey"), "{body}");

    let _valkey = Valkey::start_on(port);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = readyz().await;
        if status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "never became ready: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    gw.shutdown().await;
}

struct Replicas {
    idp: Idp,
    mcp: McpServer,
    a: Gateway,
    b: Gateway,
    prefix: String,
    key_file: String,
    _dir: tempfile::TempDir,
}

async fn replicas(ttl: u64) -> Replicas {
    let valkey = Valkey::shared();
    let idp = Idp::start(IdpOptions {
        access_token_ttl: Some(ttl),
        ..Default::default()
    })
    .await;
    let mcp = McpServer::start(idp.issuer()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = key_ring_file(dir.path());
    let prefix = random_prefix();
    let url = valkey.url();
    let mut flags = valkey_flags(&url, &prefix, &key_file);
    flags.extend(["--refresh-margin-secs", "1"]);
    // Replica A and B behind one public URL: B's public URL is A's, as behind a load balancer.
    let a = Gateway::start_with(&flags).await;
    let public = a.base();
    flags.extend(["--public-url", &public]);
    let b = Gateway::start_with(&flags).await;
    for gw in [&a, &b] {
        gw.register_oauth("echo", mcp.url());
    }
    Replicas {
        idp,
        mcp,
        a,
        b,
        prefix,
        key_file,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_started_on_one_replica_completes_on_the_other() {
    let r = replicas(600).await;
    let server = mcp_oauth_operator::registry::ServerKey::new("default", "echo");
    let (browser, callback) = start_login(r.a.flows(), &server, &alice(), "alice").await;
    // The load balancer sends the callback to B.
    let on_b = callback.as_str().replace(&r.a.base(), &r.b.base());
    let (status, _, body) = browser.get_text(&on_b).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A uses the token B stored.
    let token =
        r.a.flows()
            .credentials()
            .oauth()
            .get_token(&server, &alice())
            .await
            .expect("get")
            .expect("token from B");
    let who = whoami(r.mcp.url(), token.value.expose_secret()).await;
    assert_eq!(who, "alice");
    // Replay on A fails: the flow was consumed in Valkey.
    let (status, _, _) = browser.get_text(callback.as_str()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Nothing readable in Valkey.
    let raw = Valkey::shared().raw().await;
    for key in raw.keys(&format!("{}*", r.prefix)).await {
        if key.contains(":oauth:token:") {
            for (_, v) in raw.hgetall(&key).await {
                assert!(!String::from_utf8_lossy(&v).contains(token.value.expose_secret()));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_one_replica_refreshes_an_expiring_token() {
    let r = replicas(3).await;
    let server = mcp_oauth_operator::registry::ServerKey::new("default", "echo");
    let (browser, cb) = start_login(r.a.flows(), &server, &alice(), "alice").await;
    assert_eq!(browser.get_text(cb.as_str()).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let before = r.idp.stats().await.token_requests;
    let mut calls = Vec::new();
    for gw in [&r.a, &r.b] {
        for _ in 0..4 {
            let m = gw.flows().clone();
            let server = server.clone();
            calls.push(tokio::spawn(async move {
                m.credentials().oauth().get_token(&server, &alice()).await
            }));
        }
    }
    let mut values = Vec::new();
    for c in futures::future::join_all(calls).await {
        let t = c.expect("join").expect("get_token").expect("token");
        values.push(t.value.expose_secret().to_owned());
    }
    assert_eq!(
        r.idp.stats().await.token_requests - before,
        1,
        "one refresh across both replicas"
    );
    assert!(
        values.iter().all(|v| v == &values[0]),
        "everyone got the refreshed token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lease_holder_delays_a_refresh_by_at_most_its_lease() {
    let r = replicas(3).await;
    let server = mcp_oauth_operator::registry::ServerKey::new("default", "echo");
    let (browser, cb) = start_login(r.a.flows(), &server, &alice(), "alice").await;
    assert_eq!(browser.get_text(cb.as_str()).await.0, StatusCode::OK);
    let (key, _) =
        r.a.token_store()
            .only_token_from(&alice().session, r.idp.issuer())
            .await
            .expect("store")
            .expect("token");

    // Another "replica" takes the lease and dies without releasing it.
    let ring = mcp_oauth_operator::crypto::KeyRing::load(Path::new(&r.key_file)).expect("ring");
    let mut cfg =
        mcp_oauth_operator::store::valkey::ValkeyConfig::new(vec![Valkey::shared().url()]);
    cfg.key_prefix = r.prefix.clone();
    let other = ValkeyStores::from_config(&cfg, Sealing::Encrypted(ring))
        .await
        .expect("stores");
    let lease = Duration::from_secs(2);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        other
            .lock
            .try_acquire(&key, lease)
            .await
            .expect("lock")
            .is_some()
    );
    let start = Instant::now();
    let t =
        r.a.flows()
            .credentials()
            .oauth()
            .get_token(&server, &alice())
            .await
            .expect("get")
            .expect("refreshed");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(1000),
        "waited for the lease: {waited:?}"
    );
    assert!(
        waited <= lease + Duration::from_millis(1500),
        "not longer than the lease: {waited:?}"
    );
    let who = whoami(r.mcp.url(), t.value.expose_secret()).await;
    assert_eq!(who, "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_keys_reencrypts_everything_and_reports_missing_keys() {
    let r = replicas(600).await;
    let server = mcp_oauth_operator::registry::ServerKey::new("default", "echo");
    let (browser, cb) = start_login(r.a.flows(), &server, &alice(), "alice").await;
    assert_eq!(browser.get_text(cb.as_str()).await.0, StatusCode::OK);

    let old = std::fs::read_to_string(&r.key_file).expect("ring");
    let k1 = old
        .lines()
        .find_map(|l| l.strip_prefix("k1: "))
        .expect("k1")
        .to_owned();
    let k2 = key_b64();
    let dir = tempfile::tempdir().expect("tempdir");
    let both = write(
        dir.path(),
        "both",
        &format!("primary: k2\nk1: {k1}\nk2: {k2}\n"),
    );
    let only_new = write(dir.path(), "new", &format!("primary: k2\nk2: {k2}\n"));
    let url = Valkey::shared().url();
    let run = |ring: String| {
        let url = url.clone();
        let prefix = r.prefix.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-oauth-operator"))
                .args([
                    "rotate-keys",
                    "--valkey-url",
                    &url,
                    "--valkey-key-prefix",
                    &prefix,
                    "--encryption-key-file",
                    &ring,
                    "--log-format",
                    "json",
                ])
                .env_remove("RUST_LOG")
                .output()
                .await
                .expect("run rotate-keys")
        }
    };
    // Only the new key: the old value cannot be read -> reported, exit code 2, nothing lost.
    let out = run(only_new.clone()).await;
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(
        log.contains("\"key_id\":\"k1\""),
        "names the missing key id: {log}"
    );
    assert!(
        !log.contains(&k1) && !log.contains(&k2),
        "no key material in logs"
    );
    // Old and new: everything re-encrypted under k2.
    let out = run(both).await;
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{log}");
    assert!(log.contains("key-rotation sweep finished"), "{log}");
    // Now a replica with only k2 reads the token.
    let mut flags = valkey_flags(&url, &r.prefix, &only_new);
    let public = r.a.base();
    flags.extend(["--public-url", &public]);
    let c = Gateway::start_with(&flags).await;
    c.register_oauth("echo", r.mcp.url());
    let t = c
        .flows()
        .credentials()
        .oauth()
        .get_token(&server, &alice())
        .await
        .expect("get")
        .expect("token survives rotation");
    let who = whoami(r.mcp.url(), t.value.expose_secret()).await;
    assert_eq!(who, "alice");
    let metrics = reqwest::get(c.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    assert!(
        metrics.contains("mcpoauth_store_rewrapped_total"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valkey_restart_mid_flow_fails_clearly_then_recovers() {
    let mut valkey = Valkey::start();
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = write(dir.path(), "key", &key_b64());
    let url = valkey.url();
    let prefix = random_prefix();
    let gw = Gateway::start_with(&valkey_flags(&url, &prefix, &key)).await;
    let server = gw.register_oauth("echo", mcp.url());
    let (browser, callback) = start_login(gw.flows(), &server, &alice(), "alice").await;

    valkey.stop();
    let started = Instant::now();
    let (status, _, body) = browser.get_text(callback.as_str()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(!body.contains("Authorization complete"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the command timeout"
    );

    valkey.restart();
    // The same process, no restart: the next flow works end to end.
    let deadline = Instant::now() + Duration::from_secs(10);
    let challenge = loop {
        match gw
            .flows()
            .create_auth_challenge(&server, &alice(), None)
            .await
        {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for the reconnect: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no recovery after the restart: {e}"),
        }
    };
    let browser = Browser::new();
    let callback = browser.login_at_idp(&challenge.auth_url, "alice").await;
    let (status, _, body) = browser.get_text(callback.as_str()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let t = gw
        .flows()
        .credentials()
        .oauth()
        .get_token(&server, &alice())
        .await
        .expect("get")
        .expect("token");
    assert_eq!(whoami(mcp.url(), t.value.expose_secret()).await, "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_valkey_with_the_configured_ca_and_not_without() {
    let valkey = Valkey::start_tls();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = write(dir.path(), "key", &key_b64());
    let url = valkey.url();
    let ca = valkey.ca_file().to_str().expect("path").to_owned();
    let prefix = random_prefix();
    let wait_ready = |gw: &Gateway, want_ok: bool| {
        let url = gw.url("/readyz");
        async move {
            let deadline = Instant::now() + Duration::from_secs(12);
            loop {
                let r = reqwest::get(&url).await.expect("readyz");
                let status = r.status();
                let body = r.text().await.expect("body");
                if (status == StatusCode::OK) == want_ok {
                    return body;
                }
                assert!(Instant::now() < deadline, "readyz stayed {status}: {body}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    let mut flags = valkey_flags(&url, &prefix, &key);
    flags.extend(["--valkey-tls-ca-file", &ca]);
    let ok = Gateway::start_with(&flags).await;
    wait_ready(&ok, true).await;
    ok.shutdown().await;

    let untrusted = Gateway::start_with(&valkey_flags(&url, &prefix, &key)).await;
    let body = wait_ready(&untrusted, false).await;
    assert!(body.contains("Valkey"), "{body}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let r = reqwest::get(untrusted.url("/readyz"))
        .await
        .expect("readyz");
    assert_eq!(
        r.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "an unknown CA is never trusted"
    );
}

/// Browser sign-in (`oidc` identity with `--oidc-client-id`) keeps nothing in the replica: a
/// sign-in started on A is answered on B, which sends the browser on to the remote
/// authorization server; the token that flow stores serves the user's calls on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_sign_in_started_on_one_replica_completes_on_the_other() {
    let valkey = Valkey::shared();
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = key_ring_file(dir.path());
    let secret_file = write(
        dir.path(),
        "client-secret",
        testkit::idp::CONFIDENTIAL_CLIENT_SECRET,
    );
    let prefix = random_prefix();
    let url = valkey.url();
    let mut flags = valkey_flags(&url, &prefix, &key_file);
    flags.extend(sign_in_flags(idp.issuer(), &secret_file));
    let a = Gateway::start_with(&flags).await;
    let public = a.base();
    flags.extend(["--public-url", &public]);
    let b = Gateway::start_with(&flags).await;
    for gw in [&a, &b] {
        gw.register_oauth("echo", mcp.url());
    }
    let bearer = idp.user_access_token("alice", &a.mcp_url("echo")).await;

    let (_, body) = call_whoami(&a.mcp_url("echo"), &bearer).await;
    let link = body["result"]["structuredContent"]["auth_url"]
        .as_str()
        .unwrap_or_else(|| panic!("a challenge: {body}"))
        .to_owned();
    let browser = Browser::new();
    let sign_in = browser.login_at_idp(&link, "alice").await;
    // The load balancer sends the sign-in answer to B.
    let on_b = sign_in.as_str().replace(&a.base(), &b.base());
    let onward = browser.get(&on_b).await;
    assert_eq!(
        onward.status(),
        StatusCode::FOUND,
        "B goes on after the sign-in"
    );
    let remote = location(&onward);
    let callback = browser.login_at_idp(&remote, "alice").await;
    let (status, _, page) = browser.get_text(callback.as_str()).await;
    assert_eq!(status, StatusCode::OK, "{page}");

    for gw in [&a, &b] {
        let (status, body) = call_whoami(&gw.mcp_url("echo"), &bearer).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body["result"]["content"][0]["text"], "alice",
            "alice reaches the server as alice: {body}"
        );
    }
    a.shutdown().await;
    b.shutdown().await;
}
