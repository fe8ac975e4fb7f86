//! Everything that can go wrong on the proxy path, as a JSON-RPC error the caller's MCP client
//! can show: the request's `id`, a code, and a message naming the remote server and what failed
//! (never a token, a URL or a header value). The HTTP status tells proxies and logs the same.

use super::upstream::UpstreamError;
use super::upstream::body::BodyError;
use crate::credentials::CredentialsError;
use crate::flows::ChallengeError;
use crate::registry::ServerKey;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use super::jsonrpc::EnvelopeError;
pub use super::jsonrpc::{INVALID_REQUEST, PARSE_ERROR};

/// Implementation-defined server error: the gateway could not serve the request. (The HTTP
/// status tells the kinds apart; `-32001` is the challenge's "authorization required".)
pub const GATEWAY_ERROR: i64 = -32000;

/// Why the gateway answered a request itself with an error.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("no remote MCP server {0} is registered")]
    UnknownServer(ServerKey),
    #[error("the request body exceeds the {limit}-byte limit")]
    BodyTooLarge { limit: usize },
    #[error("the request body could not be read: {0}")]
    BodyRead(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    #[error(
        "an initialize request before sign-in may be at most {limit} bytes (the gateway keeps it \
         until the user has signed in)"
    )]
    InitializeTooLarge { limit: usize },
    #[error("the request is not a JSON-RPC message: {0}")]
    InvalidMessage(#[source] EnvelopeError),
    /// No credentials could be sent (see [`CredentialsError`] for each reason).
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("authorization for {server} cannot be started: {source}")]
    Challenge {
        server: ServerKey,
        #[source]
        source: Box<ChallengeError>,
    },
    #[error("remote MCP server {server} is unreachable: {source}")]
    Unreachable {
        server: ServerKey,
        #[source]
        source: UpstreamError,
    },
    #[error("remote MCP server {server} is at an address the gateway may not connect to: {source}")]
    AddressRefused {
        server: ServerKey,
        #[source]
        source: UpstreamError,
    },
    #[error("remote MCP server {server} did not answer in time: {source}")]
    Timeout {
        server: ServerKey,
        #[source]
        source: UpstreamError,
    },
    #[error("remote MCP server {server} failed: {source}")]
    BrokenResponse {
        server: ServerKey,
        #[source]
        source: UpstreamError,
    },
    #[error(
        "remote MCP server {server} answered HTTP {status} with {content_type}, which is not an \
         MCP response"
    )]
    NotMcp {
        server: ServerKey,
        status: u16,
        content_type: String,
    },
    #[error("remote MCP server {server} failed with HTTP {status}")]
    UpstreamStatus { server: ServerKey, status: u16 },
    /// Redirects are not followed (the target could be anywhere, and the request carries the
    /// user's credential) nor relayed (the client would follow it without the gateway).
    #[error(
        "remote MCP server {server} answered with a redirect (HTTP {status}), which the gateway \
         does not follow or pass on; point its registered URL at the final endpoint"
    )]
    UpstreamRedirect { server: ServerKey, status: u16 },
    #[error(
        "remote MCP server {server} refused the request with HTTP {status} (its auth mode is \
         {mode})"
    )]
    UpstreamRejected {
        server: ServerKey,
        status: u16,
        mode: &'static str,
    },
    #[error("the registered URL of {0} cannot be used for requests")]
    BadUpstreamUrl(ServerKey),
    #[error("this MCP session is unknown or expired; initialize a new one")]
    UnknownSession,
    #[error("starting the session with remote MCP server {server} failed: {detail}")]
    SessionStart { server: ServerKey, detail: String },
    #[error(
        "remote MCP server {server} still refuses the request for lack of scope after \
         re-authorization"
    )]
    InsufficientScope { server: ServerKey },
}

impl From<BodyError> for GatewayError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge { limit } => GatewayError::BodyTooLarge { limit },
            BodyError::Read(source) => GatewayError::BodyRead(source),
            BodyError::Timeout(deadline) => GatewayError::BodyTimeout(deadline),
        }
    }
}

impl GatewayError {
    /// Creating the auth challenge for `server` failed.
    pub fn challenge(server: &ServerKey, source: ChallengeError) -> Self {
        GatewayError::Challenge {
            server: server.clone(),
            source: Box::new(source),
        }
    }

