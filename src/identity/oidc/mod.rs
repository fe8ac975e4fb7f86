//! `oidc` identity mode: callers present a bearer JWT issued by the configured identity
//! provider; the gateway validates it as an OAuth resource server (signature against the
//! issuer's JWKS, `iss`, `aud`, `exp`/`nbf`). user = `sub`, session = `sid` or else the user.

mod jwks;
mod keys;
mod sign_in;
mod token;

pub use jwks::JwksError;
pub use keys::{ASYMMETRIC_ALGORITHMS, KeysError};
pub use sign_in::{SignInClient, sign_in_nonce};
pub use token::{AudiencePolicy, AudienceTarget, MAX_IDENTIFIER_BYTES, MAX_TOKEN_BYTES};

use super::bearer::bearer_token;
use super::{Authenticated, ConfigError, IdentityError, TokenRejection};
use crate::net::OutboundClient;
use crate::oauth::metadata::parse_issuer;
use jsonwebtoken::Algorithm;
use secrecy::SecretString;
use std::time::Duration;
use token::TokenRules;
use url::Url;

/// Default for [`OidcConfig::jwks_min_refresh`].
pub const DEFAULT_JWKS_MIN_REFRESH: Duration = Duration::from_secs(60);
/// Default for [`OidcConfig::leeway`].
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// Settings of `oidc` mode.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The issuer identifier; tokens' `iss` must equal it exactly.
    pub issuer: String,
    /// `aud` values accepted in addition to the gateway's own resources (e.g. the client id an
    /// IdP that ignores RFC 8707 puts in `aud`).
    pub audiences: Vec<String>,
    /// The gateway's public URL: tokens whose `aud` is it, or a server below `{url}/mcp/`, are
    /// accepted. `None`: only [`OidcConfig::audiences`].
    pub resource_base: Option<Url>,
    /// Where the issuer's keys are; `None` (the default): its metadata's `jwks_uri`.
    pub jwks_uri: Option<Url>,
    /// Least time between two JWKS fetches triggered by unknown key ids.
    pub jwks_min_refresh: Duration,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// Accepted signature algorithms (asymmetric only).
    pub algorithms: Vec<Algorithm>,
    /// Scopes advertised in the gateway's protected-resource metadata.
    pub scopes_supported: Vec<String>,
    /// Accept a plain-http issuer / JWKS on a non-loopback host (development only).
    pub allow_insecure_http: bool,
    /// The gateway's own client at the issuer: browsers that open a sign-in link sign in with
    /// it first, so only the link's own user can follow it. `None`: links are bound to the
    /// first browser that opens them.
    pub sign_in: Option<SignInClient>,
}

impl OidcConfig {
    /// Defaults for `issuer`: the gateway's resources must be named by `resource_base` or
    /// `audiences` before use.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences: Vec::new(),
            resource_base: None,
            jwks_uri: None,
            jwks_min_refresh: DEFAULT_JWKS_MIN_REFRESH,
            leeway: DEFAULT_LEEWAY,
            algorithms: ASYMMETRIC_ALGORITHMS.to_vec(),
            scopes_supported: Vec::new(),
            allow_insecure_http: false,
            sign_in: None,
        }
    }
}

/// Validates bearer JWTs of one issuer.
#[derive(Debug)]
pub struct OidcAuthenticator {
    rules: TokenRules,
    jwks: jwks::JwksCache,
    scopes_supported: Vec<String>,
    sign_in: Option<sign_in::SignIn>,
}

impl OidcAuthenticator {
    /// Checks the configuration; no I/O (the keys are fetched on first use, so a briefly
    /// unreachable IdP does not stop the gateway from starting).
    pub fn new(cfg: OidcConfig, client: OutboundClient) -> Result<Self, ConfigError> {
        if cfg.issuer.is_empty() {
            return Err(ConfigError::MissingIssuer);
        }
        parse_issuer(&cfg.issuer, cfg.allow_insecure_http)
            .map_err(|e| ConfigError::InvalidIssuer(e.to_string()))?;
        let audiences = AudiencePolicy::new(&cfg.audiences, cfg.resource_base.as_ref());
        if audiences.is_empty() {
            return Err(ConfigError::NoAudience);
        }
        if let Some(bad) = cfg
            .algorithms
            .iter()
            .find(|a| !ASYMMETRIC_ALGORITHMS.contains(a))
        {
            return Err(ConfigError::UnsupportedAlgorithm(format!("{bad:?}")));
        }
        if cfg.algorithms.is_empty() {
            return Err(ConfigError::UnsupportedAlgorithm(
                "(none listed)".to_owned(),
            ));
        }
        if let Some(uri) = &cfg.jwks_uri {
            crate::oauth::metadata::check_endpoint(
                "jwks_uri",
                uri.as_str(),
                cfg.allow_insecure_http,
            )
            .map_err(|e| ConfigError::InvalidJwksUri(e.to_string()))?;
        }
        if let Some(c) = &cfg.sign_in
            && !sign_in::valid_client_id(&c.client_id)
        {
            return Err(ConfigError::SignInClient(
                "the client id is empty or contains control characters".to_owned(),
            ));
        }
        let jwks = jwks::JwksCache::new(
            client.clone(),
            cfg.issuer.clone(),
            cfg.jwks_uri,
            cfg.allow_insecure_http,
            cfg.algorithms.clone(),
            cfg.jwks_min_refresh,
        );
        Ok(Self {
            rules: TokenRules {
                issuer: cfg.issuer,
                audiences,
                leeway_secs: cfg.leeway.as_secs(),
                algorithms: cfg.algorithms,
            },
            jwks,
            scopes_supported: cfg.scopes_supported,
            sign_in: cfg
                .sign_in
                .map(|c| sign_in::SignIn::new(c, client, cfg.allow_insecure_http)),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.rules.issuer
    }

    pub fn scopes_supported(&self) -> &[String] {
        &self.scopes_supported
    }

    /// JWKS documents requested so far (for metrics and tests).
    pub fn jwks_fetches(&self) -> u64 {
        self.jwks.fetches()
    }

    /// Checks `token` against `rules` with this issuer's keys: a cheap look first (algorithm,
    /// issuer), then the key (refetching the JWKS for an unknown `kid`), signature and claims.
    async fn verify(
        &self,
        token: &str,
        rules: &TokenRules,
        target: AudienceTarget<'_>,
    ) -> Result<token::Verified, IdentityError> {
        let peeked = token::peek(token, &rules.issuer, &rules.algorithms)
            .map_err(IdentityError::Rejected)?;
        let loaded = self.jwks.keys_for(peeked.kid.as_deref()).await?;
        let key = loaded
            .set
            .get(peeked.kid.as_deref())
            .ok_or(IdentityError::Rejected(TokenRejection::UnknownKey))?;
        token::verify(token, &peeked, key, rules, target).map_err(IdentityError::Rejected)
    }

    /// The caller of a request bearing a valid token of this issuer, for an audience accepted
    /// at `target`.
    pub async fn authenticate(
        &self,
        headers: &http::HeaderMap,
        target: AudienceTarget<'_>,
    ) -> Result<Authenticated, IdentityError> {
        let token = bearer_token(headers)?;
        let verified = self.verify(token, &self.rules, target).await?;
        let gateway_audiences = verified
            .audiences
            .iter()
            .filter(|a| self.rules.audiences.names_gateway(a))
            .cloned()
            .collect();
        Ok(Authenticated {
            caller: verified.caller,
            bearer: Some(SecretString::from(token.to_owned())),
            audiences: verified.audiences,
            gateway_audiences,
        })
    }
}
