//! What `kubectl movieapp status` found, as one typed document: the text
//! output is drawn from it and `-o json` prints it as is.
//!
//! The JSON field names are a contract for scripts (documented in
//! `docs/troubleshooting.md`): fields are added, never renamed or removed,
//! and `schemaVersion` changes if that ever has to happen.

use serde::{Deserialize, Serialize};

/// The version of this document's shape.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything the plugin found about one MovieApp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    pub movie_app: MovieAppSummary,
    /// The answer in one word; also the exit code (0 for `Ready`, 1 otherwise).
    pub verdict: Verdict,
    /// Why the verdict is not `Ready`, most important first; empty when it is.
    pub reasons: Vec<String>,
    /// The MovieApp's status conditions, as the operator wrote them.
    pub conditions: Vec<ConditionReport>,
    /// The AWS resources, as AWS reports them now.
    pub aws: AwsReport,
    /// The Kubernetes children (and the TMDB Secret the MovieApp refers to),
    /// as the API server reports them now.
    pub kubernetes: Vec<ChildReport>,
    /// The MovieApp's most recent Events, newest first (at most 10).
    pub events: Vec<EventReport>,
}

/// Which MovieApp, and where the operator stands with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MovieAppSummary {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub generation: Option<i64>,
    /// The generation the status describes; behind `generation` while the
    /// operator has not acted on the latest spec.
    pub observed_generation: Option<i64>,
    /// `movieapp.io/paused: "true"`: the operator writes nothing.
    pub paused: bool,
    /// Being deleted (a deletion timestamp is set).
    pub deleting: bool,
}

/// The answer in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// `Ready=True` for the current generation, not paused, and nothing read
    /// just now contradicts it.
    Ready,
    /// Anything else but a pause: `reasons` says why.
    NotReady,
    /// `movieapp.io/paused: "true"`: nothing is kept as declared until the
    /// annotation is removed, whatever `Ready` last said.
    Paused,
}

impl Verdict {
    /// The process exit code: 0 for `Ready`, 1 otherwise (2 is for errors).
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Ready => 0,
            Verdict::NotReady | Verdict::Paused => 1,
        }
    }
}

/// How one item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Health {
    Ready,
    NotReady,
    /// Could not be read (AWS unreachable, no permission).
    Unknown,
}

/// One status condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionReport {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    pub message: String,
    /// RFC 3339.
    pub last_transition_time: String,
    pub observed_generation: Option<i64>,
    /// `Ready` when the condition is as a healthy MovieApp has it: `True`
    /// for `Ready` and the parts, `False` for `Reconciling`, `Stalled`,
    /// `Paused` and `Drifted`.
    pub health: Health,
}

/// The AWS side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsReport {
    /// The region the MovieApp's resources live in; `None` when neither
    /// the spec, the status nor `--region` names one.
    pub region: Option<String>,
    /// `--aws-endpoint-url` (or `AWS_ENDPOINT_URL`), when set.
    pub endpoint: Option<String>,
    /// Why AWS could not be read at all (unreachable, no credentials, no
    /// region); then every resource is `Unknown`.
    pub error: Option<String>,
    pub resources: Vec<AwsResourceReport>,
}

/// One AWS resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsResourceReport {
    pub kind: AwsKind,
    /// A table's component (`users`, `movies`, `watchlists`), `jobs`,
    /// `jobs-dlq`, `notifications`; a subscription's protocol.
    pub component: String,
    /// The physical name; a subscription's endpoint.
    pub name: String,
    /// `None` when it could not be read.
    pub exists: Option<bool>,
    /// ARN; a queue's URL; a subscription's ARN or `PendingConfirmation`.
    pub address: Option<String>,
    /// As AWS reports it: a table's status (`ACTIVE`), a queue's messages,
    /// a subscription's confirmation.
    pub status: Option<String>,
    /// Whose it is by its `movieapp.io/uid` tag; `None` for subscriptions
    /// (they carry no tags) and for what could not be read.
    pub ownership: Option<Ownership>,
    /// Whether the spec asks for it (an extra subscription is removed).
    pub declared: bool,
    pub health: Health,
    /// Why it is not ready, or what could not be read.
    pub message: Option<String>,
}

/// The kinds of AWS resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AwsKind {
    DynamoDBTable,
    SQSQueue,
    SQSDeadLetterQueue,
    SNSTopic,
    SNSSubscription,
    IAMRole,
}

impl AwsKind {
    /// For people.
    pub fn title(self) -> &'static str {
        match self {
            AwsKind::DynamoDBTable => "DynamoDB table",
            AwsKind::SQSQueue => "SQS queue",
            AwsKind::SQSDeadLetterQueue => "SQS dead-letter queue",
            AwsKind::SNSTopic => "SNS topic",
            AwsKind::SNSSubscription => "subscription",
            AwsKind::IAMRole => "IAM role",
        }
    }
}

/// Whose an AWS resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ownership {
    /// Tagged with this MovieApp's uid.
    ThisMovieApp,
    /// Not tagged as anyone's (or retained by a deleted MovieApp of this
    /// name), and this MovieApp carries `movieapp.io/adopt: "true"`.
    Adoptable,
    /// Another MovieApp's, or untagged without the adopt annotation: never
    /// touched.
    Other,
}

