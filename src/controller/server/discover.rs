//! The discover stage (oauth mode): probe the remote server's RFC 9728 protected-resource
//! metadata and its authorization server's RFC 8414 / OIDC metadata, and say what was found as
//! the `AuthorizationServerDiscovered` condition plus `status.authorizationServer`.
//!
//! A failure here is a condition, never a reconcile error: the server stays registered (the
//! gateway discovers again on each flow), and transient failures are retried with backoff.

use crate::controller::reconcile::conditions::Verdict;
use crate::crd::AuthorizationServerStatus;
use crate::crd::condition::AUTHORIZATION_SERVER_DISCOVERED;
use crate::oauth::{AuthServerMetadata, Discovery, ProtectedResourceMetadata};
use crate::registry::{ClientIdentity, OAuthSettings};
use url::Url;

/// Condition reasons of the discover stage (besides [`crate::oauth::DiscoveryError::reason`]).
pub mod reason {
    pub const DISCOVERED: &str = "Discovered";
    pub const ISSUER_NOT_ADVERTISED: &str = "IssuerNotAdvertised";
    pub const NO_AUTHORIZATION_SERVER: &str = "NoAuthorizationServer";
    pub const CLIENT_REGISTRATION_UNSUPPORTED: &str = "ClientRegistrationUnsupported";
}

/// What discovery found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The `AuthorizationServerDiscovered` condition.
    pub verdict: Verdict,
    /// Capabilities of the authorization server, when its metadata was read.
    pub server: Option<AuthorizationServerStatus>,
    /// Whether trying again soon may give another answer (network trouble).
    pub transient: bool,
}

impl Discovered {
    fn failed(reason: &str, message: String, transient: bool) -> Self {
        Self {
            verdict: Verdict::new(AUTHORIZATION_SERVER_DISCOVERED, false, reason, message),
            server: None,
            transient,
        }
    }
}

/// Runs discovery for a server at `url` with `settings`.
pub async fn discover(discovery: &Discovery, url: &Url, settings: &OAuthSettings) -> Discovered {
    // The challenge's `resource_metadata` is the most precise hint; a server that cannot be
    // probed may still publish metadata at the well-known locations.
    let hint = match discovery.probe_challenge(url).await {
        Ok(challenge) => challenge.and_then(|c| c.resource_metadata),
        Err(e) => {
            tracing::debug!(server = %url, reason = e.reason(), "probing the server for a challenge failed");
            None
        }
    };
    let prm = match discovery
        .protected_resource(url, hint.as_deref(), &settings.resource)
        .await
    {
        Ok(found) => Some(found.metadata),
        // A pinned issuer works without protected-resource metadata.
        Err(_) if settings.issuer.is_some() => None,
        Err(e) => {
            return Discovered::failed(
                e.reason(),
                format!(
                    "protected resource metadata (RFC 9728) of {url}: {e}; check that spec.url is the server's MCP endpoint, or pin spec.auth.oauth.issuer"
                ),
                e.is_transient(),
            );
        }
    };
    let issuer = match choose_issuer(settings.issuer.as_deref(), prm.as_ref()) {
        Ok(issuer) => issuer,
        Err(failed) => return failed,
    };
    match discovery.authorization_server(&issuer).await {
        Ok(md) => from_metadata(&md, &settings.client),
        Err(e) => Discovered::failed(
            e.reason(),
            format!("authorization server metadata of `{issuer}`: {e}"),
            e.is_transient(),
        ),
    }
}

/// The pinned issuer (which must be advertised when metadata exists), else the first
/// authorization server the protected resource names.
pub fn choose_issuer(
    pinned: Option<&str>,
    prm: Option<&ProtectedResourceMetadata>,
) -> Result<String, Discovered> {
    match (pinned, prm) {
        (Some(issuer), Some(prm)) if !prm.authorization_servers.iter().any(|a| a == issuer) => {
            Err(Discovered::failed(
                reason::ISSUER_NOT_ADVERTISED,
                format!(
                    "spec.auth.oauth.issuer `{issuer}` is not among the authorization servers the server advertises ({}): fix the issuer or remove it to use the advertised one",
                    prm.authorization_servers.join(", ")
                ),
                false,
            ))
        }
        (Some(issuer), _) => Ok(issuer.to_owned()),
        (None, Some(prm)) => prm.authorization_servers.first().cloned().ok_or_else(|| {
            Discovered::failed(
                reason::NO_AUTHORIZATION_SERVER,
                "the server's protected resource metadata lists no authorization server: pin spec.auth.oauth.issuer".to_owned(),
                false,
            )
        }),
        (None, None) => Err(Discovered::failed(
            reason::NO_AUTHORIZATION_SERVER,
            "no protected resource metadata and no spec.auth.oauth.issuer: pin the issuer".to_owned(),
            false,
        )),
    }
}

