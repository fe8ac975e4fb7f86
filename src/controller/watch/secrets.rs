//! Secret values for the validators.
//!
//! The operator does not keep every Secret of the cluster in memory. Secrets are watched
//! metadata-only (name, namespace, resourceVersion: enough to re-trigger the resources that
//! reference a changed Secret), and the *data* of a Secret is fetched with a `get` only when a
//! resource being reconciled references it, then kept while its resourceVersion stays the same.
//! A Secret no resource references is dropped from memory when it changes, is deleted, or the
//! Secret watch re-lists.
//!
//! The lookup reads exactly the namespace it is asked for; the validators only ever ask for the
//! namespace of the resource being validated, so a resource cannot make the gateway use another
//! namespace's Secret.

use crate::crd::validate::{SecretLookup, SecretLookupError};
use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::reflector::{ObjectRef, Store};
use secrecy::SecretString;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

/// What the metadata-only Secret watch keeps of each Secret.
pub type SecretMeta = PartialObjectMeta<Secret>;

/// Where Secret data comes from (the API server; a map in tests).
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// Secret `namespace/name`, or `None` when it does not exist.
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<Secret>, kube::Error>;
}

/// Reads Secrets through the API server (`get` on `secrets`).
pub struct ApiSecrets(pub kube::Client);

#[async_trait]
impl SecretSource for ApiSecrets {
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<Secret>, kube::Error> {
        Api::<Secret>::namespaced(self.0.clone(), namespace)
            .get_opt(name)
            .await
    }
}

/// The data of one referenced Secret, and the version it was read at.
struct Cached {
    resource_version: Option<String>,
    data: BTreeMap<String, Zeroizing<Vec<u8>>>,
}

type Key = (String, String);

/// A [`SecretLookup`] over the referenced Secrets' data, loaded with [`StoreSecrets::load`]
/// before each validation.
#[derive(Clone)]
pub struct StoreSecrets {
    meta: Store<SecretMeta>,
    source: Arc<dyn SecretSource>,
    values: Arc<Mutex<HashMap<Key, Cached>>>,
}

impl StoreSecrets {
    pub fn new(meta: Store<SecretMeta>, source: Arc<dyn SecretSource>) -> Self {
        Self {
            meta,
            source,
            values: Arc::default(),
        }
    }

    /// Makes the data of Secrets `names` in `namespace` current: fetched when not held yet or
    /// when the watch saw a newer version, dropped when the Secret no longer exists.
    pub async fn load(&self, namespace: &str, names: &[String]) -> Result<(), kube::Error> {
        for name in names {
            let key = (namespace.to_owned(), name.clone());
            let Some(meta) = self.meta.get(&ObjectRef::new(name).within(namespace)) else {
                self.forget(namespace, name);
                continue;
            };
            let seen = meta.metadata.resource_version.clone();
            let current = self.with_values(|values| {
                values
                    .get(&key)
                    .is_some_and(|c| seen.is_some() && c.resource_version == seen)
            });
            if current {
                continue;
            }
            match self.source.get(namespace, name).await? {
                Some(secret) => {
                    let cached = Cached {
                        resource_version: secret.metadata.resource_version,
                        data: secret
                            .data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (k, Zeroizing::new(v.0)))
                            .collect(),
                    };
                    self.with_values(|values| values.insert(key, cached));
                }
                None => self.forget(namespace, name),
            }
        }
        Ok(())
    }

    /// Drops the data of Secret `namespace/name` (deleted, or referenced by nothing).
    pub fn forget(&self, namespace: &str, name: &str) {
        self.with_values(|values| values.remove(&(namespace.to_owned(), name.to_owned())));
    }

    /// Keeps only the data of Secrets for which `referenced(namespace, name)` holds.
    pub fn retain(&self, referenced: impl Fn(&str, &str) -> bool) {
        self.with_values(|values| values.retain(|(ns, name), _| referenced(ns, name)));
    }

    /// `namespace/name` of every Secret whose data is held, sorted (tests, diagnostics).
    pub fn held(&self) -> Vec<String> {
        let mut held: Vec<String> = self.with_values(|values| {
            values
                .keys()
                .map(|(ns, name)| format!("{ns}/{name}"))
                .collect()
        });
        held.sort();
        held
    }

    fn with_values<T>(&self, f: impl FnOnce(&mut HashMap<Key, Cached>) -> T) -> T {
        // A panic while holding the lock cannot leave the map half-updated (every change is
        // one insert or remove), so a poisoned lock is still usable.
        let mut values = self
            .values
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut values)
    }
}

