//! The operator's controllers against a real kube-apiserver (v1.20, see `testkit::kube`): the
//! operator runs in-process (`app::start` with `Registrations::Kubernetes`), resources are
//! applied with kubectl, and each test checks the registry, the status, Events, finalizers and
//! the metrics of status writes.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use mcp_oauth_operator::app::RunningServer;
use mcp_oauth_operator::controller::{FINALIZER, Leadership};
use mcp_oauth_operator::crd::{
    RemoteMCPServer, RemoteMCPServerStatus, TokenExchangePolicy, condition,
};
use mcp_oauth_operator::registry::{AuthSettings, ClientIdentity, ServerKey};
use secrecy::ExposeSecret as _;
use std::time::Duration;
use testkit::controller_env::{condition_of, eventually, start_replica};
use testkit::kube::KubeApi;
use testkit::{Idp, IdpOptions, McpServer};
use tokio::sync::watch;

/// How long a reconcile may take to show (the apiserver, watch and status round trip).
const SOON: Duration = Duration::from_secs(20);
/// Lease duration of the election test: short, so a hand-over is quick.
// Long enough that renewals on a loaded 2-core CI machine do not lapse; hand-over on shutdown
// releases the Lease, so tests do not wait for it to expire.
const LEASE_DURATION: Duration = Duration::from_secs(8);

/// One in-process operator replica.
struct Operator {
    server: RunningServer,
    /// Set for replicas started with a fixed leader flag.
    leader: Option<watch::Sender<bool>>,
}

impl Operator {
    /// A replica told whether it leads through a watch channel.
    async fn start(kube: &KubeApi, identity: &str, leader: bool, namespaces: &[&str]) -> Self {
        let (tx, rx) = watch::channel(leader);
        let mut op = Self::start_with(kube, identity, Leadership::Fixed(rx), namespaces).await;
        op.leader = Some(tx);
        op
    }

    /// A replica competing for the Lease `name` in namespace `default`.
    async fn start_with_lease(kube: &KubeApi, identity: &str, name: &str) -> Self {
        let lease = Leadership::Lease {
            namespace: "default".into(),
            name: name.into(),
            duration: LEASE_DURATION,
        };
        Self::start_with(kube, identity, lease, &[]).await
    }

    async fn start_with(
        kube: &KubeApi,
        identity: &str,
        leadership: Leadership,
        namespaces: &[&str],
    ) -> Self {
        // The test IdP and MCP servers listen on loopback.
        let extra = ["--outbound-allow-private-networks"];
        let server = start_replica(kube, identity, leadership, namespaces, &extra).await;
        Self {
            server,
            leader: None,
        }
    }

    fn set_leader(&self, leads: bool) {
        self.leader
            .as_ref()
            .expect("a replica with a fixed leader flag")
            .send(leads)
            .expect("leader flag");
    }

    fn registered(&self, namespace: &str, name: &str) -> bool {
        self.server
            .registry
            .server(&ServerKey::new(namespace, name))
            .is_some()
    }

    fn status_writes(&self, kind: &str) -> u64 {
        self.metric_sum(&format!("mcpoauth_status_writes_total{{kind=\"{kind}\"}} "))
    }

    fn reconciles(&self, kind: &str) -> u64 {
        self.metric_sum(&format!("mcpoauth_reconciles_total{{kind=\"{kind}\","))
    }

    /// Sum of the samples of the operator's metrics whose line starts with `prefix` (the
    /// controllers register their metrics themselves, so they are read as `/metrics` shows them).
    fn metric_sum(&self, prefix: &str) -> u64 {
        self.server
            .metrics
            .encode()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    async fn wait_synced(&self) {
        eventually("the operator's watches sync", SOON, || async {
            self.server.readiness.reasons().is_none().then_some(())
        })
        .await;
    }
}

/// Waits until the server's Ready condition has `status` and `reason` for its current
/// generation; returns the object.
/// The reconcile count of `kind` once it has stopped changing for a second; panics when it is
/// still growing after 15 s (a reconcile loop).
async fn settled_reconciles(op: &Operator, kind: &str) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut last = op.reconciles(kind);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = op.reconciles(kind);
        if now == last {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reconcile loop: {kind} reconciles keep growing ({last} -> {now})"
        );
        last = now;
    }
}

