//! Token-store checks, one per documented behaviour of [`TokenStore`].

use super::ok;
use crate::store::{TokenBinding, TokenKey, TokenRecord, TokenStore};
use crate::time::unix_now;
use secrecy::{ExposeSecret as _, SecretString};

const HOUR: u64 = 3600;
const ISSUER: &str = "https://idp.example.com";
const NAMESPACE: &str = "team-a";
const RESOURCE: &str = "https://mcp.example.com/mcp";

/// A record owned by `user` for `key`'s issuer; the access token doubles as a label.
fn rec(
    key: &TokenKey,
    user: &str,
    access: &str,
    expires_at: Option<u64>,
    refresh: Option<&str>,
) -> TokenRecord {
    TokenRecord {
        access_token: SecretString::from(access),
        token_type: "Bearer".into(),
        refresh_token: refresh.map(SecretString::from),
        expires_at,
        granted_scope: None,
        issuer: key.binding.issuer.clone(),
        client_id: "https://gateway.example.com/oauth/client".into(),
        user: user.into(),
        obtained_at: unix_now(),
    }
}

/// The checks' one binding per issuer: the same namespace and resource throughout, so that
/// issuers alone tell entries apart (except in [`binding_isolation`]).
fn binding(issuer: &str) -> TokenBinding {
    TokenBinding::new(issuer, NAMESPACE, RESOURCE)
}

fn key(session: &str, issuer: &str, scope: &str) -> TokenKey {
    TokenKey::new(session, binding(issuer), scope)
}

async fn put<S: TokenStore>(store: &S, key: &TokenKey, record: TokenRecord) {
    ok(store.put(key, record).await, "put");
}

async fn get<S: TokenStore>(store: &S, key: &TokenKey) -> Option<TokenRecord> {
    ok(store.get(key).await, "get")
}

/// The access token of the entry at `key` (the label the checks give it), if any.
async fn label_at<S: TokenStore>(store: &S, key: &TokenKey) -> Option<String> {
    get(store, key)
        .await
        .map(|r| r.access_token.expose_secret().to_owned())
}

/// The scope `get_bound` picks for `issuer`'s binding, checking the returned key and record
/// agree.
async fn picked_scope<S: TokenStore>(store: &S, session: &str, issuer: &str) -> Option<String> {
    picked_scope_of(store, session, &binding(issuer)).await
}

async fn picked_scope_of<S: TokenStore>(
    store: &S,
    session: &str,
    wanted: &TokenBinding,
) -> Option<String> {
    let (k, r) = ok(store.get_bound(session, wanted).await, "get_bound")?;
    assert_eq!(
        k.session, session,
        "get_bound returned another session's key"
    );
    assert_eq!(
        &k.binding, wanted,
        "get_bound returned another binding's key"
    );
    let stored = get(store, &k).await;
    let stored = stored.unwrap_or_else(|| panic!("get_bound returned a key get cannot find"));
    assert_records_equal(&r, &stored, "get_bound record vs get of its key");
    Some(k.scope)
}

async fn count<S: TokenStore>(store: &S) -> usize {
    ok(store.count().await, "count")
}

/// Field-by-field equality; messages name the field, never a secret value.
fn assert_records_equal(actual: &TokenRecord, expected: &TokenRecord, context: &str) {
    assert!(
        actual.access_token.expose_secret() == expected.access_token.expose_secret(),
        "{context}: access_token differs"
    );
    assert_eq!(
        actual.token_type, expected.token_type,
        "{context}: token_type"
    );
    assert!(
        actual.refresh_token.as_ref().map(|t| t.expose_secret())
            == expected.refresh_token.as_ref().map(|t| t.expose_secret()),
        "{context}: refresh_token differs (presence or value)"
    );
    assert_eq!(
        actual.expires_at, expected.expires_at,
        "{context}: expires_at"
    );
    assert_eq!(
        actual.granted_scope, expected.granted_scope,
        "{context}: granted_scope"
    );
    assert_eq!(actual.issuer, expected.issuer, "{context}: issuer");
    assert_eq!(actual.client_id, expected.client_id, "{context}: client_id");
    assert_eq!(actual.user, expected.user, "{context}: user");
    assert_eq!(
        actual.obtained_at, expected.obtained_at,
        "{context}: obtained_at"
    );
}

