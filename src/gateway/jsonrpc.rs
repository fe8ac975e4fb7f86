//! The few fields of a JSON-RPC message the gateway needs to decide how to answer it: id, method,
//! tool name, protocol version and whether the client declares URL-mode elicitation.
//!
//! Only the envelope is read. `params.arguments` and everything else is skipped by serde without
//! building a value tree, so a large tool call costs one scan of its bytes. Fields the gateway only
//! peeks at (`_meta`, capabilities, versions) are read leniently: a value of an unexpected type
//! counts as absent instead of failing the request, because the remote server, not the gateway,
//! is the judge of a request it will receive unchanged.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::fmt;
use std::marker::PhantomData;

/// JSON-RPC: invalid JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC: JSON, but not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC: the method does not exist.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// MCP `2025-11-25`: URL-mode elicitation required before the request can be retried.
pub const URL_ELICITATION_REQUIRED: i64 = -32042;
/// Ours, from the implementation-defined range (`-32000`..`-32019`) that the MCP specification
/// promises never to use: the user must authorize the remote server first. Used where no richer
/// form exists for the request (see [`crate::gateway::challenge`]).
pub const AUTHORIZATION_REQUIRED: i64 = -32001;

/// `_meta` key carrying the protocol version of a `2026-07-28` request.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key carrying the client capabilities of a `2026-07-28` request.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";

/// What the gateway knows about one message (or, for a batch, that it is one).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Envelope {
    /// The request id (a string or a number); `None` for notifications and batches.
    pub id: Option<Value>,
    pub method: Option<String>,
    /// `params.name` of a `tools/call`.
    pub tool_name: Option<String>,
    /// `_meta["io.modelcontextprotocol/protocolVersion"]`, or `params.protocolVersion` of an
    /// `initialize`.
    pub protocol_version: Option<String>,
    /// Whether the capabilities sent with this message declare `elicitation.url`:
    /// `_meta["io.modelcontextprotocol/clientCapabilities"]`, or `params.capabilities` of an
    /// `initialize`. `None` when the message carries no capabilities at all.
    pub url_elicitation: Option<bool>,
    /// A method without an id: no response is expected.
    pub is_notification: bool,
    /// A JSON array of messages (allowed by `2025-03-26`, removed later). The other fields are
    /// empty; [`parse_batch`] reads the members.
    pub is_batch: bool,
    /// A `result` or `error` the client sends back (a reply to a server-to-client request).
    pub is_response: bool,
}

impl Envelope {
    /// True when the message expects a JSON-RPC response from us.
    pub fn expects_response(&self) -> bool {
        !self.is_notification && !self.is_response && !self.is_batch
    }

    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }
}

/// Why a body is not a JSON-RPC message. The text never quotes the body: it may hold secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("invalid JSON at line {line} column {column}")]
    Parse { line: usize, column: usize },
    #[error("not a JSON-RPC request: {0}")]
    InvalidRequest(&'static str),
}

impl EnvelopeError {
    /// The JSON-RPC error code to answer with.
    pub fn code(&self) -> i64 {
        match self {
            EnvelopeError::Parse { .. } => PARSE_ERROR,
            EnvelopeError::InvalidRequest(_) => INVALID_REQUEST,
        }
    }

    /// The JSON-RPC error response (with a null id, as JSON-RPC requires when it is unknown).
    pub fn to_response(&self) -> Value {
        error_response(None, self.code(), &self.to_string(), None)
    }
}

/// Parses the envelope of one message or marks a batch.
pub fn parse_envelope(body: &[u8]) -> Result<Envelope, EnvelopeError> {
    if first_byte(body) == Some(b'[') {
        // Validate the members now so a malformed batch is rejected as a whole.
        parse_batch(body)?;
        return Ok(Envelope {
            is_batch: true,
            ..Envelope::default()
        });
    }
    let raw: RawMessage = serde_json::from_slice(body).map_err(map_serde)?;
    raw.into_envelope()
}

/// Parses every member of a batch (`[...]`); a single message gives a one-element list.
pub fn parse_batch(body: &[u8]) -> Result<Vec<Envelope>, EnvelopeError> {
    if first_byte(body) != Some(b'[') {
        return parse_envelope(body).map(|e| vec![e]);
    }
    let raws: Vec<RawMessage> = serde_json::from_slice(body).map_err(map_serde)?;
    if raws.is_empty() {
        return Err(EnvelopeError::InvalidRequest("empty batch"));
    }
    raws.into_iter().map(RawMessage::into_envelope).collect()
}

