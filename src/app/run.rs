//! The registrations of `run`: `RemoteMCPServer` and `TokenExchangePolicy` resources from the
//! Kubernetes API server, reconciled by the controller.

use crate::controller::{ControllerConfig, KubeSource};

/// Connects to the API server (in-cluster configuration or `KUBECONFIG`) for the controller
/// configured by `config`.
pub async fn connect(config: ControllerConfig) -> Result<KubeSource, kube::Error> {
    let client = kube::Client::try_default().await?;
    Ok(KubeSource { client, config })
}
