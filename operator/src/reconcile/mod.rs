//! The reconcile pipeline of one MovieApp:
//! dereference (Secrets, ECR image, AWS resources) → validate → build (pure,
//! [`children`]) → apply ([`apply`]) → update status ([`status`]).
//!
//! Deletion runs [`cleanup`] under the `movieapp.io/cleanup` finalizer.

pub mod apply;
pub mod children;
pub mod status;
pub mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams, PostParams};
use kube::core::DeserializeGuard;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use crate::aws::ecr::{ImageError, ResolvedImage};
use crate::aws::tags::Owner;
use crate::conditions::{Part, PartState, kind};
use crate::context::{Context, PassInputs, Verified};
use crate::crd::{DeletionPolicy, MovieApp};
use crate::naming::AppId;
use crate::provision::{self, Cleanup, Notice, Observed, Provisioned, Target};
use crate::reason::Reason;
use children::{AUTH_SECRET_KEY, Inputs};

/// The finalizer that guards AWS cleanup.
pub const FINALIZER: &str = "movieapp.io/cleanup";
/// Annotation asking the operator to adopt untagged AWS resources with its names.
pub const ADOPT_ANNOTATION: &str = "movieapp.io/adopt";

/// How soon to look again while AWS resources are being created or changed.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);
/// How soon to look again while a human must act (the world may change).
const BLOCKED_INTERVAL: Duration = Duration::from_secs(60);
/// How soon to look again while AWS deletes resources.
const CLEANUP_INTERVAL: Duration = Duration::from_secs(3);

/// Errors that end a reconcile early; the controller retries with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Child(#[from] apply::ChildError),
    #[error("AWS cleanup failed: {0}")]
    Aws(#[from] crate::aws::AwsError),
    #[error("the MovieApp has no {0}")]
    Malformed(&'static str),
}

impl Error {
    /// A bounded label for metrics and Events.
    pub fn category(&self) -> &'static str {
        let code = match self {
            Error::Kube(kube::Error::Api(status)) => Some(status.code),
            Error::Child(error) => error.code(),
            _ => None,
        };
        match self {
            Error::Kube(_) | Error::Child(_) if code == Some(409) => "conflict",
            Error::Kube(_) | Error::Child(_) => "kubernetes",
            Error::Aws(_) => "aws",
            Error::Malformed(_) => "malformed_object",
        }
    }
}

/// The `namespace/name` of a MovieApp (logs, metrics bookkeeping).
pub fn object_key(app: &MovieApp) -> String {
    format!("{}/{}", app.namespace().unwrap_or_default(), app.name_any())
}

/// Reconciles one MovieApp.
pub async fn reconcile(
    guard: Arc<DeserializeGuard<MovieApp>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let app = match &guard.0 {
        Ok(app) => app,
        Err(invalid) => {
            report_invalid(&guard, invalid, &ctx).await;
            ctx.shared
                .metrics
                .reconcile_failed("invalid_object", started.elapsed());
            // Nothing to do until the object changes.
            return Ok(Action::await_change());
        }
    };
    let key = object_key(app);
    debug!(movieapp = %key, "reconciling");
    let result = if app.metadata.deletion_timestamp.is_some() {
        cleanup(app, &ctx).await
    } else {
        apply(app, &ctx).await
    };
    match &result {
        Ok(action) => {
            ctx.record_success(&key);
            ctx.shared.metrics.reconciled(started.elapsed());
            debug!(movieapp = %key, ?action, elapsed = ?started.elapsed(), "reconciled");
        }
        Err(error) => {
            ctx.shared
                .metrics
                .reconcile_failed(error.category(), started.elapsed());
        }
    }
    result
}

