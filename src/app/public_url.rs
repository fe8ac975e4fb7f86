//! The gateway's public URL: the one browsers and identity providers use (redirect URI, Client
//! ID Metadata Document, protected-resource metadata), checked before anything is served.

use std::net::{IpAddr, SocketAddr};
use url::Url;

/// The public URL: explicit, or `http://` + the listen address. Plain HTTP is accepted only on
/// loopback unless explicitly allowed, because browsers send the binding cookie and the IdP
/// sends the code to this URL.
pub fn public_url(
    explicit: Option<&Url>,
    local_addr: SocketAddr,
    allow_insecure_http: bool,
) -> Result<Url, String> {
    let url = match explicit {
        Some(u) => u.clone(),
        None => {
            if local_addr.ip().is_unspecified() {
                return Err(format!(
                    "listening on {local_addr} (all interfaces) needs --public-url: the URL browsers use to reach this gateway"
                ));
            }
            Url::parse(&format!("http://{local_addr}")).map_err(|e| e.to_string())?
        }
    };
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure_http || is_loopback_host(&url) => {}
        "http" => {
            return Err(format!(
                "public URL {url} uses plain HTTP on a non-loopback host; use https or pass --allow-insecure-http"
            ));
        }
        other => return Err(format!("public URL scheme {other} is not http or https")),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("public URL must not have a query or fragment".to_owned());
    }
    if url.cannot_be_a_base() || url.host_str().is_none() {
        return Err(format!("public URL {url} has no host"));
    }
    crate::http::check_base_path(&url)?;
    Ok(url)
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn derives_public_url_from_listener() {
        let u = public_url(None, addr("127.0.0.1:8080"), false).expect("url");
        assert_eq!(u.as_str(), "http://127.0.0.1:8080/");
    }

    #[test]
    fn refuses_all_interfaces_without_public_url() {
        assert!(public_url(None, addr("0.0.0.0:8080"), false).is_err());
    }

    #[test]
    fn plain_http_only_on_loopback_unless_allowed() {
        let ext = Url::parse("http://gw.example.com").expect("url");
        assert!(public_url(Some(&ext), addr("0.0.0.0:8080"), false).is_err());
        assert!(public_url(Some(&ext), addr("0.0.0.0:8080"), true).is_ok());
        let https = Url::parse("https://gw.example.com/base").expect("url");
        assert!(public_url(Some(&https), addr("0.0.0.0:8080"), false).is_ok());
        let local = Url::parse("http://localhost:9000").expect("url");
        assert!(public_url(Some(&local), addr("127.0.0.1:1"), false).is_ok());
        let query = Url::parse("https://gw.example.com/?a=1").expect("url");
        assert!(public_url(Some(&query), addr("0.0.0.0:8080"), false).is_err());
    }
}
