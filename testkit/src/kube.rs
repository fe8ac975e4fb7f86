//! A real Kubernetes API server for tests: kube-apiserver v1.20.2 (built from Debian bookworm's
//! `kubernetes` source package by `scripts/build-kube-apiserver.sh`, cached by
//! `scripts/setup-test-deps.sh` in `$MCPOAUTH_K8S_CACHE`, default
//! `~/.cache/mcp-oauth-operator/k8s-bin`) on Debian's `etcd` 3.4, with a fresh openssl-made PKI
//! and an admin (`system:masters`) kubeconfig. Each [`KubeApi`] is its own cluster.
//!
//! v1.20 caveats (it is the newest real apiserver the reachable registries allow; see
//! `../shared/reference/test-infra.md` §1), so plan tests around them:
//! - **No CEL**: `x-kubernetes-validations` (1.25+) are silently dropped from the CRDs; test CEL
//!   rules with kube's client-side CEL validation instead. OpenAPI schema checks (`pattern`,
//!   `enum`, lengths, required) *are* enforced.
//! - **Server-side apply is beta** (it works, managedFields included); no `subresource` in
//!   managedFields entries. It refuses fields 1.20's schemas lack ("field not declared in
//!   schema"), e.g. a CRD manifest with `x-kubernetes-validations`: install such manifests with
//!   a plain create/apply (which drops them), as [`KubeApi::install_crds`] does.
//! - Missing newer APIs: ValidatingAdmissionPolicy, `policy/v1` PDB, `autoscaling/v2`,
//!   `batch/v1` CronJob, streaming lists (`sendInitialEvents`), CRD field selectors.
//! - **No scheduler, kubelet or controller-manager**: pods never run, nothing is garbage
//!   collected and deleted namespaces stay `Terminating`. The operator runs as a host process
//!   (or in the test) with [`KubeApi::kubeconfig_path`] / [`KubeApi::client`].
//! - `kubectl` (1.32) warns about the version skew on stderr; it works.
//!
//! etcd and the apiserver run under a small `sh` wrapper holding our end of a pipe on its stdin:
//! when the test process ends in any way (even SIGKILL), the pipe closes and the wrapper stops
//! the server, so nothing lingers. Dropping a [`KubeApi`] kills both and waits for them.

mod pki;
mod process;

use super::net::free_port;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use pki::{make_pki, write_kubeconfig};
use process::{StartFailure, Supervised, log_tail};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt as _;

/// How long the apiserver may take to report `/readyz` ok (about 4 s on an idle 2-core box).
const APISERVER_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long etcd may take to answer `/health`.
const ETCD_READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Attempts with fresh ports when a server loses the race for the port `free_port` found.
const PORT_ATTEMPTS: usize = 3;
/// How long `install_crds` waits for the CRDs to become Established.
const CRD_ESTABLISHED_TIMEOUT: &str = "30s";

/// A running etcd + kube-apiserver on 127.0.0.1; both are stopped when dropped.
pub struct KubeApi {
    apiserver: Option<Supervised>,
    etcd: Option<Supervised>,
    apiserver_bin: PathBuf,
    port: u16,
    etcd_url: String,
    client: Client,
    // Dropped last: the servers above are stopped in `Drop` before their files go.
    dir: tempfile::TempDir,
}

