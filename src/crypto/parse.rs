//! Key ring contents → [`KeyRing`]: the single-key text form, the YAML mapping form and
//! Secret-like entries. Pure; reading files and directories is in `load`.

use std::fmt;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use zeroize::Zeroizing;

use super::error::KeyRingError;
use super::key_id::is_valid_key_id;
use super::keyring::KeyRing;

/// Id given to the key of a file holding one bare base64 key.
pub(crate) const DEFAULT_KEY_ID: &str = "default";
/// Entry that names the primary key id instead of holding a key.
pub(crate) const PRIMARY_ENTRY: &str = "primary";

/// Standard alphabet; padding optional, since hand-written keys sometimes lose it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl KeyRing {
    /// Parses key ring file contents. Two formats:
    /// (a) one base64 32-byte key (as `openssl rand -base64 32` prints; surrounding whitespace
    /// ignored) → a ring with the single key `default`, primary;
    /// (b) a YAML mapping of `primary: <id>` plus `<id>: <base64 key>` entries, in any order
    /// (`primary` may be left out when there is exactly one key).
    pub fn parse(text: &str) -> Result<KeyRing, KeyRingError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(KeyRingError::Empty);
        }
        if trimmed.bytes().all(is_base64_byte) {
            let key = decode_key(DEFAULT_KEY_ID, trimmed.as_bytes())?;
            return KeyRing::from_keys(DEFAULT_KEY_ID, vec![(DEFAULT_KEY_ID.to_owned(), key)]);
        }
        let mut options = serde_saphyr::Options::default();
        // Duplicates reach our visitor so they are reported by id, like in the other forms.
        options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
        let entries: YamlEntries =
            serde_saphyr::from_str_with_options(trimmed, options).map_err(|err| {
                // The parser's message may quote the input (key material), so only its position
                // is kept.
                let at = err.location().map_or_else(
                    || "no position".to_owned(),
                    |loc| format!("line {}, column {}", loc.line(), loc.column()),
                );
                KeyRingError::Malformed { at }
            })?;
        KeyRing::from_entries(entries.0)
    }

    /// Builds a ring from Secret-like entries (a Kubernetes Secret's data map, a mounted Secret
    /// directory): the entry `primary` names the primary key id (optional with one key), every
    /// other entry is `<key id>` → base64 key text (surrounding whitespace ignored).
    pub fn from_entries(
        entries: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Result<KeyRing, KeyRingError> {
        let mut entries: Vec<(String, Zeroizing<Vec<u8>>)> = entries
            .into_iter()
            .map(|(name, value)| (name, Zeroizing::new(value)))
            .collect();
        // Sorted so that the error reported for a bad ring does not depend on listing order.
        entries.sort_by(|a, b| a.0.cmp(&b.0));

        let mut primary: Option<String> = None;
        let mut keys = Vec::with_capacity(entries.len());
        for (name, value) in entries {
            if name == PRIMARY_ENTRY {
                if primary.is_some() {
                    return Err(KeyRingError::Duplicate { id: name });
                }
                primary = Some(primary_id(&value)?);
                continue;
            }
            if !is_valid_key_id(&name) {
                return Err(KeyRingError::InvalidKeyId { id: name });
            }
            if keys.last().is_some_and(|(id, _)| *id == name) {
                return Err(KeyRingError::Duplicate { id: name });
            }
            let key = decode_key(&name, &value)?;
            keys.push((name, key));
        }

        let primary = match (primary, keys.as_slice()) {
            (_, []) => return Err(KeyRingError::Empty),
            (Some(primary), _) => primary,
            (None, [(only, _)]) => only.clone(),
            (None, _) => return Err(KeyRingError::NoPrimary),
        };
        KeyRing::from_keys(&primary, keys)
    }
}

fn is_base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

/// The value of the `primary` entry: a key id.
fn primary_id(value: &[u8]) -> Result<String, KeyRingError> {
    let id = String::from_utf8_lossy(value.trim_ascii()).into_owned();
    if is_valid_key_id(&id) {
        Ok(id)
    } else {
        Err(KeyRingError::InvalidKeyId { id })
    }
}

/// Decodes one base64 key, checking that it is 32 bytes. Errors name the id only.
fn decode_key(id: &str, text: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyRingError> {
    let key = Zeroizing::new(
        BASE64
            .decode(text.trim_ascii())
            .map_err(|_| KeyRingError::InvalidBase64 { id: id.to_owned() })?,
    );
    if key.len() != super::keyring::KEY_LEN {
        return Err(KeyRingError::WrongLength {
            id: id.to_owned(),
            len: key.len(),
        });
    }
    Ok(key)
}

/// A YAML mapping read as ordered entries, keeping duplicates so they can be reported.
struct YamlEntries(Vec<(String, Vec<u8>)>);

impl<'de> Deserialize<'de> for YamlEntries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EntriesVisitor)
    }
}

