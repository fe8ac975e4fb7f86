//! Wiring: per watch scope (all namespaces, or each listed namespace), three reflectors —
//! Secrets (metadata only: see [`super::secrets`]), TokenExchangePolicies, RemoteMCPServers —
//! and two controllers.
//!
//! Ordering is what makes this correct, so the streams are built by hand rather than with
//! `Controller::new(..).watches(..)`:
//! - each reflector updates its store *before* its event is looked at, so a reconcile triggered
//!   by a Secret or policy change reads the new value (a separate `watches()` stream could
//!   deliver the trigger before the store has it);
//! - the policy controller starts after the Secret store has its first list, the server
//!   controller after the Secret and policy stores have theirs, so nothing is reported missing
//!   just because it has not been listed yet;
//! - objects of a re-list are reconciled once the whole list is in the store
//!   ([`RelistBuffer`]), and registrations the fresh list lacks are swept;
//! - deletions unregister on every replica straight from the watch; the finalizer covers the
//!   leader's cleanup and keeps the object until then;
//! - the trigger stream only passes generation, deletion and finalizer changes, so a status
//!   write never wakes the controller up again (and a reconcile that changes nothing writes
//!   nothing);
//! - becoming the leader reconciles everything once, so the new leader writes any status its
//!   predecessor left stale.
//!
//! Every reflector wraps objects in `DeserializeGuard`, so one object that does not decode
//! cannot stop the watch of all the others.

use super::config::{KubeSource, Leadership, Scope, scopes};
use super::context::Ctx;
use super::error::{Error, Retries};
use super::follow::{PolicyFollower, Retrigger, SecretFollower, ServerFollower};
use super::lease::LeaderElector;
use super::secrets::{self, ApiSecrets, SecretMeta, StoreSecrets};
use super::status::FIELD_MANAGER;
use super::triggers::{RelistBuffer, changes, rising_edges};
use super::{PolicyObject, ServerObject, events, policy, server};
use crate::flows::Flows;
use crate::http::Readiness;
use crate::metrics::Metrics;
use crate::oauth::Discovery;
use crate::registry::Registry;
use futures::channel::mpsc::unbounded;
use futures::future::{self, BoxFuture};
use futures::{FutureExt as _, Stream, StreamExt as _};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::Api;
use kube::runtime::controller::{self, Action, Config, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{PredicateConfig, WatchStreamExt as _};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Name of the `/readyz` gate held until every watch has its first list.
pub const READINESS_GATE: &str = "kubernetes";
/// Server reconciles running at once (each may probe a remote server).
const SERVER_CONCURRENCY: u16 = 32;
/// Policy reconciles running at once.
const POLICY_CONCURRENCY: u16 = 8;

/// Starts the controllers in the background; they stop when `cancel` fires (running reconciles
/// finish first). `/readyz` says not ready until every watch has listed its objects once.
pub fn spawn(
    source: KubeSource,
    flows: Arc<Flows>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    discovery: Discovery,
    readiness: Arc<Readiness>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    let KubeSource { client, config } = source;
    let leader = match config.leadership {
        Leadership::Fixed(rx) => rx,
        Leadership::Lease {
            namespace,
            name,
            duration,
        } => LeaderElector::spawn(
            client.clone(),
            &namespace,
            &name,
            config.identity.clone(),
            duration,
            cancel.clone(),
        ),
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: FIELD_MANAGER.to_owned(),
            instance: Some(config.identity.clone()),
        },
    );
    let sync = Arc::new(SyncState::new(readiness));
    let scopes = scopes(&config.namespaces);
    tracing::info!(
        scopes = %scopes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        identity = %config.identity,
        "starting the controllers"
    );
    let mut tasks: Vec<BoxFuture<'static, ()>> = Vec::new();
    let mut stores_ready: Vec<BoxFuture<'static, ()>> = Vec::new();
    for scope in scopes {
        let parts = ScopeParts {
            scope,
            client: client.clone(),
            flows: flows.clone(),
            registry: registry.clone(),
            metrics: metrics.clone(),
            discovery: discovery.clone(),
            recorder: recorder.clone(),
            leader: leader.clone(),
            sync: sync.clone(),
            cancel: cancel.clone(),
        };
        let (scope_tasks, ready) = parts.build();
        tasks.extend(scope_tasks);
        stores_ready.push(ready);
    }
    let wait_sync = sync.clone();
    tasks.push(
        async move {
            future::join_all(stores_ready).await;
            wait_sync.synced();
        }
        .boxed(),
    );
    // Everything ends after `cancel`: the controllers shut down gracefully, dropping their
    // reflectors, which also releases the readiness waiter.
    tokio::spawn(async move {
        future::join_all(tasks).await;
        tracing::info!("controllers stopped");
    })
}

/// One kind's reconcile and error policy.
struct Reconciler<K, Fut> {
    kind: &'static str,
    reconcile: fn(Arc<K>, Arc<Ctx>) -> Fut,
    error_policy: fn(Arc<K>, &Error, Arc<Ctx>) -> Action,
}