    /// Classify a transport failure.
    pub fn upstream(server: &ServerKey, source: UpstreamError) -> Self {
        let server = server.clone();
        match source {
            // The transport error keeps only the text of its causes; the guard's refusals are
            // recognisable by it.
            UpstreamError::Connect(_) if crate::net::ssrf::is_refusal_text(&source.detail()) => {
                GatewayError::AddressRefused { server, source }
            }
            UpstreamError::Connect(_) => GatewayError::Unreachable { server, source },
            UpstreamError::ConnectTimeout(_) | UpstreamError::ResponseTimeout(_) => {
                GatewayError::Timeout { server, source }
            }
            UpstreamError::Protocol(_) => GatewayError::BrokenResponse { server, source },
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::UnknownServer(_) | GatewayError::UnknownSession => StatusCode::NOT_FOUND,
            GatewayError::BodyTooLarge { .. } | GatewayError::InitializeTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            GatewayError::BodyRead(_) | GatewayError::InvalidMessage(_) => StatusCode::BAD_REQUEST,
            GatewayError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            GatewayError::Credentials(e) => e.status(),
            GatewayError::Challenge { source, .. } => match **source {
                ChallengeError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_GATEWAY,
            },
            GatewayError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::Unreachable { .. }
            | GatewayError::AddressRefused { .. }
            | GatewayError::BrokenResponse { .. }
            | GatewayError::NotMcp { .. }
            | GatewayError::UpstreamStatus { .. }
            | GatewayError::UpstreamRedirect { .. }
            | GatewayError::SessionStart { .. } => StatusCode::BAD_GATEWAY,
            GatewayError::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            GatewayError::UpstreamRejected { status, .. } => StatusCode::from_u16(*status)
                .ok()
                .filter(StatusCode::is_client_error)
                .unwrap_or(StatusCode::BAD_GATEWAY),
            GatewayError::BadUpstreamUrl(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> i64 {
        match self {
            GatewayError::InvalidMessage(_) => PARSE_ERROR,
            GatewayError::BodyTooLarge { .. }
            | GatewayError::InitializeTooLarge { .. }
            | GatewayError::BodyRead(_)
            | GatewayError::BodyTimeout(_) => INVALID_REQUEST,
            _ => GATEWAY_ERROR,
        }
    }

    /// Stable label for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            GatewayError::UnknownServer(_) => "unknown_server",
            GatewayError::BodyTooLarge { .. } | GatewayError::InitializeTooLarge { .. } => {
                "body_too_large"
            }
            GatewayError::BodyRead(_) | GatewayError::InvalidMessage(_) => "bad_request",
            GatewayError::BodyTimeout(_) => "body_timeout",
            GatewayError::Credentials(e) => e.outcome(),
            GatewayError::Challenge { .. } => "challenge_error",
            GatewayError::Unreachable { .. } => "upstream_unreachable",
            GatewayError::AddressRefused { .. } => "upstream_address_refused",
            GatewayError::Timeout { .. } => "upstream_timeout",
            GatewayError::BrokenResponse { .. }
            | GatewayError::NotMcp { .. }
            | GatewayError::UpstreamStatus { .. } => "upstream_bad_response",
            GatewayError::UpstreamRedirect { .. } => "upstream_redirect",
            GatewayError::UnknownSession => "unknown_session",
            GatewayError::SessionStart { .. } => "session_start_failed",
            GatewayError::InsufficientScope { .. } => "insufficient_scope",
            GatewayError::UpstreamRejected { .. } => "upstream_rejected",
            GatewayError::BadUpstreamUrl(_) => "bad_upstream_url",
        }
    }

    /// The JSON-RPC error response answering the request with `id` (`null` when unknown).
    pub fn to_response(&self, id: Option<Value>) -> Response {
        let body = json!({
            "jsonrpc": "2.0",
            "id": id.unwrap_or(Value::Null),
            "error": { "code": self.code(), "message": self.to_string() },
        });
        let mut resp = (self.status(), axum::Json(body)).into_response();
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if matches!(self, GatewayError::BodyTimeout(_)) {
            // The rest of the trickled body would still be on the connection: it is not waited
            // for.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::exchange::ExchangeError;
    use std::time::Duration;

    fn key() -> ServerKey {
        ServerKey::new("team-a", "github")
    }

    async fn body_of(resp: Response) -> Value {
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn errors_are_json_rpc_with_the_request_id_and_the_server_name() {
        let err = GatewayError::upstream(
            &key(),
            UpstreamError::Connect("Connection refused (os error 111)".into()),
        );
        let resp = err.to_response(Some(json!(7)));
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let v = body_of(resp).await;
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["id"], 7);
        assert_eq!(v["error"]["code"], GATEWAY_ERROR);
        let msg = v["error"]["message"].as_str().expect("message");
        assert!(
            msg.contains("team-a/github") && msg.contains("unreachable"),
            "{msg}"
        );
    }

    #[test]
    fn guard_refusals_are_told_apart_from_unreachable_servers() {
        let refused = crate::net::ssrf::check(
            "localhost",
            std::net::Ipv4Addr::LOCALHOST.into(),
            crate::net::AddressPolicy::PublicOnly,
        )
        .expect_err("loopback refused");
        let err = GatewayError::upstream(
            &key(),
            UpstreamError::Connect(format!("dns error: {refused}").into()),
        );
        assert!(
            matches!(err, GatewayError::AddressRefused { .. }),
            "{err:?}"
        );
        assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(err.outcome(), "upstream_address_refused");
        let msg = err.to_string();
        assert!(
            msg.contains("team-a/github") && msg.contains("--outbound-allow-private-networks"),
            "{msg}"
        );
        let plain = GatewayError::upstream(
            &key(),
            UpstreamError::Connect("Connection refused (os error 111)".into()),
        );
        assert_eq!(plain.outcome(), "upstream_unreachable");
    }

    #[test]
    fn exchange_failures_name_server_and_policy_and_say_what_to_do() {
        let policy = ServerKey::new("team-a", "cluster-b");
        let err = GatewayError::from(CredentialsError::Exchange {
            server: key(),
            policy: policy.clone(),
            source: Box::new(ExchangeError::Rejected {
                error: "invalid_grant".into(),
                description: None,
            }),
        });
        let msg = err.to_string();
        assert!(
            msg.contains("team-a/github")
                && msg.contains("team-a/cluster-b")
                && msg.contains("sign in"),
            "{msg}"
        );
        assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(err.outcome(), "exchange_failed");
        let busy = GatewayError::from(CredentialsError::Exchange {
            server: key(),
            policy: policy.clone(),
            source: Box::new(ExchangeError::Unavailable(503)),
        });
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        let missing = GatewayError::from(CredentialsError::ExchangePolicyMissing {
            server: key(),
            policy,
        });
        assert_eq!(missing.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(missing.to_string().contains("not registered"));
        let none = GatewayError::from(CredentialsError::ExchangeWithoutToken { server: key() });
        assert_eq!(none.status(), StatusCode::FORBIDDEN);
        assert!(none.to_string().contains("--identity oidc"));
    }

    #[tokio::test]
    async fn an_unknown_id_is_null() {
        let v = body_of(GatewayError::UnknownSession.to_response(None)).await;
        assert_eq!(v["id"], Value::Null);
        assert_eq!(v["error"]["code"], GATEWAY_ERROR);
    }

    #[test]
    fn statuses_follow_the_kind_of_failure() {
        let timeout = GatewayError::upstream(
            &key(),
            UpstreamError::ResponseTimeout(Duration::from_secs(1)),
        );
        assert_eq!(timeout.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(timeout.outcome(), "upstream_timeout");
        let garbage = GatewayError::upstream(&key(), UpstreamError::Protocol("bad".into()));
        assert_eq!(garbage.status(), StatusCode::BAD_GATEWAY);
        let slow = GatewayError::from(BodyError::Timeout(Duration::from_secs(1)));
        assert_eq!(slow.status(), StatusCode::REQUEST_TIMEOUT);
        let large = GatewayError::BodyTooLarge { limit: 10 };
        assert_eq!(large.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(large.code(), INVALID_REQUEST);
        assert_eq!(
            GatewayError::UnknownServer(key()).status(),
            StatusCode::NOT_FOUND
        );
    }
}
