//! The `TokenExchangePolicy` controller against a real kube-apiserver and the real test IdP
//! (node-oidc-provider, on loopback): the endpoint check against the issuer's metadata, what
//! the servers using a policy make of it, and references that never cross namespaces.

use kube::Api;
use mcp_oauth_operator::crd::{RemoteMCPServer, TokenExchangePolicy};
use testkit::controller_env::{
    LeadingOperator, SOON, events_of, eventually, start_cluster, wait_policy, wait_server,
};
use testkit::kube::KubeApi;
use testkit::{Idp, IdpOptions, free_port};

/// A policy in `namespace`; `extra` is more spec lines, each indented by two spaces.
fn policy_yaml(namespace: &str, name: &str, token_endpoint: &str, extra: &[&str]) -> String {
    let mut yaml = format!(
        "apiVersion: mcpoauth.dev/v1alpha1
kind: TokenExchangePolicy
metadata:
  name: {name}
  namespace: {namespace}
spec:
  tokenEndpoint: {token_endpoint}
"
    );
    for line in extra {
        yaml.push_str("  ");
        yaml.push_str(line);
        yaml.push('\n');
    }
    yaml
}

/// A server in `mode: exchange` using policy `policy`.
fn exchange_server_yaml(namespace: &str, name: &str, policy: &str) -> String {
    format!(
        "apiVersion: mcpoauth.dev/v1alpha1
kind: RemoteMCPServer
metadata:
  name: {name}
  namespace: {namespace}
spec:
  url: https://mcp.example.com/mcp
  auth:
    mode: exchange
    exchange:
      policyRef:
        name: {policy}
"
    )
}

async fn apply(kube: &KubeApi, yaml: &str) {
    kube.apply_yaml(yaml).await;
}

#[tokio::test]
async fn the_token_endpoint_is_checked_against_the_issuer_metadata() {
    let kube = start_cluster(&["team-a"]).await;
    let idp = Idp::start(IdpOptions::default()).await;
    // The same IdP under another name, and an issuer with no metadata at all: the operator
    // allows them, so only the endpoint check stands in their way.
    let port = url::Url::parse(idp.issuer())
        .expect("issuer URL")
        .port()
        .expect("port");
    let alias = format!("http://localhost:{port}");
    let down = format!("http://127.0.0.1:{}", free_port());
    let op = LeadingOperator::start_allowing(&kube, &[idp.issuer(), &alias, &down]).await;
    let policies: Api<TokenExchangePolicy> = Api::namespaced(kube.client(), "team-a");
    let servers: Api<RemoteMCPServer> = Api::namespaced(kube.client(), "team-a");
    let private = "allowPrivateNetworks: true";

    // The IdP's metadata names its issuer and token endpoint, and lists the exchange grant.
    apply(
        &kube,
        &policy_yaml("team-a", "good", &idp.token_endpoint(), &[private]),
    )
    .await;
    let ready = wait_policy(&policies, "good", "True", "EndpointVerified").await;
    assert!(
        ready.message.contains(idp.issuer()),
        "names the issuer: {}",
        ready.message
    );
    assert!(op.policy_registered("team-a", "good"));
    // The leader reports its exchange cache counters (none yet).
    let status = policies
        .get("good")
        .await
        .expect("get policy")
        .status
        .expect("status");
    let cache = status.cache.expect("status.cache");
    assert_eq!((cache.hits, cache.misses), (Some(0), Some(0)));
    apply(&kube, &exchange_server_yaml("team-a", "uses-good", "good")).await;
    wait_server(&servers, "uses-good", "True", "Registered").await;

    // The same IdP under another name: its metadata names another issuer. Fail closed, say
    // what was found and what to set.
    apply(
        &kube,
        &policy_yaml(
            "team-a",
            "wrong-issuer",
            &idp.token_endpoint(),
            &[private, &format!("expectedIssuer: {alias}")],
        ),
    )
    .await;
    let ready = wait_policy(&policies, "wrong-issuer", "False", "IssuerMismatch").await;
    assert!(
        ready.message.contains(&format!("`{}`", idp.issuer())),
        "says which issuer the metadata names: {}",
        ready.message
    );
    assert!(
        ready.message.contains("spec.expectedIssuer"),
        "{}",
        ready.message
    );
    assert!(!op.policy_registered("team-a", "wrong-issuer"));
    // A server using it is not ready, and says why.
    apply(
        &kube,
        &exchange_server_yaml("team-a", "uses-wrong", "wrong-issuer"),
    )
    .await;
    let server_ready = wait_server(&servers, "uses-wrong", "False", "PolicyNotReady").await;
    assert!(
        server_ready.message.contains("IssuerMismatch"),
        "{}",
        server_ready.message
    );
    assert!(!op.server_registered("team-a", "uses-wrong"));
    let events = eventually("a Warning Event for the mismatch", SOON, || async {
        let events = events_of(&kube, "team-a", "wrong-issuer").await;
        events.contains("Warning/IssuerMismatch").then_some(events)
    })
    .await;
    assert!(!events.contains("Normal/IssuerMismatch"), "{events}");

    // Fixing the policy brings both back.
    apply(
        &kube,
        &policy_yaml(
            "team-a",
            "wrong-issuer",
            &idp.token_endpoint(),
            &[private, &format!("expectedIssuer: {}", idp.issuer())],
        ),
    )
    .await;
    wait_policy(&policies, "wrong-issuer", "True", "EndpointVerified").await;
    wait_server(&servers, "uses-wrong", "True", "Registered").await;
    assert!(op.policy_registered("team-a", "wrong-issuer"));

    // A token endpoint the issuer does not advertise.
    apply(
        &kube,
        &policy_yaml(
            "team-a",
            "wrong-endpoint",
            &format!("{}/oauth2/token", idp.issuer()),
            &[private, &format!("expectedIssuer: {}", idp.issuer())],
        ),
    )
    .await;
    let ready = wait_policy(
        &policies,
        "wrong-endpoint",
        "False",
        "TokenEndpointMismatch",
    )
    .await;
    assert!(
        ready
            .message
            .contains(&format!("`{}`", idp.token_endpoint())),
        "names the advertised endpoint: {}",
        ready.message
    );
    assert!(!op.policy_registered("team-a", "wrong-endpoint"));

    // Loopback without allowPrivateNetworks: the SSRF guard refuses it, and says what to set.
    apply(
        &kube,
        &policy_yaml("team-a", "loopback", &idp.token_endpoint(), &[]),
    )
    .await;
    let ready = wait_policy(&policies, "loopback", "False", "AddressRefused").await;
    assert!(
        ready.message.contains("spec.allowPrivateNetworks"),
        "{}",
        ready.message
    );
    assert!(ready.message.contains("loopback"), "{}", ready.message);
    assert!(!op.policy_registered("team-a", "loopback"));

    // No metadata to be had: nothing vouches for the endpoint, so no caller's token may go
    // there. Fail closed, say so, and keep checking (a server using it is not ready either).
    apply(
        &kube,
        &policy_yaml(
            "team-a",
            "no-metadata",
            &format!("{down}/token"),
            &[private],
        ),
    )
    .await;
    let ready = wait_policy(&policies, "no-metadata", "False", "MetadataUnavailable").await;
    assert!(ready.message.contains("not verified"), "{}", ready.message);
    assert!(ready.message.contains("not used"), "{}", ready.message);
    assert!(!op.policy_registered("team-a", "no-metadata"));
    apply(
        &kube,
        &exchange_server_yaml("team-a", "uses-no-metadata", "no-metadata"),
    )
    .await;
    let server_ready = wait_server(&servers, "uses-no-metadata", "False", "PolicyNotReady").await;
    assert!(
        server_ready.message.contains("MetadataUnavailable"),
        "{}",
        server_ready.message
    );
    assert!(!op.server_registered("team-a", "uses-no-metadata"));

    // An issuer the operator did not allow: its metadata may vouch for its endpoint (its author
    // may run it), but no caller's token goes there. Checked before anything is fetched.
    let other = Idp::start(IdpOptions::default()).await;
    apply(
        &kube,
        &policy_yaml(
            "team-a",
            "not-allowed",
            &other.token_endpoint(),
            &[private, &format!("expectedIssuer: {}", other.issuer())],
        ),
    )
    .await;
    let ready = wait_policy(&policies, "not-allowed", "False", "IssuerNotAllowed").await;
    assert!(
        ready.message.contains("--exchange-allowed-issuers")
            && ready.message.contains(other.issuer()),
        "{}",
        ready.message
    );
    assert!(!op.policy_registered("team-a", "not-allowed"));

    op.server.shutdown().await;
}

