//! Wiring: watches, caches and the controller loop, plus the process
//! lifecycle (leader election and its terms, signals, the metrics server).

use std::collections::hash_map::DefaultHasher;
use std::fmt::Debug;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::controller::{Config as ControllerConfig, Controller, Error as ControllerError};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{WatchStreamExt, predicates};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::aws::Aws;
use crate::aws::ecr::ImageResolver;
use crate::aws::tagging::Snapshots;
use crate::config::RunConfig;
use crate::context::{Shared, Stores};
use crate::crd::MovieApp;
use crate::events::{self, Routes};
use crate::fence::{self, Fence};
use crate::leader::{self, Elector, Role, Round, StepDown, Timing};
use crate::metrics::Metrics;
use crate::reconcile::memory::{self, AppRef, Memory};
use crate::reconcile::pause::PAUSED_ANNOTATION;
use crate::reconcile::{self, ADOPT_ANNOTATION, Context, children};
use crate::recorder::Recorder;
use crate::schedule::{self, ResyncBudget, Workers};

/// Label selecting every child the operator made.
const CHILD_SELECTOR: &str = "app.kubernetes.io/managed-by=movieapp-operator";

/// Runs the operator until SIGTERM/SIGINT.
pub async fn run(config: RunConfig) -> anyhow::Result<()> {
    run_until(config, shutdown_signal()).await
}

/// The stack of each of the runtime's worker threads, as large as the main
/// thread's: a reconcile is one deep future (provisioning every AWS
/// resource, the children, the status), and in a debug build it outgrows
/// tokio's default of 2 MiB. Untouched pages cost no memory.
pub const WORKER_STACK: usize = 8 << 20;

/// Runs the operator until `shutdown` resolves; then in-flight reconciles
/// finish and the leader Lease is released.
///
/// With `--leader-elect` the process is a standby until it holds the Lease,
/// then leads for one term: the controllers run while the Lease is renewed.
/// A term ends when the Lease is lost (not renewed before the renew
/// deadline, or taken): the fence closes, the controllers are dropped with
/// their in-flight reconciles, and the process stands by again.
pub async fn run_until(
    config: RunConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Refused before anything starts: a bad ARN would otherwise show only
    // as every MovieApp Stalled.
    config.check().map_err(anyhow::Error::msg)?;
    if config.worker_role_actions_only {
        warn!(
            "--worker-role-actions-only: the worker roles' policies name no resource and no \
             condition; this is for the enforced-IAM tests against moto, never for AWS"
        );
    }
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown.await;
            info!("shutting down: finishing in-flight reconciles");
            stop.cancel();
        }
    });
    let process = Process::start(config).await?;
    if process.config.leader_elect {
        process.run_elected(&stop).await?;
    } else {
        process.run_alone(&stop).await?;
    }
    info!("stopped");
    Ok(())
}

/// What outlives the terms of a process: its configuration, its metrics
/// and the metrics server.
struct Process {
    config: RunConfig,
    kube: kube::Config,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
}

/// How a term as leader ended.
enum TermEnd {
    /// Shut down: the controllers finished their in-flight reconciles.
    Stopped,
    /// The Lease was lost; the controllers were cancelled.
    Lost(StepDown),
}

