//! `/mcp/{namespace}/{name}`: one request through the gateway, top to bottom:
//! identity → registry → body → the client's MCP session → credentials → the [`super::leg`] to the
//! remote server → response (streamed back, or the auth challenge).
//!
//! The hot path (a token is stored, the remote server accepts it) reads the body once, never
//! parses it (only a cheap byte search decides whether an `initialize` must be remembered), and
//! streams the response back as hyper frames. The JSON-RPC envelope is parsed only when the
//! gateway must answer itself: no token, a 401/403 from the remote server, an error.

use super::Gateway;
use super::challenge::client_profile::{ClientProfile, ProfileKey};
use super::challenge::forms::{self, ChallengeReply};
use super::challenge::synthetic::{self, AUTHENTICATE_TOOL};
use super::error::GatewayError;
use super::jsonrpc::{self, Envelope, EnvelopeError};
use super::leg::{LegOutcome, Outgoing};
use super::upstream::body;
use super::upstream::headers::{self, MCP_METHOD, MCP_PROTOCOL_VERSION, MCP_SESSION_ID};
use super::upstream::sessions::{GatewaySession, is_gateway_id};
use crate::credentials::{Credentials, forward};
use crate::identity::{AudienceTarget, Authenticated};
use crate::registry::ServerKey;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{
    ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE,
    X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use hyper::body::{Body as _, Incoming};
use std::sync::Arc;
use std::time::Instant;

/// The axum handler.
pub async fn proxy(
    State(gw): State<Arc<Gateway>>,
    Path((namespace, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    let started = Instant::now();
    let server = ServerKey { namespace, name };
    let (parts, body) = req.into_parts();

    // Tokens are accepted for this server's own audiences only (plus the gateway-wide ones):
    // see `AudienceTarget`.
    let registered = gw.registry.server(&server);
    let target = AudienceTarget::Server {
        namespace: &server.namespace,
        name: &server.name,
        own: forward::own_audiences(registered.as_deref()),
    };
    let auth = match gw.identity.authenticate_at(&parts.headers, target).await {
        Ok(auth) => auth,
        Err(e) => {
            record(&gw, &server, "unauthenticated", started);
            let public_url = &gw.flows.config().public_url;
            return crate::identity::unauthorized(public_url, parts.uri.path(), &e);
        }
    };

    let mut call = Call {
        gw: &gw,
        server,
        auth,
        method: parts.method,
        headers: parts.headers,
        body: Bytes::new(),
        envelope: None,
        identity_headers: gw.identity.identity_headers(),
    };
    let (outcome, response) = match call.run(body).await {
        Ok(done) => done,
        Err(e) => {
            log_failure(&call.server, &e);
            (e.outcome(), e.to_response(call.request_id()))
        }
    };
    record(&gw, &call.server, outcome, started);
    response
}

/// Count the request under its server's name, or under `unknown` when the path names no
/// registered server (see [`super::metrics`]).
fn record(gw: &Gateway, server: &ServerKey, outcome: &'static str, started: Instant) {
    let label = if gw.registry.server(server).is_some() {
        server.to_string()
    } else {
        super::metrics::UNKNOWN_SERVER.to_owned()
    };
    gw.metrics.record(&label, outcome, started.elapsed());
}

fn log_failure(server: &ServerKey, e: &GatewayError) {
    if e.status().is_server_error() {
        tracing::warn!(server = %server, outcome = e.outcome(), error = %e, "gateway request failed");
    } else {
        tracing::debug!(server = %server, outcome = e.outcome(), error = %e, "gateway request refused");
    }
}

type Done = (&'static str, Response);

/// One request in flight.
struct Call<'a> {
    gw: &'a Gateway,
    server: ServerKey,
    auth: Authenticated,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
    /// Parsed on first need.
    envelope: Option<Result<Envelope, EnvelopeError>>,
    /// Headers the caller's identity came from (`header` mode); never sent upstream.
    identity_headers: Vec<http::HeaderName>,
}

impl Call<'_> {
    async fn run(&mut self, body: Body) -> Result<Done, GatewayError> {
        if ![Method::POST, Method::GET, Method::DELETE].contains(&self.method) {
            return Ok(("method_not_allowed", method_not_allowed()));
        }
        // Read before the lookup, so that even "unknown server" answers carry the request's id.
        if self.method == Method::POST {
            let cfg = &self.gw.cfg;
            self.body = body::read(
                body,
                &self.headers,
                cfg.max_request_body_bytes,
                cfg.request_body_timeout,
            )
            .await
            .map_err(GatewayError::from)?;
        }
        let gw = self.gw;
        let reg = gw
            .registry
            .server(&self.server)
            .ok_or_else(|| GatewayError::UnknownServer(self.server.clone()))?;
        let session = self.gateway_session()?;
        let creds = gw.leg(&reg, &self.auth).credentials().await?;
        if matches!(creds, Credentials::AuthorizationRequired) {
            return self.unauthorized(session, None).await;
        }
        if let Some(reply) = self.authenticate_when_authorized(session.is_some()) {
            return Ok(("already_authorized", reply_response(reply)));
        }
        let outgoing = Outgoing {
            method: &self.method,
            headers: &self.headers,
            body: &self.body,
            identity_headers: &self.identity_headers,
            session: session.as_deref(),
        };
        let leg = gw.leg(&reg, &self.auth);
        match leg.exchange(&outgoing, creds).await? {
            LegOutcome::Response(resp) => Ok(self.respond(resp, session.as_deref())),
            LegOutcome::AuthorizationRequired { www_authenticate } => {
                self.unauthorized(session, www_authenticate.as_deref())
                    .await
            }
            LegOutcome::StatelessDelete => {
                if let Some(s) = &session {
                    gw.sessions.remove(&s.id);
                }
                Ok(("session_deleted", StatusCode::OK.into_response()))
            }
        }
    }

    /// The gateway session named by the client's `Mcp-Session-Id`, if it is one of ours.
    fn gateway_session(&self) -> Result<Option<Arc<GatewaySession>>, GatewayError> {
        let Some(id) = self.headers.get(MCP_SESSION_ID) else {
            return Ok(None);
        };
        if !is_gateway_id(id.as_bytes()) {
            return Ok(None);
        }
        let id = id.to_str().map_err(|_| GatewayError::UnknownSession)?;
        self.gw
            .sessions
            .get(id, &self.auth.caller.session, &self.server)
            .map(Some)
            .ok_or(GatewayError::UnknownSession)
    }

    /// Stream the remote server's response back, or explain why it is not an MCP response.
    fn respond(
        &mut self,
        resp: http::Response<Incoming>,
        session: Option<&GatewaySession>,
    ) -> Done {
        let (parts, body) = resp.into_parts();
        let status = parts.status;
        if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
            let err = GatewayError::UpstreamRedirect {
                server: self.server.clone(),
                status: status.as_u16(),
            };
            log_failure(&self.server, &err);
            return (err.outcome(), err.to_response(self.request_id()));
        }
        if must_be_mcp(&self.method, status, &parts.headers, body.is_end_stream())
            && !headers::is_mcp_content_type(&parts.headers)
        {
            let err = self.not_mcp(status, &parts.headers);
            log_failure(&self.server, &err);
            return (err.outcome(), err.to_response(self.request_id()));
        }
        let mut out_headers = headers::to_caller(&parts.headers);
        if let Some(s) = session {
            let deleted = self.method == Method::DELETE && status.is_success();
            if status == StatusCode::NOT_FOUND || deleted {
                // The session ended (or the remote server forgot it): the client initializes
                // again.
                self.gw.sessions.remove(&s.id);
            } else if out_headers.contains_key(MCP_SESSION_ID)
                && let Ok(id) = HeaderValue::from_str(&s.id)
            {
                out_headers.insert(MCP_SESSION_ID, id);
            }
        }
        if status.is_success() && self.is_initialize() {
            self.remember_profile(out_headers.get(MCP_SESSION_ID));
        }
        // The body is the remote server's, served from the gateway's origin: a browser lured to
        // a `/mcp/...` URL must not run it as the gateway's page (an HTML error page with a
        // script would otherwise read the gateway's cookies' effects and call its endpoints).
        out_headers.insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox; default-src 'none'; frame-ancestors 'none'"),
        );
        out_headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        let mut out = Response::new(Body::new(body));
        *out.status_mut() = status;
        *out.headers_mut() = out_headers;
        ("proxied", out)
    }

    fn not_mcp(&self, status: StatusCode, headers: &HeaderMap) -> GatewayError {
        let server = self.server.clone();
        if status.is_server_error() {
            return GatewayError::UpstreamStatus {
                server,
                status: status.as_u16(),
            };
        }
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned())
            .filter(|v| !v.is_empty() && v.len() <= 100)
            .unwrap_or_else(|| "no content type".to_owned());
        GatewayError::NotMcp {
            server,
            status: status.as_u16(),
            content_type,
        }
    }

    /// The user must authorize (no token, or the remote server refused every credential):
    /// answer the request ourselves with the challenge in the client's richest form.
    async fn unauthorized(
        &mut self,
        session: Option<Arc<GatewaySession>>,
        www_authenticate: Option<&str>,
    ) -> Result<Done, GatewayError> {
        if self.method == Method::GET {
            // No server-to-client stream until the user is authorized.
            return Ok(("auth_required", method_not_allowed()));
        }
        if self.method == Method::DELETE {
            if let Some(s) = session {
                self.gw.sessions.remove(&s.id);
            }
            return Ok(("session_deleted", StatusCode::OK.into_response()));
        }
        let env = self.envelope()?.clone();
        let opens_session = env.method() == Some("initialize") && session.is_none();
        let limit = self.gw.cfg.sessions.max_initialize_bytes;
        if opens_session && self.body.len() > limit {
            // Refused before anything is stored (no flow, no session).
            return Err(GatewayError::InitializeTooLarge { limit });
        }
        let profile = self.profile(&env);
        let caller = &self.auth.caller;
        let ch = self
            .gw
            .flows
            .create_auth_challenge(&self.server, caller, www_authenticate)
            .await
            .map_err(|source| GatewayError::challenge(&self.server, source))?;
        let server_name = self.server.to_string();
        let reply = if env.is_batch {
            let members = jsonrpc::parse_batch(&self.body).map_err(GatewayError::InvalidMessage)?;
            forms::render_batch(&members, &profile, &ch)
        } else {
            synthetic::answer_unauthorized(&env, &profile, &ch, &server_name)
                .unwrap_or_else(|| forms::render(&env, &profile, &ch))
        };
        let mut resp = reply_response(reply);
        if opens_session {
            // The client gets a session of ours, started at the remote server after login.
            let s = self
                .gw
                .sessions
                .create(&caller.session, &self.server, self.body.clone())
                .map_err(|e| GatewayError::InitializeTooLarge { limit: e.limit })?;
            if let Ok(id) = HeaderValue::from_str(&s.id) {
                resp.headers_mut().insert(MCP_SESSION_ID, id);
            }
            self.gw
                .profiles
                .remember(self.profile_key(Some(&s.id)), profile);
        }
        Ok(("auth_required", resp))
    }

    /// A call of the synthetic `authenticate` tool once the user is authorized: the remote server
    /// does not know it, so the gateway says "go ahead". Only where the client can have seen the
    /// tool (a gateway session, or no session at all); a remote server's own `authenticate` tool
    /// in its own sessions is left alone.
    fn authenticate_when_authorized(&mut self, gateway_session: bool) -> Option<ChallengeReply> {
        if self.method != Method::POST
            || (!gateway_session && self.headers.contains_key(MCP_SESSION_ID))
            || !mentions(&self.body, AUTHENTICATE_TOOL.as_bytes())
        {
            return None;
        }
        let env = self.envelope().ok()?.clone();
        if env.method() != Some("tools/call") || env.tool_name.as_deref() != Some(AUTHENTICATE_TOOL)
        {
            return None;
        }
        let profile = self.profile(&env);
        Some(synthetic::already_authorized(
            &env,
            &profile,
            &self.server.to_string(),
        ))
    }

    /// Whether this is an `initialize` (cheap: the `Mcp-Method` header, else a byte search, then
    /// a parse only when the word occurs).
    fn is_initialize(&mut self) -> bool {
        if self.method != Method::POST {
            return false;
        }
        if let Some(m) = self.headers.get(MCP_METHOD) {
            return m == "initialize";
        }
        mentions(&self.body, b"\"initialize\"")
            && self
                .envelope()
                .is_ok_and(|e| e.method() == Some("initialize"))
    }

    fn remember_profile(&mut self, mcp_session: Option<&HeaderValue>) {
        let Ok(env) = self.envelope().cloned() else {
            return;
        };
        let profile = self.profile(&env);
        let key = self.profile_key(mcp_session.and_then(|v| v.to_str().ok()));
        self.gw.profiles.remember(key, profile);
    }

    fn profile(&self, env: &Envelope) -> ClientProfile {
        let header_version = self
            .headers
            .get(MCP_PROTOCOL_VERSION)
            .and_then(|v| v.to_str().ok());
        let client_session = self
            .headers
            .get(MCP_SESSION_ID)
            .and_then(|v| v.to_str().ok());
        let remembered = self.gw.profiles.get(&self.profile_key(client_session));
        ClientProfile::resolve(env, header_version, remembered.as_ref())
    }

    fn profile_key(&self, mcp_session: Option<&str>) -> ProfileKey {
        ProfileKey {
            session: self.auth.caller.session.clone(),
            server: self.server.clone(),
            mcp_session: mcp_session.map(str::to_owned),
        }
    }

    fn envelope(&mut self) -> Result<&Envelope, GatewayError> {
        let parsed = self
            .envelope
            .get_or_insert_with(|| jsonrpc::parse_envelope(&self.body));
        parsed
            .as_ref()
            .map_err(|e| GatewayError::InvalidMessage(e.clone()))
    }

    /// The request's JSON-RPC id, for an error answer (`None` when there is none or the body is
    /// not JSON-RPC).
    fn request_id(&mut self) -> Option<serde_json::Value> {
        if self.body.is_empty() {
            return None;
        }
        self.envelope().ok().and_then(|e| e.id.clone())
    }
}

