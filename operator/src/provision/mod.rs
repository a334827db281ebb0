//! Provisioning the AWS side of a MovieApp: DynamoDB tables, the SQS jobs
//! queue and its dead-letter queue, the SNS topic and its subscriptions.
//!
//! Every function here is idempotent and safe to interrupt: names are
//! deterministic ([`crate::naming`]), existing resources are found by name and
//! checked for ownership ([`crate::aws::tags`]), and a steady resource costs
//! only reads. The database and the messaging parts are provisioned
//! concurrently.

mod common;
pub mod database;
pub mod iam;
pub mod inspect;
pub mod messaging;
mod policy;
pub mod resource;
pub mod role;
mod sns;
mod sqs;

use crate::aws::tagging::Snapshot;
use crate::aws::tags::Owner;
use crate::aws::{AwsClients, AwsError};
use crate::conditions::PartState;
use crate::crd::{
    MovieAppSpec, MovieAppStatus, NotificationsStatus, QueueStatus, TableStatus, WorkerRoleStatus,
};
use crate::naming::{AppId, PhysicalNames};
use crate::reason::Reason;

/// Everything provisioning needs to know about one MovieApp.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub aws: &'a AwsClients,
    pub owner: &'a Owner,
    pub id: AppId<'a>,
    pub spec: &'a MovieAppSpec,
    /// `movieapp.io/adopt: "true"`: take over untagged resources with our
    /// names (and resources retained by a deleted MovieApp of the same name).
    pub adopt: bool,
    /// The status as last written (`None` before the first write). Tells a
    /// resource that vanished out of band (`Recreated`) from one never made
    /// (`Created`), saves lookups (queue URLs) and lets deletion find the
    /// topic when the queues are already gone.
    pub previous: Option<&'a MovieAppStatus>,
    /// `metadata.generation`: compared with `previous.observedGeneration` to
    /// tell a spec change (`Updated`) from drift (`DriftRepaired`).
    pub generation: Option<i64>,
    /// Whether provisioning may write, or only reads and reports.
    pub mode: Mode,
    /// The ownership tags of the region, read for this resync by a few
    /// `GetResources` calls shared by every MovieApp
    /// ([`crate::aws::tagging`]); `None`: each resource's tags are read.
    pub tags: Option<&'a Snapshot>,
    /// A light pass: what the last complete pass found. The settings only
    /// the operator writes (the tables' settings, point-in-time recovery,
    /// time to live, the topic's subscriptions) are kept from it instead of
    /// read again; existence, ownership and the queues' attributes are
    /// still checked. `None`: a complete pass.
    pub light: Option<&'a Provisioned>,
    /// The worker roles the operator makes (`--worker-role-oidc-provider-arn`
    /// and `--worker-role-boundary-arn`); `None`: it makes none, and calls
    /// IAM not at all.
    pub worker_roles: Option<&'a role::WorkerRoles>,
}

/// Whether provisioning acts on what it plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Create, tag and repair (`managementPolicy: Full`).
    Manage,
    /// Read and plan only: every write the plan holds is reported as a
    /// difference (a [`Notice`] with reason `Drifted`) instead
    /// (`managementPolicy: ObserveOnly`).
    Observe,
}

impl Target<'_> {
    /// The physical names of this MovieApp's resources: the spec's explicit
    /// ones, else the operator's.
    pub fn names(&self) -> PhysicalNames {
        PhysicalNames::of(self.id, self.spec)
    }
}

/// Something worth a Kubernetes Event (a resource created, adopted,
/// recreated after it vanished, or an attribute restored after drift).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// `Created`, `Adopted`, `Recreated`, `Updated`, `DriftRepaired` or `Deleted`.
    pub reason: Reason,
    pub message: String,
}

impl Notice {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }

    /// A difference between the spec and what exists, found in
    /// [`Mode::Observe`]: reported in the `Drifted` condition, not as an
    /// Event of its own.
    pub fn difference(message: impl Into<String>) -> Self {
        Self::new(Reason::Drifted, message)
    }

    pub fn is_difference(&self) -> bool {
        self.reason == Reason::Drifted
    }
}

impl Provisioned {
    /// Whether every part is ready and nothing was changed or found
    /// different: what a light pass must find to stand.
    pub fn quiet(&self) -> bool {
        self.tables.state.is_ready()
            && self.queue.state.is_ready()
            && self.notifications.state.is_ready()
            && self.tables.notices.is_empty()
            && self.queue.notices.is_empty()
            && self.notifications.notices.is_empty()
    }
}

/// What one part looks like after provisioning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed<T> {
    pub state: PartState,
    /// What was made, when known (also while still progressing).
    pub value: Option<T>,
    pub notices: Vec<Notice>,
}

