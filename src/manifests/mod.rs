//! Standalone manifests source for `serve --manifests DIR`: the same validation and reference
//! resolution as the controller, run over YAML files in a folder (re-read on change) instead of
//! the Kubernetes API. Secrets for `secretRef`s come from `v1` Secret documents in the same
//! folder, same namespace only.

mod examples;
mod load;
mod parse;
mod problem_count;
mod report;
mod secrets;
mod source;

pub use examples::{embedded_example_sources, embedded_examples};
pub use load::{load_dir, load_sources, load_str};
pub use problem_count::ManifestMetrics;
pub use report::{LoadReport, ManifestProblem, ResourceKind, ResourceStatus, Severity, reason};
pub use source::ManifestsSource;
