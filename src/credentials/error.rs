//! Why no credentials could be sent to a remote server. Messages name the server (and the
//! policy) and say what to do, never a token; [`CredentialsError::status`] and
//! [`CredentialsError::outcome`] are what the gateway answers and counts for each.

use super::exchange::ExchangeError;
use super::oauth::TokenAccessError;
use crate::registry::ServerKey;
use http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "{server} is in forward mode and needs the caller's own bearer token; this request has none (forward mode works with `--identity oidc`)"
    )]
    ForwardWithoutToken { server: ServerKey },
    #[error(
        "{server} accepts forwarded tokens only for the audiences [{allowed}]; the caller's token is for [{presented}]"
    )]
    ForwardAudience {
        server: ServerKey,
        allowed: String,
        presented: String,
    },
    #[error(
        "{server} is in forward mode, but the caller's token is also valid at this gateway (audience [{audiences}]), so it is not forwarded: a remote server could replay it here. Use a token issued only for the remote server's audience"
    )]
    ForwardGatewayToken {
        server: ServerKey,
        audiences: String,
    },
    #[error(
        "{server} is in exchange mode and needs the caller's own bearer token to exchange; this request has none (exchange mode works with `--identity oidc`)"
    )]
    ExchangeWithoutToken { server: ServerKey },
    #[error(
        "{server} uses the TokenExchangePolicy {policy}, which is not registered (missing, or invalid: see its status)"
    )]
    ExchangePolicyMissing {
        server: ServerKey,
        policy: ServerKey,
    },
    #[error("token exchange for {server} (TokenExchangePolicy {policy}) failed: {source}")]
    Exchange {
        server: ServerKey,
        policy: ServerKey,
        #[source]
        source: Box<ExchangeError>,
    },
    #[error("no usable credentials for {server}: {source}")]
    Token {
        server: ServerKey,
        #[source]
        source: Box<TokenAccessError>,
    },
}

impl CredentialsError {
    /// Getting a token for `server` failed.
    pub fn token(server: &ServerKey, source: impl Into<TokenAccessError>) -> Self {
        CredentialsError::Token {
            server: server.clone(),
            source: Box::new(source.into()),
        }
    }

    /// The HTTP status of the gateway's answer: 403 when the caller's own token cannot be used,
    /// 503 when a retry may succeed (a store or token endpoint unavailable, a policy not (yet)
    /// registered), else 502.
    pub fn status(&self) -> StatusCode {
        match self {
            CredentialsError::ForwardWithoutToken { .. }
            | CredentialsError::ForwardAudience { .. }
            | CredentialsError::ForwardGatewayToken { .. }
            | CredentialsError::ExchangeWithoutToken { .. } => StatusCode::FORBIDDEN,
            CredentialsError::ExchangePolicyMissing { .. } => StatusCode::SERVICE_UNAVAILABLE,
            CredentialsError::Exchange { source, .. } if source.is_transient() => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            CredentialsError::Exchange { .. } => StatusCode::BAD_GATEWAY,
            CredentialsError::Token { source, .. } => match **source {
                TokenAccessError::Store(_) | TokenAccessError::RefreshBusy => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                _ => StatusCode::BAD_GATEWAY,
            },
        }
    }

    /// Stable label for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            CredentialsError::ForwardWithoutToken { .. }
            | CredentialsError::ForwardAudience { .. } => "forward_refused",
            CredentialsError::ForwardGatewayToken { .. } => "forward_gateway_token",
            CredentialsError::ExchangeWithoutToken { .. } => "exchange_refused",
            CredentialsError::ExchangePolicyMissing { .. } => "exchange_policy_missing",
            CredentialsError::Exchange { .. } => "exchange_failed",
            CredentialsError::Token { .. } => "token_error",
        }
    }
}
