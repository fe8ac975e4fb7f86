//! Wall-clock helpers. Token expiry and flow TTLs are stored as Unix seconds so that they mean
//! the same thing in every replica and in Valkey.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
