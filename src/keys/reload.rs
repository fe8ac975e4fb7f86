//! What happens when a key-ring source (a key file or directory, or a Secret read through the
//! API server) yields a new ring — the same rules for every source:
//!
//! - the first good ring is installed, the `keys` readiness gate opens;
//! - a good ring that differs from the one in use replaces it for every later seal and open
//!   (generation +1, logged with the key ids added and removed, a warning when the previous
//!   primary is dropped: values still sealed with it become unreadable until it is put back);
//! - an identical ring changes nothing (sources re-read on every event);
//! - a ring that does not parse, or a source that disappears, never replaces a good ring: the
//!   last good one stays in use, the problem is logged with the key ids in use and counted in
//!   `mcpoauth_keyring_reload_failures_total`; before the first good ring, `/readyz` says why.
//!
//! Logs and errors name sources and key ids, never key material.

use super::metrics::KeyRingMetrics;
use crate::crypto::{KeyRing, KeyRingError, KeyRingHandle, RingChange};
use crate::http::Readiness;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;

/// Name of the `/readyz` gate held until the first key ring is loaded.
pub const READINESS_GATE: &str = "keys";

/// Called once with the first good ring, before readiness opens (e.g. to build the stores).
pub type OnFirst = Box<dyn Fn(&KeyRingHandle) + Send + Sync>;

/// What an offered ring did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The first good ring: installed.
    First,
    /// Replaced the ring in use.
    Replaced(RingChange),
    /// Same keys as the ring in use: nothing to do.
    Unchanged,
    /// Not used (unparsable or missing); the ring in use, if any, stays.
    Refused,
}

/// Applies rings from one source to one [`KeyRingHandle`].
pub struct KeyRingReloader {
    /// e.g. "Secret ops/mcp-keys" or "key file /etc/keys".
    source: String,
    handle: Mutex<Option<KeyRingHandle>>,
    on_first: Option<OnFirst>,
    published: watch::Sender<Option<KeyRingHandle>>,
    metrics: KeyRingMetrics,
    readiness: Arc<Readiness>,
}

impl std::fmt::Debug for KeyRingReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRingReloader")
            .field("source", &self.source)
            .field("handle", &self.handle())
            .finish_non_exhaustive()
    }
}

impl KeyRingReloader {
    /// No ring yet: `/readyz` is blocked (gate [`READINESS_GATE`]) until the first good one,
    /// which is passed to `on_first` before the gate opens.
    pub fn pending(
        source: impl Into<String>,
        on_first: OnFirst,
        metrics: KeyRingMetrics,
        readiness: Arc<Readiness>,
    ) -> Arc<Self> {
        let source = source.into();
        readiness.block(READINESS_GATE, format!("waiting for {source}"));
        let (published, _) = watch::channel(None);
        Arc::new(Self {
            source,
            handle: Mutex::new(None),
            on_first: Some(on_first),
            published,
            metrics,
            readiness,
        })
    }

    /// Starts from a ring already loaded (at start-up, where a bad ring stops the process).
    pub fn loaded(
        source: impl Into<String>,
        handle: KeyRingHandle,
        metrics: KeyRingMetrics,
        readiness: Arc<Readiness>,
    ) -> Arc<Self> {
        set_gauges(&metrics, &handle);
        let (published, _) = watch::channel(Some(handle.clone()));
        Arc::new(Self {
            source: source.into(),
            handle: Mutex::new(Some(handle)),
            on_first: None,
            published,
            metrics,
            readiness,
        })
    }

