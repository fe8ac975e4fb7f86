//! Flow-store checks, one per documented behaviour of [`FlowStore`].

use super::ok;
use crate::registry::ServerKey;
use crate::store::{
    BindOutcome, BrowserBinding, ConsumeOutcome, FLOW_TTL_SECS, FlowId, FlowStore, PendingFlow,
};
use crate::time::unix_now;
use secrecy::{ExposeSecret as _, SecretString};
use std::sync::Arc;

/// Concurrent callers in the race checks.
const RACERS: usize = 16;

fn browser_a() -> BrowserBinding {
    BrowserBinding::from_cookie_secret("browser-a-cookie")
}

fn browser_b() -> BrowserBinding {
    BrowserBinding::from_cookie_secret("browser-b-cookie")
}

/// A fresh, unbound flow with every field set, alive for the usual TTL.
fn pending() -> PendingFlow {
    let now = unix_now();
    PendingFlow {
        session: "session-a".into(),
        user: "alice".into(),
        server: ServerKey::new("team-a", "github"),
        issuer: "https://idp.example.com".into(),
        scopes: vec!["files:read".into(), "offline_access".into()],
        resource: Some("https://mcp.example.com/mcp".into()),
        token_resource: "https://mcp.example.com/mcp".into(),
        created_at: now,
        expires_at: now + FLOW_TTL_SECS,
        browser: None,
        pkce_verifier: None,
    }
}

/// A flow bound to `browser` with `verifier`, whose expiry is an hour ago.
fn expired_bound(browser: BrowserBinding, verifier: &str) -> PendingFlow {
    let now = unix_now();
    PendingFlow {
        created_at: now - 3600 - FLOW_TTL_SECS,
        expires_at: now - 3600,
        browser: Some(browser),
        pkce_verifier: Some(SecretString::from(verifier)),
        ..pending()
    }
}

fn verifier(v: &str) -> SecretString {
    SecretString::from(v)
}

async fn insert<S: FlowStore>(store: &S, id: &FlowId, flow: PendingFlow) {
    ok(store.insert(id, flow).await, "insert");
}

async fn get<S: FlowStore>(store: &S, id: &FlowId) -> Option<PendingFlow> {
    ok(store.get(id).await, "get")
}

async fn bind<S: FlowStore>(
    store: &S,
    id: &FlowId,
    browser: BrowserBinding,
    v: &str,
) -> BindOutcome {
    ok(store.bind(id, browser, verifier(v)).await, "bind")
}

async fn consume<S: FlowStore>(store: &S, id: &FlowId, browser: BrowserBinding) -> ConsumeOutcome {
    ok(store.consume(id, browser).await, "consume")
}

/// Field-by-field equality; messages name the field, never a secret value.
fn assert_flows_equal(actual: &PendingFlow, expected: &PendingFlow, context: &str) {
    assert_eq!(actual.session, expected.session, "{context}: session");
    assert_eq!(actual.user, expected.user, "{context}: user");
    assert_eq!(actual.server, expected.server, "{context}: server");
    assert_eq!(actual.issuer, expected.issuer, "{context}: issuer");
    assert_eq!(actual.scopes, expected.scopes, "{context}: scopes");
    assert_eq!(actual.resource, expected.resource, "{context}: resource");
    assert_eq!(
        actual.token_resource, expected.token_resource,
        "{context}: token_resource"
    );
    assert_eq!(
        actual.created_at, expected.created_at,
        "{context}: created_at"
    );
    assert_eq!(
        actual.expires_at, expected.expires_at,
        "{context}: expires_at"
    );
    assert!(
        actual.browser.map(|b| *b.as_bytes()) == expected.browser.map(|b| *b.as_bytes()),
        "{context}: browser binding differs"
    );
    assert!(
        actual.pkce_verifier.as_ref().map(|v| v.expose_secret())
            == expected.pkce_verifier.as_ref().map(|v| v.expose_secret()),
        "{context}: pkce_verifier differs (presence or value)"
    );
}

/// `expected` after a bind by `browser` with verifier `v`.
fn bound(expected: &PendingFlow, browser: BrowserBinding, v: &str) -> PendingFlow {
    PendingFlow {
        browser: Some(browser),
        pkce_verifier: Some(verifier(v)),
        ..expected.clone()
    }
}

