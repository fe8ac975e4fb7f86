//! The identity settings (plain values the command line fills in) and the [`Authenticator`]
//! they ask for.

use super::{Authenticator, ConfigError, HeaderConfig, OidcConfig, SignInClient};
use crate::net::OutboundClient;
use secrecy::SecretString;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// How the gateway learns who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdentityMode {
    /// One local user and one default session (for `serve` on a laptop).
    #[default]
    Anonymous,
    /// Callers present a bearer JWT of the configured issuer (validated against its JWKS);
    /// user = `sub`, session = `sid` (else the user).
    Oidc,
    /// An authenticating proxy in front names the user (and session) in request headers. Only
    /// behind a proxy that removes client-supplied copies of those headers.
    Header,
}

/// Everything the identity modes are configured with. Only the fields of the chosen mode are
/// read.
#[derive(Debug, Clone)]
pub struct IdentitySettings {
    pub mode: IdentityMode,
    /// `oidc`: issuer of the callers' tokens (their `iss` must equal it exactly).
    pub oidc_issuer: Option<String>,
    /// `oidc`: extra accepted `aud` values (blank ones are ignored).
    pub oidc_audience: Vec<String>,
    /// `oidc`: JWKS URL, instead of the issuer metadata's `jwks_uri`.
    pub oidc_jwks_uri: Option<Url>,
    /// `oidc`: least time between two JWKS refetches caused by unknown key ids.
    pub oidc_jwks_min_refresh: Duration,
    /// `oidc`: clock skew tolerated on `exp` / `nbf`.
    pub oidc_leeway: Duration,
    /// `oidc`: scopes advertised in the protected-resource metadata (blank ones are ignored).
    pub oidc_scope: Vec<String>,
    /// `oidc`: the gateway's own client at the issuer, for browser sign-in.
    pub oidc_client_id: Option<String>,
    /// `oidc`: file holding that client's secret (none: a public client).
    pub oidc_client_secret_file: Option<PathBuf>,
    /// `header`: request header naming the authenticated user.
    pub user_header: String,
    /// `header`: request header naming the session (none: one session per user).
    pub session_header: Option<String>,
    /// Accept a plain-HTTP issuer or JWKS URL.
    pub allow_insecure_http: bool,
}

impl Default for IdentitySettings {
    /// The command line's defaults: `anonymous`, `X-Forwarded-User`, a 60 s JWKS refetch
    /// interval and 30 s of leeway.
    fn default() -> Self {
        Self {
            mode: IdentityMode::default(),
            oidc_issuer: None,
            oidc_audience: Vec::new(),
            oidc_jwks_uri: None,
            oidc_jwks_min_refresh: Duration::from_secs(60),
            oidc_leeway: Duration::from_secs(30),
            oidc_scope: Vec::new(),
            oidc_client_id: None,
            oidc_client_secret_file: None,
            user_header: "X-Forwarded-User".to_owned(),
            session_header: None,
            allow_insecure_http: false,
        }
    }
}

/// Builds the identity mode of `settings`. `public_url` is the gateway's: in `oidc` mode tokens
/// issued for it or for a server below it are accepted.
pub fn from_settings(
    settings: &IdentitySettings,
    public_url: &Url,
    client: OutboundClient,
) -> Result<Authenticator, ConfigError> {
    match settings.mode {
        IdentityMode::Anonymous => Ok(Authenticator::anonymous()),
        IdentityMode::Header => Ok(Authenticator::header(HeaderConfig::new(
            &settings.user_header,
            settings.session_header.as_deref(),
        )?)),
        IdentityMode::Oidc => Authenticator::oidc(oidc_config(settings, public_url)?, client),
    }
}

fn oidc_config(args: &IdentitySettings, public_url: &Url) -> Result<OidcConfig, ConfigError> {
    let issuer = args
        .oidc_issuer
        .as_deref()
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .ok_or(ConfigError::MissingIssuer)?;
    let mut cfg = OidcConfig::new(issuer);
    cfg.audiences = trimmed(&args.oidc_audience);
    cfg.resource_base = Some(public_url.clone());
    cfg.jwks_uri = args.oidc_jwks_uri.clone();
    cfg.jwks_min_refresh = args.oidc_jwks_min_refresh;
    cfg.leeway = args.oidc_leeway;
    cfg.scopes_supported = trimmed(&args.oidc_scope);
    cfg.allow_insecure_http = args.allow_insecure_http;
    cfg.sign_in = sign_in_client(args)?;
    Ok(cfg)
}

/// The gateway's client for browser sign-in (`--oidc-client-id` and its secret file).
fn sign_in_client(args: &IdentitySettings) -> Result<Option<SignInClient>, ConfigError> {
    let Some(client_id) = args
        .oidc_client_id
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    else {
        return Ok(None);
    };
    let client_secret = match &args.oidc_client_secret_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::SignInClient(format!(
                    "cannot read the client secret file {}: {e}",
                    path.display()
                ))
            })?;
            let secret = text.trim();
            if secret.is_empty() {
                return Err(ConfigError::SignInClient(format!(
                    "the client secret file {} is empty",
                    path.display()
                )));
            }
            Some(SecretString::from(secret.to_owned()))
        }
    };
    Ok(Some(SignInClient {
        client_id: client_id.to_owned(),
        client_secret,
    }))
}

