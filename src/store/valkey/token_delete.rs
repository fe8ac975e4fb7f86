//! Deleting tokens: one entry, a session, a user's entries everywhere, an issuer's entries.
//!
//! The user index (`oauth:user:{user}` → session ids) is a *superset*: it may name sessions in
//! which the user no longer has entries (after `delete`, an overwrite by another user, a
//! crash between the two writes of a cluster put), never miss one that has. A session is
//! removed from an index only by a script that proves the user has nothing left there
//! (standalone and sentinel). In a cluster the index and the session live in different slots,
//! so no script can prove that atomically; there stale members stay until the index expires
//! (`session_ttl` after the user's last put) and cost `delete_by_user` one read each.

use super::keys::{parse_token_field, token_field};
use super::scripts::{DELETE_SESSION, DELETE_USER_ENTRIES};
use super::token::ValkeyTokenStore;
use crate::store::{StoreError, TokenKey};
use bytes::Bytes;
use fred::prelude::*;
use fred::types::Key;
use std::collections::BTreeSet;

/// Reads of one session before `delete_by_user` gives up on a session that keeps changing.
const DELETE_USER_ATTEMPTS: usize = 8;

impl ValkeyTokenStore {
    pub(super) async fn delete_entry(&self, key: &TokenKey) -> Result<bool, StoreError> {
        let hash_key = self.shared.keys.token(&key.session);
        let field = token_field(&key.binding, &key.scope);
        let removed: i64 = self
            .shared
            .client
            .pool()
            .hdel(&hash_key, field)
            .await
            .map_err(|e| self.shared.client.error("HDEL", &e))?;
        Ok(removed > 0)
    }

    /// One script: count, delete the hash, drop the session from its owners' indexes.
    pub(super) async fn delete_session(&self, session: &str) -> Result<usize, StoreError> {
        let client = &self.shared.client;
        let mut keys: Vec<Key> = vec![self.shared.keys.token(session).into()];
        if !client.is_cluster() {
            // Owners as read just before; an entry added meanwhile by someone else leaves a
            // stale index member behind, which is harmless (see the module docs).
            let read = self.read_session(session, false, None).await?;
            let owners: BTreeSet<&str> = read
                .entries
                .iter()
                .map(|e| e.record.user.as_str())
                .collect();
            keys.extend(
                owners
                    .into_iter()
                    .map(|u| Key::from(self.shared.keys.user_index(u))),
            );
        }
        let removed: i64 = DELETE_SESSION
            .run(client, keys, vec![Value::from(session)])
            .await?;
        Ok(usize::try_from(removed).unwrap_or(0))
    }

    pub(super) async fn delete_user(&self, user: &str) -> Result<usize, StoreError> {
        let index_key = self.shared.keys.user_index(user);
        let sessions: Vec<Bytes> = self
            .shared
            .client
            .pool()
            .smembers(&index_key)
            .await
            .map_err(|e| self.shared.client.error("SMEMBERS", &e))?;
        let mut removed = 0;
        for session in sessions {
            // Our members are UTF-8 session ids; anything else is not ours to touch.
            let Ok(session) = String::from_utf8(session.to_vec()) else {
                continue;
            };
            removed += self
                .delete_user_in_session(user, &session, &index_key)
                .await?;
        }
        Ok(removed)
    }

    /// Delete `user`'s entries of one session with a compare-and-delete script over the whole
    /// session as read; re-read and retry if it changed in between.
    async fn delete_user_in_session(
        &self,
        user: &str,
        session: &str,
        index_key: &str,
    ) -> Result<usize, StoreError> {
        let client = &self.shared.client;
        let hash_key = self.shared.keys.token(session);
        for _ in 0..DELETE_USER_ATTEMPTS {
            let read = self.read_session(session, false, None).await?;
            // Fields of the old layout go too: they are never used again, and one may be the
            // user's (signing out everywhere must leave none of their tokens behind).
            let owned: BTreeSet<&str> = read
                .entries
                .iter()
                .filter(|e| e.record.user == user)
                .map(|e| e.field.as_str())
                .chain(read.legacy.iter().map(String::as_str))
                .collect();
            if client.is_cluster() && owned.is_empty() {
                return Ok(0);
            }
            // An entry we cannot read may be the user's: keep the session in the index then.
            let may_unindex = read.undecodable == 0;
            let (delete, keep): (Vec<_>, Vec<_>) = read
                .raw
                .iter()
                .partition(|(field, _)| owned.contains(field.as_str()));
            let mut args = Vec::with_capacity(4 + 2 * read.raw.len());
            args.push(Value::from(session));
            args.push(Value::from(read.raw.len() as i64));
            args.push(Value::from(delete.len() as i64));
            args.push(Value::from(if may_unindex { "1" } else { "0" }));
            for (field, stored) in delete.into_iter().chain(keep) {
                args.push(Value::from(field.as_str()));
                args.push(Value::Bytes(stored.clone()));
            }
            let mut keys: Vec<Key> = vec![hash_key.as_str().into()];
            if !client.is_cluster() {
                keys.push(index_key.into());
            }
            let result: i64 = DELETE_USER_ENTRIES.run(client, keys, args).await?;
            if let Ok(n) = usize::try_from(result) {
                return Ok(n);
            }
        }
        Err(StoreError::unavailable(format!(
            "delete_by_user: a session kept changing during {DELETE_USER_ATTEMPTS} attempts; \
             retry"
        )))
    }

    /// HKEYS, then one HDEL of the issuer's fields (field names are plaintext: no decryption).
    pub(super) async fn delete_issuer(
        &self,
        session: &str,
        issuer: &str,
    ) -> Result<usize, StoreError> {
        let hash_key = self.shared.keys.token(session);
        let pool = self.shared.client.pool();
        let fields: Vec<Bytes> = pool
            .hkeys(&hash_key)
            .await
            .map_err(|e| self.shared.client.error("HKEYS", &e))?;
        let matching: Vec<Key> = fields
            .iter()
            .filter_map(|f| std::str::from_utf8(f).ok())
            .filter(|f| parse_token_field(f).is_of_issuer(issuer))
            .map(Key::from)
            .collect();
        if matching.is_empty() {
            return Ok(0);
        }
        let removed: i64 = pool
            .hdel(&hash_key, matching)
            .await
            .map_err(|e| self.shared.client.error("HDEL", &e))?;
        Ok(usize::try_from(removed).unwrap_or(0))
    }
}
