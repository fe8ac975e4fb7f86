//! Settings of the browser flow and the URLs derived from the public URL.

use crate::oauth::{CALLBACK_PATH, CIMD_PATH};
use std::time::Duration;
use url::Url;

#[derive(Debug, Clone)]
pub struct FlowsConfig {
    /// Where browsers and identity providers reach the gateway (may carry a path prefix).
    pub public_url: Url,
    /// `client_name` of the Client ID Metadata Document.
    pub client_name: String,
    /// Upper bound for the completion hook.
    pub hook_timeout: Duration,
    /// What the Client ID Metadata Document says in `scope`.
    pub cimd_scope: CimdScope,
}

/// The `scope` field of our Client ID Metadata Document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CimdScope {
    /// Every scope configured on a server or requested by a flow so far.
    #[default]
    Auto,
    /// Exactly this space-separated list.
    Fixed(String),
    /// No `scope` field: the authorization server applies its own policy.
    Omit,
}

impl CimdScope {
    /// `auto`, `none`, or a space-separated scope list.
    pub fn parse(s: &str) -> Self {
        match s.trim() {
            "auto" => CimdScope::Auto,
            "none" | "" => CimdScope::Omit,
            list => CimdScope::Fixed(crate::store::normalize_scope(&[list])),
        }
    }
}

impl FlowsConfig {
    pub fn new(public_url: Url) -> Self {
        Self {
            public_url,
            client_name: "MCP OAuth Gateway".to_owned(),
            hook_timeout: Duration::from_secs(10),
            cimd_scope: CimdScope::Auto,
        }
    }

    /// `{public_url}{path}`, keeping any path prefix of the public URL.
    pub fn url_for(&self, path: &str) -> Url {
        let mut url = self.public_url.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}{path}"));
        url.set_query(None);
        url.set_fragment(None);
        url
    }

    /// The OAuth redirect URI.
    pub fn redirect_uri(&self) -> String {
        self.url_for(CALLBACK_PATH).to_string()
    }

    /// Our `client_id` as a public client: the URL of our Client ID Metadata Document.
    pub fn cimd_client_id(&self) -> String {
        self.url_for(CIMD_PATH).to_string()
    }

    /// The link handed to users: `/oauth/connect?flow=<id>`.
    pub fn connect_url(&self, flow: &str) -> Url {
        let mut url = self.url_for("/oauth/connect");
        url.query_pairs_mut().append_pair("flow", flow);
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cimd_scope_setting_parses() {
        assert_eq!(CimdScope::parse("auto"), CimdScope::Auto);
        assert_eq!(CimdScope::parse("none"), CimdScope::Omit);
        assert_eq!(
            CimdScope::parse(" b a  b "),
            CimdScope::Fixed("a b".to_owned())
        );
    }

    #[test]
    fn urls_keep_a_path_prefix_and_drop_trailing_slashes() {
        let cfg = FlowsConfig::new(Url::parse("https://gw.example.com/prefix/").expect("url"));
        assert_eq!(
            cfg.redirect_uri(),
            "https://gw.example.com/prefix/oauth/callback"
        );
        assert_eq!(
            cfg.cimd_client_id(),
            "https://gw.example.com/prefix/.well-known/oauth-client.json"
        );
        assert_eq!(
            cfg.connect_url("abc").as_str(),
            "https://gw.example.com/prefix/oauth/connect?flow=abc"
        );
        let root = FlowsConfig::new(Url::parse("http://127.0.0.1:8080").expect("url"));
        assert_eq!(root.redirect_uri(), "http://127.0.0.1:8080/oauth/callback");
    }
}
