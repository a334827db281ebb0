//! Wiring: watches, caches and the controller loop, plus the process
//! lifecycle (leader election, signals, the metrics server).

use std::collections::hash_map::DefaultHasher;
use std::fmt::Debug;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::controller::{Config as ControllerConfig, Controller, Error as ControllerError};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{WatchStreamExt, predicates};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::aws::Aws;
use crate::aws::ecr::ImageResolver;
use crate::config::RunConfig;
use crate::context::{Shared, Stores};
use crate::crd::MovieApp;
use crate::leader::{self, Elector, Role, Round, StepDown, Timing};
use crate::metrics::Metrics;
use crate::reconcile::memory::{self, Memory};
use crate::reconcile::{self, ADOPT_ANNOTATION, Context, children};

/// Label selecting every child the operator made.
const CHILD_SELECTOR: &str = "app.kubernetes.io/managed-by=movieapp-operator";

/// Runs the operator until SIGTERM/SIGINT (or loss of the leader Lease).
pub async fn run(config: RunConfig) -> anyhow::Result<()> {
    run_until(config, shutdown_signal()).await
}

/// Runs the operator until `shutdown` resolves (or the leader Lease is lost):
/// in-flight reconciles finish, the Lease is released.
pub async fn run_until(
    config: RunConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("connecting to Kubernetes (in-cluster config or KUBECONFIG)")?;
    let metrics = Metrics::new();
    let ready = Arc::new(AtomicBool::new(false));

    let listener = crate::server::bind(config.metrics_addr).await?;
    let router = crate::server::router(metrics.clone(), ready.clone());
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            error!(%error, "the metrics server stopped");
        }
    });
    info!(addr = %config.metrics_addr, "serving /metrics, /healthz and /readyz");

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        info!("shutting down: finishing in-flight reconciles");
        let _ = stop_tx.send(true);
    });
    let stopped = move || until_set(stop_rx.clone());

    let mut elector = None;
    let lost_lease = Arc::new(AtomicBool::new(false));
    if config.leader_elect {
        let namespace = config
            .leader_election_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".to_owned());
        let mut candidate = Elector::new(
            client.clone(),
            &namespace,
            leader::identity(),
            Timing::default(),
        );
        info!(identity = candidate.identity(), %namespace, "waiting for the leader Lease");
        // A standby is healthy and ready: it takes part in the election.
        ready.store(true, Ordering::Relaxed);
        let valid_until = loop {
            tokio::select! {
                () = stopped() => return Ok(()),
                round = candidate.round(Role::Standby) => match round {
                    Ok(Round::Leading { valid_until }) => break valid_until,
                    Ok(_) => {}
                    Err(error) => warn!(%error, "leader election request failed"),
                }
            }
            tokio::time::sleep(candidate.timing().retry_period).await;
        };
        elector = Some((candidate, valid_until));
    }
    metrics.set_leader(true);

    let shared = Arc::new(Shared {
        aws: Aws::new(
            config.aws_endpoint_url.as_deref(),
            config.aws_max_rps,
            metrics.clone(),
        )
        .await,
        images: ImageResolver::default(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "movieapp-operator".to_owned(),
                instance: std::env::var("POD_NAME").ok(),
            },
        ),
        metrics: metrics.clone(),
        config: config.clone(),
        client: client.clone(),
    });

    let scopes: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    };
    info!(?scopes, default_region = %config.default_region, resync = ?config.resync_interval, "starting controllers");
    ready.store(true, Ordering::Relaxed);

    // Keep the Lease renewed; losing it stops the controllers at once.
    let (lease_stop_tx, lease_stop_rx) = watch::channel(false);
    let renewal = elector.map(|(mut elector, mut valid_until)| {
        let lost = lost_lease.clone();
        let stopping = stopped();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            tokio::pin!(stopping);
            loop {
                tokio::select! {
                    () = &mut stopping => break,
                    () = tokio::time::sleep(elector.timing().retry_period) => {}
                }
                let step_down = if tokio::time::Instant::now() >= valid_until {
                    Some(StepDown::DeadlineMissed)
                } else {
                    match elector.round(Role::Leading { valid_until }).await {
                        Ok(Round::Leading { valid_until: renewed }) => {
                            valid_until = renewed;
                            None
                        }
                        Ok(Round::SteppedDown(why)) => Some(why),
                        Ok(Round::Standby { .. }) => Some(StepDown::Conflict),
                        Err(error) => {
                            warn!(%error, "renewing the leader Lease failed; retrying until the renew deadline");
                            None
                        }
                    }
                };
                if let Some(why) = step_down {
                    error!(reason = %why, "lost the leader Lease; stopping");
                    lost.store(true, Ordering::Relaxed);
                    metrics.set_leader(false);
                    let _ = lease_stop_tx.send(true);
                    return elector;
                }
            }
            let _ = lease_stop_tx.send(true);
            elector
        })
    });

    let stop_all = {
        let stopped = stopped.clone();
        move || {
            let lease_lost = until_set(lease_stop_rx.clone());
            let stopped = stopped();
            async move {
                tokio::select! {
                    () = stopped => {}
                    () = lease_lost => {}
                }
            }
        }
    };
    futures::future::join_all(
        scopes
            .into_iter()
            .map(|scope| run_controller(shared.clone(), scope, stop_all())),
    )
    .await;

    if let Some(renewal) = renewal {
        match renewal.await {
            Ok(mut elector) => {
                if !lost_lease.load(Ordering::Relaxed)
                    && let Err(error) = elector.release().await
                {
                    warn!(%error, "could not release the leader Lease");
                }
            }
            Err(error) => warn!(%error, "the Lease renewal task failed"),
        }
    }
    if lost_lease.load(Ordering::Relaxed) {
        anyhow::bail!("lost the leader Lease");
    }
    info!("stopped");
    Ok(())
}

