//! The wiring of `serve` and `run`: builds every component from plain configurations
//! ([`AppConfig`]), starts the listeners, the registrations source and the background work, and
//! shuts them down. The two subcommands differ only in where registrations come from
//! ([`Registrations`]); tests start the same server in-process.
//!
//! - [`config`](AppConfig): what the server is built from (filled in by `cli`);
//! - `build`: constructing the components; `start`: binding and starting them;
//! - `serve` and [`run`]: the registration sources of the two subcommands;
//! - [`shutdown`]: running until SIGINT/SIGTERM; [`listener`]: the connection limits;
//! - [`stores`]: the token and flow stores and their background work.

mod build;
mod config;
pub mod listener;
mod metrics_listener;
mod public_url;
pub mod run;
mod serve;
pub mod shutdown;
mod start;
pub mod stores;

pub use config::{AppConfig, OutboundSettings};
pub use public_url::public_url;
pub use shutdown::serve_until_signal;
pub use start::{RunningServer, start};

use crate::http::Readiness;
use crate::manifests::ManifestMetrics;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Where registrations come from.
#[derive(Debug, Clone)]
pub enum Registrations {
    /// YAML manifests in a folder, watched for changes (`serve --manifests`).
    Dir(PathBuf),
    /// The examples built into the binary (`serve`).
    Embedded,
    /// Only what the embedding program registers in the [`crate::registry::Registry`].
    Programmatic,
    /// `RemoteMCPServer` / `TokenExchangePolicy` resources from the Kubernetes API server (`run`).
    Kubernetes(crate::controller::KubeSource),
}

impl Registrations {
    /// The API server connection, for `run` (reads the key-ring Secret).
    fn kube_client(&self) -> Option<&kube::Client> {
        match self {
            Registrations::Kubernetes(source) => Some(&source.client),
            _ => None,
        }
    }

    /// Fills the registry from this source, and keeps it current until `cancel`. `services`
    /// are what the controller works with (only `run` starts one); the others fill
    /// `services.registry`.
    fn start(
        self,
        services: crate::controller::Services,
        readiness: &Arc<Readiness>,
        manifest_metrics: ManifestMetrics,
        cancel: &CancellationToken,
    ) {
        let registry = &services.registry;
        match self {
            Registrations::Programmatic => {}
            Registrations::Kubernetes(source) => {
                crate::controller::spawn(source, services, readiness.clone(), cancel.clone());
            }
            Registrations::Embedded => serve::embedded_examples(registry),
            Registrations::Dir(dir) => {
                serve::follow_manifests(dir, registry, readiness, manifest_metrics, cancel);
            }
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build the outbound HTTP client: {0}")]
    Outbound(String),
    #[error(transparent)]
    Store(#[from] stores::StoreSetupError),
}
