//! Token-endpoint calls: authorization-code exchange, refresh and RFC 7009 revocation.
//!
//! Hand-written form POSTs rather than `oauth2`'s request builders: `oauth2` 5 collapses every
//! non-200 status into one parse error (503, an HTML 500 and a garbage body become
//! indistinguishable, so "transient" cannot be told from "refused"), insists on a JSON
//! `Content-Type`, keeps the raw body inside its error values, and has no place for the 200 +
//! `error` answers some servers send. Each call here is a few lines on top of
//! [`OutboundClient::post_form`] (size cap, timeouts, no redirects) and the pure
//! [`super::token_response`] parsers.

use super::metadata::AuthServerMetadata;
use super::token_response::{
    TokenError, TokenResponse, parse_revocation_response, parse_token_response,
};
use crate::net::OutboundClient;
use crate::registry::ClientAuthMethod;
use secrecy::{ExposeSecret, SecretString};
use url::Url;
use url::form_urlencoded::byte_serialize;

/// How the gateway identifies itself at a token endpoint.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    /// `None` for a public client: `client_id` goes in the form body, no `Authorization`.
    pub client_secret: Option<SecretString>,
    /// How the secret is sent when there is one.
    pub method: ClientAuthMethod,
}

impl ClientCredentials {
    /// A public client (CIMD, or a pre-registered client without a secret).
    pub fn public(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: None,
            method: ClientAuthMethod::default(),
        }
    }
}

/// RFC 7009 `token_type_hint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTypeHint {
    AccessToken,
    RefreshToken,
}

impl TokenTypeHint {
    fn as_str(self) -> &'static str {
        match self {
            TokenTypeHint::AccessToken => "access_token",
            TokenTypeHint::RefreshToken => "refresh_token",
        }
    }
}

/// Token-endpoint client; cheap to clone.
#[derive(Debug, Clone)]
pub struct TokenClient {
    http: OutboundClient,
}

impl TokenClient {
    pub fn new(http: OutboundClient) -> Self {
        Self { http }
    }

