//! Valkey [`TokenStore`]: reads and writes. Deletion and maintenance are in
//! [`super::token_delete`] and [`super::token_sweep`].
//!
//! Undecryptable entries: `get` returns the error (the caller asked for exactly that entry);
//! `get_bound` and `all_for_session` skip them, logging the place and the reason and
//! counting them in the stats, so one entry whose key was removed from the ring does not make
//! every other token of the session unusable (the user re-authorizes that one server instead).

use super::keys::{TokenField, parse_token_field, token_field};
use super::scripts::{INDEX_ADD, TOKEN_PUT};
use super::shared::{Rewrap, Shared, short};
use crate::store::ranking::preferred;
use crate::store::{StoreError, TokenBinding, TokenKey, TokenRecord, TokenStore};
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
    /// Fields of the seed's layout (no resource): never used; dropped by whoever reads them.
    pub legacy: Vec<String>,
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
        let key = parse_token_field(field)
            .key(session)
            .ok_or_else(|| not_a_field(session))?;
        self.decode_keyed(hash_key, field, key, stored)
    }

    /// [`Self::decode`] of a field already parsed into its key.
    fn decode_keyed(
        &self,
        hash_key: &str,
        field: &str,
        key: TokenKey,
        stored: &[u8],
    ) -> Result<(TokenKey, TokenRecord, Option<Vec<u8>>), StoreError> {
        let place = || {
            format!(
                "token entry of session {} for issuer {} in namespace {} resource {} scope {:?}",
                short(&key.session),
                key.binding.issuer,
                key.binding.namespace,
                key.binding.resource,
                key.scope
            )
        };
        let opened = self
            .shared
            .sealer
            .open_token(stored, hash_key, field, &place)?;
        Ok((key, opened.value, opened.resealed))
    }

    /// HGETALL of a session, decoded; undecodable entries are logged, counted and left out.
    /// With `rewrap`, entries sealed with an older key are re-encrypted and written back
    /// (callers that go on to compare-and-delete pass `false`: the bytes they compare against
    /// must stay the ones they read).
    /// With `binding`, only that binding's entries are decrypted (the others are left out of
    /// `entries` but kept in `raw`).
    /// Fields of the seed's layout are never decoded; with `rewrap` they are deleted.
    pub(super) async fn read_session(
        &self,
        session: &str,
        rewrap: bool,
        binding: Option<&TokenBinding>,
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
            legacy: Vec::new(),
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
            let parsed = parse_token_field(field);
            let key = match &parsed {
                TokenField::Legacy => {
                    read.legacy.push(field.to_owned());
                    continue;
                }
                TokenField::Foreign => {
                    // Not ours; reported only where every entry was asked for.
                    if binding.is_none() {
                        read.undecodable += 1;
                        tracing::warn!(error = %not_a_field(session), "skipping a stored token that cannot be read");
                    }
                    continue;
                }
                TokenField::Bound { .. } if binding.is_some_and(|b| !parsed.is_for(b)) => {
                    continue;
                }
                TokenField::Bound { .. } => match parsed.key(session) {
                    Some(key) => key,
                    None => continue,
                },
            };
            match self.decode_keyed(&hash_key, field, key, &stored) {
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
            self.drop_legacy(&hash_key, &read.legacy).await;
        }
        Ok(read)
    }

    /// Delete fields of the seed's layout. They name no resource, so no reader can know which
    /// server such a token was obtained for: the user authorizes that server once more. Best
    /// effort (the periodic sweep drops what a failed attempt leaves).
    pub(super) async fn drop_legacy(&self, hash_key: &str, fields: &[String]) -> usize {
        if fields.is_empty() {
            return 0;
        }
        let names: Vec<fred::types::Key> = fields
            .iter()
            .map(|f| fred::types::Key::from(f.as_str()))
            .collect();
        match self
            .shared
            .client
            .pool()
            .hdel::<i64, _, _>(hash_key, names)
            .await
        {
            Ok(n) => {
                tracing::info!(
                    dropped = n,
                    "dropped tokens stored before tokens were bound to their resource; their users authorize again"
                );
                usize::try_from(n).unwrap_or(0)
            }
            Err(e) => {
                tracing::warn!(error = %self.shared.client.error("HDEL", &e), "could not drop tokens of the old layout; the sweep retries");
                0
            }
        }
    }

    async fn put_entry(&self, key: &TokenKey, record: &TokenRecord) -> Result<(), StoreError> {
        let hash_key = self.shared.keys.token(&key.session);
        let index_key = self.shared.keys.user_index(&record.user);
        let field = token_field(&key.binding, &key.scope);
        let sealed = self.shared.sealer.seal_token(record, &hash_key, &field);
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
        let field = token_field(&key.binding, &key.scope);
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
    StoreError::corrupt(format!(
        "token hash of session {} has a field that is not `@issuer|namespace|resource|scope`",
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

    async fn get_bound(
        &self,
        session: &str,
        binding: &TokenBinding,
    ) -> Result<Option<(TokenKey, TokenRecord)>, StoreError> {
        let read = self.read_session(session, true, Some(binding)).await?;
        let candidates = read
            .entries
            .iter()
            .filter(|e| e.key.binding == *binding)
            .map(|e| (e.key.scope.as_str(), &e.record));
        let Some((scope, _)) = preferred(candidates, unix_now()) else {
            return Ok(None);
        };
        let scope = scope.to_owned();
        Ok(read
            .entries
            .into_iter()
            .find(|e| e.key.binding == *binding && e.key.scope == scope)
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
