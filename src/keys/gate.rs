//! Valkey stores that only exist once the first encryption key ring is loaded (the key ring
//! comes from a Secret read through the API server, after start-up).
//!
//! Fail closed: until then every store operation is an error saying the keys are not loaded,
//! so nothing is ever written unencrypted or read without its key. The gate opens once and
//! stays open: a later bad ring never replaces a good one (see [`super::reload`]).

use crate::store::valkey::ValkeyStores;
use crate::store::{
    BindOutcome, BrowserBinding, ConsumeOutcome, FlowId, FlowStore, LockToken, PendingFlow,
    RefreshLock, StoreError, TokenBinding, TokenKey, TokenRecord, TokenStore,
};
use async_trait::async_trait;
use secrecy::SecretString;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Token store, flow store and refresh lock in one, in front of Valkey stores built later.
#[derive(Debug, Clone)]
pub struct KeyGate {
    stores: Arc<OnceLock<ValkeyStores>>,
    /// What the gate waits for, for the error message (e.g. "Secret ops/mcp-keys").
    waiting_for: Arc<str>,
}

impl KeyGate {
    pub fn new(waiting_for: impl Into<Arc<str>>) -> Self {
        Self {
            stores: Arc::new(OnceLock::new()),
            waiting_for: waiting_for.into(),
        }
    }

    /// Lets operations through to `stores` from now on. Only the first call has an effect;
    /// returns whether it was this one.
    pub fn open(&self, stores: ValkeyStores) -> bool {
        self.stores.set(stores).is_ok()
    }

    /// The stores, once the gate is open.
    pub fn stores(&self) -> Option<&ValkeyStores> {
        self.stores.get()
    }

    fn inner(&self) -> Result<&ValkeyStores, StoreError> {
        self.stores.get().ok_or_else(|| {
            StoreError::unavailable(format!(
                "encryption keys not loaded (waiting for {})",
                self.waiting_for
            ))
        })
    }
}

#[async_trait]
impl TokenStore for KeyGate {
    async fn put(&self, key: &TokenKey, record: TokenRecord) -> Result<(), StoreError> {
        self.inner()?.tokens.put(key, record).await
    }

    async fn get(&self, key: &TokenKey) -> Result<Option<TokenRecord>, StoreError> {
        TokenStore::get(&self.inner()?.tokens, key).await
    }

    async fn get_bound(
        &self,
        session: &str,
        binding: &TokenBinding,
    ) -> Result<Option<(TokenKey, TokenRecord)>, StoreError> {
        self.inner()?.tokens.get_bound(session, binding).await
    }

    async fn all_for_session(
        &self,
        session: &str,
    ) -> Result<Vec<(TokenKey, TokenRecord)>, StoreError> {
        self.inner()?.tokens.all_for_session(session).await
    }

    async fn delete(&self, key: &TokenKey) -> Result<bool, StoreError> {
        self.inner()?.tokens.delete(key).await
    }

    async fn delete_by_session(&self, session: &str) -> Result<usize, StoreError> {
        self.inner()?.tokens.delete_by_session(session).await
    }

    async fn sessions_of_user(&self, user: &str) -> Result<Vec<String>, StoreError> {
        self.inner()?.tokens.sessions_of_user(user).await
    }

    async fn delete_by_user(&self, user: &str) -> Result<usize, StoreError> {
        self.inner()?.tokens.delete_by_user(user).await
    }

    async fn delete_by_issuer(&self, session: &str, issuer: &str) -> Result<usize, StoreError> {
        self.inner()?.tokens.delete_by_issuer(session, issuer).await
    }

    async fn count(&self) -> Result<usize, StoreError> {
        self.inner()?.tokens.count().await
    }

    async fn remove_expired(&self, now: u64) -> Result<usize, StoreError> {
        TokenStore::remove_expired(&self.inner()?.tokens, now).await
    }
}

#[async_trait]
impl FlowStore for KeyGate {
    async fn insert(&self, id: &FlowId, flow: PendingFlow) -> Result<(), StoreError> {
        self.inner()?.flows.insert(id, flow).await
    }

    async fn get(&self, id: &FlowId) -> Result<Option<PendingFlow>, StoreError> {
        FlowStore::get(&self.inner()?.flows, id).await
    }

    async fn bind(
        &self,
        id: &FlowId,
        browser: BrowserBinding,
        pkce_verifier: SecretString,
    ) -> Result<BindOutcome, StoreError> {
        self.inner()?.flows.bind(id, browser, pkce_verifier).await
    }

    async fn consume(
        &self,
        id: &FlowId,
        browser: BrowserBinding,
    ) -> Result<ConsumeOutcome, StoreError> {
        self.inner()?.flows.consume(id, browser).await
    }

    async fn remove_expired(&self, now: u64) -> Result<usize, StoreError> {
        FlowStore::remove_expired(&self.inner()?.flows, now).await
    }
}

#[async_trait]
impl RefreshLock for KeyGate {
    async fn try_acquire(
        &self,
        key: &TokenKey,
        lease: Duration,
    ) -> Result<Option<LockToken>, StoreError> {
        self.inner()?.lock.try_acquire(key, lease).await
    }

    async fn release(&self, key: &TokenKey, token: &LockToken) -> Result<(), StoreError> {
        self.inner()?.lock.release(key, token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_gate_fails_every_operation_naming_the_missing_keys() {
        let gate = KeyGate::new("Secret ops/mcp-keys");
        let key = TokenKey::new(
            "s",
            TokenBinding::new("https://idp", "ns", "https://mcp"),
            "",
        );
        let errors = [
            TokenStore::get(&gate, &key).await.err(),
            gate.count().await.err(),
            gate.delete_by_user("u").await.err(),
            FlowStore::remove_expired(&gate, 0).await.err(),
            gate.try_acquire(&key, Duration::from_secs(1)).await.err(),
        ];
        for err in errors {
            let msg = err.map(|e| e.to_string()).unwrap_or_default();
            assert!(
                msg.contains("encryption keys not loaded") && msg.contains("Secret ops/mcp-keys"),
                "{msg}"
            );
        }
        assert!(gate.stores().is_none());
    }
}
