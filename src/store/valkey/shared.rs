//! What every Valkey store holds: the client, the key layout and the sealer (which seals values
//! and counts what could not be opened).

use super::client::ValkeyClient;
use super::keys::KeySpace;
use super::scripts::HASH_REPLACE_IF_UNCHANGED;
use crate::store::sealed::Sealer;
use bytes::Bytes;
use fred::prelude::Value;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Shared {
    pub client: ValkeyClient,
    pub keys: KeySpace,
    pub sealer: Sealer,
    pub session_ttl: Duration,
}

/// One field re-sealed on read: `(field, bytes read, bytes under the primary key)`.
pub type Rewrap = (String, Bytes, Vec<u8>);

impl Shared {
    /// Write back values re-encrypted under the primary key, each only if still unchanged.
    /// Best effort: the read that found them has succeeded, and the rotation sweep will catch
    /// anything left, so a failure is counted and logged, not returned.
    pub async fn write_back(&self, key: &str, rewraps: Vec<Rewrap>) {
        if rewraps.is_empty() {
            return;
        }
        let mut args = Vec::with_capacity(rewraps.len() * 3);
        for (field, old, new) in rewraps {
            args.push(Value::from(field));
            args.push(Value::Bytes(old));
            args.push(Value::Bytes(Bytes::from(new)));
        }
        let result: Result<i64, _> = HASH_REPLACE_IF_UNCHANGED
            .run(&self.client, vec![key.into()], args)
            .await;
        match result {
            Ok(n) => self.sealer.resealed(u64::try_from(n).unwrap_or(0)),
            Err(e) => {
                self.sealer.reseal_failed();
                tracing::warn!(error = %e, "re-encrypting a stored value under the primary key failed; the rotation sweep will retry");
            }
        }
    }

    pub fn ttl_ms(&self) -> i64 {
        i64::try_from(self.session_ttl.as_millis()).unwrap_or(i64::MAX)
    }
}

/// The first 8 characters of a session id, for messages (as in logs).
pub fn short(session: &str) -> String {
    let cut: String = session.chars().take(8).collect();
    if cut.len() < session.len() {
        format!("{cut}…")
    } else {
        cut
    }
}
