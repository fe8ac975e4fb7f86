//! `TokenExchangePolicy` → [`PolicyRegistration`].

use url::{Position, Url};

use super::checks::{self, UrlKind};
use super::secrets::OwnNamespace;
use super::server::auth_method;
use super::{Problems, SecretLookup, SpecError, reason, resource_key};
use crate::crd::{
    ClientAuthSpec, SubjectTokenTypeSpec, TLS_CERT_KEY, TLS_KEY_KEY, TokenExchangePolicy,
    TokenExchangePolicySpec,
};
use crate::registry::{PolicyClientAuth, PolicyRegistration, SubjectTokenType};

/// Checks a `TokenExchangePolicy` and resolves its Secret references (own namespace only).
/// Returns every problem found, not just the first.
pub fn validate_policy(
    obj: &TokenExchangePolicy,
    secrets: &dyn SecretLookup,
) -> Result<PolicyRegistration, Vec<SpecError>> {
    let spec = &obj.spec;
    let mut problems = Problems::default();
    let key = resource_key(&obj.metadata, &mut problems);
    let namespace = key
        .as_ref()
        .map_or(super::DEFAULT_NAMESPACE, |k| k.namespace.as_str());
    let secrets = OwnNamespace::new(secrets, namespace);

    let token_endpoint = problems.take(checks::http_url(
        "spec.tokenEndpoint",
        &spec.token_endpoint,
        UrlKind::Endpoint,
    ));
    let expected_issuer = expected_issuer(spec, token_endpoint.as_ref(), &mut problems);
    let mut ok = check_optional_fields(spec, &mut problems);
    let client_auth = match &spec.client_auth {
        None => Some(None),
        Some(auth) => client_auth(auth, &secrets, &mut problems).map(Some),
    };
    ok &= client_auth.is_some();

    let reg = match (key, token_endpoint, expected_issuer, client_auth) {
        (Some(key), Some(token_endpoint), Some(expected_issuer), Some(client_auth)) if ok => {
            Some(PolicyRegistration {
                key,
                token_endpoint,
                expected_issuer,
                connector_id: spec.connector_id.clone(),
                audience: spec.audience.clone(),
                resource: spec.resource.clone(),
                scopes: spec.scopes.clone(),
                subject_token_type: match spec.subject_token_type {
                    SubjectTokenTypeSpec::IdToken => SubjectTokenType::IdToken,
                    SubjectTokenTypeSpec::AccessToken => SubjectTokenType::AccessToken,
                },
                requested_token_type: spec.requested_token_type.clone(),
                client_auth,
                allow_private_networks: spec.allow_private_networks,
                generation: obj.metadata.generation.unwrap_or(0),
                // Validation reads no metadata; the controller (or the gateway) checks it.
                endpoint_verified: false,
            })
        }
        _ => None,
    };
    problems.into_result(reg)
}

/// The issuer a Dex-style token endpoint belongs to: the endpoint with a trailing `/token`
/// path segment and then one trailing `/` removed (`https://dex.example.com/dex/token` →
/// `https://dex.example.com/dex`). `None` when the endpoint has a query, because an issuer
/// cannot carry one (RFC 8414 §2) and silently dropping it could pin the wrong issuer.
pub fn derive_expected_issuer(token_endpoint: &Url) -> Option<String> {
    if token_endpoint.query().is_some() {
        return None;
    }
    let path = token_endpoint.path();
    let path = path.strip_suffix("/token").unwrap_or(path);
    let path = path.strip_suffix('/').unwrap_or(path);
    Some(format!(
        "{}{}",
        &token_endpoint[..Position::AfterPort],
        path
    ))
}

fn expected_issuer(
    spec: &TokenExchangePolicySpec,
    token_endpoint: Option<&Url>,
    problems: &mut Problems,
) -> Option<String> {
    if let Some(issuer) = &spec.expected_issuer {
        // Kept as written: it is compared with the token's `iss` claim.
        problems.take(checks::http_url(
            "spec.expectedIssuer",
            issuer,
            UrlKind::Issuer,
        ))?;
        return Some(issuer.clone());
    }
    let derived = derive_expected_issuer(token_endpoint?);
    if derived.is_none() {
        problems.push(SpecError::new(
            "spec.expectedIssuer",
            reason::CANNOT_DERIVE_ISSUER,
            "expectedIssuer cannot be derived from a tokenEndpoint with a query: set spec.expectedIssuer to the provider's issuer URL",
        ));
    }
    derived
}

