//! The HTTP side of an exchange: one outbound client per policy generation (built once, reused
//! for its connection pool), with the policy's client certificate for mutual TLS and the
//! policy's address rule. Every client is an [`OutboundClient`]: the SSRF guard (names resolved
//! and checked before connecting), no redirects, timeouts and the body cap apply to mTLS
//! clients too.

use super::error::ExchangeError;
use super::request::ExchangeRequest;
use crate::net::{AddressPolicy, HttpResponse, OutboundClient, OutboundConfig};
use crate::registry::{PolicyClientAuth, PolicyRegistration, ServerKey};
use secrecy::ExposeSecret as _;
use std::time::Duration;

/// Limits and trust of the exchange clients.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub max_body_bytes: usize,
    /// CA certificates trusted in addition to the platform's, for token endpoints with
    /// certificates from a private CA.
    pub extra_roots: Vec<reqwest::Certificate>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            max_body_bytes: 1024 * 1024,
            extra_roots: Vec::new(),
        }
    }
}

/// Outbound clients by (policy, generation).
pub struct PolicyClients {
    cfg: ClientConfig,
    clients: moka::sync::Cache<(ServerKey, i64), OutboundClient>,
}

impl std::fmt::Debug for PolicyClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyClients")
            .field("clients", &self.clients.entry_count())
            .finish()
    }
}

impl PolicyClients {
    pub fn new(cfg: ClientConfig) -> Self {
        Self {
            cfg,
            // Idle clients (a policy deleted or edited) go after an hour.
            clients: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
        }
    }

    /// The client for `policy`, built on first use.
    pub fn for_policy(&self, policy: &PolicyRegistration) -> Result<OutboundClient, ExchangeError> {
        let key = (policy.key.clone(), policy.generation);
        if let Some(c) = self.clients.get(&key) {
            return Ok(c);
        }
        let client = build(&self.cfg, policy)?;
        self.clients.insert(key, client.clone());
        Ok(client)
    }
}

fn build(cfg: &ClientConfig, policy: &PolicyRegistration) -> Result<OutboundClient, ExchangeError> {
    let identity = match &policy.client_auth {
        Some(PolicyClientAuth::MutualTls {
            cert_pem, key_pem, ..
        }) => {
            let mut pem = Vec::with_capacity(
                cert_pem.expose_secret().len() + key_pem.expose_secret().len() + 1,
            );
            pem.extend_from_slice(cert_pem.expose_secret().as_bytes());
            pem.push(b'\n');
            pem.extend_from_slice(key_pem.expose_secret().as_bytes());
            // The error text of a PEM parse names no key material, but a fixed text is certain.
            let id = reqwest::Identity::from_pem(&pem).map_err(|_| {
                ExchangeError::ClientSetup(
                    "the TLS Secret's tls.crt/tls.key are not a PEM certificate chain and private key".into(),
                )
            })?;
            Some(id)
        }
        _ => None,
    };
    let roots = cfg.extra_roots.clone();
    let out_cfg = OutboundConfig {
        connect_timeout: cfg.connect_timeout,
        timeout: cfg.timeout,
        max_body_bytes: cfg.max_body_bytes,
        address_policy: AddressPolicy::from_allow_private(policy.allow_private_networks),
    };
    OutboundClient::with_builder(out_cfg, || {
        let mut b = reqwest::Client::builder();
        if !roots.is_empty() {
            b = b.tls_certs_merge(roots.iter().cloned());
        }
        if let Some(id) = &identity {
            b = b.identity(id.clone());
        }
        b
    })
    .map_err(|e| ExchangeError::ClientSetup(e.to_string()))
}

/// POST `req` to the policy's token endpoint.
pub async fn post(
    client: &OutboundClient,
    policy: &PolicyRegistration,
    req: &ExchangeRequest<'_>,
) -> Result<HttpResponse, ExchangeError> {
    let basic = req.basic.as_ref().map(|(u, p)| (u.as_str(), p));
    Ok(client
        .post_form(&policy.token_endpoint, &req.form, basic)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::exchange::request::tests::policy;
    use secrecy::SecretString;

    #[test]
    fn clients_are_reused_per_generation_and_follow_the_address_rule() {
        let clients = PolicyClients::new(ClientConfig::default());
        let mut p = policy();
        let a = clients.for_policy(&p).expect("client");
        assert_eq!(a.address_policy(), AddressPolicy::PublicOnly);
        p.allow_private_networks = true;
        let same_gen = clients.for_policy(&p).expect("client");
        assert_eq!(
            same_gen.address_policy(),
            AddressPolicy::PublicOnly,
            "cached per generation"
        );
        p.generation = 2;
        let next = clients.for_policy(&p).expect("client");
        assert_eq!(next.address_policy(), AddressPolicy::AllowPrivate);
    }

    #[test]
    fn a_bad_client_certificate_is_a_clear_error_without_key_material() {
        let clients = PolicyClients::new(ClientConfig::default());
        let mut p = policy();
        p.client_auth = Some(PolicyClientAuth::MutualTls {
            client_id: None,
            cert_pem: SecretString::from("not a cert".to_owned()),
            key_pem: SecretString::from("secret-key-bytes".to_owned()),
        });
        let err = clients.for_policy(&p).expect_err("refused");
        let msg = err.to_string();
        assert!(msg.contains("tls.crt"), "{msg}");
        assert!(!msg.contains("secret-key-bytes"), "{msg}");
    }

    #[tokio::test]
    async fn a_loopback_endpoint_is_refused_unless_private_networks_are_allowed() {
        let clients = PolicyClients::new(ClientConfig::default());
        let mut p = policy();
        p.token_endpoint = url::Url::parse("http://127.0.0.1:9/token").expect("url");
        let client = clients.for_policy(&p).expect("client");
        let req = crate::credentials::exchange::request::build(&p, "t", "");
        let err = post(&client, &p, &req).await.expect_err("refused");
        assert!(matches!(err, ExchangeError::AddressRefused(_)), "{err:?}");
        assert!(err.to_string().contains("allowPrivateNetworks"), "{err}");
        // A name resolving to loopback is refused at resolution time.
        let mut q = p.clone();
        q.token_endpoint = url::Url::parse("http://localhost:9/token").expect("url");
        q.generation = 3;
        let client = clients.for_policy(&q).expect("client");
        let req = crate::credentials::exchange::request::build(&q, "t", "");
        let err = post(&client, &q, &req).await.expect_err("refused");
        assert!(matches!(err, ExchangeError::AddressRefused(_)), "{err:?}");
    }
}
