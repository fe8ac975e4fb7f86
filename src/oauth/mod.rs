//! OAuth 2.1 client engine: what the gateway needs to act as an OAuth client of remote MCP
//! servers' authorization servers. Pure protocol logic (challenge parsing, metadata checks,
//! request building, response validation) is kept apart from the few functions that do I/O
//! ([`discovery`], [`token_client`]), which all go through [`crate::net::OutboundClient`].

pub mod authorize;
pub mod cimd;
pub mod discovery;
pub mod iss;
pub mod metadata;
pub mod pkce;
pub mod revoke;
pub mod token_client;
pub mod token_response;
pub mod www_authenticate;

pub use authorize::{AuthorizeRequest, OFFLINE_ACCESS, authorization_url, select_scopes};
pub use cimd::{CALLBACK_PATH, CIMD_PATH, ClientMetadataDocument, client_id_for, redirect_uri_for};
pub use discovery::{DiscoveredResource, Discovery, DiscoveryConfig, DiscoveryError};
pub use iss::{IssError, check_iss};
pub use metadata::{
    AuthServerMetadata, AuthServerMetadataDocument, MetadataError, ProtectedResourceMetadata,
    as_metadata_candidates, prm_candidates, validate_as_metadata, validate_prm,
};
pub use pkce::{InvalidVerifier, PkcePair, challenge_for};
pub use revoke::{RevocationOutcome, TokenSetRevocation, revoke_token_set};
pub use token_client::{ClientCredentials, TokenClient, TokenTypeHint};
pub use token_response::{TokenError, TokenResponse};
pub use www_authenticate::{
    BearerChallenge, Challenge, ParseError, bearer_from_headers, parse_bearer, parse_challenges,
};