fn expect_bound(outcome: BindOutcome, context: &str) -> PendingFlow {
    match outcome {
        BindOutcome::Bound(flow) => flow,
        other => panic!("{context}: expected Bound, got {other:?}"),
    }
}

fn expect_consumed(outcome: ConsumeOutcome, context: &str) -> PendingFlow {
    match outcome {
        ConsumeOutcome::Consumed(flow) => flow,
        other => panic!("{context}: expected Consumed, got {other:?}"),
    }
}

/// The flow still stored at `id`, or a failure naming `context`.
async fn still_pending<S: FlowStore>(store: &S, id: &FlowId, context: &str) -> PendingFlow {
    get(store, id)
        .await
        .unwrap_or_else(|| panic!("{context}: the flow is no longer pending"))
}

/// `insert` then `get` returns every field, bound or not, with or without a resource.
pub async fn insert_get_round_trip<S: FlowStore>(store: S) {
    let (id1, id2) = (FlowId::generate(), FlowId::generate());
    let full = pending();
    let other = PendingFlow {
        resource: None,
        token_resource: "https://mcp.example.com/other".into(),
        scopes: Vec::new(),
        browser: Some(browser_b()),
        pkce_verifier: Some(verifier("verifier-x")),
        ..pending()
    };
    insert(&store, &id1, full.clone()).await;
    insert(&store, &id2, other.clone()).await;
    assert_flows_equal(
        &still_pending(&store, &id1, "get").await,
        &full,
        "unbound flow",
    );
    assert_flows_equal(
        &still_pending(&store, &id2, "get").await,
        &other,
        "bound flow",
    );
    // `get` only looks.
    assert_flows_equal(
        &still_pending(&store, &id1, "get twice").await,
        &full,
        "get again",
    );
}

/// A second `insert` under the same id replaces the flow.
pub async fn insert_replaces<S: FlowStore>(store: S) {
    let id = FlowId::generate();
    insert(&store, &id, pending()).await;
    let replacement = PendingFlow {
        user: "bob".into(),
        ..pending()
    };
    insert(&store, &id, replacement.clone()).await;
    let got = still_pending(&store, &id, "after replace").await;
    assert_flows_equal(&got, &replacement, "after replace");
}

/// An id never inserted: get, bind and consume all find nothing.
pub async fn unknown_flow_is_absent<S: FlowStore>(store: S) {
    let id = FlowId::generate();
    assert!(get(&store, &id).await.is_none(), "get of an unknown flow");
    let outcome = bind(&store, &id, browser_a(), "v").await;
    assert!(
        matches!(outcome, BindOutcome::NotFound),
        "bind of an unknown flow: {outcome:?}"
    );
    let outcome = consume(&store, &id, browser_a()).await;
    assert!(
        matches!(outcome, ConsumeOutcome::NotFound),
        "consume of an unknown flow: {outcome:?}"
    );
    assert!(
        get(&store, &id).await.is_none(),
        "bind must not create a flow"
    );
}

/// A flow past its `expires_at` behaves exactly like an absent one.
pub async fn expired_flow_is_absent<S: FlowStore>(store: S) {
    let id = FlowId::generate();
    let unbound = PendingFlow {
        browser: None,
        pkce_verifier: None,
        ..expired_bound(browser_a(), "v")
    };
    insert(&store, &id, unbound).await;
    assert!(get(&store, &id).await.is_none(), "get of an expired flow");
    let outcome = bind(&store, &id, browser_a(), "v").await;
    assert!(
        matches!(outcome, BindOutcome::NotFound),
        "bind of an expired flow: {outcome:?}"
    );
    assert!(
        get(&store, &id).await.is_none(),
        "bind revived an expired flow"
    );
}

/// `remove_expired` keeps flows that are still alive.
pub async fn remove_expired_keeps_live_flows<S: FlowStore>(store: S) {
    let (live, dead) = (FlowId::generate(), FlowId::generate());
    insert(&store, &live, pending()).await;
    insert(&store, &dead, expired_bound(browser_a(), "v")).await;
    ok(store.remove_expired(unix_now()).await, "remove_expired");
    assert!(
        get(&store, &live).await.is_some(),
        "remove_expired removed a live flow"
    );
    assert!(
        get(&store, &dead).await.is_none(),
        "expired flow visible after remove_expired"
    );
}

