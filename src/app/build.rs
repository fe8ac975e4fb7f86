//! Constructing every component of the server from its plain configuration: the outbound
//! client and its SSRF guard, the identity modes, the browser flows (with, for now, the token
//! side and the exchanger), the gateway and the HTTP state that ties them together. No I/O besides reading the
//! files the configuration names; nothing is started here.

use super::StartError;
use super::config::AppConfig;
use super::stores::Stores;
use crate::credentials::exchange::Exchanger;
use crate::credentials::oauth::OAuthConfig;
use crate::credentials::{CredentialSources, OAuthTokens};
use crate::flows::{Flows, FlowsConfig};
use crate::http::{AppState, Readiness};
use crate::metrics::Metrics;
use crate::net::{AddressPolicy, OutboundClient, OutboundConfig};
use crate::oauth::{Discovery, DiscoveryConfig, TokenClient};
use crate::registry::Registry;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// The components the listeners serve.
pub(super) struct Components {
    pub flows: Arc<Flows>,
    pub credentials: Arc<CredentialSources>,
    /// The gateway, for the housekeeping of its request metrics.
    pub gateway: Arc<crate::gateway::Gateway>,
    /// One metadata cache for the flows and the controller's status.
    pub discovery: Discovery,
    pub state: AppState,
}

/// What every component is built with, beyond the configuration.
pub(super) struct Parts<'a> {
    pub public_url: &'a Url,
    pub origin_policy: crate::http::OriginPolicy,
    pub stores: &'a Stores,
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
}

/// Builds the flows, the gateway and the HTTP state.
pub(super) fn components(config: &AppConfig, parts: Parts<'_>) -> Result<Components, StartError> {
    // SSRF guard for URLs resources and remote servers steer.
    let address_policy = AddressPolicy::from_allow_private(config.outbound.allow_private_networks);
    let outbound = OutboundClient::new(OutboundConfig {
        timeout: config.outbound.timeout,
        max_body_bytes: config.outbound.max_body_bytes,
        address_policy,
        ..OutboundConfig::default()
    })
    .map_err(|e| StartError::Outbound(e.to_string()))?;
    let identity = identity(config, parts.public_url, &outbound)?;
    let discovery = Discovery::new(
        outbound.clone(),
        DiscoveryConfig {
            metadata_ttl: config.metadata_cache_ttl,
            allow_insecure_http: config.allow_insecure_http,
            ..DiscoveryConfig::default()
        },
    );
    let identity = Arc::new(identity);
    let credentials = credentials(config, &parts, &outbound, discovery.clone())?;
    let flows = flows(config, &parts, credentials.clone());
    let gateway_cfg = crate::gateway::GatewayConfig {
        address_policy,
        ..config.gateway
    };
    let gateway = crate::gateway::Gateway::new(
        gateway_cfg,
        parts.registry.clone(),
        credentials.clone(),
        identity.clone(),
        flows.clone(),
        &parts.metrics,
    )
    .map_err(|e| StartError::Outbound(format!("gateway upstream client: {e}")))?;
    flows.set_completion_hook(gateway.completion_hook());
    let state = AppState::new(
        flows.clone(),
        identity,
        parts.readiness.clone(),
        config.rate_limit.clone(),
        gateway.clone(),
        parts.registry.clone(),
        parts.metrics.clone(),
    )
    .with_origin_policy(parts.origin_policy);
    Ok(Components {
        flows,
        credentials,
        discovery,
        gateway: gateway.clone(),
        state,
    })
}

/// The identity modes. The callers' identity provider is the operator's own configuration,
/// often inside the cluster: private networks allowed (cloud metadata still refused).
fn identity(
    config: &AppConfig,
    public_url: &Url,
    outbound: &OutboundClient,
) -> Result<crate::identity::Authenticator, StartError> {
    let identity_outbound = outbound.with_private_networks(true);
    let identity = crate::identity::from_settings(&config.identity, public_url, identity_outbound)
        .map_err(|e| StartError::Config(e.to_string()))?;
    if identity.oidc_validator().is_some() && identity.sign_in().is_none() {
        tracing::warn!(
            "identity oidc without --oidc-client-id: a sign-in link is bound to the first \
             browser that opens it, not checked against its user; set --oidc-client-id (the \
             gateway's client at the issuer, redirect URI {{public-url}}/oauth/callback) so \
             browsers sign in first"
        );
    }
    Ok(identity)
}

/// The credentials stage: one source per auth mode, shared by the gateway, the browser flows
/// (which store the tokens the `oauth` source hands out) and the controller (exchange counts).
fn credentials(
    config: &AppConfig,
    parts: &Parts<'_>,
    outbound: &OutboundClient,
    discovery: Discovery,
) -> Result<Arc<CredentialSources>, StartError> {
    let mut oauth_cfg =
        OAuthConfig::new(FlowsConfig::new(parts.public_url.clone()).cimd_client_id());
    oauth_cfg.refresh_margin = config.refresh_margin;
    // A lease outlives the slowest token request it protects.
    oauth_cfg.refresh_lease = config.outbound.timeout + Duration::from_secs(5);
    let oauth = Arc::new(OAuthTokens::new(
        oauth_cfg,
        parts.registry.clone(),
        parts.stores.tokens.clone(),
        parts.stores.lock.clone(),
        discovery,
        TokenClient::new(outbound.clone()),
        &parts.metrics,
    ));
    let exchanger = Arc::new(Exchanger::new(exchange_config(config)?, &parts.metrics));
    Ok(Arc::new(CredentialSources::new(
        parts.registry.clone(),
        oauth,
        exchanger,
    )))
}

/// The browser flows.
fn flows(config: &AppConfig, parts: &Parts<'_>, credentials: Arc<CredentialSources>) -> Arc<Flows> {
    let mut cfg = FlowsConfig::new(parts.public_url.clone());
    cfg.client_name = config.client_name.clone();
    cfg.cimd_scope = crate::flows::CimdScope::parse(&config.cimd_scope);
    Arc::new(Flows::new(
        cfg,
        parts.registry.clone(),
        parts.stores.flows.clone(),
        credentials,
        parts.metrics.clone(),
    ))
}

/// Token-exchange settings: the outbound limits, plus the extra CA file when given.
fn exchange_config(
    config: &AppConfig,
) -> Result<crate::credentials::exchange::ExchangeConfig, StartError> {
    let mut cfg = crate::credentials::exchange::ExchangeConfig::default();
    cfg.client.timeout = config.outbound.timeout;
    cfg.client.max_body_bytes = config.outbound.max_body_bytes;
    cfg.allowed_issuers = allowed_exchange_issuers(config);
    let Some(path) = &config.exchange_ca_file else {
        return Ok(cfg);
    };
    let pem = std::fs::read(path)
        .map_err(|e| StartError::Config(format!("--exchange-ca-file {}: {e}", path.display())))?;
    cfg.with_ca_bundle(&pem)
        .map_err(|e| StartError::Config(format!("--exchange-ca-file {}: {e}", path.display())))
}

/// `--exchange-allowed-issuers`, else the callers' own issuer: exchanging a caller's token at
/// the provider that issued it hands it to no one new.
fn allowed_exchange_issuers(config: &AppConfig) -> Vec<String> {
    let listed: Vec<String> = config
        .exchange_allowed_issuers
        .iter()
        .map(|i| i.trim().to_owned())
        .filter(|i| !i.is_empty())
        .collect();
    if listed.is_empty() {
        config.identity.oidc_issuer.iter().cloned().collect()
    } else {
        listed
    }
}
