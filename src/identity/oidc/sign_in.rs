//! Browser sign-in at the gateway's own issuer (`--oidc-client-id`). Browsers carry no bearer
//! token, so in `oidc` mode a sign-in link cannot tell who opened it; with a sign-in client the
//! browser first goes through an OpenID Connect authorization-code flow (PKCE and `nonce`) at
//! `--oidc-issuer`, and only a browser whose ID token names the link's own user goes on to the
//! remote server's authorization server. The ID token is checked like a bearer token (the
//! issuer's keys, `iss`, algorithms, `exp`/`nbf` with leeway) with `aud` = the client id and
//! the `nonce` of this sign-in; nothing of it is stored or logged.

use super::OidcAuthenticator;
use super::token::{AudiencePolicy, AudienceTarget, TokenRules};
use crate::identity::{IdentityError, TokenRejection};
use crate::net::OutboundClient;
use crate::oauth::metadata::{as_metadata_candidates, parse_issuer, validate_as_metadata};
use crate::oauth::{AuthServerMetadata, AuthServerMetadataDocument};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// The gateway's client at its own issuer, for browser sign-in.
#[derive(Clone)]
pub struct SignInClient {
    pub client_id: String,
    /// `None`: a public client (PKCE only); else sent with HTTP Basic.
    pub client_secret: Option<SecretString>,
}

impl fmt::Debug for SignInClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignInClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "…"))
            .finish()
    }
}

/// The sign-in client and the issuer's metadata once loaded.
#[derive(Debug)]
pub(super) struct SignIn {
    client: SignInClient,
    /// Fetches the issuer's metadata (the identity provider's client, as for its keys).
    http: OutboundClient,
    allow_insecure_http: bool,
    /// Loaded on the first sign-in; a failed load is retried by the next one.
    metadata: OnceCell<Arc<AuthServerMetadata>>,
}

impl SignIn {
    pub(super) fn new(
        client: SignInClient,
        http: OutboundClient,
        allow_insecure_http: bool,
    ) -> Self {
        Self {
            client,
            http,
            allow_insecure_http,
            metadata: OnceCell::new(),
        }
    }
}

/// Non-empty and free of control characters (it goes into URLs, forms and logs).
pub(super) fn valid_client_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 1024 && !id.chars().any(char::is_control)
}

/// The OpenID `nonce` of a sign-in, derived from its PKCE verifier: it ties the ID token to
/// this sign-in without storing anything more, and reveals nothing about the verifier.
pub fn sign_in_nonce(verifier: &SecretString) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"mcp-oauth-operator sign-in nonce v1\0");
    hasher.update(verifier.expose_secret().as_bytes());
    URL_SAFE_NO_PAD.encode(hasher.finalize())
}

impl OidcAuthenticator {
    /// The browser sign-in client, when one is configured.
    pub fn sign_in_client(&self) -> Option<&SignInClient> {
        self.sign_in.as_ref().map(|s| &s.client)
    }

    /// The issuer's authorization server metadata (endpoints for the sign-in), fetched once
    /// with the same client and rules as its keys: `issuer` must match exactly, S256 PKCE
    /// must be offered.
    pub async fn sign_in_metadata(&self) -> Result<Arc<AuthServerMetadata>, IdentityError> {
        let sign_in = self.sign_in.as_ref().ok_or_else(|| {
            IdentityError::Unavailable("no sign-in client is configured".to_owned())
        })?;
        sign_in
            .metadata
            .get_or_try_init(|| async {
                let issuer = parse_issuer(&self.rules.issuer, sign_in.allow_insecure_http)
                    .map_err(|e| IdentityError::Unavailable(e.to_string()))?;
                let mut last = String::from("no metadata document answered");
                for url in as_metadata_candidates(&issuer) {
                    let doc = match sign_in
                        .http
                        .get_json::<AuthServerMetadataDocument>(&url)
                        .await
                    {
                        Ok(doc) => doc,
                        Err(e) => {
                            last = format!("{url}: {e}");
                            continue;
                        }
                    };
                    match validate_as_metadata(
                        &self.rules.issuer,
                        &doc,
                        sign_in.allow_insecure_http,
                    ) {
                        Ok(md) => return Ok(Arc::new(md)),
                        Err(e) => last = format!("{url}: {e}"),
                    }
                }
                Err(IdentityError::Unavailable(format!(
                    "the issuer's metadata cannot be used for sign-in ({last})"
                )))
            })
            .await
            .cloned()
    }

