//! Update status: computed from one reconcile's observations, written only
//! when it changed, with Events on condition transitions and for what
//! provisioning reports (created, recreated, drift repaired, ...).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::warn;

use super::{Error, children, object_key};
use crate::aws::ecr::ResolvedImage;
use crate::conditions::{self, Part, kind};
use crate::context::Context;
use crate::crd::{MovieApp, MovieAppStatus};
use crate::provision::{Notice, Provisioned};
use crate::reason::Reason;

/// What one reconcile saw.
#[derive(Debug)]
pub struct Observation<'a> {
    pub parts: &'a [Part],
    pub region: &'a str,
    pub image: Option<&'a ResolvedImage>,
    pub deployment: Option<&'a Deployment>,
    pub provisioned: &'a Provisioned,
    pub notices: &'a [&'a Notice],
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
    MovieAppStatus {
        observed_generation: app.metadata.generation,
        conditions: conditions::compute(
            &previous.conditions,
            observation.parts,
            app.metadata.generation,
            now,
        ),
        region: Some(observation.region.to_owned()),
        image: observation
            .deployment
            .and_then(running_image)
            .or_else(|| observation.image.map(|i| i.reference.clone()))
            .or(previous.image),
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
            .tables
            .value
            .clone()
            .unwrap_or(previous.tables),
        queue: observation
            .provisioned
            .queue
            .value
            .clone()
            .or(previous.queue),
        notifications: observation
            .provisioned
            .notifications
            .value
            .clone()
            .or(previous.notifications),
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
pub async fn update(
    ctx: &Context,
    app: &MovieApp,
    observation: Observation<'_>,
) -> Result<(), Error> {
    let status = compute(app, &observation, &now());
    let previous = app.status.clone().unwrap_or_default();

    ctx.shared.metrics.set_conditions(
        object_key(app),
        status
            .conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect(),
    );

    if app.status.as_ref() != Some(&status) {
        patch_status(ctx, app, &status).await?;
    }

    for transition in conditions::transitions(&previous.conditions, &status.conditions) {
        let condition = transition.condition;
        if condition.type_ == kind::RECONCILING {
            continue;
        }
        let healthy = (condition.type_ == kind::STALLED) == (condition.status == "False");
        // The first False of a part that is merely progressing is not news.
        if transition.from.is_none() && !healthy && condition.type_ != kind::STALLED {
            continue;
        }
        let kind = if healthy {
            EventKind::Normal
        } else {
            EventKind::Warning
        };
        let note = format!(
            "{} is {}: {}",
            condition.type_, condition.status, condition.message
        );
        publish(ctx, app, kind, &condition.reason, &note).await;
    }
    for (reason, note) in group_notices(observation.notices) {
        event(ctx, app, EventKind::Normal, reason, &note).await;
    }
    Ok(())
}

/// One Event per reason: a first reconcile creates seven AWS resources, and
/// one `Created` Event naming them all costs one API request instead of
/// seven (which, for hundreds of MovieApps at once, slowed every reconcile).
fn group_notices(notices: &[&Notice]) -> Vec<(Reason, String)> {
    let mut grouped: Vec<(Reason, String)> = Vec::new();
    for notice in notices {
        match grouped
            .iter_mut()
            .find(|(reason, _)| *reason == notice.reason)
        {
            Some((_, note)) => {
                note.push_str("; ");
                note.push_str(&notice.message);
            }
            None => grouped.push((notice.reason, notice.message.clone())),
        }
    }
    grouped
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
}
