//! Throughput and latency of the Valkey token store (`get`, `put`, `get_bound`) at 1, 8 and
//! 64 concurrent callers, next to `valkey-benchmark` on the same server in the same run, plus
//! the cost of encryption (plaintext vs encrypted codec, and `KeyRing::encrypt`/`decrypt` alone).
//!
//! Method (see `docs/benchmarks.md`, section "Valkey store"):
//!
//! * The binary starts its own `valkey-server` on a free loopback port without persistence,
//!   pinned to CPU 1 (`taskset`); the load generators — `valkey-benchmark` and this process —
//!   are pinned to CPU 0 and never run at the same time. The server runs under a `sh` wrapper
//!   that holds a pipe from us: when this process ends in any way, the pipe closes and the
//!   wrapper stops the server.
//! * 10,000 sessions × 2 issuers are stored through our store, once encrypted and once as
//!   plaintext (two key prefixes). Session ids are `s` + 12 digits, so `valkey-benchmark`'s
//!   `__rand_int__` (12 digits) addresses exactly our hashes and fields.
//! * References: `HGET` (for `get`), `HSET` of a value as large as our sealed one (for `put`),
//!   and, as "same server work" references, `HGETALL` of our session hashes (what
//!   `get_bound` sends) and `EVALSHA` of a script doing what our put script does.
//! * Ours: C tokio tasks share one store; each does a fixed number of operations on random
//!   keys, timing each call. Pool sizes 1, 2, 4 and 8 are tried first (three runs each, the
//!   median decides); the best is used for the measured rounds and reported.
//! * "fred alone": the same commands through fred with the store's connection settings, no
//!   sealing, no JSON, no records, to separate the store's own cost from the client library's.
//! * Measured rounds: in each, every reference and every store run once, each reference next
//!   to its store run, alternating which goes first. Runs are short and rounds many (as many
//!   as fit in [`BUDGET`]): other load on a shared machine comes in bursts, which then spoil a
//!   pair of runs that the median discards. Ratios are paired per round.
//! * CPU per operation: `utime + stime` from `/proc` over the run, for our process (or
//!   `valkey-benchmark`, as a waited-for child) and for the server.
//!
//! A measurement tool, not a bench: it runs for minutes, starts its own server and compares
//! against `valkey-benchmark`. Run: `cargo run --release --example valkey_store_load` (or
//! `scripts/bench-valkey.sh`). Environment:
//! `VALKEY_BENCH_RUNTIME=current|multi` (tokio runtime, default `current`: one thread, as the
//! process gets one CPU), `VALKEY_BENCH_NO_PIN=1` (no CPU pinning),
//! `VALKEY_BENCH_ONLY=<get|put|get_bound>:<callers>:<pool size>` (only that, for a profiler).

mod raw_resp;

use bytes::Bytes;
use fred::prelude::*;
use fred::types::Key;
use mcp_oauth_operator::crypto::{KeyRing, aad};
use mcp_oauth_operator::store::sealed::Sealing;
use mcp_oauth_operator::store::valkey::{ValkeyConfig, ValkeyStores, ValkeyTokenStore};
use mcp_oauth_operator::store::{StoreError, TokenBinding, TokenKey, TokenRecord, TokenStore};
use raw_resp::{RawError, RawOp};
use secrecy::SecretString;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SESSIONS: usize = 10_000;
const ISSUERS: [&str; 2] = [
    "https://idp-a.example.com",
    "https://login.example.org/tenant",
];
const SCOPE: &str = "files:read offline_access";
/// Far in the future, so `get_bound` never skips an entry.
const EXPIRES_AT: u64 = 4_000_000_000;
const CONCURRENCY: [usize; 3] = [1, 8, 64];
const POOL_SIZES: [usize; 4] = [1, 2, 4, 8];
/// Measured rounds after the pool-size round (figures are medians over them), as many as fit in
/// [`BUDGET`] (counted from the start of the bench), at least one.
const MAX_ROUNDS: usize = 9;
/// Runs per pool size when choosing the pool size (the median decides).
const TUNING_REPS: usize = 3;
/// Keeps the whole bench well under 3 minutes on a loaded 2-core machine.
const BUDGET: Duration = Duration::from_secs(140);
/// The store's default session TTL, as the reference put script is given it.
const SESSION_TTL_MS: i64 = 30 * 24 * 3600 * 1000;
/// A fixed test key (never a real one).
const KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const ENC_PREFIX: &str = "enc:";
const PLAIN_PREFIX: &str = "plain:";
/// Keys written by the ceiling reference (`raw_resp`).
const RAW_PREFIX: &str = "raw:";
const CPU_SERVER: &str = "1";
const CPU_CLIENT: &str = "0";
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const MICRO_ITERS: u32 = 50_000;

/// Runs `"$@"` (the server, maybe under taskset) in the background with its output discarded,
/// prints its pid, and stops it when stdin closes.
const WRAPPER: &str = r#""$@" >/dev/null 2>&1 & pid=$!
echo "$pid"
cat >/dev/null
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
exit 0"#;