/// Whether a response must be JSON or SSE to be passed on: a POST's answer and a GET's stream
/// when they succeed, and any failure with a body (a 5xx HTML page says nothing to an MCP
/// client). A DELETE's success and bodiless answers (202, 204, `Content-Length: 0`) pass as
/// they are.
fn must_be_mcp(method: &Method, status: StatusCode, headers: &HeaderMap, empty: bool) -> bool {
    if empty
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status == StatusCode::ACCEPTED
        || headers.get(CONTENT_LENGTH).is_some_and(|v| v == "0")
    {
        return false;
    }
    if status.is_server_error() {
        return true;
    }
    status.is_success() && *method != Method::DELETE
}

/// Whether `needle` occurs in `haystack` (bodies are small; this is cheaper than parsing).
fn mentions(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(ALLOW, HeaderValue::from_static("GET, POST, DELETE"))],
    )
        .into_response()
}

/// The gateway's own JSON-RPC answer. It may carry a sign-in link: never cached.
fn reply_response(reply: ChallengeReply) -> Response {
    let mut resp = match reply.body {
        Some(body) => (reply.status, axum::Json(body)).into_response(),
        None => reply.status.into_response(),
    };
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_finds_substrings() {
        assert!(mentions(br#"{"method":"initialize"}"#, b"\"initialize\""));
        assert!(!mentions(br#"{"method":"tools/call"}"#, b"\"initialize\""));
        assert!(!mentions(b"", b"x"));
        assert!(!mentions(b"abc", b""));
    }

    #[test]
    fn only_answers_with_a_body_must_be_mcp() {
        let none = HeaderMap::new();
        let post = Method::POST;
        assert!(must_be_mcp(&post, StatusCode::OK, &none, false));
        assert!(must_be_mcp(&Method::GET, StatusCode::OK, &none, false));
        assert!(must_be_mcp(
            &Method::DELETE,
            StatusCode::BAD_GATEWAY,
            &none,
            false
        ));
        assert!(!must_be_mcp(&Method::DELETE, StatusCode::OK, &none, false));
        assert!(!must_be_mcp(&post, StatusCode::OK, &none, true));
        assert!(!must_be_mcp(&post, StatusCode::ACCEPTED, &none, false));
        assert!(!must_be_mcp(&post, StatusCode::NO_CONTENT, &none, false));
        assert!(!must_be_mcp(
            &Method::GET,
            StatusCode::METHOD_NOT_ALLOWED,
            &none,
            false
        ));
        let mut zero = HeaderMap::new();
        zero.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        assert!(!must_be_mcp(&post, StatusCode::OK, &zero, false));
    }
}
