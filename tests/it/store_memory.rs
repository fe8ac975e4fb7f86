//! The store conformance checks against the in-memory stores: one test per check, plus the
//! whole suites once (so the suite entry points themselves are exercised).

use mcp_oauth_operator::store::conformance::{flow_store_suite, token_store_suite};
use mcp_oauth_operator::store::memory::{MemoryFlowStore, MemoryTokenStore};

mod token_store {
    use super::MemoryTokenStore;
    mcp_oauth_operator::token_store_conformance_tests!(MemoryTokenStore::new());
}

// The request path's read cache must not change any answer of the store behind it.
mod token_store_cached {
    use super::MemoryTokenStore;
    mcp_oauth_operator::token_store_conformance_tests!(
        mcp_oauth_operator::store::CachedTokenStore::new(
            std::sync::Arc::new(MemoryTokenStore::new()),
            std::time::Duration::from_secs(60),
            1000,
        )
    );
}

mod flow_store {
    use super::MemoryFlowStore;
    mcp_oauth_operator::flow_store_conformance_tests!(MemoryFlowStore::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_store_full_suite() {
    token_store_suite(MemoryTokenStore::new).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_store_full_suite() {
    flow_store_suite(MemoryFlowStore::new).await;
}
