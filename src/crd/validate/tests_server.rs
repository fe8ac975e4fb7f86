//! Rules of `validate_server`, each with a passing and a failing case.

use secrecy::ExposeSecret;
use serde_json::json;

use super::test_support::{Secrets, fields_and_reasons};
use super::{reason, validate_server};
use crate::crd::RemoteMCPServer;
use crate::registry::{AuthSettings, ClientAuthMethod, ClientIdentity};

fn server(spec: serde_json::Value) -> RemoteMCPServer {
    server_in(Some("team-a"), spec)
}

fn server_in(ns: Option<&str>, spec: serde_json::Value) -> RemoteMCPServer {
    let mut meta = json!({"name": "github", "generation": 3});
    if let Some(ns) = ns {
        meta["namespace"] = json!(ns);
    }
    serde_json::from_value(json!({
        "apiVersion": "mcpoauth.dev/v1alpha1",
        "kind": "RemoteMCPServer",
        "metadata": meta,
        "spec": spec,
    }))
    .expect("fixture parses")
}

fn errors(obj: &RemoteMCPServer, secrets: &Secrets) -> Vec<(String, &'static str)> {
    let errs = validate_server(obj, secrets).expect_err("should be invalid");
    fields_and_reasons(&errs)
        .into_iter()
        .map(|(f, r)| (f.to_owned(), r))
        .collect()
}

#[test]
fn minimal_server_defaults_to_oauth_with_cimd_and_url_as_resource() {
    let obj = server(json!({"url": "https://mcp.example.com/mcp"}));
    let reg = validate_server(&obj, &Secrets::default()).expect("valid");
    assert_eq!(reg.key.to_string(), "team-a/github");
    assert_eq!(reg.generation, 3);
    assert_eq!(reg.url.as_str(), "https://mcp.example.com/mcp");
    let AuthSettings::OAuth(o) = reg.auth else {
        panic!("expected oauth, got {}", reg.auth.mode_name())
    };
    assert_eq!(o.resource, "https://mcp.example.com/mcp");
    assert!(o.send_resource);
    assert!(o.issuer.is_none());
    assert!(matches!(o.client, ClientIdentity::Cimd));
}

#[test]
fn namespace_defaults_to_default() {
    let obj = server_in(
        None,
        json!({"url": "http://127.0.0.1:3001/mcp", "auth": {"mode": "none"}}),
    );
    let reg = validate_server(&obj, &Secrets::default()).expect("valid");
    assert_eq!(reg.key.to_string(), "default/github");
    assert!(matches!(reg.auth, AuthSettings::None));
}

#[test]
fn missing_name_is_reported() {
    let mut obj = server(json!({"url": "https://mcp.example.com/mcp"}));
    obj.metadata.name = None;
    assert_eq!(
        errors(&obj, &Secrets::default()),
        [("metadata.name".to_owned(), reason::MISSING_NAME)]
    );
}

#[test]
fn bad_urls_are_reported_per_field() {
    for url in [
        "mcp.example.com/mcp",
        "ftp://mcp.example.com",
        "https://u:p@mcp.example.com",
        "https://mcp.example.com/#x",
    ] {
        let obj = server(json!({"url": url}));
        assert_eq!(
            errors(&obj, &Secrets::default()),
            [("spec.url".to_owned(), reason::INVALID_URL)],
            "{url}"
        );
    }
}

#[test]
fn oauth_issuer_and_resource_are_checked_and_kept_verbatim() {
    let obj = server(
        json!({"url": "https://mcp.example.com/mcp", "auth": {"oauth": {
        "issuer": "https://idp.example.com", "resource": "https://mcp.example.com", "scopes": ["files:read"],
        "sendResourceParameter": false}}}),
    );
    let reg = validate_server(&obj, &Secrets::default()).expect("valid");
    let AuthSettings::OAuth(o) = reg.auth else {
        panic!("expected oauth")
    };
    // No trailing slash added: both are compared by exact string equality downstream.
    assert_eq!(o.issuer.as_deref(), Some("https://idp.example.com"));
    assert_eq!(o.resource, "https://mcp.example.com");
    assert_eq!(o.scopes, ["files:read"]);
    assert!(!o.send_resource);

    let bad = server(
        json!({"url": "https://mcp.example.com/mcp", "auth": {"oauth": {
        "issuer": "https://idp.example.com?tenant=1", "resource": "https://mcp.example.com/#frag"}}}),
    );
    assert_eq!(
        errors(&bad, &Secrets::default()),
        [
            ("spec.auth.oauth.issuer".to_owned(), reason::INVALID_URL),
            ("spec.auth.oauth.resource".to_owned(), reason::INVALID_URL)
        ]
    );
}

