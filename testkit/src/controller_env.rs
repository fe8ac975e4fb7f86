//! The operator's controllers in-process against a real kube-apiserver: a leading replica,
//! polling helpers and condition lookups shared by the controller test files.

use super::kube::KubeApi;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use mcp_oauth_operator::app::{self, Registrations, RunningServer};
use mcp_oauth_operator::cli::{Cli, Command, ServerArgs};
use mcp_oauth_operator::controller::{ControllerConfig, KubeSource, Leadership};
use mcp_oauth_operator::crd::{RemoteMCPServer, TokenExchangePolicy, condition};
use mcp_oauth_operator::registry::ServerKey;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a reconcile may take to show (the apiserver, watch and status round trip, plus an
/// endpoint check on loopback).
pub const SOON: Duration = Duration::from_secs(30);

/// One in-process operator replica that leads (fixed flag) and watches every namespace.
pub struct LeadingOperator {
    pub server: RunningServer,
    _leader: watch::Sender<bool>,
}

impl LeadingOperator {
    /// Starts the replica and waits until its watches have listed everything once.
    pub async fn start(kube: &KubeApi) -> Self {
        Self::start_allowing(kube, &[]).await
    }

    /// [`Self::start`], letting `issuers` receive callers' tokens in exchange mode
    /// (`--exchange-allowed-issuers`; none otherwise: the replica has no `--oidc-issuer`).
    pub async fn start_allowing(kube: &KubeApi, issuers: &[&str]) -> Self {
        let (tx, rx) = watch::channel(true);
        let allowed = issuers.join(",");
        let extra: Vec<&str> = if issuers.is_empty() {
            Vec::new()
        } else {
            vec!["--exchange-allowed-issuers", &allowed]
        };
        let server = start_replica(kube, "replica-1", Leadership::Fixed(rx), &[], &extra).await;
        let op = Self {
            server,
            _leader: tx,
        };
        eventually("the operator's watches sync", SOON, || async {
            op.server.readiness.reasons().is_none().then_some(())
        })
        .await;
        op
    }

    pub fn policy_registered(&self, namespace: &str, name: &str) -> bool {
        self.server
            .registry
            .policy(&ServerKey::new(namespace, name))
            .is_some()
    }

    pub fn server_registered(&self, namespace: &str, name: &str) -> bool {
        self.server
            .registry
            .server(&ServerKey::new(namespace, name))
            .is_some()
    }
}

/// The server flags of `run` as the binary parses them (anonymous callers, its own port), with
/// `extra` flags on top.
pub fn run_args(extra: &[&str]) -> ServerArgs {
    let base = [
        "mcp-oauth-operator",
        "run",
        "--listen",
        "127.0.0.1:0",
        "--identity",
        "anonymous",
    ];
    let cli = Cli::try_parse_with_defaults(base.iter().chain(extra)).expect("run args parse");
    let Command::Run(args) = cli.command else {
        unreachable!("run was requested")
    };
    args.server
}

/// Starts an in-process operator replica (`run`, anonymous identity, its own port) against
/// `kube`, watching `namespaces` (all when empty); `extra_args` are more `run` flags.
pub async fn start_replica(
    kube: &KubeApi,
    identity: &str,
    leadership: Leadership,
    namespaces: &[&str],
    extra_args: &[&str],
) -> RunningServer {
    // `RUST_LOG=mcp_oauth_operator=debug` shows the operator's logs of a failing test.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let args = run_args(extra_args);
    let source = KubeSource {
        client: kube.client(),
        config: ControllerConfig {
            namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(),
            identity: identity.to_owned(),
            leadership,
        },
    };
    app::start(&args.app_config(), Registrations::Kubernetes(source))
        .await
        .expect("operator starts")
}

/// A kube-apiserver with the CRDs installed and `namespaces` created.
pub async fn start_cluster(namespaces: &[&str]) -> KubeApi {
    let kube = KubeApi::start().await;
    kube.install_crds().await;
    for ns in namespaces {
        kube.create_namespace(ns).await;
    }
    kube
}

/// Polls `check` until it yields a value, panicking after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn condition_of<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Waits until policy `name` is `Ready={status}` with `reason` for its current generation;
/// returns that condition.
pub async fn wait_policy(
    api: &Api<TokenExchangePolicy>,
    name: &str,
    status: &str,
    reason: &str,
) -> Condition {
    let mut last = None;
    let found = tokio::time::timeout(SOON, async {
        loop {
            if let Some(obj) = api.get_opt(name).await.expect("get policy")
                && let Some(st) = obj.status.as_ref()
                && let Some(ready) = condition_of(&st.conditions, condition::READY)
            {
                if ready.status == status
                    && ready.reason == reason
                    && st.observed_generation == obj.metadata.generation
                {
                    return ready.clone();
                }
                last = Some(format!(
                    "{}/{}: {}",
                    ready.status, ready.reason, ready.message
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| {
        panic!("policy {name} did not become Ready={status} ({reason}); last seen: {last:?}")
    })
}

/// Waits until server `name` is `Ready={status}` with `reason` for its current generation;
/// returns that condition.
pub async fn wait_server(
    api: &Api<RemoteMCPServer>,
    name: &str,
    status: &str,
    reason: &str,
) -> Condition {
    eventually(
        &format!("server {name} is Ready={status} ({reason})"),
        SOON,
        || async {
            let obj = api.get_opt(name).await.expect("get server")?;
            let st = obj.status.as_ref()?;
            let ready = condition_of(&st.conditions, condition::READY)?;
            (ready.status == status
                && ready.reason == reason
                && st.observed_generation == obj.metadata.generation)
                .then(|| ready.clone())
        },
    )
    .await
}

/// The reasons and types of the Events about `name` in `namespace`, as `Type/Reason` lines.
pub async fn events_of(kube: &KubeApi, namespace: &str, name: &str) -> String {
    let field = format!("involvedObject.name={name}");
    kube.kubectl_ok(&[
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        &field,
        "-o",
        "jsonpath={range .items[*]}{.type}/{.reason}{\"\\n\"}{end}",
    ])
    .await
}
