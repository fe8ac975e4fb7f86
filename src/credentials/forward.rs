//! `forward` mode: the caller's own bearer token goes upstream, but only when it was issued for
//! one of the audiences the server's resource allows — a token for the gateway (or for another
//! server) is never replayed to a remote server that did not ask for it.
//!
//! A token that is also valid at the gateway (its public URL, any URL below it, a configured
//! `--oidc-audience`) is never forwarded, whatever the resource allows: the resource's author
//! (anyone who may write a `RemoteMCPServer` in its namespace) chooses both the audiences and
//! the remote server, and could otherwise collect callers' gateway credentials and replay them
//! at the gateway. Such a forward server accepts, on its own path only, tokens for its own
//! audiences ([`own_audiences`]), so it needs no gateway-wide audience to identify callers.

use super::{AfterRefusal, CredentialSource, Credentials, CredentialsError, Refusal};
use crate::identity::Authenticated;
use crate::net::headers;
use crate::registry::{AuthSettings, ForwardSettings, ServerKey, ServerRegistration};
use secrecy::ExposeSecret as _;

/// The source of `forward` mode. A refused forwarded token stands: it is the caller's own, and
/// the gateway has no other.
#[derive(Debug, Default)]
pub struct ForwardToken;

impl CredentialSource for ForwardToken {
    type Settings = ForwardSettings;

    async fn get(
        &self,
        server: &ServerRegistration,
        settings: &ForwardSettings,
        auth: &Authenticated,
    ) -> Result<Credentials, CredentialsError> {
        credentials(&server.key, settings, auth)
    }

    async fn refused(
        &self,
        _server: &ServerRegistration,
        _settings: &ForwardSettings,
        _auth: &Authenticated,
        _refused: &Credentials,
        _refusal: Refusal,
        _retried: bool,
    ) -> Result<AfterRefusal, CredentialsError> {
        Ok(AfterRefusal::Stands)
    }
}

/// The credentials to forward for `auth` to `server`, or why not.
pub fn credentials(
    server: &ServerKey,
    settings: &ForwardSettings,
    auth: &Authenticated,
) -> Result<Credentials, CredentialsError> {
    let Some(token) = &auth.bearer else {
        return Err(CredentialsError::ForwardWithoutToken {
            server: server.clone(),
        });
    };
    if !auth
        .audiences
        .iter()
        .any(|a| settings.audiences.contains(a))
    {
        return Err(CredentialsError::ForwardAudience {
            server: server.clone(),
            allowed: settings.audiences.join(", "),
            presented: auth.audiences.join(", "),
        });
    }
    // Whatever the resource allows: its author chose that list.
    if !auth.gateway_audiences.is_empty() {
        return Err(CredentialsError::ForwardGatewayToken {
            server: server.clone(),
            audiences: auth.gateway_audiences.join(", "),
        });
    }
    headers::bearer(token.expose_secret())
        .map(Credentials::Forwarded)
        .ok_or_else(|| CredentialsError::ForwardWithoutToken {
            server: server.clone(),
        })
}

/// The audiences a registered server names as its own, accepted as caller identity on that
/// server's path only: a `forward` server's allowed audiences (the tokens it is meant to
/// receive). Empty for every other mode and for unknown servers.
pub fn own_audiences(reg: Option<&ServerRegistration>) -> &[String] {
    match reg.map(|r| &r.auth) {
        Some(AuthSettings::Forward(settings)) => &settings.audiences,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Caller;
    use secrecy::SecretString;

    fn auth(token: Option<&str>, audiences: &[&str]) -> Authenticated {
        Authenticated {
            caller: Caller::new("alice", "s1"),
            bearer: token.map(|t| SecretString::from(t.to_owned())),
            audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
            gateway_audiences: Vec::new(),
        }
    }

    fn settings(audiences: &[&str]) -> ForwardSettings {
        ForwardSettings {
            audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    fn key() -> ServerKey {
        ServerKey::new("team-a", "cluster-b")
    }

    #[test]
    fn a_token_for_an_allowed_audience_is_forwarded() {
        let c = credentials(
            &key(),
            &settings(&["mcp-b", "mcp-c"]),
            &auth(Some("tok"), &["other", "mcp-c"]),
        )
        .expect("forwarded");
        let value = c.authorization().expect("a header");
        assert_eq!(value.as_bytes(), b"Bearer tok");
        assert!(value.is_sensitive());
    }

    #[test]
    fn a_token_for_another_audience_is_refused_naming_both_lists() {
        let err = credentials(
            &key(),
            &settings(&["mcp-b"]),
            &auth(Some("tok"), &["gateway"]),
        )
        .expect_err("refused");
        let msg = err.to_string();
        assert!(msg.contains("mcp-b") && msg.contains("gateway"), "{msg}");
        assert!(!msg.contains("tok "), "{msg}");
        assert_eq!(err.status(), http::StatusCode::FORBIDDEN);
    }

    #[test]
    fn no_token_or_no_audience_is_refused() {
        let err =
            credentials(&key(), &settings(&["mcp-b"]), &auth(None, &[])).expect_err("no token");
        assert!(matches!(err, CredentialsError::ForwardWithoutToken { .. }));
        assert_eq!(err.status(), http::StatusCode::FORBIDDEN);
        let err = credentials(&key(), &settings(&["mcp-b"]), &auth(Some("tok"), &[]))
            .expect_err("no aud");
        assert!(matches!(err, CredentialsError::ForwardAudience { .. }));
    }

    #[test]
    fn a_token_also_valid_at_the_gateway_is_never_forwarded() {
        // The resource allows the audience, but the token names the gateway too.
        let mut a = auth(Some("tok"), &["mcp-b", "https://gw.example.com/"]);
        a.gateway_audiences = vec!["https://gw.example.com/".to_owned()];
        let err = credentials(&key(), &settings(&["mcp-b", "https://gw.example.com/"]), &a)
            .expect_err("refused");
        assert!(matches!(err, CredentialsError::ForwardGatewayToken { .. }));
        assert_eq!(err.status(), http::StatusCode::FORBIDDEN);
        assert_eq!(err.outcome(), "forward_gateway_token");
        let msg = err.to_string();
        assert!(
            msg.contains("team-a/cluster-b") && msg.contains("https://gw.example.com/"),
            "{msg}"
        );
        assert!(!msg.contains("tok "), "{msg}");
    }
}
