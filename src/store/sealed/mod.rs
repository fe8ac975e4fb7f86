//! Encryption at rest as a layer of the store: the one place where records become the bytes a
//! backend keeps, and back.
//!
//! # The seam
//!
//! A backend stores opaque bytes at an address of its own (Valkey: a key and a hash field) and
//! asks a [`Sealer`] for them: [`Sealer::seal_token`] / [`Sealer::seal_flow`] turn a record into
//! the bytes to store at that address, [`Sealer::open_token`] / [`Sealer::open_flow`] turn bytes
//! read from it back into the record. The backend never sees a key, an envelope or the
//! plaintext encoding (JSON, in `records.rs`): a new backend gets encryption at rest by storing
//! what it is handed and passing the same address when it reads. What the backend still sees is
//! the opened record (it must, to rank tokens, find expired ones and check a flow's browser
//! binding), and a plaintext hash of the browser binding if it keeps one beside the sealed flow
//! to compare atomically (Valkey does, [`crate::store::BrowserBinding::to_hex`]).
//!
//! Construction: a backend takes a [`Sealing`] (the mode: a fixed ring, a reloadable ring, or
//! plaintext by explicit opt-in) and builds one [`Sealer`] for all its stores, whose counters
//! the wiring exports with [`Sealer::register_metrics`].
//!
//! Sealing is AES-256-GCM ([`crate::crypto`]): the plaintext is the record's JSON, the envelope
//! names the key id that sealed it, and the associated data is [`aad`] of the address, so bytes
//! copied to another address (another session, flow or field) do not open. Opening a value sealed
//! with an older key of the ring yields, beside the record, the same record re-sealed under the
//! primary key ([`Opened::resealed`]); the backend writes it back if the stored bytes are still
//! the ones it read (compare-and-set), and reports the outcome with [`Sealer::resealed`] /
//! [`Sealer::reseal_failed`].
//!
//! Key rotation is the same split: [`reseal`] decides for one stored value (already under the
//! primary key, re-sealed, or unreadable and by which key id) and [`RotationReport`] adds the
//! outcomes up; walking every stored value is the backend's (Valkey: `rotate_all`).
//!
//! Failures are errors naming the value's place and the problem (key id, reason), never any
//! part of the value, and are counted in [`SealStats`] (exported as `mcpoauth_store_*`).

mod records;
mod rotation;
mod stats;

pub use records::RecordError;
pub use rotation::{
    NOT_AN_ENVELOPE, Reseal, RotationPhase, RotationProgress, RotationReport, reseal,
};
pub use stats::{MAX_TRACKED_KEY_IDS, OTHER_KEY_IDS, SealStats, SealStatsSnapshot};

use crate::crypto::{DecryptError, KeyRing, KeyRingHandle, Opened as OpenedEnvelope, aad};
use crate::metrics::Metrics;
use crate::store::{PendingFlow, StoreError, TokenRecord};
use std::sync::Arc;
use zeroize::Zeroizing;

/// How values are protected at rest.
#[derive(Debug, Clone)]
pub enum Sealing {
    /// Sealed with the ring's primary key; older keys of the ring still open values.
    Encrypted(KeyRing),
    /// Like [`Sealing::Encrypted`], with the ring read from a handle on every seal and open, so a
    /// reloaded ring (changed Secret or key file) applies to every later value.
    Reloadable(KeyRingHandle),
    /// Plain JSON. Only for an explicit operator opt-in (`--valkey-allow-plaintext`): tokens and
    /// PKCE verifiers are then readable by anyone who can read the backend.
    Plaintext,
}

/// An opened value, and its bytes re-sealed under the primary key when it was sealed with an
/// older one (the backend writes them back if the stored bytes are still the ones it read).
pub struct Opened<T> {
    pub value: T,
    pub resealed: Option<Vec<u8>>,
}

/// Seals and opens the records of one set of stores, and counts what could not be opened.
/// Cheap to clone (the counters are shared).
#[derive(Debug, Clone)]
pub struct Sealer {
    sealing: Sealing,
    stats: Arc<SealStats>,
}

impl Sealer {
    pub fn new(sealing: Sealing) -> Self {
        Self {
            sealing,
            stats: Arc::new(SealStats::new()),
        }
    }

    /// Counters of unreadable and re-sealed values.
    pub fn stats(&self) -> &Arc<SealStats> {
        &self.stats
    }

    /// Export the counters through `metrics` (once per set of stores).
    pub fn register_metrics(&self, metrics: &Metrics) {
        stats::register(&self.stats, metrics);
    }

    /// The bytes to store for `record` at backend address `key` / `field`.
    pub fn seal_token(&self, record: &TokenRecord, key: &str, field: &str) -> Vec<u8> {
        self.seal(&records::encode_token(record), key, field)
    }

    /// The bytes to store for `flow` at backend address `key` / `field`.
    pub fn seal_flow(&self, flow: &PendingFlow, key: &str, field: &str) -> Vec<u8> {
        self.seal(&records::encode_flow(flow), key, field)
    }