/// A watch of one kind of child, feeding a cache the reconciler reads.
fn child_watch<K>(
    client: &Client,
    namespace: Option<&str>,
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
    .modify(|object: &mut K| object.managed_fields_mut().clear())
    .reflect(writer)
    .touched_objects();
    (
        reader,
        without_errors(<K as k8s_openapi::Resource>::KIND, stream),
    )
}

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
/// adopt annotation, deletion and finalizers; never our own status writes.
fn relevant_change(app: &DeserializeGuard<MovieApp>) -> Option<u64> {
    let mut hasher = DefaultHasher::new();
    predicates::generation(app).hash(&mut hasher);
    app.annotations().get(ADOPT_ANNOTATION).hash(&mut hasher);
    app.meta().deletion_timestamp.is_some().hash(&mut hasher);
    app.finalizers().hash(&mut hasher);
    // An invalid object that is fixed keeps its generation only if the
    // schema changed under it; react to its resourceVersion then.
    if app.0.is_err() {
        app.resource_version().hash(&mut hasher);
    }
    Some(hasher.finish())
}

/// One controller over one scope (a namespace, or all of them).
async fn run_controller(
    shared: Arc<Shared>,
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
            .predicate_filter(relevant_change, Default::default()),
    );

    let (deployments, deployment_stream) = child_watch::<Deployment>(&client, ns);
    let (services, service_stream) = child_watch::<Service>(&client, ns);
    let (config_maps, config_map_stream) = child_watch::<ConfigMap>(&client, ns);
    let (service_accounts, service_account_stream) = child_watch::<ServiceAccount>(&client, ns);
    let (autoscalers, autoscaler_stream) = child_watch::<HorizontalPodAutoscaler>(&client, ns);
    let (disruption_budgets, disruption_budget_stream) =
        child_watch::<PodDisruptionBudget>(&client, ns);

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

    let ctx = Arc::new(Context::new(
        shared.clone(),
        Stores {
            deployments,
            services,
            config_maps,
            service_accounts,
            autoscalers,
            disruption_budgets,
        },
        app_store.clone(),
        memory,
    ));
    Controller::for_stream(app_stream, app_store)
        .with_config(ControllerConfig::default().concurrency(shared.config.concurrency))
        .owns_stream(deployment_stream)
        .owns_stream(service_stream)
        .owns_stream(config_map_stream)
        .owns_stream(service_account_stream)
        .owns_stream(autoscaler_stream)
        .owns_stream(disruption_budget_stream)
        .watches_stream(secret_stream, secret_mapper)
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
}

/// Resolves once the flag is set; never if its sender is gone unset.
async fn until_set(mut flag: watch::Receiver<bool>) {
    if flag.wait_for(|set| *set).await.is_err() {
        std::future::pending::<()>().await;
    }
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
