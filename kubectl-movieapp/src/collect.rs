//! The reads: the MovieApp, its children, Pods and Events from the API
//! server, its AWS resources from AWS (through the operator's own lookups,
//! [`movieapp_operator::provision::inspect`]). Nothing here writes.

use std::path::Path;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Unit;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, Resource, ResourceExt};
use movieapp_operator::aws::AwsClients;
use movieapp_operator::crd::{ManagementPolicy, MovieApp};
use movieapp_operator::provision::inspect::{self, Inspected, Presence, ResourceKind};
use movieapp_operator::provision::resource::Claim;
use movieapp_operator::reconcile::children::{self, ChildRef};
use movieapp_operator::reconcile::dereference::{Object, check_tmdb_secret};
use movieapp_operator::reconcile::pause;
use serde::de::DeserializeOwned;

use crate::report::{
    AwsKind, AwsReport, AwsResourceReport, ChildReport, EventReport, Health, Ownership, PodReport,
};

/// What stops the plugin before it can show anything (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no Kubernetes cluster to talk to: {0}")]
    NoCluster(String),
    #[error("cannot reach the Kubernetes API server at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("MovieApp {name} not found in namespace {namespace}{hint}")]
    UnknownMovieApp {
        namespace: String,
        name: String,
        hint: String,
    },
    #[error(
        "the MovieApp CRD (movieapps.movieapp.io) is not installed in this cluster: \
         install the operator's chart (docs/installation.md) or kubectl apply -f crds/"
    )]
    NoCrd,
    #[error("the Kubernetes API server refused {what}: {detail}")]
    Refused { what: String, detail: String },
}

/// A client for the cluster of `kubeconfig` (else `KUBECONFIG`, else
/// `~/.kube/config`, else in-cluster) and `context`, with its default
/// namespace and URL.
pub async fn connect(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    timeout: Duration,
) -> Result<(Client, String, String), Error> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let config = match (kubeconfig, context) {
        (Some(path), _) => {
            let file = Kubeconfig::read_from(path).map_err(|e| {
                Error::NoCluster(format!("reading kubeconfig {}: {e}", path.display()))
            })?;
            Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| Error::NoCluster(e.to_string()))?
        }
        (None, Some(_)) => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| Error::NoCluster(e.to_string()))?,
        (None, None) => Config::infer().await.map_err(|e| {
            Error::NoCluster(format!(
                "{e} (set KUBECONFIG, pass --kubeconfig, or run inside a cluster)"
            ))
        })?,
    };
    let mut config = config;
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    let namespace = config.default_namespace.clone();
    let url = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|e| Error::NoCluster(e.to_string()))?;
    Ok((client, namespace, url))
}

/// An error of a request to the API server, for people.
fn kube_error(error: kube::Error, url: &str, what: &str) -> Error {
    match error {
        kube::Error::Api(status) => Error::Refused {
            what: what.to_owned(),
            detail: format!("{} ({} {})", status.message, status.code, status.reason),
        },
        other => Error::Unreachable {
            url: url.to_owned(),
            detail: error_chain(&other),
        },
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !out.contains(&cause_text) {
            out.push_str(": ");
            out.push_str(&cause_text);
        }
        source = cause.source();
    }
    out
}

/// The MovieApp `namespace/name`.
pub async fn movieapp(
    client: &Client,
    url: &str,
    namespace: &str,
    name: &str,
) -> Result<MovieApp, Error> {
    let api: Api<MovieApp> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(name).await {
        Ok(Some(app)) => Ok(app),
        Ok(None) => Err(not_found(&api, url, namespace, name).await),
        Err(error) => Err(kube_error(
            error,
            url,
            &format!("reading MovieApp {namespace}/{name}"),
        )),
    }
}

