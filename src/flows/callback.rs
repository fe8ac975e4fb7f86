//! `/oauth/callback`: consume the flow (only from the browser that started it), check `iss`
//! (RFC 9207), exchange the code with PKCE and `resource`, store the token, notify the hook.
//!
//! A failure never looks like success: the caller gets an error whose kind decides the status.
//! When the token endpoint fails transiently the flow is put back, so the user can retry from
//! the same link instead of being stuck.

use super::{CallbackError, CompletionEvent, Flows};
use crate::oauth::{ClientCredentials, check_iss};
use crate::registry::{AuthSettings, ClientIdentity, ServerKey};
use crate::store::{
    BrowserBinding, ConsumeOutcome, FlowId, PendingFlow, TokenBinding, TokenKey, TokenRecord,
    normalize_scope,
};
use crate::telemetry::short;
use crate::time::unix_now;

/// The query of a redirect back from the authorization server.
#[derive(Debug, Default, Clone)]
pub struct CallbackParams {
    pub state: Option<String>,
    pub code: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A completed flow.
#[derive(Debug, Clone)]
pub struct CallbackSuccess {
    pub server: ServerKey,
    pub user: String,
    pub issuer: String,
}

impl Flows {
    /// Complete a flow. `browser` is the binding from the cookie, if the browser sent one.
    pub(super) async fn complete_callback(
        &self,
        params: CallbackParams,
        browser: Option<BrowserBinding>,
    ) -> Result<CallbackSuccess, (CallbackError, Option<FlowId>)> {
        let state = params
            .state
            .as_deref()
            .ok_or((CallbackError::MissingState, None))?;
        let id = FlowId::parse(state).ok_or((CallbackError::MalformedState, None))?;
        let browser = browser.ok_or((CallbackError::NoBrowserBinding, None))?;
        let flow = match self.flows.consume(&id, browser).await {
            Ok(ConsumeOutcome::Consumed(flow)) => flow,
            Ok(ConsumeOutcome::NotFound) => return Err((CallbackError::UnknownState, None)),
            Ok(ConsumeOutcome::OtherBrowser) => {
                tracing::warn!(flow = %id.short(), "callback from a browser that did not start the flow; refused");
                return Err((CallbackError::OtherBrowser, None));
            }
            Err(e) => return Err((CallbackError::Store(e), None)),
        };
        let server = flow.server.clone();
        let fail = |e: CallbackError| {
            self.counters.flow_failed(&server.to_string(), e.reason());
            tracing::warn!(server = %server, flow = %id.short(), reason = e.reason(), error = %e, "authorization flow failed");
            e
        };
        self.forget_pending(&flow);

        let md = match self.discovery.authorization_server(&flow.issuer).await {
            Ok(md) => md,
            Err(e) => {
                // The code is still unused: keep the flow as it was, so reloading this page or
                // the retry link works once the authorization server answers again.
                let retry = if e.is_transient() {
                    self.restore_flow(&id, flow.clone()).await
                } else {
                    None
                };
                return Err((fail(e.into()), retry));
            }
        };
        // RFC 9207 before anything else: on a mix-up, `error`/`code` are not to be trusted.
        check_iss(
            &flow.issuer,
            md.authorization_response_iss_parameter_supported,
            params.iss.as_deref(),
        )
        .map_err(|e| (fail(e.into()), None))?;
        if let Some(error) = params.error {
            return Err((
                fail(CallbackError::AuthorizationDenied {
                    error,
                    description: params.error_description,
                }),
                None,
            ));
        }
        let code = params
            .code
            .filter(|c| !c.is_empty())
            .ok_or_else(|| (fail(CallbackError::MissingCode), None))?;
        let verifier = flow
            .pkce_verifier
            .clone()
            .ok_or_else(|| (fail(CallbackError::OtherBrowser), None))?;

        let reg = self
            .registry
            .server(&flow.server)
            .ok_or_else(|| (fail(CallbackError::ServerGone), None))?;
        let AuthSettings::OAuth(settings) = &reg.auth else {
            return Err((fail(CallbackError::ServerGone), None));
        };
        if flow.token_resource.is_empty() {
            return Err((fail(CallbackError::UnboundFlow), None));
        }
        let creds = self.client_credentials(&settings.client);
        let redirect_uri = self.cfg.redirect_uri();
        let response = match self
            .token_client
            .exchange_code(
                &md,
                &creds,
                &code,
                &verifier,
                &redirect_uri,
                flow.resource.as_deref(),
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let retry = if e.is_transient() {
                    // The code may have been spent: the retry starts a new authorization.
                    let mut again = flow.clone();
                    again.pkce_verifier = None;
                    self.restore_flow(&id, again).await
                } else {
                    None
                };
                return Err((fail(CallbackError::TokenExchange(e)), retry));
            }
        };

        let now = unix_now();
        // Bound to what the flow asked the authorization server for, in the flow's server's
        // namespace: only servers with that same binding will ever be sent this token.
        let binding = TokenBinding::new(
            flow.issuer.clone(),
            flow.server.namespace.clone(),
            flow.token_resource.clone(),
        );
        let key = TokenKey::new(flow.session.clone(), binding, normalize_scope(&flow.scopes));
        let record = TokenRecord {
            access_token: response.access_token,
            token_type: response.token_type,
            refresh_token: response.refresh_token,
            expires_at: response.expires_in.map(|s| now.saturating_add(s)),
            granted_scope: response.scope,
            issuer: flow.issuer.clone(),
            client_id: creds.client_id.clone(),
            user: flow.user.clone(),
            obtained_at: now,
        };
        self.tokens
            .put(&key, record)
            .await
            .map_err(|e| (fail(e.into()), None))?;
        self.credentials
            .oauth()
            .learn_issuer(&reg, flow.issuer.clone());
        self.counters.flow_completed(&flow.server.to_string());
        tracing::info!(
            server = %flow.server,
            session = %short(&flow.session),
            user = %short(&flow.user),
            "authorization completed; token stored"
        );

        if let Some(hook) = self.completion_hook() {
            let event = CompletionEvent {
                server: flow.server.clone(),
                session: flow.session.clone(),
                user: flow.user.clone(),
                issuer: flow.issuer.clone(),
            };
            match tokio::time::timeout(self.cfg.hook_timeout, hook(event)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(server = %flow.server, error = %e, "completion hook failed")
                }
                Err(_) => tracing::warn!(server = %flow.server, "completion hook timed out"),
            }
        }
        Ok(CallbackSuccess {
            server: flow.server,
            user: flow.user,
            issuer: flow.issuer,
        })
    }

    /// The pending-flow cache must not hand out a consumed flow again.
    pub(super) fn forget_pending(&self, flow: &PendingFlow) {
        self.pending
            .invalidate_entries_if({
                let session = flow.session.clone();
                let server = flow.server.clone();
                move |k, _| k.0 == session && k.1 == server
            })
            .ok();
    }

    /// Put a flow back after a transient failure (same browser binding, same expiry).
    async fn restore_flow(&self, id: &FlowId, flow: PendingFlow) -> Option<FlowId> {
        match self.flows.insert(id, flow).await {
            Ok(()) => Some(id.clone()),
            Err(e) => {
                tracing::warn!(error = %e, "could not restore the flow after a transient failure");
                None
            }
        }
    }

    /// The client identity to present at the token endpoint.
    pub(crate) fn client_credentials(&self, client: &ClientIdentity) -> ClientCredentials {
        self.credentials.oauth().client_credentials(client)
    }
}
