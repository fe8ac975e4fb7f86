//! The key ring: one primary key that seals new values and any number of older keys that still
//! open values sealed before a rotation.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit};
use rand::RngCore;
use zeroize::Zeroizing;

use super::envelope::{self, NONCE_LEN, TAG_LEN};
use super::error::{DecryptError, KeyRingError};

/// Length of an AES-256 key.
pub(crate) const KEY_LEN: usize = 32;

/// Encryption keys by id, one of them primary. Cheap to clone (shared). Key material lives only
/// inside the AES key schedules, which wipe themselves on drop (the `aes` crate's `zeroize`
/// feature); `Debug` shows key ids only.
#[derive(Clone)]
pub struct KeyRing {
    inner: Arc<Inner>,
}

struct Inner {
    primary: Key,
    /// Sorted by id; never contains the primary.
    older: Vec<Key>,
}

struct Key {
    id: String,
    /// Envelope header for this key, precomputed: it is also part of the associated data.
    header: Vec<u8>,
    cipher: Aes256Gcm,
    /// Key check value (a domain-separated SHA-256 of the key), so a reload can tell whether a
    /// key id now holds other key bytes without keeping the bytes. Never logged.
    check: [u8; 32],
}

/// A successfully opened value.
pub struct Opened {
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The key that sealed it.
    pub key_id: String,
    /// Sealed with a key other than the primary: the store should write it back re-encrypted.
    pub needs_rewrap: bool,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field(
                "plaintext",
                &format_args!("<{} bytes>", self.plaintext.len()),
            )
            .field("key_id", &self.key_id)
            .field("needs_rewrap", &self.needs_rewrap)
            .finish()
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("primary", &self.primary_id())
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

impl KeyRing {
    /// Builds a ring from validated ids and decoded keys. Rejects a wrong key length, a
    /// duplicate id and a primary that is not among the keys; id syntax is checked by the caller.
    pub(crate) fn from_keys(
        primary: &str,
        keys: Vec<(String, Zeroizing<Vec<u8>>)>,
    ) -> Result<KeyRing, KeyRingError> {
        let mut primary_key = None;
        let mut older: Vec<Key> = Vec::with_capacity(keys.len());
        for (id, bytes) in keys {
            if bytes.len() != KEY_LEN {
                return Err(KeyRingError::WrongLength {
                    id,
                    len: bytes.len(),
                });
            }
            let cipher =
                Aes256Gcm::new_from_slice(&bytes).map_err(|_| KeyRingError::WrongLength {
                    id: id.clone(),
                    len: bytes.len(),
                })?;
            let duplicate = primary_key.as_ref().is_some_and(|k: &Key| k.id == id)
                || older.iter().any(|k| k.id == id);
            if duplicate {
                return Err(KeyRingError::Duplicate { id });
            }
            let key = Key {
                header: envelope::header(&id),
                check: key_check(&bytes),
                id,
                cipher,
            };
            if key.id == primary {
                primary_key = Some(key);
            } else {
                older.push(key);
            }
        }
        let primary = primary_key.ok_or_else(|| KeyRingError::PrimaryNotFound {
            id: primary.to_owned(),
        })?;
        older.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(KeyRing {
            inner: Arc::new(Inner { primary, older }),
        })
    }

    /// Id of the key that seals new values.
    pub fn primary_id(&self) -> &str {
        &self.inner.primary.id
    }

