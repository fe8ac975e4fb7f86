//! Every CEL rule of the generated CRDs, evaluated client-side with kube's CEL validator
//! (`kube::core::cel`, the `cel` feature), because the test kube-apiserver (v1.20) cannot run
//! `x-kubernetes-validations`.
//!
//! For each rule: an object that satisfies it passes every rule of its CRD, and an object that
//! violates it fails exactly that rule with its message. The same violating spec must also be
//! rejected by the Rust validators (`crd::validate`), which enforce the rules where CEL does not
//! run (old API servers, `serve` mode); the satisfying one must be accepted by them.

use std::collections::BTreeSet;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::cel::{ErrorKind, Validator};
use mcp_oauth_operator::crd::validate::{
    SecretLookup, SecretLookupError, SpecError, reason, validate_policy, validate_server,
};
use mcp_oauth_operator::crd::{API_VERSION, RemoteMCPServer, TokenExchangePolicy, crd_files};
use secrecy::SecretString;
use serde_json::{Value, json};

/// Which CRD a case belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Crd {
    Server,
    Policy,
}

impl Crd {
    fn file(self) -> &'static str {
        match self {
            Crd::Server => "remotemcpservers.yaml",
            Crd::Policy => "tokenexchangepolicies.yaml",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Crd::Server => "RemoteMCPServer",
            Crd::Policy => "TokenExchangePolicy",
        }
    }
}

/// One CEL rule: a spec that satisfies it, specs that violate it (and nothing else), the
/// message the API server would answer with, and the (field, reason) the Rust validator
/// reports for the same violation.
struct Case {
    crd: Crd,
    rule: &'static str,
    message: &'static str,
    satisfying: Value,
    violating: Vec<Value>,
    rust: (&'static str, &'static str),
}

const URL: &str = "https://mcp.example.com/mcp";
const TOKEN_ENDPOINT: &str = "https://dex.example.com/token";

fn server(auth: Value) -> Value {
    json!({ "url": URL, "auth": auth })
}