/// Requeues a failed reconcile with jittered exponential backoff: 2 s, 4 s,
/// ... up to 5 minutes, so failures never turn into a hot loop.
pub fn error_policy(
    guard: Arc<DeserializeGuard<MovieApp>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    let key = format!(
        "{}/{}",
        guard.namespace().unwrap_or_default(),
        guard.name_any()
    );
    let failures = ctx.record_failure(&key);
    let delay = backoff(failures);
    warn!(movieapp = %key, %error, failures, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// An object that does not match the MovieApp types (written under an older
/// or looser CRD): logged and reported as a Warning Event on the object; the
/// other objects are not affected.
async fn report_invalid(
    guard: &DeserializeGuard<MovieApp>,
    invalid: &InvalidObject,
    ctx: &Context,
) {
    let key = format!(
        "{}/{}",
        guard.namespace().unwrap_or_default(),
        guard.name_any()
    );
    warn!(movieapp = %key, error = %invalid.error, "the object does not match the MovieApp schema");
    let event = kube::runtime::events::Event {
        type_: kube::runtime::events::EventType::Warning,
        reason: Reason::InvalidObject.as_str().to_owned(),
        note: Some(format!(
            "the object does not match the MovieApp schema: {}",
            invalid.error
        )),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(error) = ctx
        .shared
        .recorder
        .publish(&event, &guard.object_ref(&()))
        .await
    {
        warn!(movieapp = %key, %error, "could not publish an Event");
    }
}

/// The delay before retry number `failures` (1-based).
pub fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(8);
    let base = Duration::from_secs(2u64 << exponent).min(Duration::from_secs(300));
    // ±20 % jitter spreads retries of many objects failing together.
    let jitter = 0.8 + fastrand::f64() * 0.4;
    base.mul_f64(jitter)
}

/// The region a MovieApp's resources live in: as set, else as first used,
/// else the operator's default.
fn effective_region(app: &MovieApp, default: &str) -> String {
    app.spec
        .region
        .clone()
        .or_else(|| app.status.as_ref().and_then(|s| s.region.clone()))
        .unwrap_or_else(|| default.to_owned())
}

async fn apply(app: &MovieApp, ctx: &Context) -> Result<Action, Error> {
    let shared = &ctx.shared;
    let namespace = app.namespace().ok_or(Error::Malformed("namespace"))?;
    let name = app.name_any();
    let uid = app.uid().ok_or(Error::Malformed("uid"))?;

    // The finalizer goes on before anything exists in AWS, so nothing can leak.
    if !app.finalizers().iter().any(|f| f == FINALIZER) {
        set_finalizers(ctx, app, true).await?;
    }

    let region = effective_region(app, &shared.config.default_region);
    let owner = Owner {
        uid: uid.clone(),
        namespace: namespace.clone(),
        name: name.clone(),
    };
    let aws = shared.aws.clients(&region);
    let target = Target {
        aws: &aws,
        owner: &owner,
        id: AppId {
            namespace: &namespace,
            name: &name,
        },
        spec: &app.spec,
        adopt: app
            .annotations()
            .get(ADOPT_ANNOTATION)
            .is_some_and(|v| v == "true"),
        previous: app.status.as_ref(),
        generation: app.metadata.generation,
    };

    // Dereference: everything the build needs, concurrently. AWS is read
    // again only when the last complete pass is older than most of a resync
    // interval or was made for another spec: a reconcile that a child's
    // change causes needs the Kubernetes side only.
    let resync = shared.config.resync_interval;
    let pass_inputs = PassInputs {
        generation: app.metadata.generation,
        adopt: target.adopt,
        region: region.clone(),
    };
    let reused = ctx.verified(&uid, &pass_inputs, resync.mul_f64(0.9));
    let pass_started = Instant::now();
    let (secret, auth_secret, image, provisioned) = match &reused {
        Some(verified) => tokio::join!(
            check_tmdb_secret(ctx, app, &namespace),
            ensure_auth_secret(ctx, app, &namespace),
            std::future::ready(Ok(verified.image.clone())),
            std::future::ready(verified.provisioned.clone()),
        ),
        None => tokio::join!(
            check_tmdb_secret(ctx, app, &namespace),
            ensure_auth_secret(ctx, app, &namespace),
            shared.images.resolve(&aws, &app.spec.worker.image),
            provision::provision(&target),
        ),
    };
    let auth_secret = auth_secret?;
    // A resync that could not re-read AWS (throttled, a 5xx, a time-out)
    // says nothing about the resources: what the last complete pass found
    // stands, and the pass is retried soon.
    let (image, provisioned, unread) = match &reused {
        Some(_) => (image, provisioned, Vec::new()),
        None => hold_through_read_errors(
            ctx.last_verified(&uid, &pass_inputs).as_ref(),
            image,
            provisioned,
        ),
    };

    // Validate what the schema could not.
    let problems = validate::validate(app, &region);

    let image_state = image_state(&image);
    let worker_blocker = if !problems.is_empty() {
        Some(PartState::blocked(Reason::InvalidSpec, problems.join("; ")))
    } else {
        secret.err()
    };

    // Build and apply only when every input is there; otherwise the running
    // children stay exactly as they are.
    let inputs = match (&image, &worker_blocker) {
        (Ok(image), None) => inputs(ctx, image, &region, &provisioned, auth_secret),
        _ => None,
    };
    // A child the API server refuses is reported in the status before the
    // reconcile fails and is retried with backoff.
    let mut applied_now = false;
    let mut apply_error = None;
    if let Some(inputs) = &inputs {
        let owner_ref = app
            .controller_owner_ref(&())
            .ok_or(Error::Malformed("metadata for an owner reference"))?;
        let built = children::build(app, &owner_ref, inputs);
        match apply_children(ctx, &namespace, &name, &built).await {
            Ok(written) => applied_now = written,
            Err(error) => apply_error = Some(error),
        }
    }

    let deployment = ctx
        .stores
        .deployments
        .get(&ObjectRef::new(&name).within(&namespace));
    let worker_state = match (worker_blocker, &apply_error) {
        (Some(blocked), _) => blocked,
        (None, Some(error)) => apply_failed_state(error),
        (None, None) => worker_state(app, deployment.as_deref(), inputs.is_some(), applied_now),
    };

    let parts = vec![
        Part::new(kind::IMAGE_RESOLVED, image_state),
        Part::new(kind::DATABASE_READY, provisioned.tables.state.clone()),
        Part::new(kind::QUEUE_READY, provisioned.queue.state.clone()),
        Part::new(
            kind::NOTIFICATIONS_READY,
            provisioned.notifications.state.clone(),
        ),
        Part::new(kind::WORKER_AVAILABLE, worker_state),
    ];
    let notices: Vec<&Notice> = provisioned
        .tables
        .notices
        .iter()
        .chain(&provisioned.queue.notices)
        .chain(&provisioned.notifications.notices)
        .collect();
    status::update(
        ctx,
        app,
        status::Observation {
            parts: &parts,
            region: &region,
            image: image.as_ref().ok(),
            deployment: deployment.as_deref(),
            provisioned: &provisioned,
            notices: &notices,
        },
    )
    .await?;

    if !unread.is_empty() {
        let note = format!(
            "could not re-read AWS, so the last observed state stands; retrying in {}s: {}",
            PROGRESS_INTERVAL.as_secs(),
            unread.join("; ")
        );
        warn!(movieapp = %object_key(app), %note, "resync incomplete");
        status::event(
            ctx,
            app,
            status::EventKind::Warning,
            Reason::ResyncFailed,
            &note,
        )
        .await;
    } else if reused.is_none() {
        ctx.set_verified(
            &uid,
            verified_pass(pass_inputs, &image, &provisioned, pass_started),
        );
    }
    if let Some(error) = apply_error {
        return Err(error.into());
    }
    if !unread.is_empty() {
        return Ok(Action::requeue(PROGRESS_INTERVAL.min(resync)));
    }
    let next = next_check(&parts, resync);
    Ok(match &reused {
        // Keep the AWS re-read on its schedule.
        Some(verified) if settled(&parts) => Action::requeue(
            (verified.at + resync)
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(1)),
        ),
        _ => next,
    })
}

/// Keeps, from `last` (the last complete pass for the same spec), every part
/// this pass could not read because of a transient AWS error; returns what
/// it kept, as messages. Anything else this pass saw (a resource gone, a
/// conflict, access denied, a new image) is reported as seen.
fn hold_through_read_errors(
    last: Option<&Verified>,
    image: Result<ResolvedImage, ImageError>,
    mut provisioned: Provisioned,
) -> (Result<ResolvedImage, ImageError>, Provisioned, Vec<String>) {
    let Some(last) = last else {
        return (image, provisioned, Vec::new());
    };
    let mut unread = Vec::new();
    hold_part(
        &mut provisioned.tables,
        &last.provisioned.tables,
        &mut unread,
    );
    hold_part(&mut provisioned.queue, &last.provisioned.queue, &mut unread);
    hold_part(
        &mut provisioned.notifications,
        &last.provisioned.notifications,
        &mut unread,
    );
    let image = match image {
        Err(ImageError::Aws(error)) if error.stalled_reason().is_none() => {
            unread.push(error.to_string());
            Ok(last.image.clone())
        }
        other => other,
    };
    (image, provisioned, unread)
}

/// Puts `last` in place of `part` when a transient AWS error interrupted it.
fn hold_part<T: Clone>(part: &mut Observed<T>, last: &Observed<T>, unread: &mut Vec<String>) {
    if matches!(
        part.state,
        PartState::Progressing {
            reason: Reason::AwsError,
            ..
        }
    ) {
        unread.push(part.state.message().to_owned());
        *part = last.clone();
    }
}

/// The pass to remember, when it found every AWS part in place.
fn verified_pass(
    inputs: PassInputs,
    image: &Result<ResolvedImage, ImageError>,
    provisioned: &Provisioned,
    at: Instant,
) -> Option<Verified> {
    let image = image.as_ref().ok()?.clone();
    let complete = provisioned.tables.state.is_ready()
        && provisioned.queue.state.is_ready()
        && provisioned.notifications.state.is_ready();
    if !complete {
        return None;
    }
    // Its notices were reported with this pass; a reuse has nothing new to say.
    let mut provisioned = provisioned.clone();
    provisioned.tables.notices.clear();
    provisioned.queue.notices.clear();
    provisioned.notifications.notices.clear();
    Some(Verified {
        inputs,
        provisioned,
        image,
        at,
    })
}

/// Whether nothing but the watches can bring news: every part is ready, or
/// only the worker Deployment is rolling out, and the Deployment is watched,
/// so its every change reconciles at once without a timer. Polling it as
/// well would cost a reconcile per object every few seconds; with hundreds
/// rolling out at once those polls crowd out new objects.
fn settled(parts: &[Part]) -> bool {
    parts.iter().all(|p| {
        p.state.is_ready()
            || (p.condition == kind::WORKER_AVAILABLE
                && !p.state.is_blocked()
                && matches!(p.state.reason(), Reason::Deploying | Reason::Progressing))
    })
}

/// When to reconcile again, from how the parts stand.
fn next_check(parts: &[Part], resync: Duration) -> Action {
    let interval = if parts.iter().any(|p| p.state.is_blocked()) {
        BLOCKED_INTERVAL.min(resync)
    } else if settled(parts) {
        resync
    } else {
        PROGRESS_INTERVAL.min(resync)
    };
    Action::requeue(interval)
}

fn image_state(image: &Result<ResolvedImage, ImageError>) -> PartState {
    match image {
        Ok(image) => PartState::ready(Reason::Resolved, image.reference.clone()),
        Err(error @ ImageError::RepositoryNotFound { .. }) => {
            PartState::blocked(Reason::RepositoryNotFound, error.to_string())
        }
        Err(error @ ImageError::ImageNotFound { .. }) => {
            PartState::blocked(Reason::ImageNotFound, error.to_string())
        }
        Err(ImageError::Aws(error)) => match error.stalled_reason() {
            Some(reason) => PartState::blocked(reason, error.to_string()),
            None => PartState::progressing(Reason::EcrError, format!("retrying: {error}")),
        },
    }
}

fn inputs(
    ctx: &Context,
    image: &ResolvedImage,
    region: &str,
    provisioned: &Provisioned,
    auth_secret: String,
) -> Option<Inputs> {
    let tables = provisioned.tables.value.as_ref()?;
    let queue = provisioned.queue.value.as_ref()?;
    let notifications = provisioned.notifications.value.as_ref()?;
    let tables: BTreeMap<String, String> = tables
        .iter()
        .map(|t| (t.component.clone(), t.name.clone()))
        .collect();
    if movieapp_model::TABLES
        .iter()
        .any(|t| !tables.contains_key(t.component))
    {
        return None;
    }
    Some(Inputs {
        image: image.reference.clone(),
        region: region.to_owned(),
        tables,
        queue_url: queue.url.clone(),
        topic_arn: notifications.topic_arn.clone(),
        auth_secret,
        aws_endpoint_url: ctx.shared.config.aws_endpoint_url.clone(),
        tmdb_base_url: ctx.shared.config.worker_tmdb_base_url.clone(),
    })
}

/// The worker part when a child could not be applied: a refusal only a
/// human can lift (forbidden by RBAC or a quota, rejected by validation or
/// an admission policy) stalls; anything else (the API server busy or
/// failing, a conflict) is retried.
fn apply_failed_state(error: &apply::ChildError) -> PartState {
    match error.code() {
        Some(400 | 403 | 422) => PartState::blocked(Reason::ChildRejected, error.to_string()),
        _ => PartState::progressing(Reason::ApplyFailed, format!("retrying: {error}")),
    }
}

/// Applies every child and deletes the optional ones the spec no longer asks
/// for. Returns whether anything was written.
async fn apply_children(
    ctx: &Context,
    namespace: &str,
    name: &str,
    built: &children::Children,
) -> Result<bool, apply::ChildError> {
    use apply::Outcome::Applied;
    let client = &ctx.shared.client;
    let stores = &ctx.stores;
    let applier = &ctx.applier;
    let mut outcomes = vec![
        applier
            .apply(client, &stores.service_accounts, &built.service_account)
            .await?,
        applier
            .apply(client, &stores.config_maps, &built.config_map)
            .await?,
        applier
            .apply(client, &stores.deployments, &built.deployment)
            .await?,
        applier
            .apply(client, &stores.services, &built.service)
            .await?,
    ];
    outcomes.push(match &built.autoscaler {
        Some(hpa) => applier.apply(client, &stores.autoscalers, hpa).await?,
        None => {
            applier
                .prune(client, &stores.autoscalers, namespace, name)
                .await?
        }
    });
    outcomes.push(match &built.disruption_budget {
        Some(pdb) => {
            applier
                .apply(client, &stores.disruption_budgets, pdb)
                .await?
        }
        None => {
            applier
                .prune(client, &stores.disruption_budgets, namespace, name)
                .await?
        }
    });
    let written = outcomes.iter().filter(|o| **o == Applied).count();
    if written > 0 {
        info!(movieapp = %format!("{namespace}/{name}"), written, "applied children");
    }
    Ok(written > 0)
}

/// How the worker Deployment stands.
fn worker_state(
    app: &MovieApp,
    deployment: Option<&Deployment>,
    inputs_ready: bool,
    applied_now: bool,
) -> PartState {
    let Some(deployment) = deployment else {
        return if inputs_ready || applied_now {
            PartState::progressing(Reason::Deploying, "the worker Deployment is being created")
        } else {
            PartState::progressing(
                Reason::WaitingForDependencies,
                "waiting for the image and the AWS resources before deploying the worker",
            )
        };
    };
    let status = deployment.status.clone().unwrap_or_default();
    let generation = deployment.metadata.generation.unwrap_or(0);
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(app.spec.worker.replicas);
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return PartState::progressing(
            Reason::Progressing,
            "the Deployment controller has not seen the latest change yet",
        );
    }
    if updated >= desired && available >= desired && total == updated {
        PartState::ready(
            Reason::Available,
            format!("{available}/{desired} replicas available"),
        )
    } else {
        PartState::progressing(
            Reason::Progressing,
            format!("{available}/{desired} replicas available, {updated} updated"),
        )
    }
}

