//! The IAM policy documents the project ships, built from the calls each
//! component declares ([`movieapp_model::iam`]).
//!
//! One builder writes each document two ways: as a Terraform template
//! (`terraform/modules/iam/policies/*.json.tftpl`, read with `templatefile`),
//! and rendered for one account, region and name prefix (`make
//! iam-policies`, `.localenv/iam/<role>.json`). Both come from the same text,
//! so what Terraform applies is what the tests and linters read. A unit test
//! fails when the committed templates differ from what this module renders.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use movieapp_model::iam::{Access, Call, Component, Resource};

use crate::aws::tags;
use crate::crd::MovieAppSpec;
use crate::naming::{AppId, PhysicalNames};

/// The tag keys the operator ever writes: its ownership tags and the
/// retained marker (`aws::tags`).
const TAG_KEYS: [&str; 6] = [
    tags::MANAGED_BY,
    tags::CLUSTER,
    tags::UID,
    tags::NAMESPACE,
    tags::NAME,
    tags::RETAINED,
];

/// The template variable holding the operator's cluster id.
const CLUSTER_VAR: &str = "${cluster}";

/// A MovieApp whose worker role is rendered: its namespace and name, and
/// its spec (explicit physical names replace the operator's).
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    pub namespace: String,
    pub name: String,
    pub spec: MovieAppSpec,
}

/// Values for a rendered document (`make iam-policies`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub account: String,
    pub region: String,
    /// The operator's physical-name prefix (`movieapp-`).
    pub prefix: String,
    /// The operator's cluster id (`--cluster-id`, the `movieapp.io/cluster`
    /// tag).
    pub cluster: String,
}

impl Target {
    /// `aws`, `aws-cn` or `aws-us-gov`, from the region's name.
    pub fn partition(&self) -> &'static str {
        if self.region.starts_with("cn-") {
            "aws-cn"
        } else if self.region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        }
    }

    /// Refuses values that would not make a valid ARN.
    pub fn validate(&self) -> Result<(), String> {
        if self.account.len() != 12 || !self.account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "ACCOUNT must be a 12-digit AWS account id, not {:?}",
                self.account
            ));
        }
        let region_ok = !self.region.is_empty()
            && self.region.split('-').count() >= 3
            && self
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(format!(
                "REGION must be an AWS region such as us-east-1, not {:?}",
                self.region
            ));
        }
        let prefix_ok = !self.prefix.is_empty()
            && self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !prefix_ok {
            return Err(format!(
                "PREFIX must be a plain name prefix ([A-Za-z0-9_.-], no wildcards), not {:?}",
                self.prefix
            ));
        }
        crate::config::parse_cluster_id(&self.cluster).map_err(|e| format!("CLUSTER: {e}"))?;
        Ok(())
    }
}

