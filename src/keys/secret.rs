//! `--encryption-key-secret`: the encryption key ring read from one Secret in the operator's
//! own namespace through the API server, followed with a watch so a changed Secret applies
//! without a restart.
//!
//! The Secret's data uses the same layout as a mounted Secret directory (one entry per key id,
//! a `primary` entry naming the key that seals new values; see
//! [`KeyRing::from_entries`]). Each version of the Secret is handed to the
//! [`KeyRingReloader`], which installs a good ring and keeps the last good one when the Secret
//! becomes invalid or is deleted. The watch uses a `metadata.name` field selector, so RBAC can
//! restrict get/list/watch to this one Secret (`resourceNames`).

use super::reload::KeyRingReloader;
use crate::crypto::{KeyRing, KeyRingError};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Watches Secret `namespace/name` until `cancel` fires, offering every version to `reloader`.
pub fn spawn(
    client: Client,
    namespace: &str,
    name: &str,
    reloader: Arc<KeyRingReloader>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    let api = Api::<Secret>::namespaced(client, namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut follow = Follow::new(namespace, name);
    tracing::info!(secret = %follow.what, "watching the encryption key ring Secret");
    let mut events = watcher::watcher(api, config)
        .default_backoff()
        .take_until(cancel.cancelled_owned())
        .boxed();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => match follow.step(event) {
                    Step::Offer(ring) => {
                        follow.last_problem = None;
                        reloader.offer(ring);
                    }
                    Step::Missing(why) => {
                        follow.last_problem = None;
                        reloader.unavailable(&why);
                    }
                    Step::Nothing => {}
                },
                Err(e) => {
                    let problem = format!("cannot watch {}: {e}", follow.what);
                    if follow.last_problem.as_deref() == Some(problem.as_str()) {
                        continue;
                    }
                    if reloader.handle().is_none() {
                        // Before the first ring this is why the gateway is not ready.
                        reloader.unavailable(&problem);
                    } else {
                        tracing::warn!(problem = %problem, "key ring Secret watch failed; keeping the key ring in use and retrying");
                    }
                    follow.last_problem = Some(problem);
                }
            }
        }
        tracing::debug!(secret = %follow.what, "key ring Secret watch stopped");
    })
}

/// The key ring in `secret`'s data.
pub fn ring_from_secret(secret: &Secret) -> Result<KeyRing, KeyRingError> {
    let entries = secret
        .data
        .iter()
        .flatten()
        .map(|(name, value)| (name.clone(), value.0.clone()));
    KeyRing::from_entries(entries)
}

/// What to do with one watch event.
#[derive(Debug)]
enum Step {
    Offer(Result<KeyRing, KeyRingError>),
    Missing(String),
    Nothing,
}

/// Watch state: whether the current (re-)list contained the Secret.
struct Follow {
    name: String,
    /// "Secret namespace/name", for messages.
    what: String,
    listed: bool,
    /// Last watch error reported, so a retry loop does not repeat it.
    last_problem: Option<String>,
}

impl Follow {
    fn new(namespace: &str, name: &str) -> Self {
        Self {
            name: name.to_owned(),
            what: format!("Secret {namespace}/{name}"),
            listed: false,
            last_problem: None,
        }
    }

    fn step(&mut self, event: Event<Secret>) -> Step {
        match event {
            Event::Init => {
                self.listed = false;
                Step::Nothing
            }
            Event::InitApply(secret) | Event::Apply(secret) => {
                if secret.metadata.name.as_deref() != Some(self.name.as_str()) {
                    return Step::Nothing;
                }
                self.listed = true;
                Step::Offer(ring_from_secret(&secret))
            }
            Event::InitDone if self.listed => Step::Nothing,
            Event::InitDone => Step::Missing(format!("{} not found", self.what)),
            Event::Delete(secret) if secret.metadata.name.as_deref() == Some(&self.name) => {
                self.listed = false;
                Step::Missing(format!("{} was deleted", self.what))
            }
            Event::Delete(_) => Step::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use kube::api::ObjectMeta;

    const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const K2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some("ops".to_owned()),
                ..ObjectMeta::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn the_secret_data_is_read_like_a_mounted_secret() {
        let ring = ring_from_secret(&secret(
            "keys",
            &[("primary", "k2"), ("k1", K1), ("k2", K2)],
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ring.primary_id(), "k2");
        assert_eq!(ring.key_ids(), ["k1", "k2"]);

        let empty = ring_from_secret(&Secret::default()).err();
        assert!(matches!(empty, Some(KeyRingError::Empty)), "{empty:?}");
        let short = ring_from_secret(&secret("keys", &[("k1", "c2hvcnQ=")])).err();
        let msg = short.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("\"k1\"") && !msg.contains("c2hvcnQ"), "{msg}");
        let no_primary = ring_from_secret(&secret("keys", &[("k1", K1), ("k2", K2)])).err();
        assert!(
            matches!(no_primary, Some(KeyRingError::NoPrimary)),
            "{no_primary:?}"
        );
    }

    #[test]
    fn a_list_without_the_secret_or_a_deletion_is_reported_missing() {
        let mut follow = Follow::new("ops", "keys");
        assert!(matches!(follow.step(Event::Init), Step::Nothing));
        assert!(
            matches!(follow.step(Event::InitDone), Step::Missing(m) if m == "Secret ops/keys not found")
        );

        assert!(matches!(follow.step(Event::Init), Step::Nothing));
        let listed = follow.step(Event::InitApply(secret("keys", &[("k1", K1)])));
        assert!(matches!(listed, Step::Offer(Ok(_))), "{listed:?}");
        assert!(matches!(follow.step(Event::InitDone), Step::Nothing));

        let bad = follow.step(Event::Apply(secret("keys", &[("k1", "!!")])));
        assert!(
            matches!(bad, Step::Offer(Err(KeyRingError::InvalidBase64 { .. }))),
            "{bad:?}"
        );
        assert!(matches!(
            follow.step(Event::Apply(secret("other", &[]))),
            Step::Nothing
        ));
        assert!(
            matches!(follow.step(Event::Delete(secret("keys", &[]))), Step::Missing(m) if m == "Secret ops/keys was deleted")
        );
    }
}
