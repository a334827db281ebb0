//! Status: computed from one reconcile's observations, written only when it
//! changed, with Events on condition transitions and for what provisioning
//! reports (created, recreated, drift repaired, ...). Then the complete AWS
//! pass is remembered and the next check scheduled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::warn;

use super::apply::{Applied, ChildError};
use super::memory::{PassInputs, Verified, Wake};
use super::validate::Invalid;
use super::{Context, children, kube_category, object_key};
use crate::aws::ecr::{ImageError, ResolvedImage};
use crate::conditions::{self, Management, Part, PartState, kind};
use crate::crd::{ImageSpec, ManagementPolicy, MovieApp, MovieAppStatus};
use crate::metrics::ObservedCondition;
use crate::provision::{Mode, Notice, Provisioned};
use crate::reason::Reason;

/// How soon to look again while AWS resources are being created or changed.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);
/// How soon to look again while a human must act (the world may change).
const BLOCKED_INTERVAL: Duration = Duration::from_secs(60);

/// Why the status could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing the status failed: {0}")]
    Kube(#[from] kube::Error),
}

impl Error {
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(error) => kube_category(error),
        }
    }
}

/// What to do with the per-object memory's last complete AWS pass.
#[derive(Debug)]
pub enum Remember {
    /// Nothing new was learnt about AWS (a reused pass, a pass that could
    /// not read everything, an invalid spec).
    Keep,
    /// This pass read AWS: remember it when it was complete, else nothing.
    Pass(Option<Box<Verified>>),
}

/// Everything one reconcile has to report.
#[derive(Debug)]
pub struct Report<'a> {
    pub app: &'a MovieApp,
    pub uid: String,
    pub region: String,
    pub parts: Vec<Part>,
    pub image: Option<ResolvedImage>,
    pub deployment: Option<Arc<Deployment>>,
    /// `None` when AWS was not looked at.
    pub provisioned: Option<Provisioned>,
    /// What could not be re-read from AWS (the last complete pass stands).
    pub unread: Vec<String>,
    pub remember: Remember,
    /// When the reused pass was made, if this reconcile reused one.
    pub reused_at: Option<Instant>,
    /// A child the API server would not apply: the reconcile fails with it.
    pub error: Option<ChildError>,
    /// `Full`, or what ObserveOnly found.
    pub management: Management,
}

impl<'a> From<Applied<'a>> for Report<'a> {
    fn from(applied: Applied<'a>) -> Self {
        let Applied {
            with_aws,
            deployment,
            worker,
            error,
            differences,
        } = applied;
        let provisioned = with_aws.provisioned;
        let management = match with_aws.mode {
            Mode::Manage => Management::Full,
            Mode::Observe => Management::ObserveOnly(observed_differences(
                &provisioned,
                &with_aws.differences,
                &differences,
            )),
        };
        let remember = if !with_aws.unread.is_empty() || with_aws.reused.is_some() {
            Remember::Keep
        } else {
            Remember::Pass(
                verified_pass(
                    with_aws.object.pass_inputs(),
                    &with_aws.image,
                    &provisioned,
                    with_aws.started,
                    with_aws.full_at,
                )
                .map(Box::new),
            )
        };
        let mut parts = vec![
            Part::new(kind::IMAGE_RESOLVED, image_state(&with_aws.image)),
            Part::new(kind::DATABASE_READY, provisioned.tables.state.clone()),
            Part::new(kind::QUEUE_READY, provisioned.queue.state.clone()),
            Part::new(
                kind::NOTIFICATIONS_READY,
                provisioned.notifications.state.clone(),
            ),
        ];
        // Only when the operator makes the worker's role.
        if let Some(role) = &provisioned.role {
            parts.push(Part::new(kind::WORKER_ROLE_READY, role.state.clone()));
        }
        parts.push(Part::new(kind::WORKER_AVAILABLE, worker));
        Report {
            app: with_aws.object.app,
            parts,
            image: with_aws.image.ok(),
            deployment,
            provisioned: Some(provisioned),
            unread: with_aws.unread,
            remember,
            reused_at: with_aws.reused.map(|v| v.at),
            error,
            management,
            uid: with_aws.object.uid,
            region: with_aws.object.region,
        }
    }
}