/// A statement's resources: ARNs, or a list the caller gives.
#[derive(Debug, Clone)]
enum Resources {
    Arns(Vec<String>),
    /// A template variable holding a list of ARNs.
    List(&'static str),
}

#[derive(Debug, Clone)]
struct Statement {
    sid: String,
    actions: BTreeSet<&'static str>,
    resources: Resources,
    /// Applied only while `require_ownership_tags` holds.
    conditions: Vec<Condition>,
    /// Only with the worker permissions boundary (`iam:PermissionsBoundary`),
    /// always, whatever `require_ownership_tags` says.
    boundary: bool,
}

/// One condition: `(operator, key, values)`.
type Condition = (&'static str, String, Vec<String>);

fn condition(operator: &'static str, key: &str, values: &[&str]) -> Condition {
    (
        operator,
        key.to_owned(),
        values.iter().map(|v| (*v).to_owned()).collect(),
    )
}

/// The resource carries the operator's managed-by tag and this cluster's id.
fn resource_is_ours() -> Vec<Condition> {
    vec![
        condition(
            "StringEquals",
            &format!("aws:ResourceTag/{}", tags::MANAGED_BY),
            &[tags::MANAGER],
        ),
        condition(
            "StringEquals",
            &format!("aws:ResourceTag/{}", tags::CLUSTER),
            &[CLUSTER_VAR],
        ),
    ]
}

/// The request sets the operator's managed-by tag and this cluster's id
/// (`operator`: `StringEquals`, they must be set; `StringEqualsIfExists`:
/// when set, only to these values).
fn request_claims(operator: &'static str) -> Vec<Condition> {
    vec![
        condition(
            operator,
            &format!("aws:RequestTag/{}", tags::MANAGED_BY),
            &[tags::MANAGER],
        ),
        condition(
            operator,
            &format!("aws:RequestTag/{}", tags::CLUSTER),
            &[CLUSTER_VAR],
        ),
    ]
}

/// The request's tag keys are among `keys` (and there are some: an empty
/// set satisfies `ForAllValues`).
fn tag_keys_among(keys: &[&str]) -> Vec<Condition> {
    vec![
        condition("ForAllValues:StringEquals", "aws:TagKeys", keys),
        condition("Null", "aws:TagKeys", &["false"]),
    ]
}

/// The ownership conditions of the operator's statement on `resource` with
/// `access`, as extra statements where one statement cannot say it:
/// `(sid suffix, conditions)` per statement.
fn ownership(resource: Resource, access: Access) -> Vec<(&'static str, Vec<Condition>)> {
    // SNS subscriptions are no IAM resource type: no tag condition applies.
    if !matches!(
        resource,
        Resource::Tables | Resource::Queues | Resource::Topic | Resource::WorkerRoles
    ) {
        return vec![("", Vec::new())];
    }
    let concat = |parts: Vec<Vec<_>>| parts.into_iter().flatten().collect::<Vec<_>>();
    match access {
        // Reads on any name under the prefix: how a name someone else holds
        // is told (NameConflict).
        Access::Read | Access::Use => vec![("", Vec::new())],
        // A worker role's boundary, only on a role of this cluster (and only
        // the worker boundary: [`Statement::boundary`]).
        Access::CreateBounded => vec![("", resource_is_ours())],
        // Created with the ownership tags for this cluster in the same call.
        Access::Create => vec![(
            "",
            concat(vec![
                request_claims("StringEquals"),
                tag_keys_among(&TAG_KEYS),
            ]),
        )],
        Access::Tag => vec![
            // On a resource of this cluster: any of the operator's tags, but
            // never managed-by or the cluster to another value.
            (
                "Owned",
                concat(vec![
                    resource_is_ours(),
                    request_claims("StringEqualsIfExists"),
                    tag_keys_among(&TAG_KEYS),
                ]),
            ),
            // At creation, on adoption and when restoring the ownership
            // tags: only on a resource no other cluster's tag marks, and only
            // by setting managed-by and this cluster together.
            (
                "Claim",
                concat(vec![
                    request_claims("StringEquals"),
                    vec![condition(
                        "StringEqualsIfExists",
                        &format!("aws:ResourceTag/{}", tags::CLUSTER),
                        &[CLUSTER_VAR],
                    )],
                    tag_keys_among(&TAG_KEYS),
                ]),
            ),
        ],
        // Only the retained marker, only on a resource of this cluster: no
        // ownership tag is ever removed.
        Access::Untag => vec![(
            "",
            concat(vec![resource_is_ours(), tag_keys_among(&[tags::RETAINED])]),
        )],
        Access::ChangeOwned => vec![("", resource_is_ours())],
    }
}

/// One IAM policy document.
#[derive(Debug, Clone)]
pub struct Document {
    /// The role (or policy) it is for: the file's name.
    pub role: String,
    statements: Vec<Statement>,
}

/// The shipped documents' names (the templates' file names).
pub const OPERATOR: &str = "operator";
pub const WORKER: &str = "worker";
pub const WORKER_BOUNDARY: &str = "worker-boundary";

fn arn(service: &str, resource: &str) -> String {
    format!("arn:${{partition}}:{service}:${{region}}:${{account}}:{resource}")
}

/// The operator's ARN patterns: every name under the prefix.
fn prefixed(resource: Resource) -> Resources {
    match resource {
        Resource::Tables => Resources::Arns(vec![arn("dynamodb", "table/${prefix}*")]),
        Resource::TableIndexes => {
            Resources::Arns(vec![arn("dynamodb", "table/${prefix}*/index/*")])
        }
        Resource::Queues | Resource::JobsQueue => Resources::Arns(vec![arn("sqs", "${prefix}*")]),
        Resource::Topic => Resources::Arns(vec![arn("sns", "${prefix}*")]),
        // These SNS actions, and tag:GetResources, support no
        // resource-level permissions.
        Resource::Subscriptions | Resource::TaggedResources => Resources::Arns(vec!["*".into()]),
        Resource::EventsQueue => Resources::List("events_queue_arns"),
        Resource::ImageRepositories => Resources::List("ecr_repository_arns"),
        Resource::WorkerRoles => Resources::Arns(vec![
            "arn:${partition}:iam::${account}:role/${prefix}*".into(),
        ]),
    }
}

/// One MovieApp's own resources, by exact ARN (template variables hold the
/// operator's physical names).
fn own(resource: Resource) -> Resources {
    let table = |var: &str| arn("dynamodb", &format!("table/${{{var}}}"));
    match resource {
        Resource::Tables => Resources::Arns(vec![
            table("users_table"),
            table("movies_table"),
            table("watchlists_table"),
        ]),
        Resource::TableIndexes => {
            Resources::Arns(vec![arn("dynamodb", "table/${watchlists_table}/index/*")])
        }
        Resource::Queues | Resource::JobsQueue => {
            Resources::Arns(vec![arn("sqs", "${jobs_queue}")])
        }
        Resource::Topic => Resources::Arns(vec![arn("sns", "${topic}")]),
        Resource::Subscriptions
        | Resource::EventsQueue
        | Resource::ImageRepositories
        | Resource::TaggedResources
        | Resource::WorkerRoles => {
            unreachable!("no api-worker component calls the operator's resources")
        }
    }
}

fn pascal(resource: Resource) -> &'static str {
    match resource {
        Resource::Tables => "Tables",
        Resource::TableIndexes => "TableIndexes",
        Resource::Queues => "Queues",
        Resource::JobsQueue => "JobsQueue",
        Resource::Topic => "Topic",
        Resource::Subscriptions => "Subscriptions",
        Resource::EventsQueue => "EventsQueue",
        Resource::ImageRepositories => "ImageRepositories",
        Resource::TaggedResources => "TaggedResources",
        Resource::WorkerRoles => "WorkerRoles",
    }
}

/// Groups calls into one statement per (resource, access), in a fixed order.
fn group<'a>(
    calls: impl Iterator<Item = &'a Call>,
) -> Vec<(Resource, Access, BTreeSet<&'static str>)> {
    let mut groups: Vec<(Resource, Access, BTreeSet<&'static str>)> = Vec::new();
    for call in calls {
        match groups
            .iter_mut()
            .find(|(r, a, _)| *r == call.resource && *a == call.access)
        {
            Some((_, _, actions)) => actions.extend(call.actions.iter().copied()),
            None => groups.push((
                call.resource,
                call.access,
                call.actions.iter().copied().collect(),
            )),
        }
    }
    groups.sort_by_key(|(r, a, _)| (*r, *a));
    groups
}

/// The operator's role: reads on every name under the prefix; creates,
/// tag writes, changes and deletes of tables, queues and topics only on
/// what carries (or is created or claimed with) its managed-by tag and this
/// cluster's id ([`ownership`]).
pub fn operator() -> Document {
    let statements = group(Component::Operator.calls().iter())
        .into_iter()
        .flat_map(|(resource, access, actions)| {
            ownership(resource, access)
                .into_iter()
                .map(move |(suffix, conditions)| Statement {
                    sid: format!("{}{access:?}{suffix}", pascal(resource)),
                    actions: actions.clone(),
                    resources: prefixed(resource),
                    conditions,
                    // Creating a worker role, or setting its boundary.
                    boundary: resource == Resource::WorkerRoles
                        && matches!(access, Access::Create | Access::CreateBounded),
                })
        })
        .collect();
    Document {
        role: OPERATOR.into(),
        statements,
    }
}

/// The worker role of one MovieApp: what every api-worker component calls,
/// on exactly that MovieApp's tables, jobs queue and topic; tables and queue
/// also only while they carry its ownership tags.
pub fn worker() -> Document {
    let calls = Component::API_WORKER.iter().flat_map(|c| c.calls().iter());
    let statements = group(calls)
        .into_iter()
        .map(|(resource, _, actions)| Statement {
            sid: format!("Own{}", pascal(resource)),
            actions,
            resources: own(resource),
            conditions: if resource == Resource::Topic {
                Vec::new()
            } else {
                vec![
                    condition(
                        "StringEquals",
                        &format!("aws:ResourceTag/{}", tags::NAMESPACE),
                        &["${namespace}"],
                    ),
                    condition(
                        "StringEquals",
                        &format!("aws:ResourceTag/{}", tags::NAME),
                        &["${name}"],
                    ),
                ]
            },
            boundary: false,
        })
        .collect();
    Document {
        role: WORKER.into(),
        statements,
    }
}

/// The permissions boundary of every worker role: what any api-worker
/// component may call, on names under the prefix only. A worker role can
/// never do more, whatever policy it is given.
pub fn worker_boundary() -> Document {
    let calls = Component::API_WORKER.iter().flat_map(|c| c.calls().iter());
    let statements = group(calls)
        .into_iter()
        .map(|(resource, _, actions)| Statement {
            sid: format!("ApiWorker{}", pascal(resource)),
            actions,
            resources: prefixed(resource),
            conditions: Vec::new(),
            boundary: false,
        })
        .collect();
    Document {
        role: WORKER_BOUNDARY.into(),
        statements,
    }
}

/// Every document built from the declarations.
pub fn all() -> [Document; 3] {
    [operator(), worker(), worker_boundary()]
}

const ENDIF: &str = "%{ endif }";

/// Where the `%{ endif }` closing an `%{ if }` whose body starts at `from`
/// begins.
fn matching_endif(text: &str, from: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut at = from;
    loop {
        let next_if = text[at..].find("%{ if ").map(|i| at + i);
        let next_end = text[at..].find(ENDIF).map(|i| at + i)?;
        match next_if {
            Some(i) if i < next_end => {
                depth += 1;
                at = i + 1;
            }
            _ if depth == 0 => return Some(next_end),
            _ => {
                depth -= 1;
                at = next_end + ENDIF.len();
            }
        }
    }
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| unreachable!("strings serialize"))
}