/// `put` then `get` returns every field as stored, including absent optional ones.
pub async fn put_get_round_trip<S: TokenStore>(store: S) {
    let now = unix_now();
    let full_key = key("session-a", ISSUER, "files:read files:write");
    let full = TokenRecord {
        access_token: SecretString::from("access-full"),
        token_type: "Bearer".into(),
        refresh_token: Some(SecretString::from("refresh-full")),
        expires_at: Some(now + HOUR),
        granted_scope: Some("files:read".into()),
        issuer: ISSUER.into(),
        client_id: "client-1".into(),
        user: "alice".into(),
        obtained_at: now,
    };
    let sparse_key = key("session-a", "https://other.example.com", "");
    let sparse = TokenRecord {
        access_token: SecretString::from("access-sparse"),
        token_type: "DPoP".into(),
        refresh_token: None,
        expires_at: None,
        granted_scope: None,
        issuer: "https://other.example.com".into(),
        client_id: "client-2".into(),
        user: "alice".into(),
        obtained_at: now - 5,
    };
    put(&store, &full_key, full.clone()).await;
    put(&store, &sparse_key, sparse.clone()).await;

    let got = get(&store, &full_key).await;
    let got = got.unwrap_or_else(|| panic!("get after put found nothing (all fields set)"));
    assert_records_equal(&got, &full, "round trip, all fields set");
    let got = get(&store, &sparse_key).await;
    let got = got.unwrap_or_else(|| panic!("get after put found nothing (optional fields None)"));
    assert_records_equal(&got, &sparse, "round trip, optional fields None");
}

/// A second `put` at the same key replaces the entry rather than adding one.
pub async fn put_overwrites<S: TokenStore>(store: S) {
    let k = key("s", ISSUER, "a");
    put(
        &store,
        &k,
        rec(&k, "alice", "first", Some(unix_now() + HOUR), None),
    )
    .await;
    let second = rec(&k, "alice", "second", None, Some("refresh"));
    put(&store, &k, second.clone()).await;
    let got = get(&store, &k).await;
    let got = got.unwrap_or_else(|| panic!("entry vanished after overwrite"));
    assert_records_equal(&got, &second, "after overwrite");
    assert_eq!(count(&store).await, 1, "overwrite must not add an entry");
    let all = ok(store.all_for_session("s").await, "all_for_session");
    assert_eq!(
        all.len(),
        1,
        "overwrite must not add an entry to the session"
    );
}

/// Overwriting with another owner moves the entry to that owner for `delete_by_user`.
pub async fn overwrite_moves_ownership<S: TokenStore>(store: S) {
    let k = key("s", ISSUER, "");
    put(&store, &k, rec(&k, "alice", "alice-token", None, None)).await;
    put(&store, &k, rec(&k, "bob", "bob-token", None, None)).await;
    let removed = ok(store.delete_by_user("alice").await, "delete_by_user");
    assert_eq!(removed, 0, "the previous owner no longer owns the entry");
    assert_eq!(label_at(&store, &k).await.as_deref(), Some("bob-token"));
    let removed = ok(store.delete_by_user("bob").await, "delete_by_user");
    assert_eq!(removed, 1, "the new owner owns the entry");
    assert_eq!(count(&store).await, 0);
}

/// Lookups of absent keys, sessions or issuers find nothing.
pub async fn get_missing<S: TokenStore>(store: S) {
    let k = key("s", ISSUER, "a");
    assert!(get(&store, &k).await.is_none(), "get on an empty store");
    put(&store, &k, rec(&k, "alice", "t", None, None)).await;
    for (what, other) in [
        ("other scope", key("s", ISSUER, "b")),
        ("empty scope", key("s", ISSUER, "")),
        ("other session", key("s2", ISSUER, "a")),
        ("other issuer", key("s", "https://idp2.example.com", "a")),
    ] {
        assert!(
            get(&store, &other).await.is_none(),
            "get with {what} found an entry"
        );
    }
    assert_eq!(
        picked_scope(&store, "s", "https://idp2.example.com").await,
        None
    );
    assert_eq!(picked_scope(&store, "s2", ISSUER).await, None);
    let all = ok(store.all_for_session("s2").await, "all_for_session");
    assert!(all.is_empty(), "all_for_session of an unknown session");
}

