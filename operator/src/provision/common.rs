//! What every provisioning file shares: deciding whether an existing resource
//! with our physical name may be touched, how a step stops short of ready,
//! how parts combine, and reading ARNs.

use std::collections::BTreeMap;

use aws_smithy_types::error::operation::BuildError;

use super::{Notice, Observed, Target};
use crate::aws::tags::{self, Owner};
use crate::aws::{AwsError, ErrorKind};
use crate::conditions::PartState;
use crate::reason::Reason;

/// The annotation that lets a MovieApp take over existing resources (read by
/// the reconciler into [`Target::adopt`]; named here for messages).
const ADOPT_ANNOTATION: &str = "movieapp.io/adopt";

/// Why provisioning of a resource stopped before it was ready.
#[derive(Debug)]
pub enum Halt {
    /// A state to report as is: waiting for AWS, or blocked on a human.
    State(PartState),
    /// An AWS call failed; [`Observed::from_error`] classifies it.
    Aws(AwsError),
}

impl From<AwsError> for Halt {
    fn from(error: AwsError) -> Self {
        Self::Aws(error)
    }
}

impl Halt {
    pub fn progressing(reason: Reason, message: impl Into<String>) -> Self {
        Self::State(PartState::progressing(reason, message))
    }

    pub fn blocked(reason: Reason, message: impl Into<String>) -> Self {
        Self::State(PartState::blocked(reason, message))
    }

    /// The part as it stands after this halt.
    pub fn observed<T>(self, value: Option<T>, notices: Vec<Notice>) -> Observed<T> {
        match self {
            Self::State(state) => Observed {
                state,
                value,
                notices,
            },
            Self::Aws(error) => Observed::from_error(&error, value, notices),
        }
    }

    /// True when the resource exists under someone else's ownership.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Self::State(PartState::Blocked {
                reason: Reason::NameConflict,
                ..
            })
        )
    }

    /// What stopped, for a message.
    pub fn message(&self) -> String {
        match self {
            Self::State(state) => state.message().to_owned(),
            Self::Aws(error) => error.to_string(),
        }
    }
}

/// An SDK builder refused a request we built from constants and the
/// validated spec: a bug, reported as a validation error rather than a panic.
pub fn build_error(service: &'static str, operation: &'static str, error: BuildError) -> AwsError {
    AwsError {
        service,
        operation,
        kind: ErrorKind::Invalid,
        code: None,
        message: format!("could not build the request: {error}"),
    }
}

// ------------------------------------------------------------------ ownership

/// What may be done with an existing resource that has our physical name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Tagged with our uid.
    Ours,
    /// Not ours yet, but the MovieApp asked to adopt it: tag it, then manage it.
    Adopt,
    /// Someone else's, or untagged without the adopt annotation: never touched.
    Conflict(String),
}

/// Decides whether `target` may manage the resource `what` (e.g. `DynamoDB
/// table movieapp-...-users`) that carries `tags`.
///
/// Besides untagged resources, adoption also takes over a resource retained
/// by a deleted MovieApp of the same namespace and name (`retained=true`):
/// re-creating a MovieApp after `deletionPolicy: Retain` is the usual way to
/// get its data back. A live foreign owner's resource is never adopted.
pub fn claim(target: &Target<'_>, what: &str, tags: &BTreeMap<String, String>) -> Claim {
    let owner = target.owner;
    let borrowed = || tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    match owner.ownership(borrowed()) {
        tags::Ownership::Ours => Claim::Ours,
        tags::Ownership::Untagged if target.adopt => Claim::Adopt,
        tags::Ownership::Untagged => Claim::Conflict(format!(
            "{what} already exists without the movieapp.io ownership tags, so it is left untouched; \
             to let this MovieApp take it over, annotate the MovieApp with {ADOPT_ANNOTATION}: \"true\""
        )),
        tags::Ownership::Foreign { uid } => {
            let retained_here = tags.get(tags::RETAINED).is_some_and(|v| v == "true")
                && tags.get(tags::NAMESPACE) == Some(&owner.namespace)
                && tags.get(tags::NAME) == Some(&owner.name);
            if retained_here && target.adopt {
                Claim::Adopt
            } else if retained_here {
                Claim::Conflict(format!(
                    "{what} was retained by a deleted MovieApp of the same name ({}={uid}), so it is left untouched; \
                     to take it over, annotate this MovieApp with {ADOPT_ANNOTATION}: \"true\"",
                    tags::UID
                ))
            } else {
                Claim::Conflict(format!(
                    "{what} belongs to another MovieApp ({}={uid}); it is never modified or deleted",
                    tags::UID
                ))
            }
        }
    }
}

/// Whether the resource carries this MovieApp's uid: the only resources that
/// deletion and retention touch.
pub fn is_ours(target: &Target<'_>, tags: &BTreeMap<String, String>) -> bool {
    target
        .owner
        .ownership(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        == tags::Ownership::Ours
}

/// The tag writes that make a resource carry exactly our ownership tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagChanges {
    /// Tags to set (missing or with another value).
    pub set: BTreeMap<String, String>,
    /// Tag keys to remove: a retained marker left by a previous owner.
    pub remove: Vec<String>,
}

