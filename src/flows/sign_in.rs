//! Browser sign-in before a sign-in link is followed (`oidc` identity with `--oidc-client-id`;
//! the MCP specification: the connect route must confirm that the browser belongs to the user
//! who started the flow).
//!
//! `/oauth/connect` binds the flow to the browser as always, but sends it to the gateway's own
//! issuer first (`scope=openid`, PKCE, a `nonce` derived from the verifier, `state` =
//! [`SIGN_IN_STATE_PREFIX`] + flow id). Back at `/oauth/callback`, the code is redeemed, the ID
//! token checked, and only when its user is the flow's user does the browser go on to the
//! remote authorization server, exactly as `/oauth/connect` sends it without sign-in. The flow
//! itself is unchanged by the sign-in: the remote leg gets a fresh PKCE pair, so a remote
//! authorization response can only be redeemed after the sign-in passed.

use super::{CallbackError, CallbackParams, ConnectError, Flows, SignInError};
use crate::identity::OidcAuthenticator;
use crate::identity::oidc::sign_in_nonce;
use crate::oauth::{AuthorizeRequest, ClientCredentials, PkcePair, authorization_url, check_iss};
use crate::registry::ClientAuthMethod;
use crate::store::{BindOutcome, BrowserBinding, ConsumeOutcome, FlowId, PendingFlow};
use crate::telemetry::short;
use secrecy::ExposeSecret as _;
use url::Url;

/// Marks the `state` of a sign-in redirect (the remote leg's `state` is the bare flow id).
pub const SIGN_IN_STATE_PREFIX: &str = "signin.";

/// The flow id of a sign-in `state`, if it is one.
pub fn sign_in_flow(state: &str) -> Option<&str> {
    state.strip_prefix(SIGN_IN_STATE_PREFIX)
}

impl Flows {
    /// Bind flow `flow` to `browser` and return the URL of the sign-in at the gateway's issuer.
    pub(super) async fn begin_sign_in(
        &self,
        flow: &str,
        browser: BrowserBinding,
        oidc: &OidcAuthenticator,
    ) -> Result<Url, ConnectError> {
        let id = FlowId::parse(flow).ok_or(ConnectError::MalformedFlow)?;
        let client = oidc
            .sign_in_client()
            .ok_or(ConnectError::SignInUnavailable(SignInError::NoClient))?;
        let md = oidc
            .sign_in_metadata()
            .await
            .map_err(|e| ConnectError::SignInUnavailable(SignInError::Metadata(e)))?;
        let pkce = PkcePair::generate();
        match self.flows.bind(&id, browser, pkce.verifier.clone()).await? {
            BindOutcome::Bound(_) => {}
            BindOutcome::NotFound => return Err(ConnectError::UnknownFlow),
            BindOutcome::OtherBrowser => {
                tracing::warn!(flow = %id.short(), "flow link opened in a second browser; refused");
                return Err(ConnectError::OtherBrowser);
            }
        }
        let redirect_uri = self.cfg.redirect_uri();
        let state = format!("{SIGN_IN_STATE_PREFIX}{}", id.as_str());
        let scopes = ["openid".to_owned()];
        let mut url = authorization_url(
            &md,
            &AuthorizeRequest {
                client_id: &client.client_id,
                redirect_uri: &redirect_uri,
                state: &state,
                code_challenge: &pkce.challenge,
                scopes: &scopes,
                resource: None,
                prompt: None,
            },
        );
        url.query_pairs_mut()
            .append_pair("nonce", &sign_in_nonce(&pkce.verifier));
        tracing::info!(flow = %id.short(), "browser bound; signing in at the gateway's identity provider first");
        Ok(url)
    }

    /// Finish a sign-in: the browser must be the flow's, the ID token must name the flow's
    /// user. Returns the remote authorization server's URL to send the browser on to.
    pub(super) async fn complete_sign_in(
        &self,
        params: CallbackParams,
        browser: Option<BrowserBinding>,
        oidc: &OidcAuthenticator,
    ) -> Result<Url, CallbackError> {
        let state = params.state.as_deref().ok_or(CallbackError::MissingState)?;
        let id = sign_in_flow(state)
            .and_then(FlowId::parse)
            .ok_or(CallbackError::MalformedState)?;
        let browser = browser.ok_or(CallbackError::NoBrowserBinding)?;
        let flow = self
            .flows
            .get(&id)
            .await?
            .ok_or(CallbackError::UnknownState)?;
        if !flow.browser.is_some_and(|b| b.matches(&browser)) {
            tracing::warn!(flow = %id.short(), "sign-in answer in a browser that did not start it; refused");
            return Err(CallbackError::OtherBrowser);
        }
        let result = self
            .sign_in_as_flow_user(&id, &flow, params, browser, oidc)
            .await;
        if let Err(e) = &result {
            self.counters
                .flow_failed(&flow.server.to_string(), e.reason());
        }
        result
    }

