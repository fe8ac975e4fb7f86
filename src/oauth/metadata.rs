//! RFC 9728 protected-resource metadata and RFC 8414 / OIDC authorization-server metadata: the
//! wire types, the candidate URLs to fetch them from (in the order the MCP specification gives),
//! and the pure checks a document must pass before the gateway acts on it (issuer equality,
//! PKCE S256, HTTPS endpoints, resource equality). Documents come from servers chosen by
//! resource authors or remote MCP servers, so nothing in them is trusted unchecked.

use serde::{Deserialize, Deserializer, Serialize};
use url::{Host, Url};

/// RFC 9728 well-known path.
pub const PRM_WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";
/// RFC 8414 well-known path.
pub const OAUTH_AS_WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";
/// OpenID Connect Discovery well-known path.
pub const OIDC_WELL_KNOWN: &str = "/.well-known/openid-configuration";

/// Longest remote-supplied value echoed in an error message.
const MAX_ECHO: usize = 200;

/// RFC 9728 protected resource metadata, as served. Unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedResourceMetadata {
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub authorization_servers: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub scopes_supported: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub bearer_methods_supported: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
}

/// RFC 8414 / OIDC authorization server metadata, as served (unvalidated). Unknown fields are
/// ignored. Turned into [`AuthServerMetadata`] by [`validate_as_metadata`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthServerMetadataDocument {
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint: Option<String>,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    #[serde(default)]
    pub registration_endpoint: Option<String>,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    #[serde(default)]
    pub scopes_supported: Option<Vec<String>>,
    #[serde(default)]
    pub response_types_supported: Option<Vec<String>>,
    #[serde(default)]
    pub grant_types_supported: Option<Vec<String>>,
    /// Absent means "no PKCE support": the MCP specification says to refuse such a server.
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: Option<bool>,
    #[serde(default)]
    pub client_id_metadata_document_supported: Option<bool>,
}

/// Authorization server metadata that passed [`validate_as_metadata`]: the issuer equals the one
/// asked for, S256 is supported, the endpoints are absolute and secure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthServerMetadata {
    pub issuer: String,
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    pub revocation_endpoint: Option<Url>,
    pub registration_endpoint: Option<Url>,
    pub jwks_uri: Option<Url>,
    pub scopes_supported: Vec<String>,
    pub response_types_supported: Vec<String>,
    /// As listed; empty when the server did not say (RFC 8414 default: code and implicit).
    pub grant_types_supported: Vec<String>,
    pub code_challenge_methods_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// RFC 9207: whether callbacks must carry `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    /// Whether a Client ID Metadata Document URL may be used as `client_id`.
    pub client_id_metadata_document_supported: bool,
}

impl AuthServerMetadata {
    /// Whether the server lists `scope` in `scopes_supported`.
    pub fn supports_scope(&self, scope: &str) -> bool {
        self.scopes_supported.iter().any(|s| s == scope)
    }

    /// Whether the refresh grant is advertised (or not ruled out by an absent list).
    pub fn may_support_refresh(&self) -> bool {
        self.grant_types_supported.is_empty()
            || self
                .grant_types_supported
                .iter()
                .any(|g| g == "refresh_token")
    }
}

/// Why a metadata document (or a URL in one) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata document lacks `{0}`")]
    MissingField(&'static str),
    #[error("metadata issuer `{found}` does not equal the expected issuer `{expected}`")]
    IssuerMismatch { expected: String, found: String },
    #[error("issuer `{issuer}` is not valid: {reason}")]
    InvalidIssuer {
        issuer: String,
        reason: &'static str,
    },
    #[error(
        "the authorization server does not advertise PKCE S256 (code_challenge_methods_supported)"
    )]
    PkceS256Unsupported,
    #[error("the authorization server does not support response_type `code`")]
    CodeFlowUnsupported,
    #[error("`{field}` is not a valid URL: {reason}")]
    InvalidEndpoint {
        field: &'static str,
        reason: &'static str,
    },
    #[error("`{field}` must use https (http is allowed only for loopback hosts)")]
    InsecureEndpoint { field: &'static str },
    #[error("protected resource metadata names resource `{found}`, expected `{expected}`")]
    ResourceMismatch { expected: String, found: String },
    #[error("protected resource metadata lists no authorization server")]
    NoAuthorizationServers,
}

