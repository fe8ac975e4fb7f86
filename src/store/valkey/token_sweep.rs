//! Whole-store token work: `count` and `remove_expired`, both a SCAN over the token key space in
//! pages (see [`super::scan`] for the cost), never KEYS.
//!
//! Valkey itself drops a session `session_ttl` after its last write; `remove_expired` prunes
//! the entries inside live sessions that can no longer be used (expired, no refresh token), so
//! a busy session's hash does not grow forever. Entries that cannot be decrypted are left alone
//! (their key may come back into the ring) and reported. Entries of the seed's layout (no
//! resource, see [`super::keys`]) are dropped.

use super::scan::KeyScan;
use super::scripts::HASH_DELETE_IF_UNCHANGED;
use super::token::ValkeyTokenStore;
use crate::store::StoreError;
use bytes::Bytes;
use fred::prelude::*;
use futures::{StreamExt as _, TryStreamExt as _};

/// Sessions worked on concurrently within one SCAN page (commands pipeline on the pool).
const CONCURRENCY: usize = 32;

impl ValkeyTokenStore {
    pub(super) async fn count_entries(&self) -> Result<usize, StoreError> {
        let client = &self.shared.client;
        let mut scan = KeyScan::new(client, self.shared.keys.token_pattern())?;
        let mut total = 0usize;
        while let Some(keys) = scan.next_page().await? {
            let lens: Vec<i64> = futures::stream::iter(keys)
                .map(|key| async move {
                    client
                        .pool()
                        .hlen::<i64, _>(key)
                        .await
                        .map_err(|e| client.error("HLEN", &e))
                })
                .buffer_unordered(CONCURRENCY)
                .try_collect()
                .await?;
            total += lens
                .into_iter()
                .map(|n| usize::try_from(n).unwrap_or(0))
                .sum::<usize>();
        }
        Ok(total)
    }

    pub(super) async fn remove_unusable(&self, now: u64) -> Result<usize, StoreError> {
        let mut scan = KeyScan::new(&self.shared.client, self.shared.keys.token_pattern())?;
        let mut total = 0usize;
        while let Some(keys) = scan.next_page().await? {
            let removed: Vec<usize> = futures::stream::iter(keys)
                .map(|key| self.remove_unusable_in(key, now))
                .buffer_unordered(CONCURRENCY)
                .try_collect()
                .await?;
            total += removed.into_iter().sum::<usize>();
        }
        Ok(total)
    }

    /// Delete the unusable entries of one session hash, each only if unchanged since read (a
    /// concurrent refresh that wrote a new token wins).
    async fn remove_unusable_in(&self, hash_key: String, now: u64) -> Result<usize, StoreError> {
        let Some(session) = self.shared.keys.session_of(&hash_key) else {
            return Ok(0);
        };
        let read = self.read_session(session, false, None).await?;
        let legacy = self.drop_legacy(&hash_key, &read.legacy).await;
        let dead: Vec<(String, Bytes)> = read
            .entries
            .into_iter()
            .filter(|e| !e.record.is_usable(now))
            .map(|e| (e.field, e.stored))
            .collect();
        if dead.is_empty() {
            return Ok(legacy);
        }
        let mut args = Vec::with_capacity(dead.len() * 2);
        for (field, stored) in dead {
            args.push(Value::from(field));
            args.push(Value::Bytes(stored));
        }
        let removed: i64 = HASH_DELETE_IF_UNCHANGED
            .run(&self.shared.client, vec![hash_key.into()], args)
            .await?;
        Ok(legacy + usize::try_from(removed).unwrap_or(0))
    }
}