    /// Every key id in the ring, sorted.
    pub fn key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::iter::once(&self.inner.primary)
            .chain(&self.inner.older)
            .map(|k| k.id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Whether `other` holds exactly the same keys under the same ids with the same primary: a
    /// reload that changes nothing is then not a new ring.
    pub fn same_keys(&self, other: &KeyRing) -> bool {
        fn keys(r: &KeyRing) -> Vec<(&str, &[u8; 32])> {
            let mut all: Vec<(&str, &[u8; 32])> = std::iter::once(&r.inner.primary)
                .chain(&r.inner.older)
                .map(|k| (k.id.as_str(), &k.check))
                .collect();
            all.sort();
            all
        }
        self.primary_id() == other.primary_id() && keys(self) == keys(other)
    }

    /// Whether the ring can open values sealed with `id`.
    pub fn contains(&self, id: &str) -> bool {
        self.find(id).is_some()
    }

    fn find(&self, id: &str) -> Option<&Key> {
        if self.inner.primary.id == id {
            return Some(&self.inner.primary);
        }
        self.inner
            .older
            .binary_search_by(|k| k.id.as_str().cmp(id))
            .ok()
            .and_then(|i| self.inner.older.get(i))
    }

    /// Seals `plaintext` under the primary key with a fresh random 96-bit nonce, binding `aad`
    /// (use [`crate::crypto::aad`] of the Valkey key and field).
    ///
    /// # Panics
    ///
    /// Only if `plaintext` or `aad` exceeds AES-GCM's limit of 64 GiB, which no stored value comes
    /// near; returning a value that could never be opened would lose data silently instead.
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let key = &self.inner.primary;
        // ThreadRng is a CSPRNG seeded from the OS; 96-bit random nonces are safe for far more
        // values per key than a token store holds between rotations.
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);

        let mut out = Vec::with_capacity(key.header.len() + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&key.header);
        out.extend_from_slice(&nonce);
        let body_start = out.len();
        out.extend_from_slice(plaintext);
        let gcm_aad = envelope::gcm_aad(&key.header, aad);
        let sealed = out.split_at_mut_checked(body_start).map(|(_, body)| {
            key.cipher
                .encrypt_in_place_detached(&nonce.into(), &gcm_aad, body)
        });
        match sealed {
            Some(Ok(tag)) => out.extend_from_slice(&tag),
            _ => panic!("AES-GCM refused to seal a value larger than 64 GiB"),
        }
        out
    }

    /// Opens an envelope sealed by any key in the ring with the same `aad`.
    pub fn decrypt(&self, envelope: &[u8], aad: &[u8]) -> Result<Opened, DecryptError> {
        let parts = envelope::parse(envelope)?;
        let key = self
            .find(parts.key_id)
            .ok_or_else(|| DecryptError::UnknownKeyId(parts.key_id.to_owned()))?;
        let gcm_aad = envelope::gcm_aad(parts.header, aad);
        let mut plaintext = Zeroizing::new(parts.ciphertext.to_vec());
        key.cipher
            .decrypt_in_place_detached(
                &(*parts.nonce).into(),
                &gcm_aad,
                &mut plaintext,
                &(*parts.tag).into(),
            )
            .map_err(|_| DecryptError::Authentication)?;
        Ok(Opened {
            plaintext,
            key_id: key.id.clone(),
            needs_rewrap: key.id != self.inner.primary.id,
        })
    }
}

