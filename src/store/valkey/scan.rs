//! Walking a key space in bounded pages with SCAN (never KEYS, which blocks the server for the
//! whole key space). In a cluster every primary is scanned.
//!
//! Cost: SCAN visits the *whole* key space of each node (MATCH filters after the walk), so one
//! full pass is O(keys on the server) round trips / `PAGE`, whatever our share of them. The
//! operations using it (count, remove_expired, the rotation sweep) are background or diagnostic
//! work, never on a request path.

use super::client::ValkeyClient;
use crate::store::StoreError;
use bytes::Bytes;
use fred::error::Error as FredError;
use fred::prelude::*;
use fred::types::scan::{ScanResult, Scanner as _};
use futures::{Stream, StreamExt as _};
use std::collections::HashSet;
use std::pin::Pin;

/// Keys asked for per SCAN call: a hint to the server, which may return more or fewer.
pub const PAGE: u32 = 500;

/// An in-progress SCAN over one pattern. Every key present for the whole walk is returned
/// exactly once: SCAN itself may repeat a key when the server's table grows during the walk, so
/// keys already returned are remembered and skipped (memory: one entry per matching key).
pub struct KeyScan<'a> {
    client: &'a ValkeyClient,
    pattern: String,
    walk: Walk,
    seen: HashSet<String>,
}

enum Walk {
    /// One server: a cursor per call, each call bounded by the command timeout.
    Standalone { cursor: String, done: bool },
    /// Every primary of a cluster, pages as fred's cluster scan delivers them.
    Cluster(Pin<Box<dyn Stream<Item = Result<ScanResult, FredError>> + Send>>),
}

impl<'a> KeyScan<'a> {
    pub fn new(client: &'a ValkeyClient, pattern: String) -> Result<Self, StoreError> {
        let walk = if client.is_cluster() {
            let stream =
                client
                    .pool()
                    .next_connected()
                    .scan_cluster(pattern.clone(), Some(PAGE), None);
            Walk::Cluster(Box::pin(stream))
        } else {
            Walk::Standalone {
                cursor: "0".into(),
                done: false,
            }
        };
        Ok(Self {
            client,
            pattern,
            walk,
            seen: HashSet::new(),
        })
    }

    /// The next page of matching keys; `None` when the walk is complete. Pages may be empty.
    pub async fn next_page(&mut self) -> Result<Option<Vec<String>>, StoreError> {
        let keys: Vec<Bytes> = match &mut self.walk {
            Walk::Standalone { done: true, .. } => return Ok(None),
            Walk::Standalone { cursor, done } => {
                let reply: Result<(String, Vec<Bytes>), _> = self
                    .client
                    .pool()
                    .scan_page(cursor.clone(), self.pattern.clone(), Some(PAGE), None)
                    .await;
                let (next, keys) = reply.map_err(|e| self.client.error("SCAN", &e))?;
                *done = next == "0";
                *cursor = next;
                keys
            }
            Walk::Cluster(stream) => match stream.next().await {
                None => return Ok(None),
                Some(page) => {
                    let mut page = page.map_err(|e| self.client.error("SCAN", &e))?;
                    // Dropping the page asks for the next one.
                    page.take_results()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|k| k.into_bytes())
                        .collect()
                }
            },
        };
        // Our keys are UTF-8; a foreign binary key that happens to match is not ours.
        Ok(Some(
            keys.into_iter()
                .filter_map(|k| String::from_utf8(k.to_vec()).ok())
                .filter(|k| self.seen.insert(k.clone()))
                .collect(),
        ))
    }
}