impl<'a> Report<'a> {
    /// An invalid spec: the worker is blocked with every problem; the image
    /// and the AWS parts were not looked at, so their conditions stay as
    /// they were.
    pub fn invalid(invalid: Box<Invalid<'a>>, ctx: &Context) -> Self {
        let worker = invalid.state();
        let object = invalid.dereferenced.object.clone();
        let unchecked = || {
            PartState::unchecked(
                Reason::InvalidSpec,
                "not looked at while the spec is invalid",
            )
        };
        let mut parts = vec![
            Part::new(kind::IMAGE_RESOLVED, unchecked()),
            Part::new(kind::DATABASE_READY, unchecked()),
            Part::new(kind::QUEUE_READY, unchecked()),
            Part::new(kind::NOTIFICATIONS_READY, unchecked()),
        ];
        if object.worker_roles.is_some() {
            parts.push(Part::new(kind::WORKER_ROLE_READY, unchecked()));
        }
        parts.push(Part::new(kind::WORKER_AVAILABLE, worker));
        Report {
            app: object.app,
            parts,
            image: None,
            deployment: super::apply::own_deployment(
                ctx,
                &object.namespace,
                &object.name,
                &object.uid,
            ),
            provisioned: None,
            unread: Vec::new(),
            remember: Remember::Keep,
            reused_at: None,
            error: None,
            management: match object.app.spec.management_policy {
                ManagementPolicy::Full => Management::Full,
                ManagementPolicy::ObserveOnly => Management::Unchecked,
            },
            uid: object.uid,
            region: object.region,
        }
    }
}

/// Every difference ObserveOnly found, in a stable order and each once: the
/// AWS parts', then the auth Secret's and the children's.
fn observed_differences(
    provisioned: &Provisioned,
    secret: &[String],
    children: &[String],
) -> Vec<String> {
    let aws = provisioned
        .tables
        .notices
        .iter()
        .chain(&provisioned.queue.notices)
        .chain(&provisioned.notifications.notices)
        .chain(provisioned.role.iter().flat_map(|r| &r.notices))
        .filter(|n| n.is_difference())
        .map(|n| &n.message);
    let mut differences: Vec<String> = Vec::new();
    for difference in aws.chain(secret).chain(children) {
        if !differences.contains(difference) {
            differences.push(difference.clone());
        }
    }
    differences
}

/// The status step: writes the status and Events, remembers a complete AWS
/// pass, and sets the timer of the next look (a retry or the resync).
pub async fn report(ctx: &Context, report: Report<'_>) -> Result<Action, super::Error> {
    let app = report.app;
    let notices: Vec<&Notice> = report
        .provisioned
        .iter()
        .flat_map(|p| {
            p.tables
                .notices
                .iter()
                .chain(&p.queue.notices)
                .chain(&p.notifications.notices)
                .chain(p.role.iter().flat_map(|r| &r.notices))
        })
        // Differences go to the Drifted condition (and its Event).
        .filter(|n| !n.is_difference())
        .collect();
    update(
        ctx,
        app,
        &report.uid,
        Observation {
            parts: &report.parts,
            region: &report.region,
            image: report.image.as_ref(),
            deployment: report.deployment.as_deref(),
            provisioned: report.provisioned.as_ref(),
            notices: &notices,
            management: &report.management,
        },
    )
    .await?;

    let resync = ctx.shared.resyncs.interval();
    if !report.unread.is_empty() {
        let note = format!(
            "could not re-read AWS, so the last observed state stands; retrying in {}s: {}",
            PROGRESS_INTERVAL.as_secs(),
            report.unread.join("; ")
        );
        warn!(movieapp = %object_key(app), %note, "resync incomplete");
        event(ctx, app, EventKind::Warning, Reason::ResyncFailed, &note).await;
    }
    if let Remember::Pass(verified) = report.remember {
        ctx.memory
            .update(&report.uid, |r| r.verified = verified.map(|v| *v));
    }
    if let Some(error) = report.error {
        return Err(error.into());
    }
    let now = Instant::now();
    let (at, wake) = if !report.unread.is_empty() {
        (now + PROGRESS_INTERVAL.min(resync), Wake::Retry)
    } else {
        match (
            report.reused_at,
            next_check(&report.parts, &report.management, resync),
        ) {
            // Keep the AWS re-read on its schedule.
            (Some(at), Next::Resync) => (at + resync, Wake::Resync),
            (None, Next::Resync) => (now + resync, Wake::Resync),
            (_, Next::Retry(after)) => (now + after, Wake::Retry),
        }
    };
    ctx.memory.schedule(&report.uid, at, wake);
    Ok(Action::await_change())
}

