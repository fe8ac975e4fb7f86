//! The upstream side of the proxy: the pooled client that talks to remote MCP servers
//! ([`client`], over the SSRF-guarded [`connector`]), which headers cross ([`headers`]), the
//! caller's request body read once ([`body`]), and the MCP sessions the gateway opens before
//! sign-in and starts at the remote server afterwards ([`sessions`], [`session_start`]).

pub mod body;
pub mod client;
pub mod connector;
pub mod headers;
pub mod session_start;
pub mod sessions;

pub use client::{Upstream, UpstreamBody, UpstreamError};