impl MetadataError {
    /// A stable CamelCase reason, for status conditions and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            MetadataError::MissingField(_) => "MetadataIncomplete",
            MetadataError::IssuerMismatch { .. } => "IssuerMismatch",
            MetadataError::InvalidIssuer { .. } => "InvalidIssuer",
            MetadataError::PkceS256Unsupported => "PkceS256Unsupported",
            MetadataError::CodeFlowUnsupported => "CodeFlowUnsupported",
            MetadataError::InvalidEndpoint { .. } => "InvalidEndpoint",
            MetadataError::InsecureEndpoint { .. } => "InsecureEndpoint",
            MetadataError::ResourceMismatch { .. } => "ResourceMismatch",
            MetadataError::NoAuthorizationServers => "NoAuthorizationServers",
        }
    }
}

/// Checks an authorization server metadata document fetched for `expected_issuer`:
/// `issuer` equal to it character for character (RFC 8414 §3.3, no normalisation), S256 listed
/// (an absent list is a refusal), `code` among the response types when they are listed, and
/// every endpoint absolute and https (http only for loopback hosts or with
/// `allow_insecure_http`).
pub fn validate_as_metadata(
    expected_issuer: &str,
    doc: &AuthServerMetadataDocument,
    allow_insecure_http: bool,
) -> Result<AuthServerMetadata, MetadataError> {
    let found = doc
        .issuer
        .as_deref()
        .ok_or(MetadataError::MissingField("issuer"))?;
    if found != expected_issuer {
        return Err(MetadataError::IssuerMismatch {
            expected: clip(expected_issuer),
            found: clip(found),
        });
    }
    parse_issuer(expected_issuer, allow_insecure_http)?;
    let methods = doc
        .code_challenge_methods_supported
        .as_deref()
        .unwrap_or_default();
    if !methods.iter().any(|m| m == "S256") {
        return Err(MetadataError::PkceS256Unsupported);
    }
    if let Some(types) = &doc.response_types_supported
        && !types.iter().any(|t| t == "code")
    {
        return Err(MetadataError::CodeFlowUnsupported);
    }
    let required = |field: &'static str, v: &Option<String>| {
        let raw = v.as_deref().ok_or(MetadataError::MissingField(field))?;
        check_endpoint(field, raw, allow_insecure_http)
    };
    let optional = |field: &'static str, v: &Option<String>| {
        v.as_deref()
            .map(|raw| check_endpoint(field, raw, allow_insecure_http))
            .transpose()
    };
    Ok(AuthServerMetadata {
        issuer: found.to_owned(),
        authorization_endpoint: required("authorization_endpoint", &doc.authorization_endpoint)?,
        token_endpoint: required("token_endpoint", &doc.token_endpoint)?,
        revocation_endpoint: optional("revocation_endpoint", &doc.revocation_endpoint)?,
        registration_endpoint: optional("registration_endpoint", &doc.registration_endpoint)?,
        jwks_uri: optional("jwks_uri", &doc.jwks_uri)?,
        scopes_supported: doc.scopes_supported.clone().unwrap_or_default(),
        response_types_supported: doc.response_types_supported.clone().unwrap_or_default(),
        grant_types_supported: doc.grant_types_supported.clone().unwrap_or_default(),
        code_challenge_methods_supported: methods.to_vec(),
        token_endpoint_auth_methods_supported: doc
            .token_endpoint_auth_methods_supported
            .clone()
            .unwrap_or_default(),
        authorization_response_iss_parameter_supported: doc
            .authorization_response_iss_parameter_supported
            .unwrap_or(false),
        client_id_metadata_document_supported: doc
            .client_id_metadata_document_supported
            .unwrap_or(false),
    })
}