/// Why `name` was not found: no such MovieApp (naming those there are), or
/// no MovieApp CRD at all (both answer a GET with 404 NotFound).
async fn not_found(api: &Api<MovieApp>, url: &str, namespace: &str, name: &str) -> Error {
    match api.list_metadata(&ListParams::default().limit(20)).await {
        Ok(list) => {
            let names: Vec<String> = list.items.iter().map(|m| m.name_any()).collect();
            let hint = if names.is_empty() {
                format!(
                    " (there is no MovieApp in {namespace}; kubectl get movieapps -A lists all)"
                )
            } else {
                format!(" (MovieApps in {namespace}: {})", names.join(", "))
            };
            Error::UnknownMovieApp {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                hint,
            }
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Error::NoCrd,
        Err(error) => kube_error(error, url, &format!("listing MovieApps in {namespace}")),
    }
}

// ------------------------------------------------------------------ children

/// Every child of `app`, each with how it stands; then the TMDB Secret it
/// refers to. A child the spec does not ask for is listed only if it exists.
pub async fn kubernetes(client: &Client, app: &MovieApp) -> Vec<ChildReport> {
    let namespace = app.namespace().unwrap_or_default();
    let uid = app.uid().unwrap_or_default();
    let missing = Missing::of(app);
    let missing = &missing;
    let reads = children::child_refs(app).into_iter().map(|child| {
        let client = client.clone();
        let namespace = namespace.clone();
        let uid = uid.clone();
        async move {
            let read = match child.kind {
                "Deployment" => {
                    return deployment(&client, app, &namespace, &uid, &child, missing).await;
                }
                "ServiceAccount" => metadata::<ServiceAccount>(&client, &namespace, &child).await,
                "ConfigMap" => metadata::<ConfigMap>(&client, &namespace, &child).await,
                "Service" => metadata::<Service>(&client, &namespace, &child).await,
                "HorizontalPodAutoscaler" => {
                    metadata::<HorizontalPodAutoscaler>(&client, &namespace, &child).await
                }
                "PodDisruptionBudget" => {
                    metadata::<PodDisruptionBudget>(&client, &namespace, &child).await
                }
                "NetworkPolicy" => metadata::<NetworkPolicy>(&client, &namespace, &child).await,
                "Secret" => metadata::<Secret>(&client, &namespace, &child).await,
                other => Err(format!("the plugin does not know how to read a {other}")),
            };
            judge(&child, read, &uid, missing)
        }
    });
    let mut reports: Vec<ChildReport> = futures::future::join_all(reads)
        .await
        .into_iter()
        .flatten()
        .collect();
    reports.push(tmdb_secret(client, app, &namespace).await);
    reports
}

/// The metadata of the child, `None` when there is none.
async fn metadata<K>(
    client: &Client,
    namespace: &str,
    child: &ChildRef,
) -> Result<Option<ObjectMeta>, String>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.get_metadata_opt(&child.name)
        .await
        .map(|found| found.map(|m| m.metadata))
        .map_err(|e| format!("reading {} {namespace}/{}: {e}", child.kind, child.name))
}

/// How a child stands from its metadata alone; `None` when it is missing
/// and not wanted (nothing to show).
fn judge(
    child: &ChildRef,
    read: Result<Option<ObjectMeta>, String>,
    uid: &str,
    missing: &Missing,
) -> Option<ChildReport> {
    let mut report = ChildReport {
        kind: child.kind.to_owned(),
        name: child.name.clone(),
        managed: true,
        wanted: child.wanted,
        exists: None,
        owned: None,
        health: Health::Ready,
        detail: None,
        message: None,
        pods: Vec::new(),
    };
    let meta = match read {
        Ok(meta) => meta,
        Err(message) => {
            report.health = Health::Unknown;
            report.message = Some(message);
            return Some(report);
        }
    };
    report.exists = Some(meta.is_some());
    let Some(meta) = meta else {
        if !child.wanted {
            return None;
        }
        report.health = Health::NotReady;
        report.message = Some(missing.child.clone());
        return Some(report);
    };
    let owned = children::controlled_by(&meta, uid);
    report.owned = Some(owned);
    if !owned {
        report.health = Health::NotReady;
        report.message = Some(format!(
            "NameConflict: {}; the operator never touches it",
            children::foreign_description(child.kind, &meta)
        ));
    } else if !child.wanted {
        report.health = Health::NotReady;
        report.message = Some(if missing.paused {
            "the spec no longer asks for it; deleted once the MovieApp is no longer paused"
                .to_owned()
        } else if missing.observe_only {
            "the spec no longer asks for it; deleted once managementPolicy is Full".to_owned()
        } else {
            "the spec no longer asks for it; the next reconcile deletes it".to_owned()
        });
    }
    Some(report)
}

/// What to say of something missing, and whether the operator writes
/// (not while paused, nor under `managementPolicy: ObserveOnly`).
#[derive(Debug, Clone)]
struct Missing {
    paused: bool,
    observe_only: bool,
    /// Of a missing child.
    child: String,
    /// Of a missing AWS resource.
    aws: String,
}

