//! Building the authorization request (RFC 6749 §4.1.1 + PKCE S256 + RFC 8707 `resource`) and
//! choosing which scopes to ask for (MCP scope-selection rules). Pure functions.

use super::metadata::AuthServerMetadata;
use url::Url;

/// The scope that asks for a refresh token.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// Parameters of one authorization request.
#[derive(Debug, Clone, Copy)]
pub struct AuthorizeRequest<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    /// Opaque flow id; never anything identifying.
    pub state: &'a str,
    /// S256 challenge of the flow's verifier.
    pub code_challenge: &'a str,
    /// Omitted from the URL when empty.
    pub scopes: &'a [String],
    /// RFC 8707 resource indicator; `None` for servers that reject it.
    pub resource: Option<&'a str>,
    /// OIDC `prompt`. When `None` and `offline_access` is requested, `consent` is sent, because
    /// OpenID Connect Core §11 requires it for a refresh token to be issued.
    pub prompt: Option<&'a str>,
}

/// Query parameters this module sets (and `nonce`, which the browser sign-in appends); copies
/// of them already in the endpoint URL are dropped so no parameter appears twice (RFC 6749 §3.1).
const OWN_PARAMS: [&str; 10] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
    "scope",
    "resource",
    "prompt",
    "nonce",
];

/// The URL to send the browser to: the server's `authorization_endpoint` with its own query
/// kept, plus `response_type=code`, `client_id`, `redirect_uri`, `state`, `code_challenge`,
/// `code_challenge_method=S256`, `scope` (when not empty), `resource` (when given) and `prompt`.
pub fn authorization_url(md: &AuthServerMetadata, req: &AuthorizeRequest<'_>) -> Url {
    let mut url = md.authorization_endpoint.clone();
    url.set_fragment(None);
    let clashes = url
        .query_pairs()
        .any(|(k, _)| OWN_PARAMS.contains(&k.as_ref()));
    if clashes {
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !OWN_PARAMS.contains(&k.as_ref()))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.set_query(None);
        if !kept.is_empty() {
            url.query_pairs_mut().extend_pairs(kept);
        }
    }
    let scope = req.scopes.join(" ");
    let prompt = req.prompt.or_else(|| {
        req.scopes
            .iter()
            .any(|s| s == OFFLINE_ACCESS)
            .then_some("consent")
    });
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", req.client_id)
            .append_pair("redirect_uri", req.redirect_uri)
            .append_pair("state", req.state)
            .append_pair("code_challenge", req.code_challenge)
            .append_pair("code_challenge_method", "S256");
        if !scope.is_empty() {
            q.append_pair("scope", &scope);
        }
        if let Some(resource) = req.resource {
            q.append_pair("resource", resource);
        }
        if let Some(prompt) = prompt {
            q.append_pair("prompt", prompt);
        }
    }
    url
}

