//! The encryption key ring's life while the process runs: where it comes from
//! ([`source`]: a key file or directory, or a Secret read through the API server), how a new
//! version replaces the one in use ([`reload`], fed by [`file`](mod@file) and [`secret`], which use the
//! folder watcher of [`watch`]), the gate that keeps Valkey stores closed until the first ring
//! from a Secret arrives ([`gate`]), and the rotation sweep that re-seals old values under the
//! primary key whenever a ring with older keys is in use ([`rotation`]).
//!
//! The primitives (envelope, key ring, parsing, loading) are in [`crate::crypto`]; sealing
//! stored values with them is the store's layer [`crate::store::sealed`]. This module takes
//! plain configuration ([`KeySourceConfig`]), never command-line types, and knows nothing of
//! the wiring that uses it.

pub mod file;
pub mod gate;
pub mod metrics;
pub mod reload;
pub mod rotation;
pub mod secret;
pub mod source;
pub mod watch;

pub use gate::KeyGate;
pub use metrics::{KeyRingMetrics, RotationMetrics};
pub use reload::{KeyRingReloader, Outcome, READINESS_GATE};
pub use source::{KeySource, KeySourceConfig, KeySourceError};