/// Everything one scope's watches and controllers share.
struct ScopeParts {
    scope: Scope,
    client: Client,
    flows: Arc<Flows>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    discovery: Discovery,
    recorder: Recorder,
    leader: watch::Receiver<bool>,
    sync: Arc<SyncState>,
    cancel: CancellationToken,
}

impl ScopeParts {
    /// The scope's long-running tasks, and a future that completes when its stores have their
    /// first list.
    fn build(self) -> (Vec<BoxFuture<'static, ()>>, BoxFuture<'static, ()>) {
        let (secret_store, secret_writer) = reflector::store::<SecretMeta>();
        let (policy_store, policy_writer) = reflector::store::<PolicyObject>();
        let (server_store, server_writer) = reflector::store::<ServerObject>();
        let (server_tx, server_rx) = unbounded::<ObjectRef<ServerObject>>();
        let (policy_tx, policy_rx) = unbounded::<ObjectRef<PolicyObject>>();
        let retrigger = Retrigger {
            servers: server_tx,
            policies: policy_tx,
        };
        let (secrets_listed, secrets_listed_rx) = watch::channel(false);
        let (policies_listed, policies_listed_rx) = watch::channel(false);
        let (servers_listed, servers_listed_rx) = watch::channel(false);

        // Secrets: metadata only in the watch; the data of referenced ones fetched on demand.
        let secret_lookup =
            StoreSecrets::new(secret_store, Arc::new(ApiSecrets(self.client.clone())));
        let ctx = Arc::new(Ctx {
            client: self.client.clone(),
            registry: self.registry.clone(),
            discovery: self.discovery.clone(),
            flows: self.flows.clone(),
            recorder: self.recorder.clone(),
            leader: self.leader.clone(),
            metrics: self.metrics.clone(),
            servers: server_store.clone(),
            policies: policy_store.clone(),
            secrets: secret_lookup.clone(),
            retries: Retries::default(),
        });

        // Secrets: no controller of their own, only re-triggers.
        let follower = SecretFollower {
            secrets: secret_lookup,
            servers: server_store.clone(),
            policies: policy_store.clone(),
            retrigger: retrigger.clone(),
            listed: secrets_listed,
        };
        let sync = self.sync.clone();
        // `Api<PartialObjectMeta<_>>` lists and watches metadata only: the data of Secrets
        // nothing references never reaches this process.
        let secrets = watcher::watcher(
            api::<SecretMeta>(&self.client, &self.scope),
            watcher::Config::default().fields(secrets::IGNORED_TYPES_SELECTOR),
        )
        .default_backoff()
        .modify(secrets::strip)
        .reflect(secret_writer)
        .take_until(self.cancel.clone().cancelled_owned())
        .for_each(move |event| {
            match event {
                Ok(event) => follower.observe(&event),
                Err(e) => sync.watch_failed("Secrets", &e),
            }
            future::ready(())
        })
        .boxed();

        let follower = PolicyFollower {
            registry: self.registry.clone(),
            policies: policy_store.clone(),
            servers: server_store.clone(),
            scope: self.scope.clone(),
            retrigger,
            listed: policies_listed,
        };
        let policies = objects(
            api::<PolicyObject>(&self.client, &self.scope),
            policy_writer,
            move |e| follower.observe(e),
            "TokenExchangePolicies",
            self.sync.clone(),
        );
        let policy_controller = self.controller(
            after(listed(vec![secrets_listed_rx.clone()]), policies),
            policy_store,
            policy_rx,
            POLICY_CONCURRENCY,
            Reconciler {
                kind: policy::KIND,
                reconcile: policy::reconcile,
                error_policy: policy::error_policy,
            },
            &ctx,
        );

        let follower = ServerFollower {
            registry: self.registry.clone(),
            servers: server_store.clone(),
            scope: self.scope.clone(),
            listed: servers_listed,
        };
        let servers = objects(
            api::<ServerObject>(&self.client, &self.scope),
            server_writer,
            move |e| follower.observe(e),
            "RemoteMCPServers",
            self.sync.clone(),
        );
        let server_controller = self.controller(
            after(
                listed(vec![secrets_listed_rx.clone(), policies_listed_rx.clone()]),
                servers,
            ),
            server_store,
            server_rx,
            SERVER_CONCURRENCY,
            Reconciler {
                kind: server::KIND,
                reconcile: server::reconcile,
                error_policy: server::error_policy,
            },
            &ctx,
        );

        let ready = listed(vec![
            secrets_listed_rx,
            policies_listed_rx,
            servers_listed_rx,
        ]);
        (vec![secrets, policy_controller, server_controller], ready)
    }

    /// A controller over `objects` (its reflector's stream) that also reconciles what
    /// `retriggered` names, and everything when this replica becomes the leader.
    fn controller<K, Fut>(
        &self,
        objects: impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
        store: Store<K>,
        retriggered: impl Stream<Item = ObjectRef<K>> + Send + 'static,
        concurrency: u16,
        reconciler: Reconciler<K, Fut>,
        ctx: &Arc<Ctx>,
    ) -> BoxFuture<'static, ()>
    where
        K: Resource<DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
        Fut: Future<Output = Result<Action, Error>> + Send + 'static,
    {
        let report_ctx = ctx.clone();
        Controller::for_stream(objects, store)
            .reconcile_on(retriggered)
            .reconcile_all_on(rising_edges(self.leader.clone()))
            .graceful_shutdown_on(self.cancel.clone().cancelled_owned())
            .with_config(Config::default().concurrency(concurrency))
            .run(reconciler.reconcile, reconciler.error_policy, ctx.clone())
            .for_each(move |result| report(reconciler.kind, result, report_ctx.clone()))
            .boxed()
    }
}

