//! Initializing a remote server on a client's behalf (see [`super::sessions`]): replay the
//! client's `initialize`, read the answer (JSON or SSE) for the negotiated protocol version and
//! the remote session id, then send `notifications/initialized`.

use super::client::{Upstream, UpstreamBody, UpstreamError};
use super::headers::{MCP_PROTOCOL_VERSION, MCP_SESSION_ID, is_mcp_content_type};
use super::sessions::UpstreamSession;
use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use serde_json::Value;
use std::time::Duration;

/// Largest `initialize` answer read.
const MAX_REPLY_BYTES: usize = 1024 * 1024;

const INITIALIZED: &[u8] = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// Why the remote session could not be started.
#[derive(Debug)]
pub enum StartError {
    /// The remote server refused the credentials (401/403): the caller handles it like any
    /// refusal, with the response's `WWW-Authenticate`.
    Refused(Box<Response<Incoming>>),
    Transport(UpstreamError),
    /// Anything else, described for the caller (no URLs, no header values).
    Failed(String),
}

/// What the remote server answered to `initialize`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitializeReply {
    pub protocol_version: Option<String>,
}

/// Start the remote side: `initialize`, then `notifications/initialized`.
pub async fn start(
    upstream: &Upstream,
    uri: &Uri,
    authorization: Option<&HeaderValue>,
    initialize: Bytes,
    read_timeout: Duration,
) -> Result<UpstreamSession, StartError> {
    let resp = upstream
        .send(request(uri, authorization, None, None, initialize)?)
        .await
        .map_err(StartError::Transport)?;
    let status = resp.status();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(StartError::Refused(Box::new(resp)));
    }
    if !status.is_success() || !is_mcp_content_type(resp.headers()) {
        return Err(StartError::Failed(format!(
            "initialize was answered with HTTP {}",
            status.as_u16()
        )));
    }
    let session_id = resp.headers().get(MCP_SESSION_ID).cloned();
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let reply = tokio::time::timeout(read_timeout, read_reply(resp, &content_type))
        .await
        .map_err(|_| StartError::Failed("the initialize answer did not arrive in time".into()))??;
    let version = reply
        .protocol_version
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok());
    let ack = upstream
        .send(request(
            uri,
            authorization,
            session_id.as_ref(),
            version.as_ref(),
            Bytes::from_static(INITIALIZED),
        )?)
        .await
        .map_err(StartError::Transport)?;
    if !ack.status().is_success() {
        return Err(StartError::Failed(format!(
            "notifications/initialized was answered with HTTP {}",
            ack.status().as_u16()
        )));
    }
    Ok(UpstreamSession { id: session_id })
}

fn request(
    uri: &Uri,
    authorization: Option<&HeaderValue>,
    session: Option<&HeaderValue>,
    version: Option<&HeaderValue>,
    body: Bytes,
) -> Result<Request<UpstreamBody>, StartError> {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(uri.clone())
        .header(ACCEPT, "application/json, text/event-stream")
        .header(CONTENT_TYPE, "application/json");
    if let Some(a) = authorization {
        b = b.header(AUTHORIZATION, a.clone());
    }
    if let Some(s) = session {
        b = b.header(MCP_SESSION_ID, s.clone());
    }
    if let Some(v) = version {
        b = b.header(MCP_PROTOCOL_VERSION, v.clone());
    }
    b.body(UpstreamBody::new(body))
        .map_err(|e| StartError::Failed(format!("cannot build the request: {e}")))
}