struct EntriesVisitor;

impl<'de> Visitor<'de> for EntriesVisitor {
    type Value = YamlEntries;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of key ids to base64 keys")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some((name, value)) = map.next_entry::<String, Option<String>>()? {
            entries.push((name, value.unwrap_or_default().into_bytes()));
        }
        Ok(YamlEntries(entries))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crypto::keyring::tests::key_bytes;

    fn b64(n: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode(key_bytes(n))
    }

    fn entries(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    /// Checks that an error message quotes none of the test keys.
    fn no_key_in_message(err: &KeyRingError) {
        let message = err.to_string();
        for n in 0..=9 {
            assert!(!message.contains(&b64(n)), "{message}");
            assert!(!message.contains(b64(n).trim_end_matches('=')), "{message}");
        }
    }

    #[test]
    fn single_key_text_is_the_default_key() {
        let ring = KeyRing::parse(&format!("  {}\n", b64(1))).unwrap();
        assert_eq!(ring.primary_id(), "default");
        assert_eq!(ring.key_ids(), ["default"]);
        // Unpadded is accepted too.
        let ring = KeyRing::parse(b64(1).trim_end_matches('=')).unwrap();
        assert_eq!(ring.primary_id(), "default");
    }

    #[test]
    fn yaml_ring_in_any_order() {
        let text = format!("k1: {}\nprimary: k2\nk2: \"{}\"\n", b64(1), b64(2));
        let ring = KeyRing::parse(&text).unwrap();
        assert_eq!(ring.primary_id(), "k2");
        assert_eq!(ring.key_ids(), ["k1", "k2"]);
    }

    #[test]
    fn yaml_ring_with_one_key_needs_no_primary() {
        let ring = KeyRing::parse(&format!("only: {}\n", b64(1))).unwrap();
        assert_eq!(ring.primary_id(), "only");
    }

    #[test]
    fn yaml_numeric_ids_are_ids() {
        let text = format!("primary: 2026\n2025: {}\n2026: {}\n", b64(1), b64(2));
        let ring = KeyRing::parse(&text).unwrap();
        assert_eq!(ring.primary_id(), "2026");
        assert_eq!(ring.key_ids(), ["2025", "2026"]);
    }

    #[test]
    fn the_same_key_opens_across_formats() {
        let from_file = KeyRing::parse(&format!("k1: {}", b64(1))).unwrap();
        let from_secret = KeyRing::from_entries(entries(&[("k1", &b64(1))])).unwrap();
        let envelope = from_file.encrypt(b"v", b"ctx");
        assert_eq!(
            from_secret
                .decrypt(&envelope, b"ctx")
                .unwrap()
                .plaintext
                .as_slice(),
            b"v"
        );
    }

    #[test]
    fn from_entries_trims_values_and_reads_primary() {
        let ring = KeyRing::from_entries(entries(&[
            ("primary", "k2\n"),
            ("k2", &format!("{}\n", b64(2))),
            ("k1", &b64(1)),
        ]))
        .unwrap();
        assert_eq!(ring.primary_id(), "k2");
        assert_eq!(ring.key_ids(), ["k1", "k2"]);
    }

    #[test]
    fn empty_inputs() {
        for text in ["", "  \n\t", "{}"] {
            let err = KeyRing::parse(text).unwrap_err();
            assert!(matches!(err, KeyRingError::Empty), "{text:?}: {err}");
        }
        assert!(matches!(
            KeyRing::from_entries(Vec::new()),
            Err(KeyRingError::Empty)
        ));
        assert!(matches!(
            KeyRing::from_entries(entries(&[("primary", "k1")])),
            Err(KeyRingError::Empty)
        ));
    }

    #[test]
    fn bad_base64() {
        let err = KeyRing::parse("not*base64").unwrap_err();
        assert!(matches!(err, KeyRingError::Malformed { .. }), "{err}");
        let err = KeyRing::parse("abc$").unwrap_err();
        assert!(matches!(err, KeyRingError::Malformed { .. }), "{err}");
        let err = KeyRing::parse("Zm9v=YmFy").unwrap_err();
        assert!(
            matches!(&err, KeyRingError::InvalidBase64 { id } if id == "default"),
            "{err}"
        );
        let secret = format!("{}!", b64(3));
        let err = KeyRing::parse(&format!("k1: \"{secret}\"")).unwrap_err();
        assert!(
            matches!(&err, KeyRingError::InvalidBase64 { id } if id == "k1"),
            "{err}"
        );
        assert!(!err.to_string().contains(&secret));
        no_key_in_message(&err);
    }

    #[test]
    fn wrong_lengths_name_the_id() {
        use base64::engine::general_purpose::STANDARD;
        for len in [16usize, 31, 33, 64] {
            let key = STANDARD.encode(vec![7u8; len]);
            let err = KeyRing::parse(&key).unwrap_err();
            assert!(
                matches!(&err, KeyRingError::WrongLength { id, len: l } if id == "default" && *l == len),
                "{err}"
            );
            assert!(!err.to_string().contains(&key));
            let err = KeyRing::from_entries(entries(&[("k1", &key)])).unwrap_err();
            assert!(
                matches!(&err, KeyRingError::WrongLength { id, len: l } if id == "k1" && *l == len),
                "{err}"
            );
            assert!(err.to_string().contains("\"k1\"") && err.to_string().contains("32"));
        }
    }

    #[test]
    fn primary_naming_a_missing_id() {
        let text = format!("primary: k9\nk1: {}\nk2: {}\n", b64(1), b64(2));
        let err = KeyRing::parse(&text).unwrap_err();
        assert!(
            matches!(&err, KeyRingError::PrimaryNotFound { id } if id == "k9"),
            "{err}"
        );
        assert!(err.to_string().contains("k9"));
        no_key_in_message(&err);
    }

    #[test]
    fn several_keys_without_primary() {
        let text = format!("k1: {}\nk2: {}\n", b64(1), b64(2));
        let err = KeyRing::parse(&text).unwrap_err();
        assert!(matches!(err, KeyRingError::NoPrimary), "{err}");
        no_key_in_message(&err);
    }

    #[test]
    fn invalid_ids() {
        for id in ["k/1", "k 1", "ké", "..data", &"x".repeat(65)] {
            let err = KeyRing::from_entries(entries(&[(id, &b64(1))])).unwrap_err();
            assert!(
                matches!(&err, KeyRingError::InvalidKeyId { id: got } if got == id),
                "{err}"
            );
            no_key_in_message(&err);
        }
        let err = KeyRing::parse(&format!("\"k:1\": {}", b64(1))).unwrap_err();
        assert!(
            matches!(&err, KeyRingError::InvalidKeyId { id } if id == "k:1"),
            "{err}"
        );
        let err =
            KeyRing::from_entries(entries(&[("primary", "a b"), ("k1", &b64(1))])).unwrap_err();
        assert!(
            matches!(&err, KeyRingError::InvalidKeyId { id } if id == "a b"),
            "{err}"
        );
    }

    #[test]
    fn duplicates_are_reported() {
        let err = KeyRing::from_entries(entries(&[("k1", &b64(1)), ("k1", &b64(2))])).unwrap_err();
        assert!(
            matches!(&err, KeyRingError::Duplicate { id } if id == "k1"),
            "{err}"
        );
        let text = format!("primary: k1\nk1: {}\nk1: {}\n", b64(1), b64(2));
        let err = KeyRing::parse(&text).unwrap_err();
        assert!(
            matches!(&err, KeyRingError::Duplicate { id } if id == "k1"),
            "{err}"
        );
        no_key_in_message(&err);
        let text = format!("primary: k1\nprimary: k1\nk1: {}\n", b64(1));
        let err = KeyRing::parse(&text).unwrap_err();
        assert!(
            matches!(&err, KeyRingError::Duplicate { id } if id == "primary"),
            "{err}"
        );
    }

    #[test]
    fn malformed_yaml_gives_a_position_but_no_content() {
        let secret = b64(4);
        for text in [
            format!("- {secret}\n- x:y"),
            format!("k1: [{secret}]"),
            format!("k1: {secret}\n  bad: : indentation"),
        ] {
            let err = KeyRing::parse(&text).unwrap_err();
            assert!(
                matches!(err, KeyRingError::Malformed { .. }),
                "{text}: {err}"
            );
            no_key_in_message(&err);
        }
    }

    #[test]
    fn empty_key_value_is_a_length_error() {
        let err = KeyRing::parse("primary: k1\nk1:\n").unwrap_err();
        assert!(
            matches!(&err, KeyRingError::WrongLength { id, len: 0 } if id == "k1"),
            "{err}"
        );
    }
}
