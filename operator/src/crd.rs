//! The `MovieApp` custom resource (`movieapp.io/v1alpha1`).
//!
//! Every optional field has a default that the API server applies at
//! admission (the defaults are part of the generated schema), so a stored
//! object always shows the values the operator acts on. Validation that the
//! schema can express — enums, ranges, patterns, CEL rules — happens at
//! admission; the rest happens in [`crate::reconcile::validate`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// AWS region names: `us-east-1`, `eu-central-2`, `us-gov-west-1`, ...
pub const REGION_PATTERN: &str = r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$";
/// ECR repository names (lower case path components).
pub const REPOSITORY_PATTERN: &str = r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$";
/// OCI image tags.
pub const TAG_PATTERN: &str = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$";
/// The tag a worker image follows when the spec names neither tag nor digest:
/// the one mutable (channel) tag of the ECR repositories Terraform makes
/// (`terraform/modules/registry`, `channel_tag`), checked equal by
/// `tests/terraform/test_invariants.py`.
pub const DEFAULT_TAG: &str = "latest";
/// Image digests as ECR reports them.
pub const DIGEST_PATTERN: &str = r"^sha256:[a-f0-9]{64}$";
/// DNS-1123 subdomain (Secret names).
pub const DNS1123_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// Keys of a Secret's data.
pub const SECRET_KEY_PATTERN: &str = r"^[-._a-zA-Z0-9]+$";
/// DynamoDB table names (3–255 characters, checked apart).
pub const TABLE_NAME_PATTERN: &str = r"^[a-zA-Z0-9_.-]+$";
/// SQS queue and SNS topic names. No `.`: the operator makes standard
/// queues and a standard topic, whose names cannot end in `.fifo`.
pub const QUEUE_TOPIC_NAME_PATTERN: &str = r"^[a-zA-Z0-9_-]+$";

/// A CEL transition rule keeping the optional string at `path` (below the
/// rule's object, e.g. `name` or `tableNames.users`) as it was: not set,
/// changed nor removed after creation. `parent`, when given, is an optional
/// object on the way (CEL's `has` needs it to exist).
fn immutable_name(parent: Option<&str>, path: &str) -> String {
    let set = |root: &str| match parent {
        Some(parent) => format!("(has({root}.{parent}) && has({root}.{path}))"),
        None => format!("has({root}.{path})"),
    };
    format!(
        "{new} == {old} && (!{new} || self.{path} == oldSelf.{path})",
        new = set("self"),
        old = set("oldSelf"),
    )
}

/// The message of [`immutable_name`]'s rule.
fn immutable_message(field: &str) -> String {
    format!(
        "{field} is immutable: it cannot be set, changed or removed after creation \
         (recreate the MovieApp to move to other AWS resources)"
    )
}

/// Specification of a movie-catalogue application: its worker Deployment and
/// the AWS resources the operator provisions for it.
// Several `printcolumn(type_ = ...)` entries read as duplicates to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "movieapp.io",
    version = "v1alpha1",
    kind = "MovieApp",
    doc = "A movie-catalogue application: the api-worker Deployment and its DynamoDB tables, SQS queues and SNS topic.",
    plural = "movieapps",
    singular = "movieapp",
    shortname = "mva",
    // `kubectl get all` lists the MovieApp beside the Deployment and Service
    // it owns: it is the object a user edits, and the one that explains them.
    category = "all",
    namespaced,
    status = "MovieAppStatus",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.imageVersion"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".status.availableReplicas"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        priority = 1,
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#
    ),
    printcolumn(
        name = "Image",
        type_ = "string",
        priority = 1,
        json_path = ".status.image"
    ),
    scale(
        spec_replicas_path = ".spec.worker.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    )
)]
#[x_kube(validation = Rule::new(
    "(has(self.region) && has(oldSelf.region) && self.region == oldSelf.region) || (!has(self.region) && !has(oldSelf.region))"
).message("region is immutable: it cannot be changed, set or removed after creation").field_path(".region"))]
#[serde(rename_all = "camelCase")]
pub struct MovieAppSpec {
    /// AWS region of the tables, queues and topic. Defaults to the operator's
    /// `--default-region`. Immutable once the object exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = REGION_PATTERN))]
    pub region: Option<String>,