impl Missing {
    fn of(app: &MovieApp) -> Self {
        let paused = pause::check(app).is_err();
        let observe_only = app.spec.management_policy == ManagementPolicy::ObserveOnly;
        if paused {
            let message = "missing; the MovieApp is paused: the operator creates it once the \
                           annotation is removed";
            return Self {
                paused,
                observe_only,
                child: message.to_owned(),
                aws: message.to_owned(),
            };
        }
        if observe_only {
            let message = "missing; managementPolicy is ObserveOnly: the operator creates \
                           nothing (see Drifted) until it is Full";
            return Self {
                paused,
                observe_only,
                child: message.to_owned(),
                aws: message.to_owned(),
            };
        }
        let next = "missing; the operator creates it at the next reconcile";
        // The children are made once the worker can run: while something
        // blocks it (a missing Secret, the AWS side not ready), they wait.
        let blocked = app
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "WorkerAvailable"))
            .filter(|c| {
                c.status == "False"
                    && !["Progressing", "Deploying", "ApplyFailed"].contains(&c.reason.as_str())
            });
        let child = match blocked {
            Some(c) => format!(
                "missing; made once what blocks the worker is resolved (WorkerAvailable: {})",
                c.reason
            ),
            None => next.to_owned(),
        };
        Self {
            paused,
            observe_only,
            child,
            aws: next.to_owned(),
        }
    }
}

/// The worker Deployment: its rollout as the operator judges it, and its Pods.
async fn deployment(
    client: &Client,
    app: &MovieApp,
    namespace: &str,
    uid: &str,
    child: &ChildRef,
    missing: &Missing,
) -> Option<ChildReport> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let read = api
        .get_opt(&child.name)
        .await
        .map_err(|e| format!("reading Deployment {namespace}/{}: {e}", child.name));
    let deployment = match &read {
        Ok(found) => found.clone(),
        Err(_) => None,
    };
    let mut report = judge(
        child,
        read.map(|found| found.map(|d| d.metadata)),
        uid,
        missing,
    )?;
    if let (Some(deployment), Some(true)) = (&deployment, report.owned) {
        let state =
            movieapp_operator::reconcile::apply::worker_state(app, Some(deployment), true, false);
        if state.is_ready() {
            report.detail = Some(state.message().to_owned());
        } else {
            report.health = Health::NotReady;
            report.message = Some(format!("{}: {}", state.reason().as_str(), state.message()));
        }
        report.pods = pods(client, namespace, &child.name).await;
    }
    Some(report)
}

/// The worker's Pods, by the Deployment's selector.
async fn pods(client: &Client, namespace: &str, app: &str) -> Vec<PodReport> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = children::selector_string(app);
    let Ok(list) = api.list(&ListParams::default().labels(&selector)).await else {
        return Vec::new();
    };
    let mut pods: Vec<PodReport> = list.items.iter().map(pod).collect();
    pods.sort_by(|a, b| a.name.cmp(&b.name));
    pods
}

fn pod(pod: &Pod) -> PodReport {
    let status = pod.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let containers = status.container_statuses.unwrap_or_default();
    let restarts = containers.iter().map(|c| c.restart_count).sum();
    let message = containers.iter().find_map(|c| {
        let state = c.state.as_ref()?;
        if let Some(waiting) = &state.waiting {
            let reason = waiting
                .reason
                .clone()
                .unwrap_or_else(|| "Waiting".to_owned());
            return Some(match &waiting.message {
                Some(message) => format!("{}: {reason}: {message}", c.name),
                None => format!("{}: {reason}", c.name),
            });
        }
        state.terminated.as_ref().map(|t| {
            format!(
                "{}: terminated: {}",
                c.name,
                t.reason.clone().unwrap_or_default()
            )
        })
    });
    PodReport {
        name: pod.name_any(),
        phase: status.phase.unwrap_or_else(|| "Unknown".to_owned()),
        ready,
        restarts,
        message,
    }
}

/// The TMDB Secret the MovieApp refers to, judged as the operator judges it.
async fn tmdb_secret(client: &Client, app: &MovieApp, namespace: &str) -> ChildReport {
    let reference = &app.spec.worker.tmdb.api_key_secret_ref;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let checked = check_tmdb_secret(&secrets, app, namespace).await;
    let (exists, health, detail, message) = match checked {
        Ok(()) => (
            Some(true),
            Health::Ready,
            Some(format!("key {} present (the TMDB API key)", reference.key)),
            None,
        ),
        Err(state) => {
            let reason = state.reason();
            let exists = match reason {
                movieapp_operator::reason::Reason::SecretNotFound => Some(false),
                movieapp_operator::reason::Reason::SecretKeyNotFound => Some(true),
                _ => None,
            };
            let health = if state.is_blocked() {
                Health::NotReady
            } else {
                Health::Unknown
            };
            let message = format!("{}: {}", reason.as_str(), state.message());
            (exists, health, None, Some(message))
        }
    };
    ChildReport {
        kind: "Secret".to_owned(),
        name: reference.name.clone(),
        managed: false,
        wanted: true,
        exists,
        owned: None,
        health,
        detail,
        message,
        pods: Vec::new(),
    }
}