    /// The rest of [`Self::complete_sign_in`], once the flow is known to be this browser's.
    async fn sign_in_as_flow_user(
        &self,
        id: &FlowId,
        flow: &PendingFlow,
        params: CallbackParams,
        browser: BrowserBinding,
        oidc: &OidcAuthenticator,
    ) -> Result<Url, CallbackError> {
        let verifier = flow
            .pkce_verifier
            .clone()
            .ok_or(CallbackError::OtherBrowser)?;
        let client = oidc
            .sign_in_client()
            .ok_or(CallbackError::SignIn(SignInError::NoClient))?;
        let md = oidc
            .sign_in_metadata()
            .await
            .map_err(|e| CallbackError::SignIn(SignInError::Metadata(e)))?;
        check_iss(
            oidc.issuer(),
            md.authorization_response_iss_parameter_supported,
            params.iss.as_deref(),
        )?;
        if let Some(error) = params.error {
            return Err(CallbackError::AuthorizationDenied {
                error,
                description: params.error_description,
            });
        }
        let code = params
            .code
            .filter(|c| !c.is_empty())
            .ok_or(CallbackError::MissingCode)?;
        let creds = ClientCredentials {
            client_id: client.client_id.clone(),
            client_secret: client.client_secret.clone(),
            method: ClientAuthMethod::Basic,
        };
        let redirect_uri = self.cfg.redirect_uri();
        let response = self
            .token_client
            .exchange_code(&md, &creds, &code, &verifier, &redirect_uri, None)
            .await
            .map_err(|e| {
                if e.is_invalid_grant() {
                    // A spent or expired code: the same answer as on the remote leg.
                    CallbackError::TokenExchange(e)
                } else {
                    CallbackError::SignIn(SignInError::TokenRequest(e))
                }
            })?;
        let id_token = response
            .id_token
            .ok_or(CallbackError::SignIn(SignInError::NoIdToken))?;
        let user = oidc
            .verify_id_token(id_token.expose_secret(), &sign_in_nonce(&verifier))
            .await
            .map_err(|e| CallbackError::SignIn(SignInError::IdToken(e)))?;
        if user != flow.user {
            tracing::warn!(
                flow = %id.short(),
                signed_in = %short(&user),
                "sign-in link followed by another user than the one who started it; refused"
            );
            // The link is out of its user's hands: drop the flow, so their next request gets
            // a fresh link rather than this one, now bound to someone else's browser.
            match self.flows.consume(id, browser).await {
                Ok(ConsumeOutcome::Consumed(flow)) => self.forget_pending(&flow),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not drop the refused flow"),
            }
            return Err(CallbackError::OtherUser);
        }
        tracing::info!(flow = %id.short(), user = %short(&user), "browser signed in as the flow's user");
        self.begin_connect(id.as_str(), browser, None)
            .await
            .map_err(|e| match e {
                ConnectError::MalformedFlow | ConnectError::UnknownFlow => {
                    CallbackError::UnknownState
                }
                ConnectError::OtherBrowser | ConnectError::OtherUser => CallbackError::OtherBrowser,
                ConnectError::ServerGone => CallbackError::ServerGone,
                ConnectError::Discovery(d) => CallbackError::Discovery(d),
                ConnectError::SignInUnavailable(s) => CallbackError::SignIn(s),
                ConnectError::Store(s) => CallbackError::Store(s),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_states_are_told_from_flow_ids() {
        let id = FlowId::generate();
        let state = format!("{SIGN_IN_STATE_PREFIX}{}", id.as_str());
        assert_eq!(sign_in_flow(&state), Some(id.as_str()));
        assert_eq!(
            sign_in_flow(id.as_str()),
            None,
            "a bare flow id is the remote leg"
        );
        assert!(
            FlowId::parse(&state).is_none(),
            "a sign-in state is never a flow id"
        );
    }
}