impl Document {
    /// The Terraform template: `${...}` variables, ownership conditions
    /// under `%{ if require_ownership_tags }`, list-valued statements only
    /// when their list is not empty.
    pub fn template(&self) -> String {
        let mut fixed = Vec::new();
        let mut optional = Vec::new();
        for statement in &self.statements {
            let resource = match &statement.resources {
                Resources::Arns(arns) => json(arns),
                Resources::List(var) => format!("${{jsonencode({var})}}"),
            };
            let mut text = format!(
                "    {{\n      \"Sid\": {},\n      \"Effect\": \"Allow\",\n      \"Action\": {},\n      \"Resource\": {resource}",
                json(&statement.sid),
                json(&statement.actions),
            );
            // The boundary always; the ownership conditions beside it only
            // with require_ownership_tags, in the same Condition object.
            let boundary =
                "\"ArnEquals\": {\"iam:PermissionsBoundary\": \"${worker_boundary_arn}\"}";
            if statement.boundary && statement.conditions.is_empty() {
                let _ = write!(text, ",\n      \"Condition\": {{{boundary}}}");
            }
            if !statement.conditions.is_empty() {
                let mut conditions = serde_json::Map::new();
                for (operator, key, values) in &statement.conditions {
                    let value: serde_json::Value = match values.as_slice() {
                        [one] => one.clone().into(),
                        many => many.to_vec().into(),
                    };
                    conditions
                        .entry(*operator)
                        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()))
                        .as_object_mut()
                        .unwrap_or_else(|| unreachable!("an object"))
                        .insert(key.clone(), value);
                }
                if statement.boundary {
                    let inner = json(&conditions);
                    let inner = &inner[1..inner.len() - 1];
                    let _ = write!(
                        text,
                        ",\n      \"Condition\": {{{boundary}%{{ if require_ownership_tags }}, {inner}%{{ endif }}}}"
                    );
                } else {
                    let _ = write!(
                        text,
                        "%{{ if require_ownership_tags }},\n      \"Condition\": {}%{{ endif }}",
                        json(&conditions)
                    );
                }
            }
            text.push_str("\n    }");
            match &statement.resources {
                Resources::List(var) => optional.push((*var, text)),
                Resources::Arns(_) => fixed.push(text),
            }
        }
        let mut body = fixed.join(",\n");
        for (var, text) in optional {
            let _ = write!(body, "%{{ if length({var}) > 0 }},\n{text}%{{ endif }}");
        }
        format!("{{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n{body}\n  ]\n}}\n")
    }

    /// The document for one account, region and prefix, with the ownership
    /// conditions; a worker role for `app`; list variables from `lists`.
    pub fn render(
        &self,
        target: &Target,
        app: Option<&App>,
        lists: &[(&str, Vec<String>)],
    ) -> Result<String, String> {
        target.validate()?;
        let mut values: Vec<(String, String)> = vec![
            ("partition".into(), target.partition().into()),
            ("region".into(), target.region.clone()),
            ("account".into(), target.account.clone()),
            ("prefix".into(), target.prefix.clone()),
            ("cluster".into(), target.cluster.clone()),
            // The boundary Terraform makes (`<name>-worker-boundary`).
            (
                "worker_boundary_arn".into(),
                format!(
                    "arn:{}:iam::{}:policy/{}worker-boundary",
                    target.partition(),
                    target.account,
                    target.prefix
                ),
            ),
        ];
        if let Some(app) = app {
            let id = AppId {
                namespace: &app.namespace,
                name: &app.name,
            };
            let names = PhysicalNames::of(id, &app.spec);
            let table = |t: movieapp_model::Table| names.table(t.component).to_owned();
            values.extend([
                ("namespace".into(), app.namespace.clone()),
                ("name".into(), app.name.clone()),
                ("users_table".into(), table(movieapp_model::USERS)),
                ("movies_table".into(), table(movieapp_model::MOVIES)),
                ("watchlists_table".into(), table(movieapp_model::WATCHLISTS)),
                ("jobs_queue".into(), names.jobs_queue.clone()),
                ("topic".into(), names.topic.clone()),
            ]);
        }
        let mut text = self.template();
        for (var, list) in lists {
            let guard = format!("%{{ if length({var}) > 0 }}");
            while let Some(start) = text.find(&guard) {
                let end = matching_endif(&text, start + guard.len())
                    .ok_or_else(|| format!("{}: {guard} without its endif", self.role))?;
                if list.is_empty() {
                    text.replace_range(start..end + ENDIF.len(), "");
                } else {
                    text.replace_range(end..end + ENDIF.len(), "");
                    text.replace_range(start..start + guard.len(), "");
                }
            }
            text = text.replace(&format!("${{jsonencode({var})}}"), &json(list));
        }
        text = text
            .replace("%{ if require_ownership_tags }", "")
            .replace(ENDIF, "");
        for (var, value) in &values {
            text = text.replace(&format!("${{{var}}}"), value);
        }
        if let Some(left) = text.find("${").or_else(|| text.find("%{")) {
            let end = text[left..].find('}').map_or(text.len(), |i| left + i + 1);
            return Err(format!(
                "{}: no value for {} (a worker role needs a MovieApp)",
                self.role,
                &text[left..end]
            ));
        }
        // Normalised: one canonical JSON text.
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: the rendered document is not JSON: {e}", self.role))?;
        serde_json::to_string_pretty(&value)
            .map(|s| s + "\n")
            .map_err(|e| format!("{}: {e}", self.role))
    }
}

