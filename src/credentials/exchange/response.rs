//! Reading a token-exchange answer (RFC 8693 §2.2) into a checked [`IssuedToken`]. Pure: status
//! and body in, result out.
//!
//! Checks: `access_token` present; `issued_token_type` present, a known token-type URN and the
//! requested one when a type was requested; `token_type` `Bearer` (or `N_A`, RFC 8693's value
//! for tokens that are not access tokens); and when the issued token is a JWT, its `iss` equals
//! the policy's expected issuer. The JWT is decoded without verifying its signature: the gateway
//! is the client here, the remote MCP server verifies the token; the issuer check only catches a
//! misconfigured endpoint (for example a proxy in front of another provider) early with a clear
//! message. An opaque token cannot be checked: it is accepted, because it came from the
//! configured endpoint over a connection that followed no redirect (and, with HTTPS, whose
//! certificate names that endpoint).

use super::error::ExchangeError;
use crate::oauth::TokenError;
use crate::oauth::token_response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use serde_json::{Map, Value};

/// The RFC 8693 §3 token type identifiers.
pub const KNOWN_TOKEN_TYPES: [&str; 6] = [
    "urn:ietf:params:oauth:token-type:access_token",
    "urn:ietf:params:oauth:token-type:refresh_token",
    "urn:ietf:params:oauth:token-type:id_token",
    "urn:ietf:params:oauth:token-type:saml1",
    "urn:ietf:params:oauth:token-type:saml2",
    "urn:ietf:params:oauth:token-type:jwt",
];

/// A checked token-exchange result.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub access_token: SecretString,
    pub issued_token_type: String,
    /// `Bearer` or `N_A`.
    pub token_type: String,
    /// Seconds the token lives from now: `expires_in`, else the JWT's `exp`; `None` when
    /// neither says.
    pub lifetime: Option<u64>,
    pub scope: Option<String>,
}

/// What the answer is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Expectations<'a> {
    pub requested_token_type: Option<&'a str>,
    pub expected_issuer: &'a str,
    /// Unix seconds, to turn a JWT `exp` into a lifetime.
    pub now: u64,
}

/// Classifies and checks a token-endpoint answer to an exchange.
pub fn parse(
    status: u16,
    body: &[u8],
    want: Expectations<'_>,
) -> Result<IssuedToken, ExchangeError> {
    let obj = token_response::success_object(status, body).map_err(exchange_error)?;
    let access_token = token_response::access_token(&obj).map_err(exchange_error)?;
    let issued_token_type = match obj.get("issued_token_type") {
        Some(Value::String(t)) if !t.is_empty() => t.as_str(),
        _ => return Err(ExchangeError::Malformed("issued_token_type is missing")),
    };
    if !KNOWN_TOKEN_TYPES.contains(&issued_token_type) {
        return Err(ExchangeError::UnknownTokenType(clean(issued_token_type)));
    }
    if let Some(requested) = want.requested_token_type
        && requested != issued_token_type
    {
        return Err(ExchangeError::WrongTokenType {
            requested: requested.to_owned(),
            issued: issued_token_type.to_owned(),
        });
    }
    let token_type = match obj.get("token_type") {
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => "Bearer",
        Some(Value::String(t)) if t == "N_A" => "N_A",
        Some(Value::String(t)) if !t.is_empty() => {
            return Err(ExchangeError::UnsupportedTokenType(clean(t)));
        }
        _ => return Err(ExchangeError::Malformed("token_type is missing")),
    };
    let expires_in = token_response::expires_in(obj.get("expires_in")).map_err(exchange_error)?;
    let claims = jwt_claims(access_token);
    if let Some(claims) = &claims {
        check_issuer(claims, want.expected_issuer)?;
    }
    let jwt_lifetime = claims
        .as_ref()
        .and_then(|c| c.get("exp"))
        .and_then(Value::as_u64)
        .map(|exp| exp.saturating_sub(want.now));
    let scope = match obj.get("scope") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    Ok(IssuedToken {
        access_token: SecretString::from(access_token),
        issued_token_type: issued_token_type.to_owned(),
        token_type: token_type.to_owned(),
        lifetime: expires_in.or(jwt_lifetime),
        scope,
    })
}

