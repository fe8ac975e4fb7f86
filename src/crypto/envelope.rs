//! The envelope byte format and the associated-data encoding: pure functions, no keys.
//!
//! `0x01 | id_len | key id | nonce (12) | ciphertext | tag (16)`; see the module docs of
//! [`crate::crypto`].

use super::error::DecryptError;
use super::key_id::{MAX_KEY_ID_LEN, is_valid_key_id};

/// Format version written by this code.
pub(crate) const VERSION: u8 = 0x01;
/// AES-GCM nonce length (96 bits, the size GCM is designed for).
pub(crate) const NONCE_LEN: usize = 12;
/// AES-GCM tag length.
pub(crate) const TAG_LEN: usize = 16;

/// The borrowed parts of a well-formed envelope.
#[derive(Debug)]
pub(crate) struct Parts<'a> {
    /// `version | id_len | key id`: authenticated as part of the GCM associated data.
    pub header: &'a [u8],
    pub key_id: &'a str,
    pub nonce: &'a [u8; NONCE_LEN],
    pub ciphertext: &'a [u8],
    pub tag: &'a [u8; TAG_LEN],
}

/// The header for `key_id` (already validated by the key ring).
pub(crate) fn header(key_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + key_id.len());
    out.push(VERSION);
    // Key ids are at most 64 bytes (validated when the ring is built), so this never saturates.
    out.push(u8::try_from(key_id.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(key_id.as_bytes());
    out
}

/// Splits an envelope into its parts without touching any key. Never panics, whatever the input.
pub(crate) fn parse(envelope: &[u8]) -> Result<Parts<'_>, DecryptError> {
    let (&version, rest) = envelope.split_first().ok_or(DecryptError::Truncated)?;
    if version != VERSION {
        return Err(DecryptError::UnknownVersion(version));
    }
    let (&id_len, rest) = rest.split_first().ok_or(DecryptError::Truncated)?;
    let id_len = usize::from(id_len);
    if id_len == 0 || id_len > MAX_KEY_ID_LEN {
        return Err(DecryptError::MalformedKeyId);
    }
    let (id, rest) = rest
        .split_at_checked(id_len)
        .ok_or(DecryptError::Truncated)?;
    let key_id = std::str::from_utf8(id)
        .ok()
        .filter(|id| is_valid_key_id(id))
        .ok_or(DecryptError::MalformedKeyId)?;
    let (nonce, rest) = rest
        .split_first_chunk::<NONCE_LEN>()
        .ok_or(DecryptError::Truncated)?;
    let (ciphertext, tag) = rest
        .split_last_chunk::<TAG_LEN>()
        .ok_or(DecryptError::Truncated)?;
    let (header, _) = envelope
        .split_at_checked(2 + id_len)
        .ok_or(DecryptError::Truncated)?;
    Ok(Parts {
        header,
        key_id,
        nonce,
        ciphertext,
        tag,
    })
}

/// Key id of an envelope without decrypting it, e.g. to report values whose key is gone.
pub fn envelope_key_id(envelope: &[u8]) -> Result<&str, DecryptError> {
    parse(envelope).map(|parts| parts.key_id)
}

/// Associated data for a value stored at Valkey `key` (and hash `field`, if any).
///
/// Length-prefixed so that no two different (key, field) pairs encode the same bytes:
/// `len(key) as u64 BE | key | 0x00` without a field, `... | 0x01 | len(field) as u64 BE | field`
/// with one.
pub fn aad(key: &[u8], field: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.len() + 1 + field.map_or(0, |f| 8 + f.len()));
    out.extend_from_slice(&(key.len() as u64).to_be_bytes());
    out.extend_from_slice(key);
    match field {
        None => out.push(0),
        Some(field) => {
            out.push(1);
            out.extend_from_slice(&(field.len() as u64).to_be_bytes());
            out.extend_from_slice(field);
        }
    }
    out
}

