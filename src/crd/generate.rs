//! CRD YAML generation. The output is committed under `crds/` and a test fails when it drifts
//! from the Rust types, so it must be deterministic (same types → same bytes).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use super::{RemoteMCPServer, TokenExchangePolicy};

/// The generated CRD could not be rendered as YAML (a bug in the types, not a user error).
#[derive(Debug, thiserror::Error)]
#[error("rendering the {crd} CRD as YAML failed: {source}")]
pub struct CrdYamlError {
    crd: &'static str,
    #[source]
    source: serde_saphyr::SerializeError,
}

/// Each CRD with the file name it is committed under in `crds/`.
pub fn crd_files() -> Result<Vec<(&'static str, String)>, CrdYamlError> {
    Ok(vec![
        (
            "remotemcpservers.yaml",
            render("remotemcpservers", &RemoteMCPServer::crd())?,
        ),
        (
            "tokenexchangepolicies.yaml",
            render("tokenexchangepolicies", &TokenExchangePolicy::crd())?,
        ),
    ])
}

/// Both CRDs as one multi-document YAML stream (what `mcp-oauth-operator crds` prints).
pub fn crd_yaml() -> Result<String, CrdYamlError> {
    let files = crd_files()?;
    let mut out = String::new();
    for (_, doc) in files {
        out.push_str("---\n");
        out.push_str(&doc);
    }
    Ok(out)
}

/// First line of every generated file, so nobody edits it by hand.
const HEADER: &str = "# Generated from the Rust types in src/crd; do not edit. Regenerate with\n\
                      # `UPDATE_CRDS=1 cargo test --test it crds::` (or print with `mcp-oauth-operator crds`).\n";

fn render(crd: &'static str, value: &CustomResourceDefinition) -> Result<String, CrdYamlError> {
    let yaml = serde_saphyr::to_string(value).map_err(|source| CrdYamlError { crd, source })?;
    Ok(format!("{HEADER}{yaml}"))
}
