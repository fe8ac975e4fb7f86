//! The [`Authenticator`] the command line asks for.

use super::{Authenticator, ConfigError, HeaderConfig, OidcConfig, SignInClient};
use crate::cli::{IdentityMode, ServerArgs};
use crate::net::OutboundClient;
use secrecy::SecretString;
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
    cfg.sign_in = sign_in_client(args)?;
    Ok(cfg)
}

/// `--oidc-client-id` (and its secret file): the gateway's client for browser sign-in.
fn sign_in_client(args: &ServerArgs) -> Result<Option<SignInClient>, ConfigError> {
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
    use crate::cli::{Cli, Command};
    use crate::net::OutboundConfig;
    use secrecy::ExposeSecret as _;

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
    fn the_sign_in_client_is_read_with_its_secret_file() {
        let issuer = "https://idp.example.com";
        let plain = build(&["run", "--oidc-issuer", issuer]).unwrap();
        assert!(plain.sign_in().is_none(), "no client id, no sign-in");
        let public = build(&["run", "--oidc-issuer", issuer, "--oidc-client-id", "gw"]).unwrap();
        let client = public.sign_in().and_then(|o| o.sign_in_client()).unwrap();
        assert_eq!(client.client_id, "gw");
        assert!(client.client_secret.is_none(), "a public client");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "  s3cret\n").unwrap();
        let path = file.to_str().unwrap();
        let with_secret = |secret_file: &str| {
            build(&[
                "run",
                "--oidc-issuer",
                issuer,
                "--oidc-client-id",
                "gw",
                "--oidc-client-secret-file",
                secret_file,
            ])
        };
        let confidential = with_secret(path).unwrap();
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
        let err = with_secret(path).unwrap_err();
        assert!(
            matches!(&err, ConfigError::SignInClient(m) if m.contains("empty")),
            "{err}"
        );
        let missing = dir.path().join("absent");
        let err = with_secret(missing.to_str().unwrap()).unwrap_err();
        assert!(
            matches!(&err, ConfigError::SignInClient(m) if m.contains("cannot read")),
            "{err}"
        );
        let err = build(&[
            "run",
            "--oidc-issuer",
            issuer,
            "--oidc-client-id",
            "a\u{7}b",
        ])
        .unwrap_err();
        assert!(matches!(err, ConfigError::SignInClient(_)), "{err}");
        // A secret without a client id is a command-line error.
        let argv = [
            "op",
            "run",
            "--oidc-issuer",
            issuer,
            "--oidc-client-secret-file",
            path,
        ];
        assert!(Cli::try_parse_with_defaults(argv).is_err());
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
