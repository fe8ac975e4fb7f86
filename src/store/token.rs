//! Token storage keyed by (session, binding, scope), each entry recording its owning user.
//!
//! The *binding* says whom a token was issued for, and so the only servers it may ever be sent
//! to: the authorization server that issued it, and the servers of one namespace that share one
//! RFC 8707 resource. The seed keyed tokens by (session, issuer, scope) and looked them up by
//! issuer alone, so any server naming the same authorization server (in any namespace) received
//! the tokens of every other (see docs/security.md).

use super::StoreError;
use async_trait::async_trait;
use secrecy::SecretString;

/// Whom a token is bound to. A token obtained for one binding is sent to, refreshed for, and
/// dropped because of, servers with exactly that binding only.
///
/// Field order is the sort order: `issuer` first, so that every binding of one issuer is a
/// contiguous run in sorted storage.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenBinding {
    /// The authorization server that issued the token (refreshes go there, and only there).
    pub issuer: String,
    /// The namespace of the servers that may receive the token: tokens never cross namespaces.
    pub namespace: String,
    /// The RFC 8707 resource the token was requested for, or the server's URL when the server
    /// does not send `resource` (then the token is the one server's alone).
    pub resource: String,
}

impl TokenBinding {
    pub fn new(
        issuer: impl Into<String>,
        namespace: impl Into<String>,
        resource: impl Into<String>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            namespace: namespace.into(),
            resource: resource.into(),
        }
    }
}

/// Where a token lives: one per (session, binding, scope).
///
/// `scope` is the normalised *requested* scope string (sorted, de-duplicated, space-separated),
/// so that the callback and every refresh write-back hit the same entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenKey {
    pub session: String,
    pub binding: TokenBinding,
    pub scope: String,
}

impl TokenKey {
    pub fn new(
        session: impl Into<String>,
        binding: TokenBinding,
        scope: impl Into<String>,
    ) -> Self {
        Self {
            session: session.into(),
            binding,
            scope: scope.into(),
        }
    }

    /// The issuer of the binding.
    pub fn issuer(&self) -> &str {
        &self.binding.issuer
    }
}

/// Normalise a list of scopes into the form used in [`TokenKey::scope`].
pub fn normalize_scope<S: AsRef<str>>(scopes: &[S]) -> String {
    let mut v: Vec<&str> = scopes
        .iter()
        .flat_map(|s| s.as_ref().split_whitespace())
        .collect();
    v.sort_unstable();
    v.dedup();
    v.join(" ")
}

/// A stored token set. `Debug` never prints secret values (`SecretString` redacts).
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub access_token: SecretString,
    /// As issued, e.g. `Bearer`.
    pub token_type: String,
    pub refresh_token: Option<SecretString>,
    /// Unix seconds; `None` when the authorization server did not say.
    pub expires_at: Option<u64>,
    /// Scope the authorization server granted (may differ from the key's requested scope).
    pub granted_scope: Option<String>,
    pub issuer: String,
    /// The `client_id` the token was obtained with (refresh must use the same client).
    pub client_id: String,
    /// The user (`sub` of the gateway identity) who owns this token.
    pub user: String,
    /// Unix seconds when the token was obtained or last refreshed.
    pub obtained_at: u64,
}

impl TokenRecord {
    /// Whether the access token expires within `margin_secs` of `now`.
    pub fn expires_within(&self, now: u64, margin_secs: u64) -> bool {
        match self.expires_at {
            Some(exp) => now.saturating_add(margin_secs) >= exp,
            None => false,
        }
    }

    /// Whether the token is still of use: not expired, or refreshable.
    pub fn is_usable(&self, now: u64) -> bool {
        !self.expires_within(now, 0) || self.refresh_token.is_some()
    }
}

/// Storage of users' tokens. Every method returns its error; none is swallowed.
///
/// Reads return entries whatever their expiry (except `get_bound`, which skips entries that
/// are expired and not refreshable): deciding to refresh is the caller's job.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// Insert or replace the entry at `key`.
    async fn put(&self, key: &TokenKey, record: TokenRecord) -> Result<(), StoreError>;

    /// The entry at exactly `key`.
    async fn get(&self, key: &TokenKey) -> Result<Option<TokenRecord>, StoreError>;

    /// The best entry of `session` for exactly `binding`, any scope. Deterministic choice among
    /// several: skip entries that are expired and have no refresh token; prefer a non-empty
    /// access token; then the latest expiry (no expiry counts as latest); then the smallest scope
    /// string. Entries of other bindings are never returned, whatever their issuer.
    async fn get_bound(
        &self,
        session: &str,
        binding: &TokenBinding,
    ) -> Result<Option<(TokenKey, TokenRecord)>, StoreError>;

    /// Every entry of `session`, sorted by key.
    async fn all_for_session(
        &self,
        session: &str,
    ) -> Result<Vec<(TokenKey, TokenRecord)>, StoreError>;

    /// Remove one entry; returns whether it existed.
    async fn delete(&self, key: &TokenKey) -> Result<bool, StoreError>;

    /// Remove every entry of `session`; returns how many were removed.
    async fn delete_by_session(&self, session: &str) -> Result<usize, StoreError>;

    /// Sessions that hold (or recently held) entries owned by `user`, from the user index, in
    /// no particular order. May name a session whose entries are gone meanwhile; callers read
    /// the session and filter by owner.
    async fn sessions_of_user(&self, user: &str) -> Result<Vec<String>, StoreError>;

    /// Remove every entry owned by `user`, across all sessions; returns how many.
    async fn delete_by_user(&self, user: &str) -> Result<usize, StoreError>;

    /// Remove every entry of `session` issued by `issuer` (all bindings and scopes); returns how
    /// many.
    async fn delete_by_issuer(&self, session: &str, issuer: &str) -> Result<usize, StoreError>;

    /// Number of stored entries.
    async fn count(&self) -> Result<usize, StoreError>;

    /// Remove entries that are not usable at `now` ([`TokenRecord::is_usable`]: the access token
    /// expired at or before `now` and there is no refresh token); refreshable entries are kept.
    /// Returns how many were removed.
    async fn remove_expired(&self, now: u64) -> Result<usize, StoreError>;
}
