//! Stored value ⇄ record: JSON ([`super::records`]) sealed in an AES-256-GCM envelope
//! ([`crate::crypto`]) whose associated data is the Valkey key and field, so a value copied to
//! another session, flow or field does not open.
//!
//! Failures are errors naming the value's place and the problem (key id, reason), never any
//! part of the value, and are counted in [`ValkeyStoreStats`].

use super::records::RecordError;
use super::stats::ValkeyStoreStats;
use crate::crypto::{DecryptError, KeyRing, KeyRingHandle, Opened, aad};
use crate::store::StoreError;
use zeroize::Zeroizing;

/// How values are protected at rest.
#[derive(Debug, Clone)]
pub enum Codec {
    /// Sealed with the ring's primary key; older keys of the ring still open values.
    Encrypted(KeyRing),
    /// Like [`Codec::Encrypted`], with the ring read from a handle on every seal and open, so a
    /// reloaded ring (changed Secret or key file) applies to every later value.
    Reloadable(KeyRingHandle),
    /// Plain JSON. Only for an explicit operator opt-in (`--valkey-allow-plaintext`): tokens and
    /// PKCE verifiers are then readable by anyone who can read Valkey.
    Plaintext,
}

/// A decoded value, and its re-encryption under the primary key when it was sealed with an
/// older one (the caller writes it back if the stored bytes are still the ones it read).
pub struct Decoded<T> {
    pub value: T,
    pub rewrapped: Option<Vec<u8>>,
}

impl Codec {
    /// The bytes to store for `plaintext` at Valkey `key` / hash `field`.
    pub fn seal(&self, plaintext: &[u8], key: &str, field: &str) -> Vec<u8> {
        match self {
            Self::Encrypted(ring) => {
                ring.encrypt(plaintext, &aad(key.as_bytes(), Some(field.as_bytes())))
            }
            Self::Reloadable(handle) => handle
                .with(|ring| ring.encrypt(plaintext, &aad(key.as_bytes(), Some(field.as_bytes())))),
            Self::Plaintext => plaintext.to_vec(),
        }
    }

    /// Opens an envelope with the fixed or current ring; `None` in plaintext mode.
    fn decrypt(&self, stored: &[u8], aad: &[u8]) -> Option<Result<Opened, DecryptError>> {
        match self {
            Self::Encrypted(ring) => Some(ring.decrypt(stored, aad)),
            Self::Reloadable(handle) => Some(handle.with(|ring| ring.decrypt(stored, aad))),
            Self::Plaintext => None,
        }
    }

    /// Open and parse `stored`, read from `key` / `field`. `place` describes the value for error
    /// messages (e.g. "token entry of session 1234abcd… for https://idp …").
    pub fn open<T>(
        &self,
        stats: &ValkeyStoreStats,
        stored: &[u8],
        key: &str,
        field: &str,
        place: &dyn Fn() -> String,
        parse: impl FnOnce(&[u8]) -> Result<T, RecordError>,
    ) -> Result<Decoded<T>, StoreError> {
        let aad = aad(key.as_bytes(), Some(field.as_bytes()));
        let (plaintext, rewrap) = match self.decrypt(stored, &aad) {
            None => (Zeroizing::new(stored.to_vec()), false),
            Some(Ok(opened)) => (opened.plaintext, opened.needs_rewrap),
            Some(Err(e)) => {
                let unknown = match &e {
                    DecryptError::UnknownKeyId(id) => Some(id.as_str()),
                    _ => None,
                };
                stats.decrypt_failed(e.reason(), unknown);
                return Err(StoreError::Decrypt(format!(
                    "{}: {e}{}",
                    place(),
                    plaintext_hint(stored)
                )));
            }
        };
        let value = parse(&plaintext).map_err(|e| {
            stats.corrupt_value();
            let hint = match self {
                Self::Plaintext if looks_sealed(stored) => {
                    " (it looks encrypted: was it written with encryption enabled?)"
                }
                _ => "",
            };
            StoreError::Corrupt(format!("{}: {e}{hint}", place()))
        })?;
        let rewrapped = rewrap.then(|| self.seal(&plaintext, key, field));
        Ok(Decoded { value, rewrapped })
    }
}

