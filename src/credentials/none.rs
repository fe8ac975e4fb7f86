//! `none` mode: the remote server gets no credentials, and a refusal is the remote server's to
//! explain (nothing the gateway holds would change it).

use super::{AfterRefusal, CredentialSource, Credentials, CredentialsError, Refusal};
use crate::identity::Authenticated;
use crate::registry::ServerRegistration;

/// The source of `none` mode.
#[derive(Debug, Default)]
pub struct NoCredentials;

impl CredentialSource for NoCredentials {
    type Settings = ();

    async fn get(
        &self,
        _server: &ServerRegistration,
        _settings: &(),
        _auth: &Authenticated,
    ) -> Result<Credentials, CredentialsError> {
        Ok(Credentials::Anonymous)
    }

    async fn refused(
        &self,
        _server: &ServerRegistration,
        _settings: &(),
        _auth: &Authenticated,
        _refused: &Credentials,
        _refusal: Refusal,
        _retried: bool,
    ) -> Result<AfterRefusal, CredentialsError> {
        Ok(AfterRefusal::Stands)
    }
}
