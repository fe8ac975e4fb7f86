//! The auth challenge as the MCP client sees it, when the user must authorize first: the
//! JSON-RPC answer in the richest form the client understands ([`forms`], chosen per client by
//! [`client_profile`]), the synthetic `initialize`/`tools/list`/`authenticate` answers that let
//! every client connect and show the link ([`synthetic`]), and step-up authorization for a
//! remote server that wants more scopes ([`step_up`]).

pub mod client_profile;
pub mod forms;
pub mod step_up;
pub mod synthetic;

pub use forms::ChallengeReply;
