//! `oauth` mode: handing out usable access tokens — the stored token bound to (session, issuer,
//! namespace, resource), refreshed when it is within the margin of expiry (one refresh at a time
//! per token, with the token's own resource and client, keeping the old refresh token when the
//! authorization server does not rotate it) — and acting on the refused token's own entry when
//! a remote server refuses it ([`refused`]).
//!
//! A token is found only through the binding of the server asking for it
//! ([`OAuthTokens::token_binding`]): a server in another namespace, or one declaring another
//! resource, never sees it, even when it names the same authorization server.
//!
//! [`OAuthTokens`] holds the state this needs (the token store, the refresh leases and mutexes,
//! the token client, discovery, the issuer learned per server); the browser flows, which store
//! the tokens, share it.

mod issuers;
mod refused;

use super::{AfterRefusal, CredentialSource, Credentials, CredentialsError, Refusal};
use crate::identity::{Authenticated, Caller};
use crate::metrics::{Metrics, ResultLabel};
use crate::oauth::{ClientCredentials, Discovery, DiscoveryError, TokenClient, TokenError};
use crate::registry::{
    AuthSettings, ClientIdentity, OAuthSettings, Registry, ServerKey, ServerRegistration,
};
use crate::store::{RefreshLock, StoreError, TokenBinding, TokenKey, TokenRecord, TokenStore};
use crate::telemetry::short;
use crate::time::unix_now;
use issuers::LearnedIssuers;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

/// Pause between checks while another replica refreshes.
const REFRESH_POLL: std::time::Duration = std::time::Duration::from_millis(100);
/// How much longer than one lease a waiter keeps waiting before giving up.
const REFRESH_WAIT_SLACK: std::time::Duration = std::time::Duration::from_secs(1);

/// A token ready to be sent upstream, and where it is stored (so that a refusal acts on this
/// entry and no other).
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub value: SecretString,
    pub token_type: String,
    pub expires_at: Option<u64>,
    pub key: TokenKey,
}

impl AccessToken {
    pub fn new(key: TokenKey, record: TokenRecord) -> Self {
        Self {
            value: record.access_token,
            token_type: record.token_type,
            expires_at: record.expires_at,
            key,
        }
    }

    /// The authorization server that issued the token.
    pub fn issuer(&self) -> &str {
        self.key.issuer()
    }
}

/// Getting a usable token failed (other than "there is none": that is `Ok(None)`).
#[derive(Debug, thiserror::Error)]
pub enum TokenAccessError {
    #[error("no remote MCP server {0} is registered")]
    UnknownServer(ServerKey),
    #[error("server {server} uses auth mode {mode}, not oauth")]
    NotOAuth {
        server: ServerKey,
        mode: &'static str,
    },
    #[error("authorization server discovery failed: {0}")]
    Discovery(#[from] DiscoveryError),
    #[error("another replica is refreshing this token and did not finish in time")]
    RefreshBusy,
    #[error("refreshing the expired access token failed: {0}")]
    Refresh(#[source] TokenError),
    #[error("token storage failed: {0}")]
    Store(#[from] StoreError),
}

/// Settings of [`OAuthTokens`].
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// Refresh access tokens this long before they expire.
    pub refresh_margin: Duration,
    /// How long one replica may hold a token's refresh lease (longer than a token request).
    pub refresh_lease: Duration,
    /// Our `client_id` as a public client (the URL of our Client ID Metadata Document).
    pub cimd_client_id: String,
}

impl OAuthConfig {
    pub fn new(cimd_client_id: String) -> Self {
        Self {
            refresh_margin: Duration::from_secs(60),
            refresh_lease: Duration::from_secs(20),
            cimd_client_id,
        }
    }
}

/// The `oauth` mode's state: stored tokens and what refreshing them takes. Shared (by `Arc`)
/// between the gateway's requests and the browser flows that store the tokens.
pub struct OAuthTokens {
    cfg: OAuthConfig,
    registry: Arc<Registry>,
    tokens: Arc<dyn TokenStore>,
    /// Serialises refreshes of one token across replicas.
    refresh_lock: Arc<dyn RefreshLock>,
    discovery: Discovery,
    token_client: TokenClient,
    /// Issuer learned per server, when the resource does not pin one.
    issuers: LearnedIssuers,
    /// One refresh at a time per token.
    refresh_locks: moka::sync::Cache<TokenKey, Arc<tokio::sync::Mutex<()>>>,
    /// `token_refreshes`, by result.
    refreshes: Family<ResultLabel, Counter>,
}

impl std::fmt::Debug for OAuthTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthTokens")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// How to refresh a token: at which server's settings, with which client.
struct RefreshContext<'a> {
    settings: &'a OAuthSettings,
    creds: ClientCredentials,
}

impl OAuthTokens {
    /// `registry` resolves servers for [`OAuthTokens::get_token`]; `metrics` receives the
    /// `token_refreshes` counter.
    pub fn new(
        cfg: OAuthConfig,
        registry: Arc<Registry>,
        tokens: Arc<dyn TokenStore>,
        refresh_lock: Arc<dyn RefreshLock>,
        discovery: Discovery,
        token_client: TokenClient,
        metrics: &Metrics,
    ) -> Self {
        let refreshes = Family::<ResultLabel, Counter>::default();
        metrics.register(
            "token_refreshes",
            "Access-token refreshes, by result",
            refreshes.clone(),
        );
        Self {
            cfg,
            registry,
            tokens,
            refresh_lock,
            discovery,
            token_client,
            issuers: LearnedIssuers::default(),
            refresh_locks: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(300))
                .build(),
            refreshes,
        }
    }