/// The first bind records the browser and the verifier and returns the updated flow.
pub async fn bind_records_browser_and_verifier<S: FlowStore>(store: S) {
    let id = FlowId::generate();
    let flow = pending();
    insert(&store, &id, flow.clone()).await;
    let want = bound(&flow, browser_a(), "verifier-1");
    let got = expect_bound(
        bind(&store, &id, browser_a(), "verifier-1").await,
        "first bind",
    );
    assert_flows_equal(&got, &want, "flow returned by bind");
    let stored = still_pending(&store, &id, "after bind").await;
    assert_flows_equal(&stored, &want, "flow stored after bind");
}

/// The same browser may bind again (a revisit of `/oauth/connect`): the verifier is replaced.
pub async fn bind_same_browser_again_updates_verifier<S: FlowStore>(store: S) {
    let id = FlowId::generate();
    let flow = pending();
    insert(&store, &id, flow.clone()).await;
    expect_bound(
        bind(&store, &id, browser_a(), "verifier-1").await,
        "first bind",
    );
    let want = bound(&flow, browser_a(), "verifier-2");
    let got = expect_bound(bind(&store, &id, browser_a(), "verifier-2").await, "rebind");
    assert_flows_equal(&got, &want, "flow returned by rebind");
    let stored = still_pending(&store, &id, "after rebind").await;
    assert_flows_equal(&stored, &want, "flow stored after rebind");
}

/// Binding from another browser is refused and changes nothing.
pub async fn bind_other_browser_changes_nothing<S: FlowStore>(store: S) {
    let id = FlowId::generate();
    let flow = pending();
    insert(&store, &id, flow.clone()).await;
    expect_bound(
        bind(&store, &id, browser_a(), "verifier-1").await,
        "first bind",
    );
    let outcome = bind(&store, &id, browser_b(), "verifier-evil").await;
    assert!(
        matches!(outcome, BindOutcome::OtherBrowser),
        "bind from another browser: {outcome:?}"
    );
    let stored = still_pending(&store, &id, "after refused bind").await;
    let want = bound(&flow, browser_a(), "verifier-1");
    assert_flows_equal(&stored, &want, "flow after a refused bind");
    expect_consumed(
        consume(&store, &id, browser_a()).await,
        "consume by the owner",
    );
}

