//! Reading token-endpoint answers (RFC 6749 §5.1 success, §5.2 error) into a validated
//! [`TokenResponse`] or a classified [`TokenError`]. Pure: status + body in, result out. Error
//! messages never carry token values or raw body text; the only echoed server text is a
//! charset-checked error code and (in a field, not in `Display`) a cleaned, truncated
//! description.

use crate::net::FetchError;
use secrecy::SecretString;
use serde_json::{Map, Value};

/// Longest `error_description` kept.
const MAX_DESCRIPTION: usize = 200;
/// Longest `error` code kept.
const MAX_ERROR_CODE: usize = 64;

/// A successful, validated token response.
#[derive(Debug, Clone)]
pub struct TokenResponse {
    pub access_token: SecretString,
    /// Always `Bearer` (other types are refused).
    pub token_type: String,
    /// Seconds from issuance; `None` when the server did not say.
    pub expires_in: Option<u64>,
    /// `None` when the server issued none (never assume one).
    pub refresh_token: Option<SecretString>,
    /// Granted scope when the server said (it may differ from the requested one).
    pub scope: Option<String>,
    pub id_token: Option<SecretString>,
}

/// Why a token-endpoint call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// An RFC 6749 §5.2 error answer (`invalid_grant`, `invalid_client`, …).
    #[error("the authorization server refused the request: {error}")]
    Rejected {
        error: String,
        /// Cleaned (no control characters) and at most 200 characters; safe to show.
        description: Option<String>,
    },
    #[error("the token endpoint is temporarily unavailable (HTTP 503)")]
    Unavailable,
    /// A non-2xx answer without a valid OAuth error body.
    #[error("the token endpoint answered HTTP {0}")]
    UpstreamStatus(u16),
    #[error("malformed token response: {0}")]
    Malformed(&'static str),
    #[error("token type `{0}` is not supported (only Bearer)")]
    UnsupportedTokenType(String),
    #[error("token endpoint request failed: {0}")]
    Fetch(#[from] FetchError),
}

impl TokenError {
    /// Whether trying again later may succeed (the grant itself was not refused).
    pub fn is_transient(&self) -> bool {
        match self {
            TokenError::Unavailable => true,
            TokenError::UpstreamStatus(code) => *code >= 500 || *code == 429,
            TokenError::Fetch(e) => e.is_transient(),
            TokenError::Rejected { error, .. } => error == "temporarily_unavailable",
            TokenError::Malformed(_) | TokenError::UnsupportedTokenType(_) => false,
        }
    }

    /// Whether the grant (code or refresh token) is dead: the user must authorize again.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, TokenError::Rejected { error, .. } if error == "invalid_grant")
    }

    /// A stable snake_case label, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            TokenError::Rejected { .. } => "rejected",
            TokenError::Unavailable => "unavailable",
            TokenError::UpstreamStatus(_) => "upstream_status",
            TokenError::Malformed(_) => "malformed",
            TokenError::UnsupportedTokenType(_) => "unsupported_token_type",
            TokenError::Fetch(_) => "fetch",
        }
    }
}

/// Classifies a token-endpoint answer. Some servers (GitHub) answer errors with 200, so a 2xx
/// body carrying `error` and no `access_token` is a rejection too.
pub fn parse_token_response(status: u16, body: &[u8]) -> Result<TokenResponse, TokenError> {
    let obj = success_object(status, body)?;
    let access_token = SecretString::from(access_token(&obj)?);
    let token_type = match obj.get("token_type") {
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => "Bearer".to_owned(),
        Some(Value::String(t)) if !t.is_empty() => {
            return Err(TokenError::UnsupportedTokenType(clean(t, 32)));
        }
        _ => return Err(TokenError::Malformed("token_type is missing")),
    };
    Ok(TokenResponse {
        access_token,
        token_type,
        expires_in: expires_in(obj.get("expires_in"))?,
        refresh_token: optional_string(&obj, "refresh_token", "refresh_token is not a string")?
            .map(SecretString::from),
        scope: optional_string(&obj, "scope", "scope is not a string")?,
        id_token: optional_string(&obj, "id_token", "id_token is not a string")?
            .map(SecretString::from),
    })
}

