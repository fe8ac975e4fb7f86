//! RFC 7009 revocation of one stored token set at sign-out: the refresh token first (revoking
//! it ends the grant, so the access tokens minted from it die too at most servers), then the
//! access token. Each attempt ends in an [`RevocationOutcome`]; nothing here fails as a whole,
//! because a revocation problem must never stop the local sign-out.

use super::metadata::AuthServerMetadata;
use super::token_client::{ClientCredentials, TokenClient, TokenTypeHint};
use super::token_response::TokenError;
use secrecy::{ExposeSecret as _, SecretString};

/// How one revocation attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationOutcome {
    /// The authorization server accepted the request (RFC 7009: also for unknown tokens).
    Revoked,
    /// The authorization server advertises no `revocation_endpoint`.
    NoEndpoint,
    /// The server cannot revoke this kind of token (`unsupported_token_type`, RFC 7009
    /// §2.2.1), e.g. self-contained JWT access tokens, which simply expire.
    UnsupportedTokenType,
    /// The request failed; the token may still be valid at the authorization server.
    Failed(TokenError),
}

impl RevocationOutcome {
    /// Classifies the answer of [`TokenClient::revoke`].
    pub fn from_result(result: Result<bool, TokenError>) -> Self {
        match result {
            Ok(true) => RevocationOutcome::Revoked,
            Ok(false) => RevocationOutcome::NoEndpoint,
            Err(TokenError::Rejected { error, .. }) if error == "unsupported_token_type" => {
                RevocationOutcome::UnsupportedTokenType
            }
            Err(e) => RevocationOutcome::Failed(e),
        }
    }

    /// Whether this attempt should be reported as a failure.
    pub fn is_failure(&self) -> bool {
        matches!(self, RevocationOutcome::Failed(_))
    }

    /// A stable label for metrics: `ok`, `no_endpoint`, `unsupported`, `failed`.
    pub fn label(&self) -> &'static str {
        match self {
            RevocationOutcome::Revoked => "ok",
            RevocationOutcome::NoEndpoint => "no_endpoint",
            RevocationOutcome::UnsupportedTokenType => "unsupported",
            RevocationOutcome::Failed(_) => "failed",
        }
    }
}

/// What happened to each token of one set (`None`: there was no such token to revoke).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenSetRevocation {
    pub refresh: Option<RevocationOutcome>,
    pub access: Option<RevocationOutcome>,
}

impl TokenSetRevocation {
    /// Both outcomes that exist, refresh token first, with their RFC 7009 hint.
    pub fn outcomes(&self) -> impl Iterator<Item = (TokenTypeHint, &RevocationOutcome)> {
        let refresh = self
            .refresh
            .as_ref()
            .map(|o| (TokenTypeHint::RefreshToken, o));
        let access = self
            .access
            .as_ref()
            .map(|o| (TokenTypeHint::AccessToken, o));
        refresh.into_iter().chain(access)
    }
}

