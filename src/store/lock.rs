//! One token refresh at a time per token, across every replica that shares a store.
//!
//! Within a process the manager already serialises refreshes per key; this lock extends that
//! to several processes (a lease in Valkey). A holder that dies blocks the others for at most
//! the lease.

use super::{StoreError, TokenKey};
use async_trait::async_trait;
use std::time::Duration;

/// Proof of holding a refresh lock; needed to release it (so only the holder can).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockToken(pub String);

#[async_trait]
pub trait RefreshLock: Send + Sync + 'static {
    /// Take the lock for `key` for at most `lease`; `None` when another holder has it.
    async fn try_acquire(
        &self,
        key: &TokenKey,
        lease: Duration,
    ) -> Result<Option<LockToken>, StoreError>;

    /// Release the lock if `token` still holds it (an expired lease may belong to another).
    async fn release(&self, key: &TokenKey, token: &LockToken) -> Result<(), StoreError>;
}

/// For a store that only one process uses: the in-process serialisation is enough.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessLocalLock;

#[async_trait]
impl RefreshLock for ProcessLocalLock {
    async fn try_acquire(
        &self,
        _key: &TokenKey,
        _lease: Duration,
    ) -> Result<Option<LockToken>, StoreError> {
        Ok(Some(LockToken(String::new())))
    }

    async fn release(&self, _key: &TokenKey, _token: &LockToken) -> Result<(), StoreError> {
        Ok(())
    }
}