    /// Redeems an authorization code (RFC 6749 §4.1.3 + PKCE `code_verifier` + RFC 8707
    /// `resource` when given).
    pub async fn exchange_code(
        &self,
        md: &AuthServerMetadata,
        creds: &ClientCredentials,
        code: &str,
        verifier: &SecretString,
        redirect_uri: &str,
        resource: Option<&str>,
    ) -> Result<TokenResponse, TokenError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier.expose_secret()),
        ];
        if let Some(r) = resource {
            form.push(("resource", r));
        }
        let resp = self.post(&md.token_endpoint, form, creds).await?;
        parse_token_response(resp.0, &resp.1)
    }

    /// Uses a refresh token (RFC 6749 §6), with `resource` when given. The scope is not sent,
    /// so the server keeps the originally granted one.
    pub async fn refresh(
        &self,
        md: &AuthServerMetadata,
        creds: &ClientCredentials,
        refresh_token: &SecretString,
        resource: Option<&str>,
    ) -> Result<TokenResponse, TokenError> {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
        ];
        if let Some(r) = resource {
            form.push(("resource", r));
        }
        let resp = self.post(&md.token_endpoint, form, creds).await?;
        parse_token_response(resp.0, &resp.1)
    }

    /// Revokes a token (RFC 7009). `Ok(false)` when the server has no revocation endpoint.
    pub async fn revoke(
        &self,
        md: &AuthServerMetadata,
        creds: &ClientCredentials,
        token: &SecretString,
        hint: Option<TokenTypeHint>,
    ) -> Result<bool, TokenError> {
        let Some(endpoint) = &md.revocation_endpoint else {
            return Ok(false);
        };
        let mut form = vec![("token", token.expose_secret())];
        if let Some(h) = hint {
            form.push(("token_type_hint", h.as_str()));
        }
        let resp = self.post(endpoint, form, creds).await?;
        parse_revocation_response(resp.0, &resp.1)?;
        Ok(true)
    }

    /// Adds client authentication and POSTs. Basic credentials are form-urlencoded first
    /// (RFC 6749 §2.3.1), which plain HTTP Basic does not do.
    async fn post(
        &self,
        endpoint: &Url,
        mut form: Vec<(&str, &str)>,
        creds: &ClientCredentials,
    ) -> Result<(u16, bytes::Bytes), TokenError> {
        let basic;
        let resp = match (&creds.client_secret, creds.method) {
            (None, _) => {
                form.push(("client_id", &creds.client_id));
                self.http.post_form(endpoint, &form, None).await?
            }
            (Some(secret), ClientAuthMethod::Post) => {
                form.push(("client_id", &creds.client_id));
                form.push(("client_secret", secret.expose_secret()));
                self.http.post_form(endpoint, &form, None).await?
            }
            (Some(secret), ClientAuthMethod::Basic) => {
                let user: String = byte_serialize(creds.client_id.as_bytes()).collect();
                basic = SecretString::from(
                    byte_serialize(secret.expose_secret().as_bytes()).collect::<String>(),
                );
                self.http
                    .post_form(endpoint, &form, Some((&user, &basic)))
                    .await?
            }
        };
        Ok((resp.status.as_u16(), resp.body))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::net::testing::serve;
    use crate::net::{FetchError, OutboundConfig};
    use crate::oauth::metadata::{AuthServerMetadataDocument, validate_as_metadata};
    use axum::Router;
    use axum::body::Body;
    use axum::extract::{Path, State};
    use axum::http::HeaderMap;
    use axum::response::{IntoResponse, Redirect, Response};
    use axum::routing::post;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    /// One request as the test token endpoint saw it: Authorization header and decoded form.
    type Received = (Option<String>, HashMap<String, String>);

    /// Everything the test token endpoint received.
    #[derive(Default, Clone)]
    struct Seen(Arc<Mutex<Vec<Received>>>);

    impl Seen {
        fn last(&self) -> Received {
            self.0.lock().unwrap().last().cloned().expect("a request")
        }
        fn count(&self) -> usize {
            self.0.lock().unwrap().len()
        }
    }

    async fn endpoint(
        State(seen): State<Seen>,
        Path(mode): Path<String>,
        headers: HeaderMap,
        body: String,
    ) -> Response {
        let auth = headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        seen.0.lock().unwrap().push((auth, form));
        let json = |status: u16, v: serde_json::Value| {
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(v.to_string()))
                .unwrap()
        };
        match mode.as_str() {
            "ok" => json(
                200,
                serde_json::json!({"access_token":"at-1","token_type":"Bearer","expires_in":600,
                    "refresh_token":"rt-1","scope":"mcp:tools"}),
            ),
            "ok-norefresh" => json(
                200,
                serde_json::json!({"access_token":"at-2","token_type":"bearer"}),
            ),
            "garbage" => "}{ not json".into_response(),
            "unavailable" => json(503, serde_json::json!({"error":"x"})),
            "html500" => Response::builder()
                .status(500)
                .header("content-type", "text/html")
                .body(Body::from("<html><body>Internal error</body></html>"))
                .unwrap(),
            "big" => "a".repeat(64 * 1024).into_response(),
            "invalid-grant" => json(
                400,
                serde_json::json!({"error":"invalid_grant","error_description":"expired"}),
            ),
            "redirect" => Redirect::to("/token/ok").into_response(),
            _ => json(404, serde_json::json!({})),
        }
    }

    async fn setup() -> (TokenClient, Url, Seen) {
        let seen = Seen::default();
        let app = Router::new()
            .route("/token/{mode}", post(endpoint))
            .with_state(seen.clone());
        let base = serve(app).await;
        let client = OutboundClient::new(OutboundConfig {
            max_body_bytes: 16 * 1024,
            ..OutboundConfig::default()
        })
        .unwrap();
        (TokenClient::new(client), base, seen)
    }

    fn md(base: &Url, mode: &str) -> AuthServerMetadata {
        let issuer = base.as_str().trim_end_matches('/').to_owned();
        let doc = AuthServerMetadataDocument {
            issuer: Some(issuer.clone()),
            authorization_endpoint: Some(format!("{issuer}/auth")),
            token_endpoint: Some(format!("{issuer}/token/{mode}")),
            revocation_endpoint: Some(format!("{issuer}/token/ok")),
            code_challenge_methods_supported: Some(vec!["S256".into()]),
            ..Default::default()
        };
        validate_as_metadata(&issuer, &doc, false).unwrap()
    }

    fn public() -> ClientCredentials {
        ClientCredentials::public("https://gw.example.com/.well-known/oauth-client.json")
    }

    fn confidential(method: ClientAuthMethod) -> ClientCredentials {
        ClientCredentials {
            client_id: "my client".into(),
            client_secret: Some(SecretString::from("p@ss:word")),
            method,
        }
    }

    async fn exchange(
        c: &TokenClient,
        md: &AuthServerMetadata,
        creds: &ClientCredentials,
        resource: Option<&str>,
    ) -> Result<TokenResponse, TokenError> {
        let verifier = SecretString::from("v".repeat(43));
        c.exchange_code(md, creds, "code-1", &verifier, "https://gw/cb", resource)
            .await
    }

    #[tokio::test]
    async fn public_client_code_exchange_with_resource() {
        let (c, base, seen) = setup().await;
        let t = exchange(&c, &md(&base, "ok"), &public(), Some("https://mcp/mcp"))
            .await
            .unwrap();
        assert_eq!(t.access_token.expose_secret(), "at-1");
        assert_eq!(t.refresh_token.unwrap().expose_secret(), "rt-1");
        assert_eq!(t.expires_in, Some(600));
        let (auth, form) = seen.last();
        assert_eq!(auth, None);
        assert_eq!(form["grant_type"], "authorization_code");
        assert_eq!(form["code"], "code-1");
        assert_eq!(form["code_verifier"], "v".repeat(43));
        assert_eq!(form["redirect_uri"], "https://gw/cb");
        assert_eq!(form["client_id"], public().client_id);
        assert_eq!(form["resource"], "https://mcp/mcp");
        assert!(!form.contains_key("client_secret"));
    }

    #[tokio::test]
    async fn basic_auth_form_encodes_credentials() {
        let (c, base, seen) = setup().await;
        let t = exchange(
            &c,
            &md(&base, "ok-norefresh"),
            &confidential(ClientAuthMethod::Basic),
            None,
        )
        .await
        .unwrap();
        assert!(t.refresh_token.is_none());
        let (auth, form) = seen.last();
        let expected = format!("Basic {}", STANDARD.encode("my+client:p%40ss%3Aword"));
        assert_eq!(auth.as_deref(), Some(expected.as_str()));
        assert!(!form.contains_key("client_id"));
        assert!(!form.contains_key("client_secret"));
        assert!(!form.contains_key("resource"));
    }

    #[tokio::test]
    async fn post_auth_puts_credentials_in_body() {
        let (c, base, seen) = setup().await;
        let rt = SecretString::from("rt-old");
        c.refresh(
            &md(&base, "ok"),
            &confidential(ClientAuthMethod::Post),
            &rt,
            Some("https://mcp/mcp"),
        )
        .await
        .unwrap();
        let (auth, form) = seen.last();
        assert_eq!(auth, None);
        assert_eq!(form["grant_type"], "refresh_token");
        assert_eq!(form["refresh_token"], "rt-old");
        assert_eq!(form["client_id"], "my client");
        assert_eq!(form["client_secret"], "p@ss:word");
        assert_eq!(form["resource"], "https://mcp/mcp");
        assert!(!form.contains_key("scope"));
    }

    #[tokio::test]
    async fn failure_classification() {
        let (c, base, seen) = setup().await;
        let err = |mode: &'static str| {
            let (c, md) = (c.clone(), md(&base, mode));
            async move { exchange(&c, &md, &public(), None).await.unwrap_err() }
        };
        assert_eq!(err("garbage").await.kind(), "malformed");
        let e = err("unavailable").await;
        assert_eq!(e, TokenError::Unavailable);
        assert!(e.is_transient());
        let e = err("html500").await;
        assert_eq!(e, TokenError::UpstreamStatus(500));
        assert!(!e.to_string().contains("Internal error"));
        assert_eq!(
            err("big").await,
            TokenError::Fetch(FetchError::TooLarge { limit: 16 * 1024 })
        );
        let e = err("invalid-grant").await;
        assert!(e.is_invalid_grant());
        assert!(!e.is_transient());
        let before = seen.count();
        assert_eq!(
            err("redirect").await,
            TokenError::Fetch(FetchError::Redirect(303))
        );
        assert_eq!(seen.count(), before + 1, "the redirect was followed");
    }

    #[tokio::test]
    async fn revocation() {
        let (c, base, seen) = setup().await;
        let token = SecretString::from("rt-9");
        let md_ok = md(&base, "ok");
        let done = c
            .revoke(&md_ok, &public(), &token, Some(TokenTypeHint::RefreshToken))
            .await
            .unwrap();
        assert!(done);
        let (_, form) = seen.last();
        assert_eq!(form["token"], "rt-9");
        assert_eq!(form["token_type_hint"], "refresh_token");
        let mut no_endpoint = md_ok.clone();
        no_endpoint.revocation_endpoint = None;
        let before = seen.count();
        assert!(
            !c.revoke(&no_endpoint, &public(), &token, None)
                .await
                .unwrap()
        );
        assert_eq!(seen.count(), before);
    }
}