/// Revokes `refresh` then `access` (either may be absent; an empty string counts as absent)
/// with the client that obtained them. With no revocation endpoint no request is made.
pub async fn revoke_token_set(
    client: &TokenClient,
    md: &AuthServerMetadata,
    creds: &ClientCredentials,
    refresh: Option<&SecretString>,
    access: Option<&SecretString>,
) -> TokenSetRevocation {
    let present = |t: Option<&SecretString>| t.filter(|t| !t.expose_secret().is_empty()).cloned();
    let (refresh, access) = (present(refresh), present(access));
    let one = |token: SecretString, hint| async move {
        RevocationOutcome::from_result(client.revoke(md, creds, &token, Some(hint)).await)
    };
    let refresh = match refresh {
        Some(t) => Some(one(t, TokenTypeHint::RefreshToken).await),
        None => None,
    };
    let access = match access {
        Some(t) => Some(one(t, TokenTypeHint::AccessToken).await),
        None => None,
    };
    TokenSetRevocation { refresh, access }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::net::testing::serve;
    use crate::net::{OutboundClient, OutboundConfig};
    use crate::oauth::metadata::{AuthServerMetadataDocument, validate_as_metadata};
    use axum::Router;
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    type Seen = Arc<Mutex<Vec<HashMap<String, String>>>>;

    /// Revokes opaque tokens, refuses JWTs (`eyJ…`) like node-oidc-provider, fails on `boom`.
    async fn revocation(State(seen): State<Seen>, body: String) -> Response {
        let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let token = form.get("token").cloned().unwrap_or_default();
        seen.lock().unwrap().push(form);
        let json = |status: StatusCode, v: serde_json::Value| {
            (
                status,
                [("content-type", "application/json")],
                v.to_string(),
            )
                .into_response()
        };
        if token.starts_with("eyJ") {
            json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": "unsupported_token_type"}),
            )
        } else if token == "boom" {
            json(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"oops": 1}),
            )
        } else {
            StatusCode::OK.into_response()
        }
    }

    async fn setup(with_endpoint: bool) -> (TokenClient, AuthServerMetadata, Seen) {
        let seen = Seen::default();
        let base = serve(
            Router::new()
                .route("/revoke", post(revocation))
                .with_state(seen.clone()),
        )
        .await;
        let issuer = base.as_str().trim_end_matches('/').to_owned();
        let doc = AuthServerMetadataDocument {
            issuer: Some(issuer.clone()),
            authorization_endpoint: Some(format!("{issuer}/auth")),
            token_endpoint: Some(format!("{issuer}/token")),
            revocation_endpoint: with_endpoint.then(|| format!("{issuer}/revoke")),
            code_challenge_methods_supported: Some(vec!["S256".into()]),
            ..Default::default()
        };
        let md = validate_as_metadata(&issuer, &doc, false).unwrap();
        let client = TokenClient::new(OutboundClient::new(OutboundConfig::default()).unwrap());
        (client, md, seen)
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn outcomes_are_classified() {
        assert_eq!(
            RevocationOutcome::from_result(Ok(true)),
            RevocationOutcome::Revoked
        );
        assert_eq!(
            RevocationOutcome::from_result(Ok(false)),
            RevocationOutcome::NoEndpoint
        );
        let unsupported = RevocationOutcome::from_result(Err(TokenError::Rejected {
            error: "unsupported_token_type".into(),
            description: None,
        }));
        assert_eq!(unsupported, RevocationOutcome::UnsupportedTokenType);
        assert!(!unsupported.is_failure());
        let failed = RevocationOutcome::from_result(Err(TokenError::Rejected {
            error: "invalid_client".into(),
            description: None,
        }));
        assert!(failed.is_failure());
        assert_eq!(failed.label(), "failed");
        assert!(RevocationOutcome::from_result(Err(TokenError::Unavailable)).is_failure());
    }

    #[tokio::test]
    async fn refresh_token_first_then_access_token_with_hints() {
        let (client, md, seen) = setup(true).await;
        let creds = ClientCredentials::public("https://gw.example.com/cimd");
        let done = revoke_token_set(
            &client,
            &md,
            &creds,
            Some(&secret("rt-1")),
            Some(&secret("eyJhbGciOiJFUzI1NiJ9.x.y")),
        )
        .await;
        assert_eq!(done.refresh, Some(RevocationOutcome::Revoked));
        assert_eq!(done.access, Some(RevocationOutcome::UnsupportedTokenType));
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0]["token"], "rt-1");
        assert_eq!(seen[0]["token_type_hint"], "refresh_token");
        assert_eq!(seen[0]["client_id"], "https://gw.example.com/cimd");
        assert_eq!(seen[1]["token_type_hint"], "access_token");
        let hints: Vec<_> = done.outcomes().map(|(h, _)| h).collect();
        assert_eq!(
            hints,
            [TokenTypeHint::RefreshToken, TokenTypeHint::AccessToken]
        );
    }

    #[tokio::test]
    async fn a_failure_is_reported_and_the_other_token_still_tried() {
        let (client, md, seen) = setup(true).await;
        let creds = ClientCredentials::public("c");
        let done = revoke_token_set(
            &client,
            &md,
            &creds,
            Some(&secret("boom")),
            Some(&secret("opaque-at")),
        )
        .await;
        assert_eq!(
            done.refresh,
            Some(RevocationOutcome::Failed(TokenError::UpstreamStatus(500)))
        );
        assert_eq!(done.access, Some(RevocationOutcome::Revoked));
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn absent_tokens_and_missing_endpoint_make_no_request() {
        let (client, md, seen) = setup(false).await;
        let creds = ClientCredentials::public("c");
        let done = revoke_token_set(&client, &md, &creds, None, Some(&secret("at"))).await;
        assert_eq!(done.refresh, None);
        assert_eq!(done.access, Some(RevocationOutcome::NoEndpoint));
        let (client, md, seen2) = setup(true).await;
        let done = revoke_token_set(&client, &md, &creds, Some(&secret("")), None).await;
        assert_eq!(done, TokenSetRevocation::default());
        assert!(seen.lock().unwrap().is_empty() && seen2.lock().unwrap().is_empty());
    }
}
