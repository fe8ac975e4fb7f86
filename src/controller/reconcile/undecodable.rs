//! Objects that cannot be decoded into their resource type (e.g. stored under an older schema).
//! `DeserializeGuard` keeps one such object from breaking the watch of all the others; here it
//! gets a `Ready=False` condition saying so, and its finalizer is still removed on delete so it
//! cannot get stuck.

use super::conditions::{self, Verdict};
use super::error::Error;
use super::status::FIELD_MANAGER;
use crate::controller::FINALIZER;
use crate::controller::context::Ctx;
use crate::crd::condition::READY;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::controller::Action;
use serde::de::DeserializeOwned;
use serde_json::json;

/// Condition reason for an object that does not match the resource type.
pub const REASON: &str = "InvalidObject";

/// Reports `invalid` on the object (leader only) and releases its finalizer when it is being
/// deleted. The caller has already removed any registration under its name.
pub async fn handle<K>(invalid: &InvalidObject, ctx: &Ctx) -> Result<Action, Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let meta = &invalid.metadata;
    let (Some(namespace), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
        return Err(Error::InvalidObject(invalid.error.clone()));
    };
    if !ctx.is_leader() {
        return if meta.deletion_timestamp.is_some() {
            Ok(Action::await_change())
        } else {
            Err(Error::InvalidObject(invalid.error.clone()))
        };
    }
    let api = Api::<DeserializeGuard<K>>::namespaced(ctx.client.clone(), namespace);
    if meta.deletion_timestamp.is_some() {
        let finalizers = meta.finalizers.clone().unwrap_or_default();
        if finalizers.iter().any(|f| f == FINALIZER) {
            let rest: Vec<&String> = finalizers.iter().filter(|f| *f != FINALIZER).collect();
            // The resourceVersion makes this fail rather than drop a finalizer added meanwhile.
            let patch =
                json!({"metadata": {"finalizers": rest, "resourceVersion": meta.resource_version}});
            api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(Error::Kube)?;
        }
        return Ok(Action::await_change());
    }

    let verdict = Verdict::new(
        READY,
        false,
        REASON,
        format!(
            "the object does not match the {} schema ({}): fix or re-create it",
            K::kind(&()),
            invalid.error
        ),
    );
    let current = current_conditions::<K>(ctx, namespace, name).await?;
    let desired = conditions::compute(&current, &[verdict], meta.generation, Timestamp::now());
    if conditions::without_times(&current) != conditions::without_times(&desired) {
        let patch = json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": {"observedGeneration": meta.generation, "conditions": desired},
        });
        api.patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(patch),
        )
        .await
        .map_err(Error::Kube)?;
        ctx.metrics.status_written(&K::kind(&()));
    }
    Err(Error::InvalidObject(invalid.error.clone()))
}

/// The object's conditions as stored, read without its (undecodable) typed form.
async fn current_conditions<K>(
    ctx: &Ctx,
    namespace: &str,
    name: &str,
) -> Result<Vec<Condition>, Error>
where
    K: Resource<DynamicType = ()>,
{
    let ar = ApiResource::erase::<K>(&());
    let api = Api::<DynamicObject>::namespaced_with(ctx.client.clone(), namespace, &ar);
    let raw = api.get_opt(name).await.map_err(Error::Kube)?;
    Ok(raw
        .and_then(|o| o.data.get("status")?.get("conditions").cloned())
        .and_then(|c| serde_json::from_value(c).ok())
        .unwrap_or_default())
}
