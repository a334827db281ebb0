//! Reading the AWS side of a MovieApp without changing anything, for
//! `kubectl movieapp status`.
//!
//! Each resource is looked up the way provisioning looks it up: by the same
//! physical names (each part's own naming), with the same reads
//! ([`resource::find_with_tags`]) and judged by the same ownership rule
//! ([`resource::claim_of`]), so what the plugin shows is what the operator
//! finds. Nothing here writes.

use futures::future::join3;

use super::resource::{self, Claim, Kind, LiveStatus};
use super::role::{self, Roles};
use super::{Target, database, messaging};
use crate::conditions::kind::WORKER_ROLE_READY;

/// The kinds of AWS resource a MovieApp has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Table,
    Queue,
    DeadLetterQueue,
    Topic,
    Subscription,
    /// The worker's IAM role, when the operator makes it.
    Role,
}

/// One AWS resource of a MovieApp, as read just now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    pub kind: ResourceKind,
    /// Its role: a table's component (`users`), `jobs`, `jobs-dlq`,
    /// `notifications`; a subscription's protocol.
    pub component: String,
    /// The physical name; a subscription's endpoint.
    pub name: String,
    /// Whether the spec asks for it: a subscription the spec does not list
    /// is removed at the next reconcile.
    pub declared: bool,
    pub presence: Presence,
}

/// Whether a resource exists, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    Found {
        /// Its ARN; a queue's URL; a subscription's ARN, or
        /// `PendingConfirmation`.
        address: String,
        live: Option<LiveStatus>,
        /// Whose it is by its tags. `None` for subscriptions: they carry no
        /// tags and belong to the topic.
        claim: Option<Claim>,
    },
    Missing,
    /// Not known: the read failed, or the resource cannot be looked up
    /// yet; the message says which.
    Unknown(String),
}

/// Every AWS resource of `target`: the tables, the jobs queue and its
/// dead-letter queue, the topic and its subscriptions, and the worker's
/// role when the operator makes it.
pub async fn inspect(target: &Target<'_>) -> Vec<Inspected> {
    let (mut resources, messaging, role) = join3(
        database::inspect(target),
        messaging::inspect(target),
        worker_role(target),
    )
    .await;
    resources.extend(messaging);
    resources.extend(role);
    resources
}

/// The worker's role, when the operator makes the roles: it is configured
/// so (the operator's own view), or the MovieApp's status says so (the
/// plugin's, which does not know the operator's flags). `None` otherwise:
/// the role then comes from the platform, not from the operator.
async fn worker_role(target: &Target<'_>) -> Option<Inspected> {
    let made_by_operator = target.worker_roles.is_some()
        || target.previous.is_some_and(|status| {
            status.worker_role.is_some()
                || status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == WORKER_ROLE_READY)
        });
    if !made_by_operator {
        return None;
    }
    let name = role::role_name(target.id);
    let (presence, _) = one(&Roles::of(target), target, &name, |r| r.arn.clone()).await;
    Some(Inspected {
        kind: ResourceKind::Role,
        component: "worker".to_owned(),
        name,
        declared: true,
        presence,
    })
}

/// One resource: how it stands, and what finding it read (to look further).
pub(super) async fn one<K: Kind>(
    kind: &K,
    target: &Target<'_>,
    id: &K::Id,
    address: impl FnOnce(&K::Found) -> String,
) -> (Presence, Option<K::Found>) {
    match resource::find_with_tags(kind, id).await {
        Ok(Some((found, tags))) => {
            let claim = resource::claim_of(target, &K::what(id), &tags);
            let presence = Presence::Found {
                address: address(&found),
                live: K::live_status(&found),
                claim: Some(claim),
            };
            (presence, Some(found))
        }
        Ok(None) => (Presence::Missing, None),
        Err(halt) => (Presence::Unknown(halt.message()), None),
    }
}