    /// What happens to the AWS data when the MovieApp is deleted: `Delete`
    /// removes tables, queues, topic and subscriptions; `Retain` keeps them,
    /// tagged as retained.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Whether the operator manages what the spec declares (`Full`) or only
    /// compares it with what exists (`ObserveOnly`: it reads AWS and the
    /// cluster, writes nothing there, and lists every difference in the
    /// `Drifted` condition).
    #[serde(default)]
    pub management_policy: ManagementPolicy,

    /// The api-worker Deployment.
    #[serde(default)]
    pub worker: WorkerSpec,

    /// DynamoDB tables for users, the movie cache and watchlists.
    #[serde(default)]
    pub database: DatabaseSpec,

    /// The SQS jobs queue and its dead-letter queue.
    #[serde(default)]
    pub queue: QueueSpec,

    /// The SNS notifications topic. The jobs queue is always subscribed.
    #[serde(default)]
    pub notifications: NotificationsSpec,

    /// Publishes the connection details (table names and ARNs, queue URLs
    /// and ARNs, topic ARN, region, the worker's IRSA role ARN when set) to
    /// a ConfigMap in the MovieApp's namespace, for consumers outside the
    /// worker. Unset: no ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exports: Option<ExportsSpec>,
}

/// Where the connection details are published.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExportsSpec {
    /// Name of the ConfigMap (a DNS subdomain), made and kept in sync by the
    /// operator. It must not be the name of another ConfigMap the operator
    /// makes (`<name>-config`), nor of an object it did not make.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS1123_SUBDOMAIN_PATTERN))]
    pub config_map_name: String,
}

impl MovieAppSpec {
    /// Whether the tables carry DynamoDB deletion protection: as set, else
    /// on with `deletionPolicy: Retain` and off with `Delete`.
    pub fn deletion_protection(&self) -> bool {
        self.database
            .deletion_protection
            .unwrap_or(self.deletion_policy == DeletionPolicy::Retain)
    }
}

/// What happens to AWS resources when their MovieApp is deleted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Delete every AWS resource, and wait until AWS reports it gone.
    #[default]
    Delete,
    /// Keep every AWS resource; tag it `movieapp.io/retained=true`.
    Retain,
}

/// How far the operator acts on a MovieApp.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ManagementPolicy {
    /// Create, repair, tag and delete the AWS resources and the children.
    #[default]
    Full,
    /// Read AWS and the cluster and report how they differ from the spec
    /// (condition `Drifted`); create, repair, tag and delete nothing, and
    /// leave every AWS resource as it is when the MovieApp is deleted.
    ObserveOnly,
}

/// The api-worker Deployment.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!has(self.autoscaling) || self.autoscaling.minReplicas <= self.autoscaling.maxReplicas"
).message("autoscaling.minReplicas must not exceed autoscaling.maxReplicas").field_path(".autoscaling.minReplicas"))]
pub struct WorkerSpec {
    /// The image, resolved through ECR to a digest that the Deployment runs.
    #[serde(default)]
    pub image: ImageSpec,

    /// Number of worker Pods when autoscaling is not set.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,

    /// Port the worker listens on, inside the Pod and on the Service.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub port: i32,

    /// Compute resources of the worker container.
    #[serde(default = "default_resources")]
    pub resources: ResourceRequirements,

    /// Horizontal autoscaling on CPU. When set, an HPA owns the replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,

    /// Where the TMDB API key comes from.
    #[serde(default)]
    pub tmdb: TmdbSpec,