/// The JSON object of a successful token-endpoint answer (RFC 6749 §5.1), or the error it is:
/// a non-2xx status, a body that is not a JSON object, or a 2xx carrying `error` and no
/// `access_token` (some servers, GitHub among them, answer errors with 200). Shared by every
/// grant's parser (authorization code, refresh, RFC 8693 exchange).
pub(crate) fn success_object(status: u16, body: &[u8]) -> Result<Map<String, Value>, TokenError> {
    if !(200..300).contains(&status) {
        return Err(non_success(status, body));
    }
    let obj = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(obj)) => obj,
        _ => return Err(TokenError::Malformed("the body is not a JSON object")),
    };
    if !obj.contains_key("access_token") && obj.contains_key("error") {
        return Err(oauth_error(&obj).unwrap_or(TokenError::Malformed(
            "an error answer without a valid error code",
        )));
    }
    Ok(obj)
}

/// The non-empty `access_token` of a successful answer.
pub(crate) fn access_token(obj: &Map<String, Value>) -> Result<&str, TokenError> {
    match obj.get("access_token") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        _ => Err(TokenError::Malformed("access_token is missing or empty")),
    }
}

/// Classifies a revocation answer (RFC 7009 §2.2: 200 whether or not the token was valid).
pub fn parse_revocation_response(status: u16, body: &[u8]) -> Result<(), TokenError> {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(non_success(status, body))
    }
}

fn non_success(status: u16, body: &[u8]) -> TokenError {
    if status == 503 {
        return TokenError::Unavailable;
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(obj)) => oauth_error(&obj).unwrap_or(TokenError::UpstreamStatus(status)),
        _ => TokenError::UpstreamStatus(status),
    }
}

/// An RFC 6749 §5.2 error object, if `error` is a plausible error code (NQSCHAR, bounded).
fn oauth_error(obj: &Map<String, Value>) -> Option<TokenError> {
    let Some(Value::String(error)) = obj.get("error") else {
        return None;
    };
    let nqschar =
        |c: char| matches!(c, '\u{20}'..='\u{21}' | '\u{23}'..='\u{5b}' | '\u{5d}'..='\u{7e}');
    if error.is_empty() || error.len() > MAX_ERROR_CODE || !error.chars().all(nqschar) {
        return None;
    }
    let description = match obj.get("error_description") {
        Some(Value::String(d)) if !d.trim().is_empty() => Some(clean(d, MAX_DESCRIPTION)),
        _ => None,
    };
    Some(TokenError::Rejected {
        error: error.clone(),
        description,
    })
}

/// `expires_in` in seconds, if present (RFC 6749 §5.1).
pub(crate) fn expires_in(v: Option<&Value>) -> Result<Option<u64>, TokenError> {
    const BAD: TokenError = TokenError::Malformed("expires_in is not a non-negative integer");
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or(BAD),
        // Some servers send the number as a string; accept plain digits only.
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map(Some).map_err(|_| BAD)
        }
        Some(_) => Err(BAD),
    }
}

fn optional_string(
    obj: &Map<String, Value>,
    key: &str,
    bad: &'static str,
) -> Result<Option<String>, TokenError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(TokenError::Malformed(bad)),
    }
}

