//! TLS for Valkey connections: rustls with the aws-lc-rs provider (the crate's one TLS provider)
//! and either the configured CA bundle or the system roots.

use super::config::{CaProblem, ValkeyConfigError};
use fred::types::config::{TlsConfig, TlsConnector};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use std::path::Path;
use std::sync::Arc;

/// TLS settings trusting only the certificates in `ca_file`, or the system roots without one.
pub fn tls_config(ca_file: Option<&Path>) -> Result<TlsConfig, ValkeyConfigError> {
    let Some(path) = ca_file else {
        return TlsConnector::default_rustls()
            .map(TlsConfig::from)
            .map_err(ValkeyConfigError::SystemRoots);
    };
    let pem = std::fs::read(path).map_err(|source| ValkeyConfigError::CaFile {
        path: path.to_path_buf(),
        source,
    })?;
    let roots = roots_from_pem(&pem).map_err(|source| ValkeyConfigError::CaContent {
        path: path.to_path_buf(),
        source,
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ValkeyConfigError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConfig::from(TlsConnector::from(config)))
}

/// Every certificate of a PEM bundle as a trust anchor; at least one is required.
fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore, CaProblem> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(CaProblem::Pem)?;
        roots.add(cert).map_err(CaProblem::NotCa)?;
    }
    if roots.is_empty() {
        return Err(CaProblem::Empty);
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_or_garbage_bundles_are_rejected() {
        assert!(roots_from_pem(b"").is_err());
        assert!(roots_from_pem(b"hello").is_err());
        let bad = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(roots_from_pem(bad).is_err());
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = tls_config(Some(Path::new("/nonexistent/ca.pem")))
            .err()
            .unwrap_or_else(|| panic!("must fail"));
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
