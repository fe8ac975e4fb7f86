//! The reconcile skeleton both resource kinds share. A kind says what it is
//! ([`Registered`]: its apply step, and how its registration is dropped); the skeleton does the
//! rest the same way for every kind: the entry point with its metrics and retry keys
//! ([`reconcile`], [`error_policy`]), undecodable objects ([`undecodable`]), deletion on every
//! replica and the finalizer ([`finalizer`]), the status write an apply step ends with
//! ([`status`], [`conditions`]), Events ([`events`]), errors ([`error`], with the `Ready`
//! verdict of an invalid spec in [`invalid_spec`]), and how each result is reported
//! ([`report`]).

pub mod conditions;
pub mod error;
pub mod events;
pub mod finalizer;
pub mod invalid_spec;
pub mod report;
pub mod status;
pub mod undecodable;

use crate::controller::context::Ctx;
use crate::controller::object_key;
use crate::registry::ServerKey;
use error::Error;
use k8s_openapi::NamespaceResourceScope;
use kube::Resource;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

/// A resource kind whose reconcile registers it in the live registry and keeps it there until
/// the [`FINALIZER`](crate::controller::FINALIZER) is released.
pub trait Registered:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Serialize
    + DeserializeOwned
    + Debug
    + Send
    + Sync
{
    /// Resource kind, for metrics, logs and retry keys.
    const KIND: &'static str;

    /// Drops the registration of an object under `key` that no longer decodes.
    fn forget(ctx: &Ctx, key: &ServerKey);

    /// Drops the registration of a deleted object (every replica, at once).
    fn cleanup(ctx: &Ctx, key: &ServerKey);

    /// Validates, registers and reports one decoded object.
    fn apply(
        &self,
        ctx: &Ctx,
        key: &ServerKey,
    ) -> impl Future<Output = Result<Action, Error>> + Send;
}

/// Reconciles one watched object of kind `K` and counts the outcome.
pub async fn reconcile<K: Registered>(
    obj: Arc<DeserializeGuard<K>>,
    ctx: Arc<Ctx>,
) -> Result<Action, Error> {
    let key = object_key(&*obj);
    let result = finalizer::guarded(&*obj, &ctx, &key).await;
    ctx.metrics.reconciled(
        K::KIND,
        result.as_ref().map_or_else(Error::metric_result, |_| "ok"),
    );
    result
}

/// Invalid specs wait for a change; API errors are retried with per-object backoff.
pub fn error_policy<K: Registered>(
    obj: Arc<DeserializeGuard<K>>,
    err: &Error,
    ctx: Arc<Ctx>,
) -> Action {
    err.action(&ctx.retries, &retry_key::<K>(&object_key(&*obj)))
}

/// Key of an object of kind `K` in [`Retries`](crate::controller::backoff::Retries).
pub fn retry_key<K: Registered>(key: &ServerKey) -> String {
    format!("{}/{key}", K::KIND)
}
