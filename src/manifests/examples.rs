//! The example manifests built into the binary: what `serve` registers when it is started
//! without `--manifests`, so a first run has something to talk to.

use super::load::load_sources;
use super::report::LoadReport;

/// `(file name, YAML)` of each built-in example, in load order.
pub fn embedded_example_sources() -> &'static [(&'static str, &'static str)] {
    &[
        (
            "everything.yaml",
            include_str!("../../examples/manifests/everything.yaml"),
        ),
        (
            "local-oauth.yaml",
            include_str!("../../examples/manifests/local-oauth.yaml"),
        ),
    ]
}

/// The built-in examples, loaded exactly as a manifests folder would be.
pub fn embedded_examples() -> LoadReport {
    load_sources(embedded_example_sources().iter().copied())
}