    /// The worker's ServiceAccount.
    #[serde(default)]
    pub service_account: ServiceAccountSpec,

    /// Extra environment variables of the worker container. Names the operator
    /// sets itself (the connection settings) are rejected.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub env: Vec<EnvVar>,

    /// The NetworkPolicy of the worker Pods: on by default.
    #[serde(default)]
    pub network_policy: WorkerNetworkPolicy,
}

impl Default for WorkerSpec {
    fn default() -> Self {
        Self {
            image: ImageSpec::default(),
            replicas: default_replicas(),
            port: default_port(),
            resources: default_resources(),
            autoscaling: None,
            tmdb: TmdbSpec::default(),
            service_account: ServiceAccountSpec::default(),
            env: Vec::new(),
            network_policy: WorkerNetworkPolicy::default(),
        }
    }
}

fn default_replicas() -> i32 {
    2
}

fn default_port() -> i32 {
    8080
}

fn default_resources() -> ResourceRequirements {
    let quantities = |pairs: &[(&str, &str)]| -> BTreeMap<String, Quantity> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
            .collect()
    };
    ResourceRequirements {
        requests: Some(quantities(&[("cpu", "100m"), ("memory", "64Mi")])),
        limits: Some(quantities(&[("memory", "256Mi")])),
        ..ResourceRequirements::default()
    }
}

/// The worker Pods' NetworkPolicy: ingress to the HTTP port (from
/// `ingressFrom`, or from anywhere) and to the admin port (from Pods in the
/// cluster); egress to DNS, HTTPS and the operator's AWS and TMDB endpoint
/// overrides. Anything else is denied where the cluster's network plugin
/// enforces NetworkPolicies.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkerNetworkPolicy {
    /// `false` leaves the worker's traffic to the namespace's own policies:
    /// the operator makes no NetworkPolicy (and deletes the one it made).
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// Who may reach the worker's HTTP port (NetworkPolicyPeer entries:
    /// `podSelector`, `namespaceSelector`, `ipBlock`). Empty: any source,
    /// as the load balancer in front of the Service needs.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub ingress_from: Vec<NetworkPolicyPeer>,
}

impl Default for WorkerNetworkPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            ingress_from: Vec::new(),
        }
    }
}

/// The worker image: an ECR repository in the operator's account and the
/// MovieApp's region, and a tag or a digest.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.tag) && has(self.digest))").message("set either image.tag or image.digest, not both"))]
pub struct ImageSpec {
    /// ECR repository name.
    #[serde(default = "default_repository")]
    #[schemars(length(min = 2, max = 256), regex(pattern = REPOSITORY_PATTERN))]
    pub repository: String,

    /// Image tag, resolved to a digest at every reconcile. Defaults to
    /// `latest` when no digest is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = TAG_PATTERN))]
    pub tag: Option<String>,

    /// Image digest (`sha256:...`), checked to exist in the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DIGEST_PATTERN))]
    pub digest: Option<String>,
}

impl Default for ImageSpec {
    fn default() -> Self {
        Self {
            repository: default_repository(),
            tag: None,
            digest: None,
        }
    }
}

impl ImageSpec {
    /// The tag to resolve when no digest is set.
    pub fn effective_tag(&self) -> &str {
        self.tag.as_deref().unwrap_or(DEFAULT_TAG)
    }
}

fn default_repository() -> String {
    "api-worker".to_owned()
}

/// Horizontal Pod autoscaling on CPU utilisation.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingSpec {
    /// Lower bound of the replica count.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,

    /// Upper bound of the replica count.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,

    /// Average CPU utilisation the autoscaler aims at, in percent of requests.
    #[serde(default = "default_target_cpu")]
    #[serde(rename = "targetCPUUtilizationPercentage")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: i32,
}

fn default_min_replicas() -> i32 {
    2
}

fn default_target_cpu() -> i32 {
    70
}