impl Process {
    async fn start(config: RunConfig) -> anyhow::Result<Self> {
        let kube = kube::Config::infer()
            .await
            .context("loading the Kubernetes configuration (in-cluster, or KUBECONFIG)")?;
        let process = Self {
            config,
            kube,
            metrics: Metrics::new(),
            ready: Arc::new(AtomicBool::new(false)),
        };
        let listener = crate::server::bind(process.config.metrics_addr).await?;
        let router = crate::server::router(process.metrics.clone(), process.ready.clone());
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                error!(%error, "the metrics server stopped");
            }
        });
        info!(addr = %process.config.metrics_addr, "serving /metrics, /healthz and /readyz");
        Ok(process)
    }

    /// Without leader election: one term, never fenced, until `stop`.
    async fn run_alone(&self, stop: &CancellationToken) -> anyhow::Result<()> {
        let shared = self.term(&Fence::unbounded()).await?;
        self.ready.store(true, Ordering::Relaxed);
        self.metrics.set_leader(true);
        run_controllers(shared, stop.clone()).await;
        Ok(())
    }

    /// Stands by and leads, term after term, until `stop`.
    async fn run_elected(&self, stop: &CancellationToken) -> anyhow::Result<()> {
        let namespace = self
            .config
            .leader_election_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".to_owned());
        // The election's own client: the only one the fence does not hold.
        let client = Client::try_from(self.kube.clone())
            .context("building the Kubernetes client of the leader election")?;
        let mut elector = Elector::new(client, &namespace, leader::identity(), Timing::default());
        info!(identity = elector.identity(), %namespace, "waiting for the leader Lease");
        // A standby is healthy and ready: it takes part in the election.
        self.ready.store(true, Ordering::Relaxed);

        while let Some(valid_until) = stop.run_until_cancelled(stand_by(&mut elector)).await {
            let fence = Fence::until(valid_until);
            self.metrics.set_leader(true);
            let end = self.lead(&mut elector, &fence, stop).await;
            fence.close();
            self.metrics.set_leader(false);
            match end? {
                TermEnd::Stopped => {
                    if let Err(error) = elector.release().await {
                        warn!(%error, "could not release the leader Lease");
                    }
                    break;
                }
                TermEnd::Lost(why) => {
                    error!(reason = %why, "lost the leader Lease: stopped every reconcile and request; standing by");
                }
            }
        }
        Ok(())
    }

    /// One term as leader. The controllers run while [`keep_lease`] renews
    /// (from the start: building the clients may take a while); when the
    /// Lease is lost the controllers are dropped at once, which cancels
    /// their in-flight reconciles. `stop` lets them finish instead, the
    /// Lease still renewed meanwhile.
    async fn lead(
        &self,
        elector: &mut Elector,
        fence: &Fence,
        stop: &CancellationToken,
    ) -> anyhow::Result<TermEnd> {
        let controllers = async {
            let shared = self.term(fence).await?;
            info!("leading: starting the controllers");
            run_controllers(shared, stop.clone()).await;
            anyhow::Ok(TermEnd::Stopped)
        };
        tokio::select! {
            stopped = controllers => stopped,
            why = keep_lease(elector, fence) => Ok(TermEnd::Lost(why)),
        }
    }

    /// What the controllers of one term share: AWS and Kubernetes clients
    /// that both check `fence` before every request.
    async fn term(&self, fence: &Fence) -> anyhow::Result<Arc<Shared>> {
        let config = &self.config;
        let client = fence::kube_client(&self.kube, fence.clone(), self.metrics.clone())
            .context("building the Kubernetes client")?;
        let aws = Aws::fenced(
            config.aws_endpoint_url.as_deref(),
            config.aws_max_rps,
            self.metrics.clone(),
            fence.clone(),
        )
        .await;
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "movieapp-operator".to_owned(),
                instance: std::env::var("POD_NAME").ok(),
            },
        );
        Ok(Arc::new(Shared {
            aws,
            images: ImageResolver::default(),
            tag_snapshots: Snapshots::new(&config.cluster_id, &config.namespaces),
            recorder,
            resyncs: Arc::new(ResyncBudget::new(
                config.resync_interval(),
                config.aws_max_rps,
                self.metrics.clone(),
            )),
            routes: Arc::new(Routes::default()),
            metrics: self.metrics.clone(),
            config: config.clone(),
            client,
        }))
    }
}

/// Looks at the Lease every retry period, or when the holder's Lease
/// expires if that is sooner, until this replica leads; returns the
/// deadline of its first term.
async fn stand_by(elector: &mut Elector) -> Instant {
    let timing = *elector.timing();
    loop {
        let mut pause = timing.retry_period;
        // A request that hangs must not keep a standby from the election.
        match tokio::time::timeout(timing.renew_deadline, elector.round(Role::Standby)).await {
            Ok(Ok(Round::Leading { valid_until })) => return valid_until,
            Ok(Ok(Round::Standby {
                expires_in: Some(expires_in),
                ..
            })) => pause = pause.min(expires_in),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => warn!(%error, "leader election request failed"),
            Err(_) => warn!("leader election request timed out"),
        }
        tokio::time::sleep(pause).await;
    }
}