#[test]
fn a_resource_on_another_origin_is_refused() {
    // A namespace's author cannot have users' tokens for someone else's server issued to the
    // gateway and sent to theirs.
    let obj = server(
        json!({"url": "https://thief.example.com/mcp", "auth": {"mode": "oauth", "oauth": {
        "resource": "https://victim.example.com/mcp"}}}),
    );
    assert_eq!(
        errors(&obj, &Secrets::default()),
        vec![(
            "spec.auth.oauth.resource".to_owned(),
            reason::RESOURCE_ON_ANOTHER_ORIGIN
        )]
    );
    let same = server(
        json!({"url": "https://mcp.example.com/v2/mcp", "auth": {"mode": "oauth", "oauth": {
        "resource": "https://mcp.example.com/"}}}),
    );
    assert!(validate_server(&same, &Secrets::default()).is_ok());
}

#[test]
fn scopes_with_whitespace_or_empty_are_rejected() {
    let obj = server(
        json!({"url": "https://mcp.example.com/mcp", "auth": {"oauth": {"scopes": ["a b", ""]}}}),
    );
    assert_eq!(
        errors(&obj, &Secrets::default()),
        [
            (
                "spec.auth.oauth.scopes[0]".to_owned(),
                reason::INVALID_SCOPE
            ),
            (
                "spec.auth.oauth.scopes[1]".to_owned(),
                reason::INVALID_SCOPE
            )
        ]
    );
}

#[test]
fn sub_block_that_does_not_match_mode_is_rejected_with_a_fix() {
    let obj = server(
        json!({"url": "https://mcp.example.com/mcp", "auth": {"mode": "none", "oauth": {}}}),
    );
    let errs = validate_server(&obj, &Secrets::default()).expect_err("invalid");
    assert_eq!(
        fields_and_reasons(&errs),
        [("spec.auth.oauth", reason::CONFLICTING_AUTH_SETTINGS)]
    );
    assert!(
        errs[0]
            .message
            .contains("remove auth.oauth or set mode: oauth"),
        "{}",
        errs[0].message
    );

    let obj = server(json!({"url": "https://mcp.example.com/mcp", "auth": {
        "mode": "oauth", "forward": {"audiences": ["x"]}, "exchange": {"policyRef": {"name": "p"}}}}));
    assert_eq!(
        errors(&obj, &Secrets::default()),
        [
            (
                "spec.auth.exchange".to_owned(),
                reason::CONFLICTING_AUTH_SETTINGS
            ),
            (
                "spec.auth.forward".to_owned(),
                reason::CONFLICTING_AUTH_SETTINGS
            )
        ]
    );
}

#[test]
fn exchange_mode_requires_a_policy_ref() {
    let obj = server(json!({"url": "https://mcp.example.com/mcp", "auth": {"mode": "exchange"}}));
    assert_eq!(
        errors(&obj, &Secrets::default()),
        [(
            "spec.auth.exchange.policyRef".to_owned(),
            reason::MISSING_POLICY_REF
        )]
    );
    let obj = server(
        json!({"url": "https://mcp.example.com/mcp", "auth": {"mode": "exchange", "exchange": {"policyRef": {"name": ""}}}}),
    );
    assert_eq!(
        errors(&obj, &Secrets::default()),
        [(
            "spec.auth.exchange.policyRef.name".to_owned(),
            reason::MISSING_POLICY_REF
        )]
    );
    let ok = server(
        json!({"url": "https://mcp.example.com/mcp", "auth": {"mode": "exchange", "exchange": {"policyRef": {"name": "cluster-b"}}}}),
    );
    let reg = validate_server(&ok, &Secrets::default()).expect("valid");
    let AuthSettings::Exchange(e) = reg.auth else {
        panic!("expected exchange")
    };
    assert_eq!(e.policy, "cluster-b");
}

