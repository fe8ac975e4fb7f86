//! In-memory stores: the default, for a single replica. Nothing survives a restart, which for
//! tokens means users authorize again; use Valkey to share tokens and flows between replicas.

mod cleanup;
mod flow;
mod session;
mod token;
mod user_index;

pub use flow::MemoryFlowStore;
pub use token::MemoryTokenStore;