/// Domain-separated digest of a key, compared between reloads (see [`Key::check`]).
fn key_check(key: &[u8]) -> [u8; 32] {
    use sha2::{Digest as _, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(b"mcp-oauth-operator key check v1\0");
    hasher.update(key);
    hasher.finalize().into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use crate::crypto::{aad, envelope_key_id};
    use base64::Engine;
    use proptest::prelude::*;

    /// Key bytes for test key `n`: distinct per `n`.
    pub(crate) fn key_bytes(n: u8) -> [u8; KEY_LEN] {
        std::array::from_fn(|i| n.wrapping_mul(31).wrapping_add(i as u8))
    }

    /// A ring of `ids` (key `i` from `key_bytes(seed of id)`) with `primary`.
    pub(crate) fn ring(primary: &str, ids: &[(&str, u8)]) -> KeyRing {
        let keys = ids
            .iter()
            .map(|(id, n)| ((*id).to_owned(), Zeroizing::new(key_bytes(*n).to_vec())))
            .collect();
        KeyRing::from_keys(primary, keys).unwrap()
    }

    fn at(key: &str, field: &str) -> Vec<u8> {
        aad(key.as_bytes(), Some(field.as_bytes()))
    }

    #[test]
    fn round_trip_under_the_primary() {
        let ring = ring("k1", &[("k1", 1)]);
        let aad = at("mcpoauth:oauth:token:s1", "https://idp|openid");
        let envelope = ring.encrypt(b"secret token", &aad);
        let opened = ring.decrypt(&envelope, &aad).unwrap();
        assert_eq!(opened.plaintext.as_slice(), b"secret token");
        assert_eq!(opened.key_id, "k1");
        assert!(!opened.needs_rewrap);
        assert_eq!(envelope[0], 0x01);
        assert_eq!(envelope_key_id(&envelope), Ok("k1"));
        assert!(
            !envelope
                .windows(b"secret token".len())
                .any(|w| w == b"secret token")
        );
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let ring = ring("k1", &[("k1", 1)]);
        let envelope = ring.encrypt(b"", b"ctx");
        assert_eq!(envelope.len(), 2 + 2 + NONCE_LEN + TAG_LEN);
        assert!(
            ring.decrypt(&envelope, b"ctx")
                .unwrap()
                .plaintext
                .is_empty()
        );
    }

    #[test]
    fn a_value_moved_elsewhere_does_not_open() {
        let ring = ring("k1", &[("k1", 1)]);
        let envelope = ring.encrypt(b"v", &at("token:s1", "iss|scope"));
        for wrong in [
            at("token:s2", "iss|scope"),
            at("token:s1", "iss|other"),
            at("iss|scope", "token:s1"),
            aad(b"token:s1", None),
            Vec::new(),
        ] {
            assert_eq!(
                ring.decrypt(&envelope, &wrong).unwrap_err(),
                DecryptError::Authentication
            );
        }
    }

    #[test]
    fn tampering_with_any_byte_is_detected() {
        let ring = ring("k1", &[("k1", 1), ("k2", 2)]);
        let envelope = ring.encrypt(b"some plaintext", b"ctx");
        for i in 0..envelope.len() {
            for flip in [0x01u8, 0x80] {
                let mut tampered = envelope.clone();
                tampered[i] ^= flip;
                assert!(
                    ring.decrypt(&tampered, b"ctx").is_err(),
                    "flipping {flip:#x} at byte {i} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn relabelling_with_another_key_id_fails() {
        // Same key bytes under two ids: the header is authenticated, so a swapped id still fails.
        let ring = ring("ka", &[("ka", 1), ("kb", 1)]);
        let mut envelope = ring.encrypt(b"v", b"ctx");
        envelope[3] = b'b';
        assert_eq!(envelope_key_id(&envelope), Ok("kb"));
        assert_eq!(
            ring.decrypt(&envelope, b"ctx").unwrap_err(),
            DecryptError::Authentication
        );
    }

    #[test]
    fn every_truncation_fails_cleanly() {
        let ring = ring("k1", &[("k1", 1)]);
        let envelope = ring.encrypt(b"0123456789", b"ctx");
        let minimum = 2 + 2 + NONCE_LEN + TAG_LEN;
        for len in 0..envelope.len() {
            let err = ring.decrypt(&envelope[..len], b"ctx").unwrap_err();
            let expected = if len < minimum {
                DecryptError::Truncated
            } else {
                DecryptError::Authentication
            };
            assert_eq!(err, expected, "length {len}");
        }
    }

    #[test]
    fn unknown_version_is_reported() {
        let ring = ring("k1", &[("k1", 1)]);
        let mut envelope = ring.encrypt(b"v", b"ctx");
        envelope[0] = 0x02;
        let err = ring.decrypt(&envelope, b"ctx").unwrap_err();
        assert_eq!(err, DecryptError::UnknownVersion(2));
        assert_eq!(err.reason(), "unknown_version");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let ring = ring("k1", &[("k1", 1)]);
        for garbage in [
            &b""[..],
            b"{\"access_token\":\"x\"}",
            b"AAECAwQ=",
            &[0x01; 40],
            &[0x01, 0xff, 0x00],
        ] {
            assert!(ring.decrypt(garbage, b"ctx").is_err());
        }
    }

    #[test]
    fn unknown_key_id_is_reported_with_the_id() {
        let old = ring("gone", &[("gone", 1)]);
        let current = ring("k2", &[("k2", 2)]);
        let envelope = old.encrypt(b"v", b"ctx");
        let err = current.decrypt(&envelope, b"ctx").unwrap_err();
        assert_eq!(err, DecryptError::UnknownKeyId("gone".into()));
        assert_eq!(err.reason(), "unknown_key_id");
        assert!(err.to_string().contains("gone"));
        assert_eq!(envelope_key_id(&envelope), Ok("gone"));
    }

    #[test]
    fn needs_rewrap_only_for_older_keys() {
        let old = ring("k1", &[("k1", 1)]).encrypt(b"v", b"ctx");
        let current = ring("k2", &[("k1", 1), ("k2", 2)]);
        assert!(current.decrypt(&old, b"ctx").unwrap().needs_rewrap);
        let new = current.encrypt(b"v", b"ctx");
        assert_eq!(envelope_key_id(&new), Ok("k2"));
        assert!(!current.decrypt(&new, b"ctx").unwrap().needs_rewrap);
    }

    #[test]
    fn rotation_loses_nothing() {
        let ctx = at("mcpoauth:oauth:token:s1", "iss|scope");
        let ring1 = ring("k1", &[("k1", 1)]);
        let ring2 = ring("k2", &[("k1", 1), ("k2", 2)]);
        let ring3 = ring("k2", &[("k2", 2)]);

        let read_back = ring1.encrypt(b"token A", &ctx);
        let untouched = ring1.encrypt(b"token B", &ctx);

        // After adding k2 as primary, old values still open and are re-sealed under k2 on read.
        let opened = ring2.decrypt(&read_back, &ctx).unwrap();
        assert_eq!(opened.plaintext.as_slice(), b"token A");
        assert_eq!(opened.key_id, "k1");
        assert!(opened.needs_rewrap);
        let rewrapped = ring2.encrypt(&opened.plaintext, &ctx);
        assert_eq!(envelope_key_id(&rewrapped), Ok("k2"));
        assert!(!ring2.decrypt(&rewrapped, &ctx).unwrap().needs_rewrap);

        // After k1 is removed, the re-sealed value opens; one never re-sealed is reported by id.
        assert_eq!(
            ring3
                .decrypt(&rewrapped, &ctx)
                .unwrap()
                .plaintext
                .as_slice(),
            b"token A"
        );
        assert_eq!(
            ring3.decrypt(&untouched, &ctx).unwrap_err(),
            DecryptError::UnknownKeyId("k1".into())
        );
    }

    #[test]
    fn nonces_differ_across_encryptions() {
        let ring = ring("k1", &[("k1", 1)]);
        let nonces: std::collections::HashSet<Vec<u8>> = (0..64)
            .map(|_| {
                let envelope = ring.encrypt(b"same", b"ctx");
                envelope[4..4 + NONCE_LEN].to_vec()
            })
            .collect();
        assert_eq!(nonces.len(), 64);
    }

    #[test]
    fn a_different_key_with_the_same_id_fails_authentication() {
        let a = ring("k1", &[("k1", 1)]);
        let b = ring("k1", &[("k1", 2)]);
        let envelope = a.encrypt(b"v", b"ctx");
        assert_eq!(
            b.decrypt(&envelope, b"ctx").unwrap_err(),
            DecryptError::Authentication
        );
    }

    #[test]
    fn same_keys_compares_ids_primary_and_key_bytes() {
        let a = ring("k2", &[("k1", 1), ("k2", 2)]);
        assert!(a.same_keys(&ring("k2", &[("k2", 2), ("k1", 1)])));
        assert!(
            !a.same_keys(&ring("k1", &[("k1", 1), ("k2", 2)])),
            "other primary"
        );
        assert!(
            !a.same_keys(&ring("k2", &[("k1", 1), ("k2", 3)])),
            "other key bytes"
        );
        assert!(!a.same_keys(&ring("k2", &[("k2", 2)])), "fewer keys");
        assert!(
            !a.same_keys(&ring("k2", &[("k1", 1), ("k2", 2), ("k3", 3)])),
            "more keys"
        );
    }

    #[test]
    fn accessors_report_ids() {
        let ring = ring("b", &[("c", 3), ("b", 2), ("a", 1)]);
        assert_eq!(ring.primary_id(), "b");
        assert_eq!(ring.key_ids(), ["a", "b", "c"]);
        assert!(ring.contains("a") && ring.contains("b") && ring.contains("c"));
        assert!(!ring.contains("d"));
    }

    #[test]
    fn from_keys_rejects_bad_rings() {
        let key = || Zeroizing::new(key_bytes(1).to_vec());
        assert!(matches!(
            KeyRing::from_keys("k1", vec![("k1".into(), key()), ("k1".into(), key())]),
            Err(KeyRingError::Duplicate { id }) if id == "k1"
        ));
        assert!(matches!(
            KeyRing::from_keys("k9", vec![("k1".into(), key())]),
            Err(KeyRingError::PrimaryNotFound { id }) if id == "k9"
        ));
        assert!(matches!(
            KeyRing::from_keys("k1", vec![("k1".into(), Zeroizing::new(vec![0; 16]))]),
            Err(KeyRingError::WrongLength { id, len: 16 }) if id == "k1"
        ));
    }

    #[test]
    fn debug_shows_ids_but_no_key_material() {
        let ring = ring("k2", &[("k1", 1), ("k2", 2)]);
        let debug = format!("{ring:?}");
        assert!(debug.contains("k1") && debug.contains("k2"), "{debug}");
        for n in [1u8, 2] {
            let bytes = key_bytes(n);
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let dec = format!("{:?}", bytes);
            assert!(!debug.contains(&b64), "{debug}");
            assert!(!debug.to_lowercase().contains(&hex), "{debug}");
            assert!(!debug.contains(&dec[1..dec.len() - 1]), "{debug}");
        }
    }

    #[test]
    fn debug_of_opened_hides_the_plaintext() {
        let ring = ring("k1", &[("k1", 1)]);
        let opened = ring.decrypt(&ring.encrypt(b"hunter2", b""), b"").unwrap();
        let debug = format!("{opened:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("104, 117"),
            "{debug}"
        );
        assert!(debug.contains("7 bytes"), "{debug}");
    }

    #[test]
    fn aes_round_keys_are_wiped_on_drop() {
        // Compile-time check that the `zeroize` feature of `aes` is on: without it the AES-256
        // key schedule (whose first two round keys are the key itself) outlives the ring.
        fn assert_zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        assert_zeroize_on_drop::<aes::Aes256>();
    }

    proptest! {
        #[test]
        fn prop_round_trip(plaintext in proptest::collection::vec(any::<u8>(), 0..512),
                           aad in proptest::collection::vec(any::<u8>(), 0..128)) {
            let ring = ring("k1", &[("k1", 1)]);
            let opened = ring.decrypt(&ring.encrypt(&plaintext, &aad), &aad).unwrap();
            prop_assert_eq!(opened.plaintext.as_slice(), plaintext.as_slice());
        }

        #[test]
        fn prop_other_aad_never_opens(plaintext in proptest::collection::vec(any::<u8>(), 0..256),
                                      aad in proptest::collection::vec(any::<u8>(), 0..64),
                                      other in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assume!(aad != other);
            let ring = ring("k1", &[("k1", 1)]);
            let envelope = ring.encrypt(&plaintext, &aad);
            prop_assert_eq!(ring.decrypt(&envelope, &other).unwrap_err(), DecryptError::Authentication);
        }

        #[test]
        fn prop_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            let ring = ring("k1", &[("k1", 1)]);
            prop_assert!(ring.decrypt(&bytes, b"ctx").is_err());
        }
    }
}
