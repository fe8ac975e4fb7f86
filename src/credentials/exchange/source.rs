//! `exchange` mode as a [`CredentialSource`]: the server's `TokenExchangePolicy` (same namespace
//! only) exchanges the caller's own bearer token through the [`Exchanger`] (cached). A refused
//! exchanged token is evicted and exchanged again once; refused again, it is dropped so the next
//! request exchanges afresh, and the refusal stands.

use super::{ExchangeError, Exchanged, Exchanger};
use crate::credentials::{AfterRefusal, CredentialSource, Credentials, CredentialsError, Refusal};
use crate::identity::Authenticated;
use crate::registry::{
    ExchangeSettings, PolicyRegistration, Registry, ServerKey, ServerRegistration,
};
use secrecy::SecretString;
use std::sync::Arc;

/// The source of `exchange` mode.
#[derive(Debug)]
pub struct ExchangeSource {
    /// Where the servers' policies are registered.
    registry: Arc<Registry>,
    exchanger: Arc<Exchanger>,
}

impl ExchangeSource {
    pub fn new(registry: Arc<Registry>, exchanger: Arc<Exchanger>) -> Self {
        Self {
            registry,
            exchanger,
        }
    }

    pub fn exchanger(&self) -> &Arc<Exchanger> {
        &self.exchanger
    }

    /// The policy of an exchange-mode server and the caller's token to exchange.
    fn inputs<'a>(
        &self,
        server: &ServerKey,
        settings: &ExchangeSettings,
        auth: &'a Authenticated,
    ) -> Result<(Arc<PolicyRegistration>, &'a SecretString), CredentialsError> {
        let Some(subject) = &auth.bearer else {
            return Err(CredentialsError::ExchangeWithoutToken {
                server: server.clone(),
            });
        };
        // Policies are looked up in the server's own namespace only.
        let policy_key = ServerKey::new(server.namespace.clone(), settings.policy.clone());
        let policy = self.registry.policy(&policy_key).ok_or_else(|| {
            CredentialsError::ExchangePolicyMissing {
                server: server.clone(),
                policy: policy_key,
            }
        })?;
        Ok((policy, subject))
    }
}

fn exchange_error(
    server: &ServerKey,
    policy: &PolicyRegistration,
    source: ExchangeError,
) -> CredentialsError {
    CredentialsError::Exchange {
        server: server.clone(),
        policy: policy.key.clone(),
        source: Box::new(source),
    }
}

impl CredentialSource for ExchangeSource {
    type Settings = ExchangeSettings;

    async fn get(
        &self,
        server: &ServerRegistration,
        settings: &ExchangeSettings,
        auth: &Authenticated,
    ) -> Result<Credentials, CredentialsError> {
        let (policy, subject) = self.inputs(&server.key, settings, auth)?;
        self.exchanger
            .exchange(&policy, &auth.caller.user, subject)
            .await
            .map(Credentials::Exchanged)
            .map_err(|source| exchange_error(&server.key, &policy, source))
    }

    async fn refused(
        &self,
        server: &ServerRegistration,
        settings: &ExchangeSettings,
        auth: &Authenticated,
        refused: &Credentials,
        refusal: Refusal,
        retried: bool,
    ) -> Result<AfterRefusal, CredentialsError> {
        let (Credentials::Exchanged(rejected), Refusal::Unauthorized) = (refused, refusal) else {
            return Ok(AfterRefusal::Stands);
        };
        if retried {
            // Refused again: drop it, so that the next request exchanges afresh instead of
            // replaying it.
            self.exchanger.evict(rejected).await;
            return Ok(AfterRefusal::Stands);
        }
        self.again(server, settings, auth, rejected).await
    }
}

impl ExchangeSource {
    /// The remote server answered 401 to an exchanged token: evict it from the cache and
    /// exchange again.
    async fn again(
        &self,
        server: &ServerRegistration,
        settings: &ExchangeSettings,
        auth: &Authenticated,
        rejected: &Exchanged,
    ) -> Result<AfterRefusal, CredentialsError> {
        let (policy, subject) = self.inputs(&server.key, settings, auth)?;
        tracing::info!(server = %server.key, policy = %policy.key, "remote server rejected the exchanged token; exchanging again");
        self.exchanger
            .after_rejection(&policy, &auth.caller.user, subject, rejected)
            .await
            .map(|ex| AfterRefusal::Retry(Credentials::Exchanged(ex)))
            .map_err(|source| exchange_error(&server.key, &policy, source))
    }
}
