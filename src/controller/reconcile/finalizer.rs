//! Around a kind's apply step: an undecodable object is forgotten and reported, a deleted one is
//! dropped on every replica at once, and the leader adds the [`FINALIZER`] before the first
//! apply and releases it once the registration is gone, so a resource is never deleted while a
//! replica could still hold its registration unnoticed.

use super::Registered;
use super::error::Error;
use super::undecodable;
use crate::controller::FINALIZER;
use crate::controller::context::Ctx;
use crate::registry::ServerKey;
use kube::Resource as _;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, Event as Finalizer};
use std::sync::Arc;

/// Runs [`Registered::apply`] for `obj` inside the finalizer (leader) or directly (other
/// replicas), after the undecodable and deleted cases.
pub async fn guarded<K: Registered>(
    obj: &DeserializeGuard<K>,
    ctx: &Ctx,
    key: &ServerKey,
) -> Result<Action, Error> {
    let deleting = obj.meta().deletion_timestamp.is_some();
    let resource = match &obj.0 {
        Ok(resource) => resource,
        Err(bad) => {
            K::forget(ctx, key);
            return undecodable::handle::<K>(bad, ctx).await;
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
