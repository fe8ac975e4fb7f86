//! Why an exchange failed, in words a user or operator can act on. Messages never carry the
//! subject token, the issued token or a client secret; the only server text echoed is a
//! charset-checked OAuth error code and issuer URLs.

use crate::net::FetchError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// An RFC 6749 §5.2 / RFC 8693 §2.2.2 error answer.
    #[error("the token endpoint refused the exchange: {error}{}", hint(.error))]
    Rejected {
        error: String,
        /// Cleaned and truncated; kept for debugging, not shown in the message.
        description: Option<String>,
    },
    #[error("the token endpoint is temporarily unavailable (HTTP {0})")]
    Unavailable(u16),
    #[error("the token endpoint answered HTTP {0} without an OAuth error")]
    UpstreamStatus(u16),
    #[error("the token endpoint could not be reached: {0}")]
    Unreachable(FetchError),
    #[error(
        "the token endpoint is at an address the gateway may not connect to ({0}); set \
         spec.allowPrivateNetworks on the TokenExchangePolicy if it is meant to be on a private network"
    )]
    AddressRefused(String),
    #[error("malformed token-exchange response: {0}")]
    Malformed(&'static str),
    #[error("the issued token is of type {issued}, but {requested} was requested")]
    WrongTokenType { requested: String, issued: String },
    #[error("the issued token type `{0}` is not a token type URN")]
    UnknownTokenType(String),
    #[error("token type `{0}` is not supported (only Bearer, or N_A for non-access tokens)")]
    UnsupportedTokenType(String),
    #[error(
        "the issued token's issuer is {actual}, but the policy expects {expected}; if the token \
         endpoint is reached through a proxy, set spec.expectedIssuer to the provider's issuer"
    )]
    IssuerMismatch { expected: String, actual: String },
    #[error("the issued token carries no issuer (iss) claim, but the policy expects {expected}")]
    MissingIssuer { expected: String },
    #[error("the HTTP client for the policy could not be built: {0}")]
    ClientSetup(String),
    /// The policy's endpoint failed the check against the issuer's metadata: no caller's token
    /// is sent to it. `message` is the check's own explanation (issuer and endpoint URLs).
    #[error(
        "the token endpoint of the TokenExchangePolicy is not verified ({reason}), so no token was sent to it: {message}"
    )]
    EndpointUnverified { reason: String, message: String },
    /// The policy's issuer is not one the gateway's operator lets receive callers' tokens: its
    /// author could run that identity provider and collect them.
    #[error(
        "the TokenExchangePolicy's issuer {issuer} is not allowed to receive callers' tokens, so \
         none was sent; the gateway's operator allows issuers with --exchange-allowed-issuers \
         (Helm: exchangeAllowedIssuers)"
    )]
    IssuerNotAllowed { issuer: String },
}

/// What to do about an OAuth error code.
fn hint(error: &str) -> &'static str {
    match error {
        "invalid_grant" => {
            " (the identity provider did not accept the caller's token: sign in to the gateway again)"
        }
        "invalid_client" | "unauthorized_client" => {
            " (check the client credentials of the TokenExchangePolicy and that the client may use token exchange)"
        }
        "invalid_target" => " (check the audience/resource of the TokenExchangePolicy)",
        "invalid_scope" => " (check spec.scopes of the TokenExchangePolicy)",
        "unsupported_grant_type" => " (the provider does not support RFC 8693 token exchange)",
        "invalid_request" => {
            " (check subjectTokenType and requestedTokenType of the TokenExchangePolicy)"
        }
        _ => "",
    }
}

impl ExchangeError {
    /// The caller's token was refused: signing in again is the fix.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, ExchangeError::Rejected { error, .. } if error == "invalid_grant")
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            ExchangeError::Unavailable(_) => true,
            ExchangeError::UpstreamStatus(code) => *code >= 500 || *code == 429,
            // A TLS handshake refused over certificates is configuration, not bad luck.
            ExchangeError::Unreachable(e) => e.is_transient() && !is_tls_refusal(e),
            ExchangeError::Rejected { error, .. } => error == "temporarily_unavailable",
            _ => false,
        }
    }

    /// A stable snake_case label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ExchangeError::Rejected { .. } => "rejected",
            ExchangeError::Unavailable(_) => "unavailable",
            ExchangeError::UpstreamStatus(_) => "upstream_status",
            ExchangeError::Unreachable(_) => "unreachable",
            ExchangeError::AddressRefused(_) => "address_refused",
            ExchangeError::Malformed(_) => "malformed",
            ExchangeError::WrongTokenType { .. }
            | ExchangeError::UnknownTokenType(_)
            | ExchangeError::UnsupportedTokenType(_) => "token_type",
            ExchangeError::IssuerMismatch { .. } | ExchangeError::MissingIssuer { .. } => {
                "issuer_mismatch"
            }
            ExchangeError::ClientSetup(_) => "client_setup",
            ExchangeError::EndpointUnverified { .. } => "endpoint_unverified",
            ExchangeError::IssuerNotAllowed { .. } => "issuer_not_allowed",
        }
    }
}

/// Whether a transport failure is a TLS refusal (a certificate problem or a fatal alert, such as
/// a server demanding a client certificate).
fn is_tls_refusal(e: &FetchError) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    text.contains("certificate") || text.contains("fatal alert")
}

impl From<FetchError> for ExchangeError {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::AddressRefused(r) => ExchangeError::AddressRefused(r.to_string()),
            other => ExchangeError::Unreachable(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_say_what_to_do() {
        let e = ExchangeError::Rejected {
            error: "invalid_grant".into(),
            description: Some("expired".into()),
        };
        assert!(e.is_invalid_grant());
        assert!(e.to_string().contains("sign in"), "{e}");
        assert!(
            !e.to_string().contains("expired"),
            "description kept out: {e}"
        );
        let e = ExchangeError::Rejected {
            error: "invalid_client".into(),
            description: None,
        };
        assert!(e.to_string().contains("client credentials"), "{e}");
        assert!(!e.is_invalid_grant());
        assert_eq!(e.kind(), "rejected");
    }

    #[test]
    fn transient_failures_are_told_apart() {
        assert!(ExchangeError::Unavailable(503).is_transient());
        assert!(ExchangeError::Unreachable(FetchError::Timeout).is_transient());
        let tls = FetchError::Transport("received fatal alert: CertificateRequired".into());
        assert!(!ExchangeError::Unreachable(tls).is_transient());
        assert!(!ExchangeError::Malformed("x").is_transient());
        let refused = ExchangeError::from(FetchError::Status(500));
        assert!(matches!(refused, ExchangeError::Unreachable(_)));
    }
}
