//! How the gateway opens connections to remote MCP servers: plain TCP or TLS (rustls with the
//! crate's one provider, aws-lc-rs, and the platform trust store — the same as reqwest's), with
//! ALPN choosing HTTP/2 or HTTP/1.1.
//!
//! The outbound address guard (SSRF) sits below TLS: host names are resolved by the
//! [`GuardedResolver`], so the addresses checked are the ones connected to, and IP-literal hosts
//! (which skip resolvers) are checked by [`GuardedHttpConnector`] before connecting. A remote
//! server URL comes from a resource author, who must not reach what the policy refuses.

use crate::net::guard::BoxError;
use crate::net::{AddressPolicy, GuardedResolver, ssrf};
use http::Uri;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

/// The connector of the upstream client.
pub type UpstreamConnector = HttpsConnector<GuardedHttpConnector>;

/// TCP keep-alive probes on idle pooled connections, so dead peers are noticed.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// TCP connector with the address guard: checks IP-literal hosts, resolves names through the
/// [`GuardedResolver`].
#[derive(Debug, Clone)]
pub struct GuardedHttpConnector {
    inner: HttpConnector<GuardedResolver>,
    policy: AddressPolicy,
}

impl tower::Service<Uri> for GuardedHttpConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        if let Some(host) = uri.host()
            && let Err(refused) = ssrf::check_literal_host(host, self.policy)
        {
            return Box::pin(std::future::ready(Err(refused.into())));
        }
        let connecting = self.inner.call(uri);
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}

/// Build the connector.
pub fn build(
    connect_timeout: Duration,
    address_policy: AddressPolicy,
) -> Result<UpstreamConnector, std::io::Error> {
    let mut tcp = HttpConnector::new_with_resolver(GuardedResolver::new(address_policy));
    // The TLS layer decides which schemes are allowed (http and https).
    tcp.enforce_http(false);
    // JSON-RPC messages are small writes: Nagle's algorithm would only add latency.
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    tcp.set_keepalive(Some(TCP_KEEPALIVE));
    let guarded = GuardedHttpConnector {
        inner: tcp,
        policy: address_policy,
    };
    let tls = crate::net::platform_client_config().map_err(std::io::Error::other)?;
    Ok(HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(guarded))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::AddressClass;
    use crate::net::guard::find_refusal;
    use tower::ServiceExt as _;

    fn connector(policy: AddressPolicy) -> GuardedHttpConnector {
        let mut tcp = HttpConnector::new_with_resolver(GuardedResolver::new(policy));
        tcp.set_connect_timeout(Some(Duration::from_secs(5)));
        GuardedHttpConnector { inner: tcp, policy }
    }

    async fn refusal(policy: AddressPolicy, uri: &str) -> Option<AddressClass> {
        let uri: Uri = uri.parse().expect("uri");
        match connector(policy).oneshot(uri).await {
            Ok(_) => None,
            Err(e) => Some(find_refusal(e.as_ref()).expect("a refusal").class),
        }
    }

    #[tokio::test]
    async fn literal_and_named_private_hosts_are_refused_before_connecting() {
        let strict = AddressPolicy::PublicOnly;
        // Port 9 (discard) on loopback: nothing listens, so only a refusal can answer quickly.
        assert_eq!(
            refusal(strict, "http://127.0.0.1:9/").await,
            Some(AddressClass::Loopback)
        );
        assert_eq!(
            refusal(strict, "http://[::ffff:127.0.0.1]:9/").await,
            Some(AddressClass::Loopback)
        );
        assert_eq!(
            refusal(strict, "http://localhost:9/").await,
            Some(AddressClass::Loopback)
        );
        assert_eq!(
            refusal(AddressPolicy::AllowPrivate, "http://169.254.169.254/").await,
            Some(AddressClass::CloudMetadata)
        );
    }

    #[tokio::test]
    async fn allowed_hosts_are_connected() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let uri: Uri = format!("http://localhost:{port}/").parse().expect("uri");
        let conn = connector(AddressPolicy::AllowPrivate).oneshot(uri).await;
        assert!(conn.is_ok(), "{:?}", conn.err());
    }
}