/// Renews the Lease every retry period, each success moving the fence's
/// deadline; returns, with the fence closed, when the Lease is lost: taken,
/// released or deleted by someone else, or not renewed in time. Nothing
/// waits past the deadline: neither the pause between attempts nor an
/// attempt itself.
async fn keep_lease(elector: &mut Elector, fence: &Fence) -> StepDown {
    let retry_period = elector.timing().retry_period;
    let why = loop {
        let Some(valid_until) = fence.deadline() else {
            break StepDown::DeadlineMissed;
        };
        tokio::time::sleep_until((Instant::now() + retry_period).min(valid_until)).await;
        let attempt = elector.round(Role::Leading { valid_until });
        match tokio::time::timeout_at(valid_until, attempt).await {
            Ok(Ok(Round::Leading { valid_until })) => fence.extend(valid_until),
            Ok(Ok(Round::SteppedDown(why))) => break why,
            Ok(Ok(Round::Standby { .. })) => break StepDown::Conflict,
            Ok(Err(error)) => {
                warn!(%error, left = ?valid_until.saturating_duration_since(Instant::now()), "renewing the leader Lease failed; retrying until the renew deadline");
            }
            Err(_) => break StepDown::DeadlineMissed,
        }
    };
    fence.close();
    why
}

/// Every controller of one term, one per scope (a namespace, or all), until
/// `stop` (gracefully) or until dropped.
async fn run_controllers(shared: Arc<Shared>, stop: CancellationToken) {
    let config = &shared.config;
    let scopes: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    };
    info!(?scopes, default_region = %config.default_region, resync = ?config.resync_interval(), events = ?config.events_queue_url, "starting controllers");
    // AWS change events, consumed while the controllers run (so only by
    // the leader, in its term); the resync stays the safety net.
    let events_consumer = config.events_queue_url.clone().map(|queue_url| {
        AbortOnDrop(tokio::spawn(events::consume(
            shared.aws.clients(&config.events_region()),
            queue_url,
            shared.routes.clone(),
            shared.metrics.clone(),
        )))
    });
    futures::future::join_all(scopes.into_iter().enumerate().map(|(index, scope)| {
        let stop = stop.clone();
        run_controller(shared.clone(), index, scope, async move {
            stop.cancelled().await;
        })
    }))
    .await;
    drop(events_consumer);
}

/// A watch of one kind of child, feeding a cache the reconciler reads;
/// `trim` drops what the reconciler never reads from each cached object
/// (managed fields are dropped from all).
fn child_watch<K>(
    client: &Client,
    namespace: Option<&str>,
    trim: fn(&mut K),
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static
        + k8s_openapi::Resource,
{
    let api: Api<K> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let (reader, writer) = reflector::store();
    let stream = watcher(
        api,
        watcher::Config::default()
            .labels(CHILD_SELECTOR)
            .any_semantic(),
    )
    .default_backoff()
    .modify(move |object: &mut K| {
        object.managed_fields_mut().clear();
        trim(object);
    })
    .reflect(writer)
    .touched_objects();
    (
        reader,
        without_errors(<K as k8s_openapi::Resource>::KIND, stream),
    )
}

/// What the cache of Deployments keeps: neither the Deployment controller's
/// revision annotation nor the status conditions, which the reconciler never
/// reads (it compares the fields it sets, and reads the replica counts and
/// observed generation). Each is an allocation or a few per cached
/// Deployment, one per MovieApp.
fn trim_deployment(deployment: &mut Deployment) {
    if let Some(annotations) = deployment.metadata.annotations.as_mut() {
        annotations.remove(DEPLOYMENT_REVISION_ANNOTATION);
        if annotations.is_empty() {
            deployment.metadata.annotations = None;
        }
    }
    if let Some(status) = deployment.status.as_mut() {
        status.conditions = None;
    }
}

/// Set by the Deployment controller on every Deployment; never by the operator.
const DEPLOYMENT_REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// Logs a watch's errors and keeps them from the controller. Each watch
/// retries on its own backoff (`default_backoff`); an error handed on would
/// also trip the controller's single backoff over all its triggers, which
/// pauses every watch and grows with each error of any of them: after a
/// kube-apiserver restart the watches then resumed minutes late, if at all
/// (tests/suites/chaos.rs restarts the API server to check this).
fn without_errors<T: Send + 'static>(
    watch: &'static str,
    stream: impl Stream<Item = Result<T, watcher::Error>> + Send + 'static,
) -> impl Stream<Item = Result<T, watcher::Error>> + Send + 'static {
    stream.filter_map(move |item| async move {
        match item {
            Ok(object) => Some(Ok(object)),
            Err(error) => {
                warn!(watch, %error, "watch failed; retrying with backoff");
                None
            }
        }
    })
}