#[derive(Debug, thiserror::Error)]
enum BenchError {
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("valkey-server did not answer PING within {READY_TIMEOUT:?}")]
    NotReady,
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("valkey client: {0}")]
    Fred(#[from] fred::error::Error),
    #[error("configuration: {0}")]
    Config(String),
    #[error("{0} found no entry for a key that was stored")]
    Missing(&'static str),
    #[error("valkey-benchmark: {0}")]
    ValkeyBenchmark(String),
    #[error("reading /proc: {0}")]
    Proc(String),
    #[error("a benchmark task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("{0}")]
    Raw(#[from] RawError),
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> BenchError {
    move |source| BenchError::Io { what, source }
}

/// The store's hash field of `key` (see `store::valkey` layout docs).
fn field_of(key: &TokenKey) -> String {
    let b = &key.binding;
    format!("@{}|{}|{}|{}", b.issuer, b.namespace, b.resource, key.scope)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("valkey_store bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), BenchError> {
    let pin = std::env::var_os("VALKEY_BENCH_NO_PIN").is_none() && has("taskset");
    if pin {
        // Before the runtime exists, so every thread we start inherits the mask.
        let status = Command::new("taskset")
            .args([
                "-a",
                "-c",
                "-p",
                CPU_CLIENT,
                &std::process::id().to_string(),
            ])
            .stdout(Stdio::null())
            .status()
            .map_err(io("taskset of this process"))?;
        if !status.success() {
            return Err(BenchError::Config("taskset of this process failed".into()));
        }
    }
    let multi = std::env::var("VALKEY_BENCH_RUNTIME").is_ok_and(|v| v == "multi");
    let runtime = if multi {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .map_err(io("tokio runtime"))?;
    let started = Instant::now();
    let server = Server::start(pin)?;
    let report = if let Some(only) = Only::from_env()? {
        runtime.block_on(profile(&server, only))?
    } else {
        runtime.block_on(bench(&server, started, pin, multi))?
    };
    drop(server);
    println!("{report}");
    println!("total bench time: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn has(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

// ---------------------------------------------------------------------------------------------
// The server

/// A `valkey-server` on 127.0.0.1; stopped when dropped (or when this process dies).
struct Server {
    port: u16,
    pid: u32,
    wrapper: Child,
    stdin: Option<ChildStdin>,
}

impl Server {
    fn start(pin: bool) -> Result<Self, BenchError> {
        let port = TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map_err(io("free port"))?
            .port();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", WRAPPER, "sh"]);
        if pin {
            cmd.args(["taskset", "-c", CPU_SERVER]);
        }
        let dir = std::env::temp_dir();
        cmd.arg("valkey-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--logfile", ""])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut wrapper = cmd.spawn().map_err(io("spawn valkey-server"))?;
        let stdin = wrapper.stdin.take();
        let mut server = Self {
            port,
            pid: 0,
            wrapper,
            stdin,
        };
        let stdout = server
            .wrapper
            .stdout
            .take()
            .ok_or_else(|| BenchError::Config("no stdout of the server wrapper".into()))?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(io("server pid"))?;
        server.pid = line
            .trim()
            .parse()
            .map_err(|_| BenchError::Config("the server wrapper printed no pid".into()))?;
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&self) -> Result<(), BenchError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if self.answers() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(BenchError::NotReady)
    }

    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing the pipe makes the wrapper stop the server.
        drop(self.stdin.take());
        // Nothing more can be done about a failed wait at exit.
        let _ = self.wrapper.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// CPU time from /proc

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

/// `(utime + stime, cutime + cstime)` of `pid` (`"self"` for this process), in clock ticks.
fn cpu_ticks(pid: &str) -> Result<(u64, u64), BenchError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| BenchError::Proc(e.to_string()))?;
    // Fields after the command name (which may contain spaces) start at field 3 (`state`).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| BenchError::Proc("no `)` in stat".into()))?;
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    match f.as_slice() {
        [utime, stime, cutime, cstime] => Ok((utime + stime, cutime + cstime)),
        _ => Err(BenchError::Proc("short stat line".into())),
    }
}

/// CPU use of this process (or its waited-for children) and of the server over a section.
struct CpuMeter {
    server_pid: String,
    own: (u64, u64),
    server: u64,
}

/// CPU microseconds per operation.
#[derive(Debug, Clone, Copy, Default)]
struct CpuPerOp {
    client: f64,
    server: f64,
}

impl CpuMeter {
    fn start(server_pid: u32) -> Result<Self, BenchError> {
        let server_pid = server_pid.to_string();
        Ok(Self {
            own: cpu_ticks("self")?,
            server: cpu_ticks(&server_pid)?.0,
            server_pid,
        })
    }

    /// `children`: count the CPU of waited-for children (valkey-benchmark) instead of ours.
    fn stop(self, ops: usize, children: bool, tick: f64) -> Result<CpuPerOp, BenchError> {
        let own = cpu_ticks("self")?;
        let server = cpu_ticks(&self.server_pid)?.0;
        let client = if children {
            own.1 - self.own.1
        } else {
            own.0 - self.own.0
        };
        let us = |ticks: u64| ticks as f64 * 1e6 / tick / ops as f64;
        Ok(CpuPerOp {
            client: us(client),
            server: us(server - self.server),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Measurements

/// One measured run.
#[derive(Debug, Clone, Copy, Default)]
struct Measure {
    ops_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    cpu: CpuPerOp,
}

impl Measure {
    /// A run of `latencies` (ns per operation) over `elapsed`.
    fn of(mut latencies: Vec<u32>, elapsed: Duration, cpu: CpuPerOp) -> Self {
        latencies.sort_unstable();
        Self {
            ops_per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
            p50_us: percentile(&latencies, 50),
            p99_us: percentile(&latencies, 99),
            cpu,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Get,
    Put,
    GetBound,
}

impl Op {
    const ALL: [Op; 3] = [Op::Get, Op::Put, Op::GetBound];

    fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Put => "put",
            Op::GetBound => "get_bound",
        }
    }
}

/// Operations per run at `concurrency` callers: ~0.2–0.3 s per run on a quiet machine. Short
/// runs, many rounds: other load on the machine comes in bursts, and a burst then spoils one
/// pair of runs (which the median discards) rather than a whole long run.
fn ops_for(concurrency: usize) -> usize {
    match concurrency {
        1 => 1_500,
        8 => 10_000,
        _ => 15_000,
    }
}

/// Every stored key and its record (built once: a put's record is cloned, as a caller hands
/// over an owned record).
struct Fixture {
    keys: Vec<TokenKey>,
    records: Vec<TokenRecord>,
}

impl Fixture {
    fn new() -> Self {
        let mut keys = Vec::with_capacity(SESSIONS * ISSUERS.len());
        let mut records = Vec::with_capacity(SESSIONS * ISSUERS.len());
        for s in 0..SESSIONS {
            for issuer in ISSUERS {
                let binding = TokenBinding::new(issuer, "team-a", "https://mcp.example.com/mcp");
                keys.push(TokenKey::new(session_id(s), binding, SCOPE));
                records.push(record(issuer, s));
            }
        }
        Self { keys, records }
    }
}

/// `s` + 12 digits: the form `valkey-benchmark` gives `s__rand_int__`.
fn session_id(n: usize) -> String {
    format!("s{n:012}")
}

/// A record of session `n` with token sizes of a typical JWT access token (~850 characters) and
/// an opaque refresh token, owned by one of 5,000 users.
fn record(issuer: &str, n: usize) -> TokenRecord {
    let mut body = String::with_capacity(600);
    let mut x = (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for _ in 0..600 {
        x = xorshift(x);
        body.push(char::from(ALPHABET[(x % 64) as usize]));
    }
    let signature: String = body.chars().rev().take(200).collect();
    TokenRecord {
        access_token: SecretString::from(format!(
            "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsxIn0.{body}.{signature}"
        )),
        token_type: "Bearer".into(),
        refresh_token: Some(SecretString::from(format!("rt-{n:012}-{}", &body[..48]))),
        expires_at: Some(EXPIRES_AT),
        granted_scope: Some(SCOPE.into()),
        issuer: issuer.into(),
        client_id: "https://gateway.example.com/oauth/client-metadata.json".into(),
        user: format!("user-{}", n % 5_000),
        obtained_at: 1_700_000_000,
    }
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

fn percentile(sorted: &[u32], pct: usize) -> f64 {
    let i = (sorted.len() * pct / 100).min(sorted.len().saturating_sub(1));
    sorted.get(i).map_or(0.0, |&ns| f64::from(ns) / 1_000.0)
}

/// What a run drives: our store, or fred alone sending the same commands (no sealing, no JSON,
/// no records), which separates the store's own cost from the client library's.
#[derive(Clone)]
enum Target {
    Store(ValkeyTokenStore),
    Fred(Arc<FredOnly>),
}

/// fred with the store's connection settings, the put script loaded, a value as large as ours.
struct FredOnly {
    pool: Pool,
    sha: String,
    value: Bytes,
}

impl Target {
    /// One operation on `fixture.keys[i]`; returns its latency.
    async fn call(&self, fixture: &Fixture, i: usize, op: Op) -> Result<Duration, BenchError> {
        let key = &fixture.keys[i];
        match (self, op) {
            (Target::Store(store), Op::Get) => {
                let at = Instant::now();
                let found = store.get(key).await?;
                let ns = at.elapsed();
                found.map(|_| ns).ok_or(BenchError::Missing("get"))
            }
            (Target::Store(store), Op::GetBound) => {
                let at = Instant::now();
                let found = store.get_bound(&key.session, &key.binding).await?;
                let ns = at.elapsed();
                found.map(|_| ns).ok_or(BenchError::Missing("get_bound"))
            }
            (Target::Store(store), Op::Put) => {
                let record = fixture.records[i].clone();
                let at = Instant::now();
                store.put(key, record).await?;
                Ok(at.elapsed())
            }
            (Target::Fred(fred), Op::Get) => {
                let at = Instant::now();
                let hash = format!("{ENC_PREFIX}oauth:token:{}", key.session);
                let field = field_of(key);
                let found: Option<Bytes> = fred.pool.hget(hash, field).await?;
                let ns = at.elapsed();
                found.map(|_| ns).ok_or(BenchError::Missing("HGET"))
            }
            (Target::Fred(fred), Op::GetBound) => {
                let at = Instant::now();
                let hash = format!("{ENC_PREFIX}oauth:token:{}", key.session);
                let found: HashMap<Bytes, Bytes> = fred.pool.hgetall(hash).await?;
                let ns = at.elapsed();
                (!found.is_empty())
                    .then_some(ns)
                    .ok_or(BenchError::Missing("HGETALL"))
            }
            (Target::Fred(fred), Op::Put) => {
                let at = Instant::now();
                let keys: Vec<Key> = vec![
                    format!("fred:oauth:token:{}", key.session).into(),
                    format!("fred:oauth:user:{}", fixture.records[i].user).into(),
                ];
                let args = vec![
                    Value::from(field_of(key)),
                    Value::Bytes(fred.value.clone()),
                    Value::from(SESSION_TTL_MS),
                    Value::from(key.session.as_str()),
                ];
                let _: i64 = fred.pool.evalsha(&fred.sha, keys, args).await?;
                Ok(at.elapsed())
            }
        }
    }
}

/// `concurrency` tasks doing `total` operations of kind `op` on random keys, each timed.
async fn run_ours(
    target: &Target,
    fixture: &Arc<Fixture>,
    op: Op,
    concurrency: usize,
    total: usize,
) -> Result<(Vec<u32>, Duration), BenchError> {
    let per_task = total / concurrency;
    let begin = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..concurrency {
        let target = target.clone();
        let fixture = Arc::clone(fixture);
        tasks.spawn(async move {
            let mut rng = (t as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
            let mut latencies = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                rng = xorshift(rng);
                let i = (rng % fixture.keys.len() as u64) as usize;
                let ns = target.call(&fixture, i, op).await?;
                latencies.push(u32::try_from(ns.as_nanos()).unwrap_or(u32::MAX));
            }
            Ok::<_, BenchError>(latencies)
        });
    }
    let mut all = Vec::with_capacity(per_task * concurrency);
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    Ok((all, begin.elapsed()))
}

async fn measure_ours(
    ctx: &Ctx,
    store: &Target,
    op: Op,
    concurrency: usize,
    total: usize,
) -> Result<Measure, BenchError> {
    let meter = CpuMeter::start(ctx.server_pid)?;
    let (latencies, elapsed) = run_ours(store, &ctx.fixture, op, concurrency, total).await?;
    let cpu = meter.stop(latencies.len(), false, ctx.tick)?;
    Ok(Measure::of(latencies, elapsed, cpu))
}

/// One run of the ceiling reference: `op` over `concurrency` connections of the raw client.
async fn measure_raw(
    ctx: &Ctx,
    spec: &raw_resp::Spec,
    op: RawOp,
    concurrency: usize,
    total: usize,
) -> Result<Measure, BenchError> {
    let meter = CpuMeter::start(ctx.server_pid)?;
    let (latencies, elapsed) = raw_resp::run(spec, op, concurrency, total).await?;
    let cpu = meter.stop(latencies.len(), false, ctx.tick)?;
    Ok(Measure::of(latencies, elapsed, cpu))
}

/// Stores over a fresh pool of `pool_size` connections, connected and warmed up.
async fn stores(
    ctx: &Ctx,
    prefix: &str,
    pool_size: usize,
    codec: Sealing,
) -> Result<ValkeyStores, BenchError> {
    let mut config = ValkeyConfig::new(vec![ctx.url.clone()]);
    config.key_prefix = prefix.to_owned();
    config.pool_size = pool_size;
    let stores = ValkeyStores::from_config(&config, codec)
        .await
        .map_err(|e| BenchError::Config(e.to_string()))?;
    let deadline = Instant::now() + READY_TIMEOUT;
    while stores.ping().await.is_err() {
        if Instant::now() > deadline {
            return Err(BenchError::NotReady);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    warm_up(ctx, &Target::Store(stores.tokens.clone())).await?;
    Ok(stores)
}

/// fred alone over a pool of `pool_size` connections, set up as the store sets up its own.
async fn fred_only(
    ctx: &Ctx,
    pool_size: usize,
    sha: &str,
    sealed_len: usize,
) -> Result<Target, BenchError> {
    // The store's settings that change how commands travel: no Nagle, and a command timeout
    // (with one, fred's callers await a timer as well as the reply, which changes the order in
    // which the runtime wakes tasks; leaving it out measurably changes throughput at 8 callers).
    let timeout = ValkeyConfig::new(Vec::new()).command_timeout;
    let pool = Builder::from_config(Config::from_url(&ctx.url)?)
        .with_performance_config(|perf| perf.default_command_timeout = timeout)
        .with_connection_config(|conn| conn.tcp.nodelay = Some(true))
        .build_pool(pool_size)?;
    pool.init().await?;
    let target = Target::Fred(Arc::new(FredOnly {
        pool,
        sha: sha.to_owned(),
        value: Bytes::from(vec![b'x'; sealed_len]),
    }));
    warm_up(ctx, &target).await?;
    Ok(target)
}

/// Every pooled connection up, the put script loaded, caches warm.
async fn warm_up(ctx: &Ctx, target: &Target) -> Result<(), BenchError> {
    for op in Op::ALL {
        run_ours(target, &ctx.fixture, op, 16, 1_600).await?;
    }
    Ok(())
}

/// `valkey-benchmark` with `concurrency` connections, `total` requests, random keys over the
/// sessions, running `command`.
fn valkey_benchmark(
    ctx: &Ctx,
    concurrency: usize,
    total: usize,
    command: &[String],
) -> Result<Measure, BenchError> {
    let mut cmd = if ctx.pin {
        let mut c = Command::new("taskset");
        c.args(["-c", CPU_CLIENT, "valkey-benchmark"]);
        c
    } else {
        Command::new("valkey-benchmark")
    };
    cmd.args(["-h", "127.0.0.1", "-p", &ctx.port.to_string()])
        .args(["-c", &concurrency.to_string(), "-n", &total.to_string()])
        .args(["-r", &SESSIONS.to_string(), "-P", "1", "--csv"])
        .args(command);
    let meter = CpuMeter::start(ctx.server_pid)?;
    let out = cmd.output().map_err(io("run valkey-benchmark"))?;
    let cpu = meter.stop(total, true, ctx.tick)?;
    if !out.status.success() {
        return Err(BenchError::ValkeyBenchmark(format!(
            "exit status {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // Header line, then `"test","rps","avg","min","p50","p95","p99","max"` (latencies in ms);
    // the test name may contain commas, so fields are taken from the end.
    let line = text
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .ok_or_else(|| BenchError::ValkeyBenchmark("no output".into()))?;
    let fields: Vec<f64> = line
        .rsplitn(8, ',')
        .take(7)
        .map(|f| f.trim_matches('"').parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| BenchError::ValkeyBenchmark(format!("unexpected CSV line: {line:.120}")))?;
    // Reversed: max, p99, p95, p50, min, avg, rps.
    match fields.as_slice() {
        [_, p99, _, p50, _, _, rps] => Ok(Measure {
            ops_per_sec: *rps,
            p50_us: p50 * 1_000.0,
            p99_us: p99 * 1_000.0,
            cpu,
        }),
        _ => Err(BenchError::ValkeyBenchmark("short CSV line".into())),
    }
}

// ---------------------------------------------------------------------------------------------
// The benchmark

struct Ctx {
    url: String,
    port: u16,
    server_pid: u32,
    pin: bool,
    tick: f64,
    fixture: Arc<Fixture>,
}

/// A `valkey-benchmark` reference command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Reference {
    /// Our `get`'s one command.
    Hget,
    /// What `get_bound` sends: the whole session hash.
    Hgetall,
    /// One field written, value as large as our sealed one.
    Hset,
    /// The four commands of our put script, as one script.
    PutScript,
}

impl Reference {
    fn name(self) -> &'static str {
        match self {
            Reference::Hget => "HGET",
            Reference::Hgetall => "HGETALL",
            Reference::Hset => "HSET",
            Reference::PutScript => "EVALSHA put script",
        }
    }
}

/// One series of measurements, repeated once per round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Series {
    Reference(Reference),
    Encrypted(Op),
    Plaintext(Op),
    Fred(Op),
    /// The ceiling reference (`raw_resp`): no client library.
    Raw(RawOp),
}

/// The reference commands' arguments.
struct Commands {
    hget: Vec<String>,
    hgetall: Vec<String>,
    hset: Vec<String>,
    put_script: Vec<String>,
}

impl Commands {
    fn new(field: &str, sealed_len: usize, sha: &str) -> Self {
        let hash = format!("{ENC_PREFIX}oauth:token:s__rand_int__");
        let value = "x".repeat(sealed_len);
        let ttl = SESSION_TTL_MS.to_string();
        let v = |args: &[&str]| args.iter().map(|a| (*a).to_owned()).collect();
        Self {
            hget: v(&["HGET", &hash, field]),
            hgetall: v(&["HGETALL", &hash]),
            hset: v(&["HSET", "vb:oauth:token:s__rand_int__", field, &value]),
            put_script: v(&[
                "EVALSHA",
                sha,
                "2",
                "vbput:oauth:token:s__rand_int__",
                "vbput:oauth:user:user-__rand_int__",
                field,
                &value,
                &ttl,
                "s__rand_int__",
            ]),
        }
    }

    fn get(&self, reference: Reference) -> &[String] {
        match reference {
            Reference::Hget => &self.hget,
            Reference::Hgetall => &self.hgetall,
            Reference::Hset => &self.hset,
            Reference::PutScript => &self.put_script,
        }
    }
}

/// What our put script does, for `valkey-benchmark` (the store's script is private; this one
/// sends the same four commands).
const PUT_LUA: &str = "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1";

/// Everything measured.
#[derive(Default)]
struct Results {
    /// `(series, callers)` → one measure per round.
    runs: HashMap<(Series, usize), Vec<Measure>>,
    /// `(op, callers)` → pool size used in the rounds.
    pool: HashMap<(Op, usize), usize>,
    /// `(op, callers, pool size)` → encrypted ops/s in the pool-size round.
    tuning: HashMap<(Op, usize, usize), f64>,
    rounds: usize,
}

/// One target per pool size tried, for one key space (or for fred alone).
#[derive(Default)]
struct Pools {
    targets: Vec<(usize, Target)>,
    stores: Vec<ValkeyStores>,
}

impl Pools {
    async fn store(ctx: &Ctx, prefix: &str, codec: &Sealing) -> Result<Self, BenchError> {
        let mut pools = Self::default();
        for size in POOL_SIZES {
            let stores = stores(ctx, prefix, size, codec.clone()).await?;
            pools
                .targets
                .push((size, Target::Store(stores.tokens.clone())));
            pools.stores.push(stores);
        }
        Ok(pools)
    }

    async fn fred(ctx: &Ctx, sha: &str, sealed_len: usize) -> Result<Self, BenchError> {
        let mut pools = Self::default();
        for size in POOL_SIZES {
            let target = fred_only(ctx, size, sha, sealed_len).await?;
            pools.targets.push((size, target));
        }
        Ok(pools)
    }

    fn of(&self, size: usize) -> Result<&Target, BenchError> {
        self.targets
            .iter()
            .find(|(s, _)| *s == size)
            .map(|(_, target)| target)
            .ok_or_else(|| BenchError::Config(format!("no pool of size {size}")))
    }

    async fn close(&self) {
        for stores in &self.stores {
            stores.client().quit().await;
        }
        for (_, target) in &self.targets {
            if let Target::Fred(fred) = target {
                // Closing cannot meaningfully fail at the end of the bench.
                let _ = fred.pool.quit().await;
            }
        }
    }
}

async fn bench(
    server: &Server,
    started: Instant,
    pin: bool,
    multi: bool,
) -> Result<String, BenchError> {
    let ctx = Ctx {
        url: server.url(),
        port: server.port,
        server_pid: server.pid,
        pin,
        tick: clock_ticks_per_sec(),
        fixture: Arc::new(Fixture::new()),
    };
    let ring = KeyRing::parse(KEY_B64).map_err(|e| BenchError::Config(e.to_string()))?;
    let encrypted = Sealing::Encrypted(ring.clone());
    let field = format!("{}|{SCOPE}", ISSUERS[0]);

    eprintln!("valkey_store bench: storing {SESSIONS} sessions × 2 issuers, twice");
    prefill(&ctx, ENC_PREFIX, encrypted.clone()).await?;
    prefill(&ctx, PLAIN_PREFIX, Sealing::Plaintext).await?;

    // Sizes as stored (this also checks that the key layout assumed for valkey-benchmark is the
    // store's), and the reference script.
    let raw = raw_client(&ctx).await?;
    let sealed_len: usize = raw
        .hstrlen(format!("{ENC_PREFIX}oauth:token:{}", session_id(0)), &field)
        .await?;
    let plain_len: usize = raw
        .hstrlen(
            format!("{PLAIN_PREFIX}oauth:token:{}", session_id(0)),
            &field,
        )
        .await?;
    if sealed_len == 0 || plain_len == 0 {
        return Err(BenchError::Config(
            "the key layout assumed for valkey-benchmark does not match the store's".into(),
        ));
    }
    let sha: String = raw.script_load(PUT_LUA).await?;
    raw.quit().await?;
    let commands = Commands::new(&field, sealed_len, &sha);
    let raw_spec = raw_resp::Spec {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], ctx.port)),
        prefix: RAW_PREFIX.to_owned(),
        field: field.clone(),
        value_len: sealed_len,
        ttl_ms: SESSION_TTL_MS,
        script_sha: sha.clone(),
        sessions: SESSIONS,
    };
    let pools = [
        Pools::store(&ctx, ENC_PREFIX, &encrypted).await?,
        Pools::store(&ctx, PLAIN_PREFIX, &Sealing::Plaintext).await?,
        Pools::fred(&ctx, &sha, sealed_len).await?,
    ];
    let [enc, _, _] = &pools;

    let mut results = Results::default();
    eprintln!("valkey_store bench: trying pool sizes {POOL_SIZES:?}");
    let mut tried: HashMap<(Op, usize, usize), Vec<f64>> = HashMap::new();
    for rep in 0..TUNING_REPS {
        for c in CONCURRENCY {
            for op in Op::ALL {
                // Rotate the order, so no size always runs first after another operation.
                for k in 0..POOL_SIZES.len() {
                    let size = POOL_SIZES[(k + rep) % POOL_SIZES.len()];
                    let m = measure_ours(&ctx, enc.of(size)?, op, c, ops_for(c)).await?;
                    tried.entry((op, c, size)).or_default().push(m.ops_per_sec);
                }
            }
        }
    }
    for ((op, c, size), runs) in tried {
        results.tuning.insert((op, c, size), median(runs));
    }
    for c in CONCURRENCY {
        for op in Op::ALL {
            let best = POOL_SIZES
                .iter()
                .copied()
                .max_by(|a, b| {
                    let ops = |size| results.tuning.get(&(op, c, size)).copied().unwrap_or(0.0);
                    ops(*a).total_cmp(&ops(*b))
                })
                .unwrap_or(POOL_SIZES[0]);
            results.pool.insert((op, c), best);
        }
    }
    let mut last_round = Duration::ZERO;
    for round in 0..MAX_ROUNDS {
        if round > 0 && started.elapsed() + last_round > BUDGET {
            break;
        }
        let round_started = Instant::now();
        eprintln!("valkey_store bench: round {}", round + 1);
        results.rounds = round + 1;
        for c in CONCURRENCY {
            for (op, reference) in [
                (Some(Op::Get), Reference::Hget),
                (Some(Op::GetBound), Reference::Hgetall),
                (Some(Op::Put), Reference::Hset),
                (None, Reference::PutScript),
            ] {
                // Alternate who goes first, so drift in the machine hits both sides alike.
                if round % 2 == 1 {
                    run_op(&ctx, &mut results, op, c, &pools).await?;
                }
                let m = valkey_benchmark(&ctx, c, ops_for(c), commands.get(reference))?;
                push(&mut results, Series::Reference(reference), c, m);
                if round % 2 == 0 {
                    run_op(&ctx, &mut results, op, c, &pools).await?;
                }
            }
            for op in RawOp::ALL {
                let m = measure_raw(&ctx, &raw_spec, op, c, ops_for(c)).await?;
                push(&mut results, Series::Raw(op), c, m);
            }
        }
        last_round = round_started.elapsed();
    }
    for p in &pools {
        p.close().await;
    }

    let micro = micro_crypto(&ring, plain_len, &field)?;
    let setup = Setup {
        pin,
        multi,
        sealed_len,
        plain_len,
    };
    Ok(render(&setup, &results, &micro))
}

/// `VALKEY_BENCH_ONLY=<get|put|get_bound>:<callers>:<pool size>`: only that operation,
/// encrypted, five times, for a profiler (`perf record -p`, `strace -c -p`).
struct Only {
    op: Op,
    callers: usize,
    pool: usize,
}

impl Only {
    fn from_env() -> Result<Option<Self>, BenchError> {
        let Ok(spec) = std::env::var("VALKEY_BENCH_ONLY") else {
            return Ok(None);
        };
        let bad = || {
            BenchError::Config(format!(
                "VALKEY_BENCH_ONLY={spec:?}: expected op:callers:pool"
            ))
        };
        let mut parts = spec.split(':');
        let op = match parts.next() {
            Some("get") => Op::Get,
            Some("put") => Op::Put,
            Some("get_bound") => Op::GetBound,
            _ => return Err(bad()),
        };
        let mut number = || {
            parts
                .next()
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n > 0)
        };
        let (Some(callers), Some(pool)) = (number(), number()) else {
            return Err(bad());
        };
        Ok(Some(Self { op, callers, pool }))
    }
}

async fn profile(server: &Server, only: Only) -> Result<String, BenchError> {
    let ctx = Ctx {
        url: server.url(),
        port: server.port,
        server_pid: server.pid,
        pin: false,
        tick: clock_ticks_per_sec(),
        fixture: Arc::new(Fixture::new()),
    };
    let ring = KeyRing::parse(KEY_B64).map_err(|e| BenchError::Config(e.to_string()))?;
    prefill(&ctx, ENC_PREFIX, Sealing::Encrypted(ring.clone())).await?;
    let stores = stores(&ctx, ENC_PREFIX, only.pool, Sealing::Encrypted(ring)).await?;
    let target = Target::Store(stores.tokens.clone());
    eprintln!("valkey_store bench: pid {}, measuring", std::process::id());
    let mut out = String::new();
    for _ in 0..5 {
        let total = ops_for(only.callers) * 2;
        let m = measure_ours(&ctx, &target, only.op, only.callers, total).await?;
        let _ = writeln!(
            out,
            "{} × {} callers, pool {}: {:.0} ops/s, p50 {:.0} µs, p99 {:.0} µs, CPU {:.1} / {:.1} µs/op",
            only.op.name(),
            only.callers,
            only.pool,
            m.ops_per_sec,
            m.p50_us,
            m.p99_us,
            m.cpu.client,
            m.cpu.server
        );
    }
    stores.client().quit().await;
    Ok(out)
}

fn push(results: &mut Results, series: Series, c: usize, m: Measure) {
    results.runs.entry((series, c)).or_default().push(m);
}

/// One round of `op` at `c` callers — encrypted, plaintext, fred alone — with the pool size
/// chosen for the encrypted store.
async fn run_op(
    ctx: &Ctx,
    results: &mut Results,
    op: Option<Op>,
    c: usize,
    [enc, plain, fred]: &[Pools; 3],
) -> Result<(), BenchError> {
    let Some(op) = op else {
        return Ok(());
    };
    let size = results.pool.get(&(op, c)).copied().unwrap_or(POOL_SIZES[0]);
    for (series, pools) in [
        (Series::Encrypted(op), enc),
        (Series::Plaintext(op), plain),
        (Series::Fred(op), fred),
    ] {
        let m = measure_ours(ctx, pools.of(size)?, op, c, ops_for(c)).await?;
        push(results, series, c, m);
    }
    Ok(())
}

/// Store every key of the fixture under `prefix`, 64 puts in flight.
async fn prefill(ctx: &Ctx, prefix: &str, codec: Sealing) -> Result<(), BenchError> {
    let mut config = ValkeyConfig::new(vec![ctx.url.clone()]);
    config.key_prefix = prefix.to_owned();
    let filler = ValkeyStores::from_config(&config, codec)
        .await
        .map_err(|e| BenchError::Config(e.to_string()))?;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..64 {
        let store = filler.tokens.clone();
        let fixture = Arc::clone(&ctx.fixture);
        tasks.spawn(async move {
            for i in (t..fixture.keys.len()).step_by(64) {
                store
                    .put(&fixture.keys[i], fixture.records[i].clone())
                    .await?;
            }
            Ok::<_, BenchError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    filler.client().quit().await;
    Ok(())
}

async fn raw_client(ctx: &Ctx) -> Result<Client, BenchError> {
    let client = Builder::from_config(Config::from_url(&ctx.url)?).build()?;
    client.init().await?;
    Ok(client)
}

/// `KeyRing::encrypt` / `decrypt` of a token-sized value, with the associated data built as
/// the store builds it, in ns per operation.
struct Micro {
    encrypt_ns: f64,
    decrypt_ns: f64,
}

fn micro_crypto(ring: &KeyRing, plain_len: usize, field: &str) -> Result<Micro, BenchError> {
    let plaintext = vec![b'a'; plain_len];
    let key = format!("{ENC_PREFIX}oauth:token:{}", session_id(0));
    let at = Instant::now();
    let mut sealed = Vec::new();
    for _ in 0..MICRO_ITERS {
        let aad = aad(key.as_bytes(), Some(field.as_bytes()));
        sealed = ring.encrypt(std::hint::black_box(&plaintext), &aad);
    }
    let encrypt_ns = at.elapsed().as_nanos() as f64 / f64::from(MICRO_ITERS);
    let at = Instant::now();
    let mut opened = 0u32;
    for _ in 0..MICRO_ITERS {
        let aad = aad(key.as_bytes(), Some(field.as_bytes()));
        if ring.decrypt(std::hint::black_box(&sealed), &aad).is_ok() {
            opened += 1;
        }
    }
    let decrypt_ns = at.elapsed().as_nanos() as f64 / f64::from(MICRO_ITERS);
    if opened != MICRO_ITERS {
        return Err(BenchError::Config(
            "a value sealed by the key ring did not open".into(),
        ));
    }
    Ok(Micro {
        encrypt_ns,
        decrypt_ns,
    })
}

// ---------------------------------------------------------------------------------------------
// Report

struct Setup {
    pin: bool,
    multi: bool,
    sealed_len: usize,
    plain_len: usize,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Field-wise median of a series.
fn med(runs: &[Measure], field: impl Fn(&Measure) -> f64) -> f64 {
    median(runs.iter().map(field).collect())
}

/// Median and range of ours ÷ reference, paired by round.
fn ratios(ours: &[Measure], reference: &[Measure]) -> (f64, f64, f64) {
    let r: Vec<f64> = ours
        .iter()
        .zip(reference)
        .map(|(o, v)| o.ops_per_sec / v.ops_per_sec)
        .collect();
    let min = r.iter().copied().fold(f64::INFINITY, f64::min);
    let max = r.iter().copied().fold(0.0, f64::max);
    (median(r), min, max)
}

fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpus = info.lines().filter(|l| l.starts_with("processor")).count();
    let model = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, m)| m.trim());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{cpus} CPUs, {model}; load average at the end: {}",
        load.join(" ")
    )
}

fn render(setup: &Setup, results: &Results, micro: &Micro) -> String {
    let empty: Vec<Measure> = Vec::new();
    let runs = |series: Series, c: usize| results.runs.get(&(series, c)).unwrap_or(&empty);
    let mut s = String::new();
    let _ = writeln!(s, "machine: {}", machine());
    let _ = writeln!(
        s,
        "pinning: {}; runtime: {}; stored value: {} bytes sealed, {} bytes plaintext",
        if setup.pin {
            "valkey-server on CPU 1, valkey-benchmark and this process on CPU 0"
        } else {
            "none"
        },
        if setup.multi {
            "tokio multi-thread, 2 workers"
        } else {
            "tokio current-thread"
        },
        setup.sealed_len,
        setup.plain_len,
    );
    let _ = writeln!(
        s,
        "medians of {} rounds; ratio = ours ÷ reference per round (median, range); \
         latency µs; CPU µs per operation (client / server)\n",
        results.rounds
    );

    for op in Op::ALL {
        let (main, same_work) = match op {
            Op::Get => (Reference::Hget, None),
            Op::Put => (Reference::Hset, Some(Reference::PutScript)),
            Op::GetBound => (Reference::Hget, Some(Reference::Hgetall)),
        };
        let r = main.name();
        let _ = writeln!(s, "#### `{}` (encrypted)\n", op.name());
        let mut header = format!(
            "| callers | valkey-benchmark {r} ops/s | ours ops/s | ratio | ours p50 / p99 | \
             {r} p50 / p99 | ours CPU | {r} CPU | pool |"
        );
        let mut rule = "|---|---|---|---|---|---|---|---|---|".to_owned();
        if let Some(same) = same_work {
            let _ = write!(header, " {} ops/s | ratio |", same.name());
            rule.push_str("---|---|");
        }
        let _ = writeln!(s, "{header}\n{rule}");
        for c in CONCURRENCY {
            let ours = runs(Series::Encrypted(op), c);
            let vb = runs(Series::Reference(main), c);
            let (ratio, lo, hi) = ratios(ours, vb);
            let pool = results.pool.get(&(op, c)).copied().unwrap_or(0);
            let _ = write!(
                s,
                "| {c} | {:.0} | {:.0} | **{ratio:.2}** ({lo:.2}–{hi:.2}) | {:.0} / {:.0} | \
                 {:.0} / {:.0} | {:.1} / {:.1} | {:.1} / {:.1} | {pool} |",
                med(vb, |m| m.ops_per_sec),
                med(ours, |m| m.ops_per_sec),
                med(ours, |m| m.p50_us),
                med(ours, |m| m.p99_us),
                med(vb, |m| m.p50_us),
                med(vb, |m| m.p99_us),
                med(ours, |m| m.cpu.client),
                med(ours, |m| m.cpu.server),
                med(vb, |m| m.cpu.client),
                med(vb, |m| m.cpu.server),
            );
            if let Some(same) = same_work {
                let same = runs(Series::Reference(same), c);
                let (ratio, lo, hi) = ratios(ours, same);
                let _ = write!(
                    s,
                    " {:.0} | {ratio:.2} ({lo:.2}–{hi:.2}) |",
                    med(same, |m| m.ops_per_sec)
                );
            }
            s.push('\n');
        }
        s.push('\n');
    }

    render_ceiling(&mut s, &runs);

    let _ = writeln!(
        s,
        "#### Where the client's CPU goes (µs per operation; same commands on each row)\n"
    );
    let _ = writeln!(
        s,
        "| callers | operation | valkey-benchmark | fred alone | store, plaintext | \
         store, encrypted | fred alone ops/s | store ÷ fred alone |\n\
         |---|---|---|---|---|---|---|---|"
    );
    for c in CONCURRENCY {
        for op in Op::ALL {
            let reference = match op {
                Op::Get => Reference::Hget,
                Op::GetBound => Reference::Hgetall,
                Op::Put => Reference::PutScript,
            };
            let vb = runs(Series::Reference(reference), c);
            let fred = runs(Series::Fred(op), c);
            let enc = runs(Series::Encrypted(op), c);
            let (ratio, lo, hi) = ratios(enc, fred);
            let _ = writeln!(
                s,
                "| {c} | {} ({}) | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {ratio:.2} ({lo:.2}–{hi:.2}) |",
                op.name(),
                reference.name(),
                med(vb, |m| m.cpu.client),
                med(fred, |m| m.cpu.client),
                med(runs(Series::Plaintext(op), c), |m| m.cpu.client),
                med(enc, |m| m.cpu.client),
                med(fred, |m| m.ops_per_sec),
            );
        }
    }
    s.push('\n');

    let _ = writeln!(s, "#### Encryption cost (same pool size, same rounds)\n");
    let _ = writeln!(
        s,
        "| callers | operation | plaintext ops/s | encrypted ops/s | encrypted ÷ plaintext | \
         plaintext CPU µs/op | encrypted CPU µs/op | CPU added µs/op |\n\
         |---|---|---|---|---|---|---|---|"
    );
    for c in CONCURRENCY {
        for op in Op::ALL {
            let enc = runs(Series::Encrypted(op), c);
            let plain = runs(Series::Plaintext(op), c);
            let (ratio, lo, hi) = ratios(enc, plain);
            let enc_cpu = med(enc, |m| m.cpu.client);
            let plain_cpu = med(plain, |m| m.cpu.client);
            let _ = writeln!(
                s,
                "| {c} | {} | {:.0} | {:.0} | {ratio:.2} ({lo:.2}–{hi:.2}) | {plain_cpu:.1} | \
                 {enc_cpu:.1} | {:+.1} |",
                op.name(),
                med(plain, |m| m.ops_per_sec),
                med(enc, |m| m.ops_per_sec),
                enc_cpu - plain_cpu,
            );
        }
    }
    let _ = writeln!(
        s,
        "\n`KeyRing` alone, {}-byte value, associated data built per call ({MICRO_ITERS} \
         iterations): encrypt {:.0} ns/op, decrypt {:.0} ns/op\n",
        setup.plain_len, micro.encrypt_ns, micro.decrypt_ns
    );

    let _ = writeln!(
        s,
        "#### Pool sizes tried (encrypted, median ops/s of {TUNING_REPS} runs each)\n"
    );
    let mut header = "| callers | operation |".to_owned();
    let mut rule = "|---|---|".to_owned();
    for size in POOL_SIZES {
        let _ = write!(header, " pool {size} |");
        rule.push_str("---|");
    }
    let _ = writeln!(s, "{header}\n{rule}");
    for c in CONCURRENCY {
        for op in Op::ALL {
            let _ = write!(s, "| {c} | {} |", op.name());
            for size in POOL_SIZES {
                let ops = results.tuning.get(&(op, c, size)).copied().unwrap_or(0.0);
                let _ = write!(s, " {ops:.0} |");
            }
            s.push('\n');
        }
    }
    s
}

/// The ceiling table: what an atomic put reaches with no client library, next to `HSET`.
fn render_ceiling<'a>(s: &mut String, runs: &impl Fn(Series, usize) -> &'a Vec<Measure>) {
    let _ = writeln!(
        s,
        "#### The ceiling for an atomic put (raw client: no library, one connection per caller, \
         one write per operation)\n"
    );
    let _ = writeln!(
        s,
        "| callers | valkey-benchmark HSET ops/s | raw HSET ops/s | raw MULTI/EXEC put ops/s | \
         ÷ raw HSET | ÷ valkey-benchmark HSET | raw EVALSHA put ops/s | ÷ raw HSET | \
         ÷ valkey-benchmark HSET | server CPU µs/op: HSET / MULTI put / EVALSHA put | \
         ours put ÷ raw MULTI/EXEC put |\n\
         |---|---|---|---|---|---|---|---|---|---|---|"
    );
    for c in CONCURRENCY {
        let vb = runs(Series::Reference(Reference::Hset), c);
        let hset = runs(Series::Raw(RawOp::Hset), c);
        let multi = runs(Series::Raw(RawOp::MultiPut), c);
        let script = runs(Series::Raw(RawOp::ScriptPut), c);
        let ours = runs(Series::Encrypted(Op::Put), c);
        let ratio = |a: &[Measure], b: &[Measure]| {
            let (r, lo, hi) = ratios(a, b);
            format!("{r:.2} ({lo:.2}–{hi:.2})")
        };
        let _ = writeln!(
            s,
            "| {c} | {:.0} | {:.0} | {:.0} | {} | **{}** | {:.0} | {} | {} | {:.1} / {:.1} / {:.1} | {} |",
            med(vb, |m| m.ops_per_sec),
            med(hset, |m| m.ops_per_sec),
            med(multi, |m| m.ops_per_sec),
            ratio(multi, hset),
            ratio(multi, vb),
            med(script, |m| m.ops_per_sec),
            ratio(script, hset),
            ratio(script, vb),
            med(hset, |m| m.cpu.server),
            med(multi, |m| m.cpu.server),
            med(script, |m| m.cpu.server),
            ratio(ours, multi),
        );
    }
    s.push('\n');
}
