//! Cleanup: what `deletionPolicy` asks of the AWS resources when a MovieApp
//! is deleted. Kubernetes children go by garbage collection (owner
//! references); the finalizer goes once this step succeeds. An ObserveOnly
//! MovieApp's deletion [`release`]s instead: AWS is left as it is.

use std::time::Duration;

use kube::runtime::controller::Action;
use tracing::info;

use super::dereference::{self, Object};
use super::pause::Writable;
use super::status::{self, EventKind};
use super::{Context, object_key};
use crate::aws::AwsError;
use crate::crd::{DeletionPolicy, MovieApp};
use crate::provision::{self, Cleanup};
use crate::reason::Reason;

/// How soon to look again while AWS deletes resources.
pub const CLEANUP_INTERVAL: Duration = Duration::from_secs(3);

/// Why the finalizer stays.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Dereference(#[from] dereference::Error),
    #[error("AWS cleanup failed: {0}")]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Status(#[from] status::Error),
    /// AWS is still deleting: look again in [`CLEANUP_INTERVAL`]. Not a
    /// failure, but the finalizer helper removes the finalizer as soon as
    /// the clean-up returns `Ok`.
    #[error("AWS is still deleting the resources")]
    Pending,
    /// `deletionPolicy: Delete` with deletion protection on: nothing is
    /// deleted until a human turns protection off (or the policy to
    /// `Retain`); the spec change that does so reconciles again. Not a
    /// failure either: no retries meanwhile.
    #[error("the tables are protected from deletion")]
    Protected,
}

impl Error {
    pub fn category(&self) -> &'static str {
        match self {
            Error::Dereference(error) => error.category(),
            Error::Aws(_) => "aws",
            Error::Status(error) => error.category(),
            Error::Pending => "pending",
            Error::Protected => "deletion_protected",
        }
    }
}

/// Deletes or retains the AWS resources; `Ok` once that is complete.
/// Takes [`Writable`]: a paused MovieApp's deletion waits until it resumes.
pub async fn cleanup(
    app: &MovieApp,
    ctx: &Context,
    _writable: &Writable,
) -> Result<Action, super::Error> {
    let config = &ctx.shared.config;
    let object = Object::of(app, &config.default_region, &config.cluster_id)
        .map_err(Error::from)?
        .configured(config);
    ctx.memory.update(&object.uid, |r| r.verified = None);
    let aws = ctx.shared.aws.clients(&object.region);
    let owner = object.owner();
    let mut target = object.target(&aws, &owner);
    target.adopt = false;

    match app.spec.deletion_policy {
        // Protection means that no one deletes the tables, the operator
        // included: the MovieApp stays whole (tables, queues, topic) and
        // says what to change.
        DeletionPolicy::Delete if app.spec.deletion_protection() => {
            let message = "deletionPolicy is Delete but the tables have deletion protection \
                           (spec.database.deletionProtection), so nothing is deleted; set \
                           spec.database.deletionProtection to false to delete everything, or \
                           spec.deletionPolicy to Retain to keep the AWS resources";
            let newly = status::deletion_blocked(ctx, app, Reason::DeletionProtected, message)
                .await
                .map_err(Error::from)?;
            if newly {
                status::event(
                    ctx,
                    app,
                    EventKind::Warning,
                    Reason::DeletionProtected,
                    message,
                )
                .await;
            }
            return Err(Error::Protected.into());
        }
        DeletionPolicy::Delete => match provision::delete(&target).await.map_err(Error::from)? {
            Cleanup::Done => {
                status::event(
                    ctx,
                    app,
                    EventKind::Normal,
                    Reason::Deleted,
                    "deleted every AWS resource",
                )
                .await;
            }
            Cleanup::Waiting(message) => {
                status::deleting(ctx, app, &format!("deleting AWS resources: {message}"))
                    .await
                    .map_err(Error::from)?;
                return Err(Error::Pending.into());
            }
        },
        DeletionPolicy::Retain => {
            provision::retain(&target).await.map_err(Error::from)?;
            status::event(
                ctx,
                app,
                EventKind::Normal,
                Reason::Retained,
                "kept every AWS resource (deletionPolicy: Retain), tagged movieapp.io/retained=true",
            )
            .await;
        }
    }
    ctx.memory.forget(&object.uid);
    info!(movieapp = %object_key(app), policy = ?app.spec.deletion_policy, "cleaned up");
    Ok(Action::await_change())
}

/// The deletion of an ObserveOnly MovieApp (one that still has the finalizer
/// from a time under `Full`): nothing in AWS is deleted or tagged, whoever
/// made it, and `deletionPolicy` does not apply. ObserveOnly never takes a
/// resource over, so it never gives one back either.
pub async fn release(app: &MovieApp, ctx: &Context) -> Result<Action, super::Error> {
    let config = &ctx.shared.config;
    let object = Object::of(app, &config.default_region, &config.cluster_id)
        .map_err(Error::from)?
        .configured(config);
    status::event(
        ctx,
        app,
        EventKind::Normal,
        Reason::Released,
        "managementPolicy is ObserveOnly: every AWS resource was left as it is (nothing deleted, \
         nothing tagged)",
    )
    .await;
    ctx.memory.forget(&object.uid);
    info!(movieapp = %object_key(app), "released: ObserveOnly leaves AWS as it is");
    Ok(Action::await_change())
}