/// `get` and `all_for_session` return entries whatever their expiry (refreshing is the
/// caller's decision).
pub async fn reads_ignore_expiry<S: TokenStore>(store: S) {
    let k = key("s", ISSUER, "");
    let expired = rec(&k, "alice", "expired", Some(unix_now() - HOUR), None);
    put(&store, &k, expired.clone()).await;
    let got = get(&store, &k).await;
    let got = got.unwrap_or_else(|| panic!("get hid an expired entry"));
    assert_records_equal(&got, &expired, "expired entry via get");
    let all = ok(store.all_for_session("s").await, "all_for_session");
    assert_eq!(all.len(), 1, "all_for_session hid an expired entry");
}

/// A non-empty access token beats an empty one, whatever the expiries.
pub async fn get_bound_prefers_access_token<S: TokenStore>(store: S) {
    let now = unix_now();
    let empty = key("s", ISSUER, "a");
    let full = key("s", ISSUER, "b");
    put(&store, &empty, rec(&empty, "alice", "", None, Some("r"))).await;
    put(
        &store,
        &full,
        rec(&full, "alice", "tok", Some(now + 60), None),
    )
    .await;
    assert_eq!(
        picked_scope(&store, "s", ISSUER).await.as_deref(),
        Some("b"),
        "an entry with an access token must win over an empty one with a later expiry"
    );
}

/// Among entries with access tokens, the latest expiry wins; no expiry counts as latest.
pub async fn get_bound_prefers_latest_expiry<S: TokenStore>(store: S) {
    let now = unix_now();
    for (scope, exp) in [("a", now + 60), ("b", now + 2 * HOUR), ("c", now + 600)] {
        let k = key("s", ISSUER, scope);
        put(&store, &k, rec(&k, "alice", scope, Some(exp), None)).await;
    }
    assert_eq!(
        picked_scope(&store, "s", ISSUER).await.as_deref(),
        Some("b"),
        "the latest expiry must win"
    );
    let k = key("s", ISSUER, "d");
    put(&store, &k, rec(&k, "alice", "d", None, None)).await;
    assert_eq!(
        picked_scope(&store, "s", ISSUER).await.as_deref(),
        Some("d"),
        "an entry without expiry counts as the latest"
    );
}

/// Equal on access token and expiry: the smallest scope string wins.
pub async fn get_bound_breaks_ties_by_smallest_scope<S: TokenStore>(store: S) {
    let exp = unix_now() + HOUR;
    for scope in ["b", "a b", "c"] {
        let k = key("s1", ISSUER, scope);
        put(&store, &k, rec(&k, "alice", scope, Some(exp), None)).await;
    }
    assert_eq!(
        picked_scope(&store, "s1", ISSUER).await.as_deref(),
        Some("a b"),
        "same expiry: smallest scope string"
    );
    for scope in ["x", ""] {
        let k = key("s2", ISSUER, scope);
        put(&store, &k, rec(&k, "alice", "t", None, None)).await;
    }
    assert_eq!(
        picked_scope(&store, "s2", ISSUER).await.as_deref(),
        Some(""),
        "no expiry on both: the empty scope is smallest"
    );
}

