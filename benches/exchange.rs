//! Token exchange (RFC 8693) cost: cache-hit lookups per second through the `Exchanger`, and
//! the latency of a miss (form build, guarded POST, response checks, cache insert) next to a
//! plain POST of the same exchange to the identity provider's token endpoint, measured in the
//! same run and interleaved so both see the same IdP and machine load.
//!
//! Parts, all real: node-oidc-provider with its token-exchange grant (`tests/infra/node`), the
//! crate's `Exchanger` in this process.
//!
//! Run: `cargo bench --bench exchange`. Without cargo bench's `--bench` argument the binary
//! exits at once (so `cargo test --all-targets` does not run it). `EXCHANGE_BENCH_MISSES` sets
//! the number of misses measured (default 300).

use mcp_oauth_operator::credentials::exchange::{ExchangeConfig, Exchanger, Source};
use mcp_oauth_operator::metrics::Metrics;
use mcp_oauth_operator::registry::{
    ClientAuthMethod, PolicyClientAuth, PolicyRegistration, ServerKey, SubjectTokenType,
};
use secrecy::SecretString;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::idp::{CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET};
use testkit::{Idp, IdpOptions};
use url::Url;

const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const HITS: u32 = 200_000;
const RESOURCE: &str = "http://127.0.0.1/bench-mcp";

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        return ExitCode::SUCCESS;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("exchange bench: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = rt.block_on(run());
    println!("{report}");
    ExitCode::SUCCESS
}

fn policy(idp: &Idp) -> PolicyRegistration {
    PolicyRegistration {
        key: ServerKey::new("bench", "idp"),
        token_endpoint: Url::parse(&idp.token_endpoint()).expect("token endpoint"),
        expected_issuer: idp.issuer().to_owned(),
        connector_id: None,
        audience: None,
        resource: Some(RESOURCE.to_owned()),
        scopes: vec!["mcp:tools".to_owned()],
        subject_token_type: SubjectTokenType::AccessToken,
        requested_token_type: Some(ACCESS_TOKEN_TYPE.to_owned()),
        client_auth: Some(PolicyClientAuth::Secret {
            client_id: CONFIDENTIAL_CLIENT_ID.to_owned(),
            client_secret: SecretString::from(CONFIDENTIAL_CLIENT_SECRET.to_owned()),
            method: ClientAuthMethod::Basic,
        }),
        allow_private_networks: true,
        generation: 1,
        // As the controller registers it after checking the IdP's metadata.
        endpoint_verified: true,
    }
}

/// The same exchange as a plain reqwest POST (what any client would send), for the baseline.
async fn direct(http: &reqwest::Client, idp: &Idp, subject: &str) -> Duration {
    let started = Instant::now();
    let resp = http
        .post(idp.token_endpoint())
        .basic_auth(CONFIDENTIAL_CLIENT_ID, Some(CONFIDENTIAL_CLIENT_SECRET))
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", subject),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("requested_token_type", ACCESS_TOKEN_TYPE),
            ("resource", RESOURCE),
            ("scope", "mcp:tools"),
        ])
        .send()
        .await
        .expect("direct exchange");
    assert!(
        resp.status().is_success(),
        "direct exchange: {}",
        resp.status()
    );
    let _ = resp.bytes().await.expect("body");
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn run() -> String {
    let misses: usize = std::env::var("EXCHANGE_BENCH_MISSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let idp = Idp::start(IdpOptions::default()).await;
    let subject = idp
        .user_access_token("alice", "http://127.0.0.1/gateway")
        .await;
    let subject_secret = SecretString::from(subject.clone());
    let exchanger = Arc::new(Exchanger::new(ExchangeConfig::default(), &Metrics::new()));
    let policy = Arc::new(policy(&idp));
    let http = reqwest::Client::new();

    // Warm-up: connection pools, JIT of the IdP.
    for i in 0..20 {
        direct(&http, &idp, &subject).await;
        exchanger
            .exchange(&policy, &format!("warm-{i}"), &subject_secret)
            .await
            .expect("warm-up exchange");
    }

    // Misses (a new user each time) interleaved with direct POSTs.
    let mut via_exchanger = Vec::with_capacity(misses);
    let mut via_direct = Vec::with_capacity(misses);
    for i in 0..misses {
        via_direct.push(direct(&http, &idp, &subject).await);
        let started = Instant::now();
        let got = exchanger
            .exchange(&policy, &format!("user-{i}"), &subject_secret)
            .await
            .expect("exchange");
        via_exchanger.push(started.elapsed());
        assert_eq!(got.source, Source::Exchange, "a miss");
    }
    via_exchanger.sort();
    via_direct.sort();

    // Hits: one task, then 4 concurrent tasks, on cached keys.
    let started = Instant::now();
    for _ in 0..HITS {
        let got = exchanger
            .exchange(&policy, "user-0", &subject_secret)
            .await
            .expect("hit");
        debug_assert_eq!(got.source, Source::Cache);
    }
    let one_task = started.elapsed();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..4 {
        let (exchanger, policy, subject) =
            (exchanger.clone(), policy.clone(), subject_secret.clone());
        tasks.push(tokio::spawn(async move {
            let user = format!("user-{t}");
            for _ in 0..HITS / 4 {
                exchanger
                    .exchange(&policy, &user, &subject)
                    .await
                    .expect("hit");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let four_tasks = started.elapsed();
    let counts = exchanger.counts(&policy.key);

    let mut out = String::new();
    let _ = writeln!(out, "| measurement | p50 | p99 | mean |");
    let _ = writeln!(out, "|---|---|---|---|");
    for (name, v) in [
        ("IdP token endpoint, direct POST", &via_direct),
        ("Exchanger miss (gateway path)", &via_exchanger),
    ] {
        let mean = v.iter().sum::<Duration>() / v.len() as u32;
        let _ = writeln!(
            out,
            "| {name} ({} calls) | {:.2} ms | {:.2} ms | {:.2} ms |",
            v.len(),
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.99)),
            ms(mean)
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| cache hits | lookups/s | per lookup |\n|---|---|---|\n| 1 task, {HITS} lookups | {:.0} | {:.0} ns |\n| 4 tasks, {HITS} lookups | {:.0} | {:.0} ns |",
        f64::from(HITS) / one_task.as_secs_f64(),
        one_task.as_nanos() as f64 / f64::from(HITS),
        f64::from(HITS) / four_tasks.as_secs_f64(),
        four_tasks.as_nanos() as f64 / f64::from(HITS),
    );
    let _ = writeln!(
        out,
        "\nExchanger counts: {} hits, {} misses",
        counts.hits, counts.misses
    );
    out
}