    pub fn config(&self) -> &OAuthConfig {
        &self.cfg
    }

    /// The token store (the browser flows store what they obtain there).
    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.tokens
    }

    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    pub fn token_client(&self) -> &TokenClient {
        &self.token_client
    }

    /// The client identity to present at the token endpoint (for a code, a refresh, a
    /// revocation: a refresh token is bound to the client it was issued to).
    pub fn client_credentials(&self, client: &ClientIdentity) -> ClientCredentials {
        match client {
            ClientIdentity::Cimd => ClientCredentials {
                client_id: self.cfg.cimd_client_id.clone(),
                client_secret: None,
                method: Default::default(),
            },
            ClientIdentity::PreRegistered(c) => ClientCredentials {
                client_id: c.client_id.clone(),
                client_secret: c.client_secret.clone(),
                method: c.auth_method,
            },
        }
    }

    /// The issuer learned for `reg` (from discovery, a challenge or a completed flow), if any
    /// and if it was learned for this very registration.
    pub fn learned_issuer(&self, reg: &ServerRegistration) -> Option<String> {
        self.issuers.get(reg)
    }

    /// Remember `issuer` as `reg`'s (a challenge chose it, or a flow completed with it).
    pub fn learn_issuer(&self, reg: &ServerRegistration, issuer: String) {
        self.issuers.insert(reg, issuer);
    }

    /// A usable access token of `caller` for `server`, or `None` when the user must authorize.
    pub async fn get_token(
        &self,
        server: &ServerKey,
        caller: &Caller,
    ) -> Result<Option<AccessToken>, TokenAccessError> {
        let reg = self
            .registry
            .server(server)
            .ok_or_else(|| TokenAccessError::UnknownServer(server.clone()))?;
        let AuthSettings::OAuth(settings) = &reg.auth else {
            return Err(TokenAccessError::NotOAuth {
                server: server.clone(),
                mode: reg.auth.mode_name(),
            });
        };
        self.token(&reg, settings, caller).await
    }

    /// A usable access token of `caller` for `reg` (whose settings are `settings`), or `None`
    /// when the user must authorize.
    pub async fn token(
        &self,
        reg: &ServerRegistration,
        settings: &OAuthSettings,
        caller: &Caller,
    ) -> Result<Option<AccessToken>, TokenAccessError> {
        let server = &reg.key;
        let issuer = match self.issuer_for(reg, settings).await? {
            Some(i) => i,
            None => return Ok(None),
        };
        let binding = Self::token_binding(reg, settings, issuer);
        let Some((key, record)) = self.tokens.get_bound(&caller.session, &binding).await? else {
            return Ok(None);
        };
        if record.user != caller.user {
            // Defence in depth: a session id that reaches us for two users (a misconfigured
            // session header, a forged one behind a leaky proxy) never hands one user's token
            // to the other. The caller authorizes for themselves instead.
            tracing::warn!(
                server = %server,
                session = %short(&caller.session),
                "stored token belongs to another user of this session; not used"
            );
            return Ok(None);
        }
        let ctx = RefreshContext {
            settings,
            creds: self.client_credentials(&settings.client),
        };
        self.usable(key, record, Some(ctx)).await
    }

    /// Whom `reg`'s tokens from `issuer` are bound to: its namespace and
    /// [`OAuthSettings::token_resource`].
    pub fn token_binding(
        reg: &ServerRegistration,
        settings: &OAuthSettings,
        issuer: String,
    ) -> TokenBinding {
        TokenBinding {
            issuer,
            namespace: reg.key.namespace.clone(),
            resource: settings.token_resource(&reg.url).to_owned(),
        }
    }

    /// The issuer of `reg`: pinned in its settings, learned earlier, or discovered now.
    async fn issuer_for(
        &self,
        reg: &ServerRegistration,
        settings: &OAuthSettings,
    ) -> Result<Option<String>, TokenAccessError> {
        if let Some(i) = &settings.issuer {
            return Ok(Some(i.clone()));
        }
        if let Some(i) = self.issuers.get(reg) {
            return Ok(Some(i));
        }
        let prm = self
            .discovery
            .protected_resource(&reg.url, None, &settings.resource)
            .await?;
        let issuer = prm.metadata.authorization_servers.first().cloned();
        if let Some(i) = &issuer {
            self.issuers.insert(reg, i.clone());
        }
        Ok(issuer)
    }

    /// Return `record` if it is fresh, refresh it if it is not, or drop it when it is dead.
    async fn usable(
        &self,
        key: TokenKey,
        record: TokenRecord,
        ctx: Option<RefreshContext<'_>>,
    ) -> Result<Option<AccessToken>, TokenAccessError> {
        let now = unix_now();
        let margin = self.cfg.refresh_margin.as_secs();
        if !record.expires_within(now, margin) {
            return Ok(Some(AccessToken::new(key, record)));
        }
        let (Some(ctx), Some(_)) = (ctx, record.refresh_token.as_ref()) else {
            // Not refreshable here: usable until it actually expires.
            if record.expires_within(now, 0) {
                if record.refresh_token.is_none() {
                    self.tokens.delete(&key).await?;
                }
                return Ok(None);
            }
            return Ok(Some(AccessToken::new(key, record)));
        };
        self.refresh(key, ctx).await
    }

    /// Refresh the token at `key`, one refresh at a time per key: in this process a per-key
    /// mutex, across replicas a lease in the store. A caller that loses either race waits and
    /// then reads the refreshed token instead of refreshing again (a second refresh with a
    /// rotated refresh token would make the authorization server revoke the whole grant).
    async fn refresh(
        &self,
        key: TokenKey,
        ctx: RefreshContext<'_>,
    ) -> Result<Option<AccessToken>, TokenAccessError> {
        let local = self.refresh_locks.get_with(key.clone(), || {
            std::sync::Arc::new(tokio::sync::Mutex::new(()))
        });
        let _guard = local.lock().await;

        let lease = self.cfg.refresh_lease;
        let give_up = tokio::time::Instant::now() + lease + REFRESH_WAIT_SLACK;
        loop {
            // Read before taking the lease: maybe someone refreshed while we waited.
            let Some(current) = self.tokens.get(&key).await? else {
                return Ok(None);
            };
            if !current.expires_within(unix_now(), self.cfg.refresh_margin.as_secs()) {
                return Ok(Some(AccessToken::new(key, current)));
            }
            if let Some(lease_token) = self.refresh_lock.try_acquire(&key, lease).await? {
                let result = self.refresh_holding_lease(&key, &ctx).await;
                if let Err(e) = self.refresh_lock.release(&key, &lease_token).await {
                    tracing::warn!(error = %e, "could not release the refresh lease; it expires by itself");
                }
                return result;
            }
            if tokio::time::Instant::now() >= give_up {
                // Still usable? Then use it rather than fail.
                return if current.expires_within(unix_now(), 0) {
                    Err(TokenAccessError::RefreshBusy)
                } else {
                    Ok(Some(AccessToken::new(key, current)))
                };
            }
            tokio::time::sleep(REFRESH_POLL).await;
        }
    }

    /// The refresh itself; the caller holds the lease.
    async fn refresh_holding_lease(
        &self,
        key: &TokenKey,
        ctx: &RefreshContext<'_>,
    ) -> Result<Option<AccessToken>, TokenAccessError> {
        // Re-read under the lease: another replica may have finished just before we took it.
        let Some(current) = self.tokens.get(key).await? else {
            return Ok(None);
        };
        let now = unix_now();
        if !current.expires_within(now, self.cfg.refresh_margin.as_secs()) {
            return Ok(Some(AccessToken::new(key.clone(), current)));
        }
        let Some(refresh_token) = current.refresh_token.clone() else {
            return Ok(
                (!current.expires_within(now, 0)).then(|| AccessToken::new(key.clone(), current))
            );
        };
        if ctx.creds.client_id != current.client_id {
            // The server's client changed since this token was issued; it cannot be refreshed
            // (a refresh token is bound to the client it was issued to).
            self.tokens.delete(key).await?;
            return Ok(None);
        }
        // At the token's own issuer, never the server's current one: a server that now names
        // another authorization server must not receive this refresh token.
        let md = self.discovery.authorization_server(key.issuer()).await?;
        // The token's own resource: the binding is the resource it was requested for (the
        // caller's server shares it, or it would not have found this token).
        let resource = ctx
            .settings
            .send_resource
            .then_some(key.binding.resource.as_str());
        let result = self
            .token_client
            .refresh(&md, &ctx.creds, &refresh_token, resource)
            .await;
        let label = |r: &str| ResultLabel {
            result: r.to_owned(),
        };
        match result {
            Ok(resp) => {
                let record = TokenRecord {
                    access_token: resp.access_token,
                    token_type: resp.token_type,
                    // Keep the old refresh token when the server does not rotate it.
                    refresh_token: resp.refresh_token.or(Some(refresh_token)),
                    expires_at: resp.expires_in.map(|s| now.saturating_add(s)),
                    granted_scope: resp.scope.or(current.granted_scope),
                    issuer: current.issuer,
                    client_id: current.client_id,
                    user: current.user,
                    obtained_at: now,
                };
                self.tokens.put(key, record.clone()).await?;
                self.refreshes.get_or_create(&label("ok")).inc();
                tracing::info!(issuer = %key.issuer(), session = %short(&key.session), "access token refreshed");
                Ok(Some(AccessToken::new(key.clone(), record)))
            }
            Err(e) if e.is_transient() => {
                self.refreshes
                    .get_or_create(&label("transient_error"))
                    .inc();
                tracing::warn!(issuer = %key.issuer(), session = %short(&key.session), error = %e, "token refresh failed; will retry");
                if current.expires_within(now, 0) {
                    Err(TokenAccessError::Refresh(e))
                } else {
                    Ok(Some(AccessToken::new(key.clone(), current)))
                }
            }
            Err(e) => {
                // The grant is gone (revoked, rotated elsewhere, expired): a new login is needed.
                self.refreshes.get_or_create(&label("rejected")).inc();
                tracing::info!(issuer = %key.issuer(), session = %short(&key.session), error = %e, "refresh rejected; authorization needed again");
                self.tokens.delete(key).await?;
                Ok(None)
            }
        }
    }
}

