//! Rules of `validate_policy`, each with a passing and a failing case.

use secrecy::ExposeSecret;
use serde_json::json;
use url::Url;

use super::test_support::{Secrets, fields_and_reasons};
use super::{derive_expected_issuer, reason, validate_policy};
use crate::crd::TokenExchangePolicy;
use crate::registry::{ClientAuthMethod, PolicyClientAuth, SubjectTokenType};

fn policy(spec: serde_json::Value) -> TokenExchangePolicy {
    serde_json::from_value(json!({
        "apiVersion": "mcpoauth.dev/v1alpha1",
        "kind": "TokenExchangePolicy",
        "metadata": {"name": "cluster-b", "namespace": "team-a", "generation": 2},
        "spec": spec,
    }))
    .expect("fixture parses")
}

fn errors(obj: &TokenExchangePolicy, secrets: &Secrets) -> Vec<(String, &'static str)> {
    let errs = validate_policy(obj, secrets).expect_err("should be invalid");
    fields_and_reasons(&errs)
        .into_iter()
        .map(|(f, r)| (f.to_owned(), r))
        .collect()
}

#[test]
fn minimal_policy_gets_defaults() {
    let obj = policy(json!({"tokenEndpoint": "https://dex.b.example.com/token"}));
    let reg = validate_policy(&obj, &Secrets::default()).expect("valid");
    assert_eq!(reg.key.to_string(), "team-a/cluster-b");
    assert_eq!(reg.generation, 2);
    assert_eq!(reg.expected_issuer, "https://dex.b.example.com");
    assert_eq!(reg.scopes, ["openid", "profile", "email", "groups"]);
    assert_eq!(reg.subject_token_type, SubjectTokenType::IdToken);
    assert!(reg.client_auth.is_none());
    assert!(!reg.allow_private_networks);
}

#[test]
fn expected_issuer_derivation_follows_the_dex_rule() {
    let cases = [
        (
            "https://dex.example.com/token",
            Some("https://dex.example.com"),
        ),
        (
            "https://dex.example.com/dex/token",
            Some("https://dex.example.com/dex"),
        ),
        (
            "https://dex.example.com:5556/token",
            Some("https://dex.example.com:5556"),
        ),
        (
            "https://dex.example.com//token",
            Some("https://dex.example.com"),
        ),
        (
            "https://dex.example.com/auth",
            Some("https://dex.example.com/auth"),
        ),
        (
            "https://dex.example.com/dex/token/",
            Some("https://dex.example.com/dex/token"),
        ),
        ("https://dex.example.com/token?x=1", None),
    ];
    for (endpoint, want) in cases {
        let url = Url::parse(endpoint).expect("fixture url");
        assert_eq!(derive_expected_issuer(&url).as_deref(), want, "{endpoint}");
    }
}

#[test]
fn token_endpoint_with_query_needs_an_explicit_issuer() {
    let obj = policy(json!({"tokenEndpoint": "https://dex.example.com/token?x=1"}));
    assert_eq!(
        errors(&obj, &Secrets::default()),
        [(
            "spec.expectedIssuer".to_owned(),
            reason::CANNOT_DERIVE_ISSUER
        )]
    );
    let obj = policy(
        json!({"tokenEndpoint": "https://dex.example.com/token?x=1", "expectedIssuer": "https://dex.example.com"}),
    );
    let reg = validate_policy(&obj, &Secrets::default()).expect("valid");
    assert_eq!(reg.expected_issuer, "https://dex.example.com");
}

#[test]
fn url_fields_are_checked() {
    let obj = policy(json!({
        "tokenEndpoint": "https://user:pw@dex.example.com/token",
        "expectedIssuer": "https://dex.example.com/#x",
        "resource": "ftp://mcp.example.com"
    }));
    assert_eq!(
        errors(&obj, &Secrets::default()),
        [
            ("spec.tokenEndpoint".to_owned(), reason::INVALID_URL),
            ("spec.expectedIssuer".to_owned(), reason::INVALID_URL),
            ("spec.resource".to_owned(), reason::INVALID_URL)
        ]
    );
}

#[test]
fn plain_fields_are_checked() {
    let obj = policy(json!({
        "tokenEndpoint": "https://dex.example.com/token",
        "connectorId": "has space",
        "audience": "a b",
        "scopes": ["openid profile"],
        "requestedTokenType": "id_token"
    }));
    assert_eq!(
        errors(&obj, &Secrets::default()),
        [
            ("spec.connectorId".to_owned(), reason::INVALID_CONNECTOR_ID),
            ("spec.audience".to_owned(), reason::INVALID_AUDIENCE),
            ("spec.scopes[0]".to_owned(), reason::INVALID_SCOPE),
            (
                "spec.requestedTokenType".to_owned(),
                reason::INVALID_TOKEN_TYPE
            )
        ]
    );
    let ok = policy(json!({
        "tokenEndpoint": "https://dex.example.com/token",
        "connectorId": "cluster-a",
        "audience": "mcp-b",
        "resource": "https://mcp.b.example.com/mcp",
        "scopes": ["openid"],
        "subjectTokenType": "access_token",
        "requestedTokenType": "urn:ietf:params:oauth:token-type:id_token",
        "allowPrivateNetworks": true
    }));
    let reg = validate_policy(&ok, &Secrets::default()).expect("valid");
    assert_eq!(reg.connector_id.as_deref(), Some("cluster-a"));
    assert_eq!(reg.subject_token_type, SubjectTokenType::AccessToken);
    assert!(reg.allow_private_networks);
}