/// When to look at a MovieApp again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// At the resync: nothing but AWS drift can bring news.
    Resync,
    /// Sooner, after this long.
    Retry(Duration),
}

/// The pass to remember, when it found every AWS part in place.
pub fn verified_pass(
    inputs: PassInputs,
    image: &Result<ResolvedImage, ImageError>,
    provisioned: &Provisioned,
    at: Instant,
    full_at: Instant,
) -> Option<Verified> {
    let image = image.as_ref().ok()?.clone();
    let complete = provisioned.tables.state.is_ready()
        && provisioned.queue.state.is_ready()
        && provisioned.notifications.state.is_ready()
        && provisioned.role.as_ref().is_none_or(|r| r.state.is_ready());
    if !complete {
        return None;
    }
    // Its notices were reported with this pass; a reuse has nothing new to say.
    let mut provisioned = provisioned.clone();
    provisioned.tables.notices.clear();
    provisioned.queue.notices.clear();
    provisioned.notifications.notices.clear();
    if let Some(role) = &mut provisioned.role {
        role.notices.clear();
    }
    Some(Verified {
        inputs,
        provisioned,
        image,
        at,
        full_at,
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

/// When to reconcile again, from how the parts stand. ObserveOnly waits for
/// nothing of its own doing: what it reported changes only when someone
/// changes AWS or the cluster, which the resync (or a watch) sees.
fn next_check(parts: &[Part], management: &Management, resync: Duration) -> Next {
    if parts.iter().any(|p| p.state.is_blocked()) {
        Next::Retry(BLOCKED_INTERVAL.min(resync))
    } else if *management != Management::Full || settled(parts) {
        Next::Resync
    } else {
        Next::Retry(PROGRESS_INTERVAL.min(resync))
    }
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

/// What one reconcile saw.
#[derive(Debug)]
pub struct Observation<'a> {
    pub parts: &'a [Part],
    pub region: &'a str,
    pub image: Option<&'a ResolvedImage>,
    pub deployment: Option<&'a Deployment>,
    /// `None` when AWS was not looked at: what the status recorded stands.
    pub provisioned: Option<&'a Provisioned>,
    pub notices: &'a [&'a Notice],
    pub management: &'a Management,
}

/// The current time, at the one-second precision the API stores.
fn now() -> Time {
    let now = Timestamp::now();
    Time(Timestamp::from_second(now.as_second()).unwrap_or(now))
}

/// Computes the new status; keeps what is not known this time (the image
/// running, what AWS reported earlier) from the previous status.
pub fn compute(app: &MovieApp, observation: &Observation<'_>, now: &Time) -> MovieAppStatus {
    let previous = app.status.clone().unwrap_or_default();
    let deployment_status = observation.deployment.and_then(|d| d.status.clone());
    let image = observation
        .deployment
        .and_then(running_image)
        .or_else(|| observation.image.map(|i| i.reference.clone()))
        .or(previous.image.clone());
    let image_version = image.as_deref().map(|running| {
        image_version(
            running,
            observation.image,
            &app.spec.worker.image,
            &previous,
        )
    });
    MovieAppStatus {
        observed_generation: app.metadata.generation,
        conditions: conditions::compute(
            &previous.conditions,
            observation.parts,
            observation.management,
            app.metadata.generation,
            now,
        ),
        region: Some(observation.region.to_owned()),
        image,
        image_version,
        replicas: deployment_status
            .as_ref()
            .and_then(|s| s.replicas)
            .or(previous.replicas),
        available_replicas: deployment_status
            .as_ref()
            .map(|s| s.available_replicas.unwrap_or(0))
            .or(previous.available_replicas),
        selector: Some(children::selector_string(&app.name_any())),
        tables: observation
            .provisioned
            .and_then(|p| p.tables.value.clone())
            .unwrap_or(previous.tables),
        queue: observation
            .provisioned
            .and_then(|p| p.queue.value.clone())
            .or(previous.queue),
        notifications: observation
            .provisioned
            .and_then(|p| p.notifications.value.clone())
            .or(previous.notifications),
        worker_role: observation
            .provisioned
            .and_then(|p| p.role.as_ref()?.value.clone())
            .or(previous.worker_role),
    }
}

/// `status.imageVersion` for the image `running`: the spec's tag while the
/// worker runs what this reconcile resolved the tag to; else the short
/// digest of what runs. Unresolved this time (an invalid spec, ECR not
/// answering), the previous value stands while the same image runs.
pub fn image_version(
    running: &str,
    resolved: Option<&ResolvedImage>,
    spec: &ImageSpec,
    previous: &MovieAppStatus,
) -> String {
    let short_digest = || {
        let digest = running
            .rsplit_once('@')
            .map_or(running, |(_, digest)| digest);
        // `sha256:` and 12 hex digits, as `docker images` shortens IDs.
        digest.chars().take("sha256:".len() + 12).collect()
    };
    match resolved {
        Some(resolved) if spec.digest.is_none() && resolved.reference == running => {
            spec.effective_tag().to_owned()
        }
        Some(_) => short_digest(),
        None => match &previous.image_version {
            Some(version) if previous.image.as_deref() == Some(running) => version.clone(),
            _ => short_digest(),
        },
    }
}

/// The image of the Deployment's API container: what actually runs.
fn running_image(deployment: &Deployment) -> Option<String> {
    deployment
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == children::API_CONTAINER)?
        .image
        .clone()
}

/// Writes the status if it changed, publishes Events, updates metrics.
async fn update(
    ctx: &Context,
    app: &MovieApp,
    uid: &str,
    observation: Observation<'_>,
) -> Result<(), Error> {
    let status = compute(app, &observation, &now());
    let previous = app.status.clone().unwrap_or_default();
    write(ctx, app, uid, &status).await?;

    for (kind, reason, note) in condition_news(&previous.conditions, &status.conditions) {
        publish(ctx, app, kind, &reason, &note).await;
    }
    if let Some((kind, reason, note)) = drift_news(&previous.conditions, &status.conditions) {
        publish(ctx, app, kind, &reason, &note).await;
    }
    for (reason, note) in group_notices(observation.notices) {
        event(ctx, app, EventKind::Normal, reason, &note).await;
    }
    Ok(())
}

/// The Events the conditions' changes from `old` to `new` are worth: one
/// per type and reason, the notes of the conditions sharing them joined by
/// "; " (as notices are), so a new MovieApp whose three AWS parts are
/// provisioned in one pass gets one `Provisioned` Event naming all three.
/// Not news: `Reconciling`, `Drifted` (its own Event, from `drift_news`),
/// and any condition's first False (a part merely progressing, a new object
/// never stalled, not paused). Each Event is a write to the API server,
/// which 500 MovieApps created at once keep busy.
fn condition_news(old: &[Condition], new: &[Condition]) -> Vec<(EventKind, String, String)> {
    let mut news: Vec<((EventKind, String), String)> = Vec::new();
    for transition in conditions::transitions(old, new) {
        let condition = transition.condition;
        if condition.type_ == kind::RECONCILING || condition.type_ == kind::DRIFTED {
            continue;
        }
        if condition.type_ == kind::PAUSED {
            // Pausing publishes its own Event; resuming is news, the first
            // `Paused=False` is not.
            if transition.from.is_some() {
                let note = "resumed: movieapp.io/paused was removed".to_owned();
                news.push(((EventKind::Normal, condition.reason.clone()), note));
            }
            continue;
        }
        // A condition's first False is not news: a part merely progressing,
        // or a new object that was never stalled.
        if transition.from.is_none() && condition.status == "False" {
            continue;
        }
        let healthy = (condition.type_ == kind::STALLED) == (condition.status == "False");
        let kind = if healthy {
            EventKind::Normal
        } else {
            EventKind::Warning
        };
        news.push(((kind, condition.reason.clone()), transition_note(condition)));
    }
    joined_by_key(news)
        .into_iter()
        .map(|((kind, reason), note)| (kind, reason, note))
        .collect()
}

/// The notes of `items` sharing a key joined by "; ", one entry per key in
/// the order the keys first appear: what one Event says for each reason.
fn joined_by_key<K: PartialEq>(items: impl IntoIterator<Item = (K, String)>) -> Vec<(K, String)> {
    let mut grouped: Vec<(K, String)> = Vec::new();
    for (key, note) in items {
        match grouped.iter_mut().find(|(k, _)| *k == key) {
            Some((_, joined)) => {
                joined.push_str("; ");
                joined.push_str(&note);
            }
            None => grouped.push((key, note)),
        }
    }
    grouped
}

/// The note of a condition's Event: `Type is Status: message`, without the
/// colon when the condition has no message (`Stalled` turning False after
/// a recovery says nothing more).
fn transition_note(condition: &Condition) -> String {
    if condition.message.is_empty() {
        format!("{} is {}", condition.type_, condition.status)
    } else {
        format!(
            "{} is {}: {}",
            condition.type_, condition.status, condition.message
        )
    }
}

/// The Event for a change of the `Drifted` condition: a Warning each time
/// the list of differences changes (so a steady drift is reported once, a
/// new or a repaired difference again), a Normal one when none is left.
/// `Drifted=False` from the start is no news.
fn drift_news(old: &[Condition], new: &[Condition]) -> Option<(EventKind, String, String)> {
    let find = |list: &[Condition]| list.iter().find(|c| c.type_ == kind::DRIFTED).cloned();
    let (before, now) = (find(old), find(new)?);
    let was_drifted = before.as_ref().is_some_and(|c| c.status == "True");
    if now.status == "True" {
        let same = before.is_some_and(|c| c.status == "True" && c.message == now.message);
        (!same).then_some((EventKind::Warning, now.reason, now.message))
    } else {
        was_drifted.then(|| {
            let note = format!("{} is False: {}", kind::DRIFTED, now.message);
            (EventKind::Normal, now.reason, note)
        })
    }
}

/// One Event per reason: a first reconcile creates seven AWS resources, and
/// one `Created` Event naming them all costs one API request instead of
/// seven (which, for hundreds of MovieApps at once, slowed every reconcile).
fn group_notices(notices: &[&Notice]) -> Vec<(Reason, String)> {
    joined_by_key(
        notices
            .iter()
            .map(|notice| (notice.reason, notice.message.clone())),
    )
}

/// Marks the object as being deleted.
pub async fn deleting(ctx: &Context, app: &MovieApp, message: &str) -> Result<(), Error> {
    let previous = app.status.clone().unwrap_or_default();
    let status = MovieAppStatus {
        conditions: conditions::deleting(
            &previous.conditions,
            message,
            app.metadata.generation,
            &now(),
        ),
        ..previous
    };
    if app.status.as_ref() != Some(&status) {
        patch_status(ctx, app, &status).await?;
    }
    Ok(())
}

/// Marks the object's deletion as waiting for a human
/// ([`conditions::deletion_blocked`]); true when it was not so before.
pub async fn deletion_blocked(
    ctx: &Context,
    app: &MovieApp,
    reason: Reason,
    message: &str,
) -> Result<bool, Error> {
    let previous = app.status.clone().unwrap_or_default();
    let status = MovieAppStatus {
        conditions: conditions::deletion_blocked(
            &previous.conditions,
            reason,
            message,
            app.metadata.generation,
            &now(),
        ),
        ..previous
    };
    let changed = app.status.as_ref() != Some(&status);
    if changed {
        patch_status(ctx, app, &status).await?;
    }
    Ok(changed)
}

/// Marks the object as paused ([`conditions::paused`]); true when it was
/// not paused before.
pub async fn paused(ctx: &Context, app: &MovieApp, message: &str) -> Result<bool, Error> {
    let previous = app.status.clone().unwrap_or_default();
    let status = MovieAppStatus {
        conditions: conditions::paused(
            &previous.conditions,
            message,
            app.metadata.generation,
            &now(),
        ),
        ..previous.clone()
    };
    write(ctx, app, &app.uid().unwrap_or_default(), &status).await?;
    Ok(!conditions::is_true(&previous.conditions, kind::PAUSED))
}

/// Counts `status`'s conditions in `movieapp_resources` and writes it if it
/// changed.
async fn write(
    ctx: &Context,
    app: &MovieApp,
    uid: &str,
    status: &MovieAppStatus,
) -> Result<(), Error> {
    ctx.shared.metrics.set_conditions(
        uid.to_owned(),
        status
            .conditions
            .iter()
            .map(|c| ObservedCondition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
            })
            .collect(),
    );
    if app.status.as_ref() != Some(status) {
        patch_status(ctx, app, status).await?;
    }
    Ok(())
}

