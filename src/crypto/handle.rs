//! A key ring that can be replaced while the server runs: the store's sealer
//! ([`crate::store::sealed`]) reads the current ring on every seal and open, so a reload (a changed Secret or key file) takes effect for
//! every later value without a restart.
//!
//! Only a ring that parsed is ever stored here: deciding whether a candidate may replace the
//! current one (and keeping the old one when it may not) is the reloader's job.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;

use super::keyring::KeyRing;

/// Shared, swappable key ring. Cheap to clone; every clone sees every replacement.
#[derive(Clone)]
pub struct KeyRingHandle {
    inner: Arc<Inner>,
}

struct Inner {
    ring: ArcSwap<KeyRing>,
    /// 1 for the first ring, +1 per replacement (exported as a metric, so operators can see
    /// that every replica picked up a change).
    generation: AtomicU64,
}

impl KeyRingHandle {
    /// A handle holding `ring` as generation 1.
    pub fn new(ring: KeyRing) -> Self {
        Self {
            inner: Arc::new(Inner {
                ring: ArcSwap::from_pointee(ring),
                generation: AtomicU64::new(1),
            }),
        }
    }

    /// The ring in use now (a cheap clone: the ring shares its keys).
    pub fn current(&self) -> KeyRing {
        KeyRing::clone(&self.inner.ring.load())
    }

    /// Runs `f` with the current ring without cloning it (the per-value path).
    pub fn with<R>(&self, f: impl FnOnce(&KeyRing) -> R) -> R {
        f(&self.inner.ring.load())
    }

    /// Generation of the current ring.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// Makes `ring` the current one for every later seal and open; returns what changed.
    pub fn replace(&self, ring: KeyRing) -> RingChange {
        let new = Arc::new(ring);
        let old = self.inner.ring.swap(Arc::clone(&new));
        let generation = self.inner.generation.fetch_add(1, Ordering::AcqRel) + 1;
        RingChange::between(&old, &new, generation)
    }
}

impl fmt::Debug for KeyRingHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRingHandle")
            .field("generation", &self.generation())
            .field("ring", &*self.inner.ring.load())
            .finish()
    }
}

/// What a replacement changed, by key id (never key material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingChange {
    pub previous_primary: String,
    pub primary: String,
    /// Key ids in the new ring only, sorted.
    pub added: Vec<String>,
    /// Key ids in the old ring only, sorted: values still sealed with them no longer open.
    pub removed: Vec<String>,
    /// Generation of the new ring.
    pub generation: u64,
}

impl RingChange {
    /// The difference from `old` to `new`.
    pub fn between(old: &KeyRing, new: &KeyRing, generation: u64) -> Self {
        let old_ids = old.key_ids();
        let new_ids = new.key_ids();
        Self {
            previous_primary: old.primary_id().to_owned(),
            primary: new.primary_id().to_owned(),
            added: new_ids
                .iter()
                .filter(|id| !old.contains(id))
                .cloned()
                .collect(),
            removed: old_ids
                .iter()
                .filter(|id| !new.contains(id))
                .cloned()
                .collect(),
            generation,
        }
    }

    pub fn primary_changed(&self) -> bool {
        self.previous_primary != self.primary
    }

    /// The key that sealed every value written until now is gone: values not yet re-encrypted
    /// under another key are unreadable until it is put back.
    pub fn drops_previous_primary(&self) -> bool {
        self.removed.contains(&self.previous_primary)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crypto::envelope_key_id;
    use crate::crypto::keyring::tests::ring;

    #[test]
    fn a_replacement_applies_to_every_clone_and_later_value() {
        let handle = KeyRingHandle::new(ring("a", &[("a", 1)]));
        let other = handle.clone();
        let sealed_a = handle.with(|r| r.encrypt(b"token", b"ctx"));
        assert_eq!(envelope_key_id(&sealed_a), Ok("a"));
        assert_eq!(handle.generation(), 1);

        let change = handle.replace(ring("b", &[("a", 1), ("b", 2)]));
        assert_eq!(other.generation(), 2);
        assert_eq!(change.generation, 2);
        // Old values still open (and are flagged for re-encryption); new ones use b.
        let opened = other.with(|r| r.decrypt(&sealed_a, b"ctx")).unwrap();
        assert_eq!(opened.plaintext.as_slice(), b"token");
        assert!(opened.needs_rewrap);
        let sealed_b = other.with(|r| r.encrypt(b"token", b"ctx"));
        assert_eq!(envelope_key_id(&sealed_b), Ok("b"));
        assert_eq!(other.current().primary_id(), "b");
    }

    #[test]
    fn changes_are_reported_by_key_id() {
        let old = ring("a", &[("a", 1), ("x", 9)]);
        let new = ring("b", &[("b", 2), ("x", 9)]);
        let change = RingChange::between(&old, &new, 7);
        assert_eq!(change.added, ["b"]);
        assert_eq!(change.removed, ["a"]);
        assert!(change.primary_changed());
        assert!(change.drops_previous_primary());

        let keeps = RingChange::between(&old, &ring("b", &[("a", 1), ("b", 2)]), 8);
        assert!(keeps.primary_changed());
        assert!(!keeps.drops_previous_primary());
        assert_eq!(keeps.removed, ["x"]);
    }

    #[test]
    fn debug_shows_ids_and_generation_only() {
        let handle = KeyRingHandle::new(ring("a", &[("a", 1)]));
        let debug = format!("{handle:?}");
        assert!(
            debug.contains("generation: 1") && debug.contains("\"a\""),
            "{debug}"
        );
    }
}
