//! Pending authorization flows ("flow state").
//!
//! A flow is created when a user must authorize a server. Its id is an opaque random value that
//! is both the `flow` parameter of `/oauth/connect` and the OAuth `state`. It carries no
//! identifiers. `/oauth/connect` binds the flow to one browser (a hash of a cookie secret) and
//! records the PKCE verifier; `/oauth/callback` consumes it exactly once, and only from that
//! browser.

use super::StoreError;
use crate::registry::ServerKey;
use async_trait::async_trait;
use base64::Engine as _;
use rand::RngCore as _;
use secrecy::SecretString;
use sha2::{Digest as _, Sha256};
use std::fmt;

/// Lifetime of a pending flow.
pub const FLOW_TTL_SECS: u64 = 600;

/// Opaque flow id / OAuth `state`: 32 random bytes, base64url without padding.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FlowId(String);

impl FlowId {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts only values of the exact shape we generate, so junk never reaches a store.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = s.len() == 43
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// First 8 characters, for logs (the full value is a bearer capability).
    pub fn short(&self) -> &str {
        &self.0[..8]
    }
}

impl fmt::Debug for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FlowId({}…)", self.short())
    }
}

/// SHA-256 of the browser-binding cookie secret. Stores keep only this hash.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BrowserBinding([u8; 32]);

impl BrowserBinding {
    pub fn from_cookie_secret(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// As stored (in a flow record, and beside a sealed flow where a store must compare it
    /// without the encryption key): 64 lower-case hex digits. A hash, not a secret.
    pub fn to_hex(&self) -> String {
        super::hex::hex(&self.0)
    }

    /// The inverse of [`Self::to_hex`]; `None` unless `hex` is exactly 64 hex digits.
    pub fn from_hex(hex: &str) -> Option<Self> {
        super::hex::unhex::<32>(hex).map(Self)
    }

    /// Constant-time comparison.
    pub fn matches(&self, other: &BrowserBinding) -> bool {
        use subtle::ConstantTimeEq as _;
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for BrowserBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BrowserBinding(..)")
    }
}

/// Everything the callback needs, kept server-side.
#[derive(Debug, Clone)]
pub struct PendingFlow {
    pub session: String,
    pub user: String,
    pub server: ServerKey,
    /// Issuer whose metadata the flow was built from (RFC 9207 check and token key).
    pub issuer: String,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// RFC 8707 resource sent on authorize and token requests, if any.
    pub resource: Option<String>,
    /// The resource the token will be bound to ([`crate::store::TokenBinding::resource`]),
    /// fixed when the flow starts: an edit of the server while the user signs in cannot
    /// re-bind the token to another resource. Empty only in flows stored by an older version.
    pub token_resource: String,
    pub created_at: u64,
    pub expires_at: u64,
    /// Set by `/oauth/connect`.
    pub browser: Option<BrowserBinding>,
    /// PKCE verifier, set by `/oauth/connect`.
    pub pkce_verifier: Option<SecretString>,
}

/// Result of binding a flow to a browser.
// One value per request, moved to the caller: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum BindOutcome {
    /// Bound to this browser (first visit, or a revisit from the same browser); the verifier
    /// was recorded. Carries the updated flow.
    Bound(PendingFlow),
    /// Unknown, expired or already consumed.
    NotFound,
    /// Already bound to another browser; nothing changed.
    OtherBrowser,
}

/// Result of consuming a flow at the callback.
// One value per request, moved to the caller: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ConsumeOutcome {
    /// Removed atomically; no other consume of this id can succeed.
    Consumed(PendingFlow),
    /// Unknown, expired or already consumed.
    NotFound,
    /// Bound to another browser, or never bound: nothing changed, the flow stays pending.
    OtherBrowser,
}

/// Storage of pending flows. Expired flows behave exactly like absent ones.
#[async_trait]
pub trait FlowStore: Send + Sync + 'static {
    /// Store `flow` under `id` until `flow.expires_at` (insert or replace).
    async fn insert(&self, id: &FlowId, flow: PendingFlow) -> Result<(), StoreError>;

    /// Look at a flow without changing it.
    async fn get(&self, id: &FlowId) -> Result<Option<PendingFlow>, StoreError>;

    /// Atomically bind the flow to `browser` (if unbound or already bound to it) and record the
    /// PKCE verifier.
    async fn bind(
        &self,
        id: &FlowId,
        browser: BrowserBinding,
        pkce_verifier: SecretString,
    ) -> Result<BindOutcome, StoreError>;

    /// Atomically remove and return the flow if it is bound to `browser`.
    async fn consume(
        &self,
        id: &FlowId,
        browser: BrowserBinding,
    ) -> Result<ConsumeOutcome, StoreError>;

    /// Remove expired flows; returns how many.
    async fn remove_expired(&self, now: u64) -> Result<usize, StoreError>;
}
