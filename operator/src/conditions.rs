//! Status conditions, computed purely from what one reconcile observed.
//!
//! The summary conditions follow kstatus (what Flux reads) and our Argo CD
//! health script: `Reconciling=True` while work is in progress, `Stalled=True`
//! when a human must act, `Ready=True` only when every part is ready. They
//! are present from the first reconcile on and recomputed at every reconcile,
//! so `Stalled` clears as soon as its cause is gone.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::reason::Reason;

/// Condition types.
pub mod kind {
    pub const READY: &str = "Ready";
    pub const RECONCILING: &str = "Reconciling";
    pub const STALLED: &str = "Stalled";
    pub const PAUSED: &str = "Paused";
    pub const DRIFTED: &str = "Drifted";
    pub const IMAGE_RESOLVED: &str = "ImageResolved";
    pub const DATABASE_READY: &str = "DatabaseReady";
    pub const QUEUE_READY: &str = "QueueReady";
    pub const NOTIFICATIONS_READY: &str = "NotificationsReady";
    /// Only when the operator makes the worker's IAM role.
    pub const WORKER_ROLE_READY: &str = "WorkerRoleReady";
    pub const WORKER_AVAILABLE: &str = "WorkerAvailable";
}

/// How one part of the application stands after a reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartState {
    /// Done and healthy.
    Ready { reason: Reason, message: String },
    /// Work under way, or a transient error that is being retried.
    Progressing { reason: Reason, message: String },
    /// Needs a human: bad spec, missing reference, conflict, access denied.
    Blocked { reason: Reason, message: String },
    /// Not looked at in this reconcile (nothing was read while the spec is
    /// invalid): the previous condition of this type stands as it was;
    /// `reason` and `message` only when there is none.
    Unchecked { reason: Reason, message: String },
}

impl PartState {
    pub fn ready(reason: Reason, message: impl Into<String>) -> Self {
        Self::Ready {
            reason,
            message: message.into(),
        }
    }

    pub fn progressing(reason: Reason, message: impl Into<String>) -> Self {
        Self::Progressing {
            reason,
            message: message.into(),
        }
    }

    pub fn blocked(reason: Reason, message: impl Into<String>) -> Self {
        Self::Blocked {
            reason,
            message: message.into(),
        }
    }

    pub fn unchecked(reason: Reason, message: impl Into<String>) -> Self {
        Self::Unchecked {
            reason,
            message: message.into(),
        }
    }

    pub fn is_ready(&self) -> bool {
        matches!(self, Self::Ready { .. })
    }

    pub fn is_blocked(&self) -> bool {
        matches!(self, Self::Blocked { .. })
    }

    pub fn reason(&self) -> Reason {
        match self {
            Self::Ready { reason, .. }
            | Self::Progressing { reason, .. }
            | Self::Blocked { reason, .. }
            | Self::Unchecked { reason, .. } => *reason,
        }
    }

    /// The same state with its message rewritten.
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            Self::Ready { reason, message } => Self::ready(reason, f(message)),
            Self::Progressing { reason, message } => Self::progressing(reason, f(message)),
            Self::Blocked { reason, message } => Self::blocked(reason, f(message)),
            Self::Unchecked { reason, message } => Self::unchecked(reason, f(message)),
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Ready { message, .. }
            | Self::Progressing { message, .. }
            | Self::Blocked { message, .. }
            | Self::Unchecked { message, .. } => message,
        }
    }
}

/// One part and its condition type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub condition: &'static str,
    pub state: PartState,
}

impl Part {
    pub fn new(condition: &'static str, state: PartState) -> Self {
        Self { condition, state }
    }
}

/// How the operator acts on a MovieApp (`spec.managementPolicy`), with what
/// it found when it only observes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Management {
    /// `Full`: the operator repairs every difference itself.
    Full,
    /// `ObserveOnly`: every difference between the spec and what exists.
    ObserveOnly(Vec<String>),
    /// `ObserveOnly`, not compared in this reconcile (the spec is invalid):
    /// `Drifted` stays as it was.
    Unchecked,
}

