//! What becomes of each reconcile's result once the controller runtime hands it back: a log line
//! at the level it deserves, a Warning Event for a transient failure (leader only; an invalid
//! spec already says why in its status), and the registered-servers gauge brought up to date.

use super::error::Error;
use super::events;
use crate::controller::context::Ctx;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher;
use std::sync::Arc;

/// Logs one reconcile result; a transient failure also becomes a Warning Event (leader only).
pub async fn report<K>(
    kind: &'static str,
    result: Result<(ObjectRef<K>, Action), controller::Error<Error, watcher::Error>>,
    ctx: Arc<Ctx>,
) where
    K: Resource<DynamicType = ()> + reflector::Lookup<DynamicType = ()>,
{
    match result {
        Ok((obj, action)) => {
            tracing::debug!(kind, object = %obj, ?action, "reconciled");
        }
        Err(controller::Error::ReconcilerFailed(err, obj)) if err.is_transient() => {
            tracing::warn!(kind, object = %obj, error = %err, "reconcile failed; retrying with backoff");
            if ctx.is_leader() {
                let regarding: ObjectReference = (*obj).into();
                events::publish(&ctx.recorder, &events::failure_event(&err), &regarding).await;
            }
        }
        Err(controller::Error::ReconcilerFailed(err, obj)) => {
            tracing::info!(kind, object = %obj, reason = err.category(), "not registered: the resource is invalid (see its status)");
        }
        Err(controller::Error::ObjectNotFound(obj)) => {
            tracing::debug!(kind, object = %obj, "reconcile skipped: the object is gone");
        }
        Err(controller::Error::QueueError(e)) => {
            tracing::warn!(kind, error = %e, "watch error");
        }
        Err(e @ controller::Error::RunnerError(_)) => {
            tracing::error!(kind, error = %e, "controller runner error");
        }
    }
}