#[tokio::test]
async fn references_to_another_namespace_are_refused() {
    let kube = start_cluster(&["team-a", "team-b"]).await;
    let idp = Idp::start(IdpOptions::default()).await;
    let op = LeadingOperator::start_allowing(&kube, &[idp.issuer()]).await;
    let policies: Api<TokenExchangePolicy> = Api::namespaced(kube.client(), "team-a");
    let servers: Api<RemoteMCPServer> = Api::namespaced(kube.client(), "team-a");
    let private = "allowPrivateNetworks: true";

    // The policy exists, but only in team-b: a server in team-a does not find it.
    apply(
        &kube,
        &policy_yaml("team-b", "shared", &idp.token_endpoint(), &[private]),
    )
    .await;
    let team_b: Api<TokenExchangePolicy> = Api::namespaced(kube.client(), "team-b");
    wait_policy(&team_b, "shared", "True", "EndpointVerified").await;
    apply(&kube, &exchange_server_yaml("team-a", "cross", "shared")).await;
    let ready = wait_server(&servers, "cross", "False", "PolicyNotFound").await;
    assert!(
        ready.message.contains("namespace `team-a`"),
        "names the namespace it looked in: {}",
        ready.message
    );
    assert!(
        ready.message.contains("same-namespace"),
        "{}",
        ready.message
    );
    assert!(!op.server_registered("team-a", "cross"));

    // A policy whose client Secret exists only in team-b.
    apply(
        &kube,
        "apiVersion: v1
kind: Secret
metadata:
  name: cluster-b-client
  namespace: team-b
stringData:
  clientId: gateway
  clientSecret: team-b-only-value
",
    )
    .await;
    let client_auth = "clientAuth: { secretRef: { name: cluster-b-client } }";
    apply(
        &kube,
        &policy_yaml(
            "team-a",
            "with-secret",
            &idp.token_endpoint(),
            &[private, client_auth],
        ),
    )
    .await;
    let ready = wait_policy(&policies, "with-secret", "False", "SecretNotFound").await;
    assert!(
        ready.message.contains("team-a"),
        "names the namespace it looked in: {}",
        ready.message
    );
    assert!(
        !ready.message.contains("team-b-only-value"),
        "never shows a secret value"
    );
    assert!(!op.policy_registered("team-a", "with-secret"));

    // Created where it belongs, the Secret makes the policy usable.
    apply(
        &kube,
        "apiVersion: v1
kind: Secret
metadata:
  name: cluster-b-client
  namespace: team-a
stringData:
  clientId: gateway
  clientSecret: team-a-value
",
    )
    .await;
    wait_policy(&policies, "with-secret", "True", "EndpointVerified").await;
    assert!(op.policy_registered("team-a", "with-secret"));

    op.server.shutdown().await;
}