#[test]
fn client_secret_auth_reads_id_and_secret_with_default_keys() {
    let secrets = Secrets::default()
        .with("team-a", "b-client", "clientId", b"gateway")
        .with("team-a", "b-client", "clientSecret", b"s3cret");
    let obj = policy(json!({"tokenEndpoint": "https://dex.example.com/token",
        "clientAuth": {"secretRef": {"name": "b-client"}}}));
    let reg = validate_policy(&obj, &secrets).expect("valid");
    let Some(PolicyClientAuth::Secret {
        client_id,
        client_secret,
        method,
    }) = reg.client_auth
    else {
        panic!("expected secret client auth")
    };
    assert_eq!(client_id, "gateway");
    assert_eq!(client_secret.expose_secret(), "s3cret");
    assert_eq!(method, ClientAuthMethod::Basic);
}

#[test]
fn client_secret_from_another_namespace_is_not_used() {
    let secrets = Secrets::default()
        .with("other", "b-client", "clientId", b"gateway")
        .with("other", "b-client", "clientSecret", b"s3cret");
    let obj = policy(json!({"tokenEndpoint": "https://dex.example.com/token",
        "clientAuth": {"secretRef": {"name": "b-client"}}}));
    assert_eq!(
        errors(&obj, &secrets),
        [
            (
                "spec.clientAuth.secretRef.name".to_owned(),
                reason::SECRET_NOT_FOUND
            ),
            (
                "spec.clientAuth.secretRef.name".to_owned(),
                reason::SECRET_NOT_FOUND
            )
        ]
    );
}

#[test]
fn mutual_tls_reads_cert_and_key() {
    let secrets = Secrets::default()
        .with("team-a", "b-cert", "tls.crt", b"CERT")
        .with("team-a", "b-cert", "tls.key", b"KEY");
    let obj = policy(json!({"tokenEndpoint": "https://dex.example.com/token",
        "clientAuth": {"tlsSecretRef": {"name": "b-cert"}, "clientId": "gw"}}));
    let reg = validate_policy(&obj, &secrets).expect("valid");
    let Some(PolicyClientAuth::MutualTls {
        client_id,
        cert_pem,
        key_pem,
    }) = reg.client_auth
    else {
        panic!("expected mTLS client auth")
    };
    assert_eq!(client_id.as_deref(), Some("gw"));
    assert_eq!(cert_pem.expose_secret(), "CERT");
    assert_eq!(key_pem.expose_secret(), "KEY");

    let missing_key = Secrets::default().with("team-a", "b-cert", "tls.crt", b"CERT");
    assert_eq!(
        errors(&obj, &missing_key),
        [(
            "spec.clientAuth.tlsSecretRef.name".to_owned(),
            reason::SECRET_KEY_NOT_FOUND
        )]
    );
}

#[test]
fn client_auth_shape_rules() {
    let both = policy(json!({"tokenEndpoint": "https://dex.example.com/token",
        "clientAuth": {"secretRef": {"name": "a"}, "tlsSecretRef": {"name": "b"}}}));
    assert_eq!(
        errors(&both, &Secrets::default()),
        [("spec.clientAuth".to_owned(), reason::INVALID_CLIENT_AUTH)]
    );
    let neither =
        policy(json!({"tokenEndpoint": "https://dex.example.com/token", "clientAuth": {}}));
    assert_eq!(
        errors(&neither, &Secrets::default()),
        [("spec.clientAuth".to_owned(), reason::INVALID_CLIENT_AUTH)]
    );
    let misplaced = policy(json!({"tokenEndpoint": "https://dex.example.com/token",
        "clientAuth": {"tlsSecretRef": {"name": "b"}, "method": "client_secret_post"}}));
    let secrets = Secrets::default()
        .with("team-a", "b", "tls.crt", b"CERT")
        .with("team-a", "b", "tls.key", b"KEY");
    assert_eq!(
        errors(&misplaced, &secrets),
        [(
            "spec.clientAuth.method".to_owned(),
            reason::INVALID_CLIENT_AUTH
        )]
    );
    let misplaced_id = policy(json!({"tokenEndpoint": "https://dex.example.com/token",
        "clientAuth": {"secretRef": {"name": "a"}, "clientId": "x"}}));
    let secrets = Secrets::default()
        .with("team-a", "a", "clientId", b"id")
        .with("team-a", "a", "clientSecret", b"s");
    assert_eq!(
        errors(&misplaced_id, &secrets),
        [(
            "spec.clientAuth.clientId".to_owned(),
            reason::INVALID_CLIENT_AUTH
        )]
    );
}