/// Read the body until it holds the `initialize` answer (an SSE stream may stay open after it).
async fn read_reply(
    resp: Response<Incoming>,
    content_type: &str,
) -> Result<InitializeReply, StartError> {
    let mut body = resp.into_body();
    let mut buf = BytesMut::new();
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
                if buf.len() > MAX_REPLY_BYTES {
                    return Err(StartError::Failed(
                        "the initialize answer is too large".into(),
                    ));
                }
                if let Some(reply) = initialize_reply(content_type, &buf, false)? {
                    return Ok(reply);
                }
            }
            Some(Err(e)) => {
                return Err(StartError::Failed(format!(
                    "reading the initialize answer failed: {e}"
                )));
            }
            None => {
                return initialize_reply(content_type, &buf, true)?.ok_or_else(|| {
                    StartError::Failed("the initialize answer holds no JSON-RPC response".into())
                });
            }
        }
    }
}

/// The answer in `body` so far: `Ok(None)` when more is needed (`complete`: nothing more comes).
pub fn initialize_reply(
    content_type: &str,
    body: &[u8],
    complete: bool,
) -> Result<Option<InitializeReply>, StartError> {
    let is_sse = content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"));
    if !is_sse {
        if !complete {
            return Ok(None);
        }
        let v: Value = serde_json::from_slice(body)
            .map_err(|_| StartError::Failed("the initialize answer is not JSON".into()))?;
        return from_message(&v).map(Some);
    }
    for data in sse_events(body) {
        if let Ok(v) = serde_json::from_str::<Value>(&data)
            && (v.get("result").is_some() || v.get("error").is_some())
        {
            return from_message(&v).map(Some);
        }
    }
    Ok(None)
}

fn from_message(v: &Value) -> Result<InitializeReply, StartError> {
    if let Some(err) = v.get("error") {
        let code = err.get("code").and_then(Value::as_i64).unwrap_or_default();
        return Err(StartError::Failed(format!(
            "initialize was refused with JSON-RPC error {code}"
        )));
    }
    let result = v
        .get("result")
        .ok_or_else(|| StartError::Failed("the initialize answer has no result".into()))?;
    Ok(InitializeReply {
        protocol_version: result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// The `data` of every complete event (terminated by a blank line) in an SSE byte stream.
fn sse_events(body: &[u8]) -> Vec<String> {
    // SSE ends lines with CRLF, LF or a lone CR (WHATWG HTML §9.2.5).
    let text = String::from_utf8_lossy(body)
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    let mut events = Vec::new();
    let mut rest = text.as_str();
    while let Some(end) = rest.find("\n\n") {
        let event = &rest[..end];
        rest = &rest[end + 2..];
        let data: Vec<&str> = event
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        if !data.is_empty() {
            events.push(data.join("\n"));
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(r: Result<Option<InitializeReply>, StartError>) -> Option<String> {
        match r {
            Ok(Some(reply)) => reply.protocol_version,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn reads_a_json_answer_once_complete() {
        let body = br#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18"}}"#;
        assert!(matches!(
            initialize_reply("application/json", body, false),
            Ok(None)
        ));
        assert_eq!(
            version(initialize_reply("application/json", body, true)).as_deref(),
            Some("2025-06-18")
        );
    }

    #[test]
    fn reads_the_response_event_of_an_sse_answer() {
        let body = b"event: message\r\nid: 1\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\r\n\r\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{\"protocolVersion\":\"2025-03-26\"}}\n\n";
        assert_eq!(
            version(initialize_reply("text/event-stream", body, false)).as_deref(),
            Some("2025-03-26")
        );
        let partial = b"data: {\"jsonrpc\":\"2.0\",\"id\":0,\"res";
        assert!(matches!(
            initialize_reply("text/event-stream", partial, false),
            Ok(None)
        ));
    }

    #[test]
    fn an_error_or_garbage_is_a_failure() {
        let err = br#"{"jsonrpc":"2.0","id":0,"error":{"code":-32602,"message":"bad"}}"#;
        assert!(matches!(
            initialize_reply("application/json", err, true),
            Err(StartError::Failed(m)) if m.contains("-32602")
        ));
        assert!(matches!(
            initialize_reply("application/json", b"<html>", true),
            Err(StartError::Failed(_))
        ));
    }
}

#[cfg(test)]
mod proptests;
