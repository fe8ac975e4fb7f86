//! HTTPS through the process's one shared TLS configuration (the platform trust store, loaded
//! once at start-up), used by the proxy's upstream connector and by the outbound client (here
//! its JWKS fetch): the real binary reaches HTTPS endpoints whose certificates chain to the
//! system roots — a test CA named by `SSL_CERT_FILE`, which the platform store honours — and
//! refuses those it cannot verify.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use testkit::certs::make_certs;
use testkit::node::NodeProcess;
use testkit::{EverythingServer, Idp, IdpOptions, free_port};
use tokio::process::{Child, Command};

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"tls-test","version":"1"}}}"#;

/// `serve` with one open server at `upstream`, trusting `ca` as the system roots when given.
async fn gateway(dir: &Path, upstream: &str, ca: Option<&Path>, extra: &[&str]) -> (Child, String) {
    let manifests = tempfile::tempdir_in(dir).expect("manifest dir").keep();
    std::fs::write(
        manifests.join("server.yaml"),
        format!(
            "apiVersion: mcpoauth.dev/v1alpha1\nkind: RemoteMCPServer\nmetadata:\n  name: everything\n  namespace: tls\nspec:\n  url: {upstream}\n  auth:\n    mode: none\n"
        ),
    )
    .expect("manifest");
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-oauth-operator"));
    cmd.args(["serve", "--manifests"])
        .arg(&manifests)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env_remove("RUST_LOG")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(manifests.join("gateway.log")).expect("log file"))
        .kill_on_drop(true);
    if let Some(ca) = ca {
        cmd.env("SSL_CERT_FILE", ca);
    }
    let child = cmd.spawn().expect("start the gateway");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not become ready: {}",
            std::fs::read_to_string(manifests.join("gateway.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, format!("{base}/mcp/tls/everything"))
}

async fn initialize(url: &str, bearer: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().post(url);
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    let resp = req
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INITIALIZE)
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_are_verified_against_the_platform_roots() {
    let dir = tempfile::tempdir().expect("temp dir");
    make_certs(dir.path());
    let everything = EverythingServer::start().await;
    let origin = {
        let mut u = url::Url::parse(everything.url()).expect("url");
        u.set_path("");
        u.as_str().trim_end_matches('/').to_owned()
    };
    let front = https_front("https-front", dir.path(), &origin).await;
    let upstream = format!("{}/mcp", front.ready_value());
    assert!(upstream.starts_with("https://"), "{upstream}");

    // The test CA is the platform's root store: the upstream is verified and reached.
    let ca = dir.path().join("ca.crt");
    let (mut trusted, url) = gateway(dir.path(), &upstream, Some(&ca), &[]).await;
    let (status, body) = initialize(&url, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("serverInfo"), "{body}");
    trusted.kill().await.expect("stop");

    // The system's own roots do not know the test CA: refused, and the client is told why.
    let (mut untrusted, url) = gateway(dir.path(), &upstream, None, &[]).await;
    let (status, body) = initialize(&url, None).await;
    assert_eq!(status, 502, "{body}");
    assert!(!body.contains("serverInfo"), "{body}");
    assert!(body.to_lowercase().contains("certificate"), "{body}");
    untrusted.kill().await.expect("stop");
    front.stop().await;
}

/// An HTTPS front (no client certificate) for `origin`, with the test CA's server certificate.
async fn https_front(name: &'static str, dir: &Path, origin: &str) -> NodeProcess {
    let file = |n: &str| dir.join(n).to_string_lossy().into_owned();
    NodeProcess::start(
        name,
        &["mtls-proxy.mjs"],
        &[
            ("TARGET", origin.trim_end_matches('/').to_owned()),
            ("CERT_FILE", file("server.crt")),
            ("KEY_FILE", file("server.key")),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwks_is_fetched_over_https_with_the_platform_roots() {
    let dir = tempfile::tempdir().expect("temp dir");
    make_certs(dir.path());
    let idp = Idp::start(IdpOptions::default()).await;
    let mut origin = url::Url::parse(idp.issuer()).expect("issuer");
    origin.set_path("");
    let idp_front = https_front("idp-front", dir.path(), origin.as_str()).await;
    let jwks = format!("{}/jwks", idp_front.ready_value());
    let everything = EverythingServer::start().await;
    let oidc = [
        "--identity",
        "oidc",
        "--oidc-issuer",
        idp.issuer(),
        "--oidc-jwks-uri",
        jwks.as_str(),
    ];

    let ca = dir.path().join("ca.crt");
    let (mut trusted, url) = gateway(dir.path(), everything.url(), Some(&ca), &oidc).await;
    let token = idp.user_access_token("alice", &url).await;
    let (status, body) = initialize(&url, Some(&token)).await;
    assert_eq!(status, 200, "the JWKS came over verified HTTPS: {body}");
    assert!(body.contains("serverInfo"), "{body}");
    trusted.kill().await.expect("stop");

    // Without the CA the JWKS cannot be fetched, so no token can be checked: refused.
    let (mut untrusted, url) = gateway(dir.path(), everything.url(), None, &oidc).await;
    let token = idp.user_access_token("alice", &url).await;
    let (status, body) = initialize(&url, Some(&token)).await;
    assert_ne!(status, 200, "{body}");
    assert!(!body.contains("serverInfo"), "{body}");
    untrusted.kill().await.expect("stop");
    idp_front.stop().await;
}