/// Expired entries without a refresh token are skipped (before any preference applies);
/// expired but refreshable ones are returned.
pub async fn get_bound_skips_expired_unrefreshable<S: TokenStore>(store: S) {
    let now = unix_now();
    let k = key("s1", ISSUER, "a");
    put(&store, &k, rec(&k, "alice", "dead", Some(now - HOUR), None)).await;
    assert_eq!(
        picked_scope(&store, "s1", ISSUER).await,
        None,
        "only an expired, unrefreshable entry: nothing to return"
    );

    let dead = key("s2", ISSUER, "a");
    let refreshable = key("s2", ISSUER, "b");
    put(
        &store,
        &dead,
        rec(&dead, "alice", "dead", Some(now - 60), None),
    )
    .await;
    put(
        &store,
        &refreshable,
        rec(
            &refreshable,
            "alice",
            "old",
            Some(now - 2 * HOUR),
            Some("r"),
        ),
    )
    .await;
    assert_eq!(
        picked_scope(&store, "s2", ISSUER).await.as_deref(),
        Some("b"),
        "an expired but refreshable entry is returned; the unrefreshable one is skipped"
    );

    let dead = key("s3", ISSUER, "a");
    let empty = key("s3", ISSUER, "b");
    put(
        &store,
        &dead,
        rec(&dead, "alice", "dead", Some(now - 60), None),
    )
    .await;
    put(
        &store,
        &empty,
        rec(&empty, "alice", "", Some(now + HOUR), None),
    )
    .await;
    assert_eq!(
        picked_scope(&store, "s3", ISSUER).await.as_deref(),
        Some("b"),
        "skipping comes before preferring a non-empty access token"
    );
}

/// Issuers are compared exactly: not by prefix, and a `|` in an issuer or a scope does not
/// make two keys collide.
pub async fn issuer_isolation<S: TokenStore>(store: S) {
    let now = unix_now();
    let base = key("s", ISSUER, "x|y");
    let tenant = key("s", "https://idp.example.com/tenant", "");
    let piped = key("s", "https://idp.example.com|x", "y");
    // The others never expire, so they would win if they leaked into the base issuer.
    put(
        &store,
        &base,
        rec(&base, "alice", "base", Some(now + HOUR), None),
    )
    .await;
    put(&store, &tenant, rec(&tenant, "alice", "tenant", None, None)).await;
    put(&store, &piped, rec(&piped, "alice", "piped", None, None)).await;

    assert_eq!(label_at(&store, &base).await.as_deref(), Some("base"));
    assert_eq!(label_at(&store, &tenant).await.as_deref(), Some("tenant"));
    assert_eq!(label_at(&store, &piped).await.as_deref(), Some("piped"));
    assert_eq!(count(&store).await, 3, "`|` keys must not collide");

    assert_eq!(
        picked_scope(&store, "s", ISSUER).await.as_deref(),
        Some("x|y"),
        "get_bound must not match a longer issuer"
    );
    assert_eq!(
        picked_scope(&store, "s", "https://idp.example.com|x")
            .await
            .as_deref(),
        Some("y"),
        "an issuer containing `|`"
    );
    assert_eq!(
        picked_scope(&store, "s", "https://idp.example").await,
        None,
        "a prefix of stored issuers is another issuer"
    );

    let removed = ok(
        store.delete_by_issuer("s", ISSUER).await,
        "delete_by_issuer",
    );
    assert_eq!(
        removed, 1,
        "delete_by_issuer must not touch longer or piped issuers"
    );
    assert!(label_at(&store, &tenant).await.is_some());
    assert!(label_at(&store, &piped).await.is_some());
}