/// Objects of `K` to reconcile: the reflector's events are observed (after the store has
/// them), re-lists are released whole, and only changes that need a reconcile pass.
fn objects<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    mut observe: impl FnMut(&Event<K>) + Send + 'static,
    what: &'static str,
    sync: Arc<SyncState>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let mut relist = RelistBuffer::default();
    watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(super::trim::bookkeeping)
        .reflect(writer)
        .filter_map(move |event| {
            future::ready(match event {
                Ok(event) => {
                    observe(&event);
                    Some(relist.push(event))
                }
                Err(e) => {
                    sync.watch_failed(what, &e);
                    None
                }
            })
        })
        .flat_map(|objs| futures::stream::iter(objs.into_iter().map(Ok)))
        .predicate_filter(changes::<K>, PredicateConfig::default())
}

/// The API of `K` in `scope`.
fn api<K>(client: &Client, scope: &Scope) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    match scope {
        Scope::All => Api::all(client.clone()),
        Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
    }
}

/// `stream`, started only once `gate` has completed.
fn after<S: Stream + Send + 'static>(
    gate: BoxFuture<'static, ()>,
    stream: S,
) -> impl Stream<Item = S::Item> + Send + 'static
where
    S::Item: Send,
{
    futures::stream::once(gate)
        .filter_map(|()| future::ready(None))
        .chain(stream)
}

/// Completes once every watch behind `signals` has delivered its first complete list (its
/// store is filled before the signal is sent), or has stopped. A watch channel rather than
/// `Store::wait_until_ready`, which wakes only the last of several concurrent waiters.
fn listed(signals: Vec<watch::Receiver<bool>>) -> BoxFuture<'static, ()> {
    future::join_all(signals.into_iter().map(|mut rx| async move {
        // Err: the watch stopped (shutdown); nothing left to wait for.
        let _ = rx.wait_for(|listed| *listed).await;
    }))
    .map(|_| ())
    .boxed()
}

/// Logs one reconcile result; a transient failure also becomes a Warning Event (leader only).
async fn report<K>(
    kind: &'static str,
    result: Result<(ObjectRef<K>, Action), controller::Error<Error, watcher::Error>>,
    ctx: Arc<Ctx>,
) where
    K: Resource<DynamicType = ()> + reflector::Lookup<DynamicType = ()>,
{
    match result {
        Ok((obj, action)) => {
            tracing::debug!(kind, object = %obj, ?action, "reconciled");
        }
        Err(controller::Error::ReconcilerFailed(err, obj)) if err.is_transient() => {
            tracing::warn!(kind, object = %obj, error = %err, "reconcile failed; retrying with backoff");
            if ctx.is_leader() {
                let regarding: ObjectReference = (*obj).into();
                events::publish(&ctx.recorder, &events::failure_event(&err), &regarding).await;
            }
        }
        Err(controller::Error::ReconcilerFailed(err, obj)) => {
            tracing::info!(kind, object = %obj, reason = err.category(), "not registered: the resource is invalid (see its status)");
        }
        Err(controller::Error::ObjectNotFound(obj)) => {
            tracing::debug!(kind, object = %obj, "reconcile skipped: the object is gone");
        }
        Err(controller::Error::QueueError(e)) => {
            tracing::warn!(kind, error = %e, "watch error");
        }
        Err(e @ controller::Error::RunnerError(_)) => {
            tracing::error!(kind, error = %e, "controller runner error");
        }
    }
    ctx.metrics
        .registered_servers
        .set(ctx.registry().snapshot().servers.len() as i64);
}

/// The `/readyz` gate of the watches: blocked until every store has its first list, with the
/// last watch error as the reason while that takes long.
struct SyncState {
    readiness: Arc<Readiness>,
    synced: Mutex<bool>,
}

impl SyncState {
    fn new(readiness: Arc<Readiness>) -> Self {
        readiness.block(
            READINESS_GATE,
            "waiting for the first list of RemoteMCPServers, TokenExchangePolicies and Secrets",
        );
        Self {
            readiness,
            synced: Mutex::new(false),
        }
    }

    fn watch_failed(&self, what: &str, error: &watcher::Error) {
        tracing::warn!(watch = what, error = %error, "watch failed; retrying with backoff");
        if let Ok(synced) = self.synced.lock()
            && !*synced
        {
            self.readiness
                .block(READINESS_GATE, format!("cannot watch {what}: {error}"));
        }
    }

    fn synced(&self) {
        if let Ok(mut synced) = self.synced.lock() {
            *synced = true;
            self.readiness.unblock(READINESS_GATE);
            tracing::info!("watches synced");
        }
    }
}