/// Non-empty values, trimmed (`--oidc-audience ""` from a Helm chart means none).
fn trimmed(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::net::OutboundConfig;
    use secrecy::ExposeSecret as _;

    const ISSUER: &str = "https://idp.example.com";

    fn oidc(issuer: &str) -> IdentitySettings {
        IdentitySettings {
            mode: IdentityMode::Oidc,
            oidc_issuer: Some(issuer.to_owned()),
            ..IdentitySettings::default()
        }
    }

    fn build(settings: &IdentitySettings) -> Result<Authenticator, ConfigError> {
        let client = OutboundClient::new(OutboundConfig::default()).unwrap();
        let public = Url::parse("https://gw.example.com").unwrap();
        from_settings(settings, &public, client)
    }

    #[test]
    fn anonymous_by_default_and_oidc_needs_an_issuer() {
        let default = build(&IdentitySettings::default()).unwrap();
        assert_eq!(default.mode_name(), "anonymous");
        let no_issuer = IdentitySettings {
            mode: IdentityMode::Oidc,
            ..IdentitySettings::default()
        };
        assert_eq!(build(&no_issuer).unwrap_err(), ConfigError::MissingIssuer);
        let run = build(&oidc(ISSUER)).unwrap();
        assert_eq!(run.mode_name(), "oidc");
        assert!(run.requires_bearer());
        assert_eq!(run.issuer(), Some(ISSUER));
    }

    #[test]
    fn oidc_settings_are_checked() {
        assert_eq!(build(&oidc(" ")).unwrap_err(), ConfigError::MissingIssuer);
        let err = build(&oidc("http://idp.example.com")).unwrap_err();
        assert!(matches!(err, ConfigError::InvalidIssuer(_)), "{err}");
        let insecure = IdentitySettings {
            allow_insecure_http: true,
            ..oidc("http://idp.example.com")
        };
        assert!(
            build(&insecure).is_ok(),
            "insecure issuer allowed on request"
        );
        let jwks = IdentitySettings {
            oidc_jwks_uri: Some(Url::parse("http://keys.example.com/jwks").unwrap()),
            ..oidc(ISSUER)
        };
        let err = build(&jwks).unwrap_err();
        assert!(matches!(err, ConfigError::InvalidJwksUri(_)), "{err}");
    }

    #[test]
    fn the_sign_in_client_is_read_with_its_secret_file() {
        let plain = build(&oidc(ISSUER)).unwrap();
        assert!(plain.sign_in().is_none(), "no client id, no sign-in");
        let with_client = |client_id: &str| IdentitySettings {
            oidc_client_id: Some(client_id.to_owned()),
            ..oidc(ISSUER)
        };
        let public = build(&with_client("gw")).unwrap();
        let client = public.sign_in().and_then(|o| o.sign_in_client()).unwrap();
        assert_eq!(client.client_id, "gw");
        assert!(client.client_secret.is_none(), "a public client");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "  s3cret\n").unwrap();
        let with_secret = |secret_file: &std::path::Path| {
            build(&IdentitySettings {
                oidc_client_secret_file: Some(secret_file.to_owned()),
                ..with_client("gw")
            })
        };
        let confidential = with_secret(&file).unwrap();
        let client = confidential
            .sign_in()
            .and_then(|o| o.sign_in_client())
            .unwrap();
        let secret = client.client_secret.as_ref().unwrap();
        assert_eq!(
            secret.expose_secret(),
            "s3cret",
            "surrounding whitespace dropped"
        );

        std::fs::write(&file, "\n").unwrap();
        let err = with_secret(&file).unwrap_err();
        assert!(
            matches!(&err, ConfigError::SignInClient(m) if m.contains("empty")),
            "{err}"
        );
        let err = with_secret(&dir.path().join("absent")).unwrap_err();
        assert!(
            matches!(&err, ConfigError::SignInClient(m) if m.contains("cannot read")),
            "{err}"
        );
        let err = build(&with_client("a\u{7}b")).unwrap_err();
        assert!(matches!(err, ConfigError::SignInClient(_)), "{err}");
    }

    #[test]
    fn header_mode_uses_the_configured_headers() {
        let header = IdentitySettings {
            mode: IdentityMode::Header,
            ..IdentitySettings::default()
        };
        let a = build(&header).unwrap();
        assert_eq!(a.mode_name(), "header");
        assert!(!a.requires_bearer());
        let err = build(&IdentitySettings {
            user_header: "bad name".to_owned(),
            ..header
        })
        .unwrap_err();
        assert!(matches!(err, ConfigError::InvalidHeaderName(_)));
    }

    #[test]
    fn blank_audiences_are_dropped() {
        assert_eq!(trimmed(&["".into(), " a ".into()]), ["a"]);
    }
}
