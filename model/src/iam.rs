//! The AWS calls each component makes, declared once.
//!
//! Every IAM policy the project ships is built from these declarations
//! (`movieapp-operator iam-policies`, `docs/iam.md`). Both binaries count
//! every AWS request in `movieapp_aws_requests_total{service,operation}`, and
//! the tests that run each component against moto fail when a counted
//! operation is not declared here for that component.

use std::collections::BTreeSet;

/// The AWS service of a call: the IAM action prefix and the metric's
/// `service` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    DynamoDb,
    Sqs,
    Sns,
    Ecr,
    /// The Resource Groups Tagging API (IAM prefix `tag`).
    Tagging,
    Iam,
}

impl Service {
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::DynamoDb => "dynamodb",
            Self::Sqs => "sqs",
            Self::Sns => "sns",
            Self::Ecr => "ecr",
            Self::Tagging => "tag",
            Self::Iam => "iam",
        }
    }
}

/// What a call applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// A MovieApp's DynamoDB tables.
    Tables,
    /// Their global secondary indexes (`table/<name>/index/<index>`), which
    /// IAM authorizes a `Query` on an index against.
    TableIndexes,
    /// A MovieApp's SQS queues: the jobs queue and its dead-letter queue.
    Queues,
    /// A MovieApp's jobs queue only.
    JobsQueue,
    /// A MovieApp's notifications topic.
    Topic,
    /// The subscriptions on it. IAM cannot scope `sns:GetSubscriptionAttributes`,
    /// `SetSubscriptionAttributes` or `Unsubscribe` to a resource: the
    /// operator only calls them on subscriptions it listed on its own topic.
    Subscriptions,
    /// The queue of AWS change events the operator consumes
    /// (`--events-queue-url`).
    EventsQueue,
    /// The ECR repositories whose images the operator resolves to digests.
    ImageRepositories,
    /// Whatever the Resource Groups Tagging API lists: `tag:GetResources`
    /// supports no resource-level permissions. The operator lists only its
    /// own tables, queues and topics with it (filtered by its managed-by
    /// tag), to read their ownership tags a region at a time; it returns
    /// only what the caller may read the tags of anyway.
    TaggedResources,
    /// The worker IAM roles the operator makes (`role/<prefix>*`).
    WorkerRoles,
}

/// How a policy may condition a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    /// A read on any name under the prefix, owned or not: that is how the
    /// operator tells a name another owner holds (`NameConflict`).
    Read,
    /// Creating a resource, with the ownership tags in the same call.
    Create,
    /// Setting tags: the ownership tags at creation (AWS authorizes tags
    /// given to a create call as a tag action too), on adoption and when
    /// repairing them, and the retained marker.
    Tag,
    /// Removing tags: only the retained marker, on adoption.
    Untag,
    /// Setting a worker role's permissions boundary: only the worker
    /// boundary (`iam:PermissionsBoundary`), as on creating it.
    CreateBounded,
    /// Changing or deleting a resource the operator made: conditioned on the
    /// ownership tag where the service authorizes by tags.
    ChangeOwned,
    /// A data-plane call on the component's own MovieApp's resources.
    Use,
}

/// One AWS operation a component makes, on one kind of resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    pub service: Service,
    /// The SDK operation: `movieapp_aws_requests_total`'s `operation` label.
    pub operation: &'static str,
    /// The IAM actions AWS authorizes the operation as. Most are the
    /// operation itself; `TransactWriteItems` is authorized per item
    /// (`dynamodb:PutItem`, ...), `DeleteMessageBatch` as
    /// `sqs:DeleteMessage`, `PublishBatch` as `sns:Publish`.
    pub actions: &'static [&'static str],
    pub resource: Resource,
    pub access: Access,
}

impl Call {
    /// `service:Operation`, as the request counter labels it.
    pub fn label(&self) -> String {
        format!("{}:{}", self.service.prefix(), self.operation)
    }
}

const fn call(
    service: Service,
    operation: &'static str,
    actions: &'static [&'static str],
    resource: Resource,
    access: Access,
) -> Call {
    Call {
        service,
        operation,
        actions,
        resource,
        access,
    }
}

