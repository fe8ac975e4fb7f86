//! Server-side storage of users' tokens and of pending authorization flows.
//!
//! Both are traits so that the in-memory implementations (default, one replica) and the Valkey
//! implementations (several replicas) are interchangeable and pass the same conformance tests.

mod cached;
pub mod conformance;
mod flow;
mod lock;
pub mod memory;
mod settings;
mod token;
pub mod valkey;

pub use cached::CachedTokenStore;
pub use flow::*;
pub use lock::*;
pub use settings::{StoreKind, ValkeySettings, ValkeyTopologyKind};
pub use token::*;

/// A storage failure. Callers decide what it means (the callback page shows a failure, a
/// proxied request fails clearly); it is never swallowed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage backend unavailable: {0}")]
    Unavailable(String),
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
    #[error("stored value cannot be decrypted: {0}")]
    Decrypt(String),
}
