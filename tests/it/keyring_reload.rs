//! The encryption key ring is replaced while the gateway runs, without a restart: from a Secret
//! read through a real kube-apiserver (`run --encryption-key-secret`) and from a key file or
//! directory (`--encryption-key-file`), against a real Valkey. Checked on the raw bytes in
//! Valkey (which key id each newly written envelope carries), on old tokens (still readable),
//! on bad rings (refused, the last good one stays, counted in the metrics) and on `/readyz`
//! (not ready until the first good ring from the Secret).

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use mcp_oauth_operator::app::{self, Registrations, RunningServer};
use mcp_oauth_operator::cli::{Cli, Command, ServerArgs};
use mcp_oauth_operator::controller::{ControllerConfig, KubeSource, Leadership};
use mcp_oauth_operator::crypto::envelope_key_id;
use mcp_oauth_operator::store::{TokenBinding, TokenKey, TokenRecord};
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretString};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};
use testkit::kube::KubeApi;
use testkit::valkey::{Valkey, random_prefix};
use tokio::sync::watch;

/// How long a change may take to apply (watch round trip, or file debounce).
const SOON: Duration = Duration::from_secs(20);
const SECRET: &str = "mcp-keys";

fn key_b64() -> String {
    let mut k = [0u8; 32];
    rand::rng().fill_bytes(&mut k);
    base64::engine::general_purpose::STANDARD.encode(k)
}

fn args(subcommand: &str, extra: &[&str]) -> ServerArgs {
    let mut argv = vec!["mcp-oauth-operator", subcommand, "--listen", "127.0.0.1:0"];
    argv.extend_from_slice(extra);
    match Cli::try_parse_with_defaults(argv)
        .expect("args parse")
        .command
    {
        Command::Run(a) => a.server,
        Command::Serve(a) => a.server,
        _ => unreachable!("run or serve was requested"),
    }
}

fn valkey_flags<'a>(url: &'a str, prefix: &'a str) -> Vec<&'a str> {
    vec![
        "--store",
        "valkey",
        "--valkey-url",
        url,
        "--valkey-key-prefix",
        prefix,
    ]
}

/// Polls `check` until it yields a value, panicking after [`SOON`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + SOON;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn record(access: &str) -> TokenRecord {
    TokenRecord {
        access_token: SecretString::from(access.to_owned()),
        token_type: "Bearer".into(),
        refresh_token: None,
        expires_at: None,
        granted_scope: None,
        issuer: "https://idp.example".into(),
        client_id: "c".into(),
        user: "alice".into(),
        obtained_at: 1,
    }
}

fn token_key(session: &str) -> TokenKey {
    TokenKey::new(
        session,
        TokenBinding::new("https://idp.example", "default", "https://mcp.example/mcp"),
        "",
    )
}

/// The gateway under test with its raw view of Valkey.
struct Subject {
    server: RunningServer,
    raw: testkit::valkey::RawValkey,
    prefix: String,
    /// Keeps the operator's fixed leader flag alive.
    _leader: Option<watch::Sender<bool>>,
}

impl Subject {
    /// Stores a token for `session` through the gateway's token store.
    async fn put(&self, session: &str, access: &str) -> Result<(), String> {
        self.server
            .token_store
            .put(&token_key(session), record(access))
            .await
            .map_err(|e| e.to_string())
    }

    async fn read(&self, session: &str) -> Option<String> {
        self.server
            .token_store
            .get(&token_key(session))
            .await
            .expect("token readable")
            .map(|r| r.access_token.expose_secret().to_owned())
    }

    /// Key id of the envelope stored for `session` (one entry per session here).
    async fn stored_key_id(&self, session: &str) -> String {
        let all = self
            .raw
            .hgetall(&format!("{}oauth:token:{session}", self.prefix))
            .await;
        let (_, value) = all.iter().next().expect("a stored token");
        assert!(
            !value.windows(6).any(|w| w == b"secret"),
            "the stored value is sealed"
        );
        envelope_key_id(value).expect("an envelope").to_owned()
    }

    /// Writes a fresh token for `session` until its envelope carries `key_id` (the reload is
    /// asynchronous); returns after that write.
    async fn wait_sealed_with(&self, session: &str, key_id: &str) {
        eventually(&format!("new values are sealed with {key_id}"), || async {
            self.put(session, "secret-new").await.ok()?;
            (self.stored_key_id(session).await == key_id).then_some(())
        })
        .await;
    }

