//! Provision: the AWS side of a valid MovieApp (the image resolved through
//! ECR, the tables, queues and topic through [`crate::provision`]) and the
//! generated auth Secret, concurrently.
//!
//! AWS is read again only when the last complete pass is older than most of
//! a resync interval or was made for another spec. A resync that could not
//! re-read AWS (throttled, a 5xx, a time-out) says nothing about the
//! resources: what the last complete pass found stands, and the pass is
//! retried soon.

use std::collections::BTreeMap;
use std::time::Instant;

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::{Api, Resource};

use super::children::{self, AUTH_SECRET_KEY};
use super::dereference::{AuthSecret, AuthSecretState, Object};
use super::memory::Verified;
use super::observe::Access;
use super::validate::Validated;
use super::{Context, kube_category};
use crate::aws::ecr::{ImageError, ResolvedImage};
use crate::conditions::PartState;
use crate::provision::{self as aws_side, Mode, Observed, Provisioned, Target};
use crate::reason::Reason;

/// Why the step failed (AWS errors are not failures: they are reported per part).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("creating the auth Secret failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("no source of randomness for the auth Secret's key")]
    Randomness,
}

impl Error {
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(error) => kube_category(error),
            Error::Randomness => "malformed_object",
        }
    }
}

/// A valid MovieApp with its AWS side as it stands.
#[derive(Debug)]
pub struct WithAws<'a> {
    pub object: Object<'a>,
    pub worker_blocker: Option<PartState>,
    pub image: Result<ResolvedImage, ImageError>,
    pub provisioned: Provisioned,
    /// The name of the auth Secret.
    pub auth_secret: String,
    /// The pass this reconcile reused instead of reading AWS, if any.
    pub reused: Option<Verified>,
    /// What could not be re-read (the last pass's state was kept), as messages.
    pub unread: Vec<String>,
    /// When this reconcile's AWS pass started.
    pub started: Instant,
    /// When the last complete pass started: `started`, unless this was a
    /// light pass that found everything in place.
    pub full_at: Instant,
    /// Whether the next steps may write; in [`Mode::Observe`] they compare.
    pub mode: Mode,
    /// Differences found outside AWS so far ([`Mode::Observe`]): the auth Secret.
    pub differences: Vec<String>,
}

/// Takes [`Access`]: nothing here runs while the MovieApp is paused, and
/// with [`Access::Observe`] it reads and reports only.
pub async fn provision<'a>(
    validated: Validated<'a>,
    access: Access<'_>,
    ctx: &Context,
) -> Result<WithAws<'a>, Error> {
    let Validated {
        dereferenced,
        worker_blocker,
    } = validated;
    let object = dereferenced.object;
    let started = Instant::now();
    let mut full_at = started;
    let aws = ctx.shared.aws.clients(&object.region);
    let owner = object.owner();
    let mode = access.mode();
    let target = Target {
        mode,
        ..object.target(&aws, &owner)
    };
    let auth_secret = async {
        match access {
            Access::Manage(_) => ensure_auth_secret(ctx, &object, &dereferenced.auth_secret).await,
            Access::Observe => Ok(dereferenced.auth_secret.state.clone()),
        }
    };
    let (image, provisioned, auth_secret, unread) = match &dereferenced.reused {
        Some(reused) => {
            let auth_secret = auth_secret.await;
            (
                Ok(reused.image.clone()),
                reused.provisioned.clone(),
                auth_secret,
                Vec::new(),
            )
        }
        None => {
            // Only a resync reads tags from the region's snapshot: a new
            // MovieApp, a spec change and an AWS change event read each
            // resource's own.
            let snapshot = if dereferenced.resync {
                let max_age = ctx.shared.config.tag_snapshot_max_age();
                ctx.shared.tag_snapshots.fresh(&aws, max_age).await
            } else {
                None
            };
            let light = dereferenced
                .last
                .as_ref()
                .filter(|_| dereferenced.light && mode == Mode::Manage && snapshot.is_some());
            let target = Target {
                tags: snapshot.as_deref(),
                light: light.map(|last| &last.provisioned),
                ..target
            };
            let (image, provisioned, auth_secret) = tokio::join!(
                ctx.shared
                    .images
                    .resolve(&aws, &object.app.spec.worker.image),
                aws_side::provision(&target),
                auth_secret,
            );
            let provisioned = match light {
                Some(last) if provisioned.quiet() => {
                    full_at = last.full_at;
                    provisioned
                }
                // What a light pass cannot vouch for (something changed,
                // missing or not ready) a complete pass reads at once.
                Some(_) if !transient(&provisioned) => {
                    let complete = Target {
                        tags: None,
                        light: None,
                        ..target
                    };
                    with_notices_of(provisioned, aws_side::provision(&complete).await)
                }
                _ => provisioned,
            };
            let (image, provisioned, unread) =
                hold_through_read_errors(dereferenced.last.as_ref(), image, provisioned);
            (image, provisioned, auth_secret, unread)
        }
    };
    let auth_state = auth_secret?;
    let mut differences = Vec::new();
    let worker_blocker = match mode {
        Mode::Manage => worker_blocker.or_else(|| auth_state.conflict()),
        // Someone else's Secret under the name is a difference, as any
        // other object the operator would not take over.
        Mode::Observe => {
            differences.extend(auth_difference(
                &object.namespace,
                &dereferenced.auth_secret.name,
                &auth_state,
            ));
            worker_blocker
        }
    };
    Ok(WithAws {
        worker_blocker,
        image,
        provisioned,
        auth_secret: dereferenced.auth_secret.name,
        reused: dereferenced.reused,
        unread,
        started,
        full_at,
        mode,
        differences,
        object,
    })
}

