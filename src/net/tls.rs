//! The one TLS client configuration (aws-lc-rs, the platform trust store) shared by the
//! outbound clients and the gateway's upstream connector.
//!
//! Building a platform verifier reads and parses every system root certificate (~4 ms); doing
//! it once per client, three times at start-up, was half of `serve`'s start → ready time. The
//! configuration is built once per process and cloned (the verifier inside is shared).

use std::sync::{Arc, OnceLock};

static PLATFORM: OnceLock<Result<rustls::ClientConfig, String>> = OnceLock::new();

/// The shared client configuration with the platform verifier, built on first use. Errors
/// (for example no root certificates at all) are kept and returned to every caller. ALPN is
/// left empty: each HTTP client sets the protocols it speaks (hyper-rustls insists on it).
pub fn platform_client_config() -> Result<rustls::ClientConfig, String> {
    PLATFORM.get_or_init(build).clone()
}

fn build() -> Result<rustls::ClientConfig, String> {
    use rustls_platform_verifier::BuilderVerifierExt as _;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?
        .with_platform_verifier()
        .map_err(|e| format!("platform certificate verifier: {e}"))?
        .with_no_client_auth();
    Ok(config)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn one_verifier_is_shared_by_every_copy() {
        let a = platform_client_config().unwrap();
        let b = platform_client_config().unwrap();
        assert!(Arc::ptr_eq(
            &a.crypto_provider().clone(),
            b.crypto_provider()
        ));
        assert!(
            a.alpn_protocols.is_empty(),
            "hyper-rustls refuses preset ALPN"
        );
    }
}