/// The associated data GCM authenticates: the envelope header, then the caller's data. The
/// header carries its own length, so the concatenation is unambiguous.
pub(crate) fn gcm_aad(header: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len() + aad.len());
    out.extend_from_slice(header);
    out.extend_from_slice(aad);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample(key_id: &str, body_len: usize) -> Vec<u8> {
        let mut out = header(key_id);
        out.extend(std::iter::repeat_n(7u8, NONCE_LEN));
        out.extend(std::iter::repeat_n(9u8, body_len));
        out.extend(std::iter::repeat_n(5u8, TAG_LEN));
        out
    }

    #[test]
    fn parses_its_own_layout() {
        let envelope = sample("k1", 3);
        let parts = parse(&envelope).unwrap();
        assert_eq!(parts.header, &[0x01, 2, b'k', b'1']);
        assert_eq!(parts.key_id, "k1");
        assert_eq!(parts.nonce, &[7u8; NONCE_LEN]);
        assert_eq!(parts.ciphertext, &[9u8; 3]);
        assert_eq!(parts.tag, &[5u8; TAG_LEN]);
        assert_eq!(envelope_key_id(&envelope), Ok("k1"));
    }

    #[test]
    fn empty_plaintext_is_well_formed() {
        let envelope = sample("k1", 0);
        assert_eq!(parse(&envelope).unwrap().ciphertext, &[] as &[u8]);
    }

    #[test]
    fn every_truncation_of_the_header_is_reported() {
        let envelope = sample("key-1", 0);
        for len in 0..envelope.len() {
            assert_eq!(
                parse(&envelope[..len]).unwrap_err(),
                DecryptError::Truncated,
                "length {len}"
            );
        }
    }

    #[test]
    fn unknown_version_is_reported_before_anything_else() {
        assert_eq!(parse(&[0x02]).unwrap_err(), DecryptError::UnknownVersion(2));
        let mut envelope = sample("k1", 4);
        envelope[0] = 0xff;
        assert_eq!(
            envelope_key_id(&envelope).unwrap_err(),
            DecryptError::UnknownVersion(0xff)
        );
    }

    #[test]
    fn malformed_key_ids_are_rejected() {
        let mut zero_len = sample("k1", 4);
        zero_len[1] = 0;
        assert_eq!(parse(&zero_len).unwrap_err(), DecryptError::MalformedKeyId);

        let mut too_long = vec![VERSION, 65];
        too_long.extend(std::iter::repeat_n(b'a', 65 + NONCE_LEN + TAG_LEN));
        assert_eq!(parse(&too_long).unwrap_err(), DecryptError::MalformedKeyId);

        let mut bad_char = sample("k1", 4);
        bad_char[3] = b'/';
        assert_eq!(parse(&bad_char).unwrap_err(), DecryptError::MalformedKeyId);

        let mut not_utf8 = sample("k1", 4);
        not_utf8[3] = 0xc3;
        assert_eq!(parse(&not_utf8).unwrap_err(), DecryptError::MalformedKeyId);
    }

    #[test]
    fn aad_is_unambiguous() {
        assert_ne!(aad(b"ab", Some(b"c")), aad(b"a", Some(b"bc")));
        assert_ne!(aad(b"a", Some(b"b")), aad(b"b", Some(b"a")));
        assert_ne!(aad(b"k", None), aad(b"k", Some(b"")));
        assert_ne!(aad(b"k", Some(b"f")), aad(b"kf", None));
        assert_eq!(aad(b"k", Some(b"f")), aad(b"k", Some(b"f")));
    }

    #[test]
    fn aad_layout_is_as_documented() {
        assert_eq!(aad(b"k", None), [0, 0, 0, 0, 0, 0, 0, 1, b'k', 0]);
        assert_eq!(
            aad(b"k", Some(b"f")),
            [
                0, 0, 0, 0, 0, 0, 0, 1, b'k', 1, 0, 0, 0, 0, 0, 0, 0, 1, b'f'
            ]
        );
    }
}