impl KubeApi {
    /// Starts etcd and kube-apiserver on free ports and waits until the apiserver is ready.
    ///
    /// Panics with a hint to run `scripts/setup-test-deps.sh` when a binary is missing.
    pub async fn start() -> Self {
        install_crypto_provider();
        let apiserver_bin = apiserver_binary();
        let dir = tempfile::Builder::new()
            .prefix("kube-api-")
            .tempdir()
            .expect("tempdir for kube-apiserver");
        make_pki(&dir.path().join("pki"));

        let (etcd, etcd_url) = start_etcd(dir.path()).await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port();
            write_kubeconfig(dir.path(), port);
            let client = client_from_kubeconfig(&dir.path().join("kubeconfig")).await;
            let mut apiserver = spawn_apiserver(&apiserver_bin, dir.path(), port, &etcd_url);
            match wait_apiserver_ready(&client, &mut apiserver).await {
                Ok(()) => {
                    return Self {
                        apiserver: Some(apiserver),
                        etcd: Some(etcd),
                        apiserver_bin,
                        port,
                        etcd_url,
                        client,
                        dir,
                    };
                }
                Err(failure) if failure.port_taken && attempt < PORT_ATTEMPTS => {
                    apiserver.kill();
                }
                Err(failure) => {
                    apiserver.kill();
                    panic!("{}", failure.message);
                }
            }
        }
    }

    /// The admin kubeconfig (user in group `system:masters`, absolute file paths), for
    /// `KUBECONFIG` of a process under test.
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// A client with admin rights (cheap to clone: it shares the connection pool).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// A fresh admin [`Config`] read from [`KubeApi::kubeconfig_path`], e.g. to build a client
    /// with other timeouts.
    pub async fn config(&self) -> Config {
        let kubeconfig = Kubeconfig::read_from(self.kubeconfig_path()).expect("read kubeconfig");
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("config from kubeconfig")
    }

    /// `https://127.0.0.1:{port}`.
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The PEM of the CA that signed the apiserver's and the admin's certificates.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.path().join("pki/ca.crt")
    }

    /// Runs `kubectl --kubeconfig <ours> <args>` (any exit status).
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with_stdin(args, None).await
    }

    /// Like [`KubeApi::kubectl`], but panics (quoting stderr) unless it succeeds; returns stdout.
    pub async fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        expect_success(&format!("kubectl {}", args.join(" ")), &out)
    }

    /// `kubectl apply -f -` with `yaml`; panics (quoting stderr) unless it succeeds.
    pub async fn apply_yaml(&self, yaml: &str) -> String {
        let out = self.try_apply_yaml(yaml).await;
        expect_success("kubectl apply", &out)
    }

    /// `kubectl apply -f -` with `yaml`, whatever the outcome (for rejections).
    pub async fn try_apply_yaml(&self, yaml: &str) -> Output {
        self.kubectl_with_stdin(&["apply", "-f", "-"], Some(yaml))
            .await
    }

    /// Applies `crds/*.yaml` and waits until every CRD there is Established.
    pub async fn install_crds(&self) {
        let crds = crate::repo_root().join("crds");
        let crds = crds.to_str().expect("crds path is UTF-8");
        // Client-side apply: 1.20's server-side apply rejects the fields it does not know
        // (`x-kubernetes-validations`: "field not declared in schema"), while a plain write
        // drops them. No kubectl validation either, for the same reason.
        let names = self
            .kubectl_ok(&["apply", "--validate=false", "-o", "name", "-f", crds])
            .await;
        let names: Vec<&str> = names.split_whitespace().collect();
        assert!(!names.is_empty(), "no CRDs found in {crds}");
        let timeout = format!("--timeout={CRD_ESTABLISHED_TIMEOUT}");
        let mut args = vec!["wait", "--for=condition=Established", &timeout];
        args.extend(names);
        self.kubectl_ok(&args).await;
    }

    /// Creates the namespace `name`.
    pub async fn create_namespace(&self, name: &str) {
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(self.client())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|err| panic!("create namespace {name}: {err}"));
    }

    /// Stops the apiserver (SIGTERM, waits until it has exited) and starts it again on the same
    /// port with the same etcd, so all objects survive; returns when it is ready again.
    /// Clients keep working once it is back.
    pub async fn restart_apiserver(&mut self) {
        if let Some(mut apiserver) = self.apiserver.take() {
            tokio::task::spawn_blocking(move || apiserver.stop())
                .await
                .expect("stop kube-apiserver");
        }
        let mut apiserver = spawn_apiserver(
            &self.apiserver_bin,
            self.dir.path(),
            self.port,
            &self.etcd_url,
        );
        if let Err(failure) = wait_apiserver_ready(&self.client, &mut apiserver).await {
            apiserver.kill();
            panic!("restart: {}", failure.message);
        }
        self.apiserver = Some(apiserver);
    }

    /// The last lines the apiserver logged (all runs).
    pub fn apiserver_log(&self) -> String {
        log_tail(&self.dir.path().join("kube-apiserver.log"))
    }

    async fn kubectl_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = tokio::process::Command::new("kubectl");
        command
            .arg("--kubeconfig")
            .arg(self.kubeconfig_path())
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run kubectl ({err}); is it installed?"));
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("kubectl stdin is piped");
            pipe.write_all(input.as_bytes())
                .await
                .expect("write kubectl stdin");
            drop(pipe);
        }
        child.wait_with_output().await.expect("wait for kubectl")
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        // Nothing needs to survive: kill at once rather than wait for a graceful shutdown.
        if let Some(mut apiserver) = self.apiserver.take() {
            apiserver.kill();
        }
        if let Some(mut etcd) = self.etcd.take() {
            etcd.kill();
        }
    }
}

impl std::fmt::Debug for KubeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeApi")
            .field("server", &self.server_url())
            .field("etcd", &self.etcd_url)
            .finish_non_exhaustive()
    }
}

/// Installs aws-lc-rs as rustls' process-wide provider (kube's rustls client needs one); a
/// provider installed earlier by another harness is fine.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The directory holding `kube-apiserver` (same rule as `scripts/setup-test-deps.sh`).
pub fn k8s_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MCPOAUTH_K8S_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").expect("HOME is set");
    PathBuf::from(home).join(".cache/mcp-oauth-operator/k8s-bin")
}

