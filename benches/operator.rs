//! The operator against a real kube-apiserver: start-up time to `/readyz`, resident memory idle
//! and with 1,000 and 10,000 `RemoteMCPServer`s, and the time from creating them to all of them
//! reporting `Ready=True`.
//!
//! Method (see `docs/benchmarks.md`, section "Operator"):
//!
//! * etcd + kube-apiserver v1.20 are started exactly as the integration tests start them
//!   (`testkit/src/kube.rs`), the CRDs installed, namespace `bench` created.
//! * The operator is the `mcp-oauth-operator` binary cargo builds for this bench (bench profile =
//!   the release settings; `OPERATOR_BIN` overrides), run as `mcp-oauth-operator run` with the
//!   cluster's admin kubeconfig and Lease-based leader election, as in a cluster.
//! * Start-up: from spawning the process to the first `200` from `/readyz` (every watch has
//!   listed once). Idle memory: `VmRSS` from `/proc/<pid>/status`, 3 s after that.
//! * Load: resources in `mode: none` (no outbound discovery, so the figures are the operator's
//!   and the apiserver's own), created through the API 32 at a time. A watch on the resources
//!   records when each reports `Ready=True`; "all Ready" is measured from the first create.
//!   Then memory is read again after 3 s, and the same for the next 9,000 (10,000 in all).
//! * CPU time (`utime + stime` from `/proc/<pid>/stat`) of the operator, the apiserver and etcd
//!   over each phase, to show who the time goes to; the operator's status writes and reconciles
//!   from its `/metrics`.
//! * Last, a restart with 10,000 resources: time to `/readyz` again and the time until the new
//!   process has reconciled all 10,000 (they are unchanged, so no status is written).
//!
//! Run: `scripts/bench-operator.sh` (or `cargo bench --bench operator`). `OPERATOR_BENCH_SIZES`
//! (default `1000,10000`): the cumulative resource counts to measure at.
//!
//! `cargo test --benches` also builds and starts this binary; without cargo bench's `--bench`
//! argument it exits at once.

use futures::{StreamExt as _, TryStreamExt as _};
use kube::Api;
use kube::api::PostParams;
use kube::runtime::{WatchStreamExt as _, watcher};
use mcp_oauth_operator::crd::{AuthMode, AuthSpec, RemoteMCPServer, RemoteMCPServerSpec};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};
use testkit::free_port;
use testkit::kube::KubeApi;

const NAMESPACE: &str = "bench";
/// Creates in flight at once.
const CREATE_CONCURRENCY: usize = 32;
/// Settling time before memory is read.
const SETTLE: Duration = Duration::from_secs(3);
/// Longest wait for one phase.
const PHASE_TIMEOUT: Duration = Duration::from_secs(1800);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return ExitCode::SUCCESS;
    }
    if !args.iter().any(|a| a == "--bench") {
        eprintln!("operator bench: not run as a test; run it with `cargo bench --bench operator`");
        return ExitCode::SUCCESS;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
    ExitCode::SUCCESS
}

/// One row of the results table.
struct Row {
    what: String,
    value: String,
}

fn row(rows: &mut Vec<Row>, what: impl Into<String>, value: impl Into<String>) {
    let row = Row {
        what: what.into(),
        value: value.into(),
    };
    eprintln!("operator bench: {}: {}", row.what, row.value);
    rows.push(row);
}