async fn wait_ready(
    api: &Api<RemoteMCPServer>,
    name: &str,
    status: &str,
    reason: &str,
) -> RemoteMCPServer {
    eventually(
        &format!("{name} is Ready={status} ({reason})"),
        SOON,
        || async {
            let obj = api.get_opt(name).await.expect("get server")?;
            let st = obj.status.as_ref()?;
            let ready = condition_of(&st.conditions, condition::READY)?;
            (ready.status == status
                && ready.reason == reason
                && st.observed_generation == obj.metadata.generation)
                .then_some(obj)
        },
    )
    .await
}

fn server_yaml(namespace: &str, name: &str, url: &str, auth: &str) -> String {
    format!(
        "apiVersion: mcpoauth.dev/v1alpha1
kind: RemoteMCPServer
metadata:
  name: {name}
  namespace: {namespace}
spec:
  url: {url}
  auth:
{auth}
"
    )
}

/// Applies `team-a/{name}` in `mode: none` (valid, no discovery).
async fn apply_plain_server(kube: &KubeApi, name: &str) {
    kube.apply_yaml(&server_yaml(
        "team-a",
        name,
        "https://mcp.example.com/mcp",
        "    mode: none",
    ))
    .await;
}

fn secret_yaml(namespace: &str, name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1
kind: Secret
metadata:
  name: {name}
  namespace: {namespace}
stringData:
  clientSecret: {value}
"
    )
}

async fn start_cluster(namespaces: &[&str]) -> KubeApi {
    let kube = KubeApi::start().await;
    kube.install_crds().await;
    for ns in namespaces {
        kube.create_namespace(ns).await;
    }
    kube
}

/// The only replica, leading and synced, watching all namespaces; and the servers of `team-a`.
async fn synced_leader(kube: &KubeApi) -> (Operator, Api<RemoteMCPServer>) {
    let op = Operator::start(kube, "replica-1", true, &[]).await;
    op.wait_synced().await;
    (op, Api::namespaced(kube.client(), "team-a"))
}

/// Waits until server `name` reports the outcome of discovery; returns its status.
async fn wait_discovery_reported(api: &Api<RemoteMCPServer>, name: &str) -> RemoteMCPServerStatus {
    let obj = eventually(
        &format!("discovery of {name} is reported"),
        SOON,
        || async {
            let obj = api.get_opt(name).await.expect("get")?;
            let st = obj.status.as_ref()?;
            condition_of(&st.conditions, condition::AUTHORIZATION_SERVER_DISCOVERED)?;
            Some(obj)
        },
    )
    .await;
    obj.status.expect("status")
}