/// Checks the optional plain fields; `true` when all are fine.
fn check_optional_fields(spec: &TokenExchangePolicySpec, problems: &mut Problems) -> bool {
    let mut ok = true;
    if let Some(id) = &spec.connector_id {
        let valid = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            ok = false;
            problems.push(SpecError::new(
                "spec.connectorId",
                reason::INVALID_CONNECTOR_ID,
                "connectorId must be 1-64 characters of letters, digits, '_' and '-' (the Dex connector id, e.g. cluster-a)",
            ));
        }
    }
    if let Some(aud) = &spec.audience {
        ok &= problems
            .take(checks::audience("spec.audience", aud))
            .is_some();
    }
    if let Some(resource) = &spec.resource {
        ok &= problems
            .take(checks::http_url(
                "spec.resource",
                resource,
                UrlKind::Endpoint,
            ))
            .is_some();
    }
    let scope_errors = checks::scopes("spec.scopes", &spec.scopes);
    ok &= scope_errors.is_empty();
    scope_errors.into_iter().for_each(|e| problems.push(e));
    if let Some(t) = &spec.requested_token_type {
        let valid = t.len() > 4
            && t.starts_with("urn:")
            && !t.chars().any(|c| c.is_whitespace() || c.is_control());
        if !valid {
            ok = false;
            problems.push(SpecError::new(
                "spec.requestedTokenType",
                reason::INVALID_TOKEN_TYPE,
                "requestedTokenType must be a token type URN, e.g. urn:ietf:params:oauth:token-type:id_token, or be omitted",
            ));
        }
    }
    ok
}

fn client_auth(
    auth: &ClientAuthSpec,
    secrets: &OwnNamespace<'_>,
    problems: &mut Problems,
) -> Option<PolicyClientAuth> {
    const AT: &str = "spec.clientAuth";
    let invalid = |field: &str, msg: &str| {
        SpecError::new(format!("{AT}{field}"), reason::INVALID_CLIENT_AUTH, msg)
    };
    let mut ok = true;
    if auth.method.is_some() && auth.secret_ref.is_none() {
        ok = false;
        problems.push(invalid(
            ".method",
            "clientAuth.method applies to secretRef only: remove it or use secretRef",
        ));
    }
    if auth.client_id.is_some() && auth.tls_secret_ref.is_none() {
        ok = false;
        problems.push(invalid(
            ".clientId",
            "clientAuth.clientId applies to tlsSecretRef only: the secretRef carries its own client id",
        ));
    }
    if let Some(id) = &auth.client_id
        && id.trim().is_empty()
    {
        ok = false;
        problems.push(SpecError::new(
            format!("{AT}.clientId"),
            reason::MISSING_CLIENT_ID,
            "clientAuth.clientId is empty: set it or remove it",
        ));
    }

    let resolved = match (&auth.secret_ref, &auth.tls_secret_ref) {
        (Some(r), None) => {
            let ref_at = format!("{AT}.secretRef");
            let id_at = format!("{ref_at}.clientIdKey");
            let secret_at = format!("{ref_at}.clientSecretKey");
            let name_ok = problems
                .take(checks::object_name(
                    &format!("{ref_at}.name"),
                    &r.name,
                    "Secret",
                ))
                .is_some();
            let keys_ok = problems
                .take(checks::secret_key(&id_at, &r.client_id_key))
                .is_some()
                & problems
                    .take(checks::secret_key(&secret_at, &r.client_secret_key))
                    .is_some();
            if !(name_ok && keys_ok) {
                return None;
            }
            let id = problems.take(secrets.read(&ref_at, &id_at, r.client_id()));
            let secret = problems.take(secrets.read(&ref_at, &secret_at, r.client_secret()));
            match (id, secret) {
                (Some(id), Some(secret)) => Some(PolicyClientAuth::Secret {
                    client_id: secrecy::ExposeSecret::expose_secret(&id).to_owned(),
                    client_secret: secret,
                    method: auth_method(auth.method),
                }),
                _ => None,
            }
        }
        (None, Some(t)) => {
            let ref_at = format!("{AT}.tlsSecretRef");
            let name_at = format!("{ref_at}.name");
            problems.take(checks::object_name(
                &name_at,
                &t.name,
                "kubernetes.io/tls Secret",
            ))?;
            let sel = |key| crate::crd::common::SecretKeySelector { name: &t.name, key };
            let cert = problems.take(secrets.read(&ref_at, &name_at, sel(TLS_CERT_KEY)));
            let key = problems.take(secrets.read(&ref_at, &name_at, sel(TLS_KEY_KEY)));
            match (cert, key) {
                (Some(cert_pem), Some(key_pem)) => Some(PolicyClientAuth::MutualTls {
                    client_id: auth.client_id.clone(),
                    cert_pem,
                    key_pem,
                }),
                _ => None,
            }
        }
        _ => {
            problems.push(invalid(
                "",
                "set exactly one of clientAuth.secretRef (client id and secret) or clientAuth.tlsSecretRef (mutual TLS)",
            ));
            None
        }
    };
    if ok { resolved } else { None }
}
