//! `exchange` mode end to end: with `oidc` identity, the caller's token is exchanged (RFC 8693)
//! at a remote identity provider per a `TokenExchangePolicy`, and the issued token reaches a
//! remote MCP server that accepts only tokens for its own audience.
//! Real parts: node-oidc-provider with its token-exchange grant, the TypeScript-SDK MCP server
//! (`whoami` names the token's user), and for mutual TLS an HTTPS proxy requiring a client
//! certificate in front of the IdP's token endpoint.

use mcp_oauth_operator::credentials::exchange::ExchangeCounts;
use mcp_oauth_operator::identity::Caller;
use mcp_oauth_operator::registry::{
    AuthSettings, ClientAuthMethod, ExchangeSettings, PolicyClientAuth, PolicyRegistration,
    ServerKey, ServerRegistration, SubjectTokenType,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::time::Duration;
use testkit::certs::make_certs;
use testkit::gateway::{Gateway, call_whoami};
use testkit::idp::{CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, PUBLIC_CLIENT_ID};
use testkit::node::NodeProcess;
use testkit::{Idp, IdpOptions, McpServer};
use url::Url;

/// The audience of the callers' tokens for the gateway itself.
const GATEWAY_AUDIENCE: &str = "http://127.0.0.1/gateway";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

async fn gateway(idp: &Idp, extra: &[&str]) -> Gateway {
    let mut flags = vec![
        "--identity",
        "oidc",
        "--oidc-issuer",
        idp.issuer(),
        "--oidc-audience",
        GATEWAY_AUDIENCE,
    ];
    flags.extend_from_slice(extra);
    Gateway::start_with(&flags).await
}

/// A policy exchanging access tokens at `token_endpoint` for tokens for `resource`, as the
/// IdP's confidential client (HTTP Basic).
fn policy(
    name: &str,
    token_endpoint: &str,
    expected_issuer: &str,
    resource: &str,
) -> PolicyRegistration {
    PolicyRegistration {
        key: ServerKey::new("default", name),
        token_endpoint: Url::parse(token_endpoint).expect("token endpoint"),
        expected_issuer: expected_issuer.to_owned(),
        connector_id: None,
        audience: None,
        resource: Some(resource.to_owned()),
        scopes: vec!["mcp:tools".to_owned()],
        subject_token_type: SubjectTokenType::AccessToken,
        requested_token_type: Some(ACCESS_TOKEN_TYPE.to_owned()),
        client_auth: Some(PolicyClientAuth::Secret {
            client_id: CONFIDENTIAL_CLIENT_ID.to_owned(),
            client_secret: SecretString::from(CONFIDENTIAL_CLIENT_SECRET.to_owned()),
            method: ClientAuthMethod::Basic,
        }),
        allow_private_networks: true,
        generation: 1,
        // As the controller registers a policy after checking its endpoint; the gateway's own
        // check (`serve --manifests`) is tested in
        // `an_unverified_token_endpoint_gets_no_token_until_its_issuer_vouches_for_it`.
        endpoint_verified: true,
    }
}

/// Registers `policy` and a server `default/<name>` at `mcp_url` using it.
fn register(gw: &Gateway, name: &str, mcp_url: &str, policy: PolicyRegistration) {
    let policy_name = policy.key.name.clone();
    gw.registry().upsert_policy(policy);
    gw.registry().upsert_server(ServerRegistration {
        key: ServerKey::new("default", name),
        url: Url::parse(mcp_url).expect("server url"),
        auth: AuthSettings::Exchange(ExchangeSettings {
            policy: policy_name,
        }),
        generation: 1,
        forward_headers: Vec::new(),
    });
}

/// The mTLS proxy's counters (`GET /test/stats`), fetched with the test client certificate
/// (`read` gives the PEM files of the test CA directory).
async fn proxy_stats(proxy: &NodeProcess, read: &impl Fn(&str) -> String) -> Value {
    reqwest::Client::builder()
        .tls_certs_merge([reqwest::Certificate::from_pem(read("ca.crt").as_bytes()).expect("ca")])
        .identity(
            reqwest::Identity::from_pem(
                format!("{}{}", read("client.crt"), read("client.key")).as_bytes(),
            )
            .expect("identity"),
        )
        .build()
        .expect("client")
        .get(format!("{}/test/stats", proxy.ready_value()))
        .send()
        .await
        .expect("proxy stats")
        .json()
        .await
        .expect("stats JSON")
}

/// `whoami` through the gateway must succeed and name `alice`.
async fn assert_alice(url: &str, bearer: &str) {
    let (status, body) = call_whoami(url, bearer).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    assert_eq!(body["result"]["content"][0]["text"], "alice", "{body}");
}

/// The JSON-RPC error message of a refused call, after checking its status.
async fn refused(url: &str, bearer: &str, status: reqwest::StatusCode) -> String {
    let (got, body) = call_whoami(url, bearer).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["id"], 3, "{body}");
    let message = body["error"]["message"]
        .as_str()
        .expect("error message")
        .to_owned();
    assert!(
        !message.contains(bearer),
        "the caller's token is never echoed"
    );
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_reaches_the_server_as_the_user_and_is_cached_until_near_expiry() {
    // Exchanged tokens live 33 s; with the 30 s margin the cache serves them for 3 s.
    let idp = Idp::start(IdpOptions {
        exchange_token_ttl: Some(33),
        ..IdpOptions::default()
    })
    .await;
    let mcp = McpServer::start(idp.issuer()).await;
    let gw = gateway(&idp, &[]).await;
    register(
        &gw,
        "ex",
        mcp.url(),
        policy("idp-b", &idp.token_endpoint(), idp.issuer(), mcp.url()),
    );
    let policy_key = ServerKey::new("default", "idp-b");
    let subject = idp.user_access_token("alice", GATEWAY_AUDIENCE).await;
    idp.reset_stats().await;

    // A token for the gateway is not one the MCP server accepts: only the exchanged one is.
    assert_alice(&gw.mcp_url("ex"), &subject).await;
    assert_eq!(idp.stats().await.token_requests, 1, "one exchange");
    assert_alice(&gw.mcp_url("ex"), &subject).await;
    assert_eq!(idp.stats().await.token_requests, 1, "served from the cache");
    assert_eq!(
        gw.flows().credentials().exchanger().counts(&policy_key),
        ExchangeCounts { hits: 1, misses: 1 }
    );

    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_alice(&gw.mcp_url("ex"), &subject).await;
    assert_eq!(
        idp.stats().await.token_requests,
        2,
        "expired entry: exchanged again"
    );

    // Sign-out everywhere forgets the user's exchanged tokens.
    assert_alice(&gw.mcp_url("ex"), &subject).await;
    assert_eq!(idp.stats().await.token_requests, 2);
    gw.flows()
        .logout(&Caller::new("alice", "any-session"), true)
        .await
        .expect("logout");
    assert_alice(&gw.mcp_url("ex"), &subject).await;
    assert_eq!(
        idp.stats().await.token_requests,
        3,
        "exchanged again after logout"
    );
    assert_eq!(
        gw.flows().credentials().exchanger().counts(&policy_key),
        ExchangeCounts { hits: 2, misses: 3 }
    );

    let metrics = gw.metrics().await;
    assert!(
        metrics
            .contains(r#"mcpoauth_token_exchanges_total{policy="default/idp-b",result="hit"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"mcpoauth_token_exchanges_total{policy="default/idp-b",result="miss"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"mcpoauth_token_exchange_seconds_count{result="ok"} 3"#),
        "{metrics}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_the_server_rejects_is_evicted_and_exchanged_again_once() {
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let gw = gateway(&idp, &[]).await;
    register(
        &gw,
        "ex",
        mcp.url(),
        policy("idp-b", &idp.token_endpoint(), idp.issuer(), mcp.url()),
    );
    let subject = idp.user_access_token("alice", GATEWAY_AUDIENCE).await;
    idp.reset_stats().await;

    assert_alice(&gw.mcp_url("ex"), &subject).await;
    assert_eq!(idp.stats().await.token_requests, 1);
    let before = mcp.stats().await;

    // The remote server now refuses the cached token (401): evicted, exchanged again, retried.
    mcp.revoke_tokens().await;
    assert_alice(&gw.mcp_url("ex"), &subject).await;
    assert_eq!(
        idp.stats().await.token_requests,
        2,
        "exactly one re-exchange"
    );
    let after = mcp.stats().await;
    assert_eq!(
        after.mcp_requests - before.mcp_requests,
        2,
        "refused once, then accepted"
    );
    assert_eq!(after.authorized_requests - before.authorized_requests, 1);

    // The new token is cached.
    assert_alice(&gw.mcp_url("ex"), &subject).await;
    assert_eq!(idp.stats().await.token_requests, 2);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misconfigured_policies_are_refused_with_clear_errors() {
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    // The operator allows the second issuer: the refusal below is the exchange's own check of
    // the issued token, not the allowlist's.
    let allowed = format!("{},https://idp-b.example.com", idp.issuer());
    let gw = gateway(&idp, &["--exchange-allowed-issuers", &allowed]).await;
    let endpoint = idp.token_endpoint();

    // The issued token's issuer is not the one the policy expects.
    register(
        &gw,
        "wrong-iss",
        mcp.url(),
        policy(
            "other-issuer",
            &endpoint,
            "https://idp-b.example.com",
            mcp.url(),
        ),
    );
    // A loopback token endpoint without allowPrivateNetworks.
    let mut private = policy("private", &endpoint, idp.issuer(), mcp.url());
    private.allow_private_networks = false;
    register(&gw, "private", mcp.url(), private);
    // A server naming a policy that is not registered.
    gw.registry().upsert_server(ServerRegistration {
        key: ServerKey::new("default", "no-policy"),
        url: Url::parse(mcp.url()).expect("url"),
        auth: AuthSettings::Exchange(ExchangeSettings {
            policy: "missing".into(),
        }),
        generation: 1,
        forward_headers: Vec::new(),
    });
    let subject = idp.user_access_token("alice", GATEWAY_AUDIENCE).await;
    idp.reset_stats().await;
    let mcp_before = mcp.stats().await.mcp_requests;

    let message = refused(
        &gw.mcp_url("wrong-iss"),
        &subject,
        reqwest::StatusCode::BAD_GATEWAY,
    )
    .await;
    assert!(
        message.contains(idp.issuer())
            && message.contains("https://idp-b.example.com")
            && message.contains("default/other-issuer"),
        "{message}"
    );
    assert_eq!(idp.stats().await.token_requests, 1, "the IdP did answer");

    let message = refused(
        &gw.mcp_url("private"),
        &subject,
        reqwest::StatusCode::BAD_GATEWAY,
    )
    .await;
    assert!(message.contains("allowPrivateNetworks"), "{message}");
    assert_eq!(
        idp.stats().await.token_requests,
        1,
        "never connected to the IdP"
    );

    let message = refused(
        &gw.mcp_url("no-policy"),
        &subject,
        reqwest::StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert!(
        message.contains("default/missing") && message.contains("not registered"),
        "{message}"
    );

    assert_eq!(
        mcp.stats().await.mcp_requests,
        mcp_before,
        "nothing reached the remote server"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverified_token_endpoint_gets_no_token_until_its_issuer_vouches_for_it() {
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    // The real token endpoint, but an expected issuer whose metadata cannot be read: nothing
    // says the endpoint belongs to it (as a policy loaded by `serve --manifests` would be). The
    // operator allows both issuers, so only the endpoint check stands in the way.
    let down = format!("http://127.0.0.1:{}", testkit::net::free_port());
    let allowed = format!("{},{down}", idp.issuer());
    let gw = gateway(&idp, &["--exchange-allowed-issuers", &allowed]).await;
    let mut unverified = policy("unverified", &idp.token_endpoint(), &down, mcp.url());
    unverified.endpoint_verified = false;
    register(&gw, "unverified", mcp.url(), unverified);
    // The same endpoint with the issuer that advertises it: the gateway checks it itself.
    let mut vouched = policy("vouched", &idp.token_endpoint(), idp.issuer(), mcp.url());
    vouched.endpoint_verified = false;
    register(&gw, "vouched", mcp.url(), vouched);

    let subject = idp.user_access_token("alice", GATEWAY_AUDIENCE).await;
    idp.reset_stats().await;
    let mcp_before = mcp.stats().await;
    let message = refused(
        &gw.mcp_url("unverified"),
        &subject,
        reqwest::StatusCode::BAD_GATEWAY,
    )
    .await;
    assert!(
        message.contains("default/unverified")
            && message.contains("MetadataUnavailable")
            && message.contains("no token was sent"),
        "{message}"
    );
    // Asked again: the remembered outcome refuses it the same way, still without a token sent.
    refused(
        &gw.mcp_url("unverified"),
        &subject,
        reqwest::StatusCode::BAD_GATEWAY,
    )
    .await;
    assert_eq!(
        idp.stats().await.token_requests,
        0,
        "the token endpoint received no caller's token"
    );
    let mcp_after = mcp.stats().await;
    assert_eq!(
        (mcp_after.mcp_requests, mcp_after.authorized_requests),
        (mcp_before.mcp_requests, mcp_before.authorized_requests),
        "nothing reached the remote server"
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(
            "mcpoauth_token_exchanges_total{policy=\"default/unverified\",result=\"unverified\"} 2"
        ),
        "{metrics}"
    );

    assert_alice(&gw.mcp_url("vouched"), &subject).await;
    assert_eq!(idp.stats().await.token_requests, 1);
    gw.shutdown().await;
}

/// A namespace's author who runs an identity provider of their own can point a policy at it, and
/// its metadata vouches for its endpoint: only the operator's allowlist of issuers keeps
/// callers' tokens from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_at_an_issuer_the_operator_did_not_allow_gets_no_token() {
    let idp = Idp::start(IdpOptions::default()).await;
    let authors_idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let gw = gateway(&idp, &[]).await;
    let mut theirs = policy(
        "theirs",
        &authors_idp.token_endpoint(),
        authors_idp.issuer(),
        mcp.url(),
    );
    theirs.endpoint_verified = false;
    register(&gw, "theirs", mcp.url(), theirs);

    let subject = idp.user_access_token("alice", GATEWAY_AUDIENCE).await;
    authors_idp.reset_stats().await;
    let message = refused(
        &gw.mcp_url("theirs"),
        &subject,
        reqwest::StatusCode::BAD_GATEWAY,
    )
    .await;
    assert!(
        message.contains("not allowed to receive callers' tokens")
            && message.contains("--exchange-allowed-issuers"),
        "{message}"
    );
    assert_eq!(
        authors_idp.stats().await.token_requests,
        0,
        "the author's provider received no caller's token"
    );
    assert!(gw.metrics().await.contains(
        "mcpoauth_token_exchanges_total{policy=\"default/theirs\",result=\"issuer_not_allowed\"} 1"
    ));
    gw.shutdown().await;

    // Once the operator allows that issuer, the exchange goes there (and the test shows the
    // refusal above was the allowlist's, not something else).
    let gw = gateway(&idp, &["--exchange-allowed-issuers", authors_idp.issuer()]).await;
    let mut theirs = policy(
        "theirs",
        &authors_idp.token_endpoint(),
        authors_idp.issuer(),
        mcp.url(),
    );
    theirs.endpoint_verified = false;
    register(&gw, "theirs", mcp.url(), theirs);
    let _ = call_whoami(&gw.mcp_url("theirs"), &subject).await;
    assert!(
        authors_idp.stats().await.token_requests >= 1,
        "allowed: the exchange was attempted at the author's provider"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_client_authentication_reaches_an_endpoint_requiring_a_client_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    make_certs(dir.path());
    let file = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).expect("pem");

    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let mut origin = Url::parse(idp.issuer()).expect("issuer");
    origin.set_path("");
    let proxy = NodeProcess::start(
        "mtls-proxy",
        &["mtls-proxy.mjs"],
        &[
            ("TARGET", origin.as_str().trim_end_matches('/').to_owned()),
            ("CERT_FILE", file("server.crt")),
            ("KEY_FILE", file("server.key")),
            ("CA_FILE", file("ca.crt")),
        ],
    )
    .await;
    let proxied_endpoint = format!("{}/token", proxy.ready_value());
    let ca = file("ca.crt");
    let gw = gateway(&idp, &["--exchange-ca-file", &ca]).await;

    // The gateway authenticates with its certificate; the IdP knows the client as public.
    // Through a proxy the endpoint's origin is not the issuer: expectedIssuer says which is.
    let mut mtls = policy("mtls", &proxied_endpoint, idp.issuer(), mcp.url());
    mtls.client_auth = Some(PolicyClientAuth::MutualTls {
        client_id: Some(PUBLIC_CLIENT_ID.to_owned()),
        cert_pem: SecretString::from(read("client.crt")),
        key_pem: SecretString::from(read("client.key")),
    });
    register(&gw, "mtls", mcp.url(), mtls);
    // The same endpoint without a client certificate: the TLS handshake fails.
    let mut no_cert = policy("no-cert", &proxied_endpoint, idp.issuer(), mcp.url());
    no_cert.client_auth = None;
    register(&gw, "no-cert", mcp.url(), no_cert);

    let subject = idp.user_access_token("alice", GATEWAY_AUDIENCE).await;
    assert_alice(&gw.mcp_url("mtls"), &subject).await;
    let stats: Value = proxy_stats(&proxy, &read).await;
    assert_eq!(stats["forwarded"], 1, "{stats}");
    assert_eq!(
        stats["client_subjects"],
        json!(["gateway-client"]),
        "{stats}"
    );

    // TLS 1.3 refuses a missing client certificate after the client's side of the handshake:
    // the gateway usually sends its request and reads the server's `certificate_required`
    // alert (502, naming it), but on a loaded machine the alert can arrive first and the
    // connection is closed before the request goes out (503, "could not be reached"). Either
    // way the call fails, names the policy, and nothing reaches the token endpoint.
    let (status, body) = call_whoami(&gw.mcp_url("no-cert"), &subject).await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("default/no-cert"), "{body}");
    assert!(
        !message.contains(&subject),
        "the caller's token is never echoed"
    );
    match status {
        reqwest::StatusCode::BAD_GATEWAY => {
            assert!(message.contains("CertificateRequired"), "{message}")
        }
        reqwest::StatusCode::SERVICE_UNAVAILABLE => {
            assert!(message.contains("could not be reached"), "{message}")
        }
        other => panic!("a refused client certificate answered {other}: {body}"),
    }
    let after: Value = proxy_stats(&proxy, &read).await;
    assert_eq!(
        after["forwarded"], 1,
        "nothing was forwarded without a certificate: {after}"
    );
    gw.shutdown().await;
}
