//! The committed CRDs in `crds/` must match the Rust types, and the schemas must be useful
//! (`kubectl explain` descriptions everywhere, CEL rules, list-map conditions, printer columns).
//!
//! Regenerate after changing the types: `UPDATE_CRDS=1 cargo test --test it crds::`.

use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use mcp_oauth_operator::crd::{RemoteMCPServer, TokenExchangePolicy, crd_files, crd_yaml};
use serde_json::Value;

fn crds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crds")
}

#[test]
fn committed_crds_match_the_types() {
    let update = std::env::var_os("UPDATE_CRDS").is_some_and(|v| v == "1");
    for (file, generated) in crd_files().expect("CRDs render") {
        let path = crds_dir().join(file);
        if update {
            std::fs::create_dir_all(crds_dir()).expect("create crds/");
            std::fs::write(&path, &generated).expect("write CRD");
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "crds/{file} is out of date with the Rust types; regenerate it with \
             `UPDATE_CRDS=1 cargo test --test it crds::` and commit the result"
        );
    }
}

#[test]
fn generation_is_deterministic_and_round_trips() {
    let yaml = crd_yaml().expect("CRDs render");
    assert_eq!(yaml, crd_yaml().expect("CRDs render"));
    assert_eq!(yaml.matches("kind: CustomResourceDefinition").count(), 2);
    let parsed: Vec<CustomResourceDefinition> =
        serde_saphyr::from_multiple(&yaml).expect("generated YAML parses");
    assert_eq!(
        parsed,
        vec![RemoteMCPServer::crd(), TokenExchangePolicy::crd()]
    );
}

fn schema(crd: &CustomResourceDefinition) -> Value {
    let version = &crd.spec.versions[0];
    let schema = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("CRD has a schema");
    serde_json::to_value(schema).expect("schema serialises")
}

/// Paths of properties without a non-empty description, recursively.
fn undocumented(node: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let p = format!("{path}.{name}");
            let described = prop
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| !d.trim().is_empty());
            if !described {
                out.push(p.clone());
            }
            undocumented(prop, &p, out);
        }
    }
    if let Some(items) = node.get("items") {
        undocumented(items, &format!("{path}[]"), out);
    }
}

#[test]
fn every_property_has_a_description() {
    for crd in [RemoteMCPServer::crd(), TokenExchangePolicy::crd()] {
        let schema = schema(&crd);
        let mut missing = Vec::new();
        undocumented(&schema, "", &mut missing);
        assert!(
            missing.is_empty(),
            "{}: undocumented properties {missing:?}",
            crd.spec.names.plural
        );
        // Guard against the walk silently finding nothing.
        assert!(schema.pointer("/properties/spec/properties").is_some());
    }
}

fn columns(crd: &CustomResourceDefinition) -> Vec<(String, String)> {
    crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.clone(), c.json_path.clone()))
        .collect()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[test]
fn names_and_printer_columns() {
    let rms = RemoteMCPServer::crd();
    assert_eq!(
        rms.metadata.name.as_deref(),
        Some("remotemcpservers.mcpoauth.dev")
    );
    assert_eq!(rms.spec.scope, "Namespaced");
    assert_eq!(rms.spec.names.short_names, Some(vec!["rms".to_owned()]));
    assert_eq!(rms.spec.names.categories, Some(vec!["mcp".to_owned()]));
    assert_eq!(rms.spec.versions[0].name, "v1alpha1");
    assert_eq!(
        columns(&rms),
        owned(&[
            ("URL", ".spec.url"),
            ("Mode", ".spec.auth.mode"),
            ("Ready", ".status.conditions[?(@.type==\"Ready\")].status"),
            ("Issuer", ".status.authorizationServer.issuer"),
            ("Age", ".metadata.creationTimestamp"),
        ])
    );

    let tep = TokenExchangePolicy::crd();
    assert_eq!(
        tep.metadata.name.as_deref(),
        Some("tokenexchangepolicies.mcpoauth.dev")
    );
    assert_eq!(tep.spec.names.short_names, Some(vec!["tep".to_owned()]));
    assert_eq!(
        columns(&tep),
        owned(&[
            ("Endpoint", ".spec.tokenEndpoint"),
            ("Ready", ".status.conditions[?(@.type==\"Ready\")].status"),
            ("Age", ".metadata.creationTimestamp"),
        ])
    );
    for crd in [&rms, &tep] {
        assert!(
            crd.spec.versions[0]
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
    }
}

fn rules(node: &Value) -> Vec<String> {
    node.get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("rule").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

#[test]
fn conditions_are_a_list_map_keyed_by_type() {
    for crd in [RemoteMCPServer::crd(), TokenExchangePolicy::crd()] {
        let schema = schema(&crd);
        let conditions = schema
            .pointer("/properties/status/properties/conditions")
            .expect("status.conditions exists");
        assert_eq!(conditions["x-kubernetes-list-type"], "map");
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            serde_json::json!(["type"])
        );
    }
}

#[test]
fn cross_field_rules_are_in_the_schema() {
    let rms = schema(&RemoteMCPServer::crd());
    let auth = rms
        .pointer("/properties/spec/properties/auth")
        .expect("spec.auth");
    let auth_rules = rules(auth);
    for needle in [
        "self.mode != 'exchange' || has(self.exchange)",
        "size(self.forward.audiences) > 0",
        "!has(self.oauth) || self.mode == 'oauth'",
        "!has(self.exchange) || self.mode == 'exchange'",
        "!has(self.forward) || self.mode == 'forward'",
    ] {
        assert!(
            auth_rules.iter().any(|r| r.contains(needle)),
            "missing rule {needle:?} in {auth_rules:?}"
        );
    }
    let client = rms
        .pointer("/properties/spec/properties/auth/properties/oauth/properties/client")
        .expect("client");
    assert_eq!(
        rules(client),
        ["!has(self.tokenEndpointAuthMethod) || has(self.secretRef)"]
    );

    let tep = schema(&TokenExchangePolicy::crd());
    let client_auth = tep
        .pointer("/properties/spec/properties/clientAuth")
        .expect("clientAuth");
    assert!(
        rules(client_auth).contains(&"has(self.secretRef) != has(self.tlsSecretRef)".to_owned())
    );
}

#[test]
fn url_fields_carry_patterns_and_limits() {
    let rms = schema(&RemoteMCPServer::crd());
    let url = rms.pointer("/properties/spec/properties/url").expect("url");
    assert_eq!(url["pattern"], "^https?://");
    assert_eq!(url["maxLength"], 2048);
    assert_eq!(rms.pointer("/required"), Some(&serde_json::json!(["spec"])));
    assert_eq!(
        rms.pointer("/properties/spec/required"),
        Some(&serde_json::json!(["url"]))
    );
    assert_eq!(
        rms.pointer("/properties/spec/properties/auth/properties/mode/default"),
        Some(&serde_json::json!("oauth"))
    );
    let tep = schema(&TokenExchangePolicy::crd());
    assert_eq!(
        tep.pointer("/properties/spec/properties/tokenEndpoint/pattern"),
        Some(&serde_json::json!("^https?://"))
    );
    assert_eq!(
        tep.pointer("/properties/spec/properties/connectorId/maxLength"),
        Some(&serde_json::json!(64))
    );
}
