//! Writing a reconcile's status: compared with what the object already says (ignoring
//! timestamps), and written by server-side apply with a stable field manager — only when it
//! changed, and only by the replica that holds the Lease. What each kind's status holds is
//! built by the kind ([`crate::controller::server::status`], [`crate::controller::policy::status`]).

use super::Registered;
use super::conditions;
use super::error::Error;
use super::events;
use crate::controller::context::Ctx;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::events::Event;
use serde::Serialize;

/// Field manager of every write this controller makes.
pub const FIELD_MANAGER: &str = "mcp-oauth-operator";

/// A status type with conditions.
pub trait Conditioned: Clone + PartialEq {
    fn conditions(&self) -> &[Condition];
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
}

/// Whether writing `desired` would change what `current` says (condition timestamps aside).
pub fn differs<S: Conditioned>(current: Option<&S>, desired: &S) -> bool {
    let Some(current) = current else {
        return true;
    };
    let blank = |s: &S| {
        let mut s = s.clone();
        let times = conditions::without_times(s.conditions());
        *s.conditions_mut() = times;
        s
    };
    blank(current) != blank(desired)
}

/// Whether the Ready outcome (status and reason) differs between two condition lists, which is
/// when an Event is worth publishing.
pub fn ready_outcome_changed(current: &[Condition], desired: &[Condition]) -> bool {
    let outcome = |c: &[Condition]| {
        conditions::find(c, crate::crd::condition::READY)
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    outcome(current) != outcome(desired)
}

/// Server-side apply of `status` to the status subresource of `name`, owned by
/// [`FIELD_MANAGER`] (forced: this controller is the only writer of these fields).
pub async fn apply<K>(
    api: &Api<DeserializeGuard<K>>,
    name: &str,
    status: &impl Serialize,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await
    .map(|_| ())
}

/// Writes `desired` as the status of `obj` when it differs from `current` (server-side apply),
/// counts the write, and publishes `event` when the Ready outcome changed (see
/// [`events::outcome_event`]). Leader only: the caller checks.
pub async fn write_changed<K: Registered, S: Conditioned + Serialize>(
    obj: &K,
    ctx: &Ctx,
    current: Option<&S>,
    desired: &S,
    event: &Event,
) -> Result<(), Error> {
    if !differs(current, desired) {
        return Ok(());
    }
    let meta = obj.meta();
    let name = meta.name.as_deref().unwrap_or_default();
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    let api = Api::<DeserializeGuard<K>>::namespaced(ctx.client.clone(), namespace);
    apply::<K>(&api, name, desired).await.map_err(Error::Kube)?;
    ctx.metrics.status_written(K::KIND);
    let before = current.map(Conditioned::conditions).unwrap_or_default();
    if ready_outcome_changed(before, desired.conditions()) {
        events::publish(&ctx.recorder, event, &obj.object_ref(&())).await;
    }
    Ok(())
}