/// How many differences the `Drifted` message lists; the rest are counted.
const LISTED_DIFFERENCES: usize = 20;
/// How long one listed difference may be, in characters.
const DIFFERENCE_CHARS: usize = 300;

/// The `Drifted` message for `differences` (not empty): how many, then each
/// of the first [`LISTED_DIFFERENCES`], at most [`DIFFERENCE_CHARS`]
/// characters each, so the status stays small whatever AWS holds.
pub fn drift_message(differences: &[String]) -> String {
    let count = differences.len();
    let mut listed: Vec<String> = differences
        .iter()
        .take(LISTED_DIFFERENCES)
        .map(|d| {
            if d.chars().count() > DIFFERENCE_CHARS {
                let cut: String = d.chars().take(DIFFERENCE_CHARS - 1).collect();
                format!("{cut}…")
            } else {
                d.clone()
            }
        })
        .collect();
    if count > LISTED_DIFFERENCES {
        listed.push(format!("and {} more", count - LISTED_DIFFERENCES));
    }
    let noun = if count == 1 {
        "difference"
    } else {
        "differences"
    };
    format!(
        "{count} {noun} between the spec and what exists (ObserveOnly changes nothing; with \
         managementPolicy Full the operator would make them match): {}",
        listed.join("; ")
    )
}

/// The desired value of one condition, before timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Desired {
    type_: &'static str,
    status: bool,
    reason: Reason,
    message: String,
}

/// Every condition for these parts: the three summary conditions first, then
/// one per part in the order given.
///
/// `lastTransitionTime` is kept from `previous` when a condition's status did
/// not change, so an unchanged world yields an identical list (and no write).
pub fn compute(
    previous: &[Condition],
    parts: &[Part],
    management: &Management,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let summary = summary(parts, management)
        .into_iter()
        .chain([Desired {
            type_: kind::PAUSED,
            status: false,
            reason: Reason::Active,
            message: "the operator manages the MovieApp".to_owned(),
        }])
        .map(|desired| materialise(previous, desired, generation, now));
    let drifted = match management {
        Management::Unchecked => previous
            .iter()
            .find(|c| c.type_ == kind::DRIFTED)
            .cloned()
            .unwrap_or_else(|| {
                let unchecked = Desired {
                    type_: kind::DRIFTED,
                    status: false,
                    reason: Reason::Observing,
                    message: "not compared while the spec is invalid".to_owned(),
                };
                materialise(previous, unchecked, generation, now)
            }),
        _ => materialise(previous, drift(management), generation, now),
    };
    let summary = summary.chain([drifted]);
    let parts = parts.iter().map(|part| {
        let kept = matches!(part.state, PartState::Unchecked { .. })
            .then(|| previous.iter().find(|c| c.type_ == part.condition))
            .flatten();
        match kept {
            Some(condition) => condition.clone(),
            None => materialise(
                previous,
                Desired {
                    type_: part.condition,
                    status: part.state.is_ready(),
                    reason: part.state.reason(),
                    message: part.state.message().to_owned(),
                },
                generation,
                now,
            ),
        }
    });
    summary.chain(parts).collect()
}

/// Conditions for an object being deleted: not ready, reconciling.
pub fn deleting(
    previous: &[Condition],
    message: &str,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut conditions: Vec<Condition> = [
        Desired {
            type_: kind::READY,
            status: false,
            reason: Reason::Deleting,
            message: message.to_owned(),
        },
        Desired {
            type_: kind::RECONCILING,
            status: true,
            reason: Reason::Deleting,
            message: message.to_owned(),
        },
        not_stalled(),
    ]
    .into_iter()
    .map(|desired| materialise(previous, desired, generation, now))
    .collect();
    // Keep the per-part conditions as they were.
    conditions.extend(parts_of(previous));
    conditions
}

/// The per-part conditions of `previous`, kept as they were (everything but
/// the summary conditions).
fn parts_of(previous: &[Condition]) -> impl Iterator<Item = Condition> + '_ {
    previous
        .iter()
        .filter(|c| ![kind::READY, kind::RECONCILING, kind::STALLED].contains(&c.type_.as_str()))
        .cloned()
}