fn apiserver_binary() -> PathBuf {
    let bin = k8s_bin_dir().join("kube-apiserver");
    assert!(
        bin.is_file(),
        "{} is missing; run scripts/setup-test-deps.sh (it builds kube-apiserver v1.20.2 from \
         Debian's source package, about 5 minutes, once per machine)",
        bin.display()
    );
    bin
}

/// Starts etcd with its data in `dir/etcd` on free ports; returns it and its client URL.
async fn start_etcd(dir: &Path) -> (Supervised, String) {
    let http = reqwest::Client::new();
    for attempt in 1..=PORT_ATTEMPTS {
        let client_url = format!("http://127.0.0.1:{}", free_port());
        let peer_url = format!("http://127.0.0.1:{}", free_port());
        let data_dir = dir.join("etcd");
        let _ = std::fs::remove_dir_all(&data_dir);
        let args = vec![
            "--name=default".to_owned(),
            format!("--data-dir={}", data_dir.display()),
            "--unsafe-no-fsync".to_owned(),
            format!("--listen-client-urls={client_url}"),
            format!("--advertise-client-urls={client_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=default={peer_url}"),
            "--log-level=warn".to_owned(),
        ];
        let mut etcd = Supervised::spawn("etcd", &etcd_binary(), &args, dir.join("etcd.log"));
        let deadline = Instant::now() + ETCD_READY_TIMEOUT;
        let failure = loop {
            if let Ok(response) = http.get(format!("{client_url}/health")).send().await
                && response.status().is_success()
            {
                return (etcd, client_url);
            }
            if let Some(status) = etcd.exited() {
                break etcd.failure(format!("exited ({status})"));
            }
            if Instant::now() > deadline {
                break etcd.failure(format!("not healthy within {ETCD_READY_TIMEOUT:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        etcd.kill();
        if !(failure.port_taken && attempt < PORT_ATTEMPTS) {
            panic!("{}", failure.message);
        }
    }
    unreachable!("the last attempt panics")
}

/// Debian's `etcd-server` installs `/usr/bin/etcd`.
fn etcd_binary() -> PathBuf {
    let bin = PathBuf::from("/usr/bin/etcd");
    assert!(
        bin.is_file(),
        "{} is missing; run scripts/setup-test-deps.sh (apt package etcd-server)",
        bin.display()
    );
    bin
}

fn spawn_apiserver(bin: &Path, dir: &Path, port: u16, etcd_url: &str) -> Supervised {
    let pki = dir.join("pki");
    let file = |name: &str| pki.join(name).display().to_string();
    let args = vec![
        format!("--etcd-servers={etcd_url}"),
        "--bind-address=127.0.0.1".to_owned(),
        "--advertise-address=127.0.0.1".to_owned(),
        format!("--secure-port={port}"),
        "--insecure-port=0".to_owned(),
        format!("--cert-dir={}", dir.join("apiserver-certs").display()),
        format!("--tls-cert-file={}", file("apiserver.crt")),
        format!("--tls-private-key-file={}", file("apiserver.key")),
        format!("--client-ca-file={}", file("ca.crt")),
        format!("--service-account-key-file={}", file("sa.pub")),
        format!("--service-account-signing-key-file={}", file("sa.key")),
        "--service-account-issuer=https://kubernetes.default.svc".to_owned(),
        "--authorization-mode=RBAC".to_owned(),
        "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
        // Without a controller-manager no ServiceAccount token Secrets exist, and this plugin
        // would refuse every pod for lack of one.
        "--disable-admission-plugins=ServiceAccount".to_owned(),
        "--profiling=false".to_owned(),
    ];
    Supervised::spawn("kube-apiserver", bin, &args, dir.join("kube-apiserver.log"))
}

/// Polls `/readyz` with `client` until it answers `ok`.
async fn wait_apiserver_ready(
    client: &Client,
    apiserver: &mut Supervised,
) -> Result<(), StartFailure> {
    let deadline = Instant::now() + APISERVER_READY_TIMEOUT;
    loop {
        let request = http::Request::get("/readyz")
            .body(Vec::new())
            .expect("readyz request");
        let answer =
            tokio::time::timeout(Duration::from_secs(2), client.request_text(request)).await;
        if let Ok(Ok(body)) = answer
            && body.trim() == "ok"
        {
            return Ok(());
        }
        if let Some(status) = apiserver.exited() {
            return Err(apiserver.failure(format!("exited ({status})")));
        }
        if Instant::now() > deadline {
            return Err(apiserver.failure(format!("not ready within {APISERVER_READY_TIMEOUT:?}")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn client_from_kubeconfig(path: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config from kubeconfig");
    Client::try_from(config).expect("kube client from kubeconfig")
}

fn expect_success(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
