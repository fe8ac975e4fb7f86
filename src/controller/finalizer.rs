//! The reconcile skeleton both resource kinds share: the entry point with its metrics and
//! retry keys, undecodable objects, deletion on every replica, the [`FINALIZER`] (added and
//! released by the leader only) around the kind's own apply step, and the status write that
//! apply step ends with.

use super::conditions::Verdict;
use super::context::Ctx;
use super::error::Error;
use super::status::{self, Conditioned};
use super::{FINALIZER, events, invalid};
use crate::registry::ServerKey;
use k8s_openapi::NamespaceResourceScope;
use kube::Resource;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, Event as Finalizer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

/// A resource kind whose reconcile registers it in the live registry and keeps it there until
/// the [`FINALIZER`] is released.
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
    let result = reconcile_guarded(&*obj, &ctx, &key).await;
    ctx.count_reconcile(
        K::KIND,
        result.as_ref().map_or_else(Error::metric_result, |_| "ok"),
    );
    result
}

/// `namespace/name` of an object.
pub fn object_key(obj: &impl Resource) -> ServerKey {
    let meta = obj.meta();
    ServerKey::new(
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// Invalid specs wait for a change; API errors are retried with per-object backoff.
pub fn error_policy<K: Registered>(
    obj: Arc<DeserializeGuard<K>>,
    err: &Error,
    ctx: Arc<Ctx>,
) -> Action {
    err.action(&ctx.retries, &retry_key::<K>(&object_key(&*obj)))
}

/// Key of an object of kind `K` in [`super::error::Retries`].
pub fn retry_key<K: Registered>(key: &ServerKey) -> String {
    format!("{}/{key}", K::KIND)
}

/// An undecodable object is forgotten and reported, a deleted one is dropped on every replica,
/// and the leader adds and releases the finalizer around [`Registered::apply`].
async fn reconcile_guarded<K: Registered>(
    obj: &DeserializeGuard<K>,
    ctx: &Ctx,
    key: &ServerKey,
) -> Result<Action, Error> {
    let deleting = obj.meta().deletion_timestamp.is_some();
    let resource = match &obj.0 {
        Ok(resource) => resource,
        Err(bad) => {
            K::forget(ctx, key);
            return invalid::handle::<K>(bad, ctx).await;
        }
    };
    if deleting {
        // Every replica drops it at once; only the leader then releases the finalizer.
        K::cleanup(ctx, key);
    }
    if !ctx.is_leader() {
        return if deleting {
            Ok(Action::await_change())
        } else {
            resource.apply(ctx, key).await
        };
    }
    let api = Api::<K>::namespaced(ctx.client.clone(), &key.namespace);
    finalizer::finalizer(
        &api,
        FINALIZER,
        Arc::new(resource.clone()),
        |event| async move {
            match event {
                Finalizer::Apply(resource) => resource.apply(ctx, key).await,
                Finalizer::Cleanup(_) => {
                    K::cleanup(ctx, key);
                    Ok(Action::await_change())
                }
            }
        },
    )
    .await
    .map_err(Error::from)
}

/// Writes `desired` as the status of `obj` when it differs from `current` (server-side apply),
/// counts the write, and publishes an Event when the Ready outcome changed. Leader only: the
/// caller checks.
pub async fn write_changed_status<K: Registered, S: Conditioned + Serialize>(
    obj: &K,
    ctx: &Ctx,
    current: Option<&S>,
    desired: &S,
    ready: &Verdict,
) -> Result<(), Error> {
    if !status::differs(current, desired) {
        return Ok(());
    }
    let meta = obj.meta();
    let name = meta.name.as_deref().unwrap_or_default();
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    let api = Api::<DeserializeGuard<K>>::namespaced(ctx.client.clone(), namespace);
    status::apply::<K>(&api, name, desired)
        .await
        .map_err(Error::Kube)?;
    ctx.count_status_write(K::KIND);
    let before = current.map(Conditioned::conditions).unwrap_or_default();
    if status::ready_outcome_changed(before, desired.conditions()) {
        events::publish(
            &ctx.recorder,
            &events::outcome_event(ready),
            &obj.object_ref(&()),
        )
        .await;
    }
    Ok(())
}