/// `document` (a rendered policy) as an IAM emulator that checks actions
/// only can judge it: every statement on `"*"`, without its `Condition`.
/// **For tests only** (`iam-policies --actions-only`, the hidden `run
/// --worker-role-actions-only`): moto 5 passes `"*"` as the resource of most
/// services' requests (DynamoDB, SNS, ECR, tag), which no ARN pattern
/// matches, and evaluates no request context. Under such an emulator this
/// document proves that no action is missing, nothing about scoping
/// (docs/iam.md, "Proven under enforcement").
pub fn actions_only(document: &str) -> Result<String, String> {
    let mut value: serde_json::Value =
        serde_json::from_str(document).map_err(|e| format!("not a policy document: {e}"))?;
    let statements = value
        .get_mut("Statement")
        .and_then(serde_json::Value::as_array_mut)
        .ok_or("not a policy document: no Statement list")?;
    for statement in statements {
        let statement = statement
            .as_object_mut()
            .ok_or("not a policy document: a statement is no object")?;
        statement.remove("Condition");
        statement.insert("Resource".into(), "*".into());
    }
    serde_json::to_string_pretty(&value)
        .map(|s| s + "\n")
        .map_err(|e| e.to_string())
}

/// `movieapp-operator iam-policies`.
#[derive(Debug, Clone, clap::Args)]
pub struct IamPoliciesArgs {
    /// Write each document rendered for --account, --region and --prefix to
    /// DIR/<role>.json.
    #[arg(long, value_name = "DIR", required_unless_present = "templates")]
    pub out: Option<std::path::PathBuf>,
    /// Write the Terraform templates to DIR/<role>.json.tftpl instead.
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    pub templates: Option<std::path::PathBuf>,
    /// The AWS account id of the ARNs.
    #[arg(long, default_value = "123456789012")]
    pub account: String,
    /// The AWS region of the ARNs.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// The physical-name prefix of the operator's resources.
    #[arg(long, default_value = "movieapp-")]
    pub prefix: String,
    /// The operator's cluster id (`run --cluster-id`): the operator may
    /// change only resources tagged `movieapp.io/cluster` with it.
    #[arg(long, default_value = crate::aws::tags::DEFAULT_CLUSTER)]
    pub cluster: String,
    /// A MovieApp manifest whose worker role is rendered as
    /// worker-<namespace>-<name>.json (repeatable).
    #[arg(long, value_name = "FILE")]
    pub movieapp: Vec<std::path::PathBuf>,
    /// ECR repositories the operator resolves images in (default: every
    /// repository under the prefix).
    #[arg(long, value_name = "ARN")]
    pub ecr_repository_arn: Vec<String>,
    /// The AWS change-events queue (`run --events-queue-url`); none: no
    /// statement for it.
    #[arg(long, value_name = "ARN")]
    pub events_queue_arn: Vec<String>,
    /// Tests only: every statement on "*" and without its conditions, as an
    /// emulator that checks actions only (moto) can judge it. Never apply
    /// these documents to an account.
    #[arg(long, conflicts_with = "templates")]
    pub actions_only: bool,
}

