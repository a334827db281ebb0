//! What every provisioning file shares besides the resource path
//! ([`super::resource`]): how a step stops short of ready, how parts
//! combine, and reading ARNs.

use aws_smithy_types::error::operation::BuildError;

use super::{Notice, Observed};
use crate::aws::{AwsError, ErrorKind};
use crate::conditions::PartState;
use crate::reason::Reason;

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

    /// The same halt about `what`: a state's message then starts with it
    /// (`DynamoDB table x: table is CREATING`).
    pub fn about(self, what: &str) -> Self {
        match self {
            Self::State(state) => Self::State(state.map_message(|m| format!("{what}: {m}"))),
            aws @ Self::Aws(_) => aws,
        }
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