/// What in a MovieApp calls for a reconcile: the spec (generation), the
/// adopt and pause annotations, deletion and finalizers; never our own status writes.
fn relevant_change(app: &DeserializeGuard<MovieApp>) -> Option<u64> {
    let mut hasher = DefaultHasher::new();
    predicates::generation(app).hash(&mut hasher);
    app.annotations().get(ADOPT_ANNOTATION).hash(&mut hasher);
    app.annotations().get(PAUSED_ANNOTATION).hash(&mut hasher);
    app.meta().deletion_timestamp.is_some().hash(&mut hasher);
    app.finalizers().hash(&mut hasher);
    // An invalid object that is fixed keeps its generation only if the
    // schema changed under it; react to its resourceVersion then.
    if app.0.is_err() {
        app.resource_version().hash(&mut hasher);
    }
    Some(hasher.finish())
}

/// One controller over one scope (a namespace, or all of them); `index`
/// tells the scopes apart.
async fn run_controller(
    shared: Arc<Shared>,
    index: usize,
    namespace: Option<String>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = shared.client.clone();
    let ns = namespace.as_deref();
    // Objects that do not deserialize (written under an older or looser CRD)
    // arrive as errors for that object only, never stalling the watch.
    let apps: Api<DeserializeGuard<MovieApp>> = match ns {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let (app_store, app_writer) = reflector::store();
    // What the reconciler remembers per object goes when the object leaves the cache.
    let memory = Arc::new(Memory::new(shared.metrics.clone()));
    let app_stream = without_errors(
        "MovieApp",
        watcher(apps, watcher::Config::default().any_semantic())
            .default_backoff()
            .modify(|app: &mut DeserializeGuard<MovieApp>| app.managed_fields_mut().clear())
            .reflect(app_writer)
            .inspect(memory::follow(memory.clone(), app_store.clone()))
            .applied_objects()
            .predicate_filter(relevant_change, Default::default())
            .inspect_ok(memory::note_changes(memory.clone())),
    );

    let (deployments, deployment_stream) = child_watch(&client, ns, trim_deployment);
    let (services, service_stream) = child_watch::<Service>(&client, ns, |_| {});
    let (config_maps, config_map_stream) = child_watch::<ConfigMap>(&client, ns, |_| {});
    let (service_accounts, service_account_stream) =
        child_watch::<ServiceAccount>(&client, ns, |_| {});
    let (autoscalers, autoscaler_stream) =
        child_watch::<HorizontalPodAutoscaler>(&client, ns, |_| {});
    let (disruption_budgets, disruption_budget_stream) =
        child_watch::<PodDisruptionBudget>(&client, ns, |_| {});
    let (network_policies, network_policy_stream) =
        child_watch::<NetworkPolicy>(&client, ns, |_| {});

    // Secrets: metadata only (never their data), to react when a referenced
    // TMDB Secret appears or the generated auth Secret vanishes.
    let secrets: Api<PartialObjectMeta<Secret>> = match ns {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let secret_stream = without_errors(
        "Secret",
        watcher(secrets, watcher::Config::default().any_semantic())
            .default_backoff()
            .touched_objects(),
    );
    let apps_for_secrets = app_store.clone();
    let secret_mapper = move |secret: PartialObjectMeta<Secret>| {
        let namespace = secret.namespace().unwrap_or_default();
        let name = secret.name_any();
        apps_for_secrets
            .state()
            .into_iter()
            .filter(|guard| {
                guard.0.as_ref().is_ok_and(|app| {
                    app.namespace().as_deref() == Some(namespace.as_str())
                        && (app.spec.worker.tmdb.api_key_secret_ref.name == name
                            || children::auth_secret_name(&app.name_any()) == name)
                })
            })
            .map(|guard| ObjectRef::from_obj(guard.as_ref()))
            .collect::<Vec<_>>()
    };

    // Timed reconciles (retries, resyncs) come from the memory, through
    // the scheduler, one at a time when a worker is free.
    let workers = Arc::new(Workers::new(shared.config.concurrency));
    let (trigger, triggered) = mpsc::channel::<AppRef>(256);
    shared.routes.add(memory.clone(), trigger.clone());
    let timers = AbortOnDrop(tokio::spawn(schedule::serve(
        memory.clone(),
        workers.clone(),
        shared.resyncs.clone(),
        index,
        trigger,
        shared.metrics.clone(),
    )));
    let ctx = Arc::new(Context::new(
        shared.clone(),
        Stores {
            deployments,
            services,
            config_maps,
            service_accounts,
            autoscalers,
            disruption_budgets,
            network_policies,
        },
        app_store.clone(),
        memory,
        workers,
    ));
    Controller::for_stream(app_stream, app_store)
        .with_config(ControllerConfig::default().concurrency(shared.config.concurrency))
        .owns_stream(deployment_stream)
        .owns_stream(service_stream)
        .owns_stream(config_map_stream)
        .owns_stream(service_account_stream)
        .owns_stream(autoscaler_stream)
        .owns_stream(disruption_budget_stream)
        .owns_stream(network_policy_stream)
        .watches_stream(secret_stream, secret_mapper)
        .reconcile_on(receiver_stream(triggered))
        .graceful_shutdown_on(stop)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok(_) => {}
                // A child's watch event for a MovieApp already gone (its
                // children are garbage-collected after it): nothing to do.
                Err(error @ ControllerError::ObjectNotFound(_)) => {
                    debug!(%error, "controller event for a deleted MovieApp")
                }
                Err(error) => warn!(%error, "controller event"),
            }
        })
        .await;
    drop(timers);
}

