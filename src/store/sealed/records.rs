//! The plaintext form of stored records (JSON), what the sealed layer seals. Pure, no I/O.
//!
//! Private serde structs rather than `Serialize` on the domain types: secrets are exposed only
//! here, for the moment of serialising into a zeroized buffer, and the stored schema does not
//! change when a domain type gains a field. Unknown fields are ignored (a newer replica may add
//! some), missing optional ones default.

use crate::registry::ServerKey;
use crate::store::{BrowserBinding, PendingFlow, TokenRecord};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Why a decrypted value is not a record. Never carries any part of the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("decrypted value is not a valid {what} ({problem} at line {line}, column {column})")]
pub struct RecordError {
    what: &'static str,
    problem: &'static str,
    line: usize,
    column: usize,
}

impl RecordError {
    fn new(what: &'static str, err: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        let problem = match err.classify() {
            Category::Io => "read error",
            Category::Syntax => "JSON syntax error",
            Category::Data => "missing or mistyped field",
            Category::Eof => "truncated JSON",
        };
        Self {
            what,
            problem,
            line: err.line(),
            column: err.column(),
        }
    }
}

#[derive(Serialize)]
struct TokenOut<'a> {
    access_token: &'a str,
    token_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    granted_scope: Option<&'a str>,
    issuer: &'a str,
    client_id: &'a str,
    user: &'a str,
    obtained_at: u64,
}

#[derive(Deserialize)]
struct TokenIn {
    access_token: String,
    token_type: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_at: Option<u64>,
    #[serde(default)]
    granted_scope: Option<String>,
    issuer: String,
    client_id: String,
    user: String,
    obtained_at: u64,
}

/// `record` as JSON, in a buffer wiped on drop.
pub fn encode_token(record: &TokenRecord) -> Zeroizing<Vec<u8>> {
    let out = TokenOut {
        access_token: record.access_token.expose_secret(),
        token_type: &record.token_type,
        refresh_token: record.refresh_token.as_ref().map(|t| t.expose_secret()),
        expires_at: record.expires_at,
        granted_scope: record.granted_scope.as_deref(),
        issuer: &record.issuer,
        client_id: &record.client_id,
        user: &record.user,
        obtained_at: record.obtained_at,
    };
    to_json(&out)
}

pub fn decode_token(json: &[u8]) -> Result<TokenRecord, RecordError> {
    let t: TokenIn =
        serde_json::from_slice(json).map_err(|e| RecordError::new("token record", &e))?;
    Ok(TokenRecord {
        access_token: SecretString::from(t.access_token),
        token_type: t.token_type,
        refresh_token: t.refresh_token.map(SecretString::from),
        expires_at: t.expires_at,
        granted_scope: t.granted_scope,
        issuer: t.issuer,
        client_id: t.client_id,
        user: t.user,
        obtained_at: t.obtained_at,
    })
}

#[derive(Serialize)]
struct FlowOut<'a> {
    session: &'a str,
    user: &'a str,
    server_namespace: &'a str,
    server_name: &'a str,
    issuer: &'a str,
    scopes: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<&'a str>,
    token_resource: &'a str,
    created_at: u64,
    expires_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    browser: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pkce_verifier: Option<&'a str>,
}

#[derive(Deserialize)]
struct FlowIn {
    session: String,
    user: String,
    server_namespace: String,
    server_name: String,
    issuer: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    resource: Option<String>,
    /// Absent in flows written before tokens were bound to their resource: empty, and such a
    /// flow is refused at the callback.
    #[serde(default)]
    token_resource: String,
    created_at: u64,
    expires_at: u64,
    #[serde(default)]
    browser: Option<String>,
    #[serde(default)]
    pkce_verifier: Option<String>,
}

pub fn encode_flow(flow: &PendingFlow) -> Zeroizing<Vec<u8>> {
    let out = FlowOut {
        session: &flow.session,
        user: &flow.user,
        server_namespace: &flow.server.namespace,
        server_name: &flow.server.name,
        issuer: &flow.issuer,
        scopes: &flow.scopes,
        resource: flow.resource.as_deref(),
        token_resource: &flow.token_resource,
        created_at: flow.created_at,
        expires_at: flow.expires_at,
        browser: flow.browser.map(|b| b.to_hex()),
        pkce_verifier: flow.pkce_verifier.as_ref().map(|v| v.expose_secret()),
    };
    to_json(&out)
}

