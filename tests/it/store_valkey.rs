//! The Valkey stores against a real `valkey-server` (see testkit/src/valkey.rs): the same
//! conformance checks as the in-memory stores (encrypted and plaintext), plus what only Valkey
//! has: encryption at rest, malformed stored values, key rotation, TLS, a server restart, the
//! refresh lock, several replicas and the key layout.
//!
//! Tests on the shared server isolate themselves with a random key prefix; tests that count the
//! whole server, stop it or need TLS start their own.

use futures::StreamExt as _;
use mcp_oauth_operator::crypto::{KeyRing, aad, envelope_key_id};
use mcp_oauth_operator::registry::ServerKey;
use mcp_oauth_operator::store::conformance::{flow_store_suite, token_store_suite};
use mcp_oauth_operator::store::sealed::Sealing;
use mcp_oauth_operator::store::valkey::{
    ValkeyClient, ValkeyConfig, ValkeyStores, ValkeyTopology, connect,
};
use mcp_oauth_operator::store::{
    BindOutcome, BrowserBinding, ConsumeOutcome, FLOW_TTL_SECS, FlowId, FlowStore, LockToken,
    PendingFlow, RefreshLock, StoreError, TokenBinding, TokenKey, TokenRecord, TokenStore,
};
use mcp_oauth_operator::time::unix_now;
use secrecy::{ExposeSecret as _, SecretString};
use std::time::{Duration, Instant};
use testkit::valkey::{Valkey, ValkeyCluster, random_prefix};

const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const K2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
const ISSUER: &str = "https://idp.example.com";
const NAMESPACE: &str = "team-a";
const RESOURCE: &str = "https://mcp.example.com/mcp";

/// A key of `issuer`'s token for the tests' one namespace and resource.
fn tkey(session: impl Into<String>, issuer: impl Into<String>, scope: &str) -> TokenKey {
    TokenKey::new(
        session,
        TokenBinding::new(issuer, NAMESPACE, RESOURCE),
        scope,
    )
}

/// The documented hash field of [`tkey`]`(_, ISSUER, scope)`.
fn field_of(scope: &str) -> String {
    format!("@{ISSUER}|{NAMESPACE}|{RESOURCE}|{scope}")
}
const TTL: Duration = Duration::from_secs(30 * 24 * 3600);

fn ring(text: &str) -> KeyRing {
    KeyRing::parse(text).unwrap_or_else(|e| panic!("test key ring: {e}"))
}

/// Ring {k1}.
fn ring_k1() -> KeyRing {
    ring(&format!("k1: {K1}"))
}

/// Ring {k1, k2}, k2 primary.
fn ring_k1_k2() -> KeyRing {
    ring(&format!("primary: k2\nk1: {K1}\nk2: {K2}"))
}

/// Ring {k2}.
fn ring_k2() -> KeyRing {
    ring(&format!("k2: {K2}"))
}

fn encrypted() -> Sealing {
    Sealing::Encrypted(ring_k1())
}

fn config(url: String) -> ValkeyConfig {
    let mut config = ValkeyConfig::new(vec![url]);
    config.pool_size = 2;
    config.command_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_secs(2);
    config
}