/// A token is found only through its own binding: the same issuer in another namespace, or
/// for another resource, is another binding; deleting one leaves the others; a `|` or `%` in
/// a namespace or resource does not make two bindings meet.
pub async fn binding_isolation<S: TokenStore>(store: S) {
    let now = unix_now();
    let mine = binding(ISSUER);
    let others = [
        TokenBinding::new(ISSUER, "team-b", RESOURCE),
        TokenBinding::new(ISSUER, NAMESPACE, "https://mcp.example.com/mcp/other"),
        TokenBinding::new(ISSUER, NAMESPACE, "https://mcp.example.com"),
        TokenBinding::new(ISSUER, "team-a|https://mcp.example.com/mcp", ""),
        TokenBinding::new(ISSUER, "team", "a|https://mcp.example.com/mcp"),
        TokenBinding::new(ISSUER, "team-a%7C", RESOURCE),
    ];
    let mine_key = TokenKey::new("s", mine.clone(), "");
    put(
        &store,
        &mine_key,
        rec(&mine_key, "alice", "mine", Some(now + HOUR), None),
    )
    .await;
    for (i, other) in others.iter().enumerate() {
        // Never expiring: each would win if it leaked into another binding's lookup.
        let k = TokenKey::new("s", other.clone(), "");
        put(
            &store,
            &k,
            rec(&k, "alice", &format!("other-{i}"), None, None),
        )
        .await;
    }
    assert_eq!(
        count(&store).await,
        1 + others.len(),
        "bindings must not collide"
    );
    let (_, found) = ok(store.get_bound("s", &mine).await, "get_bound")
        .unwrap_or_else(|| panic!("get_bound found nothing for its own binding"));
    assert!(
        found.access_token.expose_secret() == "mine",
        "get_bound returned a token of another binding"
    );
    for other in &others {
        assert_eq!(
            picked_scope_of(&store, "s", other).await.as_deref(),
            Some("")
        );
    }
    assert_eq!(
        picked_scope_of(&store, "s", &TokenBinding::new(ISSUER, "team-c", RESOURCE)).await,
        None,
        "a namespace with no token of its own gets none"
    );
    for (i, other) in others.iter().enumerate() {
        let removed = ok(
            store.delete(&TokenKey::new("s", other.clone(), "")).await,
            "delete",
        );
        assert!(removed, "delete of binding {i}");
    }
    assert_eq!(
        label_at(&store, &mine_key).await.as_deref(),
        Some("mine"),
        "deleting other bindings' tokens left this one"
    );
}

/// Sessions are compared exactly, including one that is a prefix of another.
pub async fn session_isolation<S: TokenStore>(store: S) {
    let a = key("sess", ISSUER, "");
    let b = key("sess2", ISSUER, "");
    let c = key("sess|x", ISSUER, "");
    put(&store, &a, rec(&a, "alice", "a", None, None)).await;
    put(&store, &b, rec(&b, "alice", "b", None, None)).await;
    put(&store, &c, rec(&c, "alice", "c", None, None)).await;
    let all = ok(store.all_for_session("sess").await, "all_for_session");
    assert_eq!(
        all.len(),
        1,
        "all_for_session must not include other sessions"
    );
    let removed = ok(store.delete_by_session("sess").await, "delete_by_session");
    assert_eq!(
        removed, 1,
        "delete_by_session must not touch other sessions"
    );
    assert_eq!(label_at(&store, &b).await.as_deref(), Some("b"));
    assert_eq!(label_at(&store, &c).await.as_deref(), Some("c"));
    assert_eq!(picked_scope(&store, "sess", ISSUER).await, None);
}

/// `all_for_session` returns exactly the session's entries, sorted by key.
pub async fn all_for_session_sorted<S: TokenStore>(store: S) {
    let keys = [
        key("s", "https://b.example.com", "z"),
        key("s", "https://a.example.com", "y"),
        key("s", "https://b.example.com", ""),
        key("s", "https://a.example.com", "a b"),
        key("s", "https://a.example.com/x", ""),
    ];
    for (i, k) in keys.iter().enumerate() {
        put(&store, k, rec(k, "alice", &format!("t{i}"), None, None)).await;
    }
    let other = key("s-other", "https://a.example.com", "");
    put(&store, &other, rec(&other, "alice", "other", None, None)).await;

    let all = ok(store.all_for_session("s").await, "all_for_session");
    let mut want: Vec<TokenKey> = keys.to_vec();
    want.sort();
    let got: Vec<TokenKey> = all.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        got, want,
        "all_for_session: exactly the session's keys, sorted"
    );
    for (k, r) in &all {
        let i = keys.iter().position(|x| x == k).unwrap_or(usize::MAX);
        assert!(
            r.access_token.expose_secret() == format!("t{i}"),
            "all_for_session paired {k:?} with another entry's record"
        );
    }
}