pub fn decode_flow(json: &[u8]) -> Result<PendingFlow, RecordError> {
    let f: FlowIn = serde_json::from_slice(json).map_err(|e| RecordError::new("flow state", &e))?;
    let browser = match f.browser {
        None => None,
        Some(h) => Some(BrowserBinding::from_hex(&h).ok_or(RecordError {
            what: "flow state",
            problem: "browser binding is not 64 hex digits",
            line: 0,
            column: 0,
        })?),
    };
    Ok(PendingFlow {
        session: f.session,
        user: f.user,
        server: ServerKey::new(f.server_namespace, f.server_name),
        issuer: f.issuer,
        scopes: f.scopes,
        resource: f.resource,
        token_resource: f.token_resource,
        created_at: f.created_at,
        expires_at: f.expires_at,
        browser,
        pkce_verifier: f.pkce_verifier.map(SecretString::from),
    })
}

fn to_json<T: Serialize>(value: &T) -> Zeroizing<Vec<u8>> {
    // Serialising these structs cannot fail (string keys, no maps, no custom impls); should it
    // ever, an empty buffer fails to decode on read instead of panicking on write.
    Zeroizing::new(serde_json::to_vec(value).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> TokenRecord {
        TokenRecord {
            access_token: SecretString::from("at"),
            token_type: "Bearer".into(),
            refresh_token: Some(SecretString::from("rt")),
            expires_at: Some(10),
            granted_scope: Some("a b".into()),
            issuer: "https://idp".into(),
            client_id: "c".into(),
            user: "alice".into(),
            obtained_at: 5,
        }
    }

    #[test]
    fn token_round_trips_with_and_without_optionals() {
        for record in [
            token(),
            TokenRecord {
                refresh_token: None,
                expires_at: None,
                granted_scope: None,
                ..token()
            },
        ] {
            let json = encode_token(&record);
            let back = decode_token(&json).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back.access_token.expose_secret(), "at");
            assert_eq!(
                back.refresh_token
                    .as_ref()
                    .map(|t| t.expose_secret().to_owned()),
                record
                    .refresh_token
                    .as_ref()
                    .map(|t| t.expose_secret().to_owned())
            );
            assert_eq!(back.expires_at, record.expires_at);
            assert_eq!(back.granted_scope, record.granted_scope);
            assert_eq!(back.user, "alice");
            assert_eq!(back.obtained_at, 5);
        }
    }

    #[test]
    fn flow_round_trips() {
        let flow = PendingFlow {
            session: "s".into(),
            user: "u".into(),
            server: ServerKey::new("ns", "n"),
            issuer: "https://idp".into(),
            scopes: vec!["a".into()],
            resource: Some("https://mcp".into()),
            token_resource: "https://mcp".into(),
            created_at: 1,
            expires_at: 2,
            browser: Some(BrowserBinding::from_cookie_secret("c")),
            pkce_verifier: Some(SecretString::from("v")),
        };
        let back = decode_flow(&encode_flow(&flow)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.server, flow.server);
        assert_eq!(back.scopes, flow.scopes);
        assert!(
            back.browser
                .is_some_and(|b| b.matches(&BrowserBinding::from_cookie_secret("c")))
        );
        assert_eq!(
            back.pkce_verifier.map(|v| v.expose_secret().to_owned()),
            Some("v".into())
        );
    }

    #[test]
    fn errors_never_quote_the_value() {
        let secret_json = br#"{"access_token": 12345678, "token_type": "secret-value"}"#;
        let err = decode_token(secret_json)
            .err()
            .unwrap_or_else(|| panic!("must fail"));
        let msg = err.to_string();
        assert!(msg.contains("missing or mistyped field"), "{msg}");
        assert!(
            !msg.contains("12345678") && !msg.contains("secret-value"),
            "{msg}"
        );
        let err = decode_flow(b"{\"session\": \"sess")
            .err()
            .unwrap_or_else(|| panic!("must fail"));
        assert!(!err.to_string().contains("sess\""), "{err}");
        assert!(decode_token(b"not json").is_err());
    }

    #[test]
    fn bad_browser_binding_is_an_error() {
        let json = br#"{"session":"s","user":"u","server_namespace":"n","server_name":"m",
            "issuer":"i","created_at":1,"expires_at":2,"browser":"zz"}"#;
        let err = decode_flow(json)
            .err()
            .unwrap_or_else(|| panic!("must fail"));
        assert!(err.to_string().contains("browser binding"), "{err}");
    }
}