/// Checks the referenced TMDB Secret and key; `Err` carries the blocked state.
async fn check_tmdb_secret(
    ctx: &Context,
    app: &MovieApp,
    namespace: &str,
) -> Result<(), PartState> {
    let reference = &app.spec.worker.tmdb.api_key_secret_ref;
    let secrets: Api<Secret> = Api::namespaced(ctx.shared.client.clone(), namespace);
    match secrets.get_opt(&reference.name).await {
        Ok(Some(secret)) => {
            let has_key = secret
                .data
                .as_ref()
                .and_then(|d| d.get(&reference.key))
                .is_some_and(|v| !v.0.is_empty())
                || secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(&reference.key))
                    .is_some_and(|v| !v.is_empty());
            if has_key {
                Ok(())
            } else {
                Err(PartState::blocked(
                    Reason::SecretKeyNotFound,
                    format!(
                        "Secret {}/{} has no non-empty key {}",
                        namespace, reference.name, reference.key
                    ),
                ))
            }
        }
        Ok(None) => Err(PartState::blocked(
            Reason::SecretNotFound,
            format!(
                "Secret {}/{} (the TMDB API key) does not exist",
                namespace, reference.name
            ),
        )),
        Err(error) => Err(PartState::progressing(
            Reason::SecretUnreadable,
            format!("reading Secret {}/{}: {error}", namespace, reference.name),
        )),
    }
}