/// `delete` removes one entry and says whether it existed.
pub async fn delete_one<S: TokenStore>(store: S) {
    let a = key("s", ISSUER, "a");
    let b = key("s", ISSUER, "b");
    put(&store, &a, rec(&a, "alice", "a", None, None)).await;
    put(&store, &b, rec(&b, "alice", "b", None, None)).await;
    assert!(
        ok(store.delete(&a).await, "delete"),
        "delete of a stored entry"
    );
    assert!(
        !ok(store.delete(&a).await, "delete"),
        "second delete of the same entry"
    );
    assert!(
        !ok(store.delete(&key("s", ISSUER, "never")).await, "delete"),
        "delete of an entry that never existed"
    );
    assert!(
        get(&store, &a).await.is_none(),
        "deleted entry still readable"
    );
    assert_eq!(label_at(&store, &b).await.as_deref(), Some("b"));
    assert_eq!(count(&store).await, 1);
    assert_eq!(
        ok(store.delete_by_user("alice").await, "delete_by_user"),
        1,
        "after delete, only the remaining entry belongs to its user"
    );
}

/// `delete_by_session` removes and counts the session's entries of every user, nothing else.
pub async fn delete_by_session_counts<S: TokenStore>(store: S) {
    for (k, user) in [
        (key("s1", ISSUER, "a"), "alice"),
        (key("s1", ISSUER, "b"), "bob"),
        (key("s1", "https://other.example.com", ""), "alice"),
        (key("s2", ISSUER, "a"), "alice"),
    ] {
        put(&store, &k, rec(&k, user, "t", None, None)).await;
    }
    let removed = ok(store.delete_by_session("s1").await, "delete_by_session");
    assert_eq!(removed, 3, "delete_by_session count");
    let left = ok(store.all_for_session("s1").await, "all_for_session");
    assert!(left.is_empty(), "entries left in a deleted session");
    assert!(get(&store, &key("s2", ISSUER, "a")).await.is_some());
    assert_eq!(count(&store).await, 1);
    let again = ok(store.delete_by_session("s1").await, "delete_by_session");
    assert_eq!(again, 0, "second delete_by_session");
    assert_eq!(
        ok(store.delete_by_user("alice").await, "delete_by_user"),
        1,
        "after delete_by_session, the user owns only the other session's entry"
    );
    assert_eq!(ok(store.delete_by_user("bob").await, "delete_by_user"), 0);
}

/// `delete_by_user` removes exactly the user's entries across all sessions, also from sessions
/// shared with other users.
pub async fn delete_by_user_across_sessions<S: TokenStore>(store: S) {
    let entries = [
        (key("s1", ISSUER, ""), "alice"),
        (key("s1", "https://other.example.com", ""), "alice"),
        (key("s2", ISSUER, ""), "alice"),
        (key("s3", ISSUER, "a"), "alice"),
        (key("s3", ISSUER, "b"), "bob"),
        (key("s4", ISSUER, ""), "bob"),
        (key("s5", ISSUER, ""), "alice2"),
    ];
    for (k, user) in &entries {
        put(&store, k, rec(k, user, user, None, None)).await;
    }
    let mut sessions = ok(store.sessions_of_user("alice").await, "sessions_of_user");
    sessions.sort();
    assert_eq!(sessions, ["s1", "s2", "s3"], "sessions of alice");
    assert!(
        ok(store.sessions_of_user("ali").await, "sessions_of_user").is_empty(),
        "a prefix of a user is another user"
    );
    assert_eq!(
        ok(store.delete_by_user("ali").await, "delete_by_user"),
        0,
        "a prefix of a user is another user"
    );
    assert_eq!(
        ok(store.delete_by_user("alice").await, "delete_by_user"),
        4,
        "delete_by_user count"
    );
    for (k, user) in &entries {
        let present = get(&store, k).await.is_some();
        assert_eq!(
            present,
            *user != "alice",
            "after delete_by_user(alice), entry {k:?} of {user}"
        );
    }
    assert_eq!(count(&store).await, 3);
    assert_eq!(ok(store.delete_by_user("alice").await, "delete_by_user"), 0);
    assert_eq!(
        ok(store.delete_by_user("nobody").await, "delete_by_user"),
        0
    );
}

