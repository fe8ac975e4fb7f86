//! Valkey [`FlowStore`].
//!
//! A flow is a hash `{prefix}oauth:state:{sha256(flow id)}` with the sealed flow in field `v`
//! and, once bound, the browser binding in field `b` (hex of the SHA-256 of the browser's
//! cookie secret: a hash, not a secret, and kept in plaintext so the bind and consume scripts
//! can check it atomically without the encryption key). The key expires at the flow's
//! `expires_at` (PEXPIREAT), so Valkey removes expired flows itself; reads also treat a flow
//! past `expires_at` by our clock as absent, in case clocks differ.
//!
//! `bind` is a compare-and-set (the sealed value must be the one read, and the flow unbound or
//! bound to this browser); `consume` checks the binding and deletes in one script, so exactly
//! one callback can take a flow. A consumed value that then fails to decrypt is an error and the
//! flow is gone (fail closed: the user starts again).

use super::scripts::{FLOW_BIND, FLOW_CONSUME, FLOW_INSERT};
use super::shared::Shared;
use crate::store::{
    BindOutcome, BrowserBinding, ConsumeOutcome, FlowId, FlowStore, PendingFlow, StoreError,
};
use crate::time::unix_now;
use async_trait::async_trait;
use bytes::Bytes;
use fred::prelude::*;
use secrecy::SecretString;

/// Field of the sealed flow.
const VALUE: &str = "v";

/// Binds of one flow that lost a race before giving up (each lost round means another bind
/// succeeded, so this bounds contention, not progress).
const BIND_ATTEMPTS: usize = 64;

/// Pending flows in Valkey. Cheap to clone (shares the client).
#[derive(Debug, Clone)]
pub struct ValkeyFlowStore {
    shared: Shared,
}

impl ValkeyFlowStore {
    pub(super) fn new(shared: Shared) -> Self {
        Self { shared }
    }

    fn open(
        &self,
        id: &FlowId,
        key: &str,
        stored: &[u8],
    ) -> Result<(PendingFlow, Option<Vec<u8>>), StoreError> {
        let place = || format!("flow state {}…", id.short());
        let opened = self.shared.sealer.open_flow(stored, key, VALUE, &place)?;
        Ok((opened.value, opened.resealed))
    }

    /// The sealed value and decoded flow, if present and not expired.
    async fn read(
        &self,
        id: &FlowId,
        key: &str,
    ) -> Result<Option<(Bytes, PendingFlow, Option<Vec<u8>>)>, StoreError> {
        let stored: Option<Bytes> = self
            .shared
            .client
            .pool()
            .hget(key, VALUE)
            .await
            .map_err(|e| self.shared.client.error("HGET", &e))?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        let (flow, rewrapped) = self.open(id, key, &stored)?;
        if expired(&flow) {
            return Ok(None);
        }
        Ok(Some((stored, flow, rewrapped)))
    }
}

fn expired(flow: &PendingFlow) -> bool {
    unix_now() >= flow.expires_at
}

#[async_trait]
impl FlowStore for ValkeyFlowStore {
    async fn insert(&self, id: &FlowId, flow: PendingFlow) -> Result<(), StoreError> {
        let key = self.shared.keys.flow(id);
        let sealed = self.shared.sealer.seal_flow(&flow, &key, VALUE);
        let binding = flow.browser.map(|b| b.to_hex()).unwrap_or_default();
        let expire_at_ms = i64::try_from(flow.expires_at.saturating_mul(1000)).unwrap_or(i64::MAX);
        let args = vec![
            Value::Bytes(Bytes::from(sealed)),
            Value::from(binding),
            Value::from(expire_at_ms),
        ];
        let _: i64 = FLOW_INSERT
            .run(&self.shared.client, vec![key.into()], args)
            .await?;
        Ok(())
    }