    /// The token record in `stored`, read from `key` / `field`. `place` describes the value for
    /// error messages (e.g. "token entry of session 1234abcd… for https://idp …").
    pub fn open_token(
        &self,
        stored: &[u8],
        key: &str,
        field: &str,
        place: &dyn Fn() -> String,
    ) -> Result<Opened<TokenRecord>, StoreError> {
        self.open(stored, key, field, place, records::decode_token)
    }

    /// The flow in `stored`, read from `key` / `field`; see [`Self::open_token`].
    pub fn open_flow(
        &self,
        stored: &[u8],
        key: &str,
        field: &str,
        place: &dyn Fn() -> String,
    ) -> Result<Opened<PendingFlow>, StoreError> {
        self.open(stored, key, field, place, records::decode_flow)
    }

    /// `n` re-sealed values were written back by the backend.
    pub fn resealed(&self, n: u64) {
        self.stats.add_rewrapped(n);
    }

    /// A write-back of re-sealed values failed (the rotation sweep will catch them).
    pub fn reseal_failed(&self) {
        self.stats.rewrap_failed();
    }

    fn seal(&self, plaintext: &[u8], key: &str, field: &str) -> Vec<u8> {
        match &self.sealing {
            Sealing::Encrypted(ring) => {
                ring.encrypt(plaintext, &aad(key.as_bytes(), Some(field.as_bytes())))
            }
            Sealing::Reloadable(handle) => handle
                .with(|ring| ring.encrypt(plaintext, &aad(key.as_bytes(), Some(field.as_bytes())))),
            Sealing::Plaintext => plaintext.to_vec(),
        }
    }

    /// Opens an envelope with the fixed or current ring; `None` in plaintext mode.
    fn decrypt(&self, stored: &[u8], aad: &[u8]) -> Option<Result<OpenedEnvelope, DecryptError>> {
        match &self.sealing {
            Sealing::Encrypted(ring) => Some(ring.decrypt(stored, aad)),
            Sealing::Reloadable(handle) => Some(handle.with(|ring| ring.decrypt(stored, aad))),
            Sealing::Plaintext => None,
        }
    }

    fn open<T>(
        &self,
        stored: &[u8],
        key: &str,
        field: &str,
        place: &dyn Fn() -> String,
        parse: impl FnOnce(&[u8]) -> Result<T, RecordError>,
    ) -> Result<Opened<T>, StoreError> {
        let aad = aad(key.as_bytes(), Some(field.as_bytes()));
        let (plaintext, reseal) = match self.decrypt(stored, &aad) {
            None => (Zeroizing::new(stored.to_vec()), false),
            Some(Ok(opened)) => (opened.plaintext, opened.needs_rewrap),
            Some(Err(e)) => {
                let unknown = match &e {
                    DecryptError::UnknownKeyId(id) => Some(id.as_str()),
                    _ => None,
                };
                self.stats.decrypt_failed(e.reason(), unknown);
                return Err(StoreError::Decrypt {
                    place: place(),
                    source: e,
                    hint: plaintext_hint(stored),
                });
            }
        };
        let value = parse(&plaintext).map_err(|e| {
            self.stats.corrupt_value();
            let hint = match self.sealing {
                Sealing::Plaintext if looks_sealed(stored) => {
                    " (it looks encrypted: was it written with encryption enabled?)"
                }
                _ => "",
            };
            StoreError::Corrupt {
                place: place(),
                source: Some(e),
                hint,
            }
        })?;
        let resealed = reseal.then(|| self.seal(&plaintext, key, field));
        Ok(Opened { value, resealed })
    }
}

/// Said when an encrypted store meets a plain JSON value: plaintext is never accepted in
/// encrypted mode (it would let anyone with write access to the backend plant values).
fn plaintext_hint(stored: &[u8]) -> &'static str {
    if stored.first() == Some(&b'{') {
        " (the value looks like plain JSON: was it written with --valkey-allow-plaintext?)"
    } else {
        ""
    }
}