impl TagChanges {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }

    /// The keys touched, for an Event message.
    pub fn describe(&self) -> String {
        let mut keys: Vec<&str> = self.set.keys().map(String::as_str).collect();
        keys.extend(self.remove.iter().map(String::as_str));
        keys.join(", ")
    }
}

/// What to write so that `tags` carry `owner`'s ownership tags.
pub fn tag_changes(owner: &Owner, tags: &BTreeMap<String, String>) -> TagChanges {
    let set = owner.missing_tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let remove = tags
        .contains_key(tags::RETAINED)
        .then(|| tags::RETAINED.to_owned())
        .into_iter()
        .collect();
    TagChanges { set, remove }
}

/// The tag that marks a resource kept after its MovieApp was deleted, when
/// `tags` do not carry it yet.
pub fn retained_tag(tags: &BTreeMap<String, String>) -> Option<(String, String)> {
    (tags.get(tags::RETAINED).map(String::as_str) != Some("true"))
        .then(|| (tags::RETAINED.to_owned(), "true".to_owned()))
}

// ------------------------------------------------------------------ notices

/// `Recreated` when the status recorded this resource (so it vanished out of
/// band), `Created` otherwise.
pub fn created(known_before: bool, what: &str) -> Notice {
    if known_before {
        Notice::new(
            Reason::Recreated,
            format!("{what} had disappeared and was created again"),
        )
    } else {
        Notice::new(Reason::Created, format!("created {what}"))
    }
}

/// `Updated` after a spec change, `DriftRepaired` when the spec is unchanged
/// since the last reconcile (the resource was changed outside the operator).
pub fn changed(target: &Target<'_>, message: String) -> Notice {
    let spec_changed = match (target.previous, target.generation) {
        (Some(previous), Some(generation)) => previous.observed_generation != Some(generation),
        _ => false,
    };
    if spec_changed {
        Notice::new(Reason::Updated, message)
    } else {
        Notice::new(Reason::DriftRepaired, message)
    }
}

pub fn adopted(what: &str) -> Notice {
    Notice::new(
        Reason::Adopted,
        format!("adopted {what} and tagged it with this MovieApp's ownership tags"),
    )
}

// ------------------------------------------------------------------ combining

/// The worst of several states: any blocked part blocks, then any progressing
/// part keeps the whole progressing; messages name each part that is not ready.
pub fn combine(states: Vec<(String, PartState)>, ready_message: String) -> PartState {
    let blocked: Vec<&(String, PartState)> =
        states.iter().filter(|(_, s)| s.is_blocked()).collect();
    let waiting: Vec<&(String, PartState)> = states
        .iter()
        .filter(|(_, s)| !s.is_ready() && !s.is_blocked())
        .collect();
    let describe = |parts: &[&(String, PartState)]| {
        parts
            .iter()
            .map(|(name, state)| format!("{name}: {}", state.message()))
            .collect::<Vec<_>>()
            .join("; ")
    };
    if let Some((_, first)) = blocked.first() {
        PartState::blocked(first.reason(), describe(&blocked))
    } else if let Some((_, first)) = waiting.first() {
        PartState::progressing(first.reason(), describe(&waiting))
    } else {
        PartState::ready(Reason::Provisioned, ready_message)
    }
}

// ------------------------------------------------------------------ ARNs