    async fn get(&self, id: &FlowId) -> Result<Option<PendingFlow>, StoreError> {
        let key = self.shared.keys.flow(id);
        let Some((stored, flow, rewrapped)) = self.read(id, &key).await? else {
            return Ok(None);
        };
        if let Some(new) = rewrapped {
            self.shared
                .write_back(&key, vec![(VALUE.to_owned(), stored, new)])
                .await;
        }
        Ok(Some(flow))
    }

    async fn bind(
        &self,
        id: &FlowId,
        browser: BrowserBinding,
        pkce_verifier: SecretString,
    ) -> Result<BindOutcome, StoreError> {
        let key = self.shared.keys.flow(id);
        let browser_hex = browser.to_hex();
        for _ in 0..BIND_ATTEMPTS {
            let Some((stored, flow, _)) = self.read(id, &key).await? else {
                return Ok(BindOutcome::NotFound);
            };
            if flow.browser.is_some_and(|b| !b.matches(&browser)) {
                return Ok(BindOutcome::OtherBrowser);
            }
            let bound = PendingFlow {
                browser: Some(browser),
                pkce_verifier: Some(pkce_verifier.clone()),
                ..flow
            };
            let sealed = self.shared.sealer.seal_flow(&bound, &key, VALUE);
            let args = vec![
                Value::from(browser_hex.as_str()),
                Value::Bytes(stored),
                Value::Bytes(Bytes::from(sealed)),
            ];
            let outcome: i64 = FLOW_BIND
                .run(&self.shared.client, vec![key.as_str().into()], args)
                .await?;
            match outcome {
                0 => return Ok(BindOutcome::NotFound),
                1 => return Ok(BindOutcome::Bound(bound)),
                2 => return Ok(BindOutcome::OtherBrowser),
                _ => continue,
            }
        }
        Err(StoreError::unavailable(format!(
            "flow {}…: bind lost {BIND_ATTEMPTS} races in a row; retry",
            id.short()
        )))
    }

    async fn consume(
        &self,
        id: &FlowId,
        browser: BrowserBinding,
    ) -> Result<ConsumeOutcome, StoreError> {
        let key = self.shared.keys.flow(id);
        let reply: Vec<Value> = FLOW_CONSUME
            .run(
                &self.shared.client,
                vec![key.as_str().into()],
                vec![Value::from(browser.to_hex())],
            )
            .await?;
        let mut reply = reply.into_iter();
        let status = reply.next().and_then(|v| v.as_i64());
        match (status, reply.next()) {
            (Some(0), _) => Ok(ConsumeOutcome::NotFound),
            (Some(2), _) => Ok(ConsumeOutcome::OtherBrowser),
            (Some(1), Some(value)) => {
                let stored = value.into_bytes().unwrap_or_default();
                let (flow, _) = self.open(id, &key, &stored)?;
                if !flow.browser.is_some_and(|b| b.matches(&browser)) {
                    return Err(StoreError::corrupt(format!(
                        "flow state {}…: the sealed browser binding differs from the stored one",
                        id.short()
                    )));
                }
                // Already deleted; an expired flow must not complete.
                if expired(&flow) {
                    return Ok(ConsumeOutcome::NotFound);
                }
                Ok(ConsumeOutcome::Consumed(flow))
            }
            _ => Err(StoreError::corrupt(
                "flow consume: unexpected reply from the script",
            )),
        }
    }

    /// Valkey deletes each flow at its `expires_at` (the key's PEXPIREAT): nothing to do.
    async fn remove_expired(&self, _now: u64) -> Result<usize, StoreError> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::hex::hex;

    #[test]
    fn binding_hex_is_the_binding_bytes() {
        let b = BrowserBinding::from_cookie_secret("c");
        assert_eq!(b.to_hex(), hex(b.as_bytes()));
        assert_eq!(b.to_hex().len(), 64);
        assert!(BrowserBinding::from_hex(&b.to_hex()).is_some_and(|back| back.matches(&b)));
    }
}
