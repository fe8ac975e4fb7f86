//! End-to-end cost of the gateway's browser flow against the real test IdP (node-oidc-provider),
//! next to the same login done directly at the IdP, in one process so both sides share the IdP
//! process and the machine state.
//!
//! * **Gateway flow**: `create_auth_challenge` → `GET /oauth/connect` → the IdP's authorize,
//!   login and consent pages (scripted browser) → `GET /oauth/callback` (which redeems the code
//!   at the IdP's token endpoint and stores the token).
//! * **IdP baseline**: authorize → the same login and consent pages → token request, as a
//!   client of its own, with the same pre-registered client (`gateway-confidential`,
//!   `client_secret_basic`) and the gateway's own authorization parameters (`scope`,
//!   `resource`, `prompt`), only `state`, PKCE and the redirect URI being its own.
//!
//! Each iteration uses a fresh browser (a new IdP login) and a user name of its own, so both
//! sides make the IdP do the same work. The two kinds of iteration alternate (and alternate which
//! goes first) so that drift in the IdP (its in-memory store grows) hits both alike.
//!
//! Run: `cargo bench --bench flow` (`FLOW_BENCH_ITERS` overrides the 50 measured iterations).
//! It needs the node components: `scripts/setup-test-deps.sh`.
//!
//! `cargo test --benches` and `cargo nextest run --all-targets` also build and start this binary;
//! without cargo bench's `--bench` argument it lists no tests and exits at once.

use mcp_oauth_operator::app::{self, Registrations, RunningServer};
use mcp_oauth_operator::identity::Caller;
use mcp_oauth_operator::registry::{
    AuthSettings, ClientAuthMethod, Registry, ServerKey, ServerRegistration,
};
use reqwest::StatusCode;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use testkit::gateway::{oauth_settings, pre_registered, query_param, server_args};
use testkit::idp::{CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET};
use testkit::{Browser, Idp, IdpOptions, LoginError, McpServer, Pkce, free_port};
use url::Url;

const DEFAULT_ITERS: usize = 50;
const WARMUP_ITERS: usize = 3;
const ITERS_ENV: &str = "FLOW_BENCH_ITERS";