/// The MovieApp's most recent Events, newest first (at most 10).
pub async fn events(client: &Client, app: &MovieApp) -> Vec<EventReport> {
    let namespace = app.namespace().unwrap_or_default();
    let uid = app.uid().unwrap_or_default();
    let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
    let fields = format!("involvedObject.uid={uid}");
    let Ok(list) = api.list(&ListParams::default().fields(&fields)).await else {
        return Vec::new();
    };
    let mut events: Vec<(Option<k8s_openapi::jiff::Timestamp>, EventReport)> = list
        .items
        .into_iter()
        .map(|event| {
            let seen = event
                .series
                .as_ref()
                .and_then(|s| s.last_observed_time.as_ref().map(|t| t.0))
                .or_else(|| event.last_timestamp.as_ref().map(|t| t.0))
                .or_else(|| event.event_time.as_ref().map(|t| t.0))
                .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0));
            let count = event
                .series
                .as_ref()
                .and_then(|s| s.count)
                .or(event.count)
                .unwrap_or(1);
            let report = EventReport {
                type_: event.type_.unwrap_or_default(),
                reason: event.reason.unwrap_or_default(),
                message: event.message.unwrap_or_default(),
                last_seen: seen.map(|at| at.round(Unit::Second).unwrap_or(at).to_string()),
                count,
            };
            (seen, report)
        })
        .collect();
    events.sort_by_key(|(seen, _)| std::cmp::Reverse(*seen));
    events.into_iter().take(10).map(|(_, e)| e).collect()
}

// ------------------------------------------------------------------ AWS

/// How to reach AWS.
#[derive(Debug, Clone)]
pub struct AwsOptions {
    pub endpoint: Option<String>,
    /// The region when neither the spec nor the status names one.
    pub region: Option<String>,
    /// The operator's cluster id (`movieapp.io/cluster`).
    pub cluster_id: String,
    /// The longest the AWS reads may take together.
    pub timeout: Duration,
}

/// The AWS resources of `app` as AWS reports them; what could not be read
/// is `Unknown`, never an error of the whole command.
pub async fn aws(app: &MovieApp, options: &AwsOptions) -> AwsReport {
    let region = app
        .spec
        .region
        .clone()
        .or_else(|| app.status.as_ref().and_then(|s| s.region.clone()))
        .or_else(|| options.region.clone());
    let mut report = AwsReport {
        region: region.clone(),
        endpoint: options.endpoint.clone(),
        error: None,
        resources: Vec::new(),
    };
    let Some(region) = region else {
        report.error = Some(
            "the MovieApp names no region yet (neither spec.region nor status.region): \
             pass --region"
                .to_owned(),
        );
        return report;
    };
    let object = match Object::of(app, &region, &options.cluster_id) {
        Ok(object) => object,
        Err(error) => {
            report.error = Some(error.to_string());
            return report;
        }
    };
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.clone()))
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(12))
                .build(),
        );
    if let Some(endpoint) = &options.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let config = loader.load().await;
    let clients = AwsClients::from_config(&region, &config);
    let owner = object.owner();
    let target = object.target(&clients, &owner);
    let missing = Missing::of(app);
    match tokio::time::timeout(options.timeout, inspect::inspect(&target)).await {
        Ok(inspected) => {
            report.resources = inspected
                .into_iter()
                .map(|i| resource(i, &missing))
                .collect();
            let unknown: Vec<&AwsResourceReport> = report
                .resources
                .iter()
                .filter(|r| r.health == Health::Unknown)
                .collect();
            if !unknown.is_empty() && unknown.len() == report.resources.len() {
                report.error = unknown[0].message.clone();
            }
        }
        Err(_) => {
            report.error = Some(format!(
                "AWS did not answer within {}",
                humantime::format_duration(options.timeout)
            ));
        }
    }
    report
}