    /// Validates the ID token of a sign-in and returns the user it names (`sub`, as for
    /// bearer tokens).
    pub async fn verify_id_token(
        &self,
        id_token: &str,
        nonce: &str,
    ) -> Result<String, IdentityError> {
        let client = self.sign_in_client().ok_or_else(|| {
            IdentityError::Unavailable("no sign-in client is configured".to_owned())
        })?;
        let rules = TokenRules {
            issuer: self.rules.issuer.clone(),
            audiences: AudiencePolicy::new(std::slice::from_ref(&client.client_id), None),
            leeway_secs: self.rules.leeway_secs,
            algorithms: self.rules.algorithms.clone(),
        };
        let verified = self
            .verify(id_token, &rules, AudienceTarget::Gateway)
            .await?;
        check_azp(
            &verified.audiences,
            verified.azp.as_deref(),
            &client.client_id,
        )
        .map_err(IdentityError::Rejected)?;
        if verified.nonce.as_deref() != Some(nonce) {
            return Err(IdentityError::Rejected(TokenRejection::InvalidClaim(
                "nonce",
            )));
        }
        Ok(verified.caller.user)
    }
}

/// OpenID Connect Core §3.1.3.7: an ID token for several audiences must name us as its
/// authorized party (`azp`), and an `azp` that is present must be us.
fn check_azp(
    audiences: &[String],
    azp: Option<&str>,
    client_id: &str,
) -> Result<(), TokenRejection> {
    match azp {
        Some(party) if party != client_id => Err(TokenRejection::InvalidClaim("azp")),
        None if audiences.len() > 1 => Err(TokenRejection::InvalidClaim("azp")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nonce_is_bound_to_the_verifier_and_hides_it() {
        let a = SecretString::from("verifier-a".to_owned());
        let b = SecretString::from("verifier-b".to_owned());
        assert_eq!(sign_in_nonce(&a), sign_in_nonce(&a));
        assert_ne!(sign_in_nonce(&a), sign_in_nonce(&b));
        assert!(!sign_in_nonce(&a).contains("verifier"));
        assert_eq!(sign_in_nonce(&a).len(), 43, "base64url of 32 bytes");
    }

    #[test]
    fn several_audiences_need_us_as_the_authorized_party() {
        let one = vec!["gw".to_owned()];
        let two = vec!["gw".to_owned(), "other".to_owned()];
        assert_eq!(check_azp(&one, None, "gw"), Ok(()));
        assert_eq!(check_azp(&one, Some("gw"), "gw"), Ok(()));
        assert_eq!(check_azp(&two, Some("gw"), "gw"), Ok(()));
        let refused = Err(TokenRejection::InvalidClaim("azp"));
        assert_eq!(check_azp(&two, None, "gw"), refused);
        assert_eq!(check_azp(&two, Some("other"), "gw"), refused);
        assert_eq!(check_azp(&one, Some("other"), "gw"), refused);
    }

    #[test]
    fn client_ids_are_checked() {
        assert!(valid_client_id("gateway"));
        assert!(!valid_client_id(""));
        assert!(!valid_client_id("a\nb"));
        assert!(!valid_client_id(&"x".repeat(1025)));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = SignInClient {
            client_id: "gw".to_owned(),
            client_secret: Some(SecretString::from("s3cret".to_owned())),
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("gw") && !shown.contains("s3cret"), "{shown}");
    }
}