use Access::{ChangeOwned, Create, CreateBounded, Read, Tag, Untag, Use};
use Resource::{
    EventsQueue, ImageRepositories, JobsQueue, Queues, Subscriptions, TableIndexes, Tables,
    TaggedResources, Topic, WorkerRoles,
};
use Service::{DynamoDb, Ecr, Iam, Sns, Sqs, Tagging};

/// movieapp-operator: provisioning (one file per kind under
/// `operator/src/provision/`), image resolution (`aws/ecr.rs`) and the AWS
/// change-events consumer (`events.rs`).
#[rustfmt::skip] // a table: one call per line
const OPERATOR: &[Call] = &[
    // DynamoDB tables (provision/database/).
    call(DynamoDb, "DescribeTable", &["dynamodb:DescribeTable"], Tables, Read),
    call(DynamoDb, "DescribeContinuousBackups", &["dynamodb:DescribeContinuousBackups"], Tables, Read),
    call(DynamoDb, "DescribeTimeToLive", &["dynamodb:DescribeTimeToLive"], Tables, Read),
    call(DynamoDb, "ListTagsOfResource", &["dynamodb:ListTagsOfResource"], Tables, Read),
    call(DynamoDb, "CreateTable", &["dynamodb:CreateTable"], Tables, Create),
    call(DynamoDb, "TagResource", &["dynamodb:TagResource"], Tables, Tag),
    call(DynamoDb, "UntagResource", &["dynamodb:UntagResource"], Tables, Untag),
    call(DynamoDb, "UpdateTable", &["dynamodb:UpdateTable"], Tables, ChangeOwned),
    call(DynamoDb, "DeleteTable", &["dynamodb:DeleteTable"], Tables, ChangeOwned),
    call(DynamoDb, "UpdateContinuousBackups", &["dynamodb:UpdateContinuousBackups"], Tables, ChangeOwned),
    call(DynamoDb, "UpdateTimeToLive", &["dynamodb:UpdateTimeToLive"], Tables, ChangeOwned),
    // SQS jobs and dead-letter queues (provision/sqs.rs).
    call(Sqs, "GetQueueUrl", &["sqs:GetQueueUrl"], Queues, Read),
    call(Sqs, "GetQueueAttributes", &["sqs:GetQueueAttributes"], Queues, Read),
    call(Sqs, "ListQueueTags", &["sqs:ListQueueTags"], Queues, Read),
    call(Sqs, "CreateQueue", &["sqs:CreateQueue"], Queues, Create),
    call(Sqs, "TagQueue", &["sqs:TagQueue"], Queues, Tag),
    call(Sqs, "UntagQueue", &["sqs:UntagQueue"], Queues, Untag),
    call(Sqs, "SetQueueAttributes", &["sqs:SetQueueAttributes"], Queues, ChangeOwned),
    call(Sqs, "DeleteQueue", &["sqs:DeleteQueue"], Queues, ChangeOwned),
    // SNS topic and its subscriptions (provision/sns.rs).
    call(Sns, "ListTagsForResource", &["sns:ListTagsForResource"], Topic, Read),
    call(Sns, "ListSubscriptionsByTopic", &["sns:ListSubscriptionsByTopic"], Topic, Read),
    call(Sns, "GetSubscriptionAttributes", &["sns:GetSubscriptionAttributes"], Subscriptions, Read),
    call(Sns, "CreateTopic", &["sns:CreateTopic"], Topic, Create),
    call(Sns, "TagResource", &["sns:TagResource"], Topic, Tag),
    call(Sns, "UntagResource", &["sns:UntagResource"], Topic, Untag),
    call(Sns, "Subscribe", &["sns:Subscribe"], Topic, ChangeOwned),
    call(Sns, "SetSubscriptionAttributes", &["sns:SetSubscriptionAttributes"], Subscriptions, ChangeOwned),
    call(Sns, "Unsubscribe", &["sns:Unsubscribe"], Subscriptions, ChangeOwned),
    call(Sns, "DeleteTopic", &["sns:DeleteTopic"], Topic, ChangeOwned),
    // The ownership tags of a region, shared by the resyncs (aws/tagging.rs).
    call(Tagging, "GetResources", &["tag:GetResources"], TaggedResources, Read),
    // Image resolution to digests (aws/ecr.rs).
    call(Ecr, "DescribeImages", &["ecr:DescribeImages"], ImageRepositories, Read),
    call(Ecr, "DescribeRepositories", &["ecr:DescribeRepositories"], ImageRepositories, Read),
    // The AWS change-events consumer (events.rs).
    call(Sqs, "ReceiveMessage", &["sqs:ReceiveMessage"], EventsQueue, Use),
    call(Sqs, "DeleteMessage", &["sqs:DeleteMessage"], EventsQueue, Use),
    // The worker roles (provision/role.rs), with --worker-role-oidc-provider-arn.
    // The tags of a CreateRole are also authorized as iam:TagRole, which the
    // TagRole call below grants (iam:PermissionsBoundary is no key of it).
    call(Iam, "GetRole", &["iam:GetRole"], WorkerRoles, Read),
    call(Iam, "GetRolePolicy", &["iam:GetRolePolicy"], WorkerRoles, Read),
    call(Iam, "ListRolePolicies", &["iam:ListRolePolicies"], WorkerRoles, Read),
    call(Iam, "ListAttachedRolePolicies", &["iam:ListAttachedRolePolicies"], WorkerRoles, Read),
    call(Iam, "CreateRole", &["iam:CreateRole"], WorkerRoles, Create),
    call(Iam, "PutRolePermissionsBoundary", &["iam:PutRolePermissionsBoundary"], WorkerRoles, CreateBounded),
    call(Iam, "TagRole", &["iam:TagRole"], WorkerRoles, Tag),
    call(Iam, "UntagRole", &["iam:UntagRole"], WorkerRoles, Untag),
    call(Iam, "PutRolePolicy", &["iam:PutRolePolicy"], WorkerRoles, ChangeOwned),
    call(Iam, "UpdateAssumeRolePolicy", &["iam:UpdateAssumeRolePolicy"], WorkerRoles, ChangeOwned),
    call(Iam, "DeleteRolePolicy", &["iam:DeleteRolePolicy"], WorkerRoles, ChangeOwned),
    call(Iam, "DetachRolePolicy", &["iam:DetachRolePolicy"], WorkerRoles, ChangeOwned),
    call(Iam, "DeleteRole", &["iam:DeleteRole"], WorkerRoles, ChangeOwned),
];