/// Server text made safe to show: control characters replaced, at most `max` characters.
pub(crate) fn clean(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn ok(body: &str) -> Result<TokenResponse, TokenError> {
        parse_token_response(200, body.as_bytes())
    }

    #[test]
    fn full_success() {
        let t = ok(
            r#"{"access_token":"at-1","token_type":"bearer","expires_in":3600,
            "refresh_token":"rt-1","scope":"a b","id_token":"idt","extra":1}"#,
        )
        .unwrap();
        assert_eq!(t.access_token.expose_secret(), "at-1");
        assert_eq!(t.token_type, "Bearer");
        assert_eq!(t.expires_in, Some(3600));
        assert_eq!(t.refresh_token.unwrap().expose_secret(), "rt-1");
        assert_eq!(t.scope.as_deref(), Some("a b"));
        assert_eq!(t.id_token.unwrap().expose_secret(), "idt");
    }

    #[test]
    fn minimal_success() {
        let t = ok(r#"{"access_token":"at","token_type":"Bearer","refresh_token":""}"#).unwrap();
        assert_eq!(t.expires_in, None);
        assert!(t.refresh_token.is_none());
        assert!(t.scope.is_none());
        assert_eq!(
            ok(r#"{"access_token":"at","token_type":"Bearer","expires_in":"60"}"#)
                .unwrap()
                .expires_in,
            Some(60)
        );
    }

    #[test]
    fn invalid_success_bodies() {
        let m = |b: &str| ok(b).unwrap_err();
        assert_eq!(m("not json").kind(), "malformed");
        assert_eq!(m("[1]").kind(), "malformed");
        assert_eq!(
            m(r#"{"access_token":"","token_type":"Bearer"}"#),
            TokenError::Malformed("access_token is missing or empty")
        );
        assert_eq!(
            m(r#"{"access_token":5,"token_type":"Bearer"}"#),
            TokenError::Malformed("access_token is missing or empty")
        );
        assert_eq!(
            m(r#"{"access_token":"at"}"#),
            TokenError::Malformed("token_type is missing")
        );
        assert_eq!(
            m(r#"{"access_token":"at","token_type":"DPoP"}"#),
            TokenError::UnsupportedTokenType("DPoP".into())
        );
        for bad in ["-1", "1.5", "\"12a\"", "true", "\"\""] {
            assert_eq!(
                m(&format!(
                    r#"{{"access_token":"at","token_type":"Bearer","expires_in":{bad}}}"#
                )),
                TokenError::Malformed("expires_in is not a non-negative integer"),
                "{bad}"
            );
        }
        assert_eq!(
            m(r#"{"access_token":"at","token_type":"Bearer","refresh_token":7}"#),
            TokenError::Malformed("refresh_token is not a string")
        );
    }

    #[test]
    fn oauth_errors() {
        let e = parse_token_response(
            400,
            br#"{"error":"invalid_grant","error_description":"grant request is invalid"}"#,
        )
        .unwrap_err();
        assert!(e.is_invalid_grant());
        assert!(!e.is_transient());
        assert_eq!(
            e,
            TokenError::Rejected {
                error: "invalid_grant".into(),
                description: Some("grant request is invalid".into())
            }
        );
        // 200 + error (GitHub style).
        let e = ok(r#"{"error":"bad_verification_code"}"#).unwrap_err();
        assert_eq!(e.kind(), "rejected");
        // temporarily_unavailable is transient.
        assert!(
            parse_token_response(400, br#"{"error":"temporarily_unavailable"}"#)
                .unwrap_err()
                .is_transient()
        );
    }

    #[test]
    fn error_codes_and_descriptions_are_sanitised() {
        // A code outside NQSCHAR is not an OAuth error body.
        let e = parse_token_response(400, "{\"error\":\"bad\\\"code\"}".as_bytes()).unwrap_err();
        assert_eq!(e, TokenError::UpstreamStatus(400));
        let e = parse_token_response(400, "{\"error\":\"caf\u{e9}\"}".as_bytes()).unwrap_err();
        assert_eq!(e, TokenError::UpstreamStatus(400));
        let long = format!(
            r#"{{"error":"x","error_description":"{}\n"}}"#,
            "d".repeat(300)
        );
        let TokenError::Rejected { description, .. } =
            parse_token_response(401, long.as_bytes()).unwrap_err()
        else {
            panic!("not rejected")
        };
        let d = description.unwrap();
        assert_eq!(d.chars().count(), 200);
        assert!(!d.contains('\n'));
    }

    #[test]
    fn status_classification() {
        assert_eq!(
            parse_token_response(503, b"{}").unwrap_err(),
            TokenError::Unavailable
        );
        assert!(TokenError::Unavailable.is_transient());
        let e = parse_token_response(500, b"<html>oops</html>").unwrap_err();
        assert_eq!(e, TokenError::UpstreamStatus(500));
        assert!(e.is_transient());
        assert!(!e.to_string().contains("oops"));
        let e = parse_token_response(404, b"").unwrap_err();
        assert_eq!(e, TokenError::UpstreamStatus(404));
        assert!(!e.is_transient());
    }

    #[test]
    fn messages_never_contain_tokens_or_bodies() {
        let body =
            br#"{"error":"invalid_grant","error_description":"refresh token rt-SECRET is bad"}"#;
        let e = parse_token_response(400, body).unwrap_err();
        assert!(!e.to_string().contains("rt-SECRET"));
        let e = ok(r#"{"access_token":"at-SECRET","token_type":"Bearer","expires_in":-5}"#)
            .unwrap_err();
        assert!(!e.to_string().contains("at-SECRET"));
        let t =
            ok(r#"{"access_token":"at-SECRET","token_type":"Bearer","refresh_token":"rt-SECRET"}"#)
                .unwrap();
        assert!(!format!("{t:?}").contains("SECRET"));
    }

    #[test]
    fn revocation_answers() {
        assert_eq!(parse_revocation_response(200, b""), Ok(()));
        assert_eq!(
            parse_revocation_response(503, b""),
            Err(TokenError::Unavailable)
        );
        assert_eq!(
            parse_revocation_response(400, br#"{"error":"unsupported_token_type"}"#)
                .unwrap_err()
                .kind(),
            "rejected"
        );
    }
}

#[cfg(test)]
mod proptests;
