//! Secret values for the validators, read from the controller's Secret reflector store.
//!
//! The lookup reads exactly the namespace it is asked for; the validators only ever ask for the
//! namespace of the resource being validated, so a resource cannot make the gateway use another
//! namespace's Secret.

use crate::crd::validate::{SecretLookup, SecretLookupError};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{ObjectRef, Store};
use secrecy::SecretString;

/// A [`SecretLookup`] over a reflector store.
#[derive(Clone)]
pub struct StoreSecrets {
    store: Store<Secret>,
}

impl StoreSecrets {
    pub fn new(store: Store<Secret>) -> Self {
        Self { store }
    }
}

impl SecretLookup for StoreSecrets {
    fn get(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<SecretString, SecretLookupError> {
        let secret = self
            .store
            .get(&ObjectRef::new(name).within(namespace))
            .ok_or(SecretLookupError::NotFound)?;
        let bytes = secret
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .ok_or(SecretLookupError::KeyMissing)?;
        String::from_utf8(bytes.0.clone())
            .map(SecretString::from)
            .map_err(|_| SecretLookupError::NotUtf8)
    }
}

/// Drops what the controller never reads before a Secret enters the store: managed fields and
/// annotations (`kubectl apply` keeps a full copy of the data in the last-applied annotation,
/// which would double the memory held).
pub fn strip(secret: &mut Secret) {
    secret.metadata.managed_fields = None;
    secret.metadata.annotations = None;
}

/// Secret types the controller never needs to read (large, numerous, and not credentials a
/// resource can reference), excluded from the watch with a field selector.
pub const IGNORED_TYPES_SELECTOR: &str =
    "type!=helm.sh/release.v1,type!=kubernetes.io/service-account-token";

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use kube::api::ObjectMeta;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;
    use secrecy::ExposeSecret;
    use std::collections::BTreeMap;

    fn secret(namespace: &str, name: &str, data: &[(&str, &[u8])]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..ObjectMeta::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Secret::default()
        }
    }

    fn lookup(secrets: &[Secret]) -> StoreSecrets {
        let (store, mut writer) = reflector::store();
        for s in secrets {
            writer.apply_watcher_event(&Event::Apply(s.clone()));
        }
        StoreSecrets::new(store)
    }

    #[test]
    fn reads_a_key_of_a_secret_in_the_same_namespace() {
        let l = lookup(&[secret("team-a", "gh", &[("clientSecret", b"s3cret")])]);
        let value = l.get("team-a", "gh", "clientSecret").expect("found");
        assert_eq!(value.expose_secret(), "s3cret");
    }

    #[test]
    fn a_secret_in_another_namespace_is_not_found() {
        let l = lookup(&[secret("team-b", "gh", &[("clientSecret", b"theirs")])]);
        assert_eq!(
            l.get("team-a", "gh", "clientSecret").err(),
            Some(SecretLookupError::NotFound)
        );
    }

    #[test]
    fn missing_keys_and_binary_values_are_reported_without_the_value() {
        let l = lookup(&[secret("ns", "s", &[("bin", &[0xff, 0xfe])])]);
        assert_eq!(
            l.get("ns", "s", "other").err(),
            Some(SecretLookupError::KeyMissing)
        );
        assert_eq!(
            l.get("ns", "s", "bin").err(),
            Some(SecretLookupError::NotUtf8)
        );
        let empty = lookup(&[Secret {
            metadata: ObjectMeta {
                name: Some("e".into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        }]);
        assert_eq!(
            empty.get("ns", "e", "k").err(),
            Some(SecretLookupError::KeyMissing)
        );
    }

    #[test]
    fn strip_drops_annotations_and_managed_fields() {
        let mut s = secret("ns", "s", &[("k", b"v")]);
        s.metadata.annotations = Some(BTreeMap::from([(
            "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
            "{\"data\":{\"k\":\"dg==\"}}".to_owned(),
        )]));
        s.metadata.managed_fields = Some(vec![Default::default()]);
        strip(&mut s);
        assert!(s.metadata.annotations.is_none());
        assert!(s.metadata.managed_fields.is_none());
        assert!(s.data.is_some(), "the data stays");
    }
}