/// One AWS resource for the report.
fn resource(inspected: Inspected, missing: &Missing) -> AwsResourceReport {
    let kind = match inspected.kind {
        ResourceKind::Table => AwsKind::DynamoDBTable,
        ResourceKind::Queue => AwsKind::SQSQueue,
        ResourceKind::DeadLetterQueue => AwsKind::SQSDeadLetterQueue,
        ResourceKind::Topic => AwsKind::SNSTopic,
        ResourceKind::Subscription => AwsKind::SNSSubscription,
        ResourceKind::Role => AwsKind::IAMRole,
    };
    let mut report = AwsResourceReport {
        kind,
        component: inspected.component,
        name: inspected.name,
        exists: None,
        address: None,
        status: None,
        ownership: None,
        declared: inspected.declared,
        health: Health::Ready,
        message: None,
    };
    match inspected.presence {
        Presence::Found {
            address,
            live,
            claim,
        } => {
            report.exists = Some(true);
            report.address = Some(address);
            report.status = live.as_ref().map(|l| l.text.clone());
            report.ownership = claim.as_ref().map(|claim| match claim {
                Claim::Ours => Ownership::ThisMovieApp,
                Claim::Adopt => Ownership::Adoptable,
                Claim::Conflict(_) => Ownership::Other,
            });
            let problem = match (&claim, &live) {
                (Some(Claim::Conflict(message)), _) => Some(format!("NameConflict: {message}")),
                (Some(Claim::Adopt), _) if missing.observe_only => Some(
                    "not tagged as this MovieApp's: adopted once managementPolicy is Full \
                     (movieapp.io/adopt)"
                        .to_owned(),
                ),
                (Some(Claim::Adopt), _) => Some(
                    "not tagged as this MovieApp's yet: the next reconcile adopts it (movieapp.io/adopt)"
                        .to_owned(),
                ),
                _ if !report.declared => Some(
                    "not in the spec: the next reconcile unsubscribes it (a pending one lapses \
                     after three days)"
                        .to_owned(),
                ),
                (_, Some(live)) if !live.settled => Some(format!("{} is {}", kind.title(), live.text)),
                _ => None,
            };
            if let Some(problem) = problem {
                report.health = Health::NotReady;
                report.message = Some(problem);
            }
        }
        Presence::Missing => {
            report.exists = Some(false);
            report.health = Health::NotReady;
            report.message = Some(missing.aws.clone());
        }
        Presence::Unknown(message) => {
            report.health = Health::Unknown;
            report.message = Some(message);
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(spec: serde_json::Value, annotations: serde_json::Value) -> MovieApp {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "movieapp.io/v1alpha1", "kind": "MovieApp",
            "metadata": { "name": "shop", "namespace": "movies", "annotations": annotations },
            "spec": spec,
        }))
        .expect("a MovieApp")
    }

    fn table(presence: Presence) -> Inspected {
        Inspected {
            kind: ResourceKind::Table,
            component: "users".to_owned(),
            name: "legacy-users".to_owned(),
            declared: true,
            presence,
        }
    }

    /// What a missing or untagged resource waits for depends on whether the
    /// operator writes: it does under Full, not while paused nor under
    /// ObserveOnly, and the message says so.
    #[test]
    fn what_is_missing_says_what_it_waits_for() {
        let full = Missing::of(&app(serde_json::json!({}), serde_json::json!({})));
        let observe = Missing::of(&app(
            serde_json::json!({ "managementPolicy": "ObserveOnly" }),
            serde_json::json!({}),
        ));
        let paused = Missing::of(&app(
            serde_json::json!({ "managementPolicy": "ObserveOnly" }),
            serde_json::json!({ "movieapp.io/paused": "true" }),
        ));
        let message = |missing: &Missing, presence| resource(table(presence), missing).message;
        assert_eq!(
            message(&full, Presence::Missing).as_deref(),
            Some("missing; the operator creates it at the next reconcile")
        );
        assert_eq!(
            message(&observe, Presence::Missing).as_deref(),
            Some(
                "missing; managementPolicy is ObserveOnly: the operator creates nothing \
                 (see Drifted) until it is Full"
            )
        );
        assert!(
            message(&paused, Presence::Missing).is_some_and(|m| m.contains("is paused")),
            "the pause is said first"
        );
        let untagged = || Presence::Found {
            address: "arn:aws:dynamodb:us-east-1:1:table/legacy-users".to_owned(),
            live: None,
            claim: Some(Claim::Adopt),
        };
        assert!(message(&full, untagged()).is_some_and(|m| m.contains("next reconcile adopts")));
        let report = resource(table(untagged()), &observe);
        assert_eq!(report.health, Health::NotReady);
        assert_eq!(report.ownership, Some(Ownership::Adoptable));
        assert!(
            report
                .message
                .is_some_and(|m| m.contains("adopted once managementPolicy is Full"))
        );
    }
}
