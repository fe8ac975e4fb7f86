//! Valkey [`RefreshLock`]: a lease `{prefix}oauth:lock:{hex sha256 of the token key}` taken with
//! `SET NX PX` (so a dead holder blocks others for at most the lease) holding a random holder
//! token, released by a compare-and-delete script (so a holder whose lease expired cannot
//! release a lock another replica has taken since).

use super::scripts::LOCK_RELEASE;
use super::shared::Shared;
use crate::store::hex::hex;
use crate::store::{LockToken, RefreshLock, StoreError, TokenKey};
use async_trait::async_trait;
use fred::prelude::*;
use fred::types::{Expiration, SetOptions};
use rand::RngCore as _;
use std::time::Duration;

/// Refresh locks shared by every replica using the same Valkey and key prefix.
#[derive(Debug, Clone)]
pub struct ValkeyRefreshLock {
    shared: Shared,
}

impl ValkeyRefreshLock {
    pub(super) fn new(shared: Shared) -> Self {
        Self { shared }
    }
}

#[async_trait]
impl RefreshLock for ValkeyRefreshLock {
    async fn try_acquire(
        &self,
        key: &TokenKey,
        lease: Duration,
    ) -> Result<Option<LockToken>, StoreError> {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let token = hex(&bytes);
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX).max(1);
        let reply: Option<String> = self
            .shared
            .client
            .pool()
            .set(
                self.shared.keys.lock(key),
                token.as_str(),
                Some(Expiration::PX(lease_ms)),
                Some(SetOptions::NX),
                false,
            )
            .await
            .map_err(|e| self.shared.client.error("SET NX", &e))?;
        Ok(reply.map(|_| LockToken(token)))
    }

    async fn release(&self, key: &TokenKey, token: &LockToken) -> Result<(), StoreError> {
        let _: i64 = LOCK_RELEASE
            .run(
                &self.shared.client,
                vec![self.shared.keys.lock(key).into()],
                vec![Value::from(token.0.as_str())],
            )
            .await?;
        Ok(())
    }
}