/// Checks protected resource metadata against the resource the gateway uses (RFC 9728 §3.3:
/// otherwise a server could borrow another resource's metadata). URLs are compared parsed; a
/// single trailing-slash difference is tolerated. At least one authorization server is needed.
pub fn validate_prm(
    doc: &ProtectedResourceMetadata,
    expected_resource: &str,
) -> Result<(), MetadataError> {
    let found = doc
        .resource
        .as_deref()
        .ok_or(MetadataError::MissingField("resource"))?;
    if !same_resource(expected_resource, found) {
        return Err(MetadataError::ResourceMismatch {
            expected: clip(expected_resource),
            found: clip(found),
        });
    }
    if doc.authorization_servers.is_empty() {
        return Err(MetadataError::NoAuthorizationServers);
    }
    Ok(())
}

/// Parses an issuer identifier: absolute http(s) URL without query or fragment, https unless
/// loopback or `allow_insecure_http`.
pub fn parse_issuer(issuer: &str, allow_insecure_http: bool) -> Result<Url, MetadataError> {
    let invalid = |reason| MetadataError::InvalidIssuer {
        issuer: clip(issuer),
        reason,
    };
    let url = Url::parse(issuer).map_err(|_| invalid("not an absolute URL"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("must not have a query or fragment"));
    }
    check_scheme("issuer", &url, allow_insecure_http)?;
    Ok(url)
}

/// Parses an endpoint URL from a metadata document: absolute, no fragment, https unless
/// loopback or `allow_insecure_http`.
pub fn check_endpoint(
    field: &'static str,
    raw: &str,
    allow_insecure_http: bool,
) -> Result<Url, MetadataError> {
    let url = Url::parse(raw).map_err(|_| MetadataError::InvalidEndpoint {
        field,
        reason: "not an absolute URL",
    })?;
    if url.fragment().is_some() {
        return Err(MetadataError::InvalidEndpoint {
            field,
            reason: "must not have a fragment",
        });
    }
    check_scheme(field, &url, allow_insecure_http)?;
    Ok(url)
}

fn check_scheme(
    field: &'static str,
    url: &Url,
    allow_insecure_http: bool,
) -> Result<(), MetadataError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_insecure_http || is_loopback(url) => Ok(()),
        "http" => Err(MetadataError::InsecureEndpoint { field }),
        _ => Err(MetadataError::InvalidEndpoint {
            field,
            reason: "scheme must be https",
        }),
    }
}

/// Whether the URL's host is a loopback address (or `localhost`).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Candidate RFC 9728 metadata URLs for a resource, in order:
/// `{origin}/.well-known/oauth-protected-resource{path}`, then the root form.
pub fn prm_candidates(server_url: &Url) -> Vec<Url> {
    let path = server_url.path().trim_end_matches('/');
    let mut with_path = server_url.clone();
    with_path.set_fragment(None);
    with_path.set_path(&format!("{PRM_WELL_KNOWN}{path}"));
    let mut root = server_url.clone();
    root.set_fragment(None);
    root.set_query(None);
    root.set_path(PRM_WELL_KNOWN);
    dedup(vec![with_path, root])
}

/// Candidate metadata URLs for an issuer, in the MCP order. With a path `/t`:
/// `/.well-known/oauth-authorization-server/t`, `/.well-known/openid-configuration/t`,
/// `/t/.well-known/openid-configuration`; without: the first two at the root.
pub fn as_metadata_candidates(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    let at = |p: String| {
        let mut u = issuer.clone();
        u.set_query(None);
        u.set_fragment(None);
        u.set_path(&p);
        u
    };
    if path.is_empty() {
        vec![
            at(OAUTH_AS_WELL_KNOWN.to_owned()),
            at(OIDC_WELL_KNOWN.to_owned()),
        ]
    } else {
        vec![
            at(format!("{OAUTH_AS_WELL_KNOWN}{path}")),
            at(format!("{OIDC_WELL_KNOWN}{path}")),
            at(format!("{path}{OIDC_WELL_KNOWN}")),
        ]
    }
}