async fn run() {
    let sizes = sizes();
    let mut rows = Vec::new();
    let kube = KubeApi::start().await;
    kube.install_crds().await;
    kube.create_namespace(NAMESPACE).await;
    let cluster = ClusterPids::find(&kube);
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/operator-bench");
    std::fs::create_dir_all(&out_dir).expect("create target/operator-bench");

    // One port for both runs: the public URL (and so every status' endpoint) stays the same.
    let port = free_port();
    let mut op = Operator::start(&kube, port, &out_dir.join("operator-1.log"));
    let started = op.wait_ready().await;
    row(
        &mut rows,
        "start-up to /readyz 200 (empty cluster)",
        ms(started),
    );
    tokio::time::sleep(SETTLE).await;
    row(&mut rows, "RSS idle (0 resources)", op.rss());

    let api: Api<RemoteMCPServer> = Api::namespaced(kube.client(), NAMESPACE);
    let mut created = 0;
    for &total in &sizes {
        let cpu_before = (op.cpu(), cluster.cpu());
        let new = total - created;
        let (all_created, half_ready, all_ready) = create_and_wait(&api, created, total).await;
        created = total;
        let cpu = (op.cpu() - cpu_before.0, cluster.cpu() - cpu_before.1);
        row(
            &mut rows,
            format!("{new} created → all {total} Ready (from first create)"),
            format!(
                "{} (all created after {}, half Ready after {})",
                secs(all_ready),
                secs(all_created),
                secs(half_ready)
            ),
        );
        row(
            &mut rows,
            format!("CPU during that phase: operator / apiserver + etcd ({new} new)"),
            format!("{:.1} s / {:.1} s", cpu.0, cpu.1),
        );
        tokio::time::sleep(SETTLE).await;
        row(&mut rows, format!("RSS with {total} resources"), op.rss());
        row(
            &mut rows,
            format!("status writes / reconciles so far ({total} resources)"),
            op.counters().await,
        );
    }

    // Restart with everything in place: the list, then a reconcile of each (no writes).
    op.stop();
    let mut op = Operator::start(&kube, port, &out_dir.join("operator-2.log"));
    let restarted = op.wait_ready().await;
    row(
        &mut rows,
        format!("restart to /readyz 200 ({created} resources)"),
        ms(restarted),
    );
    let spawned = op.spawned;
    let reconciled = op.wait_reconciled(created).await;
    row(
        &mut rows,
        format!("restart to all {created} reconciled"),
        secs(reconciled.duration_since(spawned)),
    );
    tokio::time::sleep(SETTLE).await;
    row(
        &mut rows,
        format!("RSS after restart ({created} resources)"),
        op.rss(),
    );
    row(
        &mut rows,
        "status writes / reconciles after restart",
        op.counters().await,
    );
    op.stop();

    println!("| measurement | value |\n|---|---|");
    for r in rows {
        println!("| {} | {} |", r.what, r.value);
    }
}

fn sizes() -> Vec<usize> {
    let raw = std::env::var("OPERATOR_BENCH_SIZES").unwrap_or_else(|_| "1000,10000".to_owned());
    let sizes: Vec<usize> = raw
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("OPERATOR_BENCH_SIZES: comma-separated counts")
        })
        .collect();
    assert!(
        sizes.windows(2).all(|w| w[0] < w[1]) && sizes.first().is_some_and(|s| *s > 0),
        "OPERATOR_BENCH_SIZES must be increasing and positive"
    );
    sizes
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn server(i: usize) -> RemoteMCPServer {
    RemoteMCPServer::new(
        &format!("s-{i:05}"),
        RemoteMCPServerSpec {
            url: format!("https://mcp-{i:05}.example.com/mcp"),
            allow_insecure_http: false,
            auth: AuthSpec {
                mode: AuthMode::None,
                ..AuthSpec::default()
            },
            forward_headers: Vec::new(),
        },
    )
}

fn is_ready(obj: &RemoteMCPServer) -> bool {
    obj.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Creates resources `from..to` and waits until all `to` are Ready. Returns, from the first
/// create: all created, half of the new ones Ready, all Ready.
async fn create_and_wait(
    api: &Api<RemoteMCPServer>,
    from: usize,
    to: usize,
) -> (Duration, Duration, Duration) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let watch_api = api.clone();
    // The watch runs before the first create, so no Ready transition is missed.
    let watch = tokio::spawn(async move {
        let mut ready = HashSet::new();
        let stream = watcher(watch_api, watcher::Config::default()).applied_objects();
        futures::pin_mut!(stream);
        while let Some(obj) = stream.try_next().await.expect("watch RemoteMCPServers") {
            let name = obj.metadata.name.clone().unwrap_or_default();
            if is_ready(&obj) {
                if ready.insert(name) && tx.send(ready.len()).is_err() {
                    return;
                }
            } else {
                ready.remove(&name);
            }
        }
    });
    // Wait for the watch to see what is already there.
    if from > 0 {
        loop {
            let seen = rx.recv().await.expect("watch alive");
            if seen >= from {
                break;
            }
        }
    }
    let start = Instant::now();
    futures::stream::iter(from..to)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &server(i))
                    .await
                    .unwrap_or_else(|e| panic!("create s-{i:05}: {e}"))
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .for_each(|_| async {})
        .await;
    let all_created = start.elapsed();
    let half = from + (to - from) / 2;
    let mut half_ready = None;
    let deadline = start + PHASE_TIMEOUT;
    loop {
        let seen = tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("not all {to} Ready within {PHASE_TIMEOUT:?}"))
            .expect("watch alive");
        if seen >= half && half_ready.is_none() {
            half_ready = Some(start.elapsed());
        }
        if seen >= to {
            break;
        }
    }
    let all_ready = start.elapsed();
    watch.abort();
    (all_created, half_ready.unwrap_or(all_ready), all_ready)
}