    /// The metrics this reloader updates.
    pub fn metrics(&self) -> &KeyRingMetrics {
        &self.metrics
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The handle in use, once a ring is loaded.
    pub fn handle(&self) -> Option<KeyRingHandle> {
        self.lock().clone()
    }

    /// Sees the handle after the first load and again after every replacement.
    pub fn subscribe(&self) -> watch::Receiver<Option<KeyRingHandle>> {
        self.published.subscribe()
    }

    /// A ring read from the source, or why it could not be read.
    pub fn offer(&self, candidate: Result<KeyRing, KeyRingError>) -> Outcome {
        match candidate {
            Ok(ring) => self.install(ring),
            Err(e) => self.refuse(&format!("{} is unusable: {e}", self.source)),
        }
    }

    /// The source is gone or cannot be read (`why` says how, e.g. "Secret ops/keys not found").
    pub fn unavailable(&self, why: &str) -> Outcome {
        self.refuse(why)
    }

    fn install(&self, ring: KeyRing) -> Outcome {
        let mut slot = self.lock();
        let outcome = match slot.as_ref() {
            None => {
                let handle = KeyRingHandle::new(ring);
                tracing::info!(
                    source = %self.source,
                    primary = handle.current().primary_id(),
                    key_ids = ?handle.current().key_ids(),
                    "encryption key ring loaded"
                );
                if let Some(on_first) = &self.on_first {
                    on_first(&handle);
                }
                *slot = Some(handle);
                Outcome::First
            }
            Some(handle) if handle.with(|current| current.same_keys(&ring)) => {
                tracing::debug!(source = %self.source, "encryption key ring unchanged");
                return Outcome::Unchanged;
            }
            Some(handle) => {
                let change = handle.replace(ring);
                log_change(&self.source, &change, &handle.current());
                self.metrics.reloads.inc();
                Outcome::Replaced(change)
            }
        };
        if let Some(handle) = slot.as_ref() {
            set_gauges(&self.metrics, handle);
            self.published.send_replace(Some(handle.clone()));
        }
        self.readiness.unblock(READINESS_GATE);
        outcome
    }

    fn refuse(&self, why: &str) -> Outcome {
        self.metrics.reload_failures.inc();
        match self.lock().as_ref() {
            Some(handle) => {
                let ring = handle.current();
                tracing::error!(
                    source = %self.source,
                    problem = %why,
                    primary = ring.primary_id(),
                    key_ids = ?ring.key_ids(),
                    "encryption key ring not reloaded; keeping the key ring in use"
                );
            }
            None => {
                tracing::error!(
                    source = %self.source,
                    problem = %why,
                    "no encryption key ring loaded yet; the stores stay closed"
                );
                self.readiness.block(READINESS_GATE, why.to_owned());
            }
        }
        Outcome::Refused
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<KeyRingHandle>> {
        // The guarded value is replaced whole, so a panic elsewhere cannot leave it half-done.
        self.handle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn set_gauges(metrics: &KeyRingMetrics, handle: &KeyRingHandle) {
    let keys = handle.with(|r| r.key_ids().len());
    metrics.keys.set(i64::try_from(keys).unwrap_or(i64::MAX));
    metrics
        .generation
        .set(i64::try_from(handle.generation()).unwrap_or(i64::MAX));
}

fn log_change(source: &str, change: &RingChange, ring: &KeyRing) {
    tracing::info!(
        source,
        generation = change.generation,
        primary = %change.primary,
        previous_primary = %change.previous_primary,
        added = ?change.added,
        removed = ?change.removed,
        key_ids = ?ring.key_ids(),
        "encryption key ring reloaded"
    );
    if change.drops_previous_primary() {
        tracing::warn!(
            source,
            removed_primary = %change.previous_primary,
            "the new key ring drops the previous primary key: values still sealed with it are unreadable until it is put back (add the new primary first, run the rotation sweep, then remove the old key; see docs/encryption.md)"
        );
    } else if !change.removed.is_empty() {
        tracing::warn!(
            source,
            removed = ?change.removed,
            "the new key ring drops keys: values still sealed with them are unreadable until they are put back"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const K2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    fn ring(text: &str) -> Result<KeyRing, KeyRingError> {
        KeyRing::parse(text)
    }

    fn pending() -> (Arc<KeyRingReloader>, Arc<Readiness>, Arc<AtomicUsize>) {
        let readiness = Arc::new(Readiness::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let reloader = KeyRingReloader::pending(
            "Secret ops/keys",
            Box::new(move |_| {
                seen.fetch_add(1, Ordering::SeqCst);
            }),
            KeyRingMetrics::default(),
            readiness.clone(),
        );
        (reloader, readiness, calls)
    }

    fn reasons(r: &Readiness) -> String {
        r.reasons().unwrap_or_default().join("; ")
    }

    #[test]
    fn closed_and_not_ready_until_the_first_good_ring() {
        let (reloader, readiness, calls) = pending();
        assert!(reloader.handle().is_none());
        assert_eq!(reasons(&readiness), "keys: waiting for Secret ops/keys");

        assert_eq!(reloader.offer(ring("k1: c2hvcnQ=")), Outcome::Refused);
        assert!(reloader.handle().is_none(), "a bad ring is never installed");
        let why = reasons(&readiness);
        assert!(
            why.starts_with("keys: Secret ops/keys is unusable") && why.contains("\"k1\""),
            "{why}"
        );
        assert!(!why.contains("c2hvcnQ"), "no key material: {why}");
        assert_eq!(
            reloader.unavailable("Secret ops/keys not found"),
            Outcome::Refused
        );
        assert_eq!(reasons(&readiness), "keys: Secret ops/keys not found");
        assert_eq!(reloader.metrics.reload_failures.get(), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        assert_eq!(reloader.offer(ring(&format!("k1: {K1}"))), Outcome::First);
        assert!(readiness.reasons().is_none());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(reloader.metrics.generation.get(), 1);
        assert_eq!(reloader.metrics.keys.get(), 1);
        assert!(reloader.subscribe().borrow().is_some());
    }

    #[test]
    fn a_bad_ring_or_a_vanished_source_keeps_the_good_one() {
        let (reloader, readiness, _) = pending();
        reloader.offer(ring(&format!("k1: {K1}")));
        let handle = reloader.handle().unwrap_or_else(|| panic!("loaded"));
        let sealed = handle.with(|r| r.encrypt(b"v", b"ctx"));

        for bad in [
            ring(""),
            ring("primary: k9\nk1: MDEy"),
            ring(&format!("primary: k3\nk1: {K1}")),
        ] {
            assert_eq!(reloader.offer(bad), Outcome::Refused);
        }
        assert_eq!(reloader.unavailable("Secret deleted"), Outcome::Refused);
        assert_eq!(handle.generation(), 1);
        assert!(handle.with(|r| r.decrypt(&sealed, b"ctx")).is_ok());
        assert!(readiness.reasons().is_none(), "stays ready on the old ring");
        assert_eq!(reloader.metrics.reload_failures.get(), 4);
        assert_eq!(reloader.metrics.generation.get(), 1);
    }

    #[test]
    fn a_new_ring_replaces_the_old_and_the_same_ring_changes_nothing() {
        let (reloader, _, calls) = pending();
        reloader.offer(ring(&format!("k1: {K1}")));
        let mut rx = reloader.subscribe();
        rx.mark_unchanged();
        assert_eq!(
            reloader.offer(ring(&format!("k1: {K1}"))),
            Outcome::Unchanged
        );
        assert!(!rx.has_changed().unwrap_or(true));

        let outcome = reloader.offer(ring(&format!("primary: k2\nk1: {K1}\nk2: {K2}")));
        let Outcome::Replaced(change) = outcome else {
            panic!("expected a replacement, got {outcome:?}")
        };
        assert_eq!(change.added, ["k2"]);
        assert!(change.removed.is_empty());
        assert!(rx.has_changed().unwrap_or(false));
        assert_eq!(reloader.metrics.generation.get(), 2);
        assert_eq!(reloader.metrics.keys.get(), 2);
        assert_eq!(reloader.metrics.reloads.get(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 1, "on_first runs once");

        let handle = reloader.handle().unwrap_or_else(|| panic!("loaded"));
        let sealed = handle.with(|r| r.encrypt(b"v", b"ctx"));
        assert_eq!(crate::crypto::envelope_key_id(&sealed), Ok("k2"));

        // Dropping the previous primary is allowed (the operator may mean it) but reported.
        let outcome = reloader.offer(ring(&format!("k1: {K1}")));
        assert!(
            matches!(&outcome, Outcome::Replaced(c) if c.drops_previous_primary()),
            "{outcome:?}"
        );
    }

    #[test]
    fn a_ring_loaded_at_start_up_is_in_use_at_once() {
        let readiness = Arc::new(Readiness::new());
        let handle = KeyRingHandle::new(KeyRing::parse(K1).unwrap_or_else(|e| panic!("{e}")));
        let reloader = KeyRingReloader::loaded(
            "key file /k",
            handle.clone(),
            KeyRingMetrics::default(),
            readiness.clone(),
        );
        assert!(readiness.reasons().is_none());
        assert_eq!(reloader.metrics.generation.get(), 1);
        assert_eq!(reloader.offer(ring("")), Outcome::Refused);
        assert!(readiness.reasons().is_none(), "a loaded ring stays in use");
        assert_eq!(handle.generation(), 1);
    }
}