/// One Kubernetes object of the MovieApp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChildReport {
    /// `Deployment`, `Service`, ...
    pub kind: String,
    pub name: String,
    /// Made and controlled by the operator (`false` for the TMDB Secret the
    /// MovieApp only refers to).
    pub managed: bool,
    /// Whether the spec asks for it (an optional child it no longer asks
    /// for is deleted).
    pub wanted: bool,
    /// `None` when it could not be read.
    pub exists: Option<bool>,
    /// Controlled by this MovieApp (its controller owner reference); `None`
    /// when missing or not managed.
    pub owned: Option<bool>,
    pub health: Health,
    /// What is worth knowing when it is fine (`2/2 replicas available`).
    pub detail: Option<String>,
    /// Why it is not ready.
    pub message: Option<String>,
    /// The worker's Pods (Deployment only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<PodReport>,
}

/// One worker Pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodReport {
    pub name: String,
    /// `Pending`, `Running`, ...
    pub phase: String,
    pub ready: bool,
    pub restarts: i32,
    /// Why a container is not running (`ImagePullBackOff: ...`).
    pub message: Option<String>,
}

/// One Event about the MovieApp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventReport {
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub message: String,
    /// RFC 3339, when the Event says.
    pub last_seen: Option<String>,
    pub count: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(value: &serde_json::Value) -> Vec<&str> {
        let mut keys: Vec<&str> = value
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort_unstable();
        keys
    }

    /// The field names are a contract for scripts (docs/troubleshooting.md,
    /// `-o json`): a rename here is a new `schemaVersion`.
    #[test]
    fn the_json_field_names_are_the_documented_ones() {
        let report = StatusReport {
            schema_version: SCHEMA_VERSION,
            movie_app: MovieAppSummary {
                namespace: "movies".to_owned(),
                name: "shop".to_owned(),
                uid: "u-1".to_owned(),
                generation: Some(1),
                observed_generation: Some(1),
                paused: false,
                deleting: false,
            },
            verdict: Verdict::NotReady,
            reasons: vec!["why".to_owned()],
            conditions: vec![ConditionReport {
                type_: "Ready".to_owned(),
                status: "False".to_owned(),
                reason: "SecretNotFound".to_owned(),
                message: "m".to_owned(),
                last_transition_time: "2026-12-03T08:00:00Z".to_owned(),
                observed_generation: Some(1),
                health: Health::NotReady,
            }],
            aws: AwsReport {
                region: Some("us-east-1".to_owned()),
                endpoint: None,
                error: None,
                resources: vec![AwsResourceReport {
                    kind: AwsKind::SQSDeadLetterQueue,
                    component: "jobs-dlq".to_owned(),
                    name: "q".to_owned(),
                    exists: Some(true),
                    address: None,
                    status: None,
                    ownership: Some(Ownership::Adoptable),
                    declared: true,
                    health: Health::Unknown,
                    message: None,
                }],
            },
            kubernetes: vec![ChildReport {
                kind: "Deployment".to_owned(),
                name: "shop".to_owned(),
                managed: true,
                wanted: true,
                exists: Some(true),
                owned: Some(true),
                health: Health::Ready,
                detail: None,
                message: None,
                pods: vec![PodReport {
                    name: "p".to_owned(),
                    phase: "Running".to_owned(),
                    ready: true,
                    restarts: 0,
                    message: None,
                }],
            }],
            events: vec![EventReport {
                type_: "Normal".to_owned(),
                reason: "Created".to_owned(),
                message: "m".to_owned(),
                last_seen: None,
                count: 1,
            }],
        };
        let json = serde_json::to_value(&report).expect("serializes");
        assert_eq!(
            keys(&json),
            [
                "aws",
                "conditions",
                "events",
                "kubernetes",
                "movieApp",
                "reasons",
                "schemaVersion",
                "verdict"
            ]
        );
        assert_eq!(json["schemaVersion"], 1);
        assert_eq!(json["verdict"], "NotReady");
        assert_eq!(
            keys(&json["movieApp"]),
            [
                "deleting",
                "generation",
                "name",
                "namespace",
                "observedGeneration",
                "paused",
                "uid"
            ]
        );
        assert_eq!(
            keys(&json["conditions"][0]),
            [
                "health",
                "lastTransitionTime",
                "message",
                "observedGeneration",
                "reason",
                "status",
                "type"
            ]
        );
        assert_eq!(
            keys(&json["aws"]),
            ["endpoint", "error", "region", "resources"]
        );
        let resource = &json["aws"]["resources"][0];
        assert_eq!(
            keys(resource),
            [
                "address",
                "component",
                "declared",
                "exists",
                "health",
                "kind",
                "message",
                "name",
                "ownership",
                "status"
            ]
        );
        assert_eq!(
            (
                &resource["kind"],
                &resource["ownership"],
                &resource["health"]
            ),
            (
                &serde_json::json!("SQSDeadLetterQueue"),
                &serde_json::json!("Adoptable"),
                &serde_json::json!("Unknown")
            )
        );
        let child = &json["kubernetes"][0];
        assert_eq!(
            keys(child),
            [
                "detail", "exists", "health", "kind", "managed", "message", "name", "owned",
                "pods", "wanted"
            ]
        );
        assert_eq!(
            keys(&child["pods"][0]),
            ["message", "name", "phase", "ready", "restarts"]
        );
        assert_eq!(
            keys(&json["events"][0]),
            ["count", "lastSeen", "message", "reason", "type"]
        );
        // A report read back is the same report (scripts may round-trip it).
        let back: StatusReport = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, report);
    }
}
