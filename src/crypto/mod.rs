//! The primitives of encryption at rest: the AES-256-GCM envelope, the key ring and how it is
//! parsed and loaded. Sealing stored records with them is the store's layer
//! ([`crate::store::sealed`]); following the ring while the process runs is [`crate::keys`].
//!
//! Each value is an AES-256-GCM *envelope* that names the key it was sealed with, so that keys can
//! be rotated without losing anything: the primary key of the [`KeyRing`] seals new values, older
//! keys still open old ones ([`Opened::needs_rewrap`] tells the store to re-seal them), and a
//! value whose key has been removed is reported by id ([`envelope_key_id`]) instead of crashing.
//!
//! Envelope layout (version 1):
//!
//! ```text
//! 0x01 | id_len (1 byte, 1..=64) | key id (id_len ASCII bytes, [A-Za-z0-9._-]) | nonce (12 bytes) | ciphertext | tag (16 bytes)
//! ```
//!
//! The nonce is random per value. The GCM associated data is the envelope header
//! (`0x01 | id_len | key id`) followed by the caller's associated data, which for stored values
//! is [`aad`] of the value's address in the store (Valkey: key and hash field): a value copied to another session or field, or
//! re-labelled with another key id or version, fails to open.
//!
//! The key ring is loaded at startup ([`KeyRing::load`], [`KeyRing::parse`],
//! [`KeyRing::from_entries`]); any configured key that is missing, malformed or not 32 bytes is
//! an error, never a silent fallback to plaintext (the upstream's fail-open behaviour). A
//! [`KeyRingHandle`] lets a reload (changed Secret or key file) replace the ring while the
//! server runs; only a ring that parsed ever replaces the current one.

mod envelope;
mod error;
mod handle;
mod key_id;
mod keyring;
mod load;
mod parse;

pub use envelope::{aad, envelope_key_id};
pub use error::{DecryptError, KeyRingError};
pub use handle::{KeyRingHandle, RingChange};
pub use keyring::{KeyRing, Opened};