/// A token-endpoint error as an exchange error.
fn exchange_error(e: TokenError) -> ExchangeError {
    match e {
        TokenError::Rejected { error, description } => {
            ExchangeError::Rejected { error, description }
        }
        TokenError::Unavailable => ExchangeError::Unavailable(503),
        TokenError::UpstreamStatus(code) if code == 429 || code >= 500 => {
            ExchangeError::Unavailable(code)
        }
        TokenError::UpstreamStatus(code) => ExchangeError::UpstreamStatus(code),
        TokenError::Malformed(what) => ExchangeError::Malformed(what),
        TokenError::UnsupportedTokenType(t) => ExchangeError::UnsupportedTokenType(t),
        // Not produced by parsing a body.
        TokenError::Fetch(_) => ExchangeError::Malformed("the answer could not be read"),
    }
}

/// The claims of a JWS compact JWT, decoded without verification; `None` for anything else
/// (an opaque token).
fn jwt_claims(token: &str) -> Option<Map<String, Value>> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    match serde_json::from_slice::<Value>(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

fn check_issuer(claims: &Map<String, Value>, expected: &str) -> Result<(), ExchangeError> {
    let Some(Value::String(actual)) = claims.get("iss") else {
        return Err(ExchangeError::MissingIssuer {
            expected: expected.to_owned(),
        });
    };
    let norm = |s: &str| s.strip_suffix('/').unwrap_or(s).to_owned();
    if norm(actual) == norm(expected) {
        Ok(())
    } else {
        Err(ExchangeError::IssuerMismatch {
            expected: expected.to_owned(),
            actual: clean(actual),
        })
    }
}

/// Server text made safe to show: control characters replaced, at most 200 characters.
fn clean(s: &str) -> String {
    token_response::clean(s, 200)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;
    use serde_json::json;

    const AT: &str = "urn:ietf:params:oauth:token-type:access_token";
    const ISS: &str = "https://dex.example.com";

    /// An unsigned JWT-shaped token with `claims`.
    pub(crate) fn jwt(claims: Value) -> String {
        let enc = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.sig", enc(&json!({"alg": "ES256"})), enc(&claims))
    }

    fn want(requested: Option<&str>) -> Expectations<'_> {
        Expectations {
            requested_token_type: requested,
            expected_issuer: ISS,
            now: 1_000,
        }
    }

    fn ok_body(token: &str, extra: Value) -> Vec<u8> {
        let mut v = json!({"access_token": token, "issued_token_type": AT, "token_type": "Bearer"});
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v.to_string().into_bytes()
    }

    #[test]
    fn a_jwt_from_the_expected_issuer_is_accepted() {
        let token = jwt(json!({"iss": "https://dex.example.com/", "exp": 1_600}));
        let t = parse(
            200,
            &ok_body(&token, json!({"expires_in": 300, "scope": "a"})),
            want(Some(AT)),
        )
        .expect("accepted");
        assert_eq!(t.access_token.expose_secret(), token);
        assert_eq!(t.issued_token_type, AT);
        assert_eq!(t.token_type, "Bearer");
        assert_eq!(t.lifetime, Some(300), "expires_in wins");
        assert_eq!(t.scope.as_deref(), Some("a"));
        let t = parse(200, &ok_body(&token, json!({})), want(None)).expect("accepted");
        assert_eq!(t.lifetime, Some(600), "else the JWT's exp");
    }

    #[test]
    fn a_jwt_from_another_issuer_is_refused_naming_both_issuers_only() {
        let token = jwt(json!({"iss": "https://evil.example.com", "sub": "alice"}));
        let err = parse(200, &ok_body(&token, json!({})), want(None)).expect_err("refused");
        let msg = err.to_string();
        assert!(
            msg.contains("https://evil.example.com") && msg.contains(ISS),
            "{msg}"
        );
        assert!(msg.contains("expectedIssuer"), "{msg}");
        assert!(!msg.contains(&token), "{msg}");
        assert_eq!(err.kind(), "issuer_mismatch");
        let no_iss = jwt(json!({"sub": "alice"}));
        let err = parse(200, &ok_body(&no_iss, json!({})), want(None)).expect_err("refused");
        assert!(
            matches!(err, ExchangeError::MissingIssuer { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn an_opaque_token_is_accepted_without_an_issuer_check() {
        let t = parse(
            200,
            &ok_body("opaque-xyz", json!({"expires_in": "60"})),
            want(None),
        )
        .expect("accepted");
        assert_eq!(t.lifetime, Some(60));
        let t = parse(200, &ok_body("a.b.c", json!({})), want(None)).expect("not a JWT");
        assert_eq!(t.lifetime, None);
    }

    #[test]
    fn token_types_are_checked() {
        let idt = "urn:ietf:params:oauth:token-type:id_token";
        let err = parse(200, &ok_body("t", json!({})), want(Some(idt))).expect_err("wrong type");
        assert!(
            matches!(err, ExchangeError::WrongTokenType { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(idt));
        let body = json!({"access_token": "t", "issued_token_type": "urn:x:custom", "token_type": "Bearer"});
        let err = parse(200, body.to_string().as_bytes(), want(None)).expect_err("unknown type");
        assert!(matches!(err, ExchangeError::UnknownTokenType(_)), "{err:?}");
        let body = json!({"access_token": "t", "token_type": "Bearer"});
        let err = parse(200, body.to_string().as_bytes(), want(None)).expect_err("missing");
        assert_eq!(
            err,
            ExchangeError::Malformed("issued_token_type is missing")
        );
        let body = json!({"access_token": "t", "issued_token_type": idt, "token_type": "N_A"});
        let t = parse(200, body.to_string().as_bytes(), want(Some(idt))).expect("N_A is fine");
        assert_eq!(t.token_type, "N_A");
        let body = json!({"access_token": "t", "issued_token_type": AT, "token_type": "DPoP"});
        let err = parse(200, body.to_string().as_bytes(), want(None)).expect_err("DPoP");
        assert!(
            matches!(err, ExchangeError::UnsupportedTokenType(_)),
            "{err:?}"
        );
    }

    #[test]
    fn errors_are_classified() {
        let body = br#"{"error":"invalid_grant","error_description":"subject token expired"}"#;
        let err = parse(400, body, want(None)).expect_err("rejected");
        assert!(err.is_invalid_grant(), "{err:?}");
        let err = parse(200, body, want(None)).expect_err("200 with an error");
        assert!(err.is_invalid_grant(), "{err:?}");
        assert_eq!(
            parse(503, b"", want(None)).expect_err("x"),
            ExchangeError::Unavailable(503)
        );
        assert_eq!(
            parse(502, b"<html>", want(None)).expect_err("x"),
            ExchangeError::Unavailable(502)
        );
        assert_eq!(
            parse(404, b"nope", want(None)).expect_err("x"),
            ExchangeError::UpstreamStatus(404)
        );
        assert!(matches!(
            parse(200, b"[1]", want(None)).expect_err("x"),
            ExchangeError::Malformed(_)
        ));
        // A 200 carrying an `error` that is no RFC 6749 error code is no answer at all.
        assert_eq!(
            parse(200, br#"{"error":"bad\ncode"}"#, want(None)).expect_err("x"),
            ExchangeError::Malformed("an error answer without a valid error code")
        );
        let body = json!({"issued_token_type": AT, "token_type": "Bearer"});
        assert!(matches!(
            parse(200, body.to_string().as_bytes(), want(None)).expect_err("x"),
            ExchangeError::Malformed(_)
        ));
        let body = json!({"access_token": "t", "issued_token_type": AT, "token_type": "Bearer", "expires_in": -1});
        assert!(matches!(
            parse(200, body.to_string().as_bytes(), want(None)).expect_err("x"),
            ExchangeError::Malformed(_)
        ));
    }
}

#[cfg(test)]
mod proptests;
