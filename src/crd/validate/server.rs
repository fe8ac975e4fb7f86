//! `RemoteMCPServer` → [`ServerRegistration`].

use super::checks::{self, UrlKind};
use super::secrets::OwnNamespace;
use super::{Problems, SecretLookup, SpecError, reason, resource_key};
use crate::crd::{
    AuthMode, AuthSpec, OAuthClientSpec, OAuthSpec, RemoteMCPServer, TokenEndpointAuthMethod,
};
use crate::registry::{
    AuthSettings, ClientAuthMethod, ClientIdentity, ExchangeSettings, ForwardSettings,
    OAuthSettings, PreRegisteredClient, ServerRegistration,
};

/// Checks a `RemoteMCPServer` and resolves its Secret references (own namespace only).
/// Returns every problem found, not just the first.
pub fn validate_server(
    obj: &RemoteMCPServer,
    secrets: &dyn SecretLookup,
) -> Result<ServerRegistration, Vec<SpecError>> {
    let mut problems = Problems::default();
    let key = resource_key(&obj.metadata, &mut problems);
    let url = problems
        .take(checks::http_url(
            "spec.url",
            &obj.spec.url,
            UrlKind::Endpoint,
        ))
        .and_then(|url| {
            problems.take(
                checks::transport_security(
                    "spec.url",
                    "spec.allowInsecureHttp",
                    &url,
                    obj.spec.allow_insecure_http,
                )
                .map(|()| url),
            )
        });
    let namespace = key
        .as_ref()
        .map_or(super::DEFAULT_NAMESPACE, |k| k.namespace.as_str());
    let secrets = OwnNamespace::new(secrets, namespace);
    let auth = auth_settings(&obj.spec.auth, &obj.spec.url, &secrets, &mut problems);
    let forward_headers = forward_headers(&obj.spec.forward_headers, &mut problems);

    let reg = match (key, url, auth, forward_headers) {
        (Some(key), Some(url), Some(auth), Some(forward_headers)) => Some(ServerRegistration {
            key,
            url,
            auth,
            generation: obj.metadata.generation.unwrap_or(0),
            forward_headers,
        }),
        _ => None,
    };
    problems.into_result(reg)
}

/// `spec.forwardHeaders` as header names, or `None` when one of them may not be forwarded (see
/// [`crate::net::headers::forward_header_problem`]).
fn forward_headers(names: &[String], problems: &mut Problems) -> Option<Vec<http::HeaderName>> {
    const MAX: usize = 16;
    let mut ok = true;
    if names.len() > MAX {
        ok = false;
        problems.push(SpecError::new(
            "spec.forwardHeaders",
            reason::INVALID_FORWARD_HEADER,
            format!("at most {MAX} headers may be listed"),
        ));
    }
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let parsed = match crate::net::headers::forward_header_problem(name) {
            Some(problem) => Err(problem),
            None => http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| "is not a valid HTTP header name"),
        };
        match parsed {
            Ok(h) => out.push(h),
            Err(problem) => {
                ok = false;
                // The name is echoed only when it is short and printable (it is the author's
                // own input, but a condition message is no place for control bytes).
                let shown = if name.len() <= 128 && name.bytes().all(|b| b.is_ascii_graphic()) {
                    name.as_str()
                } else {
                    "this header"
                };
                problems.push(SpecError::new(
                    format!("spec.forwardHeaders[{i}]"),
                    reason::INVALID_FORWARD_HEADER,
                    format!("{shown} {problem}"),
                ));
            }
        }
    }
    ok.then_some(out)
}

fn auth_settings(
    auth: &AuthSpec,
    raw_url: &str,
    secrets: &OwnNamespace<'_>,
    problems: &mut Problems,
) -> Option<AuthSettings> {
    let mode = auth.mode;
    let blocks = [
        ("oauth", AuthMode::OAuth, auth.oauth.is_some()),
        ("exchange", AuthMode::Exchange, auth.exchange.is_some()),
        ("forward", AuthMode::Forward, auth.forward.is_some()),
    ];
    let mut conflict = false;
    for (block, block_mode, present) in blocks {
        if present && mode != block_mode {
            conflict = true;
            problems.push(SpecError::new(
                format!("spec.auth.{block}"),
                reason::CONFLICTING_AUTH_SETTINGS,
                format!(
                    "auth.{block} is set but mode is {}: remove auth.{block} or set mode: {block}",
                    mode.as_str()
                ),
            ));
        }
    }

    let settings = match mode {
        AuthMode::None => Some(AuthSettings::None),
        AuthMode::OAuth => {
            let default = OAuthSpec::default();
            let spec = auth.oauth.as_ref().unwrap_or(&default);
            oauth_settings(spec, raw_url, secrets, problems).map(AuthSettings::OAuth)
        }
        AuthMode::Forward => forward_settings(auth, problems).map(AuthSettings::Forward),
        AuthMode::Exchange => {
            exchange_settings(auth, secrets, problems).map(AuthSettings::Exchange)
        }
    };
    if conflict { None } else { settings }
}