/// Why the benchmark stopped. Messages name the step, never a URL: those carry `state`,
/// authorization codes or PKCE challenges.
#[derive(Debug, thiserror::Error)]
enum BenchError {
    #[error("{ITERS_ENV} must be a positive integer")]
    BadIters,
    #[error("cannot build the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("the gateway did not start: {0}")]
    Gateway(#[from] app::StartError),
    #[error("create_auth_challenge failed: {0}")]
    Challenge(#[from] mcp_oauth_operator::flows::ChallengeError),
    #[error("{step}: request failed: {source}")]
    Request {
        step: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("{step}: unexpected HTTP {status}")]
    Status {
        step: &'static str,
        status: StatusCode,
    },
    #[error("{step}: {what}")]
    Protocol {
        step: &'static str,
        what: &'static str,
    },
    #[error("scripted IdP login failed: {0}")]
    Login(String),
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        // nextest's listing (`--list --format terse [--ignored]`): this binary has no tests.
        return ExitCode::SUCCESS;
    }
    if !args.iter().any(|a| a == "--bench") {
        eprintln!("flow bench: not run as a test; run it with `cargo bench --bench flow`");
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flow bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn iterations() -> Result<usize, BenchError> {
    match std::env::var(ITERS_ENV) {
        Err(_) => Ok(DEFAULT_ITERS),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(BenchError::BadIters),
        },
    }
}

fn run() -> Result<(), BenchError> {
    let iters = iterations()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    runtime.block_on(bench(iters))
}

/// Everything one run talks to.
struct World {
    _idp: Idp,
    _mcp: McpServer,
    gateway: RunningServer,
    server: ServerKey,
    baseline: Baseline,
}

/// What the direct client sends, copied from the gateway's own authorization request so that
/// the IdP does the same work on both sides (same scope, resource and prompt).
struct Baseline {
    authorization_endpoint: String,
    token_endpoint: String,
    redirect_uri: String,
    /// The gateway's authorization parameters other than the per-flow and per-client ones.
    authorize_params: Vec<(String, String)>,
    /// The RFC 8707 resource, also sent on the token request (as the gateway does).
    resource: Option<String>,
    /// Shared across iterations (connection reuse), as the gateway's outbound client is.
    http: reqwest::Client,
}

/// Durations of one gateway iteration.
struct GatewaySample {
    total: Duration,
    challenge: Duration,
    connect: Duration,
    idp_login: Duration,
    callback: Duration,
}

/// Durations of one direct (baseline) iteration.
struct BaselineSample {
    total: Duration,
    idp_login: Duration,
    token: Duration,
}

async fn bench(iters: usize) -> Result<(), BenchError> {
    let idp = Idp::start(IdpOptions::default()).await;
    let mcp = McpServer::start(idp.issuer()).await;
    let gateway = app::start(&server_args(&[]).app_config(), Registrations::Programmatic).await?;
    let server = register(&gateway.registry, mcp.url());

    // The first gateway flow tells the baseline what to request.
    let (_, authorize) = gateway_flow(&gateway, &server, "warmup-gw-0", "warmup-0").await?;
    let baseline = Baseline {
        authorization_endpoint: idp.authorization_endpoint(),
        token_endpoint: idp.token_endpoint(),
        redirect_uri: format!("http://127.0.0.1:{}/oauth/callback", free_port()),
        authorize_params: shared_params(&authorize),
        resource: query_param(&authorize, "resource"),
        http: reqwest::Client::new(),
    };
    if query_param(&authorize, "client_id").as_deref() != Some(CONFIDENTIAL_CLIENT_ID) {
        return Err(BenchError::Protocol {
            step: "connect",
            what: "the gateway did not use the pre-registered client",
        });
    }
    let world = World {
        _idp: idp,
        _mcp: mcp,
        gateway,
        server,
        baseline,
    };

    for i in 1..WARMUP_ITERS {
        gateway_flow(
            &world.gateway,
            &world.server,
            &format!("warmup-gw-{i}"),
            &format!("warmup-{i}"),
        )
        .await?;
    }
    for i in 0..WARMUP_ITERS {
        baseline_flow(&world.baseline, &format!("warmup-idp-{i}")).await?;
    }

    let mut gw = Vec::with_capacity(iters);
    let mut direct = Vec::with_capacity(iters);
    for i in 0..iters {
        let (user_gw, session, user_idp) =
            (format!("gw-{i}"), format!("bench-{i}"), format!("idp-{i}"));
        if i % 2 == 0 {
            gw.push(
                gateway_flow(&world.gateway, &world.server, &user_gw, &session)
                    .await?
                    .0,
            );
            direct.push(baseline_flow(&world.baseline, &user_idp).await?);
        } else {
            direct.push(baseline_flow(&world.baseline, &user_idp).await?);
            gw.push(
                gateway_flow(&world.gateway, &world.server, &user_gw, &session)
                    .await?
                    .0,
            );
        }
    }
    let stored = world.gateway.token_store.count().await;
    if !matches!(stored, Ok(n) if n == iters + WARMUP_ITERS) {
        return Err(BenchError::Protocol {
            step: "callback",
            what: "the gateway did not store one token per flow",
        });
    }

    print_report(iters, &world.baseline.authorize_params, &gw, &direct);
    world.gateway.shutdown().await;
    Ok(())
}

/// `default/bench` in oauth mode with the IdP's pre-registered confidential client.
fn register(registry: &Registry, mcp_url: &str) -> ServerKey {
    let key = ServerKey::new("default", "bench");
    let client = pre_registered(
        CONFIDENTIAL_CLIENT_ID,
        CONFIDENTIAL_CLIENT_SECRET,
        ClientAuthMethod::Basic,
    );
    let url = match Url::parse(mcp_url) {
        Ok(u) => u,
        Err(e) => panic!("the MCP server printed a bad URL: {e}"),
    };
    registry.upsert_server(ServerRegistration {
        key: key.clone(),
        url,
        auth: AuthSettings::OAuth(oauth_settings(mcp_url, client)),
        generation: 1,
        forward_headers: Vec::new(),
    });
    key
}

/// One timed gateway flow; also returns the IdP authorization URL the gateway redirected to.
async fn gateway_flow(
    gateway: &RunningServer,
    server: &ServerKey,
    user: &str,
    session: &str,
) -> Result<(GatewaySample, Url), BenchError> {
    let browser = Browser::new();
    let caller = Caller::new(user, session);
    let start = Instant::now();

    let challenge = gateway
        .flows
        .create_auth_challenge(server, &caller, None)
        .await?;
    let challenge_done = Instant::now();

    let (status, location) = get_redirect(&browser, &challenge.auth_url, "connect").await?;
    if status != StatusCode::FOUND {
        return Err(BenchError::Status {
            step: "connect",
            status,
        });
    }
    let authorize = location.ok_or(BenchError::Protocol {
        step: "connect",
        what: "no usable Location header",
    })?;
    let connect_done = Instant::now();

    let callback_url = login(&browser, authorize.as_str(), user).await?;
    if callback_url.origin() != gateway.public_url.origin()
        || callback_url.path() != "/oauth/callback"
    {
        return Err(BenchError::Protocol {
            step: "IdP login",
            what: "the IdP did not redirect to the gateway's callback",
        });
    }
    let login_done = Instant::now();

    let response = browser
        .client()
        .get(callback_url)
        .send()
        .await
        .map_err(|e| request_error("callback", e))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| request_error("callback", e))?;
    if status != StatusCode::OK {
        return Err(BenchError::Status {
            step: "callback",
            status,
        });
    }
    if !body.contains("Authorization complete") {
        return Err(BenchError::Protocol {
            step: "callback",
            what: "the page does not say the authorization is complete",
        });
    }
    let end = Instant::now();

    let sample = GatewaySample {
        total: end - start,
        challenge: challenge_done - start,
        connect: connect_done - challenge_done,
        idp_login: login_done - connect_done,
        callback: end - login_done,
    };
    Ok((sample, authorize))
}

/// One timed direct flow: authorize → login and consent → token request.
async fn baseline_flow(b: &Baseline, user: &str) -> Result<BaselineSample, BenchError> {
    let browser = Browser::new();
    let start = Instant::now();

    let pkce = Pkce::new();
    let state = Pkce::new().verifier;
    let mut authorize = match Url::parse(&b.authorization_endpoint) {
        Ok(u) => u,
        Err(e) => panic!("the IdP's authorization endpoint is not a URL: {e}"),
    };
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", CONFIDENTIAL_CLIENT_ID)
        .append_pair("redirect_uri", &b.redirect_uri)
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", &state)
        .extend_pairs(&b.authorize_params);

    let callback = login(&browser, authorize.as_str(), user).await?;
    if query_param(&callback, "state").as_deref() != Some(state.as_str()) {
        return Err(BenchError::Protocol {
            step: "IdP login",
            what: "the authorization response does not carry our state",
        });
    }
    let code = query_param(&callback, "code").ok_or(BenchError::Protocol {
        step: "IdP login",
        what: "the authorization response has no code",
    })?;
    let login_done = Instant::now();

    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", b.redirect_uri.as_str()),
        ("code_verifier", pkce.verifier.as_str()),
    ];
    if let Some(resource) = &b.resource {
        form.push(("resource", resource.as_str()));
    }
    let response = b
        .http
        .post(&b.token_endpoint)
        .basic_auth(CONFIDENTIAL_CLIENT_ID, Some(CONFIDENTIAL_CLIENT_SECRET))
        .form(&form)
        .send()
        .await
        .map_err(|e| request_error("token", e))?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|e| request_error("token", e))?;
    if status != StatusCode::OK {
        return Err(BenchError::Status {
            step: "token",
            status,
        });
    }
    if !body["access_token"].is_string() {
        return Err(BenchError::Protocol {
            step: "token",
            what: "the token response has no access_token",
        });
    }
    let end = Instant::now();

    Ok(BaselineSample {
        total: end - start,
        idp_login: login_done - start,
        token: end - login_done,
    })
}