/// The scopes to request. The configured scopes plus the challenge's `scope` when that gives
/// anything; else the protected resource's `scopes_supported`; else none (the `scope`
/// parameter is then omitted and the server applies its default). `offline_access` is added
/// when the authorization server lists it — but only to a non-empty request, since asking for
/// `offline_access` alone would replace the server's default scopes with nothing useful.
/// Entries are split on whitespace, de-duplicated, first occurrence order kept.
pub fn select_scopes(
    challenge_scope: Option<&str>,
    configured: &[String],
    prm_scopes: &[String],
    as_scopes: &[String],
) -> Vec<String> {
    fn add(out: &mut Vec<String>, s: &str) {
        for part in s.split_whitespace() {
            if !out.iter().any(|o| o == part) {
                out.push(part.to_owned());
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    configured.iter().for_each(|s| add(&mut out, s));
    add(&mut out, challenge_scope.unwrap_or(""));
    if out.is_empty() {
        prm_scopes.iter().for_each(|s| add(&mut out, s));
    }
    if !out.is_empty() && as_scopes.iter().any(|s| s == OFFLINE_ACCESS) {
        add(&mut out, OFFLINE_ACCESS);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::oauth::metadata::{AuthServerMetadataDocument, validate_as_metadata};
    use std::collections::HashMap;

    fn md(endpoint: &str) -> AuthServerMetadata {
        let doc = AuthServerMetadataDocument {
            issuer: Some("https://idp.example.com".into()),
            authorization_endpoint: Some(endpoint.into()),
            token_endpoint: Some("https://idp.example.com/token".into()),
            code_challenge_methods_supported: Some(vec!["S256".into()]),
            ..Default::default()
        };
        validate_as_metadata("https://idp.example.com", &doc, false).unwrap()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn req<'a>(scopes: &'a [String], resource: Option<&'a str>) -> AuthorizeRequest<'a> {
        AuthorizeRequest {
            client_id: "https://gw.example.com/.well-known/oauth-client.json",
            redirect_uri: "https://gw.example.com/oauth/callback",
            state: "st&ate=1",
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            scopes,
            resource,
            prompt: None,
        }
    }

    fn params(u: &Url) -> HashMap<String, String> {
        u.query_pairs().into_owned().collect()
    }

    #[test]
    fn builds_all_parameters() {
        let scopes = s(&["mcp:tools", "files:read"]);
        let u = authorization_url(
            &md("https://idp.example.com/authorize"),
            &req(&scopes, Some("https://mcp.example.com/mcp")),
        );
        let p = params(&u);
        assert_eq!(u.path(), "/authorize");
        assert_eq!(p["response_type"], "code");
        assert_eq!(
            p["client_id"],
            "https://gw.example.com/.well-known/oauth-client.json"
        );
        assert_eq!(p["redirect_uri"], "https://gw.example.com/oauth/callback");
        assert_eq!(p["state"], "st&ate=1");
        assert_eq!(
            p["code_challenge"],
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(p["code_challenge_method"], "S256");
        assert_eq!(p["scope"], "mcp:tools files:read");
        assert_eq!(p["resource"], "https://mcp.example.com/mcp");
        assert!(!p.contains_key("prompt"));
        assert_eq!(u.query_pairs().count(), 8);
    }

    #[test]
    fn omits_empty_scope_and_absent_resource() {
        let u = authorization_url(&md("https://idp.example.com/authorize"), &req(&[], None));
        let p = params(&u);
        assert!(!p.contains_key("scope"));
        assert!(!p.contains_key("resource"));
        assert_eq!(u.query_pairs().count(), 6);
    }

    #[test]
    fn keeps_existing_query_and_drops_clashing_params() {
        let u = authorization_url(
            &md("https://idp.example.com/authorize?tenant=a%20b&x=1"),
            &req(&[], None),
        );
        assert!(
            u.as_str()
                .starts_with("https://idp.example.com/authorize?tenant=a%20b&x=1&")
        );
        let u = authorization_url(
            &md("https://idp.example.com/authorize?tenant=a&client_id=evil&state=x"),
            &req(&[], None),
        );
        let pairs: Vec<(String, String)> = u.query_pairs().into_owned().collect();
        assert_eq!(pairs[0], ("tenant".into(), "a".into()));
        assert_eq!(pairs.iter().filter(|(k, _)| k == "client_id").count(), 1);
        assert_eq!(pairs.iter().filter(|(k, _)| k == "state").count(), 1);
        assert_eq!(params(&u)["state"], "st&ate=1");
    }

    #[test]
    fn offline_access_implies_consent_prompt_unless_given() {
        let scopes = s(&["mcp:tools", "offline_access"]);
        let u = authorization_url(&md("https://idp.example.com/a"), &req(&scopes, None));
        assert_eq!(params(&u)["prompt"], "consent");
        let mut r = req(&scopes, None);
        r.prompt = Some("login consent");
        let u = authorization_url(&md("https://idp.example.com/a"), &r);
        assert_eq!(params(&u)["prompt"], "login consent");
    }

    #[test]
    fn scope_selection() {
        let none: [String; 0] = [];
        // Configured + challenge, de-duplicated in order.
        assert_eq!(
            select_scopes(Some("b c"), &s(&["a", "b"]), &s(&["p"]), &none),
            s(&["a", "b", "c"])
        );
        // Challenge alone.
        assert_eq!(
            select_scopes(Some("x"), &none, &s(&["p"]), &none),
            s(&["x"])
        );
        // Neither: PRM scopes.
        assert_eq!(
            select_scopes(None, &none, &s(&["p", "q", "p"]), &none),
            s(&["p", "q"])
        );
        assert_eq!(
            select_scopes(Some("  "), &none, &s(&["p"]), &none),
            s(&["p"])
        );
        // Nothing at all: empty (scope omitted), even if the AS offers offline_access.
        assert!(select_scopes(None, &none, &none, &s(&["offline_access"])).is_empty());
        // offline_access added once, only when the AS lists it.
        assert_eq!(
            select_scopes(None, &s(&["a"]), &none, &s(&["a", "offline_access"])),
            s(&["a", "offline_access"])
        );
        assert_eq!(
            select_scopes(
                Some("offline_access a"),
                &none,
                &none,
                &s(&["offline_access"])
            ),
            s(&["offline_access", "a"])
        );
        assert_eq!(
            select_scopes(None, &s(&["a"]), &none, &s(&["a"])),
            s(&["a"])
        );
    }
}