/// Concurrent binds from two browsers: exactly one browser wins, the loser changes nothing.
pub async fn bind_race_has_one_winner<S: FlowStore>(store: S) {
    let store = Arc::new(store);
    let id = FlowId::generate();
    insert(&*store, &id, pending()).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let (store, id, barrier) = (Arc::clone(&store), id.clone(), Arc::clone(&barrier));
            let browser = if i % 2 == 0 { browser_a() } else { browser_b() };
            tokio::spawn(async move {
                barrier.wait().await;
                let outcome = ok(
                    store.bind(&id, browser, verifier(&format!("v{i}"))).await,
                    "bind",
                );
                (i, matches!(outcome, BindOutcome::Bound(_)))
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(
            task.await
                .unwrap_or_else(|e| panic!("bind task failed: {e}")),
        );
    }
    let stored = still_pending(&*store, &id, "after racing binds").await;
    let winner_is_a = match stored.browser {
        Some(b) if b.matches(&browser_a()) => true,
        Some(b) if b.matches(&browser_b()) => false,
        _ => panic!("after racing binds the flow is bound to no racer"),
    };
    for (i, was_bound) in results {
        let same_browser = (i % 2 == 0) == winner_is_a;
        assert_eq!(
            was_bound, same_browser,
            "racer {i}: Bound exactly when its browser is the one the flow ended up bound to"
        );
    }
}

/// Consume from the bound browser returns the whole flow once; afterwards it is gone.
pub async fn consume_returns_flow_once<S: FlowStore>(store: S) {
    let id = FlowId::generate();
    let flow = pending();
    insert(&store, &id, flow.clone()).await;
    expect_bound(bind(&store, &id, browser_a(), "verifier-1").await, "bind");
    let got = expect_consumed(consume(&store, &id, browser_a()).await, "consume");
    assert_flows_equal(
        &got,
        &bound(&flow, browser_a(), "verifier-1"),
        "consumed flow",
    );
    let again = consume(&store, &id, browser_a()).await;
    assert!(
        matches!(again, ConsumeOutcome::NotFound),
        "second consume: {again:?}"
    );
    assert!(
        get(&store, &id).await.is_none(),
        "consumed flow still readable"
    );
    let rebind = bind(&store, &id, browser_a(), "verifier-2").await;
    assert!(
        matches!(rebind, BindOutcome::NotFound),
        "bind after consume: {rebind:?}"
    );
}

/// Consume from another browser is refused and the flow stays pending for its owner.
pub async fn consume_from_other_browser_keeps_flow<S: FlowStore>(store: S) {
    let id = FlowId::generate();
    let flow = pending();
    insert(&store, &id, flow.clone()).await;
    expect_bound(bind(&store, &id, browser_a(), "verifier-1").await, "bind");
    let outcome = consume(&store, &id, browser_b()).await;
    assert!(
        matches!(outcome, ConsumeOutcome::OtherBrowser),
        "consume from another browser: {outcome:?}"
    );
    let stored = still_pending(&store, &id, "after a refused consume").await;
    assert_flows_equal(
        &stored,
        &bound(&flow, browser_a(), "verifier-1"),
        "refused consume",
    );
    expect_consumed(
        consume(&store, &id, browser_a()).await,
        "consume by the owner",
    );
}

/// A flow never bound cannot be consumed (the callback did not come through `/oauth/connect`);
/// it stays pending and can still be bound and consumed.
pub async fn consume_unbound_keeps_flow<S: FlowStore>(store: S) {
    let id = FlowId::generate();
    let flow = pending();
    insert(&store, &id, flow.clone()).await;
    let outcome = consume(&store, &id, browser_a()).await;
    assert!(
        matches!(outcome, ConsumeOutcome::OtherBrowser),
        "consume of an unbound flow: {outcome:?}"
    );
    let stored = still_pending(&store, &id, "after consuming an unbound flow").await;
    assert_flows_equal(&stored, &flow, "unbound flow after a refused consume");
    expect_bound(bind(&store, &id, browser_a(), "verifier-1").await, "bind");
    expect_consumed(
        consume(&store, &id, browser_a()).await,
        "consume after bind",
    );
}

/// Many concurrent consumes of one flow from its browser: exactly one succeeds.
pub async fn consume_exactly_once_concurrently<S: FlowStore>(store: S) {
    let store = Arc::new(store);
    let id = FlowId::generate();
    insert(&*store, &id, pending()).await;
    expect_bound(bind(&*store, &id, browser_a(), "verifier-1").await, "bind");
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|_| {
            let (store, id, barrier) = (Arc::clone(&store), id.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                ok(store.consume(&id, browser_a()).await, "consume")
            })
        })
        .collect();
    let (mut consumed, mut not_found) = (0, 0);
    for task in tasks {
        match task
            .await
            .unwrap_or_else(|e| panic!("consume task failed: {e}"))
        {
            ConsumeOutcome::Consumed(_) => consumed += 1,
            ConsumeOutcome::NotFound => not_found += 1,
            ConsumeOutcome::OtherBrowser => panic!("racing consume reported OtherBrowser"),
        }
    }
    assert_eq!(
        consumed, 1,
        "exactly one of {RACERS} racing consumes must succeed"
    );
    assert_eq!(not_found, RACERS - 1, "the others must find nothing");
    assert!(
        get(&*store, &id).await.is_none(),
        "flow readable after the race"
    );
}

/// Consume after expiry finds nothing, even from the bound browser.
pub async fn consume_after_expiry_is_not_found<S: FlowStore>(store: S) {
    let id = FlowId::generate();
    insert(&store, &id, expired_bound(browser_a(), "verifier-1")).await;
    let outcome = consume(&store, &id, browser_a()).await;
    assert!(
        matches!(outcome, ConsumeOutcome::NotFound),
        "consume of an expired flow: {outcome:?}"
    );
    let outcome = consume(&store, &id, browser_b()).await;
    assert!(
        matches!(outcome, ConsumeOutcome::NotFound),
        "consume of an expired flow from another browser: {outcome:?}"
    );
}