/// `{"jsonrpc":"2.0","id":…,"result":…}`.
pub fn result_response(id: Option<&Value>, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "result": result})
}

/// `{"jsonrpc":"2.0","id":…,"error":{"code","message","data"?}}`.
pub fn error_response(id: Option<&Value>, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = json!({"code": code, "message": message});
    if let (Some(data), Some(obj)) = (data, error.as_object_mut()) {
        obj.insert("data".to_owned(), data);
    }
    json!({"jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": error})
}

fn first_byte(body: &[u8]) -> Option<u8> {
    body.iter().copied().find(|b| !b.is_ascii_whitespace())
}

fn map_serde(e: serde_json::Error) -> EnvelopeError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => EnvelopeError::Parse {
            line: e.line(),
            column: e.column(),
        },
        // The serde message may quote a value from the body; keep only a fixed reason.
        Category::Data => EnvelopeError::InvalidRequest("not a JSON-RPC message object"),
    }
}

/// The wire shape, every field optional so the checks below can say what is wrong.
#[derive(Deserialize)]
struct RawMessage {
    #[serde(default, deserialize_with = "lenient_string")]
    jsonrpc: Option<String>,
    /// `Some(Value::Null)` when `"id": null` is present, `None` when absent.
    #[serde(default, deserialize_with = "present_value")]
    id: Option<Value>,
    #[serde(default, deserialize_with = "lenient_string")]
    method: Option<String>,
    #[serde(default, deserialize_with = "lenient_object")]
    params: Option<RawParams>,
    #[serde(default, deserialize_with = "present")]
    result: bool,
    #[serde(default, deserialize_with = "present")]
    error: bool,
}

#[derive(Deserialize)]
struct RawParams {
    #[serde(default, deserialize_with = "lenient_string")]
    name: Option<String>,
    #[serde(
        default,
        rename = "protocolVersion",
        deserialize_with = "lenient_string"
    )]
    protocol_version: Option<String>,
    #[serde(default, deserialize_with = "lenient_object")]
    capabilities: Option<RawCapabilities>,
    #[serde(default, rename = "_meta", deserialize_with = "lenient_object")]
    meta: Option<RawMeta>,
}

#[derive(Deserialize)]
struct RawMeta {
    #[serde(
        default,
        rename = "io.modelcontextprotocol/protocolVersion",
        deserialize_with = "lenient_string"
    )]
    protocol_version: Option<String>,
    #[serde(
        default,
        rename = "io.modelcontextprotocol/clientCapabilities",
        deserialize_with = "lenient_object"
    )]
    capabilities: Option<RawCapabilities>,
}

#[derive(Deserialize)]
struct RawCapabilities {
    #[serde(default, deserialize_with = "lenient_object")]
    elicitation: Option<RawElicitation>,
}

#[derive(Deserialize)]
struct RawElicitation {
    /// Declared when present and not null (`{}` or an object of settings).
    #[serde(default, deserialize_with = "present")]
    url: bool,
}

impl RawCapabilities {
    fn url_elicitation(&self) -> bool {
        self.elicitation.as_ref().is_some_and(|e| e.url)
    }
}

impl RawMessage {
    fn into_envelope(self) -> Result<Envelope, EnvelopeError> {
        if self.jsonrpc.as_deref() != Some("2.0") {
            return Err(EnvelopeError::InvalidRequest("jsonrpc must be \"2.0\""));
        }
        if let Some(id) = &self.id
            && !(id.is_string() || id.is_number())
        {
            return Err(EnvelopeError::InvalidRequest(
                "id must be a string or a number",
            ));
        }
        let Some(method) = self.method else {
            if (self.result || self.error) && self.id.is_some() {
                return Ok(Envelope {
                    id: self.id,
                    is_response: true,
                    ..Envelope::default()
                });
            }
            return Err(EnvelopeError::InvalidRequest(
                "method must be a string (or the message a response)",
            ));
        };
        let is_notification = self.id.is_none();
        let is_initialize = method == "initialize";
        let mut env = Envelope {
            id: self.id,
            is_notification,
            ..Envelope::default()
        };
        if let Some(params) = self.params {
            if let Some(meta) = &params.meta {
                env.protocol_version = meta.protocol_version.clone();
                env.url_elicitation = meta.capabilities.as_ref().map(|c| c.url_elicitation());
            }
            if is_initialize {
                env.protocol_version = env.protocol_version.or(params.protocol_version);
                if env.url_elicitation.is_none() {
                    env.url_elicitation = params.capabilities.as_ref().map(|c| c.url_elicitation());
                }
            }
            if method == "tools/call" {
                env.tool_name = params.name;
            }
        }
        env.method = Some(method);
        Ok(env)
    }
}