impl<T> Observed<T> {
    pub fn ready(value: T, notices: Vec<Notice>) -> Self {
        Self {
            state: PartState::ready(Reason::Provisioned, "provisioned"),
            value: Some(value),
            notices,
        }
    }

    /// From an AWS error: `Blocked` when a human must act, `Progressing` otherwise.
    pub fn from_error(error: &AwsError, value: Option<T>, notices: Vec<Notice>) -> Self {
        let state = match error.stalled_reason() {
            Some(reason) => PartState::blocked(reason, error.to_string()),
            None => PartState::progressing(Reason::AwsError, format!("retrying: {error}")),
        };
        Self {
            state,
            value,
            notices,
        }
    }
}

/// The AWS side of a MovieApp after one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    pub tables: Observed<Vec<TableStatus>>,
    pub queue: Observed<QueueStatus>,
    pub notifications: Observed<NotificationsStatus>,
    /// The worker's IAM role; `None` when the operator makes none.
    pub role: Option<Observed<WorkerRoleStatus>>,
}

/// Creates or repairs every AWS resource of `target`; in [`Mode::Observe`],
/// reads them and reports how they differ instead.
pub async fn provision(target: &Target<'_>) -> Provisioned {
    let role = async {
        match target.worker_roles {
            Some(roles) => Some(ensure_role(target, roles).await),
            None => None,
        }
    };
    let (tables, (queue, notifications), role) =
        tokio::join!(database::ensure(target), messaging::ensure(target), role);
    Provisioned {
        tables: drifted(tables),
        queue: drifted(queue),
        notifications: drifted(notifications),
        role: role.map(drifted),
    }
}

/// The worker's IAM role: made, owned and kept as declared.
async fn ensure_role(target: &Target<'_>, roles: &role::WorkerRoles) -> Observed<WorkerRoleStatus> {
    let name = role::role_name(target.id);
    let desired = match roles.desired(target) {
        Ok(desired) => desired,
        Err(halt) => return halt.observed(None, Vec::new()),
    };
    let recorded = target
        .previous
        .and_then(|s| s.worker_role.as_ref())
        .is_some_and(|r| r.name == name);
    let declared = resource::Declared {
        id: &name,
        desired: &desired,
        recorded,
    };
    resource::ensure(&role::Roles::of(target), target, declared)
        .await
        .observed(|role| WorkerRoleStatus {
            name: role.name,
            arn: role.arn,
        })
}

/// A part that exists but differs from the spec is not ready: `Drifted`,
/// with its differences. (Only [`Mode::Observe`] reports differences;
/// otherwise the part is returned as it is.)
fn drifted<T>(mut part: Observed<T>) -> Observed<T> {
    let differences: Vec<&str> = part
        .notices
        .iter()
        .filter(|n| n.is_difference())
        .map(|n| n.message.as_str())
        .collect();
    if part.state.is_ready() && !differences.is_empty() {
        part.state = PartState::progressing(Reason::Drifted, differences.join("; "));
    }
    part
}

/// Where a deletion stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleanup {
    /// Every resource is gone (or was never there).
    Done,
    /// Deletion is under way; check again later.
    Waiting(String),
}

impl Cleanup {
    /// `Done` when nothing is still being deleted.
    fn waiting_for(waiting: Vec<String>) -> Self {
        if waiting.is_empty() {
            Self::Done
        } else {
            Self::Waiting(waiting.join("; "))
        }
    }
}

/// Deletes every AWS resource of `target` that this MovieApp owns
/// (subscriptions, topic, queues, tables); resources owned by someone else
/// are left alone, resources already gone are fine.
pub async fn delete(target: &Target<'_>) -> Result<Cleanup, AwsError> {
    let role = async {
        match target.worker_roles {
            Some(_) => {
                let name = role::role_name(target.id);
                resource::delete(&role::Roles::of(target), target, &name).await
            }
            None => Ok(None),
        }
    };
    let (database, messaging, role) =
        tokio::join!(database::delete(target), messaging::delete(target), role);
    let waiting: Vec<String> = [database?, messaging?]
        .into_iter()
        .filter_map(|part| match part {
            Cleanup::Done => None,
            Cleanup::Waiting(message) => Some(message),
        })
        .chain(role?)
        .collect();
    Ok(Cleanup::waiting_for(waiting))
}

/// Leaves every AWS resource of `target` in place, tagged as retained.
pub async fn retain(target: &Target<'_>) -> Result<(), AwsError> {
    let role = async {
        match target.worker_roles {
            Some(_) => {
                let name = role::role_name(target.id);
                resource::retain(&role::Roles::of(target), target, &name)
                    .await
                    .map(|_| ())
            }
            None => Ok(()),
        }
    };
    let (database, messaging, role) =
        tokio::join!(database::retain(target), messaging::retain(target), role);
    database?;
    messaging?;
    role
}