impl SecretLookup for StoreSecrets {
    fn get(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<SecretString, SecretLookupError> {
        // Deleted since it was loaded: not found, whatever is still held.
        if self
            .meta
            .get(&ObjectRef::new(name).within(namespace))
            .is_none()
        {
            return Err(SecretLookupError::NotFound);
        }
        self.with_values(|values| {
            let secret = values
                .get(&(namespace.to_owned(), name.to_owned()))
                .ok_or(SecretLookupError::NotFound)?;
            let bytes = secret.data.get(key).ok_or(SecretLookupError::KeyMissing)?;
            std::str::from_utf8(bytes)
                .map(|s| SecretString::from(s.to_owned()))
                .map_err(|_| SecretLookupError::NotUtf8)
        })
    }
}

/// Drops what the controller never reads before a Secret's metadata enters the store:
/// managed fields, annotations and labels.
pub fn strip(secret: &mut SecretMeta) {
    secret.metadata.managed_fields = None;
    secret.metadata.annotations = None;
    secret.metadata.labels = None;
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn secret(namespace: &str, name: &str, version: &str, data: &[(&str, &[u8])]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                resource_version: Some(version.into()),
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

    fn meta_of(s: &Secret) -> SecretMeta {
        PartialObjectMeta {
            types: None,
            metadata: s.metadata.clone(),
            _phantom: std::marker::PhantomData,
        }
    }

    /// The API server in miniature: its Secrets, and how many were fetched.
    #[derive(Default)]
    struct FakeApi {
        secrets: Mutex<Vec<Secret>>,
        fetches: AtomicUsize,
    }

    #[async_trait]
    impl SecretSource for FakeApi {
        async fn get(&self, namespace: &str, name: &str) -> Result<Option<Secret>, kube::Error> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let secrets = self.secrets.lock().expect("lock");
            Ok(secrets
                .iter()
                .find(|s| {
                    s.metadata.namespace.as_deref() == Some(namespace)
                        && s.metadata.name.as_deref() == Some(name)
                })
                .cloned())
        }
    }

    struct World {
        api: Arc<FakeApi>,
        writer: reflector::store::Writer<SecretMeta>,
        lookup: StoreSecrets,
    }

    impl World {
        fn new(secrets: &[Secret]) -> Self {
            let (store, writer) = reflector::store();
            let api = Arc::new(FakeApi::default());
            let mut w = Self {
                lookup: StoreSecrets::new(store, api.clone()),
                api,
                writer,
            };
            for s in secrets {
                w.put(s.clone());
            }
            w
        }

        /// A Secret written to the API server, as the metadata watch then sees it.
        fn put(&mut self, s: Secret) {
            self.writer.apply_watcher_event(&Event::Apply(meta_of(&s)));
            let mut all = self.api.secrets.lock().expect("lock");
            all.retain(|o| {
                o.metadata.name != s.metadata.name || o.metadata.namespace != s.metadata.namespace
            });
            all.push(s);
        }

        fn delete(&mut self, s: &Secret) {
            self.writer.apply_watcher_event(&Event::Delete(meta_of(s)));
            self.api
                .secrets
                .lock()
                .expect("lock")
                .retain(|o| o.metadata.name != s.metadata.name);
        }

        fn fetches(&self) -> usize {
            self.api.fetches.load(Ordering::SeqCst)
        }

        async fn load(&self, ns: &str, names: &[&str]) {
            let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            self.lookup.load(ns, &names).await.expect("load");
        }
    }

    #[tokio::test]
    async fn only_referenced_secrets_are_fetched_and_held() {
        let w = World::new(&[
            secret("team-a", "gh", "1", &[("clientSecret", b"s3cret")]),
            secret("team-a", "unrelated", "1", &[("password", b"not ours")]),
            secret("team-b", "gh", "1", &[("clientSecret", b"theirs")]),
        ]);
        assert!(
            w.lookup.held().is_empty(),
            "nothing is held before a resource needs it"
        );
        w.load("team-a", &["gh"]).await;
        assert_eq!(w.lookup.held(), ["team-a/gh"]);
        assert_eq!(w.fetches(), 1);
        let value = w.lookup.get("team-a", "gh", "clientSecret").expect("found");
        assert_eq!(value.expose_secret(), "s3cret");
        assert_eq!(
            w.lookup.get("team-a", "unrelated", "password").err(),
            Some(SecretLookupError::NotFound),
            "a Secret no reconcile loaded is not readable"
        );
        // Loading again without a change does not fetch again.
        w.load("team-a", &["gh"]).await;
        assert_eq!(w.fetches(), 1);
    }

    #[tokio::test]
    async fn a_changed_secret_is_fetched_again_and_a_deleted_one_is_dropped() {
        let v1 = secret("ns", "s", "1", &[("k", b"old")]);
        let mut w = World::new(std::slice::from_ref(&v1));
        w.load("ns", &["s"]).await;
        w.put(secret("ns", "s", "2", &[("k", b"new")]));
        w.load("ns", &["s"]).await;
        assert_eq!(w.fetches(), 2);
        assert_eq!(
            w.lookup.get("ns", "s", "k").expect("found").expose_secret(),
            "new"
        );
        w.delete(&v1);
        assert_eq!(
            w.lookup.get("ns", "s", "k").err(),
            Some(SecretLookupError::NotFound),
            "deleted: not found even before the next load"
        );
        w.load("ns", &["s"]).await;
        assert!(w.lookup.held().is_empty());
        // A Secret referenced but not (yet) created is simply not found, without a fetch.
        w.load("ns", &["missing"]).await;
        assert_eq!(w.fetches(), 2);
    }

    #[tokio::test]
    async fn forget_and_retain_drop_unreferenced_data() {
        let w = World::new(&[
            secret("a", "x", "1", &[("k", b"v")]),
            secret("a", "y", "1", &[("k", b"v")]),
            secret("b", "x", "1", &[("k", b"v")]),
        ]);
        w.load("a", &["x", "y"]).await;
        w.load("b", &["x"]).await;
        w.lookup.forget("a", "y");
        assert_eq!(w.lookup.held(), ["a/x", "b/x"]);
        w.lookup.retain(|ns, _| ns == "b");
        assert_eq!(w.lookup.held(), ["b/x"]);
    }

    #[tokio::test]
    async fn missing_keys_and_binary_values_are_reported_without_the_value() {
        let w = World::new(&[
            secret("ns", "s", "1", &[("bin", &[0xff, 0xfe])]),
            Secret {
                metadata: ObjectMeta {
                    name: Some("e".into()),
                    namespace: Some("ns".into()),
                    resource_version: Some("1".into()),
                    ..ObjectMeta::default()
                },
                ..Secret::default()
            },
        ]);
        w.load("ns", &["s", "e"]).await;
        assert_eq!(
            w.lookup.get("ns", "s", "other").err(),
            Some(SecretLookupError::KeyMissing)
        );
        assert_eq!(
            w.lookup.get("ns", "s", "bin").err(),
            Some(SecretLookupError::NotUtf8)
        );
        assert_eq!(
            w.lookup.get("ns", "e", "k").err(),
            Some(SecretLookupError::KeyMissing)
        );
    }

    #[test]
    fn strip_drops_annotations_labels_and_managed_fields() {
        let mut s = meta_of(&secret("ns", "s", "1", &[]));
        s.metadata.annotations = Some(BTreeMap::from([(
            "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
            "{\"data\":{\"k\":\"dg==\"}}".to_owned(),
        )]));
        s.metadata.labels = Some(BTreeMap::from([("a".to_owned(), "b".to_owned())]));
        s.metadata.managed_fields = Some(vec![Default::default()]);
        strip(&mut s);
        assert!(s.metadata.annotations.is_none());
        assert!(s.metadata.labels.is_none());
        assert!(s.metadata.managed_fields.is_none());
        assert_eq!(s.metadata.name.as_deref(), Some("s"), "the name stays");
    }
}