fn oauth_settings(
    spec: &OAuthSpec,
    raw_url: &str,
    secrets: &OwnNamespace<'_>,
    problems: &mut Problems,
) -> Option<OAuthSettings> {
    const AT: &str = "spec.auth.oauth";
    let mut ok = true;

    // Issuer and resource keep the string as written: both are compared by exact equality
    // downstream, and `Url` would normalise them (e.g. add a trailing `/`).
    if let Some(issuer) = &spec.issuer {
        ok &= problems
            .take(checks::http_url(
                &format!("{AT}.issuer"),
                issuer,
                UrlKind::Issuer,
            ))
            .is_some();
    }
    let resource = match &spec.resource {
        Some(r) => {
            let parsed = problems.take(checks::http_url(
                &format!("{AT}.resource"),
                r,
                UrlKind::Endpoint,
            ));
            ok &= parsed.is_some();
            if let (Some(resource), Ok(url)) = (&parsed, url::Url::parse(raw_url)) {
                ok &= problems
                    .take(checks::same_origin(
                        &format!("{AT}.resource"),
                        resource,
                        &url,
                    ))
                    .is_some();
            }
            r.clone()
        }
        None => raw_url.to_owned(),
    };
    let scope_errors = checks::scopes(&format!("{AT}.scopes"), &spec.scopes);
    ok &= scope_errors.is_empty();
    scope_errors.into_iter().for_each(|e| problems.push(e));

    let client = match &spec.client {
        None => Some(ClientIdentity::Cimd),
        Some(c) => pre_registered(c, secrets, problems).map(ClientIdentity::PreRegistered),
    };

    match client {
        Some(client) if ok => Some(OAuthSettings {
            issuer: spec.issuer.clone(),
            scopes: spec.scopes.clone(),
            resource,
            send_resource: spec.send_resource_parameter,
            client,
        }),
        _ => None,
    }
}

fn pre_registered(
    client: &OAuthClientSpec,
    secrets: &OwnNamespace<'_>,
    problems: &mut Problems,
) -> Option<PreRegisteredClient> {
    const AT: &str = "spec.auth.oauth.client";
    let mut ok = true;
    if client.id.trim().is_empty() {
        ok = false;
        problems.push(SpecError::new(
            format!("{AT}.id"),
            reason::MISSING_CLIENT_ID,
            "auth.oauth.client.id is empty: set it to the client_id issued by the authorization server",
        ));
    }
    if client.token_endpoint_auth_method.is_some() && client.secret_ref.is_none() {
        ok = false;
        problems.push(SpecError::new(
            format!("{AT}.tokenEndpointAuthMethod"),
            reason::INVALID_CLIENT_AUTH,
            "tokenEndpointAuthMethod needs secretRef (a public client sends no secret): remove it or add secretRef",
        ));
    }
    let client_secret = match &client.secret_ref {
        None => None,
        Some(r) => {
            let ref_at = format!("{AT}.secretRef");
            let key_at = format!("{ref_at}.key");
            let name_ok = problems
                .take(checks::object_name(
                    &format!("{ref_at}.name"),
                    &r.name,
                    "Secret",
                ))
                .is_some();
            let key_ok = problems.take(checks::secret_key(&key_at, &r.key)).is_some();
            if !(name_ok && key_ok) {
                return None;
            }
            Some(problems.take(secrets.read(&ref_at, &key_at, r.selector()))?)
        }
    };
    ok.then(|| PreRegisteredClient {
        client_id: client.id.clone(),
        client_secret,
        auth_method: auth_method(client.token_endpoint_auth_method),
    })
}

pub(crate) fn auth_method(method: Option<TokenEndpointAuthMethod>) -> ClientAuthMethod {
    match method.unwrap_or_default() {
        TokenEndpointAuthMethod::ClientSecretBasic => ClientAuthMethod::Basic,
        TokenEndpointAuthMethod::ClientSecretPost => ClientAuthMethod::Post,
    }
}

fn forward_settings(auth: &AuthSpec, problems: &mut Problems) -> Option<ForwardSettings> {
    const AT: &str = "spec.auth.forward.audiences";
    let audiences = auth
        .forward
        .as_ref()
        .map(|f| f.audiences.as_slice())
        .unwrap_or_default();
    if audiences.is_empty() {
        problems.push(SpecError::new(
            AT,
            reason::MISSING_AUDIENCES,
            "auth.forward.audiences must be non-empty when mode is forward: list the audiences the caller's token may carry, e.g. [mcp-gateway]",
        ));
        return None;
    }
    let mut ok = true;
    for (i, aud) in audiences.iter().enumerate() {
        ok &= problems
            .take(checks::audience(&format!("{AT}[{i}]"), aud))
            .is_some();
    }
    ok.then(|| ForwardSettings {
        audiences: audiences.to_vec(),
    })
}

fn exchange_settings(
    auth: &AuthSpec,
    secrets: &OwnNamespace<'_>,
    problems: &mut Problems,
) -> Option<ExchangeSettings> {
    const AT: &str = "spec.auth.exchange.policyRef";
    let Some(exchange) = auth.exchange.as_ref() else {
        problems.push(SpecError::new(
            AT,
            reason::MISSING_POLICY_REF,
            format!(
                "auth.exchange.policyRef is required when mode is exchange: set auth.exchange.policyRef.name to a TokenExchangePolicy in namespace `{}`",
                secrets.namespace()
            ),
        ));
        return None;
    };
    let name = &exchange.policy_ref.name;
    if name.is_empty() {
        problems.push(SpecError::new(
            format!("{AT}.name"),
            reason::MISSING_POLICY_REF,
            "auth.exchange.policyRef.name is empty: name a TokenExchangePolicy in the same namespace",
        ));
        return None;
    }
    problems.take(checks::object_name(
        &format!("{AT}.name"),
        name,
        "TokenExchangePolicy",
    ))?;
    Some(ExchangeSettings {
        policy: name.clone(),
    })
}
