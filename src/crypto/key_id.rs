//! Key ids: short ASCII names that appear inside every envelope and in logs and metric labels,
//! so they are restricted to a charset that is safe in all three (and that Kubernetes accepts as
//! a Secret data key).

/// Longest key id; the envelope stores the length in one byte and ids should stay short.
pub(crate) const MAX_KEY_ID_LEN: usize = 64;

/// 1..=64 characters of `[A-Za-z0-9._-]`, not `.` and not starting with `..` (Kubernetes uses
/// `..`-prefixed names for its own entries in a mounted Secret).
pub(crate) fn is_valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id != "."
        && !id.starts_with("..")
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_charset() {
        for id in [
            "k1",
            "2026-01",
            "key_a.b-c",
            "A",
            &"x".repeat(64),
            ".hidden",
        ] {
            assert!(is_valid_key_id(id), "{id:?} should be valid");
        }
    }

    #[test]
    fn rejects_everything_else() {
        let too_long = "x".repeat(65);
        for id in [
            "", ".", "..", "..data", "k 1", "k/1", "k:1", "ké", "k\n", "k\u{0}", &too_long,
        ] {
            assert!(!is_valid_key_id(id), "{id:?} should be invalid");
        }
    }
}
