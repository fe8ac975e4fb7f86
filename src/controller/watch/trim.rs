//! What the controller never reads, dropped from servers and policies before they enter its
//! reflector stores: the managed fields (one entry per field manager, often larger than the
//! spec) and the `kubectl apply` annotation (a full copy of the object as last applied). Status
//! is written with server-side apply, which needs neither on our side.

use kube::Resource;

/// The annotation `kubectl apply` keeps its last applied copy of the object in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drop managed fields and the last-applied annotation of `obj`; other annotations stay.
pub fn bookkeeping<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};
    use std::collections::BTreeMap;

    fn object(annotations: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("x".into()),
                generation: Some(3),
                managed_fields: Some(vec![ManagedFieldsEntry {
                    manager: Some("kubectl".into()),
                    ..ManagedFieldsEntry::default()
                }]),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect::<BTreeMap<_, _>>(),
                ),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    #[test]
    fn drops_managed_fields_and_the_last_applied_copy_only() {
        let mut o = object(&[(LAST_APPLIED, "{...}"), ("team", "a")]);
        bookkeeping(&mut o);
        assert_eq!(o.metadata.managed_fields, None);
        let left = o.metadata.annotations.unwrap_or_default();
        assert_eq!(left.len(), 1);
        assert_eq!(left.get("team").map(String::as_str), Some("a"));
        assert_eq!(
            o.metadata.generation,
            Some(3),
            "what triggers reconciles stays"
        );
    }

    #[test]
    fn no_annotations_left_means_none() {
        let mut o = object(&[(LAST_APPLIED, "{...}")]);
        bookkeeping(&mut o);
        assert_eq!(o.metadata.annotations, None);
    }
}