/// Conditions for an object whose deletion waits for a human (`reason`):
/// not ready, not reconciling, stalled; the parts as they were.
pub fn deletion_blocked(
    previous: &[Condition],
    reason: Reason,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut conditions: Vec<Condition> = [
        (kind::READY, false),
        (kind::RECONCILING, false),
        (kind::STALLED, true),
    ]
    .into_iter()
    .map(|(type_, status)| Desired {
        type_,
        status,
        reason,
        message: message.to_owned(),
    })
    .map(|desired| materialise(previous, desired, generation, now))
    .collect();
    conditions.extend(parts_of(previous));
    conditions
}

/// Conditions for a paused object: `Paused=True`, everything else as the
/// last reconcile left it. A MovieApp paused before its first reconcile gets
/// the summary conditions too (always present), `Ready=False` for the pause.
pub fn paused(
    previous: &[Condition],
    message: &str,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let first = [
        Desired {
            type_: kind::READY,
            status: false,
            reason: Reason::Paused,
            message: message.to_owned(),
        },
        Desired {
            type_: kind::RECONCILING,
            status: false,
            reason: Reason::Paused,
            message: message.to_owned(),
        },
        not_stalled(),
    ];
    let pause = Desired {
        type_: kind::PAUSED,
        status: true,
        reason: Reason::Paused,
        message: message.to_owned(),
    };
    let mut conditions: Vec<Condition> = first
        .into_iter()
        .map(|desired| {
            previous
                .iter()
                .find(|c| c.type_ == desired.type_)
                .cloned()
                .unwrap_or_else(|| materialise(previous, desired, generation, now))
        })
        .collect();
    conditions.push(match previous.iter().find(|c| c.type_ == kind::PAUSED) {
        // Unchanged, so a paused object is written once.
        Some(c) if c.status == "True" && c.message == message => c.clone(),
        _ => materialise(previous, pause, generation, now),
    });
    conditions.extend(
        previous
            .iter()
            .filter(|c| {
                ![kind::READY, kind::RECONCILING, kind::STALLED, kind::PAUSED]
                    .contains(&c.type_.as_str())
            })
            .cloned(),
    );
    conditions
}

/// `Stalled=False`: nothing blocks.
fn not_stalled() -> Desired {
    Desired {
        type_: kind::STALLED,
        status: false,
        reason: Reason::NoBlockers,
        message: String::new(),
    }
}

/// The `Drifted` condition of a MovieApp that was compared (or is `Full`).
fn drift(management: &Management) -> Desired {
    let (status, reason, message) = match management {
        Management::ObserveOnly(differences) if !differences.is_empty() => {
            (true, Reason::Drifted, drift_message(differences))
        }
        Management::ObserveOnly(_) => (
            false,
            Reason::InSync,
            "what exists matches the spec".to_owned(),
        ),
        Management::Full | Management::Unchecked => (
            false,
            Reason::Managed,
            "managementPolicy is Full: the operator repairs every difference".to_owned(),
        ),
    };
    Desired {
        type_: kind::DRIFTED,
        status,
        reason,
        message,
    }
}

/// Ready, Reconciling and Stalled. With ObserveOnly nothing is under way
/// (`Reconciling=False`, reason `Observing`), and `Ready` says whether what
/// exists matches the spec: False, reason `Drifted`, while any difference
/// stands (a blocked part still comes first).
fn summary(parts: &[Part], management: &Management) -> [Desired; 3] {
    let [ready, reconciling, stalled] = managed_summary(parts);
    let differences = match management {
        Management::Full => return [ready, reconciling, stalled],
        Management::ObserveOnly(differences) => differences.len(),
        Management::Unchecked => 0,
    };
    let ready = if differences > 0 && !stalled.status {
        Desired {
            type_: kind::READY,
            status: false,
            reason: Reason::Drifted,
            message: format!(
                "what exists differs from the spec ({differences} in condition Drifted), and \
                 managementPolicy ObserveOnly changes nothing"
            ),
        }
    } else if ready.status {
        Desired {
            message: "what exists matches the spec and the worker is available \
                      (managementPolicy ObserveOnly)"
                .to_owned(),
            ..ready
        }
    } else {
        ready
    };
    let reconciling = Desired {
        type_: kind::RECONCILING,
        status: false,
        reason: Reason::Observing,
        message: "managementPolicy is ObserveOnly: the operator reads and compares, and \
                  changes nothing"
            .to_owned(),
    };
    [ready, reconciling, stalled]
}

