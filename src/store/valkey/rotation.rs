//! The key-rotation sweep: re-encrypt every stored token and flow value that is not sealed with
//! the primary key, so the old key can then be removed without losing anything.
//!
//! Walks the token and flow key spaces with SCAN in pages; for each hash, re-encrypts the
//! values under older keys and writes them back with a compare-and-set script (a value changed
//! since it was read was written by a put, under the primary key already, and is left alone).
//! Values that cannot be opened are counted by key id and left in place. Safe to run while the
//! gateway serves traffic, and to run again.

use super::scan::KeyScan;
use super::scripts::HASH_REPLACE_IF_UNCHANGED;
use super::shared::Shared;
use crate::crypto::{KeyRing, aad, envelope_key_id};
use crate::store::StoreError;
use bytes::Bytes;
use fred::prelude::*;
use futures::{StreamExt as _, TryStreamExt as _};
use std::collections::{BTreeMap, HashMap};

/// Hashes worked on concurrently within one SCAN page.
const CONCURRENCY: usize = 32;
/// `failed_by_key_id` label of a value that is not an envelope at all.
pub const NOT_AN_ENVELOPE: &str = "(not an envelope)";

/// Which key space the sweep is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationPhase {
    Tokens,
    Flows,
}

/// Running totals, reported after every SCAN page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationProgress {
    pub phase: RotationPhase,
    pub scanned: u64,
    pub rewrapped: u64,
    pub already_current: u64,
    pub failed: u64,
}

/// The outcome of a sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Values looked at.
    pub scanned: u64,
    /// Values re-encrypted under the primary key.
    pub rewrapped: u64,
    /// Values already under the primary key.
    pub already_current: u64,
    /// Values that changed between read and write-back (rewritten meanwhile, under the primary).
    pub changed_concurrently: u64,
    /// Values that could not be opened, by the key id they name ([`NOT_AN_ENVELOPE`] when
    /// they are not an envelope). Removing a key id listed here loses those values.
    pub failed_by_key_id: BTreeMap<String, u64>,
}

impl RotationReport {
    fn failed(&self) -> u64 {
        self.failed_by_key_id.values().sum()
    }

    fn add(&mut self, other: RotationReport) {
        self.scanned += other.scanned;
        self.rewrapped += other.rewrapped;
        self.already_current += other.already_current;
        self.changed_concurrently += other.changed_concurrently;
        for (id, n) in other.failed_by_key_id {
            *self.failed_by_key_id.entry(id).or_default() += n;
        }
    }

    fn progress(&self, phase: RotationPhase) -> RotationProgress {
        RotationProgress {
            phase,
            scanned: self.scanned,
            rewrapped: self.rewrapped,
            already_current: self.already_current,
            failed: self.failed(),
        }
    }
}

/// Re-encrypt every token and flow value under `ring`'s primary key.
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
    shared.stats.add_rewrapped(report.rewrapped);
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
        report.scanned += 1;
        let id = match envelope_key_id(&stored) {
            Ok(id) => id.to_owned(),
            Err(_) => {
                *report
                    .failed_by_key_id
                    .entry(NOT_AN_ENVELOPE.into())
                    .or_default() += 1;
                continue;
            }
        };
        if id == ring.primary_id() {
            report.already_current += 1;
            continue;
        }
        let opened = match ring.decrypt(&stored, &aad(key.as_bytes(), Some(field.as_bytes()))) {
            Ok(opened) => opened,
            Err(_) => {
                *report.failed_by_key_id.entry(id).or_default() += 1;
                continue;
            }
        };
        let new = ring.encrypt(
            &opened.plaintext,
            &aad(key.as_bytes(), Some(field.as_bytes())),
        );
        args.push(Value::from(field));
        args.push(Value::Bytes(stored));
        args.push(Value::Bytes(Bytes::from(new)));
    }
    if !args.is_empty() {
        let attempted = (args.len() / 3) as u64;
        let replaced: i64 = HASH_REPLACE_IF_UNCHANGED
            .run(client, vec![key.into()], args)
            .await?;
        let replaced = u64::try_from(replaced).unwrap_or(0);
        report.rewrapped += replaced;
        report.changed_concurrently += attempted.saturating_sub(replaced);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_add_up() {
        let mut a = RotationReport {
            scanned: 3,
            rewrapped: 1,
            already_current: 1,
            changed_concurrently: 0,
            failed_by_key_id: BTreeMap::from([("k0".to_owned(), 1)]),
        };
        a.add(RotationReport {
            scanned: 2,
            rewrapped: 1,
            already_current: 0,
            changed_concurrently: 0,
            failed_by_key_id: BTreeMap::from([("k0".to_owned(), 1)]),
        });
        assert_eq!(a.scanned, 5);
        assert_eq!(a.failed_by_key_id.get("k0"), Some(&2));
        let p = a.progress(RotationPhase::Flows);
        assert_eq!((p.scanned, p.rewrapped, p.failed), (5, 2, 2));
    }
}