    /// The key ring's metric `name` as `/metrics` exports it.
    fn metric(&self, name: &str) -> i64 {
        let exported = match name {
            "generation" => "mcpoauth_keyring_generation",
            "keys" => "mcpoauth_keyring_keys",
            "failures" => "mcpoauth_keyring_reload_failures_total",
            "reloads" => "mcpoauth_keyring_reloads_total",
            other => panic!("unknown metric {other}"),
        };
        let text = self.server.metrics.encode();
        text.lines()
            .find_map(|line| line.strip_prefix(exported)?.strip_prefix(' '))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("{exported} not exported:\n{text}"))
    }

    fn reasons(&self) -> String {
        self.server
            .readiness
            .reasons()
            .unwrap_or_default()
            .join("; ")
    }
}

fn secret(data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(SECRET.to_owned()),
            ..ObjectMeta::default()
        },
        string_data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Secret::default()
    }
}

async fn patch_secret(api: &Api<Secret>, string_data: serde_json::Value) {
    api.patch(
        SECRET,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "stringData": string_data })),
    )
    .await
    .expect("patch the key Secret");
}

async fn start_operator(client: Client, url: &str, prefix: &str) -> Subject {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut flags = valkey_flags(url, prefix);
    flags.extend(["--identity", "anonymous", "--encryption-key-secret", SECRET]);
    let args = args("run", &flags);
    let (leader_tx, leader) = watch::channel(true);
    let source = KubeSource {
        client,
        config: ControllerConfig {
            namespaces: vec![],
            identity: "keyring-test".into(),
            leadership: Leadership::Fixed(leader),
        },
    };
    let server = app::start(&args.app_config(), Registrations::Kubernetes(source))
        .await
        .expect("operator starts");
    Subject {
        server,
        raw: Valkey::shared().raw().await,
        prefix: prefix.to_owned(),
        _leader: Some(leader_tx),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_ring_secret_is_followed_without_a_restart() {
    let kube = KubeApi::start().await;
    kube.install_crds().await;
    let client = kube.client();
    let namespace = client.default_namespace().to_owned();
    let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let valkey = Valkey::shared();
    let prefix = random_prefix();
    let op = start_operator(client, &valkey.url(), &prefix).await;

    // No Secret yet: fail closed, and /readyz says why.
    eventually("readiness names the missing Secret", || async {
        let why = op.reasons();
        why.contains(&format!("keys: Secret {namespace}/{SECRET} not found"))
            .then_some(())
    })
    .await;
    let err = op
        .put("s0", "secret-0")
        .await
        .expect_err("no keys, no store");
    assert!(err.contains("encryption keys not loaded"), "{err}");
    assert!(op.raw.keys(&format!("{prefix}*")).await.is_empty());
    assert_eq!(op.metric("generation"), 0);

    // The first good ring opens the store and readiness.
    let (k1, k2) = (key_b64(), key_b64());
    api.create(
        &PostParams::default(),
        &secret(&[("primary", "k1"), ("k1", &k1)]),
    )
    .await
    .expect("create the key Secret");
    eventually("ready once the Secret holds a ring", || async {
        op.server.readiness.reasons().is_none().then_some(())
    })
    .await;
    op.put("s1", "secret-1").await.expect("store works");
    assert_eq!(op.stored_key_id("s1").await, "k1");
    assert_eq!((op.metric("generation"), op.metric("keys")), (1, 1));

    // A new primary key: new values carry it at once, old ones still read.
    patch_secret(&api, serde_json::json!({ "primary": "k2", "k2": k2 })).await;
    op.wait_sealed_with("s2", "k2").await;
    assert_eq!(op.read("s1").await.as_deref(), Some("secret-1"));
    assert_eq!((op.metric("generation"), op.metric("keys")), (2, 2));
    assert_eq!(op.metric("reloads"), 1);

    // An invalid Secret is refused: the last good ring stays in use, the failure is counted.
    let failures = op.metric("failures");
    patch_secret(&api, serde_json::json!({ "primary": "k3" })).await;
    eventually("the invalid ring is counted", || async {
        (op.metric("failures") > failures).then_some(())
    })
    .await;
    op.put("s3", "secret-3").await.expect("store still works");
    assert_eq!(op.stored_key_id("s3").await, "k2");
    assert_eq!(op.read("s1").await.as_deref(), Some("secret-1"));
    assert_eq!(op.metric("generation"), 2);
    assert!(op.server.readiness.reasons().is_none(), "{}", op.reasons());

    // Deleted: still the last good ring.
    let failures = op.metric("failures");
    api.delete(SECRET, &DeleteParams::default())
        .await
        .expect("delete the key Secret");
    eventually("the deletion is counted", || async {
        (op.metric("failures") > failures).then_some(())
    })
    .await;
    op.put("s4", "secret-4").await.expect("store still works");
    assert_eq!(op.stored_key_id("s4").await, "k2");
    assert_eq!(op.read("s2").await.as_deref(), Some("secret-new"));

    op.server.shutdown().await;
}

/// The chart's RBAC for the key ring: get/list/watch on the one Secret (`resourceNames`), no
/// other Secret. The operator's watch must work with exactly that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_watch_needs_only_the_named_secret() {
    let kube = KubeApi::start().await;
    kube.install_crds().await;
    let namespace = kube.client().default_namespace().to_owned();
    let key = key_b64();
    let role = format!(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{ name: keyring-reader, namespace: {namespace} }}
rules:
  - apiGroups: [\"\"]
    resources: [secrets]
    resourceNames: [{SECRET}]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: keyring-reader, namespace: {namespace} }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: Role, name: keyring-reader }}