/// What `iam-policies` writes: `(file name, text)` per document.
pub fn files(args: &IamPoliciesArgs) -> Result<Vec<(String, String)>, String> {
    if args.templates.is_some() {
        return Ok(all()
            .iter()
            .map(|d| (format!("{}.json.tftpl", d.role), d.template()))
            .collect());
    }
    let target = Target {
        account: args.account.clone(),
        region: args.region.clone(),
        prefix: args.prefix.clone(),
        cluster: args.cluster.clone(),
    };
    target.validate()?;
    let ecr = if args.ecr_repository_arn.is_empty() {
        vec![format!(
            "arn:{}:ecr:{}:{}:repository/{}*",
            target.partition(),
            target.region,
            target.account,
            target.prefix
        )]
    } else {
        args.ecr_repository_arn.clone()
    };
    let lists = [
        ("ecr_repository_arns", ecr),
        ("events_queue_arns", args.events_queue_arn.clone()),
    ];
    let mut out = vec![
        (
            format!("{OPERATOR}.json"),
            operator().render(&target, None, &lists)?,
        ),
        (
            format!("{WORKER_BOUNDARY}.json"),
            worker_boundary().render(&target, None, &[])?,
        ),
    ];
    for path in &args.movieapp {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let app: crate::crd::MovieApp = serde_saphyr::from_str(&text)
            .map_err(|e| format!("{}: not a MovieApp: {e}", path.display()))?;
        let (Some(namespace), Some(name)) = (app.metadata.namespace, app.metadata.name) else {
            return Err(format!(
                "{}: the MovieApp needs metadata.namespace and metadata.name",
                path.display()
            ));
        };
        let app = App {
            namespace,
            name,
            spec: app.spec,
        };
        out.push((
            format!("{WORKER}-{}-{}.json", app.namespace, app.name),
            worker().render(&target, Some(&app), &[])?,
        ));
    }
    if args.actions_only {
        for (_, text) in &mut out {
            *text = actions_only(text)?;
        }
    }
    Ok(out)
}