/// Where the worker finds its TMDB credentials.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TmdbSpec {
    /// The Secret key holding the TMDB API key (v3) or read access token (v4).
    #[serde(default)]
    pub api_key_secret_ref: SecretKeyRef,
}

/// A key of a Secret in the MovieApp's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[serde(default = "default_secret_name")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS1123_SUBDOMAIN_PATTERN))]
    pub name: String,

    /// Key within the Secret.
    #[serde(default = "default_secret_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    pub key: String,
}

impl Default for SecretKeyRef {
    fn default() -> Self {
        Self {
            name: default_secret_name(),
            key: default_secret_key(),
        }
    }
}

fn default_secret_name() -> String {
    "tmdb".to_owned()
}

fn default_secret_key() -> String {
    "api-key".to_owned()
}

/// The worker's ServiceAccount.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceAccountSpec {
    /// Annotations of the ServiceAccount, e.g. `eks.amazonaws.com/role-arn`
    /// for IAM Roles for Service Accounts.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// DynamoDB settings shared by the application's tables.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(
        "self.billingMode == 'PAY_PER_REQUEST' ? !has(self.readCapacityUnits) && !has(self.writeCapacityUnits) : has(self.readCapacityUnits) && has(self.writeCapacityUnits)"
    ).message("readCapacityUnits and writeCapacityUnits are required with PROVISIONED billing and not allowed with PAY_PER_REQUEST"),
    validation = Rule::new(immutable_name(Some("tableNames"), "tableNames.users"))
        .message(immutable_message("database.tableNames.users").as_str())
        .field_path(".tableNames.users"),
    validation = Rule::new(immutable_name(Some("tableNames"), "tableNames.movies"))
        .message(immutable_message("database.tableNames.movies").as_str())
        .field_path(".tableNames.movies"),
    validation = Rule::new(immutable_name(Some("tableNames"), "tableNames.watchlists"))
        .message(immutable_message("database.tableNames.watchlists").as_str())
        .field_path(".tableNames.watchlists"),
)]
pub struct DatabaseSpec {
    /// On-demand (`PAY_PER_REQUEST`) or provisioned capacity (`PROVISIONED`).
    #[serde(default)]
    pub billing_mode: BillingMode,

    /// Read capacity units of each table and index (PROVISIONED only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 40000))]
    pub read_capacity_units: Option<i64>,

    /// Write capacity units of each table and index (PROVISIONED only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 40000))]
    pub write_capacity_units: Option<i64>,

    /// Continuous backups with point-in-time recovery.
    #[serde(default = "default_true")]
    pub point_in_time_recovery: bool,

    /// Server-side encryption key: AWS owned (`AWS_OWNED`, free) or the
    /// account's AWS managed KMS key (`KMS`).
    #[serde(default)]
    pub encryption: TableEncryption,

    /// DynamoDB deletion protection of every table: while on, DynamoDB
    /// refuses to delete the table, whoever asks. Unset: on with
    /// `deletionPolicy: Retain` (the data must outlive the MovieApp), off
    /// with `Delete`. On together with `deletionPolicy: Delete`, deleting
    /// the MovieApp deletes nothing and stalls (`DeletionProtected`) until
    /// protection is turned off or the policy is `Retain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_protection: Option<bool>,

    /// Physical names of existing tables to use (and adopt, with
    /// `movieapp.io/adopt`) instead of the operator's names. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_names: Option<TableNames>,
}

impl Default for DatabaseSpec {
    fn default() -> Self {
        Self {
            billing_mode: BillingMode::default(),
            read_capacity_units: None,
            write_capacity_units: None,
            point_in_time_recovery: true,
            encryption: TableEncryption::default(),
            deletion_protection: None,
            table_names: None,
        }
    }
}