#[test]
fn forward_mode_requires_audiences() {
    let obj = server(json!({"url": "https://mcp.example.com/mcp", "auth": {"mode": "forward"}}));
    assert_eq!(
        errors(&obj, &Secrets::default()),
        [(
            "spec.auth.forward.audiences".to_owned(),
            reason::MISSING_AUDIENCES
        )]
    );
    let obj = server(
        json!({"url": "https://mcp.example.com/mcp", "auth": {"mode": "forward", "forward": {"audiences": []}}}),
    );
    assert_eq!(
        errors(&obj, &Secrets::default()),
        [(
            "spec.auth.forward.audiences".to_owned(),
            reason::MISSING_AUDIENCES
        )]
    );
    let obj = server(
        json!({"url": "https://mcp.example.com/mcp", "auth": {"mode": "forward", "forward": {"audiences": ["a b"]}}}),
    );
    assert_eq!(
        errors(&obj, &Secrets::default()),
        [(
            "spec.auth.forward.audiences[0]".to_owned(),
            reason::INVALID_AUDIENCE
        )]
    );
    let ok = server(
        json!({"url": "https://mcp.example.com/mcp", "auth": {"mode": "forward", "forward": {"audiences": ["mcp-b"]}}}),
    );
    let reg = validate_server(&ok, &Secrets::default()).expect("valid");
    let AuthSettings::Forward(f) = reg.auth else {
        panic!("expected forward")
    };
    assert_eq!(f.audiences, ["mcp-b"]);
}

fn with_client(client: serde_json::Value) -> RemoteMCPServer {
    server(json!({"url": "https://mcp.example.com/mcp", "auth": {"oauth": {"client": client}}}))
}

#[test]
fn client_secret_is_resolved_in_own_namespace_with_default_key() {
    let secrets = Secrets::default().with("team-a", "gh-client", "clientSecret", b"s3cret");
    let obj = with_client(
        json!({"id": "my-client", "secretRef": {"name": "gh-client"}, "tokenEndpointAuthMethod": "client_secret_post"}),
    );
    let reg = validate_server(&obj, &secrets).expect("valid");
    let AuthSettings::OAuth(o) = reg.auth else {
        panic!("expected oauth")
    };
    let ClientIdentity::PreRegistered(c) = o.client else {
        panic!("expected pre-registered")
    };
    assert_eq!(c.client_id, "my-client");
    assert_eq!(
        c.client_secret.as_ref().map(|s| s.expose_secret()),
        Some("s3cret")
    );
    assert_eq!(c.auth_method, ClientAuthMethod::Post);
}

#[test]
fn public_pre_registered_client_has_no_secret_and_basic_default() {
    let reg =
        validate_server(&with_client(json!({"id": "pub"})), &Secrets::default()).expect("valid");
    let AuthSettings::OAuth(o) = reg.auth else {
        panic!("expected oauth")
    };
    let ClientIdentity::PreRegistered(c) = o.client else {
        panic!("expected pre-registered")
    };
    assert!(c.client_secret.is_none());
    assert_eq!(c.auth_method, ClientAuthMethod::Basic);
}

#[test]
fn secret_in_another_namespace_is_not_found() {
    let secrets = Secrets::default().with("other", "gh-client", "clientSecret", b"s3cret");
    let obj = with_client(json!({"id": "c", "secretRef": {"name": "gh-client"}}));
    let errs = validate_server(&obj, &secrets).expect_err("invalid");
    assert_eq!(
        fields_and_reasons(&errs),
        [(
            "spec.auth.oauth.client.secretRef.name",
            reason::SECRET_NOT_FOUND
        )]
    );
    assert!(errs[0].message.contains("namespace `team-a`"));
}

#[test]
fn secret_problems_name_the_key_but_never_the_value() {
    let secrets = Secrets::default()
        .with("team-a", "missing-key", "other", b"s3cret")
        .with("team-a", "binary", "clientSecret", &[0xff, 0xfe])
        .with("team-a", "empty", "clientSecret", b"");
    for (name, want) in [
        ("missing-key", reason::SECRET_KEY_NOT_FOUND),
        ("binary", reason::SECRET_NOT_UTF8),
        ("empty", reason::SECRET_VALUE_EMPTY),
    ] {
        let obj = with_client(json!({"id": "c", "secretRef": {"name": name}}));
        let errs = validate_server(&obj, &secrets).expect_err("invalid");
        assert_eq!(
            fields_and_reasons(&errs),
            [("spec.auth.oauth.client.secretRef.key", want)],
            "{name}"
        );
        assert!(!errs[0].message.contains("s3cret"));
    }
}

