//! One exchange with one remote server: the caller's credentials for it, the request sent (after
//! starting the remote side of a gateway session, if one is pending), and — when the remote
//! server refuses with 401 or 403 `insufficient_scope` — once what the auth mode says: a retry
//! with new credentials (a refreshed or re-exchanged token), a step-up, or the challenge that
//! sends the user to authorize. It knows nothing of routes or of how answers are rendered; the
//! caller ([`super::handler`]) turns its [`LegOutcome`] into the response.

use super::challenge::step_up::{self, StepUps};
use super::error::GatewayError;
use super::upstream::headers::{self, MCP_SESSION_ID};
use super::upstream::session_start::{self, StartError};
use super::upstream::sessions::GatewaySession;
use super::upstream::{Upstream, UpstreamBody};
use crate::credentials::{AfterRefusal, CredentialSources, Credentials, CredentialsError, Refusal};
use crate::identity::Authenticated;
use crate::oauth::BearerChallenge;
use crate::registry::ServerRegistration;
use bytes::Bytes;
use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderName, Method, StatusCode, Uri};
use hyper::body::Incoming;
use std::time::Duration;

/// The leg to one remote server for one caller.
pub struct Leg<'a> {
    pub upstream: &'a Upstream,
    pub credentials: &'a CredentialSources,
    /// Step-ups allowed per session and server.
    pub step_ups: &'a StepUps,
    /// For starting a gateway session at the remote server.
    pub response_timeout: Duration,
    pub server: &'a ServerRegistration,
    pub auth: &'a Authenticated,
}

/// The caller's request, as the leg sends it on.
pub struct Outgoing<'a> {
    pub method: &'a Method,
    /// The caller's headers (filtered on the way out: [`headers::to_upstream`]).
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
    /// Headers the caller's identity came from (`header` mode): never sent upstream.
    pub identity_headers: &'a [HeaderName],
    /// The gateway session the request belongs to, if it is one of ours.
    pub session: Option<&'a GatewaySession>,
}

/// How the leg ended.
pub enum LegOutcome {
    /// The remote server's response (success or an error the leg does not handle).
    Response(http::Response<Incoming>),
    /// The user must authorize (again) first. `www_authenticate` is the remote server's
    /// challenge, or the step-up's asking for the scopes the token lacks.
    AuthorizationRequired { www_authenticate: Option<String> },
    /// A DELETE of a gateway session whose remote server is stateless: there is nothing to
    /// delete there.
    StatelessDelete,
}

/// A refusal the leg handles, as the remote server sent it.
enum Refused {
    /// 401, with its `WWW-Authenticate` header.
    Unauthorized(Option<String>),
    /// 403 `insufficient_scope`.
    InsufficientScope(BearerChallenge),
}

/// What one send produced.
enum Sent {
    Response(http::Response<Incoming>),
    StatelessDelete,
}

impl Leg<'_> {
    /// The credentials to send, per the server's auth mode.
    pub async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        self.credentials.get(self.server, self.auth).await
    }

    /// Send `req` with `creds`; on a refusal, do once what the auth mode says.
    pub async fn exchange(
        &self,
        req: &Outgoing<'_>,
        mut creds: Credentials,
    ) -> Result<LegOutcome, GatewayError> {
        let server = &self.server.key;
        let uri = Uri::try_from(self.server.url.as_str())
            .map_err(|_| GatewayError::BadUpstreamUrl(server.clone()))?;
        let mut retried = false;
        loop {
            let resp = match self.send(&uri, req, &creds).await? {
                Sent::Response(resp) => resp,
                Sent::StatelessDelete => return Ok(LegOutcome::StatelessDelete),
            };
            let Some(refused) = refusal(&resp) else {
                return Ok(LegOutcome::Response(resp));
            };
            let kind = match refused {
                Refused::Unauthorized(_) => Refusal::Unauthorized,
                Refused::InsufficientScope(_) => Refusal::InsufficientScope,
            };
            let after = self
                .credentials
                .refused(self.server, self.auth, &creds, kind, retried)
                .await?;
            match (after, refused) {
                (AfterRefusal::Retry(next), _) if !retried => {
                    retried = true;
                    creds = next;
                }
                (AfterRefusal::Retry(_) | AfterRefusal::Stands, _) => {
                    return Err(GatewayError::UpstreamRejected {
                        server: server.clone(),
                        status: resp.status().as_u16(),
                        mode: self.server.auth.mode_name(),
                    });
                }
                (AfterRefusal::StepUp { granted }, Refused::InsufficientScope(challenge)) => {
                    if !self.step_ups.allow(&self.auth.caller.session, server) {
                        return Err(GatewayError::InsufficientScope {
                            server: server.clone(),
                        });
                    }
                    return Ok(LegOutcome::AuthorizationRequired {
                        www_authenticate: Some(step_up::step_up_header(&challenge, &granted)),
                    });
                }
                (AfterRefusal::Authorize | AfterRefusal::StepUp { .. }, refused) => {
                    let www_authenticate = match refused {
                        Refused::Unauthorized(www) => www,
                        Refused::InsufficientScope(_) => None,
                    };
                    return Ok(LegOutcome::AuthorizationRequired { www_authenticate });
                }
            }
        }
    }

    /// One upstream exchange (starting the remote side of a gateway session first if needed).
    async fn send(
        &self,
        uri: &Uri,
        req: &Outgoing<'_>,
        creds: &Credentials,
    ) -> Result<Sent, GatewayError> {
        let server = &self.server.key;
        let authorization = creds.authorization();
        let mut headers = headers::to_upstream(
            req.headers,
            authorization.clone(),
            &self.server.forward_headers,
            req.identity_headers,
        );
        if let Some(s) = req.session {
            let started = s
                .upstream
                .get_or_try_init(|| {
                    session_start::start(
                        self.upstream,
                        uri,
                        authorization.as_ref(),
                        s.initialize.clone(),
                        self.response_timeout,
                    )
                })
                .await;
            let up = match started {
                Ok(up) => up,
                Err(StartError::Refused(resp)) => return Ok(Sent::Response(*resp)),
                Err(StartError::Transport(e)) => {
                    return Err(GatewayError::upstream(server, e));
                }
                Err(StartError::Failed(detail)) => {
                    return Err(GatewayError::SessionStart {
                        server: server.clone(),
                        detail,
                    });
                }
            };
            match &up.id {
                Some(id) => {
                    headers.insert(MCP_SESSION_ID, id.clone());
                }
                None => {
                    headers.remove(MCP_SESSION_ID);
                    // A stateless server has no session to delete.
                    if *req.method == Method::DELETE {
                        return Ok(Sent::StatelessDelete);
                    }
                }
            }
        }
        let mut out = http::Request::new(UpstreamBody::new(req.body.clone()));
        *out.method_mut() = req.method.clone();
        *out.uri_mut() = uri.clone();
        *out.headers_mut() = headers;
        self.upstream
            .send(out)
            .await
            .map(Sent::Response)
            .map_err(|e| GatewayError::upstream(server, e))
    }
}

/// The refusal in a remote server's response, if it is one the leg handles.
fn refusal(resp: &http::Response<Incoming>) -> Option<Refused> {
    let www = || {
        resp.headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    match resp.status() {
        StatusCode::UNAUTHORIZED => Some(Refused::Unauthorized(www())),
        StatusCode::FORBIDDEN => www()
            .as_deref()
            .and_then(step_up::insufficient_scope)
            .map(Refused::InsufficientScope),
        _ => None,
    }
}
