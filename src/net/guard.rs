//! The outbound address guard (SSRF), enforcement part: a DNS resolver that resolves a host,
//! drops the addresses the [`AddressPolicy`] refuses and hands only the rest to the connector.
//! The addresses checked are therefore the ones connected to: a name cannot resolve to a public
//! address for the check and to a private one for the connection (DNS rebinding).
//!
//! Resolvers are skipped for IP-literal URLs, so every caller also checks the literal host
//! ([`check_url`], or the gateway connector's own check) before a request leaves.

use super::ssrf::{self, AddressPolicy, AddressRefused};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use url::Url;

/// Error type of resolvers: an [`AddressRefused`] or the lookup's I/O error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type Resolving = Pin<Box<dyn Future<Output = Result<Vec<SocketAddr>, BoxError>> + Send>>;

/// Resolves with the system resolver, then filters by the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardedResolver {
    policy: AddressPolicy,
}

impl GuardedResolver {
    pub fn new(policy: AddressPolicy) -> Self {
        Self { policy }
    }

    pub fn policy(&self) -> AddressPolicy {
        self.policy
    }

    /// The permitted addresses of `host` (port 0: the connector sets the URL's port).
    pub async fn resolve_host(&self, host: &str) -> Result<Vec<SocketAddr>, BoxError> {
        let found = tokio::net::lookup_host((host, 0)).await?;
        Ok(ssrf::filter_resolved(host, found, self.policy)?)
    }

    fn resolving(self, host: String) -> Resolving {
        Box::pin(async move { self.resolve_host(&host).await })
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let fut = self.resolving(name.as_str().to_owned());
        Box::pin(async move {
            let addrs = fut.await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl tower::Service<hyper_util::client::legacy::connect::dns::Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let fut = self.resolving(name.as_str().to_owned());
        Box::pin(async move { Ok(fut.await?.into_iter()) })
    }
}

/// Apply the guard to a reqwest client under construction (also one with a client certificate
/// for mutual TLS): the guarded resolver, no redirects (a redirect could lead anywhere, and
/// carry a PKCE verifier or client secret there) and no proxy (a proxy would resolve names
/// where the guard cannot see them). Requests of the built client must still pass
/// [`check_url`] first; [`super::OutboundClient::with_builder`] does both.
pub fn guard_reqwest(
    builder: reqwest::ClientBuilder,
    policy: AddressPolicy,
) -> reqwest::ClientBuilder {
    builder
        .dns_resolver(GuardedResolver::new(policy))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
}

/// Check a URL whose host is an IP literal (resolvers never see those).
pub fn check_url(url: &Url, policy: AddressPolicy) -> Result<(), AddressRefused> {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ssrf::check(&ip.to_string(), ip.into(), policy),
        Some(url::Host::Ipv6(ip)) => ssrf::check(&format!("[{ip}]"), ip.into(), policy),
        Some(url::Host::Domain(name)) => ssrf::check_literal_host(name, policy),
        None => Ok(()),
    }
}

/// The [`AddressRefused`] somewhere in an error's chain, if any.
pub fn find_refusal<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a AddressRefused> {
    std::iter::successors(Some(err), |e| e.source()).find_map(|e| e.downcast_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ssrf::AddressClass;

    #[test]
    fn literal_urls_are_checked() {
        let p = AddressPolicy::PublicOnly;
        let url = |s: &str| Url::parse(s).expect("url");
        let err = check_url(&url("http://127.0.0.1:8080/x"), p).expect_err("loopback");
        assert_eq!(err.host, "127.0.0.1");
        let err = check_url(&url("http://[::ffff:127.0.0.1]:80/"), p).expect_err("mapped");
        assert_eq!(err.class, AddressClass::Loopback);
        // The URL parser normalises other IPv4 spellings to the literal.
        let err = check_url(&url("http://2130706433/"), p).expect_err("decimal loopback");
        assert_eq!(err.class, AddressClass::Loopback);
        let err = check_url(&url("http://0x7f.1/"), p).expect_err("hex loopback");
        assert_eq!(err.class, AddressClass::Loopback);
        assert!(check_url(&url("https://example.com/"), p).is_ok());
        assert!(check_url(&url("https://8.8.8.8/"), p).is_ok());
        let meta = check_url(
            &url("http://169.254.169.254/latest/meta-data/"),
            AddressPolicy::AllowPrivate,
        )
        .expect_err("metadata");
        assert_eq!(meta.class, AddressClass::CloudMetadata);
    }

    #[tokio::test]
    async fn resolver_drops_refused_addresses_of_names() {
        let strict = GuardedResolver::new(AddressPolicy::PublicOnly);
        let err = strict.resolve_host("localhost").await.expect_err("refused");
        let refused = find_refusal(err.as_ref()).expect("a refusal");
        assert_eq!(refused.class, AddressClass::Loopback);
        assert_eq!(refused.host, "localhost");
        let open = GuardedResolver::new(AddressPolicy::AllowPrivate);
        let addrs = open.resolve_host("localhost").await.expect("allowed");
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    #[tokio::test]
    async fn resolver_checks_names_that_are_addresses() {
        // getaddrinfo accepts old IPv4 spellings the URL parser may not have seen.
        let strict = GuardedResolver::new(AddressPolicy::PublicOnly);
        let err = strict.resolve_host("127.1").await.expect_err("refused");
        assert!(find_refusal(err.as_ref()).is_some(), "{err}");
    }
}