/// Writes [`files`] to the chosen directory; returns the paths written.
pub fn write(args: &IamPoliciesArgs) -> Result<Vec<std::path::PathBuf>, String> {
    let dir = args
        .templates
        .as_ref()
        .or(args.out.as_ref())
        .ok_or("give --out or --templates")?;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for (file, text) in files(args)? {
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

pub mod evaluation;

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn target() -> Target {
        Target {
            account: "123456789012".into(),
            region: "us-east-1".into(),
            prefix: "movieapp-".into(),
            cluster: crate::aws::tags::DEFAULT_CLUSTER.into(),
        }
    }

    /// The ECR repositories and the events queue of a full install.
    pub(crate) fn lists() -> [(&'static str, Vec<String>); 2] {
        [
            (
                "ecr_repository_arns",
                vec!["arn:aws:ecr:us-east-1:123456789012:repository/movieapp-*".into()],
            ),
            (
                "events_queue_arns",
                vec!["arn:aws:sqs:us-east-1:123456789012:movieapp-aws-events".into()],
            ),
        ]
    }

    fn example() -> App {
        App {
            namespace: "movies".into(),
            name: "netflix-clone".into(),
            spec: serde_json::from_value(serde_json::json!({})).expect("a default spec"),
        }
    }

    fn statements(text: &str) -> Vec<serde_json::Value> {
        let doc: serde_json::Value = serde_json::from_str(text).expect("JSON");
        doc["Statement"].as_array().expect("statements").clone()
    }

    fn repository_file(path: &str) -> String {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
    }

    #[test]
    fn the_committed_templates_are_what_the_declarations_render() {
        for document in all() {
            let path = format!(
                "terraform/modules/iam/policies/{}.json.tftpl",
                document.role
            );
            assert_eq!(
                repository_file(&path),
                document.template(),
                "{path} is stale: run `make iam-policies` and commit the templates"
            );
        }
    }

    #[test]
    fn each_role_grants_exactly_what_its_components_declare() {
        let granted = |text: &str| -> BTreeSet<String> {
            statements(text)
                .iter()
                .flat_map(|s| s["Action"].as_array().expect("actions").clone())
                .map(|a| a.as_str().expect("action").to_owned())
                .collect()
        };
        let declared = |components: &[Component]| -> BTreeSet<String> {
            components
                .iter()
                .flat_map(|c| c.actions())
                .map(str::to_owned)
                .collect()
        };
        let lists = [
            (
                "ecr_repository_arns",
                vec!["arn:aws:ecr:us-east-1:123456789012:repository/x".into()],
            ),
            (
                "events_queue_arns",
                vec!["arn:aws:sqs:us-east-1:123456789012:events".into()],
            ),
        ];
        let operator = operator()
            .render(&target(), None, &lists)
            .expect("operator");
        assert_eq!(granted(&operator), declared(&[Component::Operator]));
        let worker = worker()
            .render(&target(), Some(&example()), &[])
            .expect("worker");
        assert_eq!(granted(&worker), declared(&Component::API_WORKER));
        let boundary = worker_boundary()
            .render(&target(), None, &[])
            .expect("boundary");
        assert_eq!(granted(&boundary), declared(&Component::API_WORKER));
    }

    #[test]
    fn the_worker_role_names_only_its_own_resources() {
        let text = worker()
            .render(&target(), Some(&example()), &[])
            .expect("worker");
        for statement in statements(&text) {
            for resource in statement["Resource"].as_array().expect("resources") {
                let resource = resource.as_str().expect("arn");
                assert!(
                    resource.contains("movieapp-movies-netflix-clone-"),
                    "{resource} is not one of this MovieApp's resources"
                );
                assert!(
                    !resource.contains('*') || resource.ends_with("/index/*"),
                    "{resource}: a wildcard"
                );
            }
        }
        assert!(
            text.contains("\"arn:aws:sns:us-east-1:123456789012:movieapp-movies-netflix-clone-")
        );
    }

    /// A MovieApp that names its resources explicitly gets a worker role on
    /// exactly those names.
    #[test]
    fn the_worker_role_names_explicit_names() {
        let app = App {
            spec: serde_json::from_value(serde_json::json!({
                "database": { "tableNames": { "users": "legacy-users" } },
                "queue": { "name": "legacy-jobs" },
                "notifications": { "topicName": "legacy-topic" },
            }))
            .expect("spec"),
            ..example()
        };
        let text = worker().render(&target(), Some(&app), &[]).expect("worker");
        for arn in [
            "arn:aws:dynamodb:us-east-1:123456789012:table/legacy-users",
            "arn:aws:sqs:us-east-1:123456789012:legacy-jobs",
            "arn:aws:sns:us-east-1:123456789012:legacy-topic",
        ] {
            assert!(
                text.contains(&format!("\"{arn}\"")),
                "{arn} missing: {text}"
            );
        }
        // The tables it does not name keep the operator's names.
        assert!(
            text.contains("table/movieapp-movies-netflix-clone-"),
            "{text}"
        );
        let derived = AppId {
            namespace: "movies",
            name: "netflix-clone",
        };
        let jobs = derived.queue_name(crate::naming::component::JOBS_QUEUE);
        assert!(!text.contains(&jobs), "{text}");
    }

    /// The test-only rendering keeps every statement and action, on "*",
    /// with no condition; anything but a policy document is refused.
    #[test]
    fn actions_only_keeps_the_actions_on_any_resource_without_conditions() {
        let rendered = operator()
            .render(&target(), None, &lists())
            .expect("operator");
        let stripped = actions_only(&rendered).expect("actions only");
        let (before, after) = (statements(&rendered), statements(&stripped));
        assert_eq!(before.len(), after.len());
        assert!(before.iter().any(|s| s.get("Condition").is_some()));
        for (old, new) in before.iter().zip(&after) {
            assert_eq!(old["Sid"], new["Sid"]);
            assert_eq!(old["Action"], new["Action"]);
            assert_eq!(new["Resource"], "*");
            assert!(new.get("Condition").is_none(), "{new}");
        }
        for bad in ["", "{}", "[]", r#"{"Statement": [1]}"#] {
            assert!(actions_only(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn list_statements_are_left_out_when_their_list_is_empty() {
        let without = operator()
            .render(
                &target(),
                None,
                &[
                    ("ecr_repository_arns", vec![]),
                    ("events_queue_arns", vec![]),
                ],
            )
            .expect("operator");
        assert!(
            !without.contains("ecr:") && !without.contains("EventsQueue"),
            "{without}"
        );
        let with = operator()
            .render(
                &target(),
                None,
                &[
                    (
                        "ecr_repository_arns",
                        vec!["arn:aws:ecr:us-east-1:123456789012:repository/a".into()],
                    ),
                    ("events_queue_arns", vec![]),
                ],
            )
            .expect("operator");
        assert!(with.contains("\"ecr:DescribeImages\"") && !with.contains("EventsQueue"));
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        for (account, region, prefix, needle) in [
            ("12345", "us-east-1", "movieapp-", "ACCOUNT"),
            ("12345678901x", "us-east-1", "movieapp-", "ACCOUNT"),
            ("123456789012", "", "movieapp-", "REGION"),
            ("123456789012", "US_EAST", "movieapp-", "REGION"),
            ("123456789012", "us-east-1", "", "PREFIX"),
            ("123456789012", "us-east-1", "movieapp-*", "PREFIX"),
        ] {
            let target = Target {
                account: account.into(),
                region: region.into(),
                prefix: prefix.into(),
                ..target()
            };
            let error = worker_boundary()
                .render(&target, None, &[])
                .expect_err(needle);
            assert!(error.contains(needle), "{error}");
        }
        for cluster in ["", "-east", "east*", "a b", "${account}"] {
            let target = Target {
                cluster: cluster.into(),
                ..target()
            };
            let error = operator().render(&target, None, &[]).expect_err(cluster);
            assert!(
                error.contains("CLUSTER") && error.contains("not a cluster id"),
                "{error}"
            );
        }
        let error = worker().render(&target(), None, &[]).expect_err("no app");
        assert!(error.contains("needs a MovieApp"), "{error}");
        let cn = Target {
            region: "cn-north-1".into(),
            ..target()
        };
        assert!(
            worker_boundary()
                .render(&cn, None, &[])
                .expect("cn")
                .contains("arn:aws-cn:")
        );
    }
}
