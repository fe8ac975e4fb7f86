//! Valkey [`TokenStore`]: reads and writes. Deletion and maintenance are in
//! [`super::token_delete`] and [`super::token_sweep`].
//!
//! Undecryptable entries: `get` returns the error (the caller asked for exactly that entry);
//! `get_by_issuer` and `all_for_session` skip them, logging the place and the reason and
//! counting them in the stats, so one entry whose key was removed from the ring does not make
//! every other token of the session unusable (the user re-authorizes that one server instead).

use super::keys::{parse_token_field, token_field};
use super::records::{decode_token, encode_token};
use super::scripts::{INDEX_ADD, TOKEN_PUT};
use super::shared::{Rewrap, Shared, short};
use crate::store::memory::preferred;
use crate::store::{StoreError, TokenKey, TokenRecord, TokenStore};
use crate::time::unix_now;
use async_trait::async_trait;
use bytes::Bytes;
use fred::prelude::*;
use std::collections::HashMap;

/// Tokens in Valkey, sealed per entry. Cheap to clone (shares the client).
#[derive(Debug, Clone)]
pub struct ValkeyTokenStore {
    pub(super) shared: Shared,
}

/// One decoded entry of a session hash.
pub(super) struct Entry {
    pub field: String,
    pub stored: Bytes,
    pub key: TokenKey,
    pub record: TokenRecord,
}

/// A session hash as read: decodable entries, and how many fields could not be decoded.
pub(super) struct SessionRead {
    pub entries: Vec<Entry>,
    pub undecodable: usize,
    /// Every field and its stored bytes, decodable or not (for compare-and-delete).
    pub raw: Vec<(String, Bytes)>,
}

impl ValkeyTokenStore {
    pub(super) fn new(shared: Shared) -> Self {
        Self { shared }
    }

    /// Decode one stored entry of `session` at `field`.
    pub(super) fn decode(
        &self,
        hash_key: &str,
        session: &str,
        field: &str,
        stored: &[u8],
    ) -> Result<(TokenKey, TokenRecord, Option<Vec<u8>>), StoreError> {
        let (issuer, scope) = parse_token_field(field).ok_or_else(|| not_a_field(session))?;
        self.decode_parsed(hash_key, session, field, (&issuer, scope), stored)
    }

    /// [`Self::decode`] of a field already split into `(issuer, scope)`.
    fn decode_parsed(
        &self,
        hash_key: &str,
        session: &str,
        field: &str,
        (issuer, scope): (&str, &str),
        stored: &[u8],
    ) -> Result<(TokenKey, TokenRecord, Option<Vec<u8>>), StoreError> {
        let key = TokenKey::new(session, issuer, scope);
        let place = || {
            format!(
                "token entry of session {} for issuer {} scope {:?}",
                short(session),
                key.issuer,
                key.scope
            )
        };
        let decoded = self.shared.codec.open(
            &self.shared.stats,
            stored,
            hash_key,
            field,
            &place,
            decode_token,
        )?;
        Ok((key, decoded.value, decoded.rewrapped))
    }

    /// HGETALL of a session, decoded; undecodable entries are logged, counted and left out.
    /// With `rewrap`, entries sealed with an older key are re-encrypted and written back
    /// (callers that go on to compare-and-delete pass `false`: the bytes they compare against
    /// must stay the ones they read).
    /// With `issuer`, only that issuer's entries are decrypted (the others are left out of
    /// `entries` but kept in `raw`).
    pub(super) async fn read_session(
        &self,
        session: &str,
        rewrap: bool,
        issuer: Option<&str>,
    ) -> Result<SessionRead, StoreError> {
        let hash_key = self.shared.keys.token(session);
        let all: HashMap<Bytes, Bytes> = self
            .shared
            .client
            .pool()
            .hgetall(&hash_key)
            .await
            .map_err(|e| self.shared.client.error("HGETALL", &e))?;
        // Callers that re-encrypt do not compare-and-delete, and only those need `raw`.
        let keep_raw = !rewrap;
        let mut read = SessionRead {
            entries: Vec::with_capacity(all.len()),
            undecodable: 0,
            raw: Vec::with_capacity(if keep_raw { all.len() } else { 0 }),
        };
        let mut rewraps: Vec<Rewrap> = Vec::new();
        for (field, stored) in all {
            let Ok(field) = std::str::from_utf8(&field) else {
                read.undecodable += 1;
                continue;
            };
            if keep_raw {
                read.raw.push((field.to_owned(), stored.clone()));
            }
            let Some((entry_issuer, scope)) = parse_token_field(field) else {
                // Not ours; reported only where every entry was asked for.
                if issuer.is_none() {
                    read.undecodable += 1;
                    tracing::warn!(error = %not_a_field(session), "skipping a stored token that cannot be read");
                }
                continue;
            };
            if issuer.is_some_and(|wanted| wanted != entry_issuer) {
                continue;
            }
            let parts = (entry_issuer.as_ref(), scope);
            match self.decode_parsed(&hash_key, session, field, parts, &stored) {
                Ok((key, record, rewrapped)) => {
                    if let Some(new) = rewrapped {
                        rewraps.push((field.to_owned(), stored.clone(), new));
                    }
                    read.entries.push(Entry {
                        field: field.to_owned(),
                        stored,
                        key,
                        record,
                    });
                }
                Err(e) => {
                    read.undecodable += 1;
                    tracing::warn!(error = %e, "skipping a stored token that cannot be read");
                }
            }
        }
        if rewrap {
            self.shared.write_back(&hash_key, rewraps).await;
        }
        Ok(read)
    }