/// The parts of an ARN (`arn:partition:service:region:account:resource`)
/// that locate a sibling resource in the same account and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    pub fn parse(arn: &'a str) -> Option<Self> {
        let mut parts = arn.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        let arn = Self {
            partition: parts.next()?,
            service: parts.next()?,
            region: parts.next()?,
            account: parts.next()?,
            resource: parts.next()?,
        };
        (!arn.partition.is_empty() && !arn.account.is_empty()).then_some(arn)
    }

    /// The ARN of `resource` of `service` in the same partition, region and account.
    pub fn sibling(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            self.partition, self.region, self.account
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::AwsClients;
    use crate::crd::{MovieAppSpec, MovieAppStatus};
    use crate::naming::AppId;

    fn owner() -> Owner {
        Owner {
            uid: "uid-1".into(),
            namespace: "movies".into(),
            name: "app".into(),
        }
    }

    fn with_target<R>(adopt: bool, f: impl FnOnce(&Target<'_>) -> R) -> R {
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let aws = AwsClients {
            region: "us-east-1".into(),
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            sns: aws_sdk_sns::Client::new(&config),
            ecr: aws_sdk_ecr::Client::new(&config),
        };
        let owner = owner();
        let spec: MovieAppSpec =
            serde_json::from_value(serde_json::json!({})).expect("every field has a default");
        let target = Target {
            aws: &aws,
            owner: &owner,
            id: AppId {
                namespace: "movies",
                name: "app",
            },
            spec: &spec,
            adopt,
            previous: None,
            generation: None,
        };
        f(&target)
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn own_resources_are_ours_and_foreign_ones_conflict_even_with_adopt() {
        let foreign = tags(&[(tags::UID, "uid-2"), (tags::NAME, "app")]);
        for adopt in [false, true] {
            with_target(adopt, |t| {
                assert_eq!(claim(t, "x", &tags(&[(tags::UID, "uid-1")])), Claim::Ours);
                let Claim::Conflict(message) = claim(t, "table x", &foreign) else {
                    panic!("a foreign resource must conflict");
                };
                assert!(message.contains("uid-2"), "{message}");
            });
        }
    }

    #[test]
    fn untagged_resources_are_adopted_only_on_request() {
        let untagged = tags(&[("team", "data")]);
        with_target(false, |t| {
            let Claim::Conflict(message) = claim(t, "queue q", &untagged) else {
                panic!("untagged without adopt must conflict");
            };
            assert!(message.contains("movieapp.io/adopt: \"true\""), "{message}");
        });
        with_target(true, |t| assert_eq!(claim(t, "q", &untagged), Claim::Adopt));
    }

    #[test]
    fn retained_resources_of_the_same_name_can_be_adopted() {
        let retained = tags(&[
            (tags::UID, "old-uid"),
            (tags::NAMESPACE, "movies"),
            (tags::NAME, "app"),
            (tags::RETAINED, "true"),
        ]);
        with_target(true, |t| assert_eq!(claim(t, "q", &retained), Claim::Adopt));
        with_target(false, |t| {
            assert!(
                matches!(claim(t, "q", &retained), Claim::Conflict(m) if m.contains("retained"))
            );
        });
        let elsewhere = tags(&[
            (tags::UID, "old-uid"),
            (tags::NAMESPACE, "other"),
            (tags::NAME, "app"),
            (tags::RETAINED, "true"),
        ]);
        with_target(true, |t| {
            assert!(matches!(claim(t, "q", &elsewhere), Claim::Conflict(_)));
        });
    }

    #[test]
    fn tag_changes_add_missing_tags_and_drop_the_retained_marker() {
        let o = owner();
        let complete: BTreeMap<String, String> = o.tags();
        assert!(tag_changes(&o, &complete).is_empty());
        let mut retained = complete.clone();
        retained.insert(tags::RETAINED.into(), "true".into());
        let changes = tag_changes(&o, &retained);
        assert!(changes.set.is_empty());
        assert_eq!(changes.remove, [tags::RETAINED]);
        let changes = tag_changes(&o, &tags(&[("other", "x")]));
        assert_eq!(changes.set, o.tags());
    }

    #[test]
    fn retained_tag_is_written_once() {
        assert!(retained_tag(&tags(&[])).is_some());
        assert!(retained_tag(&tags(&[(tags::RETAINED, "true")])).is_none());
    }

    #[test]
    fn notices_tell_spec_changes_from_drift() {
        with_target(false, |t| {
            assert_eq!(changed(t, "x".into()).reason, Reason::DriftRepaired);
            let previous = MovieAppStatus {
                observed_generation: Some(1),
                ..MovieAppStatus::default()
            };
            let same = Target {
                previous: Some(&previous),
                generation: Some(1),
                ..*t
            };
            assert_eq!(changed(&same, "x".into()).reason, Reason::DriftRepaired);
            let edited = Target {
                generation: Some(2),
                ..same
            };
            assert_eq!(changed(&edited, "x".into()).reason, Reason::Updated);
        });
        assert_eq!(created(false, "t").reason, Reason::Created);
        assert_eq!(created(true, "t").reason, Reason::Recreated);
    }

    #[test]
    fn combine_reports_the_worst_state() {
        let ready = || PartState::ready(Reason::Provisioned, "ok");
        assert!(combine(vec![("a".into(), ready())], "all".into()).is_ready());
        let waiting = combine(
            vec![
                ("a".into(), ready()),
                (
                    "b".into(),
                    PartState::progressing(Reason::Creating, "CREATING"),
                ),
            ],
            "all".into(),
        );
        assert_eq!(
            waiting,
            PartState::progressing(Reason::Creating, "b: CREATING")
        );
        let blocked = combine(
            vec![
                (
                    "b".into(),
                    PartState::progressing(Reason::Creating, "CREATING"),
                ),
                (
                    "c".into(),
                    PartState::blocked(Reason::NameConflict, "not ours"),
                ),
            ],
            "all".into(),
        );
        assert_eq!(
            blocked,
            PartState::blocked(Reason::NameConflict, "c: not ours")
        );
    }

    #[test]
    fn arns_are_parsed_and_siblings_built() {
        let arn = Arn::parse("arn:aws:sqs:eu-west-1:123456789012:movieapp-x-jobs-dlq")
            .expect("valid ARN");
        assert_eq!(arn.account, "123456789012");
        assert_eq!(
            arn.sibling("sns", "movieapp-x-notifications"),
            "arn:aws:sns:eu-west-1:123456789012:movieapp-x-notifications"
        );
        assert!(Arn::parse("not-an-arn").is_none());
        assert!(Arn::parse("arn:aws:sqs:eu-west-1::q").is_none());
        // Resources may contain colons (subscriptions).
        let sub = Arn::parse("arn:aws:sns:us-east-1:1:topic:abc").expect("valid ARN");
        assert_eq!(sub.resource, "topic:abc");
    }
}
