//! The gateway's cost on the request path: `tools/call` sent by `wrk` directly to an upstream
//! and through the gateway (`/mcp/{namespace}/{name}`), in the same run, with the figures the
//! peer gateway was measured by (`../shared/reference/performance-anchors.md`): gateway CPU per
//! proxied request, added p50/p99 latency at one connection, throughput at 16 connections
//! against `server-everything`, resident memory idle and under load, start → ready.
//!
//! Parts, all real: the release binary `target/release/mcp-oauth-operator serve` as its own
//! process (so `/proc/<pid>/stat` holds only its CPU), node-oidc-provider as the IdP (a real
//! browser login stores the token the gateway injects), `@modelcontextprotocol/server-everything`
//! as the SSE upstream, a real `valkey-server` for the Valkey-store rows, and a minimal "fast
//! upstream" in this process (axum; a fixed JSON-RPC result, the peer's method) which in its
//! protected variant answers 401 with RFC 9728 metadata until a bearer token is sent.
//!
//! Run: `scripts/bench-proxy.sh` (builds the release binary, then `cargo bench --bench proxy`).
//! Without cargo bench's `--bench` argument the binary exits at once (so `cargo test
//! --all-targets` does not run it). `PROXY_BENCH_SECS` sets the seconds per wrk run (default 5);
//! `PROXY_BENCH_GATEWAY` the gateway binary to measure (default `target/release/mcp-oauth-operator`).
//!
//! Layouts (`PROXY_BENCH_LAYOUT`): `shared` (default) leaves every process free to run on both
//! cores, so wrk, the upstream and the gateway compete for them; `pinned` puts this process (the
//! fast upstream), wrk and every other helper on CPU 0 and the gateway alone on CPU 1 — the
//! gateway has a core of its own, as a gateway pod does, and the direct runs get the same CPU 0
//! that wrk and the upstream have in the gateway runs.

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use testkit::{Browser, EverythingServer, Idp, IdpOptions, free_port};

const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}"#;
const RESULT: &str =
    r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"Echo: hello"}]}}"#;
const KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        return ExitCode::SUCCESS;
    }
    if pinned() {
        // Before the runtime exists, so every thread and child process inherits the mask.
        let pinned_self = Command::new("taskset")
            .args(["-a", "-c", "-p", CPU_WORLD, &std::process::id().to_string()])
            .stdout(Stdio::null())
            .status();
        if !pinned_self.is_ok_and(|s| s.success()) {
            eprintln!("proxy bench: taskset of this process failed (apt install util-linux)");
            return ExitCode::FAILURE;
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("proxy bench: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run()) {
        Ok(report) => {
            println!("{report}");
            let out = std::env::temp_dir().join("proxy-bench.md");
            if let Err(e) = std::fs::write(&out, &report) {
                eprintln!("proxy bench: cannot write {}: {e}", out.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("proxy bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

type BenchResult<T> = Result<T, String>;

/// CPU of wrk, the upstreams and this process in the `pinned` layout.
const CPU_WORLD: &str = "0";
/// CPU of the gateway in the `pinned` layout.
const CPU_GATEWAY: &str = "1";

fn pinned() -> bool {
    std::env::var("PROXY_BENCH_LAYOUT").is_ok_and(|v| v == "pinned")
}

/// The fast upstream: `open` answers every call; `protected` wants a bearer token first.
async fn start_fast_upstream(issuer: String) -> BenchResult<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let base = format!("http://127.0.0.1:{port}");
    let prm = serde_json::json!({
        "resource": format!("{base}/protected/mcp"),
        "authorization_servers": [issuer],
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["mcp:tools"],
    })
    .to_string();
    let challenge = format!(
        "Bearer scope=\"mcp:tools\", resource_metadata=\"{base}/.well-known/oauth-protected-resource/protected/mcp\""
    );
    let app = Router::new()
        .route("/open/mcp", post(|| async { json(RESULT) }))
        .route(
            "/protected/mcp",
            post(move |headers: HeaderMap| {
                let challenge = challenge.clone();
                async move {
                    let authorized = headers
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.len() > 7 && v.starts_with("Bearer "));
                    if authorized {
                        json(RESULT)
                    } else {
                        (
                            StatusCode::UNAUTHORIZED,
                            [(header::WWW_AUTHENTICATE, challenge)],
                            "",
                        )
                            .into_response()
                    }
                }
            }),
        )
        .route(
            "/.well-known/oauth-protected-resource/protected/mcp",
            get(move || {
                let prm = prm.clone();
                async move { json_owned(prm) }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(port)
}

fn json(body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn json_owned(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A gateway process.
struct Gateway {
    child: Child,
    base: String,
    started: Instant,
}

impl Gateway {
    fn start(binary: &Path, manifests: &Path, extra: &[String]) -> BenchResult<Self> {
        let port = free_port();
        let started = Instant::now();
        let mut cmd = if pinned() {
            let mut c = Command::new("taskset");
            c.args(["-c", CPU_GATEWAY]).arg(binary);
            c
        } else {
            Command::new(binary)
        };
        let child = cmd
            .arg("serve")
            .arg("--manifests")
            .arg(manifests)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        Ok(Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            started,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `/readyz` every millisecond; returns the time from spawn to the first 200.
    async fn wait_ready(&self, http: &reqwest::Client) -> BenchResult<Duration> {
        let url = format!("{}/readyz", self.base);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(self.started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Err("gateway did not become ready within 20 s".into())
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime of a process, in microseconds.
fn cpu_us(pid: u32) -> BenchResult<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    let after_comm = stat.rsplit_once(')').map(|(_, r)| r).ok_or("bad stat")?;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after_comm` starts at field 3.
    let ticks: f64 = fields
        .get(11)
        .zip(fields.get(12))
        .and_then(|(u, s)| Some(u.parse::<f64>().ok()? + s.parse::<f64>().ok()?))
        .ok_or("bad stat fields")?;
    Ok(ticks * 1_000_000.0 / clock_ticks())
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn rss_kib(pid: u32) -> BenchResult<u64> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| "no VmRSS".to_owned())
}

/// One wrk run's figures.
#[derive(Debug, Clone, Copy, Default)]
struct Load {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    errors: f64,
    /// Gateway CPU per request (µs), when a gateway was in the path.
    cpu_per_req_us: Option<f64>,
    /// Largest VmRSS of the gateway sampled during the run (KiB).
    peak_rss_kib: Option<u64>,
}

fn wrk_script(dir: &Path, headers: &[(&str, String)]) -> BenchResult<PathBuf> {
    let mut lua = String::new();
    lua.push_str("wrk.method = \"POST\"\n");
    let _ = writeln!(lua, "wrk.body = '{CALL}'");
    lua.push_str("wrk.headers[\"Content-Type\"] = \"application/json\"\n");
    lua.push_str("wrk.headers[\"Accept\"] = \"application/json, text/event-stream\"\n");
    for (k, v) in headers {
        let _ = writeln!(lua, "wrk.headers[\"{k}\"] = \"{v}\"");
    }
    lua.push_str(
        "done = function(s, lat, req)\n  io.write(string.format(\"RESULT %d %d %f %f %d\\n\", s.requests, s.duration, lat:percentile(50), lat:percentile(99), s.errors.status + s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout))\nend\n",
    );
    let path = dir.join(format!("call-{}.lua", headers.len()));
    std::fs::write(&path, lua).map_err(|e| e.to_string())?;
    Ok(path)
}

async fn wrk(
    url: &str,
    script: &Path,
    connections: usize,
    secs: u64,
    gateway: Option<u32>,
) -> BenchResult<Load> {
    let cpu_before = gateway.map(cpu_us).transpose()?;
    let child = tokio::process::Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "-s",
        ])
        .arg(script)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run wrk (apt install wrk): {e}"))?;
    let mut peak = None;
    if let Some(pid) = gateway {
        let until = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if let Ok(kib) = rss_kib(pid) {
                peak = Some(peak.map_or(kib, |p: u64| p.max(kib)));
            }
        }
    }
    let out = child.wait_with_output().await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .ok_or_else(|| format!("wrk printed no result:\n{text}"))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let [requests, duration_us, p50, p99, errors] = v[..] else {
        return Err(format!("unexpected wrk result {line}"));
    };
    let cpu_after = gateway.map(cpu_us).transpose()?;
    let cpu_per_req_us = cpu_before
        .zip(cpu_after)
        .map(|(b, a)| (a - b) / requests.max(1.0));
    Ok(Load {
        rps: requests / (duration_us / 1_000_000.0),
        p50_us: p50,
        p99_us: p99,
        errors,
        cpu_per_req_us,
        peak_rss_kib: peak,
    })
}

fn manifests(dir: &Path, fast_port: u16, everything_url: &str) -> BenchResult<()> {
    let yaml = format!(
        "apiVersion: mcpoauth.dev/v1alpha1
kind: RemoteMCPServer
metadata: {{ name: fast, namespace: bench }}
spec:
  url: http://127.0.0.1:{fast_port}/open/mcp
  auth: {{ mode: none }}
---
apiVersion: mcpoauth.dev/v1alpha1
kind: RemoteMCPServer
metadata: {{ name: fast-oauth, namespace: bench }}
spec:
  url: http://127.0.0.1:{fast_port}/protected/mcp
  auth: {{ mode: oauth }}
---
apiVersion: mcpoauth.dev/v1alpha1
kind: RemoteMCPServer
metadata: {{ name: everything, namespace: bench }}
spec:
  url: {everything_url}
  auth: {{ mode: none }}
"
    );
    std::fs::write(dir.join("bench.yaml"), yaml).map_err(|e| e.to_string())
}

/// First call → challenge link → scripted browser login → callback: the gateway now holds
/// alice's token for `fast-oauth`.
async fn login(http: &reqwest::Client, gateway: &str) -> BenchResult<()> {
    let url = format!("{gateway}/mcp/bench/fast-oauth");
    let body = http
        .post(&url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(CALL)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    let link = regex::Regex::new(r#"https?://[^"\s\\]*/oauth/connect\?flow=[A-Za-z0-9_\-]+"#)
        .map_err(|e| e.to_string())?
        .find(&body)
        .map(|m| m.as_str().to_owned())
        .ok_or_else(|| format!("no challenge link in the gateway's answer: {body}"))?;
    let browser = Browser::new();
    let callback = browser
        .try_login_at_idp(&link, "alice")
        .await
        .map_err(|e| format!("login: {e}"))?;
    let (status, _, page) = browser.get_text(callback.as_str()).await;
    if !status.is_success() {
        return Err(format!("callback answered {status}: {page}"));
    }
    // The retried call must now pass through with the injected token.
    let status = http
        .post(&url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(CALL)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .status();
    if status != reqwest::StatusCode::OK {
        return Err(format!("call after login answered {status}"));
    }
    Ok(())
}

/// Opens an MCP session at `url` (initialize + initialized); returns its `Mcp-Session-Id`.
async fn mcp_session(http: &reqwest::Client, url: &str) -> BenchResult<String> {
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#;
    let r = http
        .post(url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(init)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let id = r
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| format!("no Mcp-Session-Id from {url} ({})", r.status()))?;
    let _ = r.text().await;
    http.post(url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("Mcp-Session-Id", &id)
        .header("MCP-Protocol-Version", "2025-06-18")
        .body(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    Ok(id)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

async fn run() -> BenchResult<String> {
    testkit::kube::install_crypto_provider();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    // `PROXY_BENCH_GATEWAY`: another build of the gateway (e.g. the previous commit's), to compare
    // two versions under the same references in one sitting.
    let binary = std::env::var_os("PROXY_BENCH_GATEWAY")
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("release/mcp-oauth-operator"));
    if !binary.exists() {
        return Err("build the release binary first: cargo build --release".into());
    }
    let secs: u64 = std::env::var("PROXY_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let http = reqwest::Client::new();

    let idp = Idp::start(IdpOptions::default()).await;
    let fast = start_fast_upstream(idp.issuer().to_owned()).await?;
    let everything = EverythingServer::start().await;
    manifests(dir.path(), fast, everything.url())?;
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, KEY_B64).map_err(|e| e.to_string())?;
    let valkey = testkit::valkey::Valkey::start();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Gateway request path (wrk, {secs} s per run, {} cores, layout: {})\n",
        std::fs::read_to_string("/proc/cpuinfo").map_or(0, |c| c
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count()),
        if pinned() {
            "pinned: gateway on CPU 1, wrk + upstreams on CPU 0"
        } else {
            "shared: nothing pinned"
        }
    );

    // Start → ready, five times (memory store).
    let mut ready = Vec::new();
    let mut idle_rss = Vec::new();
    for _ in 0..5 {
        let gw = Gateway::start(&binary, dir.path(), &[])?;
        ready.push(gw.wait_ready(&http).await?.as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(300)).await;
        idle_rss.push(rss_kib(gw.pid())? as f64 / 1024.0);
        gw.stop();
    }

    let plain = wrk_script(dir.path(), &[])?;
    let direct_fast = format!("http://127.0.0.1:{fast}/open/mcp");
    let direct_fast_protected = format!("http://127.0.0.1:{fast}/protected/mcp");
    let bearer = wrk_script(
        dir.path(),
        &[("Authorization", "Bearer direct-run-token".to_owned())],
    )?;

    let _ = writeln!(
        out,
        "| store | path | conns | req/s | p50 µs | p99 µs | gateway CPU µs/req | gateway peak RSS MiB | errors |\n|---|---|---|---|---|---|---|---|---|"
    );
    let row = |out: &mut String, store: &str, path: &str, c: usize, l: &Load| {
        let _ = writeln!(
            out,
            "| {store} | {path} | {c} | {:.0} | {:.0} | {:.0} | {} | {} | {} |",
            l.rps,
            l.p50_us,
            l.p99_us,
            l.cpu_per_req_us.map_or("–".into(), |c| format!("{c:.1}")),
            l.peak_rss_kib
                .map_or("–".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
            l.errors
        );
    };

    let mut summary = Vec::new();
    for store in ["memory", "valkey"] {
        let extra: Vec<String> = if store == "valkey" {
            vec![
                "--store".into(),
                "valkey".into(),
                "--valkey-url".into(),
                valkey.url(),
                "--encryption-key-file".into(),
                key_file.display().to_string(),
            ]
        } else {
            Vec::new()
        };
        let gw = Gateway::start(&binary, dir.path(), &extra)?;
        gw.wait_ready(&http).await?;
        login(&http, &gw.base).await?;
        let via_none = format!("{}/mcp/bench/fast", gw.base);
        let via_oauth = format!("{}/mcp/bench/fast-oauth", gw.base);

        // Warm up connection pools and caches.
        wrk(&via_oauth, &plain, 4, 1, None).await?;

        for c in [1usize, 16] {
            let d = wrk(&direct_fast_protected, &bearer, c, secs, None).await?;
            let g = wrk(&via_oauth, &plain, c, secs, Some(gw.pid())).await?;
            let o = wrk(&direct_fast, &plain, c, secs, None).await?;
            let n = wrk(&via_none, &plain, c, secs, Some(gw.pid())).await?;
            row(&mut out, store, "direct (fast upstream, bearer)", c, &d);
            row(&mut out, store, "gateway, oauth (token injected)", c, &g);
            row(&mut out, store, "direct (fast upstream, open)", c, &o);
            row(&mut out, store, "gateway, auth none", c, &n);
            summary.push((store, c, d, g, n));
        }
        if store == "memory" {
            let direct_everything = everything.url().to_owned();
            let via_everything = format!("{}/mcp/bench/everything", gw.base);
            let sid_direct = mcp_session(&http, &direct_everything).await?;
            let sid_gw = mcp_session(&http, &via_everything).await?;
            let s_direct = wrk_script(
                dir.path(),
                &[
                    ("Mcp-Session-Id", sid_direct),
                    ("MCP-Protocol-Version", "2025-06-18".into()),
                ],
            )?;
            let d = wrk(&direct_everything, &s_direct, 16, secs, None).await?;
            let s_gw = wrk_script(
                dir.path(),
                &[
                    ("Mcp-Session-Id", sid_gw),
                    ("MCP-Protocol-Version", "2025-06-18".into()),
                    ("X-Bench", "gateway".into()),
                ],
            )?;
            let g = wrk(&via_everything, &s_gw, 16, secs, Some(gw.pid())).await?;
            row(&mut out, store, "direct (server-everything, SSE)", 16, &d);
            row(&mut out, store, "gateway (server-everything, SSE)", 16, &g);
            let _ = writeln!(
                out,
                "\nserver-everything at 16 connections: gateway ÷ direct throughput = **{:.2}**\n",
                g.rps / d.rps.max(1.0)
            );
            let _ = write!(
                out,
                "| store | path | conns | req/s | p50 µs | p99 µs | gateway CPU µs/req | gateway peak RSS MiB | errors |\n|---|---|---|---|---|---|---|---|---|\n"
            );
        }
        gw.stop();
    }

    let _ = writeln!(out, "\n### Against the targets\n");
    let _ = writeln!(
        out,
        "| store | CPU µs per proxied tools/call, token injected, 16 conns (≤ 40) | added p50 at 1 conn, µs (≤ 60) | added p99 at 1 conn, µs | throughput ÷ direct, 16 conns, token injected (≥ 0.80) | same, auth none |\n|---|---|---|---|---|---|"
    );
    for (store, c, d, g, n) in &summary {
        if *c == 16 {
            let one = summary
                .iter()
                .find(|(s, c1, ..)| s == store && *c1 == 1)
                .map(|(_, _, d1, g1, _)| (g1.p50_us - d1.p50_us, g1.p99_us - d1.p99_us));
            let _ = writeln!(
                out,
                "| {store} | {} | {} | {} | {:.2} | {:.2} |",
                g.cpu_per_req_us.map_or("–".into(), |c| format!("{c:.1}")),
                one.map_or("–".into(), |(p50, _)| format!("{p50:+.0}")),
                one.map_or("–".into(), |(_, p99)| format!("{p99:+.0}")),
                g.rps / d.rps.max(1.0),
                n.rps / d.rps.max(1.0),
            );
        }
    }
    let _ = writeln!(
        out,
        "\nStart → ready (`serve`, memory store, spawn to first `/readyz` 200, 5 runs): median **{:.1} ms** (min {:.1}); idle RSS median **{:.1} MiB**",
        median(ready.clone()),
        ready.iter().copied().fold(f64::INFINITY, f64::min),
        median(idle_rss)
    );
    idp.stop().await;
    Ok(out)
}