/// The query of the gateway's authorization request without what each flow or client sets
/// itself (`state`, PKCE, `redirect_uri`, `client_id`, `response_type`).
fn shared_params(authorize: &Url) -> Vec<(String, String)> {
    const OWN: [&str; 6] = [
        "response_type",
        "client_id",
        "redirect_uri",
        "state",
        "code_challenge",
        "code_challenge_method",
    ];
    authorize
        .query_pairs()
        .filter(|(k, _)| !OWN.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// GET `url` without following redirects and read the body; returns the status and the
/// resolved `Location`.
async fn get_redirect(
    browser: &Browser,
    url: &str,
    step: &'static str,
) -> Result<(StatusCode, Option<Url>), BenchError> {
    let response = browser
        .client()
        .get(url)
        .send()
        .await
        .map_err(|e| request_error(step, e))?;
    let status = response.status();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| response.url().join(v).ok());
    response.bytes().await.map_err(|e| request_error(step, e))?;
    Ok((status, location))
}

async fn login(browser: &Browser, start: &str, user: &str) -> Result<Url, BenchError> {
    browser
        .try_login_at_idp(start, user)
        .await
        .map_err(|e| BenchError::Login(describe_login_error(&e)))
}

/// The login failure without its URLs (they carry `state` and PKCE challenges).
fn describe_login_error(e: &LoginError) -> String {
    match e {
        LoginError::Request { url, source } => {
            format!("request to {} failed: {}", url.path(), kind(source))
        }
        LoginError::BadRedirect { url } => format!("bad redirect from {}", url.path()),
        LoginError::UnexpectedPage { url, status, .. } => {
            format!("unexpected page at {}: HTTP {status}", url.path())
        }
        LoginError::TooManySteps { url } => format!("too many steps (last {})", url.path()),
    }
}

/// The kind of a request failure (its `Display` would include the URL).
fn kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "bad response body"
    } else {
        "request error"
    }
}