fn dedup(urls: Vec<Url>) -> Vec<Url> {
    let mut out: Vec<Url> = Vec::with_capacity(urls.len());
    for u in urls {
        if !out.contains(&u) {
            out.push(u);
        }
    }
    out
}

fn same_resource(expected: &str, found: &str) -> bool {
    match (Url::parse(expected), Url::parse(found)) {
        (Ok(a), Ok(b)) => a == b || strip_one_slash(&a) == b || strip_one_slash(&b) == a,
        _ => expected == found,
    }
}

fn strip_one_slash(u: &Url) -> Url {
    let mut out = u.clone();
    if let Some(p) = u.path().strip_suffix('/')
        && !p.is_empty()
    {
        out.set_path(p);
    }
    out
}

/// A remote-supplied value made safe to echo: control characters replaced, length bounded.
pub(crate) fn clip(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_ECHO)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if s.chars().count() > MAX_ECHO {
        out.push('…');
    }
    out
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn strs(v: &[Url]) -> Vec<&str> {
        v.iter().map(Url::as_str).collect()
    }

    fn good_doc() -> AuthServerMetadataDocument {
        serde_json::from_value(json!({
            "issuer": "https://idp.example.com",
            "authorization_endpoint": "https://idp.example.com/auth?tenant=a",
            "token_endpoint": "https://idp.example.com/token",
            "revocation_endpoint": "https://idp.example.com/revoke",
            "response_types_supported": ["code", "id_token"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "scopes_supported": ["openid", "offline_access"],
            "authorization_response_iss_parameter_supported": true,
            "some_future_field": {"x": 1}
        }))
        .unwrap()
    }

    #[test]
    fn valid_as_metadata_is_accepted() {
        let md = validate_as_metadata("https://idp.example.com", &good_doc(), false).unwrap();
        assert_eq!(md.token_endpoint.as_str(), "https://idp.example.com/token");
        assert!(md.authorization_response_iss_parameter_supported);
        assert!(!md.client_id_metadata_document_supported);
        assert!(md.supports_scope("offline_access"));
        assert!(md.may_support_refresh());
    }

    #[test]
    fn issuer_must_match_exactly() {
        let err = validate_as_metadata("https://idp.example.com/", &good_doc(), false).unwrap_err();
        assert_eq!(
            err,
            MetadataError::IssuerMismatch {
                expected: "https://idp.example.com/".into(),
                found: "https://idp.example.com".into()
            }
        );
        let err = validate_as_metadata("https://IDP.example.com", &good_doc(), false).unwrap_err();
        assert_eq!(err.reason(), "IssuerMismatch");
        let mut doc = good_doc();
        doc.issuer = None;
        assert_eq!(
            validate_as_metadata("https://idp.example.com", &doc, false),
            Err(MetadataError::MissingField("issuer"))
        );
    }

    #[test]
    fn s256_is_required() {
        let mut doc = good_doc();
        doc.code_challenge_methods_supported = None;
        assert_eq!(
            validate_as_metadata("https://idp.example.com", &doc, false),
            Err(MetadataError::PkceS256Unsupported)
        );
        doc.code_challenge_methods_supported = Some(vec!["plain".into()]);
        assert_eq!(
            validate_as_metadata("https://idp.example.com", &doc, false),
            Err(MetadataError::PkceS256Unsupported)
        );
    }

    #[test]
    fn code_response_type_required_when_listed() {
        let mut doc = good_doc();
        doc.response_types_supported = Some(vec!["token".into()]);
        assert_eq!(
            validate_as_metadata("https://idp.example.com", &doc, false),
            Err(MetadataError::CodeFlowUnsupported)
        );
        doc.response_types_supported = None;
        assert!(validate_as_metadata("https://idp.example.com", &doc, false).is_ok());
    }

    #[test]
    fn endpoints_must_be_present_absolute_and_secure() {
        let mut doc = good_doc();
        doc.token_endpoint = None;
        assert_eq!(
            validate_as_metadata("https://idp.example.com", &doc, false),
            Err(MetadataError::MissingField("token_endpoint"))
        );
        let mut doc = good_doc();
        doc.authorization_endpoint = Some("/auth".into());
        assert!(matches!(
            validate_as_metadata("https://idp.example.com", &doc, false),
            Err(MetadataError::InvalidEndpoint {
                field: "authorization_endpoint",
                ..
            })
        ));
        let mut doc = good_doc();
        doc.token_endpoint = Some("http://idp.example.com/token".into());
        assert_eq!(
            validate_as_metadata("https://idp.example.com", &doc, false),
            Err(MetadataError::InsecureEndpoint {
                field: "token_endpoint"
            })
        );
        assert!(validate_as_metadata("https://idp.example.com", &doc, true).is_ok());
        let mut doc = good_doc();
        doc.revocation_endpoint = Some("javascript:alert(1)".into());
        assert!(matches!(
            validate_as_metadata("https://idp.example.com", &doc, false),
            Err(MetadataError::InvalidEndpoint {
                field: "revocation_endpoint",
                ..
            })
        ));
    }

    #[test]
    fn http_allowed_for_loopback_only() {
        let doc: AuthServerMetadataDocument = serde_json::from_value(json!({
            "issuer": "http://127.0.0.1:5556",
            "authorization_endpoint": "http://127.0.0.1:5556/auth",
            "token_endpoint": "http://localhost:5556/token",
            "code_challenge_methods_supported": ["S256"],
        }))
        .unwrap();
        assert!(validate_as_metadata("http://127.0.0.1:5556", &doc, false).is_ok());
        let doc = AuthServerMetadataDocument {
            issuer: Some("http://idp.internal".into()),
            ..doc
        };
        assert_eq!(
            validate_as_metadata("http://idp.internal", &doc, false),
            Err(MetadataError::InsecureEndpoint { field: "issuer" })
        );
        assert!(is_loopback(&url("http://[::1]:80/")));
        assert!(!is_loopback(&url("http://10.0.0.1/")));
    }

    #[test]
    fn nulls_and_unknown_fields_are_tolerated() {
        let prm: ProtectedResourceMetadata = serde_json::from_value(json!({
            "resource": "https://mcp.example.com/mcp",
            "authorization_servers": ["https://idp.example.com"],
            "scopes_supported": null,
            "x": true
        }))
        .unwrap();
        assert!(prm.scopes_supported.is_empty());
        assert!(validate_prm(&prm, "https://mcp.example.com/mcp").is_ok());
    }

    #[test]
    fn prm_resource_comparison() {
        let prm = |r: &str| ProtectedResourceMetadata {
            resource: Some(r.into()),
            authorization_servers: vec!["https://idp".into()],
            ..Default::default()
        };
        let ok = |expected: &str, found: &str| validate_prm(&prm(found), expected).is_ok();
        assert!(ok(
            "https://mcp.example.com/mcp",
            "https://mcp.example.com/mcp"
        ));
        assert!(ok(
            "https://mcp.example.com/mcp",
            "https://mcp.example.com/mcp/"
        ));
        assert!(ok(
            "https://mcp.example.com/mcp/",
            "https://mcp.example.com/mcp"
        ));
        assert!(ok(
            "https://MCP.example.com:443/mcp",
            "https://mcp.example.com/mcp"
        ));
        assert!(ok("https://mcp.example.com", "https://mcp.example.com/"));
        assert!(!ok(
            "https://mcp.example.com/mcp",
            "https://mcp.example.com/mcp//"
        ));
        assert!(!ok(
            "https://mcp.example.com/mcp",
            "https://mcp.example.com/other"
        ));
        assert!(!ok(
            "https://mcp.example.com/mcp",
            "https://evil.example.com/mcp"
        ));
        assert!(!ok(
            "https://mcp.example.com/mcp",
            "http://mcp.example.com/mcp"
        ));
        assert!(!ok(
            "https://mcp.example.com/mcp",
            "https://mcp.example.com/mcp?x=1"
        ));
        let err = validate_prm(&prm("https://evil/mcp"), "https://mcp/mcp").unwrap_err();
        assert_eq!(err.reason(), "ResourceMismatch");
        let none = ProtectedResourceMetadata {
            authorization_servers: vec![],
            ..prm("https://mcp/mcp")
        };
        assert_eq!(
            validate_prm(&none, "https://mcp/mcp"),
            Err(MetadataError::NoAuthorizationServers)
        );
        assert_eq!(
            validate_prm(&ProtectedResourceMetadata::default(), "https://mcp/mcp"),
            Err(MetadataError::MissingField("resource"))
        );
    }

    #[test]
    fn prm_candidate_urls() {
        assert_eq!(
            strs(&prm_candidates(&url("https://mcp.example.com/mcp"))),
            [
                "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
                "https://mcp.example.com/.well-known/oauth-protected-resource",
            ]
        );
        assert_eq!(
            strs(&prm_candidates(&url("http://127.0.0.1:5557/a/b/"))),
            [
                "http://127.0.0.1:5557/.well-known/oauth-protected-resource/a/b",
                "http://127.0.0.1:5557/.well-known/oauth-protected-resource",
            ]
        );
        for root in ["https://mcp.example.com", "https://mcp.example.com/"] {
            assert_eq!(
                strs(&prm_candidates(&url(root))),
                ["https://mcp.example.com/.well-known/oauth-protected-resource"]
            );
        }
    }

    #[test]
    fn as_candidate_urls_follow_mcp_order() {
        assert_eq!(
            strs(&as_metadata_candidates(&url(
                "https://idp.example.com/tenant1"
            ))),
            [
                "https://idp.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://idp.example.com/.well-known/openid-configuration/tenant1",
                "https://idp.example.com/tenant1/.well-known/openid-configuration",
            ]
        );
        for root in ["https://idp.example.com", "https://idp.example.com/"] {
            assert_eq!(
                strs(&as_metadata_candidates(&url(root))),
                [
                    "https://idp.example.com/.well-known/oauth-authorization-server",
                    "https://idp.example.com/.well-known/openid-configuration",
                ]
            );
        }
        assert_eq!(
            strs(&as_metadata_candidates(&url(
                "https://idp.example.com/a/b/"
            ))),
            [
                "https://idp.example.com/.well-known/oauth-authorization-server/a/b",
                "https://idp.example.com/.well-known/openid-configuration/a/b",
                "https://idp.example.com/a/b/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn issuer_parsing() {
        assert!(parse_issuer("https://idp.example.com/t", false).is_ok());
        assert!(matches!(
            parse_issuer("https://idp.example.com/?x=1", false),
            Err(MetadataError::InvalidIssuer { .. })
        ));
        assert!(matches!(
            parse_issuer("idp.example.com", false),
            Err(MetadataError::InvalidIssuer { .. })
        ));
        assert_eq!(
            parse_issuer("http://idp.example.com", false),
            Err(MetadataError::InsecureEndpoint { field: "issuer" })
        );
    }

    #[test]
    fn echoed_values_are_clipped() {
        let long = "a".repeat(500) + "\n";
        let c = clip(&long);
        assert_eq!(c.chars().count(), MAX_ECHO + 1);
        assert!(!c.contains('\n'));
    }
}

#[cfg(test)]
mod proptests;