/// The operator process, killed when dropped.
struct Operator {
    child: std::process::Child,
    port: u16,
    spawned: Instant,
    http: reqwest::Client,
}

impl Operator {
    fn start(kube: &KubeApi, port: u16, log: &Path) -> Self {
        let bin = std::env::var_os("OPERATOR_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_mcp-oauth-operator")));
        let log_file = std::fs::File::create(log).expect("operator log file");
        let spawned = Instant::now();
        let child = std::process::Command::new(&bin)
            .args([
                "run",
                "--identity",
                "anonymous",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .env("KUBECONFIG", kube.kubeconfig_path())
            .env("MCPOAUTH_POD_NAME", "bench-replica")
            .env("MCPOAUTH_LEADER_ELECTION_NAMESPACE", "default")
            .env("MCPOAUTH_LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file handle"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        Self {
            child,
            port,
            spawned,
            http: reqwest::Client::new(),
        }
    }

    /// Time from spawn to the first `200` from `/readyz`.
    async fn wait_ready(&mut self) -> Duration {
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        loop {
            if let Ok(resp) = self.http.get(&url).send().await
                && resp.status().is_success()
            {
                return self.spawned.elapsed();
            }
            if let Some(status) = self.child.try_wait().expect("operator status") {
                panic!("the operator exited ({status}); see target/operator-bench/");
            }
            assert!(
                self.spawned.elapsed() < Duration::from_secs(60),
                "operator not ready within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// When the reconcile counter first reaches `n`.
    async fn wait_reconciled(&self, n: usize) -> Instant {
        let deadline = Instant::now() + PHASE_TIMEOUT;
        loop {
            let text = self.metrics().await;
            if metric_sum(&text, "mcpoauth_reconciles_total{kind=\"RemoteMCPServer\"") >= n as u64 {
                return Instant::now();
            }
            assert!(Instant::now() < deadline, "not all {n} reconciled in time");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn metrics(&self) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.port);
        self.http
            .get(&url)
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body")
    }

    async fn counters(&self) -> String {
        let text = self.metrics().await;
        format!(
            "{} / {}",
            metric_sum(
                &text,
                "mcpoauth_status_writes_total{kind=\"RemoteMCPServer\""
            ),
            metric_sum(&text, "mcpoauth_reconciles_total{kind=\"RemoteMCPServer\"")
        )
    }

    fn rss(&self) -> String {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("operator /proc status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().trim_end_matches(" kB").trim().to_owned())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        format!(
            "{:.1} MiB (peak {:.1} MiB)",
            field("VmRSS:") as f64 / 1024.0,
            field("VmHWM:") as f64 / 1024.0
        )
    }

    fn cpu(&self) -> f64 {
        cpu_seconds(self.child.id())
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sum of every sample whose line starts with `prefix` (label set prefix included).
fn metric_sum(text: &str, prefix: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The apiserver's and etcd's pids, found by their command lines naming the cluster's directory.
struct ClusterPids(Vec<u32>);

impl ClusterPids {
    fn find(kube: &KubeApi) -> Self {
        let kubeconfig = kube.kubeconfig_path();
        let dir = kubeconfig
            .parent()
            .expect("kubeconfig in the cluster dir")
            .display()
            .to_string();
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if matches!(comm.trim(), "etcd" | "kube-apiserver")
                && String::from_utf8_lossy(&cmdline).contains(&dir)
            {
                pids.push(pid);
            }
        }
        assert_eq!(pids.len(), 2, "found etcd and kube-apiserver: {pids:?}");
        Self(pids)
    }

    fn cpu(&self) -> f64 {
        self.0.iter().map(|p| cpu_seconds(*p)).sum()
    }
}

/// `utime + stime` of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
        .sum();
    ticks as f64 / clock_ticks()
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