/// `delete_by_issuer` removes every scope of that issuer in that session only.
pub async fn delete_by_issuer_counts<S: TokenStore>(store: S) {
    let keep = [
        key("s1", "https://idp.example.com/x", ""),
        key("s1", "https://other.example.com", ""),
        key("s2", ISSUER, ""),
    ];
    let gone = [key("s1", ISSUER, "a"), key("s1", ISSUER, "b")];
    for k in keep.iter().chain(gone.iter()) {
        put(&store, k, rec(k, "alice", "t", None, None)).await;
    }
    let removed = ok(
        store.delete_by_issuer("s1", ISSUER).await,
        "delete_by_issuer",
    );
    assert_eq!(removed, 2, "delete_by_issuer count");
    for k in &gone {
        assert!(
            get(&store, k).await.is_none(),
            "{k:?} survived delete_by_issuer"
        );
    }
    for k in &keep {
        assert!(
            get(&store, k).await.is_some(),
            "{k:?} removed by delete_by_issuer"
        );
    }
    let again = ok(
        store.delete_by_issuer("s1", ISSUER).await,
        "delete_by_issuer",
    );
    assert_eq!(again, 0, "second delete_by_issuer");
    assert_eq!(count(&store).await, 3);
    assert_eq!(ok(store.delete_by_user("alice").await, "delete_by_user"), 3);
}

/// `count` follows puts, overwrites and deletes.
pub async fn count_tracks_entries<S: TokenStore>(store: S) {
    assert_eq!(count(&store).await, 0, "a fresh store must be empty");
    let keys = [
        key("s1", ISSUER, "a"),
        key("s1", ISSUER, "b"),
        key("s2", ISSUER, ""),
    ];
    for k in &keys {
        put(&store, k, rec(k, "alice", "t", None, None)).await;
    }
    assert_eq!(count(&store).await, 3);
    put(&store, &keys[0], rec(&keys[0], "alice", "t2", None, None)).await;
    assert_eq!(count(&store).await, 3, "an overwrite is not a new entry");
    ok(store.delete(&keys[2]).await, "delete");
    assert_eq!(count(&store).await, 2);
    ok(store.delete_by_session("s1").await, "delete_by_session");
    assert_eq!(count(&store).await, 0);
}

/// `remove_expired` drops entries expired at `now` without a refresh token, keeps the rest.
pub async fn remove_expired_keeps_refreshable<S: TokenStore>(store: S) {
    let now = unix_now();
    let dead = key("s1", ISSUER, "dead");
    let at_now = key("s1", ISSUER, "at-now");
    let refreshable = key("s1", ISSUER, "refreshable");
    let valid = key("s1", ISSUER, "valid");
    let eternal = key("s1", ISSUER, "eternal");
    let dead_elsewhere = key("s2", ISSUER, "");
    put(
        &store,
        &dead,
        rec(&dead, "alice", "t", Some(now - HOUR), None),
    )
    .await;
    put(&store, &at_now, rec(&at_now, "alice", "t", Some(now), None)).await;
    let r = rec(&refreshable, "alice", "t", Some(now - HOUR), Some("r"));
    put(&store, &refreshable, r).await;
    put(
        &store,
        &valid,
        rec(&valid, "alice", "t", Some(now + HOUR), None),
    )
    .await;
    put(&store, &eternal, rec(&eternal, "alice", "t", None, None)).await;
    let r = rec(&dead_elsewhere, "bob", "t", Some(now - HOUR), None);
    put(&store, &dead_elsewhere, r).await;

    let removed = ok(store.remove_expired(now).await, "remove_expired");
    assert_eq!(
        removed, 3,
        "expired (incl. expiring exactly now), unrefreshable entries"
    );
    for k in [&dead, &at_now, &dead_elsewhere] {
        assert!(
            get(&store, k).await.is_none(),
            "{k:?} survived remove_expired"
        );
    }
    for k in [&refreshable, &valid, &eternal] {
        assert!(
            get(&store, k).await.is_some(),
            "{k:?} removed by remove_expired"
        );
    }
    assert_eq!(count(&store).await, 3);
    assert_eq!(ok(store.remove_expired(now).await, "remove_expired"), 0);
    assert_eq!(ok(store.delete_by_user("bob").await, "delete_by_user"), 0);
    assert_eq!(ok(store.delete_by_user("alice").await, "delete_by_user"), 3);
}