/// Capabilities from validated metadata, and whether the gateway can act as a client there.
pub fn from_metadata(md: &AuthServerMetadata, client: &ClientIdentity) -> Discovered {
    let server = AuthorizationServerStatus {
        issuer: Some(md.issuer.clone()),
        pkce: Some(
            md.code_challenge_methods_supported
                .iter()
                .any(|m| m == "S256"),
        ),
        cimd: Some(md.client_id_metadata_document_supported),
        iss_parameter: Some(md.authorization_response_iss_parameter_supported),
    };
    let verdict = if matches!(client, ClientIdentity::Cimd)
        && !md.client_id_metadata_document_supported
    {
        Verdict::new(
            AUTHORIZATION_SERVER_DISCOVERED,
            false,
            reason::CLIENT_REGISTRATION_UNSUPPORTED,
            format!(
                "authorization server `{}` does not accept Client ID Metadata Documents: register a client there and set spec.auth.oauth.client",
                md.issuer
            ),
        )
    } else {
        Verdict::new(
            AUTHORIZATION_SERVER_DISCOVERED,
            true,
            reason::DISCOVERED,
            format!("authorization server `{}`", md.issuer),
        )
    };
    Discovered {
        verdict,
        server: Some(server),
        transient: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{ClientAuthMethod, PreRegisteredClient};

    fn prm(servers: &[&str]) -> ProtectedResourceMetadata {
        ProtectedResourceMetadata {
            resource: Some("https://mcp.example.com/mcp".into()),
            authorization_servers: servers.iter().map(|s| (*s).to_owned()).collect(),
            ..ProtectedResourceMetadata::default()
        }
    }

    fn metadata(cimd: bool) -> AuthServerMetadata {
        let url = |p: &str| Url::parse(&format!("https://idp.example.com{p}")).expect("url");
        AuthServerMetadata {
            issuer: "https://idp.example.com".into(),
            authorization_endpoint: url("/authorize"),
            token_endpoint: url("/token"),
            revocation_endpoint: None,
            registration_endpoint: None,
            jwks_uri: None,
            scopes_supported: vec![],
            response_types_supported: vec!["code".into()],
            grant_types_supported: vec![],
            code_challenge_methods_supported: vec!["S256".into()],
            token_endpoint_auth_methods_supported: vec![],
            authorization_response_iss_parameter_supported: true,
            client_id_metadata_document_supported: cimd,
        }
    }

    #[test]
    fn issuer_choice_follows_pin_and_metadata() {
        let two = prm(&["https://a.example", "https://b.example"]);
        assert_eq!(
            choose_issuer(None, Some(&two)).expect("first"),
            "https://a.example"
        );
        assert_eq!(
            choose_issuer(Some("https://b.example"), Some(&two)).expect("pinned"),
            "https://b.example"
        );
        assert_eq!(
            choose_issuer(Some("https://c.example"), None).expect("pinned, no metadata"),
            "https://c.example"
        );
        let refused =
            choose_issuer(Some("https://c.example"), Some(&two)).expect_err("not advertised");
        assert_eq!(refused.verdict.reason, reason::ISSUER_NOT_ADVERTISED);
        assert!(!refused.transient);
        let empty = choose_issuer(None, Some(&prm(&[]))).expect_err("none listed");
        assert_eq!(empty.verdict.reason, reason::NO_AUTHORIZATION_SERVER);
    }

    #[test]
    fn capabilities_are_reported_and_cimd_is_required_only_for_cimd_clients() {
        let ok = from_metadata(&metadata(true), &ClientIdentity::Cimd);
        assert!(ok.verdict.ok);
        let server = ok.server.expect("capabilities");
        assert_eq!(server.issuer.as_deref(), Some("https://idp.example.com"));
        assert_eq!(server.pkce, Some(true));
        assert_eq!(server.cimd, Some(true));
        assert_eq!(server.iss_parameter, Some(true));

        let no_cimd = from_metadata(&metadata(false), &ClientIdentity::Cimd);
        assert!(!no_cimd.verdict.ok);
        assert_eq!(
            no_cimd.verdict.reason,
            reason::CLIENT_REGISTRATION_UNSUPPORTED
        );
        assert_eq!(no_cimd.server.and_then(|s| s.cimd), Some(false));

        let registered = ClientIdentity::PreRegistered(PreRegisteredClient {
            client_id: "gw".into(),
            client_secret: None,
            auth_method: ClientAuthMethod::Basic,
        });
        assert!(from_metadata(&metadata(false), &registered).verdict.ok);
    }
}