/// Makes sure the Secret with the worker's token signing key exists, creating
/// it with a random key on first use. Returns its name.
async fn ensure_auth_secret(
    ctx: &Context,
    app: &MovieApp,
    namespace: &str,
) -> Result<String, Error> {
    let name = children::auth_secret_name(&app.name_any());
    let secrets: Api<Secret> = Api::namespaced(ctx.shared.client.clone(), namespace);
    if secrets.get_metadata_opt(&name).await?.is_some() {
        return Ok(name);
    }
    // 32 random bytes, base64-encoded: printable, since it reaches the worker as an env var.
    let mut random = [0u8; 32];
    aws_lc_rs::rand::fill(&mut random).map_err(|_| Error::Malformed("source of randomness"))?;
    let key = base64::engine::general_purpose::STANDARD.encode(random);
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_owned()),
            labels: Some(children::labels(&app.name_any())),
            owner_references: app.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            AUTH_SECRET_KEY.to_owned(),
            ByteString(key.into_bytes()),
        )])),
        ..Secret::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(name),
        // Created concurrently (another reconcile, a previous process): keep that one.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(name),
        Err(error) => Err(error.into()),
    }
}

/// Adds or removes our finalizer, guarded by the object's resourceVersion.
async fn set_finalizers(ctx: &Context, app: &MovieApp, present: bool) -> Result<(), Error> {
    let mut finalizers: Vec<String> = app
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if present {
        finalizers.push(FINALIZER.to_owned());
    }
    let api: Api<MovieApp> = Api::namespaced(
        ctx.shared.client.clone(),
        &app.namespace().unwrap_or_default(),
    );
    let patch = json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": app.resource_version(),
        }
    });
    api.patch(
        &app.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Deletion: AWS resources per `deletionPolicy`, then the finalizer goes.
/// Kubernetes children go by garbage collection (owner references).
async fn cleanup(app: &MovieApp, ctx: &Context) -> Result<Action, Error> {
    if !app.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let shared = &ctx.shared;
    let namespace = app.namespace().ok_or(Error::Malformed("namespace"))?;
    let name = app.name_any();
    let uid = app.uid().ok_or(Error::Malformed("uid"))?;
    ctx.set_verified(&uid, None);
    let region = effective_region(app, &shared.config.default_region);
    let owner = Owner {
        uid,
        namespace: namespace.clone(),
        name: name.clone(),
    };
    let aws = shared.aws.clients(&region);
    let target = Target {
        aws: &aws,
        owner: &owner,
        id: AppId {
            namespace: &namespace,
            name: &name,
        },
        spec: &app.spec,
        adopt: false,
        previous: app.status.as_ref(),
        generation: app.metadata.generation,
    };

    match app.spec.deletion_policy {
        DeletionPolicy::Delete => match provision::delete(&target).await? {
            Cleanup::Done => {
                status::event(
                    ctx,
                    app,
                    status::EventKind::Normal,
                    Reason::Deleted,
                    "deleted every AWS resource",
                )
                .await;
            }
            Cleanup::Waiting(message) => {
                status::deleting(ctx, app, &format!("deleting AWS resources: {message}")).await?;
                return Ok(Action::requeue(CLEANUP_INTERVAL));
            }
        },
        DeletionPolicy::Retain => {
            provision::retain(&target).await?;
            status::event(
                ctx,
                app,
                status::EventKind::Normal,
                Reason::Retained,
                "kept every AWS resource (deletionPolicy: Retain), tagged movieapp.io/retained=true",
            )
            .await;
        }
    }
    set_finalizers(ctx, app, false).await?;
    ctx.applier.forget(&namespace, &name);
    shared.metrics.forget(&object_key(app));
    info!(movieapp = %object_key(app), policy = ?app.spec.deletion_policy, "cleaned up");
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let secs = |n| backoff(n).as_secs_f64();
        assert!((1.6..=2.4).contains(&secs(1)));
        assert!((3.2..=4.8).contains(&secs(2)));
        assert!(secs(20) <= 360.0 && secs(20) >= 240.0);
    }

    #[test]
    fn next_check_follows_the_parts() {
        use PartState as S;
        let resync = Duration::from_secs(300);
        let part = Part::new;
        let cases = [
            (
                vec![part(kind::IMAGE_RESOLVED, S::ready(Reason::Resolved, ""))],
                resync,
            ),
            (
                vec![part(
                    kind::IMAGE_RESOLVED,
                    S::progressing(Reason::Creating, ""),
                )],
                PROGRESS_INTERVAL,
            ),
            (
                vec![part(
                    kind::IMAGE_RESOLVED,
                    S::blocked(Reason::NameConflict, ""),
                )],
                BLOCKED_INTERVAL,
            ),
            // Only the Deployment rolling out: its watch, not a timer, reconciles.
            (
                vec![
                    part(kind::DATABASE_READY, S::ready(Reason::Provisioned, "")),
                    part(
                        kind::WORKER_AVAILABLE,
                        S::progressing(Reason::Progressing, "0/2 replicas available"),
                    ),
                ],
                resync,
            ),
            // A rollout with AWS still in progress, or a worker retrying an
            // error, is polled.
            (
                vec![
                    part(kind::DATABASE_READY, S::progressing(Reason::Creating, "")),
                    part(
                        kind::WORKER_AVAILABLE,
                        S::progressing(Reason::Deploying, ""),
                    ),
                ],
                PROGRESS_INTERVAL,
            ),
            (
                vec![part(
                    kind::WORKER_AVAILABLE,
                    S::progressing(Reason::SecretUnreadable, ""),
                )],
                PROGRESS_INTERVAL,
            ),
        ];
        for (parts, expected) in cases {
            assert_eq!(
                next_check(&parts, resync),
                Action::requeue(expected),
                "{parts:?}"
            );
        }
    }

    fn provisioned(queue: PartState) -> Provisioned {
        use crate::crd::{NotificationsStatus, QueueStatus};
        use crate::provision::Observed;
        let queue_status = QueueStatus {
            url: "u".to_owned(),
            arn: "a".to_owned(),
            dead_letter_url: "du".to_owned(),
            dead_letter_arn: "da".to_owned(),
        };
        let notifications = NotificationsStatus {
            topic_arn: "t".to_owned(),
            subscriptions: Vec::new(),
        };
        let notice = || vec![Notice::new(Reason::Created, "made")];
        Provisioned {
            tables: Observed::ready(Vec::new(), notice()),
            queue: Observed {
                state: queue,
                value: Some(queue_status),
                notices: notice(),
            },
            notifications: Observed::ready(notifications, notice()),
        }
    }

    fn inputs() -> PassInputs {
        PassInputs {
            generation: Some(3),
            adopt: false,
            region: "us-east-1".to_owned(),
        }
    }

    fn image() -> Result<ResolvedImage, ImageError> {
        Ok(ResolvedImage {
            reference: "r@sha256:1".to_owned(),
            digest: "sha256:1".to_owned(),
        })
    }

    #[test]
    fn only_a_complete_pass_is_remembered_and_without_its_notices() {
        let at = Instant::now();
        let complete = provisioned(PartState::ready(Reason::Provisioned, ""));
        let verified = verified_pass(inputs(), &image(), &complete, at).expect("complete");
        assert!(verified.provisioned.tables.notices.is_empty());
        assert!(verified.provisioned.queue.notices.is_empty());
        assert!(verified.provisioned.notifications.notices.is_empty());
        assert_eq!(verified.provisioned.queue.state, complete.queue.state);

        let progressing = provisioned(PartState::progressing(Reason::Creating, ""));
        assert!(verified_pass(inputs(), &image(), &progressing, at).is_none());
        let missing = Err(ImageError::ImageNotFound {
            repository: "r".to_owned(),
            reference: "1".to_owned(),
            region: "us-east-1".to_owned(),
        });
        assert!(verified_pass(inputs(), &missing, &complete, at).is_none());
    }

    #[test]
    fn a_transient_read_error_keeps_the_last_complete_pass() {
        use crate::aws::{AwsError, ErrorKind};
        let at = Instant::now();
        let complete = provisioned(PartState::ready(Reason::Provisioned, ""));
        let last = verified_pass(inputs(), &image(), &complete, at).expect("complete");

        // The queue could not be read, nor the image: both are kept.
        let throttled = AwsError {
            service: "ecr",
            operation: "DescribeImages",
            kind: ErrorKind::Retryable,
            code: Some("ThrottlingException".to_owned()),
            message: "slow down".to_owned(),
        };
        let unread = provisioned(PartState::progressing(
            Reason::AwsError,
            "retrying: sqs GetQueueAttributes failed",
        ));
        let (kept_image, kept, messages) =
            hold_through_read_errors(Some(&last), Err(ImageError::Aws(throttled)), unread.clone());
        assert_eq!(kept.queue, last.provisioned.queue);
        assert_eq!(kept_image.ok(), Some(last.image.clone()));
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages[0].contains("GetQueueAttributes"));
        // The parts this pass did read stay as read, notices included.
        assert_eq!(kept.tables, unread.tables);

        // Without a complete pass to fall back on, the error is reported.
        let (_, reported, messages) = hold_through_read_errors(None, image(), unread.clone());
        assert_eq!(reported, unread);
        assert!(messages.is_empty());

        // What the pass did see (a resource being created, access denied) is
        // not a read error and is reported as seen.
        for state in [
            PartState::progressing(Reason::Creating, ""),
            PartState::blocked(Reason::AccessDenied, ""),
        ] {
            let seen = provisioned(state);
            let (_, reported, messages) =
                hold_through_read_errors(Some(&last), image(), seen.clone());
            assert_eq!(reported, seen);
            assert!(messages.is_empty());
        }
    }
}
