//! `forward` mode: the caller's own bearer token goes upstream, but only when it was issued for
//! one of the audiences the server's resource allows — a token for the gateway (or for another
//! server) is never replayed to a remote server that did not ask for it.

use super::credentials::Credentials;
use super::error::GatewayError;
use super::headers;
use crate::identity::Authenticated;
use crate::registry::{ForwardSettings, ServerKey};
use secrecy::ExposeSecret as _;

/// The credentials to forward for `auth` to `server`, or why not.
pub fn credentials(
    server: &ServerKey,
    settings: &ForwardSettings,
    auth: &Authenticated,
) -> Result<Credentials, GatewayError> {
    let Some(token) = &auth.bearer else {
        return Err(GatewayError::ForwardWithoutToken {
            server: server.clone(),
        });
    };
    if !auth
        .audiences
        .iter()
        .any(|a| settings.audiences.contains(a))
    {
        return Err(GatewayError::ForwardAudience {
            server: server.clone(),
            allowed: settings.audiences.join(", "),
            presented: auth.audiences.join(", "),
        });
    }
    headers::bearer(token.expose_secret())
        .map(Credentials::Forwarded)
        .ok_or_else(|| GatewayError::ForwardWithoutToken {
            server: server.clone(),
        })
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
        assert!(matches!(err, GatewayError::ForwardWithoutToken { .. }));
        assert_eq!(err.status(), http::StatusCode::FORBIDDEN);
        let err = credentials(&key(), &settings(&["mcp-b"]), &auth(Some("tok"), &[]))
            .expect_err("no aud");
        assert!(matches!(err, GatewayError::ForwardAudience { .. }));
    }
}
