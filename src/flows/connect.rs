//! `/oauth/connect`: bind a pending flow to the browser that opened the link, then build the
//! authorization-server URL (PKCE S256, state, scope, resource).

use super::{CallbackError, ConnectError, Flows};
use crate::oauth::{AuthorizeRequest, PkcePair, authorization_url};
use crate::registry::{AuthSettings, ClientIdentity};
use crate::store::{BindOutcome, BrowserBinding, ConsumeOutcome, FlowId};
use url::Url;

impl Flows {
    /// The one of `presented` (cookie secrets the browser sent for flow `flow`) that the flow is
    /// already bound to, if any: the same browser opening its link again keeps its secret. A
    /// secret the flow is not bound to is never adopted (a planted cookie could be known to
    /// whoever planted it).
    pub(super) async fn bound_secret<'a>(
        &self,
        flow: &FlowId,
        presented: &[&'a str],
    ) -> Result<Option<&'a str>, ConnectError> {
        if presented.is_empty() {
            return Ok(None);
        }
        let Some(bound) = self.flows.get(flow).await?.and_then(|f| f.browser) else {
            return Ok(None);
        };
        Ok(presented
            .iter()
            .copied()
            .find(|s| bound.matches(&BrowserBinding::from_cookie_secret(s))))
    }

    /// The browser binding to complete the callback of flow `flow` with, among the cookie
    /// secrets the browser sent (the flow's own one when present). When the browser is the
    /// flow's and an authenticating proxy names a user (`header` identity) who is not the
    /// flow's user, the flow is dropped and [`CallbackError::OtherUser`] returned: the link is
    /// out of its user's hands. An unknown flow is [`CallbackError::UnknownState`].
    pub(super) async fn callback_binding(
        &self,
        flow: &FlowId,
        presented: &[&str],
        browser_user: Option<&str>,
    ) -> Result<Option<BrowserBinding>, CallbackError> {
        let candidates: Vec<BrowserBinding> = presented
            .iter()
            .map(|s| BrowserBinding::from_cookie_secret(s))
            .collect();
        // An unknown (spent, expired) flow says so, whether or not its cookie is still there.
        let Some(pending) = self.flows.get(flow).await? else {
            return Err(CallbackError::UnknownState);
        };
        let Some(bound) = pending.browser.as_ref() else {
            return Ok(candidates.into_iter().next());
        };
        let Some(own) = candidates.iter().find(|c| bound.matches(c)).cloned() else {
            return Ok(candidates.into_iter().next());
        };
        if let Some(user) = browser_user
            && user != pending.user
        {
            tracing::warn!(flow = %flow.short(), "authorization answer brought by another user; flow dropped");
            match self.flows.consume(flow, own).await {
                Ok(ConsumeOutcome::Consumed(f)) => self.forget_pending(&f),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not drop the refused flow"),
            }
            return Err(CallbackError::OtherUser);
        }
        Ok(Some(own))
    }

    /// Bind flow `flow` to `browser` and return the authorization URL to redirect it to.
    ///
    /// The first browser to open the link owns the flow; the same browser may open it again
    /// (each visit gets a fresh PKCE pair); any other browser is refused.
    pub(super) async fn begin_connect(
        &self,
        flow: &str,
        browser: BrowserBinding,
        browser_user: Option<&str>,
    ) -> Result<Url, ConnectError> {
        let id = FlowId::parse(flow).ok_or(ConnectError::MalformedFlow)?;
        if let Some(user) = browser_user {
            // The browser is known to belong to a user (an authenticating proxy says so): only
            // the flow's own user may continue, and a stranger must not bind it either.
            let pending = self
                .flows
                .get(&id)
                .await?
                .ok_or(ConnectError::UnknownFlow)?;
            if pending.user != user {
                tracing::warn!(flow = %id.short(), "flow link opened by another user; refused");
                return Err(ConnectError::OtherUser);
            }
        }
        let pkce = PkcePair::generate();
        let flow = match self.flows.bind(&id, browser, pkce.verifier.clone()).await? {
            BindOutcome::Bound(flow) => flow,
            BindOutcome::NotFound => return Err(ConnectError::UnknownFlow),
            BindOutcome::OtherBrowser => {
                tracing::warn!(flow = %id.short(), "flow link opened in a second browser; refused");
                return Err(ConnectError::OtherBrowser);
            }
        };
        let reg = self
            .registry
            .server(&flow.server)
            .ok_or(ConnectError::ServerGone)?;
        let AuthSettings::OAuth(settings) = &reg.auth else {
            return Err(ConnectError::ServerGone);
        };
        let md = self.discovery.authorization_server(&flow.issuer).await?;
        let client_id = match &settings.client {
            ClientIdentity::Cimd => self.cfg.cimd_client_id(),
            ClientIdentity::PreRegistered(c) => c.client_id.clone(),
        };
        let redirect_uri = self.cfg.redirect_uri();
        let url = authorization_url(
            &md,
            &AuthorizeRequest {
                client_id: &client_id,
                redirect_uri: &redirect_uri,
                state: id.as_str(),
                code_challenge: &pkce.challenge,
                scopes: &flow.scopes,
                resource: flow.resource.as_deref(),
                prompt: None,
            },
        );
        tracing::info!(server = %flow.server, flow = %id.short(), "browser bound; redirecting to the authorization server");
        Ok(url)
    }
}
