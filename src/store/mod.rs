//! Server-side storage of users' tokens and of pending authorization flows.
//!
//! Both are traits so that the in-memory implementations (default, one replica) and the Valkey
//! implementations (several replicas) are interchangeable and pass the same conformance tests
//! (`conformance`, behind the `conformance` feature, for tests only). Which token wins when
//! several match is one rule for every backend and the status page ([`ranking`]). Encryption at
//! rest is a layer a backend is handed, not something it implements ([`sealed`]).

mod cached;
#[cfg(feature = "conformance")]
pub mod conformance;
mod flow;
pub(crate) mod hex;
mod lock;
pub mod memory;
pub mod ranking;
pub mod sealed;
mod settings;
mod token;
pub mod valkey;

pub use cached::CachedTokenStore;
pub use flow::*;
pub use lock::*;
pub use settings::{StoreKind, ValkeySettings, ValkeyTopologyKind};
pub use token::*;

use crate::crypto::DecryptError;
use sealed::RecordError;

/// The underlying failure of an unavailable backend (its client's error type).
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// A storage failure. Callers decide what it means (the callback page shows a failure, a
/// proxied request fails clearly); it is never swallowed. Messages name the value's place and
/// the problem, never any part of a stored value.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or did not complete the operation.
    #[error("storage backend unavailable: {what}")]
    Unavailable {
        what: String,
        #[source]
        source: Option<BackendError>,
    },
    /// A stored value is not a valid record, or not laid out as the store writes it.
    #[error("stored value is corrupt: {place}{}{hint}", colon(source))]
    Corrupt {
        /// Which value, or what about it is wrong when there is no underlying error.
        place: String,
        #[source]
        source: Option<RecordError>,
        /// A guess at the cause, for the operator (e.g. written with another encryption setting).
        hint: &'static str,
    },
    /// A stored value did not open with the key ring in use.
    #[error("stored value cannot be decrypted: {place}: {source}{hint}")]
    Decrypt {
        place: String,
        #[source]
        source: DecryptError,
        hint: &'static str,
    },
}

impl StoreError {
    /// The backend is unavailable, for a reason without an underlying error.
    pub fn unavailable(what: impl Into<String>) -> Self {
        Self::Unavailable {
            what: what.into(),
            source: None,
        }
    }

    /// The backend is unavailable because of `source` (`what` says which operation, and how).
    pub fn unavailable_because(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Unavailable {
            what: what.into(),
            source: Some(Box::new(source)),
        }
    }

    /// A stored value is not laid out as the store writes it (`what` says which, and how).
    pub fn corrupt(what: impl Into<String>) -> Self {
        Self::Corrupt {
            place: what.into(),
            source: None,
            hint: "",
        }
    }
}

/// `": {source}"`, or nothing without one.
fn colon(source: &Option<RecordError>) -> String {
    source
        .as_ref()
        .map(|e| format!(": {e}"))
        .unwrap_or_default()
}
