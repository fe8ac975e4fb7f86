//! The generic half of key rotation: what to do with one stored value ([`reseal`]) and the
//! running totals of a sweep ([`RotationReport`]). The other half, walking every stored value
//! and writing re-sealed ones back only if unchanged, is the backend's.

use crate::crypto::{KeyRing, aad, envelope_key_id};
use std::collections::BTreeMap;

/// `failed_by_key_id` label of a value that is not an envelope at all.
pub const NOT_AN_ENVELOPE: &str = "(not an envelope)";

/// Which key space the sweep is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationPhase {
    Tokens,
    Flows,
}

/// Running totals, reported after every page of a sweep.
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

/// What the sweep does with one stored value.
#[derive(Debug, PartialEq, Eq)]
pub enum Reseal {
    /// Sealed with the primary key already: nothing to do.
    Current,
    /// Sealed with an older key of the ring: these bytes, under the primary key, replace it.
    Resealed(Vec<u8>),
    /// Cannot be opened: not an envelope ([`NOT_AN_ENVELOPE`]), or sealed with the key id given
    /// that is missing from the ring (or damaged). Left in place.
    Unreadable(String),
}

/// Re-seal `stored`, read from backend address `key` / `field`, under `ring`'s primary key.
pub fn reseal(ring: &KeyRing, stored: &[u8], key: &str, field: &str) -> Reseal {
    let id = match envelope_key_id(stored) {
        Ok(id) => id,
        Err(_) => return Reseal::Unreadable(NOT_AN_ENVELOPE.to_owned()),
    };
    if id == ring.primary_id() {
        return Reseal::Current;
    }
    let aad = aad(key.as_bytes(), Some(field.as_bytes()));
    match ring.decrypt(stored, &aad) {
        Ok(opened) => Reseal::Resealed(ring.encrypt(&opened.plaintext, &aad)),
        Err(_) => Reseal::Unreadable(id.to_owned()),
    }
}

impl RotationReport {
    /// Counts one value looked at; returns the bytes to write back, if any (counted as
    /// re-sealed only once written, with [`Self::written_back`]).
    pub fn count(&mut self, outcome: Reseal) -> Option<Vec<u8>> {
        self.scanned += 1;
        match outcome {
            Reseal::Current => {
                self.already_current += 1;
                None
            }
            Reseal::Resealed(bytes) => Some(bytes),
            Reseal::Unreadable(key_id) => {
                *self.failed_by_key_id.entry(key_id).or_default() += 1;
                None
            }
        }
    }

    /// Of `attempted` re-sealed values, `written` were written back; the others had changed
    /// since they were read.
    pub fn written_back(&mut self, attempted: u64, written: u64) {
        self.rewrapped += written;
        self.changed_concurrently += attempted.saturating_sub(written);
    }

    /// Values that could not be opened.
    pub fn failed(&self) -> u64 {
        self.failed_by_key_id.values().sum()
    }

    pub fn add(&mut self, other: RotationReport) {
        self.scanned += other.scanned;
        self.rewrapped += other.rewrapped;
        self.already_current += other.already_current;
        self.changed_concurrently += other.changed_concurrently;
        for (id, n) in other.failed_by_key_id {
            *self.failed_by_key_id.entry(id).or_default() += n;
        }
    }

    pub fn progress(&self, phase: RotationPhase) -> RotationProgress {
        RotationProgress {
            phase,
            scanned: self.scanned,
            rewrapped: self.rewrapped,
            already_current: self.already_current,
            failed: self.failed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const K2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    fn ring(text: &str) -> KeyRing {
        KeyRing::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

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

    #[test]
    fn one_value_is_current_resealed_or_unreadable() {
        let old = ring(&format!("k1: {K1}"));
        let both = ring(&format!("primary: k2\nk1: {K1}\nk2: {K2}"));
        let only_new = ring(&format!("k2: {K2}"));
        let aad = aad(b"k", Some(b"f"));
        let under_k1 = old.encrypt(b"v", &aad);
        let under_k2 = both.encrypt(b"v", &aad);

        let mut report = RotationReport::default();
        assert_eq!(reseal(&both, &under_k2, "k", "f"), Reseal::Current);
        let Reseal::Resealed(new) = reseal(&both, &under_k1, "k", "f") else {
            panic!("under k1 is resealed")
        };
        assert_eq!(envelope_key_id(&new), Ok("k2"));
        assert!(only_new.decrypt(&new, &aad).is_ok());
        assert_eq!(
            reseal(&both, &under_k1, "k", "other"),
            Reseal::Unreadable("k1".to_owned()),
            "bound to its address"
        );
        assert_eq!(
            reseal(&only_new, &under_k1, "k", "f"),
            Reseal::Unreadable("k1".to_owned())
        );
        assert_eq!(
            reseal(&both, b"{}", "k", "f"),
            Reseal::Unreadable(NOT_AN_ENVELOPE.to_owned())
        );

        assert!(report.count(Reseal::Current).is_none());
        assert!(report.count(Reseal::Resealed(new)).is_some());
        assert!(report.count(Reseal::Unreadable("k1".into())).is_none());
        report.written_back(1, 0);
        assert_eq!(
            (report.scanned, report.already_current, report.rewrapped),
            (3, 1, 0)
        );
        assert_eq!((report.changed_concurrently, report.failed()), (1, 1));
    }
}