/// Explicit physical names of the tables; each unset one keeps the
/// operator's name.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct TableNames {
    /// The users table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 255), regex(pattern = TABLE_NAME_PATTERN))]
    pub users: Option<String>,
    /// The movie cache table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 255), regex(pattern = TABLE_NAME_PATTERN))]
    pub movies: Option<String>,
    /// The watchlists table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 255), regex(pattern = TABLE_NAME_PATTERN))]
    pub watchlists: Option<String>,
}

impl TableNames {
    /// The explicit name of the table of `component` (`users`, ...).
    pub fn get(&self, component: &str) -> Option<&str> {
        match component {
            c if c == movieapp_model::USERS.component => self.users.as_deref(),
            c if c == movieapp_model::MOVIES.component => self.movies.as_deref(),
            c if c == movieapp_model::WATCHLISTS.component => self.watchlists.as_deref(),
            _ => None,
        }
    }
}

fn default_true() -> bool {
    true
}

/// DynamoDB billing mode.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BillingMode {
    /// On-demand capacity.
    #[default]
    PayPerRequest,
    /// Provisioned read and write capacity.
    Provisioned,
}

/// DynamoDB server-side encryption.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TableEncryption {
    /// A key owned by DynamoDB.
    #[default]
    AwsOwned,
    /// The account's AWS managed key for DynamoDB (`alias/aws/dynamodb`).
    Kms,
}

/// The jobs queue and its dead-letter queue.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(immutable_name(None, "name"))
        .message(immutable_message("queue.name").as_str())
        .field_path(".name"),
    validation = Rule::new(immutable_name(None, "deadLetterQueueName"))
        .message(immutable_message("queue.deadLetterQueueName").as_str())
        .field_path(".deadLetterQueueName"),
)]
pub struct QueueSpec {
    /// Physical name of an existing jobs queue to use (and adopt, with
    /// `movieapp.io/adopt`) instead of the operator's name. A standard
    /// queue: 1–80 of `[a-zA-Z0-9_-]`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 80), regex(pattern = QUEUE_TOPIC_NAME_PATTERN))]
    pub name: Option<String>,

    /// Physical name of the dead-letter queue, likewise. Unset, it keeps
    /// the operator's name, whether or not `name` is set. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 80), regex(pattern = QUEUE_TOPIC_NAME_PATTERN))]
    pub dead_letter_queue_name: Option<String>,

    /// How long a received job stays invisible to other consumers.
    #[serde(default = "default_visibility_timeout")]
    #[schemars(range(min = 0, max = 43200))]
    pub visibility_timeout_seconds: i32,

    /// How long an unprocessed job is kept (both queues).
    #[serde(default = "default_retention")]
    #[schemars(range(min = 60, max = 1209600))]
    pub message_retention_seconds: i32,

    /// Receives after which a job moves to the dead-letter queue.
    #[serde(default = "default_max_receive_count")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_receive_count: i32,
}

impl Default for QueueSpec {
    fn default() -> Self {
        Self {
            name: None,
            dead_letter_queue_name: None,
            visibility_timeout_seconds: default_visibility_timeout(),
            message_retention_seconds: default_retention(),
            max_receive_count: default_max_receive_count(),
        }
    }
}

fn default_visibility_timeout() -> i32 {
    60
}

fn default_retention() -> i32 {
    345_600
}

fn default_max_receive_count() -> i32 {
    5
}

/// The notifications topic.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(immutable_name(None, "topicName"))
    .message(immutable_message("notifications.topicName").as_str())
    .field_path(".topicName"))]
pub struct NotificationsSpec {
    /// Physical name of an existing topic to use (and adopt, with
    /// `movieapp.io/adopt`) instead of the operator's name. A standard
    /// topic: 1–256 of `[a-zA-Z0-9_-]`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = QUEUE_TOPIC_NAME_PATTERN))]
    pub topic_name: Option<String>,

    /// Subscriptions besides the jobs queue, kept in sync with this list.
    #[serde(default)]
    #[schemars(length(max = 100))]
    #[x_kube(validation = Rule::new("self.all(s, self.exists_one(t, t.protocol == s.protocol && t.endpoint == s.endpoint))").message("subscriptions must be unique"))]
    pub subscriptions: Vec<SubscriptionSpec>,
}