/// Envelopes start with their version byte 0x01, which JSON never does.
fn looks_sealed(stored: &[u8]) -> bool {
    stored.first() == Some(&0x01)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::{ExposeSecret as _, SecretString};

    const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const K2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    fn ring(text: &str) -> KeyRing {
        KeyRing::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn record() -> TokenRecord {
        TokenRecord {
            access_token: SecretString::from("access-secret"),
            token_type: "Bearer".into(),
            refresh_token: None,
            expires_at: None,
            granted_scope: None,
            issuer: "https://idp".into(),
            client_id: "c".into(),
            user: "alice".into(),
            obtained_at: 1,
        }
    }

    fn open(
        sealer: &Sealer,
        stored: &[u8],
        key: &str,
        field: &str,
    ) -> Result<Opened<TokenRecord>, StoreError> {
        sealer.open_token(stored, key, field, &|| "entry".to_owned())
    }

    fn message(err: Option<StoreError>) -> String {
        err.map(|e| e.to_string()).unwrap_or_default()
    }

    fn sealer(text: &str) -> Sealer {
        Sealer::new(Sealing::Encrypted(ring(text)))
    }

    #[test]
    fn sealed_values_open_only_at_their_place() {
        let sealer = sealer(K1);
        let sealed = sealer.seal_token(&record(), "k", "f");
        assert!(!sealed.windows(13).any(|w| w == b"access-secret"));
        let back = open(&sealer, &sealed, "k", "f").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.value.access_token.expose_secret(), "access-secret");
        assert!(back.resealed.is_none());
        for (key, field) in [("k2", "f"), ("k", "f2")] {
            let err = open(&sealer, &sealed, key, field).err();
            assert!(
                matches!(err, Some(StoreError::Decrypt { .. })),
                "{key}/{field}"
            );
        }
        assert_eq!(
            sealer
                .stats()
                .snapshot()
                .decrypt_failures
                .get("authentication"),
            Some(&2)
        );
    }

    #[test]
    fn older_keys_open_and_are_resealed() {
        let old = sealer(&format!("k1: {K1}"));
        let both = sealer(&format!("primary: k2\nk1: {K1}\nk2: {K2}"));
        let only_new = sealer(&format!("k2: {K2}"));
        let sealed = old.seal_token(&record(), "k", "f");
        let err = open(&only_new, &sealed, "k", "f").err();
        assert!(
            matches!(
                &err,
                Some(StoreError::Decrypt { source: DecryptError::UnknownKeyId(id), .. }) if id == "k1"
            ),
            "{err:?}"
        );
        let msg = message(err);
        assert!(msg.contains("\"k1\""), "names the missing key id: {msg}");
        assert!(
            msg.starts_with("stored value cannot be decrypted: entry: "),
            "{msg}"
        );
        assert_eq!(
            only_new.stats().snapshot().unknown_key_ids.get("k1"),
            Some(&1)
        );
        let decoded = open(&both, &sealed, "k", "f").unwrap_or_else(|e| panic!("{e}"));
        let resealed = decoded.resealed.unwrap_or_else(|| panic!("must reseal"));
        let again = open(&only_new, &resealed, "k", "f").unwrap_or_else(|e| panic!("{e}"));
        assert!(again.resealed.is_none());
    }

    #[test]
    fn a_reloadable_sealer_follows_the_handle() {
        let handle = KeyRingHandle::new(ring(&format!("k1: {K1}")));
        let sealer = Sealer::new(Sealing::Reloadable(handle.clone()));
        let under_k1 = sealer.seal_token(&record(), "k", "f");
        assert_eq!(crate::crypto::envelope_key_id(&under_k1), Ok("k1"));

        handle.replace(ring(&format!("primary: k2\nk1: {K1}\nk2: {K2}")));
        let decoded = open(&sealer, &under_k1, "k", "f").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decoded.value.user, "alice");
        let resealed = decoded.resealed.unwrap_or_else(|| panic!("must reseal"));
        assert_eq!(crate::crypto::envelope_key_id(&resealed), Ok("k2"));
        let under_k2 = sealer.seal_token(&record(), "k", "f");
        assert_eq!(crate::crypto::envelope_key_id(&under_k2), Ok("k2"));

        // Dropping k1 makes values still under it unreadable, reported by id.
        handle.replace(ring(&format!("k2: {K2}")));
        let msg = message(open(&sealer, &under_k1, "k", "f").err());
        assert!(
            msg.contains("cannot be decrypted") && msg.contains("\"k1\""),
            "{msg}"
        );
        assert!(open(&sealer, &under_k2, "k", "f").is_ok());
    }

    #[test]
    fn plaintext_and_encrypted_modes_do_not_mix() {
        let enc = sealer(K1);
        let plaintext = Sealer::new(Sealing::Plaintext);
        let plain = plaintext.seal_token(&record(), "k", "f");
        let err = open(&enc, &plain, "k", "f").err();
        assert!(matches!(err, Some(StoreError::Decrypt { .. })), "{err:?}");
        assert!(message(err).contains("plain JSON"));
        let sealed = enc.seal_token(&record(), "k", "f");
        let err = open(&plaintext, &sealed, "k", "f").err();
        assert!(matches!(err, Some(StoreError::Corrupt { .. })), "{err:?}");
        assert!(message(err).contains("looks encrypted"));
        let ok = open(&plaintext, &plain, "k", "f");
        assert!(ok.is_ok_and(|d| d.value.user == "alice"));
    }

    #[test]
    fn valid_envelope_with_non_json_plaintext_is_corrupt() {
        let sealer = sealer(K1);
        let sealed = sealer.seal(b"not json at all", "k", "f");
        let err = open(&sealer, &sealed, "k", "f").err();
        assert!(
            matches!(
                &err,
                Some(StoreError::Corrupt {
                    source: Some(_),
                    ..
                })
            ),
            "{err:?}"
        );
        let msg = message(err);
        assert!(
            msg.starts_with(
                "stored value is corrupt: entry: decrypted value is not a valid token record"
            ),
            "{msg}"
        );
        assert_eq!(sealer.stats().snapshot().corrupt, 1);
    }
}