#[test]
fn client_rules() {
    let obj = with_client(json!({"id": "", "tokenEndpointAuthMethod": "client_secret_basic"}));
    assert_eq!(
        errors(&obj, &Secrets::default()),
        [
            (
                "spec.auth.oauth.client.id".to_owned(),
                reason::MISSING_CLIENT_ID
            ),
            (
                "spec.auth.oauth.client.tokenEndpointAuthMethod".to_owned(),
                reason::INVALID_CLIENT_AUTH
            )
        ]
    );
    let obj = with_client(json!({"id": "c", "secretRef": {"name": "Bad_Name", "key": "a/b"}}));
    assert_eq!(
        errors(&obj, &Secrets::default()),
        [
            (
                "spec.auth.oauth.client.secretRef.name".to_owned(),
                reason::INVALID_NAME
            ),
            (
                "spec.auth.oauth.client.secretRef.key".to_owned(),
                reason::INVALID_SECRET_REF
            )
        ]
    );
}

#[test]
fn all_problems_are_reported_together() {
    let obj = server(json!({"url": "nope", "auth": {"mode": "forward"}}));
    assert_eq!(
        errors(&obj, &Secrets::default()),
        [
            ("spec.url".to_owned(), reason::INVALID_URL),
            (
                "spec.auth.forward.audiences".to_owned(),
                reason::MISSING_AUDIENCES
            )
        ]
    );
}

#[test]
fn plain_http_is_refused_outside_loopback_unless_the_resource_opts_in() {
    for url in [
        "http://mcp.team-a.svc.cluster.local/mcp",
        "http://10.0.0.7:8080/mcp",
        "http://localhost.evil.example/mcp",
        "http://[2001:db8::1]/mcp",
    ] {
        let obj = server(json!({"url": url, "auth": {"mode": "none"}}));
        let errs = validate_server(&obj, &Secrets::default()).expect_err(url);
        assert_eq!(
            fields_and_reasons(&errs),
            [("spec.url", reason::INSECURE_URL)],
            "{url}"
        );
        assert!(
            errs[0].message.contains("spec.allowInsecureHttp: true")
                && errs[0].message.contains("https"),
            "the message says how to fix it: {}",
            errs[0].message
        );
        let opted_in =
            server(json!({"url": url, "allowInsecureHttp": true, "auth": {"mode": "none"}}));
        validate_server(&opted_in, &Secrets::default()).expect("opted in");
    }
    for url in [
        "http://127.0.0.1:3001/mcp",
        "http://127.8.9.10/mcp",
        "http://localhost:9/mcp",
        "http://[::1]:9/mcp",
        "https://mcp.example.com/mcp",
    ] {
        let obj = server(json!({"url": url, "auth": {"mode": "none"}}));
        validate_server(&obj, &Secrets::default()).expect(url);
    }
}

#[test]
fn forward_headers_are_kept_lower_case_and_credentials_or_claims_are_refused() {
    let obj = server(json!({"url": "https://mcp.example.com/mcp",
                            "forwardHeaders": ["X-Tenant", "traceparent"]}));
    let reg = validate_server(&obj, &Secrets::default()).expect("valid");
    let names: Vec<_> = reg.forward_headers.iter().map(|h| h.as_str()).collect();
    assert_eq!(names, ["x-tenant", "traceparent"]);

    let obj = server(json!({"url": "https://mcp.example.com/mcp",
        "forwardHeaders": ["X-Tenant", "Authorization", "X-Forwarded-Access-Token", "X-Real-IP",
                           "Connection", "bad\nname"]}));
    let errs = validate_server(&obj, &Secrets::default()).expect_err("refused");
    let got: Vec<_> = fields_and_reasons(&errs)
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    assert_eq!(
        got,
        [
            "spec.forwardHeaders[1]",
            "spec.forwardHeaders[2]",
            "spec.forwardHeaders[3]",
            "spec.forwardHeaders[4]",
            "spec.forwardHeaders[5]",
        ]
    );
    assert!(
        errs.iter()
            .all(|e| e.reason == reason::INVALID_FORWARD_HEADER && !e.message.contains('\n')),
        "{errs:?}"
    );

    let many: Vec<String> = (0..17).map(|i| format!("x-h{i}")).collect();
    let obj = server(json!({"url": "https://mcp.example.com/mcp", "forwardHeaders": many}));
    assert_eq!(
        errors(&obj, &Secrets::default()),
        [(
            "spec.forwardHeaders".to_owned(),
            reason::INVALID_FORWARD_HEADER
        )]
    );
}