/// One subscription of the notifications topic.
#[derive(
    KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[x_kube(validation = Rule::new(
    "self.protocol in ['email', 'email-json'] ? self.endpoint.contains('@') : self.protocol in ['http', 'https'] ? self.endpoint.startsWith(self.protocol + '://') : self.endpoint.startsWith('arn:')"
).message("endpoint does not fit the protocol: an e-mail address for email/email-json, a URL of the same scheme for http/https, an ARN for sqs/lambda"))]
pub struct SubscriptionSpec {
    /// Delivery protocol.
    pub protocol: SubscriptionProtocol,
    /// E-mail address, URL or ARN, depending on the protocol.
    #[schemars(length(min = 1, max = 2048))]
    pub endpoint: String,
}

/// SNS delivery protocols the operator manages.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "kebab-case")]
pub enum SubscriptionProtocol {
    Email,
    EmailJson,
    Http,
    Https,
    Sqs,
    Lambda,
}

impl SubscriptionProtocol {
    /// The protocol name SNS uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::EmailJson => "email-json",
            Self::Http => "http",
            Self::Https => "https",
            Self::Sqs => "sqs",
            Self::Lambda => "lambda",
        }
    }
}

/// Observed state, written only by the operator.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MovieAppStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`, `Reconciling`, `Stalled` and one condition per part.
    #[serde(default)]
    pub conditions: Vec<Condition>,

    /// The AWS region in use; fixed at the first reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,

    /// The image the worker runs: `<registry>/<repository>@sha256:...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// The image in short, for `kubectl get`: the spec's tag while the worker
    /// runs what the tag points at, else `sha256:` and the first 12 hex
    /// digits of the digest it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_version: Option<String>,

    /// Worker Pods, as the Deployment reports them (for the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,

    /// Worker Pods that are available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,

    /// Label selector of the worker Pods (for the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    /// The DynamoDB tables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TableStatus>,

    /// The jobs queue and its dead-letter queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueStatus>,

    /// The notifications topic and its subscriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<NotificationsStatus>,

    /// The worker's IAM role, when the operator makes it
    /// (`--worker-role-oidc-provider-arn`); its ServiceAccount names it in
    /// `eks.amazonaws.com/role-arn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_role: Option<WorkerRoleStatus>,
}

/// The worker's IAM role.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WorkerRoleStatus {
    /// Physical role name.
    pub name: String,
    /// Role ARN.
    pub arn: String,
}

/// One provisioned table.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TableStatus {
    /// The table's role in the application (`users`, `movies`, `watchlists`).
    pub component: String,
    /// Physical table name.
    pub name: String,
    /// Table ARN.
    pub arn: String,
}

/// The provisioned queues.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    /// URL of the jobs queue.
    pub url: String,
    /// ARN of the jobs queue.
    pub arn: String,
    /// URL of the dead-letter queue.
    pub dead_letter_url: String,
    /// ARN of the dead-letter queue.
    pub dead_letter_arn: String,
}

/// The provisioned topic.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NotificationsStatus {
    /// ARN of the topic.
    pub topic_arn: String,
    /// Subscriptions of the topic, the jobs queue's included.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionStatus>,
}

/// One subscription of the topic.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionStatus {
    /// Delivery protocol.
    pub protocol: String,
    /// E-mail address, URL or ARN.
    pub endpoint: String,
    /// Subscription ARN, or `PendingConfirmation` until the endpoint confirms.
    pub arn: String,
}

/// The CRD as YAML, as `movieapp-operator crd` prints it and `crds/` holds it.
pub fn crd_yaml() -> Result<String, serde_saphyr::SerializeError> {
    let crd = MovieApp::crd();
    serde_saphyr::to_string(&crd)
}
