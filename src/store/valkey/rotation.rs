//! The key-rotation sweep over Valkey: re-seal every stored token and flow value that is not
//! sealed with the primary key, so the old key can then be removed without losing anything.
//!
//! Walks the token and flow key spaces with SCAN in pages; for each hash, asks the sealed layer
//! ([`reseal`]) what to do with each value and writes the re-sealed ones back with a
//! compare-and-set script (a value changed since it was read was written by a put, under the
//! primary key already, and is left alone). Values that cannot be opened are counted by key id
//! and left in place. Safe to run while the gateway serves traffic, and to run again.

use super::scan::KeyScan;
use super::scripts::HASH_REPLACE_IF_UNCHANGED;
use super::shared::Shared;
use crate::crypto::KeyRing;
use crate::store::StoreError;
use crate::store::sealed::{RotationPhase, RotationProgress, RotationReport, reseal};
use bytes::Bytes;
use fred::prelude::*;
use futures::{StreamExt as _, TryStreamExt as _};
use std::collections::HashMap;

/// Hashes worked on concurrently within one SCAN page.
const CONCURRENCY: usize = 32;

/// Re-seal every token and flow value under `ring`'s primary key.
pub async fn rotate_all(
    shared: &Shared,
    ring: &KeyRing,
    progress: impl Fn(RotationProgress),
) -> Result<RotationReport, StoreError> {
    let mut report = RotationReport::default();
    for phase in [RotationPhase::Tokens, RotationPhase::Flows] {
        let pattern = match phase {
            RotationPhase::Tokens => shared.keys.token_pattern(),
            RotationPhase::Flows => shared.keys.flow_pattern(),
        };
        let mut scan = KeyScan::new(&shared.client, pattern)?;
        while let Some(keys) = scan.next_page().await? {
            let reports: Vec<RotationReport> = futures::stream::iter(keys)
                .map(|key| rotate_hash(shared, ring, key, phase))
                .buffer_unordered(CONCURRENCY)
                .try_collect()
                .await?;
            for r in reports {
                report.add(r);
            }
            progress(report.progress(phase));
        }
    }
    shared.sealer.resealed(report.rewrapped);
    Ok(report)
}

/// Rotate every field of one hash (a token session or a flow).
async fn rotate_hash(
    shared: &Shared,
    ring: &KeyRing,
    key: String,
    phase: RotationPhase,
) -> Result<RotationReport, StoreError> {
    let client = &shared.client;
    let all: HashMap<Bytes, Bytes> = client
        .pool()
        .hgetall(&key)
        .await
        .map_err(|e| client.error("HGETALL", &e))?;
    let flow = phase == RotationPhase::Flows;
    let mut report = RotationReport::default();
    let mut args = Vec::new();
    for (field, stored) in all {
        let Ok(field) = String::from_utf8(field.to_vec()) else {
            continue;
        };
        // Flow hashes also hold the plaintext binding `b`: only `v` is sealed.
        if flow && field != "v" {
            continue;
        }
        if let Some(new) = report.count(reseal(ring, &stored, &key, &field)) {
            args.push(Value::from(field));
            args.push(Value::Bytes(stored));
            args.push(Value::Bytes(Bytes::from(new)));
        }
    }
    if !args.is_empty() {
        let attempted = (args.len() / 3) as u64;
        let replaced: i64 = HASH_REPLACE_IF_UNCHANGED
            .run(client, vec![key.into()], args)
            .await?;
        report.written_back(attempted, u64::try_from(replaced).unwrap_or(0));
    }
    Ok(report)
}