async fn patch_status(ctx: &Context, app: &MovieApp, status: &MovieAppStatus) -> Result<(), Error> {
    let api: Api<MovieApp> = Api::namespaced(
        ctx.shared.client.clone(),
        &app.namespace().unwrap_or_default(),
    );
    let patch = json!({ "status": status });
    match api
        .patch_status(
            &app.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Deleted meanwhile: nothing to report on.
        Err(kube::Error::Api(response)) if response.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Event severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Normal,
    Warning,
}

/// Publishes an Event on the MovieApp; failures are logged, never fatal.
pub async fn event(ctx: &Context, app: &MovieApp, kind: EventKind, reason: Reason, note: &str) {
    publish(ctx, app, kind, reason.as_str(), note).await;
}

/// Publishes an Event with a reason already written (a condition's).
async fn publish(ctx: &Context, app: &MovieApp, kind: EventKind, reason: &str, note: &str) {
    let (type_, label) = match kind {
        EventKind::Normal => (EventType::Normal, "Normal"),
        EventKind::Warning => (EventType::Warning, "Warning"),
    };
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note.chars().take(1024).collect()),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    match ctx
        .shared
        .recorder
        .publish(&event, &app.object_ref(&()))
        .await
    {
        Ok(()) => ctx.shared.metrics.event_published(label),
        Err(error) => warn!(movieapp = %object_key(app), %error, "could not publish an Event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::provision::hold_through_read_errors;

    #[test]
    fn a_condition_without_a_message_makes_a_note_without_a_colon() {
        let condition = |status: &str, message: &str| Condition {
            type_: kind::STALLED.to_owned(),
            status: status.to_owned(),
            reason: "Recovered".to_owned(),
            message: message.to_owned(),
            last_transition_time: now(),
            observed_generation: Some(1),
        };
        assert_eq!(transition_note(&condition("False", "")), "Stalled is False");
        assert_eq!(
            transition_note(&condition("True", "AccessDenied on CreateTable")),
            "Stalled is True: AccessDenied on CreateTable"
        );
    }

    fn cond(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: message.to_owned(),
            last_transition_time: now(),
            observed_generation: Some(1),
        }
    }

    #[test]
    fn a_new_movieapp_ready_in_one_pass_gets_one_event_per_reason() {
        let ready = [
            cond(
                kind::READY,
                "True",
                "Available",
                "every part is provisioned",
            ),
            cond(kind::RECONCILING, "False", "Reconciled", ""),
            cond(kind::STALLED, "False", "NoBlockers", ""),
            cond(kind::IMAGE_RESOLVED, "True", "Resolved", "sha256:1"),
            cond(kind::DATABASE_READY, "True", "Provisioned", "3 tables"),
            cond(kind::QUEUE_READY, "True", "Provisioned", "provisioned"),
            cond(
                kind::NOTIFICATIONS_READY,
                "True",
                "Provisioned",
                "provisioned",
            ),
            cond(kind::WORKER_AVAILABLE, "True", "Available", "1/1"),
        ];
        let news = condition_news(&[], &ready);
        let reasons: Vec<(EventKind, &str)> =
            news.iter().map(|(k, r, _)| (*k, r.as_str())).collect();
        assert_eq!(
            reasons,
            vec![
                (EventKind::Normal, "Available"),
                (EventKind::Normal, "Resolved"),
                (EventKind::Normal, "Provisioned"),
            ]
        );
        assert_eq!(
            news[2].2,
            "DatabaseReady is True: 3 tables; QueueReady is True: provisioned; \
             NotificationsReady is True: provisioned"
        );
        assert_eq!(
            news[0].2,
            "Ready is True: every part is provisioned; WorkerAvailable is True: 1/1"
        );
    }

    #[test]
    fn first_false_is_not_news_but_stalling_and_recovering_are() {
        let progressing = [
            cond(kind::STALLED, "False", "NoBlockers", ""),
            cond(kind::WORKER_AVAILABLE, "False", "Progressing", "0/1"),
            cond(kind::PAUSED, "False", "Resumed", ""),
        ];
        assert!(condition_news(&[], &progressing).is_empty());

        let stalled = [cond(
            kind::STALLED,
            "True",
            "AccessDenied",
            "on CreateTable",
        )];
        let news = condition_news(&[], &stalled);
        assert_eq!(news.len(), 1);
        assert_eq!(news[0].0, EventKind::Warning);
        assert_eq!(news[0].2, "Stalled is True: on CreateTable");

        let recovered = [cond(kind::STALLED, "False", "NoBlockers", "")];
        let news = condition_news(&stalled, &recovered);
        assert_eq!(news.len(), 1);
        assert_eq!(
            (news[0].0, news[0].1.as_str()),
            (EventKind::Normal, "NoBlockers")
        );

        // The same reason under two types of Event stays two Events.
        let old = [
            cond(kind::QUEUE_READY, "True", "Provisioned", ""),
            cond(kind::WORKER_AVAILABLE, "False", "Progressing", ""),
        ];
        let new = [
            cond(kind::QUEUE_READY, "False", "Progressing", "creating"),
            cond(kind::WORKER_AVAILABLE, "True", "Progressing", ""),
        ];
        let kinds: Vec<EventKind> = condition_news(&old, &new).iter().map(|n| n.0).collect();
        assert_eq!(kinds, vec![EventKind::Warning, EventKind::Normal]);
    }

    #[test]
    fn notices_are_grouped_by_reason_in_order() {
        let notices = [
            Notice::new(Reason::Created, "created table a"),
            Notice::new(Reason::Adopted, "adopted queue q"),
            Notice::new(Reason::Created, "created table b"),
        ];
        let refs: Vec<&Notice> = notices.iter().collect();
        assert_eq!(
            group_notices(&refs),
            vec![
                (
                    Reason::Created,
                    "created table a; created table b".to_owned()
                ),
                (Reason::Adopted, "adopted queue q".to_owned()),
            ]
        );
        assert!(group_notices(&[]).is_empty());
    }

    #[test]
    fn image_version_is_the_tag_while_it_runs_else_the_short_digest() {
        let digest = format!("sha256:{}", "0123456789ab".repeat(5) + "cdef");
        let running = format!("1.dkr.ecr.us-east-1.amazonaws.com/api-worker@{digest}");
        let resolved = ResolvedImage {
            reference: running.clone(),
            digest: digest.clone(),
        };
        let other = ResolvedImage {
            reference: "r@sha256:ffff".to_owned(),
            digest: "sha256:ffff".to_owned(),
        };
        let tagged = ImageSpec {
            tag: Some("1.4.2".to_owned()),
            ..ImageSpec::default()
        };
        let pinned = ImageSpec {
            digest: Some(digest.clone()),
            ..ImageSpec::default()
        };
        let none = MovieAppStatus::default();
        let before = MovieAppStatus {
            image: Some(running.clone()),
            image_version: Some("1.4.2".to_owned()),
            ..MovieAppStatus::default()
        };
        let short = "sha256:0123456789ab";
        let cases = [
            // The tag resolves to what runs.
            (Some(&resolved), &tagged, &none, "1.4.2"),
            (Some(&resolved), &ImageSpec::default(), &none, "latest"),
            // A digest in the spec, or a tag that moved and has not rolled out yet.
            (Some(&resolved), &pinned, &none, short),
            (Some(&other), &tagged, &before, short),
            // Not resolved this time: the last answer stands for the same image.
            (None, &tagged, &before, "1.4.2"),
            (None, &tagged, &none, short),
        ];
        for (resolved, spec, previous, expected) in cases {
            assert_eq!(
                image_version(&running, resolved, spec, previous),
                expected,
                "{resolved:?} {spec:?}"
            );
        }
        assert_eq!(
            image_version("api-worker:1", None, &tagged, &none),
            "api-worker:1"
        );
    }

    #[test]
    fn next_check_follows_the_parts() {
        use PartState as S;
        let resync = Duration::from_secs(300);
        let part = Part::new;
        let cases = [
            (
                vec![part(kind::IMAGE_RESOLVED, S::ready(Reason::Resolved, ""))],
                Next::Resync,
            ),
            (
                vec![part(
                    kind::IMAGE_RESOLVED,
                    S::progressing(Reason::Creating, ""),
                )],
                Next::Retry(PROGRESS_INTERVAL),
            ),
            (
                vec![part(
                    kind::IMAGE_RESOLVED,
                    S::blocked(Reason::NameConflict, ""),
                )],
                Next::Retry(BLOCKED_INTERVAL),
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
                Next::Resync,
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
                Next::Retry(PROGRESS_INTERVAL),
            ),
            (
                vec![part(
                    kind::WORKER_AVAILABLE,
                    S::progressing(Reason::SecretUnreadable, ""),
                )],
                Next::Retry(PROGRESS_INTERVAL),
            ),
        ];
        for (parts, expected) in cases {
            assert_eq!(
                next_check(&parts, &Management::Full, resync),
                expected,
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
            role: None,
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
        let verified = verified_pass(inputs(), &image(), &complete, at, at).expect("complete");
        assert!(verified.provisioned.tables.notices.is_empty());
        assert!(verified.provisioned.queue.notices.is_empty());
        assert!(verified.provisioned.notifications.notices.is_empty());
        assert_eq!(verified.provisioned.queue.state, complete.queue.state);

        let progressing = provisioned(PartState::progressing(Reason::Creating, ""));
        assert!(verified_pass(inputs(), &image(), &progressing, at, at).is_none());
        let missing = Err(ImageError::ImageNotFound {
            repository: "r".to_owned(),
            reference: "1".to_owned(),
            region: "us-east-1".to_owned(),
        });
        assert!(verified_pass(inputs(), &missing, &complete, at, at).is_none());
    }

    #[test]
    fn a_transient_read_error_keeps_the_last_complete_pass() {
        use crate::aws::{AwsError, ErrorKind};
        let at = Instant::now();
        let complete = provisioned(PartState::ready(Reason::Provisioned, ""));
        let last = verified_pass(inputs(), &image(), &complete, at, at).expect("complete");

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

    #[test]
    fn drift_is_news_once_per_list_of_differences() {
        let at = |second| Time(Timestamp::from_second(second).unwrap_or(Timestamp::UNIX_EPOCH));
        let parts = [Part::new(
            kind::WORKER_AVAILABLE,
            PartState::ready(Reason::Available, "1/1"),
        )];
        let observed = |differences: &[&str], previous: &[Condition]| {
            let differences = differences.iter().map(|d| (*d).to_owned()).collect();
            conditions::compute(
                previous,
                &parts,
                &Management::ObserveOnly(differences),
                Some(1),
                &at(10),
            )
        };
        let clean = observed(&[], &[]);
        assert_eq!(drift_news(&[], &clean), None, "a first False is no news");
        let one = observed(&["queue q does not exist"], &clean);
        let (kind, reason, note) = drift_news(&clean, &one).expect("new drift");
        assert_eq!((kind, reason.as_str()), (EventKind::Warning, "Drifted"));
        assert!(note.ends_with("queue q does not exist"), "{note}");
        let again = observed(&["queue q does not exist"], &one);
        assert_eq!(drift_news(&one, &again), None, "the same differences again");
        let two = observed(&["queue q does not exist", "table t is untagged"], &again);
        assert!(matches!(
            drift_news(&again, &two),
            Some((EventKind::Warning, _, note)) if note.contains("table t is untagged")
        ));
        let fixed = observed(&[], &two);
        assert!(matches!(
            drift_news(&two, &fixed),
            Some((EventKind::Normal, reason, _)) if reason == "InSync"
        ));
        let full = conditions::compute(&two, &parts, &Management::Full, Some(2), &at(20));
        assert!(matches!(
            drift_news(&two, &full),
            Some((EventKind::Normal, reason, _)) if reason == "Managed"
        ));
    }
}