/// A task that ends with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The items of `receiver` as a stream.
fn receiver_stream<T: Send + 'static>(receiver: mpsc::Receiver<T>) -> impl Stream<Item = T> + Send {
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_cached_deployment_keeps_what_the_reconciler_reads() {
        let mut deployment: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "shop",
                "generation": 3,
                "annotations": {
                    "deployment.kubernetes.io/revision": "2",
                    "team": "data"
                }
            },
            "spec": {
                "replicas": 2,
                "selector": { "matchLabels": { "app": "shop" } },
                "template": { "spec": { "containers": [{ "name": "api", "image": "i" }] } }
            },
            "status": {
                "observedGeneration": 3,
                "replicas": 2,
                "updatedReplicas": 2,
                "availableReplicas": 2,
                "conditions": [{ "type": "Available", "status": "True" }]
            }
        }))
        .expect("a Deployment");
        let spec = deployment.spec.clone();
        trim_deployment(&mut deployment);
        assert_eq!(
            deployment.metadata.annotations,
            Some(BTreeMap::from([("team".to_owned(), "data".to_owned())]))
        );
        assert_eq!(deployment.spec, spec);
        let status = deployment.status.clone().unwrap_or_default();
        assert_eq!(status.conditions, None);
        assert_eq!(
            (
                status.observed_generation,
                status.updated_replicas,
                status.available_replicas
            ),
            (Some(3), Some(2), Some(2))
        );

        // Without other annotations, none are kept.
        deployment.metadata.annotations = Some(BTreeMap::from([(
            DEPLOYMENT_REVISION_ANNOTATION.to_owned(),
            "3".to_owned(),
        )]));
        trim_deployment(&mut deployment);
        assert_eq!(deployment.metadata.annotations, None);
    }
}