fn request_error(step: &'static str, e: reqwest::Error) -> BenchError {
    BenchError::Request {
        step,
        source: e.without_url(),
    }
}

/// min, median, p90 (nearest rank) and max, in milliseconds.
struct Summary {
    min: f64,
    median: f64,
    p90: f64,
    max: f64,
}

fn summarize(samples: impl Iterator<Item = Duration>) -> Summary {
    let mut ms: Vec<f64> = samples.map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    if n == 0 {
        return Summary {
            min: f64::NAN,
            median: f64::NAN,
            p90: f64::NAN,
            max: f64::NAN,
        };
    }
    let median = if n % 2 == 1 {
        ms[n / 2]
    } else {
        (ms[n / 2 - 1] + ms[n / 2]) / 2.0
    };
    // Nearest rank: the smallest value with at least 90 % of the samples at or below it.
    let p90 = ms[(n * 9).div_ceil(10).saturating_sub(1)];
    Summary {
        min: ms[0],
        median,
        p90,
        max: ms[n - 1],
    }
}

fn row(label: &str, s: &Summary) -> String {
    format!(
        "| {label} | {:.1} | {:.1} | {:.1} | {:.1} |",
        s.min, s.median, s.p90, s.max
    )
}

fn print_report(
    iters: usize,
    params: &[(String, String)],
    gw: &[GatewaySample],
    direct: &[BaselineSample],
) {
    let gw_total = summarize(gw.iter().map(|s| s.total));
    let idp_total = summarize(direct.iter().map(|s| s.total));
    let challenge = summarize(gw.iter().map(|s| s.challenge));
    let connect = summarize(gw.iter().map(|s| s.connect));
    let gw_login = summarize(gw.iter().map(|s| s.idp_login));
    let callback = summarize(gw.iter().map(|s| s.callback));
    let idp_login = summarize(direct.iter().map(|s| s.idp_login));
    let token = summarize(direct.iter().map(|s| s.token));

    println!();
    println!("Browser flow, {iters} iterations each (after {WARMUP_ITERS} warm-up), times in ms");
    let shared: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("Authorization request on both sides: {}", shared.join(", "));
    println!();
    println!("| flow (end to end) | min | median | p90 | max |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "{}",
        row(
            "IdP baseline: authorize → login → consent → token",
            &idp_total
        )
    );
    println!(
        "{}",
        row("Gateway: challenge → connect → IdP → callback", &gw_total)
    );
    println!();
    println!(
        "Added by the gateway (difference of medians): {:.1} ms per flow",
        gw_total.median - idp_total.median
    );
    println!();
    println!("| step | min | median | p90 | max |");
    println!("|---|---:|---:|---:|---:|");
    println!("{}", row("gateway: `create_auth_challenge`", &challenge));
    println!("{}", row("gateway: `GET /oauth/connect`", &connect));
    println!(
        "{}",
        row("gateway: IdP authorize + login + consent", &gw_login)
    );
    println!(
        "{}",
        row(
            "gateway: `GET /oauth/callback` (incl. IdP token request)",
            &callback
        )
    );
    println!(
        "{}",
        row("baseline: IdP authorize + login + consent", &idp_login)
    );
    println!("{}", row("baseline: IdP token request", &token));
    println!();
    println!(
        "Median connect handler: {:.2} ms; median callback handler: {:.2} ms \
         (of which the IdP token request takes about {:.2} ms in the baseline)",
        connect.median, callback.median, token.median
    );
}