/// Visitor methods of the lenient readers: scalars, nulls and arrays are skipped (arrays
/// element by element, never built) and read as `None`.
macro_rules! skip_to_none {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    };
}

/// A string, or `None` for any other JSON value (which is skipped, not built).
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        skip_to_none!();
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// An object read as `T` (whose fields must themselves be lenient), or `None` for any other
/// JSON value.
fn lenient_object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
        skip_to_none!();
    }
    d.deserialize_any(V(PhantomData))
}

/// True when the field is present with a non-null value; the value itself is skipped.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<IgnoredAny>::deserialize(d)?.is_some())
}

/// The value when the field is present, `Some(Value::Null)` included.
fn present_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Serialises a plain struct of strings, which cannot fail; `null` if it ever did.
pub(crate) fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(body: &str) -> Envelope {
        parse_envelope(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    fn err(body: &str) -> EnvelopeError {
        match parse_envelope(body.as_bytes()) {
            Ok(e) => panic!("{body} parsed: {e:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn tools_call_2025_has_id_method_and_tool_name_only() {
        let e = env(
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"whoami","arguments":{"x":[1,2,{"y":"z"}]}}}"#,
        );
        assert_eq!(e.id, Some(json!(7)));
        assert_eq!(e.method(), Some("tools/call"));
        assert_eq!(e.tool_name.as_deref(), Some("whoami"));
        assert_eq!(e.protocol_version, None);
        assert_eq!(e.url_elicitation, None);
        assert!(!e.is_notification && !e.is_batch && !e.is_response);
        assert!(e.expects_response());
    }

    #[test]
    fn request_2026_reads_meta_version_and_url_capability() {
        let e = env(
            r#"{"jsonrpc":"2.0","id":"a-1","method":"tools/call","params":{"name":"t","_meta":{
                "io.modelcontextprotocol/protocolVersion":"2026-07-28",
                "io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"},
                "io.modelcontextprotocol/clientCapabilities":{"elicitation":{"url":{},"form":{}}}}}}"#,
        );
        assert_eq!(e.id, Some(json!("a-1")));
        assert_eq!(e.protocol_version.as_deref(), Some("2026-07-28"));
        assert_eq!(e.url_elicitation, Some(true));
    }

    #[test]
    fn request_2026_without_url_capability_says_false_not_unknown() {
        for caps in [
            r#"{}"#,
            r#"{"elicitation":{}}"#,
            r#"{"elicitation":{"form":{}}}"#,
            r#"{"elicitation":{"url":null}}"#,
        ] {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{caps}}}}}}}"#
            );
            assert_eq!(env(&body).url_elicitation, Some(false), "{caps}");
        }
    }

    #[test]
    fn initialize_reads_params_version_and_capabilities() {
        let e = env(
            r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{"url":{}}},"clientInfo":{"name":"x","version":"1"}}}"#,
        );
        assert_eq!(e.protocol_version.as_deref(), Some("2025-11-25"));
        assert_eq!(e.url_elicitation, Some(true));
        let e = env(
            r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{}}}"#,
        );
        assert_eq!(e.protocol_version.as_deref(), Some("2025-06-18"));
        assert_eq!(e.url_elicitation, Some(false));
    }

    #[test]
    fn params_protocol_version_counts_only_for_initialize() {
        let e = env(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{"url":{}}}}}"#,
        );
        assert_eq!(e.protocol_version, None);
        assert_eq!(e.url_elicitation, None);
        assert_eq!(e.tool_name, None, "tool name only for tools/call");
    }

    #[test]
    fn prompts_get_name_is_not_a_tool_name() {
        let e = env(r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p"}}"#);
        assert_eq!(e.tool_name, None);
    }

    #[test]
    fn notification_and_response() {
        let n = env(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert!(n.is_notification);
        assert_eq!(n.id, None);
        assert!(!n.expects_response());
        let r = env(r#"{"jsonrpc":"2.0","id":3,"result":{"action":"accept"}}"#);
        assert!(r.is_response && !r.is_notification);
        assert_eq!(r.method, None);
        assert!(!r.expects_response());
        let r = env(r#"{"jsonrpc":"2.0","id":"s1","error":{"code":1,"message":"m"}}"#);
        assert!(r.is_response);
    }

    #[test]
    fn odd_types_in_peeked_fields_count_as_absent() {
        let e = env(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":42,"_meta":{"io.modelcontextprotocol/protocolVersion":["x"],"io.modelcontextprotocol/clientCapabilities":"all"}}}"#,
        );
        assert_eq!(e.tool_name, None);
        assert_eq!(e.protocol_version, None);
        assert_eq!(e.url_elicitation, None);
        let e = env(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":[1,2]}"#);
        assert_eq!(e.method(), Some("tools/list"));
        let e = env(
            r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":true}}}"#,
        );
        assert_eq!(e.url_elicitation, Some(false));
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let e = env(
            r#"{"jsonrpc":"2.0","id":"\u0031","method":"tools\/call","params":{"name":"a\"b"}}"#,
        );
        assert_eq!(e.id, Some(json!("1")));
        assert_eq!(e.method(), Some("tools/call"));
        assert_eq!(e.tool_name.as_deref(), Some("a\"b"));
    }

    #[test]
    fn batches_are_marked_and_their_members_parsed() {
        let body = r#" [{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#;
        let e = env(body);
        assert!(e.is_batch);
        assert!(!e.expects_response());
        assert_eq!(e.method, None);
        let members = parse_batch(body.as_bytes()).expect("batch");
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].method(), Some("ping"));
        assert!(members[1].is_notification);
        let single = parse_batch(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).expect("one");
        assert_eq!(single.len(), 1);
    }

    #[test]
    fn malformed_json_is_a_parse_error() {
        for body in [
            "",
            "   ",
            "{",
            r#"{"jsonrpc":"2.0","id":1,"method":"x""#,
            "nul",
            r#"{"a":1} x"#,
            "[{]",
        ] {
            let e = err(body);
            assert_eq!(e.code(), PARSE_ERROR, "{body:?}: {e}");
        }
    }

    #[test]
    fn json_that_is_not_a_request_is_invalid_request() {
        let cases = [
            ("42", "not a JSON-RPC message object"),
            (r#""tools/call""#, "not a JSON-RPC message object"),
            ("null", "not a JSON-RPC message object"),
            ("[]", "empty batch"),
            ("[1]", "not a JSON-RPC message object"),
            (r#"{"id":1,"method":"ping"}"#, "jsonrpc"),
            (r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#, "jsonrpc"),
            (r#"{"jsonrpc":"2.0","id":1}"#, "method"),
            (r#"{"jsonrpc":"2.0","id":1,"method":5}"#, "method"),
            (r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#, "id"),
            (r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#, "id"),
            (r#"{"jsonrpc":"2.0","id":true,"method":"ping"}"#, "id"),
            (r#"{"jsonrpc":"2.0","result":{}}"#, "method"),
            (
                r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#,
                "not a JSON-RPC",
            ),
        ];
        for (body, needle) in cases {
            let e = err(body);
            assert_eq!(e.code(), INVALID_REQUEST, "{body}: {e}");
            assert!(e.to_string().contains(needle), "{body}: {e}");
        }
    }

    #[test]
    fn errors_never_quote_the_body() {
        let secret = "tok_SECRET_VALUE";
        for body in [
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":"{secret}"#),
            format!(r#""{secret}""#),
            format!(r#"{{"jsonrpc":"{secret}","id":1,"method":"x"}}"#),
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{{"_meta":{{"io.modelcontextprotocol/clientCapabilities":{{"elicitation":{{"url":"{secret}" }}}}}}}}}}"#
            ),
        ] {
            if let Err(e) = parse_envelope(body.as_bytes()) {
                assert!(!e.to_string().contains(secret), "{e}");
                assert!(!e.to_response().to_string().contains(secret));
            }
        }
    }

    #[test]
    fn error_response_shapes() {
        let e = err("{");
        let r = e.to_response();
        assert_eq!(r["jsonrpc"], "2.0");
        assert_eq!(r["id"], Value::Null);
        assert_eq!(r["error"]["code"], PARSE_ERROR);
        let r = error_response(Some(&json!("x")), -1, "m", Some(json!({"k":1})));
        assert_eq!(r["id"], "x");
        assert_eq!(r["error"]["data"]["k"], 1);
        let r = error_response(Some(&json!(2)), -1, "m", None);
        assert!(r["error"].get("data").is_none());
        let r = result_response(Some(&json!(2)), json!({}));
        assert_eq!(r, json!({"jsonrpc":"2.0","id":2,"result":{}}));
    }
}

#[cfg(test)]
mod proptests;