fn policy(client_auth: Value) -> Value {
    json!({ "tokenEndpoint": TOKEN_ENDPOINT, "clientAuth": client_auth })
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            crd: Crd::Server,
            rule: "self.mode != 'exchange' || has(self.exchange)",
            message: "auth.exchange.policyRef is required when mode is exchange",
            satisfying: server(
                json!({"mode": "exchange", "exchange": {"policyRef": {"name": "cluster-b"}}}),
            ),
            violating: vec![server(json!({"mode": "exchange"}))],
            rust: ("spec.auth.exchange.policyRef", reason::MISSING_POLICY_REF),
        },
        Case {
            crd: Crd::Server,
            rule: "self.mode != 'forward' || (has(self.forward) && size(self.forward.audiences) > 0)",
            message: "auth.forward.audiences must be non-empty when mode is forward",
            satisfying: server(
                json!({"mode": "forward", "forward": {"audiences": ["mcp-gateway"]}}),
            ),
            violating: vec![
                server(json!({"mode": "forward"})),
                server(json!({"mode": "forward", "forward": {"audiences": []}})),
            ],
            rust: ("spec.auth.forward.audiences", reason::MISSING_AUDIENCES),
        },
        Case {
            crd: Crd::Server,
            rule: "!has(self.oauth) || self.mode == 'oauth'",
            message: "auth.oauth is only allowed with mode: oauth (remove auth.oauth or set mode: oauth)",
            // `mode` omitted: the schema default (`oauth`) applies, as on the API server.
            satisfying: server(json!({"oauth": {"issuer": "https://idp.example.com"}})),
            violating: vec![server(
                json!({"mode": "none", "oauth": {"issuer": "https://idp.example.com"}}),
            )],
            rust: ("spec.auth.oauth", reason::CONFLICTING_AUTH_SETTINGS),
        },
        Case {
            crd: Crd::Server,
            rule: "!has(self.exchange) || self.mode == 'exchange'",
            message: "auth.exchange is only allowed with mode: exchange (remove auth.exchange or set mode: exchange)",
            satisfying: server(json!({"mode": "none"})),
            violating: vec![server(
                json!({"mode": "none", "exchange": {"policyRef": {"name": "cluster-b"}}}),
            )],
            rust: ("spec.auth.exchange", reason::CONFLICTING_AUTH_SETTINGS),
        },
        Case {
            crd: Crd::Server,
            rule: "!has(self.forward) || self.mode == 'forward'",
            message: "auth.forward is only allowed with mode: forward (remove auth.forward or set mode: forward)",
            satisfying: server(json!({"mode": "oauth"})),
            violating: vec![server(
                json!({"mode": "oauth", "forward": {"audiences": ["mcp-gateway"]}}),
            )],
            rust: ("spec.auth.forward", reason::CONFLICTING_AUTH_SETTINGS),
        },
        Case {
            crd: Crd::Server,
            rule: "!has(self.tokenEndpointAuthMethod) || has(self.secretRef)",
            message: "tokenEndpointAuthMethod needs secretRef (a public client sends no secret): remove it or add secretRef",
            satisfying: server(json!({"oauth": {"client": {
                "id": "gateway",
                "secretRef": {"name": "github-client"},
                "tokenEndpointAuthMethod": "client_secret_post",
            }}})),
            violating: vec![server(json!({"oauth": {"client": {
                "id": "gateway",
                "tokenEndpointAuthMethod": "client_secret_post",
            }}}))],
            rust: (
                "spec.auth.oauth.client.tokenEndpointAuthMethod",
                reason::INVALID_CLIENT_AUTH,
            ),
        },
        Case {
            crd: Crd::Policy,
            rule: "has(self.secretRef) != has(self.tlsSecretRef)",
            message: "set exactly one of clientAuth.secretRef (client id and secret) or clientAuth.tlsSecretRef (mutual TLS)",
            satisfying: policy(json!({"tlsSecretRef": {"name": "client-cert"}})),
            violating: vec![
                policy(json!({})),
                policy(json!({
                    "secretRef": {"name": "client"},
                    "tlsSecretRef": {"name": "client-cert"},
                })),
            ],
            rust: ("spec.clientAuth", reason::INVALID_CLIENT_AUTH),
        },
        Case {
            crd: Crd::Policy,
            rule: "!has(self.method) || has(self.secretRef)",
            message: "clientAuth.method applies to secretRef only: remove it or use secretRef",
            satisfying: policy(
                json!({"secretRef": {"name": "client"}, "method": "client_secret_post"}),
            ),
            violating: vec![policy(json!({
                "tlsSecretRef": {"name": "client-cert"},
                "method": "client_secret_post",
            }))],
            rust: ("spec.clientAuth.method", reason::INVALID_CLIENT_AUTH),
        },
        Case {
            crd: Crd::Policy,
            rule: "!has(self.clientId) || has(self.tlsSecretRef)",
            message: "clientAuth.clientId applies to tlsSecretRef only: the secretRef carries its own client id",
            satisfying: policy(
                json!({"tlsSecretRef": {"name": "client-cert"}, "clientId": "mcp-gateway"}),
            ),
            violating: vec![policy(
                json!({"secretRef": {"name": "client"}, "clientId": "mcp-gateway"}),
            )],
            rust: ("spec.clientAuth.clientId", reason::INVALID_CLIENT_AUTH),
        },
    ]
}

/// The `openAPIV3Schema` of a committed-form CRD, parsed back from the generated YAML so the
/// rules tested are exactly the ones `kubectl apply -f crds/` installs.
fn schema(crd: Crd) -> Value {
    let files = crd_files().expect("CRDs render");
    let (_, yaml) = files
        .iter()
        .find(|(file, _)| *file == crd.file())
        .expect("CRD file generated");
    let parsed: CustomResourceDefinition = serde_saphyr::from_str(yaml).expect("CRD YAML parses");
    let schema = parsed.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("CRD has a schema");
    serde_json::to_value(schema).expect("schema serialises")
}