/// What `/readyz` asks (api-worker `ops.rs`): each table, the jobs queue and
/// the topic answer.
#[rustfmt::skip] // a table: one call per line
const READINESS: [Call; 3] = [
    call(DynamoDb, "DescribeTable", &["dynamodb:DescribeTable"], Tables, Use),
    call(Sqs, "GetQueueAttributes", &["sqs:GetQueueAttributes"], JobsQueue, Use),
    call(Sns, "GetTopicAttributes", &["sns:GetTopicAttributes"], Topic, Use),
];

/// The HTTP API: accounts and their lockout, watchlists, the movie cache.
#[rustfmt::skip] // a table: one call per line
const API: [Call; 6] = [
    call(DynamoDb, "GetItem", &["dynamodb:GetItem"], Tables, Use),
    call(DynamoDb, "PutItem", &["dynamodb:PutItem"], Tables, Use),
    call(DynamoDb, "UpdateItem", &["dynamodb:UpdateItem"], Tables, Use),
    call(DynamoDb, "DeleteItem", &["dynamodb:DeleteItem"], Tables, Use),
    call(DynamoDb, "Query", &["dynamodb:Query"], Tables, Use),
    // A new account (a Put per item) and a watchlist entry with its count
    // (a Put and an Update).
    call(DynamoDb, "TransactWriteItems", &["dynamodb:PutItem", "dynamodb:UpdateItem"], Tables, Use),
];

