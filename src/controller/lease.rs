//! Leader election on a `coordination.k8s.io/v1` Lease: every replica serves traffic from its
//! own registry, but only the Lease holder writes status. A holder renews every third of the
//! lease duration; a holder that cannot renew steps down before its lease could be taken over,
//! and a lease that was not renewed within its duration is taken over, so a lost holder hands
//! over within one duration.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, PostParams};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What to do with the Lease as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No Lease exists: create it, holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Its holder let it lapse (or it has none): take it over.
    TakeOver,
    /// Someone else holds a live lease.
    Follow,
}

/// Pure: decide from the Lease's spec (if any), who we are and the time.
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::Create;
    };
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == me => Decision::Renew,
        None | Some("") => Decision::TakeOver,
        Some(_) => {
            let duration = SignedDuration::from_secs(i64::from(
                spec.lease_duration_seconds.unwrap_or(15).max(1),
            ));
            let renewed = spec
                .renew_time
                .as_ref()
                .or(spec.acquire_time.as_ref())
                .map(|t| t.0);
            match renewed {
                Some(t) if t.checked_add(duration).is_ok_and(|end| end > now) => Decision::Follow,
                _ => Decision::TakeOver,
            }
        }
    }
}

/// The spec to write for `decision` (None for `Follow`).
pub fn next_spec(
    current: Option<&LeaseSpec>,
    decision: Decision,
    me: &str,
    duration: Duration,
    now: Timestamp,
) -> Option<LeaseSpec> {
    let secs = i32::try_from(duration.as_secs()).unwrap_or(i32::MAX).max(1);
    let transitions = current.and_then(|s| s.lease_transitions).unwrap_or(0);
    match decision {
        Decision::Follow => None,
        Decision::Create => Some(LeaseSpec {
            holder_identity: Some(me.to_owned()),
            lease_duration_seconds: Some(secs),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        }),
        Decision::Renew => Some(LeaseSpec {
            renew_time: Some(MicroTime(now)),
            lease_duration_seconds: Some(secs),
            ..current.cloned().unwrap_or_default()
        }),
        Decision::TakeOver => Some(LeaseSpec {
            holder_identity: Some(me.to_owned()),
            lease_duration_seconds: Some(secs),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions.saturating_add(1)),
            ..current.cloned().unwrap_or_default()
        }),
    }
}

/// Runs the election in the background and publishes whether this replica leads.
pub struct LeaderElector;

impl LeaderElector {
    /// Start electing; the receiver says `true` while this replica holds the Lease. On cancel a
    /// holder releases the Lease so another replica takes over at once.
    pub fn spawn(
        client: Client,
        namespace: &str,
        name: &str,
        identity: String,
        duration: Duration,
        cancel: CancellationToken,
    ) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        let api: Api<Lease> = Api::namespaced(client, namespace);
        let name = name.to_owned();
        tokio::spawn(async move {
            let renew_every = (duration / 3).max(Duration::from_millis(200));
            // A holder that has not renewed for this long stops acting before anyone else can
            // take over (they must wait the whole duration).
            let step_down_after = duration.saturating_sub(renew_every);
            let mut last_renewal: Option<tokio::time::Instant> = None;
            loop {
                match round(&api, &name, &identity, duration).await {
                    Ok(true) => {
                        last_renewal = Some(tokio::time::Instant::now());
                        set(&tx, true, &name, &identity);
                    }
                    Ok(false) => {
                        last_renewal = None;
                        set(&tx, false, &name, &identity);
                    }
                    Err(e) => {
                        tracing::warn!(lease = %name, error = %e, "leader election round failed");
                        if last_renewal.is_none_or(|t| t.elapsed() >= step_down_after) {
                            set(&tx, false, &name, &identity);
                        }
                    }
                }
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(renew_every) => {}
                }
            }
            if *tx.borrow() {
                release(&api, &name, &identity).await;
                let _ = tx.send(false);
            }
        });
        rx
    }
}

fn set(tx: &watch::Sender<bool>, leading: bool, name: &str, identity: &str) {
    if *tx.borrow() != leading {
        if leading {
            tracing::info!(lease = %name, identity = %identity, "became leader: this replica writes status");
        } else {
            tracing::info!(lease = %name, identity = %identity, "not the leader: status is written by another replica");
        }
        let _ = tx.send(leading);
    }
}