    async fn put_entry(&self, key: &TokenKey, record: &TokenRecord) -> Result<(), StoreError> {
        let hash_key = self.shared.keys.token(&key.session);
        let index_key = self.shared.keys.user_index(&record.user);
        let field = token_field(&key.issuer, &key.scope);
        let sealed = self
            .shared
            .codec
            .seal(&encode_token(record), &hash_key, &field);
        let ttl = self.shared.ttl_ms();
        let client = &self.shared.client;
        let keys = if client.is_cluster() {
            // Index first: a crash in between leaves an index entry pointing at nothing
            // (harmless; `delete_by_user` skips it), never an entry the index cannot find.
            let args = vec![Value::from(key.session.as_str()), Value::from(ttl)];
            let _: i64 = INDEX_ADD.run(client, vec![index_key.into()], args).await?;
            vec![hash_key.into()]
        } else {
            vec![hash_key.into(), index_key.into()]
        };
        let args = vec![
            Value::from(field),
            Value::Bytes(Bytes::from(sealed)),
            Value::from(ttl),
            Value::from(key.session.as_str()),
        ];
        let _: i64 = TOKEN_PUT.run(client, keys, args).await?;
        Ok(())
    }

    async fn get_entry(&self, key: &TokenKey) -> Result<Option<TokenRecord>, StoreError> {
        let hash_key = self.shared.keys.token(&key.session);
        let field = token_field(&key.issuer, &key.scope);
        let stored: Option<Bytes> = self
            .shared
            .client
            .pool()
            .hget(&hash_key, field.as_str())
            .await
            .map_err(|e| self.shared.client.error("HGET", &e))?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        let (_, record, rewrapped) = self.decode(&hash_key, &key.session, &field, &stored)?;
        if let Some(new) = rewrapped {
            self.shared
                .write_back(&hash_key, vec![(field, stored, new)])
                .await;
        }
        Ok(Some(record))
    }
}

fn not_a_field(session: &str) -> StoreError {
    StoreError::Corrupt(format!(
        "token hash of session {} has a field that is not `issuer|scope`",
        short(session)
    ))
}

#[async_trait]
impl TokenStore for ValkeyTokenStore {
    async fn put(&self, key: &TokenKey, record: TokenRecord) -> Result<(), StoreError> {
        self.put_entry(key, &record).await
    }

    async fn get(&self, key: &TokenKey) -> Result<Option<TokenRecord>, StoreError> {
        self.get_entry(key).await
    }

    async fn get_by_issuer(
        &self,
        session: &str,
        issuer: &str,
    ) -> Result<Option<(TokenKey, TokenRecord)>, StoreError> {
        let read = self.read_session(session, true, Some(issuer)).await?;
        let candidates = read
            .entries
            .iter()
            .filter(|e| e.key.issuer == issuer)
            .map(|e| (e.key.scope.as_str(), &e.record));
        let Some((scope, _)) = preferred(candidates, unix_now()) else {
            return Ok(None);
        };
        let scope = scope.to_owned();
        Ok(read
            .entries
            .into_iter()
            .find(|e| e.key.issuer == issuer && e.key.scope == scope)
            .map(|e| (e.key, e.record)))
    }

    async fn all_for_session(
        &self,
        session: &str,
    ) -> Result<Vec<(TokenKey, TokenRecord)>, StoreError> {
        let read = self.read_session(session, true, None).await?;
        let mut all: Vec<(TokenKey, TokenRecord)> = read
            .entries
            .into_iter()
            .map(|e| (e.key, e.record))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    async fn delete(&self, key: &TokenKey) -> Result<bool, StoreError> {
        self.delete_entry(key).await
    }

    async fn delete_by_session(&self, session: &str) -> Result<usize, StoreError> {
        self.delete_session(session).await
    }

    async fn sessions_of_user(&self, user: &str) -> Result<Vec<String>, StoreError> {
        let members: Vec<Bytes> = self
            .shared
            .client
            .pool()
            .smembers(self.shared.keys.user_index(user))
            .await
            .map_err(|e| self.shared.client.error("SMEMBERS", &e))?;
        // Our members are UTF-8 session ids; anything else is not ours.
        Ok(members
            .into_iter()
            .filter_map(|m| String::from_utf8(m.to_vec()).ok())
            .collect())
    }

    async fn delete_by_user(&self, user: &str) -> Result<usize, StoreError> {
        self.delete_user(user).await
    }

    async fn delete_by_issuer(&self, session: &str, issuer: &str) -> Result<usize, StoreError> {
        self.delete_issuer(session, issuer).await
    }

    async fn count(&self) -> Result<usize, StoreError> {
        self.count_entries().await
    }

    async fn remove_expired(&self, now: u64) -> Result<usize, StoreError> {
        self.remove_unusable(now).await
    }
}