subjects:
  - {{ apiGroup: rbac.authorization.k8s.io, kind: User, name: keyring-reader }}
"
    );
    kube.apply_yaml(&role).await;
    Api::<Secret>::namespaced(kube.client(), &namespace)
        .create(&PostParams::default(), &secret(&[("k1", &key)]))
        .await
        .expect("create the key Secret");

    let mut config = kube.config().await;
    config.auth_info.impersonate = Some("keyring-reader".into());
    let limited = Client::try_from(config).expect("impersonating client");
    let denied = Api::<Secret>::namespaced(limited.clone(), &namespace)
        .list(&Default::default())
        .await;
    assert!(denied.is_err(), "an unfiltered list must be forbidden");

    let reloader = mcp_oauth_operator::keys::KeyRingReloader::pending(
        format!("Secret {namespace}/{SECRET}"),
        Box::new(|_| {}),
        mcp_oauth_operator::keys::KeyRingMetrics::default(),
        std::sync::Arc::new(mcp_oauth_operator::http::Readiness::new()),
    );
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = mcp_oauth_operator::keys::secret::spawn(
        limited,
        &namespace,
        SECRET,
        reloader.clone(),
        cancel.clone(),
    );
    let handle = eventually("the ring is read with the narrow RBAC", || async {
        reloader.handle()
    })
    .await;
    assert_eq!(handle.current().key_ids(), ["k1"]);
    cancel.cancel();
    let _ = task.await;
}

/// Writes `text` to `dir/name` via a temporary file and a rename (as config tools do).
fn replace_file(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, dir.join(name)).expect("rename");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_file_is_followed_without_a_restart() {
    let valkey = Valkey::shared();
    let url = valkey.url();
    let prefix = random_prefix();
    let dir = tempfile::tempdir().expect("tempdir");
    let (k1, k2) = (key_b64(), key_b64());
    replace_file(dir.path(), "ring.yaml", &format!("k1: {k1}\n"));
    let file = dir.path().join("ring.yaml");
    let file = file.to_str().expect("utf-8 path");
    let mut flags = valkey_flags(&url, &prefix);
    flags.extend(["--encryption-key-file", file]);
    let server = app::start(
        &args("serve", &flags).app_config(),
        Registrations::Programmatic,
    )
    .await
    .expect("gateway starts");
    let op = Subject {
        server,
        raw: valkey.raw().await,
        prefix,
        _leader: None,
    };
    op.put("f1", "secret-1").await.expect("store works");
    assert_eq!(op.stored_key_id("f1").await, "k1");

    replace_file(
        dir.path(),
        "ring.yaml",
        &format!("primary: k2\nk1: {k1}\nk2: {k2}\n"),
    );
    op.wait_sealed_with("f2", "k2").await;
    assert_eq!(op.read("f1").await.as_deref(), Some("secret-1"));
    assert_eq!(op.metric("generation"), 2);

    // A broken file is refused; the gateway keeps sealing with k2.
    replace_file(dir.path(), "ring.yaml", &format!("primary: k9\nk1: {k1}\n"));
    eventually("the broken ring is counted", || async {
        (op.metric("failures") >= 1).then_some(())
    })
    .await;
    op.put("f3", "secret-3").await.expect("store still works");
    assert_eq!(op.stored_key_id("f3").await, "k2");
    assert_eq!(op.metric("generation"), 2);
    op.server.shutdown().await;
}