fn managed_summary(parts: &[Part]) -> [Desired; 3] {
    let blocked = parts.iter().find(|p| p.state.is_blocked());
    let waiting: Vec<&Part> = parts.iter().filter(|p| !p.state.is_ready()).collect();

    let ready = match waiting.first() {
        None => Desired {
            type_: kind::READY,
            status: true,
            reason: Reason::Available,
            message: "every part is provisioned and the worker is available".to_owned(),
        },
        Some(first) => {
            let cause = blocked.unwrap_or(first);
            Desired {
                type_: kind::READY,
                status: false,
                reason: cause.state.reason(),
                message: format!("{}: {}", cause.condition, cause.state.message()),
            }
        }
    };

    let stalled = match blocked {
        Some(part) => Desired {
            type_: kind::STALLED,
            status: true,
            reason: part.state.reason(),
            message: format!("{}: {}", part.condition, part.state.message()),
        },
        None => not_stalled(),
    };

    let reconciling = if blocked.is_none() && !waiting.is_empty() {
        let names: Vec<&str> = waiting.iter().map(|p| p.condition).collect();
        Desired {
            type_: kind::RECONCILING,
            status: true,
            reason: Reason::Progressing,
            message: format!("waiting for {}", names.join(", ")),
        }
    } else {
        Desired {
            type_: kind::RECONCILING,
            status: false,
            reason: Reason::Reconciled,
            message: String::new(),
        }
    };

    [ready, reconciling, stalled]
}

fn materialise(
    previous: &[Condition],
    desired: Desired,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if desired.status { "True" } else { "False" };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == desired.type_ && c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: desired.type_.to_owned(),
        status: status.to_owned(),
        reason: desired.reason.as_str().to_owned(),
        message: desired.message,
        last_transition_time,
        observed_generation: generation,
    }
}

/// A condition whose status changed between two lists.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition<'a> {
    pub condition: &'a Condition,
    /// The status before, if the condition existed.
    pub from: Option<&'a str>,
}

/// The conditions of `new` whose status differs from `old`'s.
pub fn transitions<'a>(old: &'a [Condition], new: &'a [Condition]) -> Vec<Transition<'a>> {
    new.iter()
        .filter_map(|condition| {
            let before = old.iter().find(|c| c.type_ == condition.type_);
            match before {
                Some(before) if before.status == condition.status => None,
                _ => Some(Transition {
                    condition,
                    from: before.map(|c| c.status.as_str()),
                }),
            }
        })
        .collect()
}

