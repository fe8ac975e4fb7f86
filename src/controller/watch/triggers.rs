//! What makes a resource be reconciled: its own changes (filtered so the controller's status
//! writes do not wake it up again), a finished re-list, and this replica becoming the leader.

use futures::Stream;
use kube::Resource;
use kube::runtime::watcher::Event;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use tokio::sync::watch;

/// Predicate hash of the parts of an object whose change needs a reconcile: the generation
/// (spec changes, and the start of deletion), the deletion mark and the finalizers (the
/// finalizer helper relies on seeing its own finalizer land). Status and other metadata do not
/// count, so a status write never triggers another reconcile.
pub fn changes<K: Resource>(obj: &K) -> Option<u64> {
    let meta = obj.meta();
    let mut hasher = DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    meta.deletion_timestamp.is_some().hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    Some(hasher.finish())
}

/// Turns reflector events into objects to reconcile. Objects of a re-list are held back until
/// the list is complete: the reflector store swaps in the new list only then, and a reconcile
/// that looked the object up earlier would not find it. Deletions and errors are handled by the
/// caller before this point.
#[derive(Debug)]
pub struct RelistBuffer<K> {
    pending: Vec<K>,
}

impl<K> Default for RelistBuffer<K> {
    fn default() -> Self {
        Self {
            pending: Vec::new(),
        }
    }
}

impl<K> RelistBuffer<K> {
    pub fn push(&mut self, event: Event<K>) -> Vec<K> {
        match event {
            Event::Apply(obj) => vec![obj],
            Event::Delete(_) => Vec::new(),
            Event::Init => {
                self.pending.clear();
                Vec::new()
            }
            Event::InitApply(obj) => {
                self.pending.push(obj);
                Vec::new()
            }
            Event::InitDone => std::mem::take(&mut self.pending),
        }
    }
}

/// Yields once each time `leader` turns `true` after this call (the value at the time of the
/// call counts as seen).
pub fn rising_edges(mut leader: watch::Receiver<bool>) -> impl Stream<Item = ()> + Send {
    leader.borrow_and_update();
    futures::stream::unfold(leader, |mut rx| async move {
        loop {
            if rx.changed().await.is_err() {
                return None;
            }
            if *rx.borrow_and_update() {
                return Some(((), rx));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::test_objects::server;
    use futures::StreamExt as _;
    use kube::ResourceExt as _;

    #[test]
    fn status_and_label_changes_do_not_count_but_spec_deletion_and_finalizers_do() {
        let base = server("a", "x", r#"{"mode":"none"}"#);
        let h = changes(&base);

        let mut status_only = base.clone();
        status_only.meta_mut().resource_version = Some("99".into());
        status_only.labels_mut().insert("team".into(), "a".into());
        assert_eq!(changes(&status_only), h);

        let mut next_gen = base.clone();
        next_gen.meta_mut().generation = Some(2);
        assert_ne!(changes(&next_gen), h);

        let mut finalized = base.clone();
        finalized
            .finalizers_mut()
            .push("mcpoauth.dev/registration".into());
        assert_ne!(changes(&finalized), h);

        let mut deleting = base.clone();
        deleting.meta_mut().deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert_ne!(changes(&deleting), h);
    }

    #[test]
    fn relisted_objects_are_released_when_the_list_is_complete() {
        let mut b = RelistBuffer::default();
        assert_eq!(b.push(Event::Apply(1)), vec![1]);
        assert!(b.push(Event::Delete(2)).is_empty());
        assert!(b.push(Event::Init).is_empty());
        assert!(b.push(Event::InitApply(3)).is_empty());
        assert!(b.push(Event::InitApply(4)).is_empty());
        assert_eq!(b.push(Event::InitDone), vec![3, 4]);
        assert!(b.push(Event::InitDone).is_empty(), "released once");
        // A re-list that restarts drops what the aborted one had collected.
        b.push(Event::Init);
        b.push(Event::InitApply(5));
        b.push(Event::Init);
        b.push(Event::InitApply(6));
        assert_eq!(b.push(Event::InitDone), vec![6]);
    }

    #[tokio::test]
    async fn rising_edges_fire_when_leadership_is_gained() {
        let (tx, rx) = watch::channel(true);
        let mut edges = Box::pin(rising_edges(rx));
        tx.send(false).expect("send");
        tx.send(true).expect("send");
        assert_eq!(
            tokio::time::timeout(std::time::Duration::from_secs(1), edges.next()).await,
            Ok(Some(()))
        );
        tx.send(false).expect("send");
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), edges.next())
                .await
                .is_err(),
            "losing the lead is not an edge"
        );
        drop(tx);
        assert_eq!(edges.next().await, None);
    }
}