/// One election round: read, decide, write with optimistic concurrency. `Ok(true)` = we hold it.
async fn round(
    api: &Api<Lease>,
    name: &str,
    me: &str,
    duration: Duration,
) -> Result<bool, kube::Error> {
    let current = api.get_opt(name).await?;
    let now = Timestamp::now();
    let decision = decide(current.as_ref().and_then(|l| l.spec.as_ref()), me, now);
    let Some(spec) = next_spec(
        current.as_ref().and_then(|l| l.spec.as_ref()),
        decision,
        me,
        duration,
        now,
    ) else {
        return Ok(false);
    };
    let result = match current {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec),
            };
            api.create(&PostParams::default(), &lease).await.map(|_| ())
        }
        Some(mut lease) => {
            // `replace` carries the resourceVersion we read: a concurrent writer makes it fail.
            lease.spec = Some(spec);
            api.replace(name, &PostParams::default(), &lease)
                .await
                .map(|_| ())
        }
    };
    match result {
        Ok(()) => Ok(true),
        // Lost a race (409 Conflict / AlreadyExists): someone else acted first.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Hand the Lease back so another replica need not wait for it to lapse.
async fn release(api: &Api<Lease>, name: &str, me: &str) {
    let Ok(Some(mut lease)) = api.get_opt(name).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(me) {
        return;
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    spec.acquire_time = None;
    match api.replace(name, &PostParams::default(), &lease).await {
        Ok(_) => tracing::info!(lease = %name, "released the lease"),
        Err(e) => {
            tracing::warn!(lease = %name, error = %e, "could not release the lease; it lapses by itself")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("timestamp")
    }

    fn held_by(holder: &str, renewed: i64, duration: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            renew_time: Some(MicroTime(t(renewed))),
            acquire_time: Some(MicroTime(t(renewed))),
            lease_duration_seconds: Some(duration),
            lease_transitions: Some(3),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn decisions_follow_the_lease() {
        assert_eq!(decide(None, "a", t(0)), Decision::Create);
        assert_eq!(
            decide(Some(&held_by("a", 0, 15)), "a", t(5)),
            Decision::Renew
        );
        assert_eq!(
            decide(Some(&held_by("b", 0, 15)), "a", t(14)),
            Decision::Follow
        );
        assert_eq!(
            decide(Some(&held_by("b", 0, 15)), "a", t(15)),
            Decision::TakeOver,
            "a lease not renewed within its duration is taken over"
        );
        let released = LeaseSpec {
            holder_identity: None,
            ..held_by("b", 0, 15)
        };
        assert_eq!(decide(Some(&released), "a", t(1)), Decision::TakeOver);
        let no_times = LeaseSpec {
            holder_identity: Some("b".into()),
            ..LeaseSpec::default()
        };
        assert_eq!(decide(Some(&no_times), "a", t(1)), Decision::TakeOver);
    }

    #[test]
    fn take_over_counts_a_transition_and_renew_keeps_the_acquire_time() {
        let cur = held_by("b", 0, 15);
        let taken = next_spec(
            Some(&cur),
            Decision::TakeOver,
            "a",
            Duration::from_secs(15),
            t(20),
        )
        .expect("spec");
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        assert_eq!(taken.lease_transitions, Some(4));
        assert_eq!(taken.acquire_time, Some(MicroTime(t(20))));
        let mine = held_by("a", 0, 15);
        let renewed = next_spec(
            Some(&mine),
            Decision::Renew,
            "a",
            Duration::from_secs(15),
            t(5),
        )
        .expect("spec");
        assert_eq!(renewed.acquire_time, Some(MicroTime(t(0))));
        assert_eq!(renewed.renew_time, Some(MicroTime(t(5))));
        assert_eq!(renewed.lease_transitions, Some(3));
        assert!(
            next_spec(
                Some(&cur),
                Decision::Follow,
                "a",
                Duration::from_secs(15),
                t(1)
            )
            .is_none()
        );
    }
}
