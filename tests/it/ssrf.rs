//! The outbound address guard (SSRF) against the real components: discovery of a
//! `resource_metadata` URL a remote server names, the token endpoint, names resolving to loopback,
//! IPv4-mapped IPv6 literals, cloud metadata, redirects, and the gateway's proxy path in `run`
//! (guard on by default) and `serve` (private networks allowed) mode.

#![allow(clippy::unwrap_used)]

use mcp_oauth_operator::app::{self, Registrations};
use mcp_oauth_operator::cli::{Cli, Command};
use mcp_oauth_operator::net::{
    AddressClass, AddressPolicy, FetchError, OutboundClient, OutboundConfig,
};
use mcp_oauth_operator::oauth::{ClientCredentials, Discovery, DiscoveryConfig, DiscoveryError};
use mcp_oauth_operator::oauth::{TokenClient, TokenError};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use testkit::gateway::Gateway;
use testkit::mcp_client::post_jsonrpc;
use testkit::{EverythingServer, Idp, IdpOptions, McpServer};
use url::Url;

const LOOPBACK_REFUSAL: &str = "refused to connect to a private address (loopback)";
const FLAG: &str = "--outbound-allow-private-networks";

fn outbound(policy: AddressPolicy) -> OutboundClient {
    OutboundClient::new(OutboundConfig {
        address_policy: policy,
        ..OutboundConfig::default()
    })
    .unwrap()
}

/// The refusal inside a fetch error, or a panic naming what came instead.
fn refusal(err: &FetchError) -> &mcp_oauth_operator::net::AddressRefused {
    match err {
        FetchError::AddressRefused(r) => r,
        other => panic!("expected an address refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_resource_metadata_url_on_loopback_is_not_fetched_with_the_guard_on() {
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let server_url = Url::parse(mcp.url()).unwrap();
    let hint = mcp.resource_metadata_url();

    let strict = Discovery::new(
        outbound(AddressPolicy::PublicOnly),
        DiscoveryConfig::default(),
    );
    let err = strict
        .protected_resource(&server_url, Some(&hint), mcp.url())
        .await
        .unwrap_err();
    let DiscoveryError::Fetch { source, .. } = &err else {
        panic!("expected a fetch failure, got {err:?}")
    };
    let refused = refusal(source);
    assert_eq!(refused.class, AddressClass::Loopback);
    assert_eq!(refused.host, "127.0.0.1");
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "{LOOPBACK_REFUSAL} for 127.0.0.1; set {FLAG} to allow"
        )),
        "{message}"
    );

    // The same discovery with private networks allowed succeeds: the refusal was the guard's.
    let open = Discovery::new(
        outbound(AddressPolicy::AllowPrivate),
        DiscoveryConfig::default(),
    );
    let found = open
        .protected_resource(&server_url, Some(&hint), mcp.url())
        .await
        .unwrap();
    assert_eq!(found.url.as_str(), hint);
}

#[tokio::test]
async fn the_token_endpoint_is_guarded() {
    let idp = Idp::start(IdpOptions::default()).await;
    let open = Discovery::new(
        outbound(AddressPolicy::AllowPrivate),
        DiscoveryConfig::default(),
    );
    let md = open.authorization_server(idp.issuer()).await.unwrap();
    let refresh_token = SecretString::from("rt-must-not-leak-0123456789");
    let err = TokenClient::new(outbound(AddressPolicy::PublicOnly))
        .refresh(
            &md,
            &ClientCredentials::public("client"),
            &refresh_token,
            None,
        )
        .await
        .unwrap_err();
    let TokenError::Fetch(source) = &err else {
        panic!("expected a fetch failure, got {err:?}")
    };
    assert_eq!(refusal(source).class, AddressClass::Loopback);
    assert!(!err.to_string().contains("rt-must-not-leak"), "{err}");
}

#[tokio::test]
async fn names_are_resolved_and_checked_before_connecting() {
    let idp = Idp::start(IdpOptions::default()).await;
    let mut url = Url::parse(&format!(
        "{}/.well-known/openid-configuration",
        idp.issuer().trim_end_matches('/')
    ))
    .unwrap();
    url.set_host(Some("localhost")).unwrap();

    let err = outbound(AddressPolicy::PublicOnly)
        .get(&url)
        .await
        .unwrap_err();
    let refused = refusal(&err);
    assert_eq!(refused.host, "localhost");
    assert_eq!(refused.class, AddressClass::Loopback);
    assert!(
        err.to_string()
            .contains(&format!("{LOOPBACK_REFUSAL} for localhost")),
        "{err}"
    );

    // Allowed, the very same URL reaches the IdP.
    let resp = outbound(AddressPolicy::AllowPrivate)
        .get(&url)
        .await
        .unwrap();
    assert!(resp.status.is_success(), "{}", resp.status);
}

#[tokio::test]
async fn ipv4_mapped_ipv6_literals_are_classified_as_their_ipv4_address() {
    let idp = Idp::start(IdpOptions::default()).await;
    let port = Url::parse(idp.issuer()).unwrap().port().unwrap();
    let url = Url::parse(&format!(
        "http://[::ffff:127.0.0.1]:{port}/.well-known/openid-configuration"
    ))
    .unwrap();
    let err = outbound(AddressPolicy::PublicOnly)
        .get(&url)
        .await
        .unwrap_err();
    assert_eq!(refusal(&err).class, AddressClass::Loopback);
}

