//! What can go wrong when loading keys or opening a value. Messages name paths and key ids,
//! never key material or plaintext.

use std::path::PathBuf;

/// An envelope could not be opened. Each case is a distinct, reportable condition: the store
/// maps them to a clear error and a metric label ([`DecryptError::reason`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("encrypted value is truncated")]
    Truncated,
    #[error("encrypted value has unknown format version {0}")]
    UnknownVersion(u8),
    #[error("encrypted value carries a malformed key id")]
    MalformedKeyId,
    #[error("encrypted value was sealed with key id {0:?}, which is not in the key ring")]
    UnknownKeyId(String),
    #[error(
        "encrypted value failed authentication (tampered, sealed with a different key, or moved \
         from another key or field)"
    )]
    Authentication,
}

impl DecryptError {
    /// Stable, low-cardinality label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::UnknownVersion(_) => "unknown_version",
            Self::MalformedKeyId => "malformed_key_id",
            Self::UnknownKeyId(_) => "unknown_key_id",
            Self::Authentication => "authentication",
        }
    }
}

/// A configured key ring is unusable. Startup stops on any of these (fail closed).
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error("cannot read encryption key ring {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A content error in the file or directory at `path`; [`KeyRingError::root`] gives the
    /// underlying case.
    #[error("encryption key ring {}: {source}", path.display())]
    At {
        path: PathBuf,
        #[source]
        source: Box<KeyRingError>,
    },
    #[error("no encryption key found")]
    Empty,
    #[error(
        "invalid encryption key id {id:?}: use 1 to 64 characters of A-Z a-z 0-9 . _ - \
         (not starting with \"..\")"
    )]
    InvalidKeyId { id: String },
    #[error("encryption key {id:?} is not valid base64")]
    InvalidBase64 { id: String },
    #[error(
        "encryption key {id:?} is {len} bytes, expected 32 (generate one with \
         `openssl rand -base64 32`)"
    )]
    WrongLength { id: String, len: usize },
    #[error(
        "several encryption keys but no `primary` entry naming the key id that encrypts new \
         values"
    )]
    NoPrimary,
    #[error("the primary encryption key id {id:?} is not among the keys")]
    PrimaryNotFound { id: String },
    #[error("encryption key id {id:?} appears more than once")]
    Duplicate { id: String },
    #[error(
        "neither one base64 encryption key nor a YAML mapping of key ids to base64 keys ({at})"
    )]
    Malformed { at: String },
}

impl KeyRingError {
    /// The underlying case, looking through the path context added by [`crate::crypto::KeyRing::load`].
    pub fn root(&self) -> &KeyRingError {
        match self {
            Self::At { source, .. } => source.root(),
            other => other,
        }
    }

    pub(crate) fn at(path: &std::path::Path) -> impl FnOnce(KeyRingError) -> KeyRingError + '_ {
        move |source| match source {
            io @ Self::Io { .. } => io,
            source => Self::At {
                path: path.to_path_buf(),
                source: Box::new(source),
            },
        }
    }

    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> KeyRingError + '_ {
        move |source| Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_distinct_metric_labels() {
        let all = [
            DecryptError::Truncated,
            DecryptError::UnknownVersion(2),
            DecryptError::MalformedKeyId,
            DecryptError::UnknownKeyId("k1".into()),
            DecryptError::Authentication,
        ];
        let mut reasons: Vec<_> = all.iter().map(DecryptError::reason).collect();
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), all.len());
        assert!(
            reasons
                .iter()
                .all(|r| r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
    }

    #[test]
    fn root_looks_through_path_context() {
        let err = KeyRingError::at(std::path::Path::new("/keys"))(KeyRingError::NoPrimary);
        assert!(matches!(err.root(), KeyRingError::NoPrimary));
        assert!(err.to_string().contains("/keys"), "{err}");
    }
}
