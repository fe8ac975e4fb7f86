//! `/oauth/connect`: bind a pending flow to the browser that opened the link, then build the
//! authorization-server URL (PKCE S256, state, scope, resource).

use super::{ConnectError, Manager};
use crate::oauth::{AuthorizeRequest, PkcePair, authorization_url};
use crate::registry::{AuthSettings, ClientIdentity};
use crate::store::{BindOutcome, BrowserBinding, FlowId};
use url::Url;

impl Manager {
    /// Bind flow `flow` to `browser` and return the authorization URL to redirect it to.
    ///
    /// The first browser to open the link owns the flow; the same browser may open it again
    /// (each visit gets a fresh PKCE pair); any other browser is refused.
    pub async fn begin_connect(
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
