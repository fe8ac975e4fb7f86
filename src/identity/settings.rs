//! The [`Authenticator`] the command line asks for.

use super::{Authenticator, ConfigError, HeaderConfig, OidcConfig};
use crate::cli::{IdentityMode, ServerArgs};
use crate::net::OutboundClient;
use std::time::Duration;
use url::Url;

/// Builds the identity mode of `args` (no `--identity`: `anonymous`; `run` has already filled in
/// its `oidc` default). `public_url` is the gateway's: in `oidc` mode tokens issued for it or
/// for a server below it are accepted.
pub fn from_server_args(
    args: &ServerArgs,
    public_url: &Url,
    client: OutboundClient,
) -> Result<Authenticator, ConfigError> {
    match args.identity.unwrap_or_default() {
        IdentityMode::Anonymous => Ok(Authenticator::anonymous()),
        IdentityMode::Header => Ok(Authenticator::header(HeaderConfig::new(
            &args.identity_user_header,
            args.identity_session_header.as_deref(),
        )?)),
        IdentityMode::Oidc => Authenticator::oidc(oidc_config(args, public_url)?, client),
    }
}

fn oidc_config(args: &ServerArgs, public_url: &Url) -> Result<OidcConfig, ConfigError> {
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
    cfg.jwks_min_refresh = Duration::from_secs(args.oidc_jwks_min_refresh_secs);
    cfg.leeway = Duration::from_secs(args.oidc_leeway_secs);
    cfg.scopes_supported = trimmed(&args.oidc_scope);
    cfg.allow_insecure_http = args.allow_insecure_http;
    Ok(cfg)
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
    use crate::cli::{Cli, Command};
    use crate::net::OutboundConfig;

    fn args(argv: &[&str]) -> ServerArgs {
        let mut full = vec!["op"];
        full.extend_from_slice(argv);
        match Cli::try_parse_with_defaults(full).expect("parse").command {
            Command::Run(r) => r.server,
            Command::Serve(s) => s.server,
            _ => unreachable!("run or serve"),
        }
    }

    fn build(argv: &[&str]) -> Result<Authenticator, ConfigError> {
        let client = OutboundClient::new(OutboundConfig::default()).unwrap();
        let public = Url::parse("https://gw.example.com").unwrap();
        from_server_args(&args(argv), &public, client)
    }

    #[test]
    fn serve_is_anonymous_and_run_is_oidc_by_default() {
        assert_eq!(build(&["serve"]).unwrap().mode_name(), "anonymous");
        assert_eq!(build(&["run"]).unwrap_err(), ConfigError::MissingIssuer);
        let run = build(&["run", "--oidc-issuer", "https://idp.example.com"]).unwrap();
        assert_eq!(run.mode_name(), "oidc");
        assert!(run.requires_bearer());
        assert_eq!(run.issuer(), Some("https://idp.example.com"));
    }

    #[test]
    fn oidc_settings_are_checked() {
        let err = build(&["serve", "--identity", "oidc", "--oidc-issuer", " "]).unwrap_err();
        assert_eq!(err, ConfigError::MissingIssuer);
        let err = build(&["run", "--oidc-issuer", "http://idp.example.com"]).unwrap_err();
        assert!(matches!(err, ConfigError::InvalidIssuer(_)), "{err}");
        let ok = build(&[
            "run",
            "--oidc-issuer",
            "http://idp.example.com",
            "--allow-insecure-http",
        ]);
        assert!(ok.is_ok(), "insecure issuer allowed on request");
        let err = build(&[
            "run",
            "--oidc-issuer",
            "https://idp.example.com",
            "--oidc-jwks-uri",
            "http://keys.example.com/jwks",
        ])
        .unwrap_err();
        assert!(matches!(err, ConfigError::InvalidJwksUri(_)), "{err}");
    }

    #[test]
    fn header_mode_uses_the_configured_headers() {
        let a = build(&["serve", "--identity", "header"]).unwrap();
        assert_eq!(a.mode_name(), "header");
        assert!(!a.requires_bearer());
        let err = build(&[
            "serve",
            "--identity",
            "header",
            "--identity-user-header",
            "bad name",
        ])
        .unwrap_err();
        assert!(matches!(err, ConfigError::InvalidHeaderName(_)));
    }

    #[test]
    fn blank_audiences_are_dropped() {
        assert_eq!(trimmed(&["".into(), " a ".into()]), ["a"]);
    }
}