#[tokio::test]
async fn cloud_metadata_is_refused_even_with_private_networks_allowed() {
    let client = outbound(AddressPolicy::AllowPrivate);
    for raw in [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[::ffff:169.254.169.254]/computeMetadata/v1/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",
    ] {
        let err = client.get(&Url::parse(raw).unwrap()).await.unwrap_err();
        let refused = refusal(&err);
        assert_eq!(refused.class, AddressClass::CloudMetadata, "{raw}");
        assert!(err.to_string().contains("never allowed"), "{err}");
    }
}

#[tokio::test]
async fn redirects_from_a_metadata_location_are_not_followed() {
    use axum::Router;
    use axum::response::Redirect;
    use axum::routing::get;

    let landed = Arc::new(AtomicUsize::new(0));
    let counter = landed.clone();
    let app = Router::new()
        .route("/prm", get(|| async { Redirect::temporary("/landing") }))
        .route(
            "/landing",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { "{}" }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let discovery = Discovery::new(
        outbound(AddressPolicy::AllowPrivate),
        DiscoveryConfig::default(),
    );
    let server_url = Url::parse(&format!("http://{addr}/mcp")).unwrap();
    let err = discovery
        .protected_resource(
            &server_url,
            Some(&format!("http://{addr}/prm")),
            server_url.as_str(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            DiscoveryError::Fetch {
                source: FetchError::Redirect(307),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        landed.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
    server.abort();
}

/// The gateway as `run` starts it (anonymous callers, no cluster), with `extra` flags.
async fn run_gateway(extra: &[&str]) -> Gateway {
    let args = testkit::controller_env::run_args(extra);
    let server = app::start(&args.app_config(), Registrations::Programmatic)
        .await
        .expect("gateway starts");
    Gateway { server }
}

/// `serve` as the binary parses it (subcommand defaults applied).
async fn serve_gateway() -> Gateway {
    let cli =
        Cli::try_parse_with_defaults(["mcp-oauth-operator", "serve", "--listen", "127.0.0.1:0"])
            .unwrap();
    let Command::Serve(args) = cli.command else {
        unreachable!("serve was requested")
    };
    let server = app::start(&args.server.app_config(), Registrations::Programmatic)
        .await
        .expect("gateway starts");
    Gateway { server }
}

async fn initialize(gw: &Gateway, name: &str) -> (reqwest::StatusCode, Value) {
    let body = json!({
        "jsonrpc": "2.0", "id": 7, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "ssrf-test", "version": "1"}
        }
    });
    let (status, message) = post_jsonrpc(
        &reqwest::Client::new(),
        &gw.mcp_url(name),
        &[("mcp-protocol-version", "2025-06-18")],
        &body,
    )
    .await;
    (status, message.unwrap_or(Value::Null))
}

fn error_message(reply: &Value) -> &str {
    reply["error"]["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn run_refuses_to_proxy_to_loopback_unless_allowed() {
    let everything = EverythingServer::start().await;
    let by_name = everything.url().replace("127.0.0.1", "localhost");
    let port = Url::parse(everything.url()).unwrap().port().unwrap();
    let mapped = format!("http://[::ffff:127.0.0.1]:{port}/mcp");

    let gw = run_gateway(&[]).await;
    gw.register_none("literal", everything.url());
    gw.register_none("named", &by_name);
    gw.register_none("mapped", &mapped);
    for name in ["literal", "named", "mapped"] {
        let (status, reply) = initialize(&gw, name).await;
        assert_eq!(status, reqwest::StatusCode::BAD_GATEWAY, "{name}: {reply}");
        assert_eq!(reply["id"], 7, "{reply}");
        let message = error_message(&reply);
        assert!(
            message.contains("default/") && message.contains(LOOPBACK_REFUSAL),
            "{name}: {message}"
        );
        assert!(message.contains(FLAG), "{name}: {message}");
        assert!(!message.contains(&port.to_string()), "no URL in {message}");
    }
    gw.shutdown().await;

    let gw = run_gateway(&[FLAG]).await;
    gw.register_none("literal", everything.url());
    gw.register_none("named", &by_name);
    for name in ["literal", "named"] {
        let (status, reply) = initialize(&gw, name).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{name}: {reply}");
        assert_eq!(
            reply["result"]["serverInfo"]["name"], "mcp-servers/everything",
            "{reply}"
        );
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn serve_proxies_to_loopback_but_never_to_cloud_metadata() {
    let everything = EverythingServer::start().await;
    let gw = serve_gateway().await;
    gw.register_none("local", everything.url());
    gw.register_none("metadata", "http://169.254.169.254/mcp");

    let (status, reply) = initialize(&gw, "local").await;
    assert_eq!(status, reqwest::StatusCode::OK, "{reply}");

    let (status, reply) = initialize(&gw, "metadata").await;
    assert_eq!(status, reqwest::StatusCode::BAD_GATEWAY, "{reply}");
    let message = error_message(&reply);
    assert!(
        message.contains("cloud-metadata") && message.contains("never allowed"),
        "{message}"
    );
    gw.shutdown().await;
}