#[tokio::test]
async fn resources_are_registered_reported_and_unregistered() {
    let kube = start_cluster(&["team-a"]).await;
    let (op, api) = synced_leader(&kube).await;

    // A valid resource becomes Ready with its endpoint, and the gateway serves it.
    apply_plain_server(&kube, "plain").await;
    let obj = wait_ready(&api, "plain", "True", "Registered").await;
    assert!(op.registered("team-a", "plain"));
    let status = obj.status.as_ref().expect("status");
    assert_eq!(
        status.endpoint.as_deref(),
        Some(format!("{}mcp/team-a/plain", op.server.public_url).as_str())
    );
    let ready = condition_of(&status.conditions, condition::READY).expect("Ready");
    assert_eq!(ready.observed_generation, obj.metadata.generation);
    assert!(
        obj.metadata
            .finalizers
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|f| f == FINALIZER),
        "the finalizer is added"
    );
    let since = ready.last_transition_time.clone();

    // Status writes do not wake the controller up again: nothing happens while nothing changes.
    // The watch events of our own finalizer and status writes may still be in flight under
    // load (one more reconcile that changes nothing), so the count must first settle — a loop
    // never does — and then stay put for a whole quiet window.
    let reconciles = settled_reconciles(&op, "RemoteMCPServer").await;
    let writes = op.status_writes("RemoteMCPServer");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        op.reconciles("RemoteMCPServer"),
        reconciles,
        "no reconcile loop"
    );
    assert_eq!(
        op.status_writes("RemoteMCPServer"),
        writes,
        "no status write loop"
    );

    // An Event says it became ready.
    let events = eventually("an Event for the resource", SOON, || async {
        let out = kube
            .kubectl_ok(&[
                "get",
                "events",
                "-n",
                "team-a",
                "--field-selector",
                "involvedObject.name=plain",
                "-o",
                "jsonpath={.items[*].reason}",
            ])
            .await;
        (!out.trim().is_empty()).then_some(out)
    })
    .await;
    assert!(events.contains("Registered"), "events: {events}");

    // An invalid spec (the v1.20 apiserver cannot run the CEL rule) is reported, not crashed
    // on, and the registration goes away.
    kube.apply_yaml(&server_yaml(
        "team-a",
        "plain",
        "https://mcp.example.com/mcp",
        "    mode: exchange",
    ))
    .await;
    let obj = wait_ready(&api, "plain", "False", "MissingPolicyRef").await;
    assert!(!op.registered("team-a", "plain"));
    let ready = condition_of(
        &obj.status.as_ref().expect("status").conditions,
        condition::READY,
    )
    .expect("Ready")
    .clone();
    assert!(
        ready.message.contains("policyRef"),
        "message says how to fix: {}",
        ready.message
    );
    assert_ne!(
        ready.last_transition_time, since,
        "True → False is a transition"
    );

    // Pointing it at a policy that does not exist yet, then creating the policy.
    kube.apply_yaml(&server_yaml(
        "team-a",
        "plain",
        "https://mcp.example.com/mcp",
        "    mode: exchange\n    exchange:\n      policyRef:\n        name: cluster-b",
    ))
    .await;
    wait_ready(&api, "plain", "False", "PolicyNotFound").await;
    kube.apply_yaml(
        "apiVersion: mcpoauth.dev/v1alpha1
kind: TokenExchangePolicy
metadata:
  name: cluster-b
  namespace: team-a
spec:
  tokenEndpoint: https://dex.cluster-b.example.com/token
",
    )
    .await;
    // The policy now exists, but its issuer is not one this gateway lets receive callers'
    // tokens (no --exchange-allowed-issuers, no --oidc-issuer): it is not used, and the server
    // says why (fail closed).
    let policies: Api<TokenExchangePolicy> = Api::namespaced(kube.client(), "team-a");
    eventually("the policy is refused", SOON, || async {
        let p = policies.get("cluster-b").await.expect("get policy");
        let st = p.status?;
        let ready = condition_of(&st.conditions, condition::READY)?;
        (ready.status == "False" && ready.reason == "IssuerNotAllowed").then_some(())
    })
    .await;
    wait_ready(&api, "plain", "False", "PolicyNotReady").await;
    assert!(!op.registered("team-a", "plain"));

    // Deleting the policy makes the server not ready again.
    kube.kubectl_ok(&[
        "delete",
        "tokenexchangepolicy",
        "cluster-b",
        "-n",
        "team-a",
        "--wait=true",
    ])
    .await;
    wait_ready(&api, "plain", "False", "PolicyNotFound").await;
    assert!(!op.registered("team-a", "plain"));

    // Deleting the resource removes the registration and the finalizer lets it go.
    apply_plain_server(&kube, "plain").await;
    wait_ready(&api, "plain", "True", "Registered").await;
    kube.kubectl_ok(&[
        "delete",
        "remotemcpserver",
        "plain",
        "-n",
        "team-a",
        "--wait=true",
    ])
    .await;
    eventually("the object is gone", SOON, || async {
        api.get_opt("plain")
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;
    assert!(!op.registered("team-a", "plain"));
    op.server.shutdown().await;
}

#[tokio::test]
async fn secrets_are_read_from_the_resource_namespace_only_and_followed() {
    let kube = start_cluster(&["team-a", "team-b"]).await;
    let (op, api) = synced_leader(&kube).await;

    // The Secret exists, but in another namespace: refused.
    kube.apply_yaml(&secret_yaml("team-b", "gh-client", "theirs"))
        .await;
    kube.apply_yaml(&server_yaml(
        "team-a",
        "gh",
        "https://mcp.example.com/mcp",
        "    mode: oauth\n    oauth:\n      issuer: https://idp.example.com\n      client:\n        id: gateway\n        secretRef:\n          name: gh-client",
    ))
    .await;
    let obj = wait_ready(&api, "gh", "False", "SecretNotFound").await;
    assert!(!op.registered("team-a", "gh"));
    let message = &condition_of(
        &obj.status.as_ref().expect("status").conditions,
        condition::READY,
    )
    .expect("Ready")
    .message;
    assert!(
        message.contains("team-a"),
        "names the namespace it looked in: {message}"
    );
    assert!(!message.contains("theirs"), "never shows a secret value");

    // Created where it belongs: the Secret watch re-reconciles the server.
    kube.apply_yaml(&secret_yaml("team-a", "gh-client", "first-secret"))
        .await;
    wait_ready(&api, "gh", "True", "Registered").await;
    let secret_of = || {
        let reg = op.server.registry.server(&ServerKey::new("team-a", "gh"))?;
        match &reg.auth {
            AuthSettings::OAuth(o) => match &o.client {
                ClientIdentity::PreRegistered(c) => c
                    .client_secret
                    .as_ref()
                    .map(|s| s.expose_secret().to_owned()),
                ClientIdentity::Cimd => None,
            },
            _ => None,
        }
    };
    assert_eq!(secret_of().as_deref(), Some("first-secret"));

    // A new value reaches the registration without touching the resource.
    kube.apply_yaml(&secret_yaml("team-a", "gh-client", "rotated-secret"))
        .await;
    eventually("the rotated client secret is used", SOON, || async {
        (secret_of().as_deref() == Some("rotated-secret")).then_some(())
    })
    .await;

    // And deleting the Secret takes the server out of service.
    let secrets: Api<Secret> = Api::namespaced(kube.client(), "team-a");
    secrets
        .delete("gh-client", &Default::default())
        .await
        .expect("delete secret");
    wait_ready(&api, "gh", "False", "SecretNotFound").await;
    assert!(!op.registered("team-a", "gh"));
    op.server.shutdown().await;
}

/// A plain-http server outside loopback is not registered: `Ready=False`, reason `InsecureURL`,
/// with a message saying how to fix it; opting in with `spec.allowInsecureHttp` registers it.
#[tokio::test]
async fn plain_http_outside_loopback_is_refused_until_the_resource_opts_in() {
    let kube = start_cluster(&["team-a"]).await;
    let (op, api) = synced_leader(&kube).await;
    let yaml = server_yaml(
        "team-a",
        "cleartext",
        "http://mcp.team-a.svc.cluster.local/mcp",
        "    mode: none",
    );
    kube.apply_yaml(&yaml).await;
    let obj = wait_ready(&api, "cleartext", "False", "InsecureURL").await;
    assert!(!op.registered("team-a", "cleartext"));
    let message = &condition_of(
        &obj.status.as_ref().expect("status").conditions,
        condition::READY,
    )
    .expect("Ready")
    .message;
    assert!(
        message.contains("spec.allowInsecureHttp: true") && message.contains("https"),
        "says how to fix it: {message}"
    );

    kube.apply_yaml(&yaml.replace("spec:\n", "spec:\n  allowInsecureHttp: true\n"))
        .await;
    wait_ready(&api, "cleartext", "True", "Registered").await;
    assert!(op.registered("team-a", "cleartext"));
    op.server.shutdown().await;
}

#[tokio::test]
async fn every_replica_serves_but_only_the_leader_writes_status() {
    let kube = start_cluster(&["team-a"]).await;
    let a = Operator::start(&kube, "replica-a", true, &[]).await;
    let b = Operator::start(&kube, "replica-b", false, &["team-a"]).await;
    a.wait_synced().await;
    b.wait_synced().await;
    let api: Api<RemoteMCPServer> = Api::namespaced(kube.client(), "team-a");

    apply_plain_server(&kube, "one").await;
    wait_ready(&api, "one", "True", "Registered").await;
    eventually("both replicas serve it", SOON, || async {
        (a.registered("team-a", "one") && b.registered("team-a", "one")).then_some(())
    })
    .await;
    // The status can be seen before the writer's own count of it (the count follows the
    // API server's answer, the watch may be faster).
    eventually("the leader counted its status write", SOON, || async {
        (a.status_writes("RemoteMCPServer") >= 1).then_some(())
    })
    .await;
    assert_eq!(
        b.status_writes("RemoteMCPServer"),
        0,
        "a follower never writes"
    );

    // Hand over: the new leader writes, the old one stops.
    a.set_leader(false);
    b.set_leader(true);
    let a_writes = a.status_writes("RemoteMCPServer");
    apply_plain_server(&kube, "two").await;
    wait_ready(&api, "two", "True", "Registered").await;
    eventually("the new leader wrote the status", SOON, || async {
        (b.status_writes("RemoteMCPServer") >= 1).then_some(())
    })
    .await;
    assert_eq!(
        a.status_writes("RemoteMCPServer"),
        a_writes,
        "the old leader wrote nothing"
    );
    assert!(a.registered("team-a", "two"), "the old leader still serves");

    // A deletion is seen by both, with the finalizer released by the leader.
    kube.kubectl_ok(&[
        "delete",
        "remotemcpserver",
        "one",
        "-n",
        "team-a",
        "--wait=true",
    ])
    .await;
    eventually("both replicas dropped it", SOON, || async {
        (!a.registered("team-a", "one") && !b.registered("team-a", "one")).then_some(())
    })
    .await;
    a.server.shutdown().await;
    b.server.shutdown().await;
}

#[tokio::test]
async fn readiness_waits_for_the_watches_and_the_controller_resumes_after_an_apiserver_restart() {
    let mut kube = KubeApi::start().await;
    kube.create_namespace("team-a").await;
    // Started before the CRDs exist: not ready, and says why.
    let op = Operator::start(&kube, "replica-1", true, &[]).await;
    let reasons = eventually("readiness names the failing watch", SOON, || async {
        op.server
            .readiness
            .reasons()
            .filter(|r| r.iter().any(|r| r.contains("cannot watch")))
    })
    .await;
    assert!(
        reasons.iter().any(|r| r.starts_with("kubernetes:")),
        "{reasons:?}"
    );

    kube.install_crds().await;
    eventually(
        "ready once the CRDs exist",
        Duration::from_secs(60),
        || async { op.server.readiness.reasons().is_none().then_some(()) },
    )
    .await;
    let api: Api<RemoteMCPServer> = Api::namespaced(kube.client(), "team-a");
    apply_plain_server(&kube, "before").await;
    wait_ready(&api, "before", "True", "Registered").await;

    kube.restart_apiserver().await;
    apply_plain_server(&kube, "after").await;
    eventually(
        "the resource applied after the restart is reconciled",
        Duration::from_secs(90),
        || async {
            let obj = api.get_opt("after").await.ok()??;
            let ready = condition_of(&obj.status?.conditions, condition::READY)?
                .status
                .clone();
            (ready == "True").then_some(())
        },
    )
    .await;
    assert!(op.registered("team-a", "after"));
    assert!(
        op.registered("team-a", "before"),
        "nothing was lost in the restart"
    );
    op.server.shutdown().await;
}

#[tokio::test]
async fn the_authorization_server_is_discovered_into_status() {
    let kube = start_cluster(&["team-a"]).await;
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let (op, api) = synced_leader(&kube).await;

    kube.apply_yaml(&server_yaml(
        "team-a",
        "protected",
        mcp.url(),
        "    mode: oauth",
    ))
    .await;
    let st = wait_discovery_reported(&api, "protected").await;
    let discovered = condition_of(&st.conditions, condition::AUTHORIZATION_SERVER_DISCOVERED)
        .expect("condition");
    assert_eq!(discovered.status, "True", "{}", discovered.message);
    assert_eq!(discovered.reason, "Discovered");
    let ready = condition_of(&st.conditions, condition::READY).expect("Ready");
    assert_eq!(ready.status, "True");
    let server = st.authorization_server.expect("authorizationServer");
    assert_eq!(server.issuer.as_deref(), Some(idp.issuer()));
    assert_eq!(server.pkce, Some(true));
    assert_eq!(server.cimd, Some(true));
    let doc = idp.discovery().await;
    assert_eq!(
        server.iss_parameter,
        Some(doc["authorization_response_iss_parameter_supported"].as_bool() == Some(true))
    );

    // A server that is down is still registered; discovery says why it failed.
    kube.apply_yaml(&server_yaml(
        "team-a",
        "down",
        &format!("http://127.0.0.1:{}/mcp", testkit::free_port()),
        "    mode: oauth",
    ))
    .await;
    let st = wait_discovery_reported(&api, "down").await;
    let failed = condition_of(&st.conditions, condition::AUTHORIZATION_SERVER_DISCOVERED)
        .expect("condition");
    assert_eq!(failed.status, "False");
    assert_eq!(failed.reason, "MetadataUnreachable", "{}", failed.message);
    assert_eq!(
        condition_of(&st.conditions, condition::READY).map(|c| c.status.as_str()),
        Some("True")
    );
    assert!(op.registered("team-a", "down"));
    op.server.shutdown().await;
}

#[tokio::test]
async fn an_object_that_does_not_decode_is_reported_and_does_not_stop_the_others() {
    let kube = start_cluster(&["team-a"]).await;
    // Loosen the stored schema so the apiserver accepts a spec our types cannot read (as an
    // object written under an older or newer schema would be).
    kube.kubectl_ok(&[
        "patch",
        "crd",
        "remotemcpservers.mcpoauth.dev",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/versions/0/schema/openAPIV3Schema/properties/spec","value":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}]"#,
    ])
    .await;
    let (op, api) = synced_leader(&kube).await;

    kube.apply_yaml(
        "apiVersion: mcpoauth.dev/v1alpha1
kind: RemoteMCPServer
metadata:
  name: broken
  namespace: team-a
spec:
  url: 42
",
    )
    .await;
    apply_plain_server(&kube, "fine").await;
    wait_ready(&api, "fine", "True", "Registered").await;
    let conditions = eventually("the broken object is reported", SOON, || async {
        let out = kube
            .kubectl_ok(&[
                "get",
                "remotemcpserver",
                "broken",
                "-n",
                "team-a",
                "-o",
                "json",
            ])
            .await;
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        let conditions = v["status"]["conditions"].as_array()?.clone();
        (!conditions.is_empty()).then_some(conditions)
    })
    .await;
    assert_eq!(conditions[0]["type"], "Ready");
    assert_eq!(conditions[0]["status"], "False");
    assert_eq!(conditions[0]["reason"], "InvalidObject");
    assert!(!op.registered("team-a", "broken"));
    op.server.shutdown().await;
}

#[tokio::test]
async fn the_lease_holder_writes_status_and_hands_over_when_it_stops() {
    let kube = start_cluster(&["team-a"]).await;
    let a = Operator::start_with_lease(&kube, "replica-a", "op-lease").await;
    let b = Operator::start_with_lease(&kube, "replica-b", "op-lease").await;
    a.wait_synced().await;
    b.wait_synced().await;
    let holder = || async {
        let out = kube
            .kubectl_ok(&[
                "get",
                "lease",
                "op-lease",
                "-n",
                "default",
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ])
            .await;
        Some(out.trim().to_owned()).filter(|h| !h.is_empty())
    };
    let first = eventually("a replica holds the Lease", SOON, holder).await;
    let api: Api<RemoteMCPServer> = Api::namespaced(kube.client(), "team-a");
    apply_plain_server(&kube, "one").await;
    wait_ready(&api, "one", "True", "Registered").await;
    let (leader, follower) = if first == "replica-a" { (a, b) } else { (b, a) };
    assert_eq!(
        holder().await.as_deref(),
        Some(first.as_str()),
        "the Lease stayed with one replica"
    );
    assert!(leader.status_writes("RemoteMCPServer") >= 1);
    assert_eq!(follower.status_writes("RemoteMCPServer"), 0);
    assert!(
        follower.registered("team-a", "one"),
        "the follower serves too"
    );

    // The leader stops (and releases the Lease): the other replica takes over.
    leader.server.shutdown().await;
    eventually("the other replica holds the Lease", SOON, || async {
        holder().await.filter(|h| *h != first)
    })
    .await;
    apply_plain_server(&kube, "two").await;
    wait_ready(&api, "two", "True", "Registered").await;
    assert!(
        follower.status_writes("RemoteMCPServer") >= 1,
        "the new leader writes"
    );
    follower.server.shutdown().await;
}