async fn client_for(valkey: &Valkey) -> ValkeyClient {
    connect(&config(valkey.url()))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

/// Fresh stores (own prefix) on the shared server.
async fn stores(codec: Sealing) -> ValkeyStores {
    let client = client_for(Valkey::shared()).await;
    ValkeyStores::new(client, random_prefix(), TTL, codec)
}

fn ok<T>(r: Result<T, StoreError>, doing: &str) -> T {
    r.unwrap_or_else(|e| panic!("{doing}: {e}"))
}

fn record(user: &str, access: &str, refresh: Option<&str>) -> TokenRecord {
    TokenRecord {
        access_token: SecretString::from(access),
        token_type: "Bearer".into(),
        refresh_token: refresh.map(SecretString::from),
        expires_at: Some(unix_now() + 3600),
        granted_scope: Some("files:read".into()),
        issuer: ISSUER.into(),
        client_id: "https://gateway.example.com/oauth/client".into(),
        user: user.into(),
        obtained_at: unix_now(),
    }
}

fn flow(session: &str, user: &str) -> PendingFlow {
    let now = unix_now();
    PendingFlow {
        session: session.into(),
        user: user.into(),
        server: ServerKey::new("team-a", "github"),
        issuer: ISSUER.into(),
        scopes: vec!["files:read".into()],
        token_resource: RESOURCE.into(),
        resource: Some("https://mcp.example.com/mcp".into()),
        created_at: now,
        expires_at: now + FLOW_TTL_SECS,
        browser: None,
        pkce_verifier: None,
    }
}

fn access(r: &TokenRecord) -> String {
    r.access_token.expose_secret().to_owned()
}

// ---------------------------------------------------------------------------------------------
// Conformance: the same checks as the in-memory stores, one test per check.

mod token_store_encrypted {
    mcp_oauth_operator::token_store_conformance_tests!(
        super::stores(super::encrypted()).await.tokens
    );
}

// The request path's read cache in front of the encrypted store must not change any answer.
mod token_store_cached {
    mcp_oauth_operator::token_store_conformance_tests!(
        mcp_oauth_operator::store::CachedTokenStore::new(
            std::sync::Arc::new(super::stores(super::encrypted()).await.tokens),
            std::time::Duration::from_secs(60),
            1000,
        )
    );
}

mod flow_store_encrypted {
    mcp_oauth_operator::flow_store_conformance_tests!(
        super::stores(super::encrypted()).await.flows
    );
}

mod token_store_plaintext {
    mcp_oauth_operator::token_store_conformance_tests!(
        super::stores(super::Sealing::Plaintext).await.tokens
    );
}

mod flow_store_plaintext {
    mcp_oauth_operator::flow_store_conformance_tests!(
        super::stores(super::Sealing::Plaintext).await.flows
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_store_full_suite_on_one_client() {
    let client = client_for(Valkey::shared()).await;
    token_store_suite(|| {
        ValkeyStores::new(client.clone(), random_prefix(), TTL, encrypted()).tokens
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_store_full_suite_on_one_client() {
    let client = client_for(Valkey::shared()).await;
    flow_store_suite(|| ValkeyStores::new(client.clone(), random_prefix(), TTL, encrypted()).flows)
        .await;
}

// ---------------------------------------------------------------------------------------------
// Encryption at rest.

/// Stores (under a fresh prefix, returned) holding one token and one bound flow, and the
/// strings no stored value may contain when encrypted.
async fn store_secrets(codec: Sealing) -> (String, Vec<&'static str>) {
    let prefix = random_prefix();
    let s = ValkeyStores::new(
        client_for(Valkey::shared()).await,
        prefix.clone(),
        TTL,
        codec,
    );
    let key = tkey("session-plain-7781", ISSUER, "files:read");
    let rec = record(
        "user-plain-5523",
        "access-plain-9910",
        Some("refresh-plain-3344"),
    );
    ok(s.tokens.put(&key, rec).await, "put");
    let id = FlowId::generate();
    ok(
        s.flows
            .insert(&id, flow("session-plain-7781", "user-plain-5523"))
            .await,
        "insert",
    );
    let bound = s
        .flows
        .bind(
            &id,
            BrowserBinding::from_cookie_secret("cookie"),
            SecretString::from("verifier-plain-6612"),
        )
        .await;
    assert!(matches!(bound, Ok(BindOutcome::Bound(_))), "{bound:?}");
    let secrets = vec![
        "access-plain-9910",
        "refresh-plain-3344",
        "verifier-plain-6612",
        "user-plain-5523",
        "session-plain-7781",
    ];
    (prefix, secrets)
}

/// Every stored hash value (token and flow hashes) under `prefix`.
async fn all_values(prefix: &str) -> Vec<Vec<u8>> {
    let raw = Valkey::shared().raw().await;
    let mut values = Vec::new();
    for space in ["oauth:token:", "oauth:state:"] {
        let keys = raw.keys(&format!("{prefix}{space}*")).await;
        assert!(!keys.is_empty(), "no {space} keys stored");
        for key in keys {
            values.extend(raw.hgetall(&key).await.into_values());
        }
    }
    values
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_values_hold_no_plaintext_when_encrypted() {
    let (prefix, secrets) = store_secrets(encrypted()).await;
    let values = all_values(&prefix).await;
    assert_eq!(values.len(), 3, "token entry, flow value, flow binding");
    for value in &values {
        for secret in &secrets {
            assert!(!contains(value, secret), "a stored value contains {secret}");
        }
    }
    // The same check sees the secrets when encryption is off, so it can fail.
    let (prefix, secrets) = store_secrets(Sealing::Plaintext).await;
    let values = all_values(&prefix).await;
    for secret in secrets {
        assert!(
            values.iter().any(|v| contains(v, secret)),
            "plaintext mode should store {secret} readably"
        );
    }
}

/// Tokens stored by the seed's layout (`{issuer}|{scope}`, no resource) cannot be told apart by
/// server: they are never returned, by any lookup, and are dropped — by the first read of their
/// session, by the sweep, and by signing out everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_the_old_layout_are_never_used_and_are_dropped() {
    let prefix = random_prefix();
    let client = client_for(Valkey::shared()).await;
    let s = ValkeyStores::new(client, prefix.clone(), TTL, encrypted());
    let raw = Valkey::shared().raw().await;
    // A real record, sealed for the old field of each session: what the previous version wrote.
    let plant = |session: &'static str| {
        let (s, raw, prefix) = (&s, &raw, prefix.clone());
        async move {
            let hash = format!("{prefix}oauth:token:{session}");
            let current = tkey(session, ISSUER, "mcp");
            ok(
                s.tokens
                    .put(&current, record("alice", "old-layout-token", Some("rt")))
                    .await,
                "put",
            );
            let sealed = raw.hget(&hash, &field_of("mcp")).await.expect("stored");
            let opened = ring_k1()
                .decrypt(
                    &sealed,
                    &aad(hash.as_bytes(), Some(field_of("mcp").as_bytes())),
                )
                .expect("opens");
            let legacy = format!("{ISSUER}|mcp");
            let resealed = ring_k1().encrypt(
                &opened.plaintext,
                &aad(hash.as_bytes(), Some(legacy.as_bytes())),
            );
            ok(s.tokens.delete(&current).await, "delete");
            raw.hset(&hash, &legacy, &resealed).await;
            assert_eq!(
                raw.hgetall(&hash).await.len(),
                1,
                "only the old field is left"
            );
            hash
        }
    };

    // 1. Lookups never return it, whatever binding they ask for; the read drops it.
    let hash = plant("s-read").await;
    for binding in [
        TokenBinding::new(ISSUER, NAMESPACE, RESOURCE),
        TokenBinding::new(ISSUER, "team-b", RESOURCE),
        TokenBinding::new(ISSUER, "", ""),
    ] {
        assert!(ok(s.tokens.get_bound("s-read", &binding).await, "get_bound").is_none());
    }
    assert!(
        raw.hgetall(&hash).await.is_empty(),
        "the read dropped the old field"
    );

    // 2. Listing never returns it either (and drops it).
    let hash = plant("s-list").await;
    assert!(ok(s.tokens.all_for_session("s-list").await, "all").is_empty());
    assert!(
        raw.hgetall(&hash).await.is_empty(),
        "the listing dropped the old field"
    );

    // 3. The periodic sweep drops it without anyone reading the session.
    let hash = plant("s-sweep").await;
    assert!(ok(s.tokens.remove_expired(unix_now()).await, "sweep") >= 1);
    assert!(
        raw.hgetall(&hash).await.is_empty(),
        "the sweep dropped the old field"
    );

    // 4. Signing out everywhere removes it with the user's other tokens.
    let hash = plant("s-user").await;
    let mine = tkey("s-user", ISSUER, "new");
    ok(
        s.tokens.put(&mine, record("alice", "new", None)).await,
        "put",
    );
    assert!(ok(s.tokens.delete_by_user("alice").await, "delete_by_user") >= 1);
    assert!(
        raw.hgetall(&hash).await.is_empty(),
        "sign-out left nothing behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_value_does_not_decrypt() {
    let prefix = random_prefix();
    let client = client_for(Valkey::shared()).await;
    let s = ValkeyStores::new(client, prefix.clone(), TTL, encrypted());
    let raw = Valkey::shared().raw().await;
    let a = tkey("s1", ISSUER, "a");
    let b = tkey("s2", ISSUER, "a");
    let c = tkey("s1", ISSUER, "c");
    ok(
        s.tokens.put(&a, record("alice", "token-a", None)).await,
        "put",
    );
    ok(
        s.tokens.put(&b, record("bob", "token-b", None)).await,
        "put",
    );
    let value_a = raw
        .hget(&format!("{prefix}oauth:token:s1"), &field_of("a"))
        .await
        .unwrap_or_else(|| panic!("raw entry of s1 not found at the documented key and field"));

    // Into another session, same field.
    raw.hset(&format!("{prefix}oauth:token:s2"), &field_of("a"), &value_a)
        .await;
    match s.tokens.get(&b).await {
        Err(e @ StoreError::Decrypt { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("authentication"), "{msg}");
            assert!(!msg.contains("token-a"), "{msg}");
        }
        other => panic!("value moved to another session: {other:?}"),
    }
    // Into another field of the same session.
    raw.hset(&format!("{prefix}oauth:token:s1"), &field_of("c"), &value_a)
        .await;
    assert!(matches!(
        s.tokens.get(&c).await,
        Err(StoreError::Decrypt { .. })
    ));
    // The original still opens, and listing the session skips the planted copy.
    let got = ok(s.tokens.get(&a).await, "get").map(|r| access(&r));
    assert_eq!(got.as_deref(), Some("token-a"));
    let all = ok(s.tokens.all_for_session("s1").await, "all_for_session");
    assert_eq!(all.len(), 1, "the moved copy is skipped, the original kept");

    // A flow value copied to another flow.
    let (f1, f2) = (FlowId::generate(), FlowId::generate());
    ok(s.flows.insert(&f1, flow("s1", "alice")).await, "insert");
    ok(s.flows.insert(&f2, flow("s2", "bob")).await, "insert");
    let flow_keys = raw.keys(&format!("{prefix}oauth:state:*")).await;
    assert_eq!(flow_keys.len(), 2);
    for key in &flow_keys {
        assert!(
            !key.contains(f1.as_str()) && !key.contains(f2.as_str()),
            "flow id in key"
        );
    }
    let v0 = raw.hget(&flow_keys[0], "v").await.unwrap_or_default();
    raw.hset(&flow_keys[1], "v", &v0).await;
    let results = [s.flows.get(&f1).await, s.flows.get(&f2).await];
    assert_eq!(
        results
            .iter()
            .filter(|r| matches!(r, Err(StoreError::Decrypt { .. })))
            .count(),
        1,
        "exactly the overwritten flow fails to decrypt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_values_give_clear_errors() {
    let prefix = random_prefix();
    let client = client_for(Valkey::shared()).await;
    let s = ValkeyStores::new(client, prefix.clone(), TTL, encrypted());
    let raw = Valkey::shared().raw().await;
    let hash = format!("{prefix}oauth:token:s");
    let good = tkey("s", ISSUER, "good");
    ok(
        s.tokens
            .put(&good, record("alice", "good-token", None))
            .await,
        "put",
    );
    let valid = raw
        .hget(&hash, &field_of("good"))
        .await
        .unwrap_or_else(|| panic!("stored entry"));

    let field = |scope: &str| field_of(scope);
    let aad_of = |scope: &str| aad(hash.as_bytes(), Some(field(scope).as_bytes()));
    let mut wrong_version = valid.clone();
    wrong_version[0] = 0x02;
    let other_ring = ring(&format!("k9: {K2}"));
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("truncated", valid[..10].to_vec(), "decrypt", "truncated"),
        (
            "version",
            wrong_version,
            "decrypt",
            "unknown format version 2",
        ),
        (
            "unknown-key",
            other_ring.encrypt(b"{}", &aad_of("unknown-key")),
            "decrypt",
            "\"k9\"",
        ),
        (
            "random-bytes",
            b"\x01\x05\xff\xfe xyzzy xyzzy xyzzy xyzzy".to_vec(),
            "decrypt",
            "encrypted value",
        ),
        (
            "not-json",
            ring_k1().encrypt(b"this is not json", &aad_of("not-json")),
            "corrupt",
            "not a valid token record",
        ),
        (
            "plain-json",
            br#"{"access_token":"x"}"#.to_vec(),
            "decrypt",
            "plain JSON",
        ),
    ];
    for (scope, bytes, kind, needle) in &cases {
        raw.hset(&hash, &field(scope), bytes).await;
        let got = s.tokens.get(&tkey("s", ISSUER, scope)).await;
        let msg = match (&got, *kind) {
            (Err(e @ StoreError::Decrypt { .. }), "decrypt")
            | (Err(e @ StoreError::Corrupt { .. }), "corrupt") => e.to_string(),
            _ => panic!("{scope}: expected a {kind} error, got {got:?}"),
        };
        assert!(
            msg.contains(needle),
            "{scope}: message {msg:?} should mention {needle:?}"
        );
        assert!(msg.contains("session s"), "{scope}: names the place: {msg}");
        assert!(
            !msg.contains("xyzzy") && !msg.contains("not json"),
            "{scope}: {msg}"
        );
    }
    // Reads of many entries skip the bad ones and still return the good one.
    let all = ok(s.tokens.all_for_session("s").await, "all_for_session");
    assert_eq!(all.len(), 1);
    let binding = TokenBinding::new(ISSUER, NAMESPACE, RESOURCE);
    let picked = ok(s.tokens.get_bound("s", &binding).await, "get_bound");
    assert_eq!(picked.map(|(k, _)| k.scope).as_deref(), Some("good"));
    let stats = s.stats().snapshot();
    assert!(
        stats.unknown_key_ids.get("k9").is_some_and(|n| *n >= 1),
        "{stats:?}"
    );
    assert!(stats.corrupt >= 1, "{stats:?}");
    for reason in ["truncated", "unknown_version", "unknown_key_id"] {
        assert!(
            stats.decrypt_failures.contains_key(reason),
            "{reason}: {stats:?}"
        );
    }
    // Deleting still works around unreadable entries.
    assert_eq!(
        ok(s.tokens.delete_by_session("s").await, "delete_by_session"),
        cases.len() + 1
    );
}

// ---------------------------------------------------------------------------------------------
// Rotation.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_10000_tokens_loses_none() {
    const SESSIONS: usize = 1000;
    const PER_SESSION: usize = 10;
    const READ_FIRST: usize = 50;
    let valkey = Valkey::start();
    let client = client_for(&valkey).await;
    let prefix = "rot:";
    let started = Instant::now();

    let old = ValkeyStores::new(client.clone(), prefix, TTL, Sealing::Encrypted(ring_k1()));
    let keys: Vec<TokenKey> = (0..SESSIONS)
        .flat_map(|s| {
            (0..PER_SESSION).map(move |i| tkey(format!("s{s}"), format!("https://idp{i}"), ""))
        })
        .collect();
    let tokens = &old.tokens;
    futures::stream::iter(keys.iter())
        .map(|k| async move {
            ok(
                tokens
                    .put(
                        k,
                        record("alice", &format!("{}|{}", k.session, k.issuer()), None),
                    )
                    .await,
                "put",
            )
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    let flow_ids: Vec<FlowId> = (0..10).map(|_| FlowId::generate()).collect();
    for id in &flow_ids {
        ok(old.flows.insert(id, flow("s0", "alice")).await, "insert");
    }
    assert_eq!(
        ok(old.tokens.count().await, "count"),
        SESSIONS * PER_SESSION
    );

    // New primary k2, k1 still present: reads rewrap what they read.
    let both = ValkeyStores::new(
        client.clone(),
        prefix,
        TTL,
        Sealing::Encrypted(ring_k1_k2()),
    );
    for s in 0..READ_FIRST {
        let all = ok(
            both.tokens.all_for_session(&format!("s{s}")).await,
            "all_for_session",
        );
        assert_eq!(all.len(), PER_SESSION);
    }
    assert_eq!(
        both.stats().snapshot().rewrapped,
        (READ_FIRST * PER_SESSION) as u64
    );
    let raw = valkey.raw().await;
    let rewrapped = raw.hgetall("rot:oauth:token:s0").await;
    assert!(
        rewrapped.values().all(|v| envelope_key_id(v) == Ok("k2")),
        "read entries are under k2"
    );
    let untouched = raw
        .hgetall(&format!("rot:oauth:token:s{}", SESSIONS - 1))
        .await;
    assert!(untouched.values().all(|v| envelope_key_id(v) == Ok("k1")));

    eprintln!("read first: {:?}", started.elapsed());
    // The sweep rewraps the rest.
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let report = ok(
        both.rotate_all(&ring_k1_k2(), |_| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .await,
        "rotate_all",
    );
    let total = (SESSIONS * PER_SESSION) as u64;
    let read_first = (READ_FIRST * PER_SESSION) as u64;
    assert_eq!(report.scanned, total + flow_ids.len() as u64, "{report:?}");
    assert_eq!(
        report.rewrapped,
        total - read_first + flow_ids.len() as u64,
        "{report:?}"
    );
    assert_eq!(report.already_current, read_first, "{report:?}");
    assert!(report.failed_by_key_id.is_empty(), "{report:?}");
    assert!(
        calls.load(std::sync::atomic::Ordering::Relaxed) >= 2,
        "progress reported"
    );
    let again = ok(both.rotate_all(&ring_k1_k2(), |_| {}).await, "second sweep");
    assert_eq!(
        (again.rewrapped, again.already_current),
        (0, total + flow_ids.len() as u64)
    );

    eprintln!("swept twice: {:?}", started.elapsed());
    // k1 removed: everything still reads.
    let new = ValkeyStores::new(client.clone(), prefix, TTL, Sealing::Encrypted(ring_k2()));
    let mut read = 0;
    for s in 0..SESSIONS {
        let all = ok(
            new.tokens.all_for_session(&format!("s{s}")).await,
            "all_for_session",
        );
        for (k, r) in &all {
            assert_eq!(
                access(r),
                format!("{}|{}", k.session, k.issuer()),
                "value of {k:?}"
            );
        }
        read += all.len();
    }
    assert_eq!(read, SESSIONS * PER_SESSION, "no token lost");
    assert_eq!(new.stats().snapshot().decrypt_failures.len(), 0);
    for id in &flow_ids {
        assert!(
            ok(new.flows.get(id).await, "flow get").is_some(),
            "flow lost"
        );
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(60),
        "rotation test took {elapsed:?}"
    );
    eprintln!("rotation of {total} tokens: {elapsed:?} in total");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_reports_values_whose_key_is_gone() {
    let prefix = random_prefix();
    let client = client_for(Valkey::shared()).await;
    let old = ValkeyStores::new(
        client.clone(),
        prefix.clone(),
        TTL,
        Sealing::Encrypted(ring_k1()),
    );
    ok(
        old.tokens
            .put(&tkey("s", ISSUER, ""), record("a", "t", None))
            .await,
        "put",
    );
    let new = ValkeyStores::new(client, prefix, TTL, Sealing::Encrypted(ring_k2()));
    let report = ok(new.rotate_all(&ring_k2(), |_| {}).await, "rotate_all");
    assert_eq!(report.failed_by_key_id.get("k1"), Some(&1), "{report:?}");
    assert_eq!(report.rewrapped, 0);
    match new.tokens.get(&tkey("s", ISSUER, "")).await {
        Err(e @ StoreError::Decrypt { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("\"k1\""), "{msg}")
        }
        other => panic!("expected a decrypt error naming k1: {other:?}"),
    }
    assert_eq!(new.stats().snapshot().unknown_key_ids.get("k1"), Some(&1));
}

// ---------------------------------------------------------------------------------------------
// Connections: TLS, faults.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_ca_file_works_and_without_it_is_refused() {
    let valkey = Valkey::start_tls();
    let mut with_ca = config(valkey.url());
    with_ca.tls_ca_file = Some(valkey.ca_file());
    let s = ValkeyStores::from_config(&with_ca, encrypted())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    wait_ready(&s, Duration::from_secs(10)).await;
    let key = tkey("s", ISSUER, "");
    ok(
        s.tokens.put(&key, record("alice", "over-tls", None)).await,
        "put over TLS",
    );
    assert_eq!(
        ok(s.tokens.get(&key).await, "get")
            .map(|r| access(&r))
            .as_deref(),
        Some("over-tls")
    );

    let quick = |url: String| {
        let mut c = config(url);
        c.command_timeout = Duration::from_millis(500);
        c
    };
    let without = ValkeyStores::from_config(&quick(valkey.url()), encrypted())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The readiness error names the TLS failure once a connection attempt has reported it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let err = loop {
        let err = without
            .ping()
            .await
            .err()
            .unwrap_or_else(|| panic!("TLS without the CA must fail"));
        if err.to_string().contains("Certificate") || Instant::now() > deadline {
            break err;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(err.to_string().contains("not reachable"), "{err}");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    assert!(
        without.tokens.get(&key).await.is_err(),
        "a command without a trusted CA"
    );

    let plain = ValkeyStores::from_config(
        &quick(valkey.url().replace("rediss://", "redis://")),
        encrypted(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        plain.tokens.get(&key).await.is_err(),
        "plain TCP to a TLS port"
    );
}

async fn wait_ready(s: &ValkeyStores, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        match s.ping().await {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("not ready within {within:?}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_fails_one_operation_then_recovers() {
    let mut valkey = Valkey::start();
    let mut cfg = config(valkey.url());
    cfg.command_timeout = Duration::from_secs(1);
    let s = ValkeyStores::from_config(&cfg, encrypted())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    wait_ready(&s, Duration::from_secs(5)).await;
    let key = tkey("s", ISSUER, "");
    ok(
        s.tokens.put(&key, record("alice", "before", None)).await,
        "put before",
    );

    valkey.stop();
    let started = Instant::now();
    let failed = s.tokens.get(&key).await;
    let took = started.elapsed();
    match failed {
        Err(e @ StoreError::Unavailable { .. }) => {
            let msg = e.to_string();
            eprintln!("while stopped ({took:?}): {msg}");
            assert!(msg.contains("Valkey"), "{msg}")
        }
        other => panic!("operation against a stopped Valkey: {other:?}"),
    }
    assert!(
        took < Duration::from_secs(5),
        "bounded by the command timeout, took {took:?}"
    );
    let ping = s
        .ping()
        .await
        .err()
        .unwrap_or_else(|| panic!("ping while down"));
    assert!(ping.to_string().contains("not reachable"), "{ping}");

    valkey.restart();
    wait_ready(&s, Duration::from_secs(10)).await;
    // Nothing persisted (no save): write and read again with the same client.
    ok(
        s.tokens.put(&key, record("alice", "after", None)).await,
        "put after restart",
    );
    let got = ok(s.tokens.get(&key).await, "get after restart").map(|r| access(&r));
    assert_eq!(got.as_deref(), Some("after"));
    let id = FlowId::generate();
    ok(
        s.flows.insert(&id, flow("s", "alice")).await,
        "scripts reload after restart",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_at_start_then_ready() {
    let port = testkit::free_port();
    let s = ValkeyStores::from_config(&config(format!("redis://127.0.0.1:{port}")), encrypted())
        .await
        .unwrap_or_else(|e| panic!("connect must not fail when the server is down: {e}"));
    let err = s
        .ping()
        .await
        .err()
        .unwrap_or_else(|| panic!("ping with no server"));
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    let _valkey = Valkey::start_on(port);
    wait_ready(&s, Duration::from_secs(10)).await;
    ok(s.tokens.count().await, "count once up");
}

// ---------------------------------------------------------------------------------------------
// Several replicas, the refresh lock, layout.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_flows_and_tokens() {
    let prefix = random_prefix();
    let a = ValkeyStores::new(
        client_for(Valkey::shared()).await,
        prefix.clone(),
        TTL,
        encrypted(),
    );
    let b = ValkeyStores::new(client_for(Valkey::shared()).await, prefix, TTL, encrypted());
    let id = FlowId::generate();
    let browser = BrowserBinding::from_cookie_secret("browser");
    ok(a.flows.insert(&id, flow("s", "alice")).await, "insert on A");
    let bound = ok(
        b.flows.bind(&id, browser, SecretString::from("v")).await,
        "bind on B",
    );
    assert!(matches!(bound, BindOutcome::Bound(_)));
    match ok(a.flows.consume(&id, browser).await, "consume on A") {
        ConsumeOutcome::Consumed(f) => {
            assert_eq!(
                f.pkce_verifier
                    .map(|v| v.expose_secret().to_owned())
                    .as_deref(),
                Some("v")
            )
        }
        other => panic!("flow started on A, bound on B, consumed on A: {other:?}"),
    }
    assert!(matches!(
        ok(b.flows.consume(&id, browser).await, "replay"),
        ConsumeOutcome::NotFound
    ));
    let key = tkey("s", ISSUER, "");
    ok(
        a.tokens.put(&key, record("alice", "shared", None)).await,
        "put on A",
    );
    let got = ok(b.tokens.get(&key).await, "get on B").map(|r| access(&r));
    assert_eq!(got.as_deref(), Some("shared"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_lock_has_one_holder_and_a_lease() {
    let prefix = random_prefix();
    let a = ValkeyStores::new(
        client_for(Valkey::shared()).await,
        prefix.clone(),
        TTL,
        encrypted(),
    );
    let b = ValkeyStores::new(client_for(Valkey::shared()).await, prefix, TTL, encrypted());
    let key = tkey("s", ISSUER, "scope");
    let lease = Duration::from_secs(30);
    let held = ok(a.lock.try_acquire(&key, lease).await, "acquire A")
        .unwrap_or_else(|| panic!("first acquirer must win"));
    assert!(
        ok(b.lock.try_acquire(&key, lease).await, "acquire B").is_none(),
        "second acquirer"
    );
    ok(
        b.lock
            .release(&key, &LockToken("not-the-holder".into()))
            .await,
        "wrong release",
    );
    assert!(
        ok(b.lock.try_acquire(&key, lease).await, "acquire B").is_none(),
        "release with the wrong token must be a no-op"
    );
    let other = tkey("s", ISSUER, "other");
    assert!(
        ok(b.lock.try_acquire(&other, lease).await, "other key").is_some(),
        "locks are per key"
    );
    ok(a.lock.release(&key, &held).await, "release A");
    let b_token = ok(b.lock.try_acquire(&key, lease).await, "acquire B")
        .unwrap_or_else(|| panic!("free after release"));
    ok(b.lock.release(&key, &b_token).await, "release B");

    // A dead holder blocks for at most the lease; its late release does not free the new holder.
    let short = Duration::from_millis(200);
    let stale =
        ok(a.lock.try_acquire(&key, short).await, "acquire A").unwrap_or_else(|| panic!("free"));
    tokio::time::sleep(Duration::from_millis(350)).await;
    let taken = ok(b.lock.try_acquire(&key, lease).await, "take over")
        .unwrap_or_else(|| panic!("an expired lease can be taken over"));
    ok(a.lock.release(&key, &stale).await, "stale release");
    assert!(
        ok(a.lock.try_acquire(&key, lease).await, "acquire A").is_none(),
        "a stale holder's release must not free the new holder's lock"
    );
    ok(b.lock.release(&key, &taken).await, "release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_index_cannot_collide_with_a_session() {
    let prefix = random_prefix();
    let s = ValkeyStores::new(
        client_for(Valkey::shared()).await,
        prefix.clone(),
        TTL,
        encrypted(),
    );
    let odd = tkey("user:alice", ISSUER, "");
    let mine = tkey("s1", ISSUER, "");
    ok(
        s.tokens.put(&odd, record("bob", "bob-token", None)).await,
        "put",
    );
    ok(
        s.tokens
            .put(&mine, record("alice", "alice-token", None))
            .await,
        "put",
    );
    let raw = Valkey::shared().raw().await;
    let session_hash = format!("{prefix}oauth:token:user:alice");
    let alice_index = format!("{prefix}oauth:user:alice");
    assert_eq!(
        raw.hgetall(&session_hash).await.len(),
        1,
        "session `user:alice` is a hash"
    );
    assert_eq!(raw.smembers(&alice_index).await, vec!["s1".to_owned()]);
    assert_eq!(
        raw.smembers(&format!("{prefix}oauth:user:bob")).await,
        vec!["user:alice".to_owned()]
    );

    assert_eq!(
        ok(s.tokens.delete_by_user("alice").await, "delete_by_user"),
        1
    );
    let left = ok(s.tokens.get(&odd).await, "get").map(|r| access(&r));
    assert_eq!(
        left.as_deref(),
        Some("bob-token"),
        "session `user:alice` untouched"
    );
    assert!(
        raw.smembers(&alice_index).await.is_empty(),
        "index emptied when nothing is left"
    );
    assert_eq!(ok(s.tokens.count().await, "count"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_expire_as_documented() {
    let prefix = random_prefix();
    let s = ValkeyStores::new(
        client_for(Valkey::shared()).await,
        prefix.clone(),
        TTL,
        encrypted(),
    );
    let key = TokenKey::new(
        "s|1",
        TokenBinding::new("https://idp|pipe", "ns|x", "https://mcp|%"),
        "a|b",
    );
    ok(s.tokens.put(&key, record("alice", "t", None)).await, "put");
    let raw = Valkey::shared().raw().await;
    let hash = format!("{prefix}oauth:token:s|1");
    let fields: Vec<String> = raw.hgetall(&hash).await.into_keys().collect();
    assert_eq!(
        fields,
        vec!["@https://idp%7Cpipe|ns%7Cx|https://mcp%7C%25|a|b".to_owned()],
        "escaped binding field"
    );
    let ttl_ms = TTL.as_millis() as i64;
    for k in [hash, format!("{prefix}oauth:user:alice")] {
        let pttl = raw.pttl(&k).await;
        assert!(pttl > ttl_ms - 60_000 && pttl <= ttl_ms, "{k}: PTTL {pttl}");
    }
    let id = FlowId::generate();
    ok(s.flows.insert(&id, flow("s", "alice")).await, "insert");
    let flow_key = raw
        .keys(&format!("{prefix}oauth:state:*"))
        .await
        .pop()
        .unwrap_or_default();
    let pttl = raw.pttl(&flow_key).await;
    let want = (FLOW_TTL_SECS * 1000) as i64;
    assert!(pttl > want - 5_000 && pttl <= want, "flow PTTL {pttl}");
    let b = BrowserBinding::from_cookie_secret("c");
    ok(s.flows.bind(&id, b, SecretString::from("v")).await, "bind");
    assert!(
        raw.pttl(&flow_key).await > want - 5_000,
        "bind keeps the expiry"
    );
    let binding = raw.hget(&flow_key, "b").await.unwrap_or_default();
    assert_eq!(binding.len(), 64, "the binding is stored as hex");
}

// ---------------------------------------------------------------------------------------------
// Cluster topology: keys of one operation live in different slots, scans walk every primary.

fn cluster() -> &'static ValkeyCluster {
    static CLUSTER: std::sync::OnceLock<ValkeyCluster> = std::sync::OnceLock::new();
    CLUSTER.get_or_init(|| ValkeyCluster::start(3))
}

async fn cluster_stores() -> ValkeyStores {
    let mut cfg = config(String::new());
    cfg.urls = cluster().urls();
    cfg.topology = ValkeyTopology::Cluster;
    let s = ValkeyStores::from_config(&cfg, encrypted())
        .await
        .unwrap_or_else(|e| panic!("cluster connect: {e}"));
    wait_ready(&s, Duration::from_secs(10)).await;
    let client = s.client().clone();
    ValkeyStores::new(client, random_prefix(), TTL, encrypted())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_token_store_suite() {
    let client = cluster_stores().await.client().clone();
    assert!(client.is_cluster());
    token_store_suite(|| {
        ValkeyStores::new(client.clone(), random_prefix(), TTL, encrypted()).tokens
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_flow_store_suite() {
    let client = cluster_stores().await.client().clone();
    flow_store_suite(|| ValkeyStores::new(client.clone(), random_prefix(), TTL, encrypted()).flows)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_lock_count_and_rotation() {
    let client = cluster_stores().await.client().clone();
    let prefix = random_prefix();
    let s = ValkeyStores::new(client.clone(), prefix.clone(), TTL, encrypted());
    let key = tkey("s", ISSUER, "");
    let held = ok(
        s.lock.try_acquire(&key, Duration::from_secs(5)).await,
        "acquire",
    );
    assert!(held.is_some());
    assert!(
        ok(
            s.lock.try_acquire(&key, Duration::from_secs(5)).await,
            "again"
        )
        .is_none()
    );
    // Enough sessions to land on every node.
    for i in 0..60 {
        let k = tkey(format!("s{i}"), ISSUER, "");
        ok(s.tokens.put(&k, record("alice", "t", None)).await, "put");
    }
    assert_eq!(ok(s.tokens.count().await, "count over every node"), 60);
    let report = ok(s.rotate_all(&ring_k1_k2(), |_| {}).await, "rotate_all");
    assert_eq!((report.scanned, report.rewrapped), (60, 60), "{report:?}");
    let s = ValkeyStores::new(client, prefix, TTL, Sealing::Encrypted(ring_k2()));
    assert_eq!(
        ok(s.tokens.delete_by_user("alice").await, "delete_by_user"),
        60
    );
    assert_eq!(ok(s.tokens.count().await, "count"), 0);
}