/// Handling one job (`jobs.rs`): the cache, the watchers of a changed movie
/// (the by-movie index), their snapshots, and the notifications.
#[rustfmt::skip] // a table: one call per line
const JOBS: [Call; 5] = [
    call(DynamoDb, "GetItem", &["dynamodb:GetItem"], Tables, Use),
    call(DynamoDb, "PutItem", &["dynamodb:PutItem"], Tables, Use),
    call(DynamoDb, "Query", &["dynamodb:Query"], TableIndexes, Use),
    call(DynamoDb, "UpdateItem", &["dynamodb:UpdateItem"], Tables, Use),
    call(Sns, "PublishBatch", &["sns:Publish"], Topic, Use),
];

/// Taking jobs off the queue (`worker.rs`): receive, keep invisible or
/// schedule a retry, delete in batches.
#[rustfmt::skip] // a table: one call per line
const POLLING: [Call; 3] = [
    call(Sqs, "ReceiveMessage", &["sqs:ReceiveMessage"], JobsQueue, Use),
    call(Sqs, "ChangeMessageVisibility", &["sqs:ChangeMessageVisibility"], JobsQueue, Use),
    call(Sqs, "DeleteMessageBatch", &["sqs:DeleteMessage"], JobsQueue, Use),
];

/// What the Lambda service calls with the jobs function's role for its SQS
/// event source mapping; the function itself only schedules retries.
#[rustfmt::skip] // a table: one call per line
const EVENT_SOURCE_MAPPING: [Call; 4] = [
    call(Sqs, "ReceiveMessage", &["sqs:ReceiveMessage"], JobsQueue, Use),
    call(Sqs, "DeleteMessage", &["sqs:DeleteMessage"], JobsQueue, Use),
    call(Sqs, "GetQueueAttributes", &["sqs:GetQueueAttributes"], JobsQueue, Use),
    call(Sqs, "ChangeMessageVisibility", &["sqs:ChangeMessageVisibility"], JobsQueue, Use),
];

const fn concat<const N: usize>(parts: &[&[Call]]) -> [Call; N] {
    let mut out = [READINESS[0]; N];
    let (mut i, mut n) = (0, 0);
    while i < parts.len() {
        let mut j = 0;
        while j < parts[i].len() {
            out[n] = parts[i][j];
            n += 1;
            j += 1;
        }
        i += 1;
    }
    assert!(n == N, "concat: the length does not add up");
    out
}

const SERVE: [Call; 9] = concat(&[&API, &READINESS]);
const WORKER: [Call; 8] = concat(&[&JOBS, &POLLING]);
const LAMBDA_JOBS: [Call; 9] = concat(&[&JOBS, &EVENT_SOURCE_MAPPING]);
const ENQUEUE: [Call; 1] = [call(
    Sqs,
    "SendMessage",
    &["sqs:SendMessage"],
    JobsQueue,
    Use,
)];

/// A process that calls AWS, by the role it runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    /// `movieapp-operator run`.
    Operator,
    /// `api-worker serve`: the HTTP API and its `/readyz`.
    Serve,
    /// `api-worker worker`: the SQS jobs consumer.
    Worker,
    /// `api-worker sync-popular`: one warm-popular job, then exit.
    SyncPopular,
    /// `api-worker enqueue`: one job onto the queue.
    Enqueue,
    /// The Lambda `http` handler: the same router as `serve`, whose public
    /// `/readyz` asks the same dependencies.
    LambdaHttp,
    /// The Lambda `jobs` handler and its SQS event source mapping.
    LambdaJobs,
}

impl Component {
    pub const ALL: [Self; 7] = [
        Self::Operator,
        Self::Serve,
        Self::Worker,
        Self::SyncPopular,
        Self::Enqueue,
        Self::LambdaHttp,
        Self::LambdaJobs,
    ];