fn object(crd: Crd, spec: &Value) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": crd.kind(),
        "metadata": {"name": "subject", "namespace": "team-a"},
        "spec": spec,
    })
}

/// Every `x-kubernetes-validations` rule anywhere in a schema.
fn rules_in(node: &Value, out: &mut BTreeSet<String>) {
    match node {
        Value::Object(map) => {
            if let Some(Value::Array(rules)) = map.get("x-kubernetes-validations") {
                for rule in rules {
                    let text = rule["rule"].as_str().expect("rule is a string");
                    out.insert(text.to_owned());
                }
            }
            map.values().for_each(|v| rules_in(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| rules_in(v, out)),
        _ => {}
    }
}

#[test]
fn every_cel_rule_of_both_crds_has_a_case() {
    for crd in [Crd::Server, Crd::Policy] {
        let mut in_schema = BTreeSet::new();
        rules_in(&schema(crd), &mut in_schema);
        let covered: BTreeSet<String> = cases()
            .iter()
            .filter(|c| c.crd == crd)
            .map(|c| c.rule.to_owned())
            .collect();
        assert!(!in_schema.is_empty(), "{crd:?} CRD has no CEL rules");
        assert_eq!(
            in_schema, covered,
            "{crd:?}: every CEL rule needs a case in tests/it/cel.rs (and no stale cases)"
        );
    }
}

#[test]
fn satisfying_objects_pass_every_cel_rule() {
    let validator = Validator::new();
    for case in cases() {
        let obj = object(case.crd, &case.satisfying);
        let result = validator.validate(&schema(case.crd), &obj, None);
        assert!(
            result.is_ok(),
            "rule `{}`: satisfying object rejected: {result:?}",
            case.rule
        );
    }
}

#[test]
fn violating_objects_fail_exactly_their_rule_with_its_message() {
    let validator = Validator::new();
    for case in cases() {
        let schema = schema(case.crd);
        for spec in &case.violating {
            let obj = object(case.crd, spec);
            let errors = validator
                .validate(&schema, &obj, None)
                .expect_err(&format!("rule `{}` accepted {spec}", case.rule))
                .into_vec();
            assert_eq!(errors.len(), 1, "rule `{}`: {errors:?}", case.rule);
            let err = &errors[0];
            assert_eq!(err.kind, ErrorKind::ValidationFailure, "{err:?}");
            assert_eq!(err.rule, case.rule);
            assert_eq!(err.message, case.message);
        }
    }
}

/// Answers every Secret lookup, so the Rust validators get past Secret resolution and only
/// the spec itself decides.
struct AnySecret;

impl SecretLookup for AnySecret {
    fn get(&self, _: &str, _: &str, _: &str) -> Result<SecretString, SecretLookupError> {
        Ok(SecretString::from("value".to_owned()))
    }
}

fn rust_validate(crd: Crd, spec: &Value) -> Result<(), Vec<SpecError>> {
    let obj = object(crd, spec);
    match crd {
        Crd::Server => {
            let obj: RemoteMCPServer = serde_json::from_value(obj).expect("server deserialises");
            validate_server(&obj, &AnySecret).map(drop)
        }
        Crd::Policy => {
            let obj: TokenExchangePolicy =
                serde_json::from_value(obj).expect("policy deserialises");
            validate_policy(&obj, &AnySecret).map(drop)
        }
    }
}

#[test]
fn rust_validators_enforce_every_cel_rule() {
    for case in cases() {
        let accepted = rust_validate(case.crd, &case.satisfying);
        assert!(
            accepted.is_ok(),
            "rule `{}`: Rust validator rejects the satisfying spec: {accepted:?}",
            case.rule
        );
        for spec in &case.violating {
            let errors = rust_validate(case.crd, spec).expect_err(&format!(
                "rule `{}`: Rust validator accepts {spec}",
                case.rule
            ));
            let found: Vec<(&str, &str)> = errors
                .iter()
                .map(|e| (e.field.as_str(), e.reason))
                .collect();
            assert_eq!(found, vec![case.rust], "rule `{}` on {spec}", case.rule);
        }
    }
}