/// Whether a part could not be read for a transient reason (throttled, a
/// 5xx, a time-out): the last complete pass stands then, see
/// [`hold_through_read_errors`].
fn transient(provisioned: &Provisioned) -> bool {
    [
        &provisioned.tables.state,
        &provisioned.queue.state,
        &provisioned.notifications.state,
    ]
    .iter()
    .any(|state| state.reason() == Reason::AwsError)
}

/// `complete`, with the notices of the light pass before it first (what it
/// repaired already).
fn with_notices_of(light: Provisioned, mut complete: Provisioned) -> Provisioned {
    let mut tables = light.tables.notices;
    tables.append(&mut complete.tables.notices);
    complete.tables.notices = tables;
    let mut queue = light.queue.notices;
    queue.append(&mut complete.queue.notices);
    complete.queue.notices = queue;
    let mut notifications = light.notifications.notices;
    notifications.append(&mut complete.notifications.notices);
    complete.notifications.notices = notifications;
    complete
}

/// How the auth Secret differs from what `Full` makes of it.
fn auth_difference(namespace: &str, name: &str, state: &AuthSecretState) -> Option<String> {
    match state {
        AuthSecretState::Ours => None,
        AuthSecretState::Missing => Some(format!(
            "Secret {namespace}/{name} (the worker's token signing key) does not exist"
        )),
        AuthSecretState::Foreign(description) => Some(description.clone()),
    }
}

/// Makes sure the Secret with the worker's token signing key exists,
/// creating it with a random key on first use. Returns how its name stands.
async fn ensure_auth_secret(
    ctx: &Context,
    object: &Object<'_>,
    auth: &AuthSecret,
) -> Result<AuthSecretState, Error> {
    if auth.state != AuthSecretState::Missing {
        return Ok(auth.state.clone());
    }
    // 32 random bytes, base64-encoded: printable, since it reaches the worker as an env var.
    let mut random = [0u8; 32];
    aws_lc_rs::rand::fill(&mut random).map_err(|_| Error::Randomness)?;
    let key = base64::engine::general_purpose::STANDARD.encode(random);
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(auth.name.clone()),
            namespace: Some(object.namespace.clone()),
            labels: Some(children::labels(&object.name)),
            owner_references: object.app.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            AUTH_SECRET_KEY.to_owned(),
            ByteString(key.into_bytes()),
        )])),
        ..Secret::default()
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.shared.client.clone(), &object.namespace);
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(AuthSecretState::Ours),
        // Created meanwhile: by another reconcile or process of ours (keep
        // it), or by someone else (never use it).
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let found = secrets.get_metadata_opt(&auth.name).await?;
            Ok(AuthSecretState::of(
                found.as_ref().map(|s| &s.metadata),
                &object.uid,
            ))
        }
        Err(error) => Err(error.into()),
    }
}

/// Keeps, from `last` (the last complete pass for the same spec), every part
/// this pass could not read because of a transient AWS error; returns what
/// it kept, as messages. Anything else this pass saw (a resource gone, a
/// conflict, access denied, a new image) is reported as seen.
pub fn hold_through_read_errors(
    last: Option<&Verified>,
    image: Result<ResolvedImage, ImageError>,
    provisioned: Provisioned,
) -> (Result<ResolvedImage, ImageError>, Provisioned, Vec<String>) {
    let Some(last) = last else {
        return (image, provisioned, Vec::new());
    };
    let (tables, tables_unread) = hold_part(provisioned.tables, &last.provisioned.tables);
    let (queue, queue_unread) = hold_part(provisioned.queue, &last.provisioned.queue);
    // The topic waits for the queues: when they could not be read, it was
    // not looked at either, and what the last pass found of it stands too.
    let (notifications, notifications_unread) = if queue_unread.is_some()
        && provisioned.notifications.state.reason() == Reason::WaitingForQueue
    {
        (last.provisioned.notifications.clone(), None)
    } else {
        hold_part(provisioned.notifications, &last.provisioned.notifications)
    };
    let (role, role_unread) = match (provisioned.role, &last.provisioned.role) {
        (Some(role), Some(last)) => {
            let (role, unread) = hold_part(role, last);
            (Some(role), unread)
        }
        (role, _) => (role, None),
    };
    let mut unread: Vec<String> = [
        tables_unread,
        queue_unread,
        notifications_unread,
        role_unread,
    ]
    .into_iter()
    .flatten()
    .collect();
    let provisioned = Provisioned {
        tables,
        queue,
        notifications,
        role,
    };
    let image = match image {
        Err(ImageError::Aws(error)) if error.stalled_reason().is_none() => {
            unread.push(error.to_string());
            Ok(last.image.clone())
        }
        other => other,
    };
    (image, provisioned, unread)
}

/// `last` in place of `part` when a transient AWS error interrupted it,
/// with the error's message.
fn hold_part<T: Clone>(part: Observed<T>, last: &Observed<T>) -> (Observed<T>, Option<String>) {
    if matches!(
        part.state,
        PartState::Progressing {
            reason: Reason::AwsError,
            ..
        }
    ) {
        let message = part.state.message().to_owned();
        (last.clone(), Some(message))
    } else {
        (part, None)
    }
}
