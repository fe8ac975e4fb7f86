//! Conformance checks every [`TokenStore`] and [`FlowStore`] implementation must pass, so the
//! in-memory and Valkey stores are interchangeable.
//!
//! Each documented behaviour is one public async check in [`token`] or [`flow`], taking a fresh
//! store by value and panicking with a message naming what went wrong (never a secret value).
//! Run them all with [`token_store_suite`] / [`flow_store_suite`], or generate one
//! `#[tokio::test]` per check (so a failure names the behaviour) inside a module of an
//! integration test:
//!
//! ```ignore
//! mod token_store {
//!     use mcp_oauth_operator::store::memory::MemoryTokenStore;
//!     mcp_oauth_operator::token_store_conformance_tests!(MemoryTokenStore::new());
//! }
//! ```
//!
//! The expression is evaluated inside each async test, so it may `.await` (e.g. to connect to
//! Valkey). It must yield an empty store independent of every other one it yields (for Valkey:
//! a fresh key prefix), because checks count entries.
//!
//! Expiry is exercised with explicit `expires_at` values an hour in the past or future of the
//! wall clock, never by sleeping.

pub mod flow;
pub mod token;

use super::{FlowStore, StoreError, TokenStore};

/// Run every token-store check, each on a fresh store from `make`.
pub async fn token_store_suite<S: TokenStore>(make: impl Fn() -> S) {
    crate::__token_store_checks!(suite make);
}

/// Run every flow-store check, each on a fresh store from `make`.
pub async fn flow_store_suite<S: FlowStore>(make: impl Fn() -> S) {
    crate::__flow_store_checks!(suite make);
}

/// One `#[tokio::test]` per token-store check; invoke inside its own module.
#[macro_export]
macro_rules! token_store_conformance_tests {
    ($make:expr) => {
        $crate::__token_store_checks!(tests $make);
    };
}

/// One `#[tokio::test]` per flow-store check; invoke inside its own module.
#[macro_export]
macro_rules! flow_store_conformance_tests {
    ($make:expr) => {
        $crate::__flow_store_checks!(tests $make);
    };
}

/// The list of token checks: the single source for the suite and the generated tests.
#[doc(hidden)]
#[macro_export]
macro_rules! __token_store_checks {
    ($($mode:tt)+) => {
        $crate::__store_checks! { [$($mode)+] token:
            put_get_round_trip,
            put_overwrites,
            overwrite_moves_ownership,
            get_missing,
            reads_ignore_expiry,
            get_bound_prefers_access_token,
            get_bound_prefers_latest_expiry,
            get_bound_breaks_ties_by_smallest_scope,
            get_bound_skips_expired_unrefreshable,
            issuer_isolation,
            binding_isolation,
            session_isolation,
            all_for_session_sorted,
            delete_one,
            delete_by_session_counts,
            delete_by_user_across_sessions,
            delete_by_issuer_counts,
            count_tracks_entries,
            remove_expired_keeps_refreshable,
        }
    };
}

/// The list of flow checks: the single source for the suite and the generated tests.
#[doc(hidden)]
#[macro_export]
macro_rules! __flow_store_checks {
    ($($mode:tt)+) => {
        $crate::__store_checks! { [$($mode)+] flow:
            insert_get_round_trip,
            insert_replaces,
            unknown_flow_is_absent,
            expired_flow_is_absent,
            remove_expired_keeps_live_flows,
            bind_records_browser_and_verifier,
            bind_same_browser_again_updates_verifier,
            bind_other_browser_changes_nothing,
            bind_race_has_one_winner,
            consume_returns_flow_once,
            consume_from_other_browser_keeps_flow,
            consume_unbound_keeps_flow,
            consume_exactly_once_concurrently,
            consume_after_expiry_is_not_found,
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_checks {
    ([suite $make:ident] $module:ident: $($check:ident),+ $(,)?) => {
        $( $crate::store::conformance::$module::$check($make()).await; )+
    };
    ([tests $make:expr] $module:ident: $($check:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                $crate::store::conformance::$module::$check($make).await;
            }
        )+
    };
}

/// Unwrap a store result, failing the check with what was being done.
fn ok<T>(result: Result<T, StoreError>, doing: &str) -> T {
    result.unwrap_or_else(|e| panic!("{doing}: store error: {e}"))
}