/// Whether a condition of this type is currently True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH))
    }

    fn find<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
        conditions
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("no {type_} condition"))
    }

    fn all_ready() -> Vec<Part> {
        vec![
            Part::new(
                kind::IMAGE_RESOLVED,
                PartState::ready(Reason::Resolved, "ok"),
            ),
            Part::new(
                kind::WORKER_AVAILABLE,
                PartState::ready(Reason::Available, "2/2"),
            ),
        ]
    }

    #[test]
    fn all_parts_ready_means_ready_and_nothing_else() {
        let conditions = compute(&[], &all_ready(), &Management::Full, Some(3), &at(10));
        assert_eq!(find(&conditions, kind::READY).status, "True");
        assert_eq!(find(&conditions, kind::RECONCILING).status, "False");
        assert_eq!(find(&conditions, kind::STALLED).status, "False");
        assert!(conditions.iter().all(|c| c.observed_generation == Some(3)));
        let types: Vec<&str> = conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            types,
            [
                kind::READY,
                kind::RECONCILING,
                kind::STALLED,
                kind::PAUSED,
                kind::DRIFTED,
                kind::IMAGE_RESOLVED,
                kind::WORKER_AVAILABLE
            ]
        );
        assert_eq!(find(&conditions, kind::PAUSED).status, "False");
        assert_eq!(find(&conditions, kind::PAUSED).reason, "Active");
        assert_eq!(find(&conditions, kind::DRIFTED).status, "False");
        assert_eq!(find(&conditions, kind::DRIFTED).reason, "Managed");
    }

    #[test]
    fn observe_only_is_ready_only_without_differences_and_never_reconciling() {
        let matching = compute(
            &[],
            &all_ready(),
            &Management::ObserveOnly(Vec::new()),
            Some(1),
            &at(10),
        );
        let state = |list: &[Condition], type_| {
            let c = find(list, type_);
            (c.status.clone(), c.reason.clone())
        };
        assert_eq!(
            state(&matching, kind::READY),
            ("True".into(), "Available".into())
        );
        assert!(find(&matching, kind::READY).message.contains("ObserveOnly"));
        assert_eq!(
            state(&matching, kind::DRIFTED),
            ("False".into(), "InSync".into())
        );
        assert_eq!(
            state(&matching, kind::RECONCILING),
            ("False".into(), "Observing".into())
        );

        let differences = vec!["SQS queue q does not exist".to_owned()];
        let mut parts = all_ready();
        parts.push(Part::new(
            kind::QUEUE_READY,
            PartState::progressing(Reason::Drifted, "SQS queue q does not exist"),
        ));
        let drifted = compute(
            &matching,
            &parts,
            &Management::ObserveOnly(differences),
            Some(1),
            &at(20),
        );
        assert_eq!(
            state(&drifted, kind::READY),
            ("False".into(), "Drifted".into())
        );
        assert_eq!(
            state(&drifted, kind::DRIFTED),
            ("True".into(), "Drifted".into())
        );
        assert_eq!(
            state(&drifted, kind::RECONCILING),
            ("False".into(), "Observing".into())
        );
        assert_eq!(
            state(&drifted, kind::STALLED),
            ("False".into(), "NoBlockers".into())
        );
        let message = &find(&drifted, kind::DRIFTED).message;
        assert!(
            message.starts_with("1 difference between the spec and what exists")
                && message.ends_with(": SQS queue q does not exist"),
            "{message}"
        );

        // A part that needs a human still stalls, ahead of the drift.
        parts.push(Part::new(
            kind::DATABASE_READY,
            PartState::blocked(Reason::AccessDenied, "denied"),
        ));
        let blocked = compute(
            &drifted,
            &parts,
            &Management::ObserveOnly(vec!["x".into()]),
            Some(1),
            &at(30),
        );
        assert_eq!(
            state(&blocked, kind::READY),
            ("False".into(), "AccessDenied".into())
        );
        assert_eq!(
            state(&blocked, kind::STALLED),
            ("True".into(), "AccessDenied".into())
        );

        // Not compared (an invalid spec): Drifted stays as it was.
        let unchecked = compute(&drifted, &parts, &Management::Unchecked, Some(2), &at(40));
        assert_eq!(
            find(&unchecked, kind::DRIFTED),
            find(&drifted, kind::DRIFTED)
        );
    }

    #[test]
    fn the_drift_message_is_bounded() {
        let many: Vec<String> = (0..100)
            .map(|i| format!("{i}: {}", "x".repeat(1000)))
            .collect();
        let message = drift_message(&many);
        assert!(message.starts_with("100 differences between the spec and what exists"));
        assert!(
            message.ends_with("; and 80 more"),
            "{}",
            &message[message.len() - 40..]
        );
        assert!(
            message.chars().count() < 20 * 305 + 300,
            "{} characters",
            message.len()
        );
        assert!(message.contains("19: xxx") && !message.contains("20: x"));
    }

    #[test]
    fn pausing_adds_paused_and_keeps_everything_else() {
        let ready = compute(&[], &all_ready(), &Management::Full, Some(3), &at(10));
        let held = paused(&ready, "held", Some(4), &at(20));
        let pause = find(&held, kind::PAUSED);
        assert_eq!(
            (
                pause.status.as_str(),
                pause.reason.as_str(),
                pause.message.as_str()
            ),
            ("True", "Paused", "held")
        );
        assert_eq!(pause.last_transition_time, at(20));
        assert_eq!(pause.observed_generation, Some(4));
        // Every other condition is the last reconcile's, generation included.
        let others = |list: &[Condition]| -> Vec<Condition> {
            list.iter()
                .filter(|c| c.type_ != kind::PAUSED)
                .cloned()
                .collect()
        };
        assert_eq!(others(&held), others(&ready));
        // Held again: identical (no write).
        assert_eq!(paused(&held, "held", Some(4), &at(30)), held);
        // Resumed: Paused=False again, with a new transition time.
        let resumed = compute(&held, &all_ready(), &Management::Full, Some(4), &at(40));
        assert_eq!(find(&resumed, kind::PAUSED).status, "False");
        assert_eq!(find(&resumed, kind::PAUSED).last_transition_time, at(40));

        // Paused before the first reconcile: the summary conditions are there too.
        let first = paused(&[], "held", Some(1), &at(10));
        let types: Vec<&str> = first.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            types,
            [kind::READY, kind::RECONCILING, kind::STALLED, kind::PAUSED]
        );
        assert_eq!(find(&first, kind::READY).status, "False");
        assert_eq!(find(&first, kind::READY).reason, "Paused");
        assert_eq!(find(&first, kind::STALLED).status, "False");
    }

    #[test]
    fn progressing_part_means_reconciling_not_stalled() {
        let parts = vec![
            Part::new(
                kind::IMAGE_RESOLVED,
                PartState::ready(Reason::Resolved, "ok"),
            ),
            Part::new(
                kind::WORKER_AVAILABLE,
                PartState::progressing(Reason::Progressing, "0/2 available"),
            ),
        ];
        let conditions = compute(&[], &parts, &Management::Full, Some(1), &at(10));
        let ready = find(&conditions, kind::READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "Progressing")
        );
        assert_eq!(ready.message, "WorkerAvailable: 0/2 available");
        assert_eq!(find(&conditions, kind::RECONCILING).status, "True");
        assert_eq!(
            find(&conditions, kind::RECONCILING).message,
            "waiting for WorkerAvailable"
        );
        assert_eq!(find(&conditions, kind::STALLED).status, "False");
    }

    #[test]
    fn blocked_part_stalls_and_names_the_cause_in_ready() {
        let parts = vec![
            Part::new(
                kind::IMAGE_RESOLVED,
                PartState::progressing(Reason::Creating, ""),
            ),
            Part::new(
                kind::WORKER_AVAILABLE,
                PartState::blocked(Reason::SecretNotFound, "Secret tmdb not found"),
            ),
        ];
        let conditions = compute(&[], &parts, &Management::Full, Some(1), &at(10));
        let stalled = find(&conditions, kind::STALLED);
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", "SecretNotFound")
        );
        assert_eq!(find(&conditions, kind::READY).reason, "SecretNotFound");
        assert_eq!(find(&conditions, kind::RECONCILING).status, "False");
    }

    #[test]
    fn transition_time_is_kept_while_status_is_unchanged() {
        let first = compute(&[], &all_ready(), &Management::Full, Some(1), &at(10));
        let second = compute(&first, &all_ready(), &Management::Full, Some(1), &at(20));
        assert_eq!(
            first, second,
            "an unchanged world must give identical conditions"
        );

        let stalled_parts = vec![Part::new(
            kind::WORKER_AVAILABLE,
            PartState::blocked(Reason::SecretNotFound, "x"),
        )];
        let third = compute(&second, &stalled_parts, &Management::Full, Some(1), &at(30));
        assert_eq!(find(&third, kind::STALLED).last_transition_time, at(30));
        assert_eq!(find(&third, kind::READY).last_transition_time, at(30));
        // Stalled clears by itself once the cause is gone.
        let fourth = compute(&third, &all_ready(), &Management::Full, Some(1), &at(40));
        assert_eq!(find(&fourth, kind::STALLED).status, "False");
        assert_eq!(find(&fourth, kind::READY).status, "True");
    }

    #[test]
    fn transitions_report_only_status_changes() {
        let first = compute(&[], &all_ready(), &Management::Full, Some(1), &at(10));
        assert_eq!(transitions(&[], &first).len(), first.len());
        let again = compute(&first, &all_ready(), &Management::Full, Some(2), &at(20));
        assert!(transitions(&first, &again).is_empty());
        let broken = compute(
            &again,
            &[Part::new(
                kind::WORKER_AVAILABLE,
                PartState::blocked(Reason::SecretNotFound, "x"),
            )],
            &Management::Full,
            Some(2),
            &at(30),
        );
        let changed: Vec<&str> = transitions(&again, &broken)
            .iter()
            .map(|t| t.condition.type_.as_str())
            .collect();
        assert_eq!(
            changed,
            [kind::READY, kind::STALLED, kind::WORKER_AVAILABLE]
        );
    }

    #[test]
    fn unchecked_parts_keep_their_condition() {
        let ready = compute(&[], &all_ready(), &Management::Full, Some(1), &at(10));
        let parts = vec![
            Part::new(
                kind::IMAGE_RESOLVED,
                PartState::unchecked(Reason::InvalidSpec, "not looked at"),
            ),
            Part::new(
                kind::WORKER_AVAILABLE,
                PartState::blocked(Reason::InvalidSpec, "bad env"),
            ),
        ];
        let invalid = compute(&ready, &parts, &Management::Full, Some(2), &at(20));
        assert_eq!(
            find(&invalid, kind::IMAGE_RESOLVED),
            find(&ready, kind::IMAGE_RESOLVED)
        );
        let stalled = find(&invalid, kind::STALLED);
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", "InvalidSpec")
        );
        assert_eq!(stalled.message, "WorkerAvailable: bad env");
        // Without an earlier condition, the part says why it was not looked at.
        let first = compute(&[], &parts, &Management::Full, Some(1), &at(10));
        let image = find(&first, kind::IMAGE_RESOLVED);
        assert_eq!(
            (image.status.as_str(), image.reason.as_str()),
            ("False", "InvalidSpec")
        );
    }

    #[test]
    fn a_blocked_deletion_stalls_and_keeps_part_conditions() {
        let ready = compute(&[], &all_ready(), &Management::Full, Some(1), &at(10));
        let blocked = deletion_blocked(
            &ready,
            Reason::DeletionProtected,
            "protected",
            Some(1),
            &at(20),
        );
        for (type_, status) in [
            (kind::READY, "False"),
            (kind::RECONCILING, "False"),
            (kind::STALLED, "True"),
        ] {
            let condition = find(&blocked, type_);
            assert_eq!(condition.status, status, "{type_}");
            assert_eq!(condition.reason, "DeletionProtected", "{type_}");
            assert_eq!(condition.message, "protected", "{type_}");
        }
        assert_eq!(
            find(&blocked, kind::IMAGE_RESOLVED),
            find(&ready, kind::IMAGE_RESOLVED)
        );
        // Unchanged input, unchanged conditions: written once.
        let again = deletion_blocked(
            &blocked,
            Reason::DeletionProtected,
            "protected",
            Some(1),
            &at(30),
        );
        assert_eq!(again, blocked);
    }

    #[test]
    fn deleting_keeps_part_conditions() {
        let ready = compute(&[], &all_ready(), &Management::Full, Some(1), &at(10));
        let deleting = deleting(&ready, "deleting AWS resources", Some(1), &at(20));
        assert_eq!(
            find(&deleting, kind::READY).reason,
            Reason::Deleting.as_str()
        );
        assert_eq!(find(&deleting, kind::RECONCILING).status, "True");
        assert_eq!(
            find(&deleting, kind::IMAGE_RESOLVED),
            find(&ready, kind::IMAGE_RESOLVED)
        );
    }
}