impl CredentialSource for OAuthTokens {
    type Settings = OAuthSettings;

    async fn get(
        &self,
        server: &ServerRegistration,
        settings: &OAuthSettings,
        auth: &Authenticated,
    ) -> Result<Credentials, CredentialsError> {
        match self.token(server, settings, &auth.caller).await {
            Ok(Some(token)) => Ok(Credentials::OAuth(token)),
            Ok(None) => Ok(Credentials::AuthorizationRequired),
            Err(source) => Err(CredentialsError::token(&server.key, source)),
        }
    }

    /// A 401 the first time: stop using the refused access token (refresh it, or drop it) and
    /// try the next one, if any, else the user authorizes again. A 401 to the retry: drop the
    /// token, whose grant is useless. A 403 `insufficient_scope`: step up, keeping the scopes
    /// the token has.
    async fn refused(
        &self,
        server: &ServerRegistration,
        settings: &OAuthSettings,
        auth: &Authenticated,
        refused: &Credentials,
        refusal: Refusal,
        retried: bool,
    ) -> Result<AfterRefusal, CredentialsError> {
        let Credentials::OAuth(token) = refused else {
            return Ok(AfterRefusal::Stands);
        };
        let caller = &auth.caller;
        let token_err = |e| CredentialsError::token(&server.key, e);
        match refusal {
            Refusal::Unauthorized if !retried => {
                let next = self
                    .after_rejection(server, settings, caller, token)
                    .await
                    .map_err(token_err)?;
                Ok(match next {
                    Some(t) => AfterRefusal::Retry(Credentials::OAuth(t)),
                    None => AfterRefusal::Authorize,
                })
            }
            Refusal::Unauthorized => {
                self.drop_token(&server.key, caller, token)
                    .await
                    .map_err(|e| token_err(e.into()))?;
                Ok(AfterRefusal::Authorize)
            }
            Refusal::InsufficientScope => {
                let granted = self
                    .current_scopes(token)
                    .await
                    .map_err(|e| token_err(e.into()))?;
                Ok(AfterRefusal::StepUp { granted })
            }
        }
    }
}
