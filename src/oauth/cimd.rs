//! The gateway's Client ID Metadata Document: with CIMD the `client_id` is the HTTPS URL of this
//! JSON document, served by the gateway itself, so no registration at each authorization server
//! is needed. The gateway is a public client (`token_endpoint_auth_method: none`; PKCE protects
//! the code).

use serde::Serialize;
use url::Url;

/// Path of the document below the gateway's public URL.
pub const CIMD_PATH: &str = "/.well-known/oauth-client.json";
/// Path of the redirect URI below the gateway's public URL.
pub const CALLBACK_PATH: &str = "/oauth/callback";
/// Name shown by authorization servers on their consent pages.
pub const CLIENT_NAME: &str = "mcp-oauth-operator";

/// The document served at [`CIMD_PATH`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientMetadataDocument {
    pub client_id: String,
    pub client_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    pub token_endpoint_auth_method: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
    pub application_type: String,
}

impl ClientMetadataDocument {
    /// The document for a gateway reachable at `public_url`, asking for at most `scope`.
    pub fn new(public_url: &Url, scope: &str) -> Self {
        Self {
            client_id: client_id_for(public_url),
            client_name: CLIENT_NAME.to_owned(),
            client_uri: None,
            redirect_uris: vec![redirect_uri_for(public_url)],
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            response_types: vec!["code".into()],
            token_endpoint_auth_method: "none".into(),
            scope: scope.split_whitespace().collect::<Vec<_>>().join(" "),
            application_type: "web".into(),
        }
    }
}

/// The scopes of a flow that may be added to the document's `scope` (`--cimd-scope auto`):
/// those the resource's author configured, `offline_access`, and those the flow's authorization
/// server advertises in its own metadata (`scopes_supported`) — an authorization server that
/// checks requests against this document must find the scopes it is asked for. A scope that
/// only the remote MCP server names (its `WWW-Authenticate` challenge, its protected-resource
/// metadata's `scopes_supported`) is left out: a remote server must not be able to rewrite what
/// the gateway's client says about itself to every authorization server.
pub fn advertisable_scopes(
    requested: &[String],
    configured: &[String],
    server_supported: &[String],
) -> Vec<String> {
    let vouched: Vec<&str> = configured
        .iter()
        .chain(server_supported)
        .flat_map(|s| s.split_whitespace())
        .collect();
    requested
        .iter()
        .flat_map(|s| s.split_whitespace())
        .filter(|s| *s == crate::oauth::OFFLINE_ACCESS || vouched.contains(s))
        .map(str::to_owned)
        .collect()
}

/// Our `client_id` under CIMD: the document's URL.
pub fn client_id_for(public_url: &Url) -> String {
    below(public_url, CIMD_PATH)
}

/// Our redirect URI.
pub fn redirect_uri_for(public_url: &Url) -> String {
    below(public_url, CALLBACK_PATH)
}

/// `path` appended to the public URL's own path (trailing `/` dropped), without query or
/// fragment, so a gateway published under a path prefix still works.
fn below(public_url: &Url, path: &str) -> String {
    let mut u = public_url.clone();
    u.set_query(None);
    u.set_fragment(None);
    // Every trailing `/`, as the router and the other links do.
    let base = u.path().trim_end_matches('/').to_owned();
    u.set_path(&format!("{base}{path}"));
    u.to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_shape() {
        let public = Url::parse("https://gw.example.com").unwrap();
        let doc = ClientMetadataDocument::new(&public, " openid  mcp:tools ");
        assert_eq!(
            serde_json::to_value(&doc).unwrap(),
            json!({
                "client_id": "https://gw.example.com/.well-known/oauth-client.json",
                "client_name": "mcp-oauth-operator",
                "redirect_uris": ["https://gw.example.com/oauth/callback"],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
                "scope": "openid mcp:tools",
                "application_type": "web",
            })
        );
        let doc = ClientMetadataDocument::new(&public, "");
        assert!(serde_json::to_value(&doc).unwrap().get("scope").is_none());
    }

    #[test]
    fn only_configured_or_authorization_server_scopes_and_offline_access_are_advertisable() {
        let requested: Vec<String> = ["mcp:tools junk:1", "offline_access", "admin", "<script>"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            advertisable_scopes(&requested, &["mcp:tools".to_owned()], &[]),
            ["mcp:tools", "offline_access"]
        );
        assert_eq!(
            advertisable_scopes(&requested, &[], &[]),
            ["offline_access"]
        );
        let as_supported = ["openid", "mcp:tools", "offline_access"].map(String::from);
        assert_eq!(
            advertisable_scopes(&requested, &[], &as_supported),
            ["mcp:tools", "offline_access"],
            "the authorization server vouches for mcp:tools, never for the junk"
        );
    }

    #[test]
    fn urls_under_a_path_prefix() {
        let public = Url::parse("https://gw.example.com/prefix/?q=1#f").unwrap();
        assert_eq!(
            client_id_for(&public),
            "https://gw.example.com/prefix/.well-known/oauth-client.json"
        );
        assert_eq!(
            redirect_uri_for(&public),
            "https://gw.example.com/prefix/oauth/callback"
        );
        let loopback = Url::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            client_id_for(&loopback),
            "http://127.0.0.1:8080/.well-known/oauth-client.json"
        );
    }
}