/// Said when an encrypted store meets a plain JSON value: plaintext is never accepted in
/// encrypted mode (it would let anyone with write access to Valkey plant values).
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
    use crate::store::TokenRecord;
    use crate::store::valkey::records::{decode_token, encode_token};
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
        codec: &Codec,
        stats: &ValkeyStoreStats,
        stored: &[u8],
        key: &str,
        field: &str,
    ) -> Result<Decoded<TokenRecord>, StoreError> {
        codec.open(
            stats,
            stored,
            key,
            field,
            &|| "entry".to_owned(),
            decode_token,
        )
    }

    #[test]
    fn sealed_values_open_only_at_their_place() {
        let codec = Codec::Encrypted(ring(K1));
        let stats = ValkeyStoreStats::new();
        let sealed = codec.seal(&encode_token(&record()), "k", "f");
        assert!(!sealed.windows(13).any(|w| w == b"access-secret"));
        let back = open(&codec, &stats, &sealed, "k", "f").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.value.access_token.expose_secret(), "access-secret");
        assert!(back.rewrapped.is_none());
        for (key, field) in [("k2", "f"), ("k", "f2")] {
            let err = open(&codec, &stats, &sealed, key, field).err();
            assert!(matches!(err, Some(StoreError::Decrypt(_))), "{key}/{field}");
        }
        assert_eq!(
            stats.snapshot().decrypt_failures.get("authentication"),
            Some(&2)
        );
    }

    #[test]
    fn older_keys_open_and_are_rewrapped() {
        let old = Codec::Encrypted(ring(&format!("k1: {K1}")));
        let both = Codec::Encrypted(ring(&format!("primary: k2\nk1: {K1}\nk2: {K2}")));
        let only_new = Codec::Encrypted(ring(&format!("k2: {K2}")));
        let stats = ValkeyStoreStats::new();
        let sealed = old.seal(&encode_token(&record()), "k", "f");
        let err = open(&only_new, &stats, &sealed, "k", "f").err();
        let msg = match err {
            Some(StoreError::Decrypt(m)) => m,
            other => panic!("expected a decrypt error, got {other:?}"),
        };
        assert!(msg.contains("\"k1\""), "names the missing key id: {msg}");
        assert_eq!(stats.snapshot().unknown_key_ids.get("k1"), Some(&1));
        let decoded = open(&both, &stats, &sealed, "k", "f").unwrap_or_else(|e| panic!("{e}"));
        let rewrapped = decoded.rewrapped.unwrap_or_else(|| panic!("must rewrap"));
        let again = open(&only_new, &stats, &rewrapped, "k", "f").unwrap_or_else(|e| panic!("{e}"));
        assert!(again.rewrapped.is_none());
    }

    #[test]
    fn a_reloadable_codec_follows_the_handle() {
        let handle = KeyRingHandle::new(ring(&format!("k1: {K1}")));
        let codec = Codec::Reloadable(handle.clone());
        let stats = ValkeyStoreStats::new();
        let under_k1 = codec.seal(&encode_token(&record()), "k", "f");
        assert_eq!(crate::crypto::envelope_key_id(&under_k1), Ok("k1"));

        handle.replace(ring(&format!("primary: k2\nk1: {K1}\nk2: {K2}")));
        let decoded = open(&codec, &stats, &under_k1, "k", "f").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decoded.value.user, "alice");
        let rewrapped = decoded.rewrapped.unwrap_or_else(|| panic!("must rewrap"));
        assert_eq!(crate::crypto::envelope_key_id(&rewrapped), Ok("k2"));
        let under_k2 = codec.seal(&encode_token(&record()), "k", "f");
        assert_eq!(crate::crypto::envelope_key_id(&under_k2), Ok("k2"));

        // Dropping k1 makes values still under it unreadable, reported by id.
        handle.replace(ring(&format!("k2: {K2}")));
        let err = open(&codec, &stats, &under_k1, "k", "f").err();
        assert!(
            matches!(&err, Some(StoreError::Decrypt(m)) if m.contains("\"k1\"")),
            "{err:?}"
        );
        assert!(open(&codec, &stats, &under_k2, "k", "f").is_ok());
    }

    #[test]
    fn plaintext_and_encrypted_modes_do_not_mix() {
        let enc = Codec::Encrypted(ring(K1));
        let stats = ValkeyStoreStats::new();
        let plain = Codec::Plaintext.seal(&encode_token(&record()), "k", "f");
        let err = open(&enc, &stats, &plain, "k", "f").err();
        assert!(
            matches!(&err, Some(StoreError::Decrypt(m)) if m.contains("plain JSON")),
            "{err:?}"
        );
        let sealed = enc.seal(&encode_token(&record()), "k", "f");
        let err = open(&Codec::Plaintext, &stats, &sealed, "k", "f").err();
        assert!(
            matches!(&err, Some(StoreError::Corrupt(m)) if m.contains("looks encrypted")),
            "{err:?}"
        );
        let ok = open(&Codec::Plaintext, &stats, &plain, "k", "f");
        assert!(ok.is_ok_and(|d| d.value.user == "alice"));
    }

    #[test]
    fn valid_envelope_with_non_json_plaintext_is_corrupt() {
        let codec = Codec::Encrypted(ring(K1));
        let stats = ValkeyStoreStats::new();
        let sealed = codec.seal(b"not json at all", "k", "f");
        let err = open(&codec, &stats, &sealed, "k", "f").err();
        assert!(matches!(err, Some(StoreError::Corrupt(_))), "{err:?}");
        assert_eq!(stats.snapshot().corrupt, 1);
    }
}