    /// The api-worker's components: what a MovieApp's worker role runs.
    pub const API_WORKER: [Self; 6] = [
        Self::Serve,
        Self::Worker,
        Self::SyncPopular,
        Self::Enqueue,
        Self::LambdaHttp,
        Self::LambdaJobs,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Serve => "serve",
            Self::Worker => "worker",
            Self::SyncPopular => "sync-popular",
            Self::Enqueue => "enqueue",
            Self::LambdaHttp => "lambda-http",
            Self::LambdaJobs => "lambda-jobs",
        }
    }

    /// Every call the component makes.
    pub const fn calls(self) -> &'static [Call] {
        match self {
            Self::Operator => OPERATOR,
            Self::Serve | Self::LambdaHttp => &SERVE,
            Self::Worker => &WORKER,
            Self::SyncPopular => &JOBS,
            Self::Enqueue => &ENQUEUE,
            Self::LambdaJobs => &LAMBDA_JOBS,
        }
    }

    /// Whether a request counted as `{service, operation}` is declared.
    pub fn declares(self, service: &str, operation: &str) -> bool {
        self.calls()
            .iter()
            .any(|c| c.service.prefix() == service && c.operation == operation)
    }

    /// The IAM actions the component needs, sorted.
    pub fn actions(self) -> BTreeSet<&'static str> {
        self.calls()
            .iter()
            .flat_map(|c| c.actions.iter().copied())
            .collect()
    }
}

/// The requests of a Prometheus text exposition's
/// `movieapp_aws_requests_total` that `component` does not declare, as
/// `service:Operation` (each once, sorted): what a test that ran the
/// component's real code asserts is empty.
pub fn undeclared(component: Component, exposition: &str) -> Vec<String> {
    let label = |labels: &str, name: &str| -> Option<String> {
        let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
        let len = labels[start..].find('"')?;
        Some(labels[start..start + len].to_owned())
    };
    let calls: BTreeSet<String> = exposition
        .lines()
        .filter_map(|line| line.strip_prefix("movieapp_aws_requests_total{"))
        .filter_map(|rest| {
            let labels = rest.split_once('}')?.0;
            Some((label(labels, "service")?, label(labels, "operation")?))
        })
        .filter(|(service, operation)| !component.declares(service, operation))
        .map(|(service, operation)| format!("{service}:{operation}"))
        .collect();
    calls.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_of_its_calls_service() {
        for component in Component::ALL {
            for call in component.calls() {
                assert!(!call.actions.is_empty(), "{}", call.label());
                for action in call.actions {
                    let (service, name) = action.split_once(':').expect("service:Action");
                    assert_eq!(service, call.service.prefix(), "{action}");
                    assert!(
                        name.starts_with(|c: char| c.is_ascii_uppercase()),
                        "{action}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_call_is_declared_once_per_component_and_resource() {
        for component in Component::ALL {
            let mut seen = BTreeSet::new();
            for call in component.calls() {
                assert!(
                    seen.insert((call.label(), call.resource)),
                    "{}: {} on {:?} declared twice",
                    component.name(),
                    call.label(),
                    call.resource
                );
            }
        }
    }

    #[test]
    fn readiness_is_part_of_what_serve_needs() {
        let serve = Component::Serve.actions();
        for action in [
            "dynamodb:DescribeTable",
            "sqs:GetQueueAttributes",
            "sns:GetTopicAttributes",
        ] {
            assert!(serve.contains(action), "{action}");
        }
        assert!(Component::Serve.declares("dynamodb", "TransactWriteItems"));
        assert!(!Component::Serve.declares("dynamodb", "Scan"));
        assert!(!Component::Serve.declares("sns", "Publish"));
    }

    #[test]
    fn undeclared_reads_the_request_counter() {
        let exposition = "\
# TYPE movieapp_aws_requests_total counter
movieapp_aws_requests_total{service=\"dynamodb\",operation=\"GetItem\",outcome=\"success\"} 3
movieapp_aws_requests_total{service=\"dynamodb\",operation=\"Scan\",outcome=\"success\"} 1
movieapp_aws_requests_total{service=\"dynamodb\",operation=\"Scan\",outcome=\"client_error\"} 1
movieapp_aws_requests_total{service=\"sns\",operation=\"PublishBatch\",outcome=\"success\"} 1
movieapp_jobs_total{type=\"warm-popular\",outcome=\"ok\"} 1
";
        assert_eq!(
            undeclared(Component::Serve, exposition),
            ["dynamodb:Scan", "sns:PublishBatch"]
        );
        assert_eq!(undeclared(Component::Worker, exposition), ["dynamodb:Scan"]);
        assert!(undeclared(Component::Worker, "").is_empty());
    }
}
