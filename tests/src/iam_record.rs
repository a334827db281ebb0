//! Scoping proven on real requests: moto's request recording turned into
//! the authorizations AWS would make, evaluated against the rendered IAM
//! policies with [`movieapp_operator::policies::evaluation`].
//!
//! moto (`MOTO_ENABLE_RECORDING=True`, or `POST /moto-api/recorder/start-recording`)
//! appends one JSON object per request to its recording
//! (`GET /moto-api/recorder/download-recording`): `headers`, `method`, `url`,
//! `body` (base64 when `body_encoded`). Each AWS request becomes one or more
//! [`Request`]s:
//!
//! - the principal: the access key id of the `Authorization` header's
//!   credential, mapped to a role by the caller's map;
//! - the IAM action: from `X-Amz-Target` for the JSON protocols (DynamoDB,
//!   SQS, ECR, the Resource Groups Tagging API), from `Action=` for the
//!   query protocols (SNS, IAM, STS, SQS's older one); an operation IAM
//!   authorizes as other actions is split into them (`TransactWriteItems`:
//!   one per item; `PublishBatch`: `sns:Publish`; a create call with tags:
//!   the create and the service's tag action);
//! - the resource ARN: the table (its index for a `Query` with `IndexName`),
//!   the queue of `QueueUrl`, the topic, the role, the repository; `*` for
//!   an action without a resource type;
//! - the context keys the real service supplies: `aws:RequestTag/*` and
//!   `aws:TagKeys` from the request's tags, `aws:ResourceTag/*` from a
//!   replay of every resource's tags through the recording (creates, tag
//!   and untag calls, deletes, in order), `iam:PermissionsBoundary` from
//!   `CreateRole` and `PutRolePermissionsBoundary`.
//!
//! What IAM never authorizes is left out, each with its reason
//! ([`Authorizations::ignored`]): moto's own API, the unsigned
//! `sts:AssumeRoleWithWebIdentity`, `sts:GetCallerIdentity`, and requests
//! signed with a key the map does not name (a test's own setup).
//!
//! The entry point for a suite that recorded its run is [`check_recording`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use movieapp_operator::policies::evaluation::{Decision, Principal, Request, Tags};
use serde_json::Value;

/// moto's account (`MOTO_ACCOUNT_ID` unset).
pub const MOTO_ACCOUNT: &str = "123456789012";

/// One line of moto's recording.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// 1-based line in the recording.
    pub line: usize,
    pub method: String,
    pub url: String,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The URL's path, without scheme, host and query.
    fn path(&self) -> &str {
        let rest = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, r)| r);
        let path = rest.find('/').map_or("/", |i| &rest[i..]);
        path.split_once('?').map_or(path, |(p, _)| p)
    }

    fn query(&self) -> &str {
        self.url.split_once('?').map_or("", |(_, q)| q)
    }
}

/// Parses moto's recording: one JSON object per line.
pub fn parse_recording(text: &str) -> Result<Vec<Recorded>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("recording line {}", i + 1);
        let entry: Value = serde_json::from_str(line).with_context(at)?;
        let headers = entry["headers"]
            .as_object()
            .with_context(|| format!("{}: no headers", at()))?
            .iter()
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    v.as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let body = match &entry["body"] {
            Value::String(text) if entry["body_encoded"] == Value::Bool(true) => {
                base64(text).with_context(|| format!("{}: the body", at()))?
            }
            Value::String(text) => text.clone().into_bytes(),
            _ => Vec::new(),
        };
        out.push(Recorded {
            line: i + 1,
            method: entry["method"].as_str().unwrap_or_default().to_owned(),
            url: entry["url"].as_str().unwrap_or_default().to_owned(),
            headers,
            body,
        });
    }
    Ok(out)
}

/// Standard base64, padded or not.
fn base64(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            other => bail!("{:?} is not base64", char::from(other)),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).unwrap_or_default());
        }
    }
    Ok(out)
}

/// `application/x-www-form-urlencoded` pairs, in order.
fn form(text: &str) -> Vec<(String, String)> {
    let decode = |s: &str| -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(b) => {
                            out.push(b);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// A request's parameters, whichever protocol carried them.
#[derive(Debug, Clone)]
enum Params {
    Json(Value),
    Query(Vec<(String, String)>),
}

impl Params {
    /// A top-level string (JSON) or a single parameter (query).
    fn string(&self, name: &str) -> Option<String> {
        match self {
            Self::Json(v) => v.get(name)?.as_str().map(str::to_owned),
            Self::Query(pairs) => pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone()),
        }
    }

    /// `Prefix.member.N` (or `Prefix.N`) values of a query list, in order.
    fn query_list(&self, prefix: &str) -> Vec<String> {
        let Self::Query(pairs) = self else {
            return Vec::new();
        };
        let mut items: Vec<(u32, String)> = pairs
            .iter()
            .filter_map(|(k, v)| {
                let rest = k.strip_prefix(prefix)?.strip_prefix('.')?;
                let rest = rest.strip_prefix("member.").unwrap_or(rest);
                Some((rest.parse().ok()?, v.clone()))
            })
            .collect();
        items.sort();
        items.into_iter().map(|(_, v)| v).collect()
    }

    /// Tags of a query request: `Prefix.member.N.Key`/`.Value` or
    /// `Prefix.N.Key`/`.Value`.
    fn query_tags(&self, prefix: &str) -> Tags {
        let Self::Query(pairs) = self else {
            return Tags::new();
        };
        let mut keys = BTreeMap::new();
        let mut values = BTreeMap::new();
        for (k, v) in pairs {
            let Some(rest) = k.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) else {
                continue;
            };
            let rest = rest.strip_prefix("member.").unwrap_or(rest);
            let Some((n, field)) = rest.split_once('.') else {
                continue;
            };
            let Ok(n) = n.parse::<u32>() else { continue };
            match field {
                "Key" => {
                    keys.insert(n, v.clone());
                }
                "Value" => {
                    values.insert(n, v.clone());
                }
                _ => {}
            }
        }
        keys.into_iter()
            .map(|(n, k)| (k, values.get(&n).cloned().unwrap_or_default()))
            .collect()
    }
}

/// Tags of a JSON list of `{Key, Value}` (or `{key, value}`) objects, or of
/// a JSON map.
fn json_tags(value: Option<&Value>) -> Tags {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|t| {
                let key = t.get("Key").or_else(|| t.get("key"))?.as_str()?;
                let value = t.get("Value").or_else(|| t.get("value"))?.as_str()?;
                Some((key.to_owned(), value.to_owned()))
            })
            .collect(),
        Some(Value::Object(map)) => map
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect(),
        _ => Tags::new(),
    }
}

fn json_strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// What a request does to its resource's tags, for the replay.
#[derive(Debug, Clone, PartialEq)]
enum TagEffect {
    None,
    /// Created with these tags (unless it exists already: then the create
    /// fails, or SQS returns the existing queue, and its tags stay).
    Create(Tags),
    Tag(Tags),
    Untag(Vec<String>),
    Delete,
}

/// One AWS operation, resolved: what IAM authorizes it as.
#[derive(Debug, Clone)]
struct Operation {
    /// `service:Operation` as sent (the counter's label).
    label: String,
    /// `(action, resource)`, in the order IAM checks them.
    checks: Vec<(String, String)>,
    /// The ARN whose tags the call reads and changes (`aws:ResourceTag`).
    target: Option<String>,
    request_tags: Tags,
    tag_keys: Vec<String>,
    permissions_boundary: Option<String>,
    effect: TagEffect,
    /// Roles' paths, learnt from CreateRole (role name -> path).
    role_path: Option<(String, String)>,
}

impl Operation {
    fn new(label: String) -> Self {
        Self {
            label,
            checks: Vec::new(),
            target: None,
            request_tags: Tags::new(),
            tag_keys: Vec::new(),
            permissions_boundary: None,
            effect: TagEffect::None,
            role_path: None,
        }
    }

    fn on(mut self, action: impl Into<String>, resource: impl Into<String>) -> Self {
        let resource = resource.into();
        if self.target.is_none() && resource != "*" {
            self.target = Some(resource.clone());
        }
        self.checks.push((action.into(), resource));
        self
    }

    /// A create with `tags`: also authorized as the service's tag action.
    fn created(mut self, tag_action: &str, tags: Tags) -> Self {
        if !tags.is_empty() {
            let resource = self.checks[0].1.clone();
            self.checks.push((tag_action.to_owned(), resource));
            self.tag_keys = tags.keys().cloned().collect();
        }
        self.request_tags = tags.clone();
        self.effect = TagEffect::Create(tags);
        self
    }

    fn tagging(mut self, tags: Tags) -> Self {
        self.tag_keys = tags.keys().cloned().collect();
        self.request_tags = tags.clone();
        self.effect = TagEffect::Tag(tags);
        self
    }

    fn untagging(mut self, keys: Vec<String>) -> Self {
        self.tag_keys = keys.clone();
        self.effect = TagEffect::Untag(keys);
        self
    }
}

/// Where the ARNs live: the request's region, the account, the roles'
/// paths learnt so far.
struct Scope<'a> {
    region: &'a str,
    account: &'a str,
    role_paths: &'a BTreeMap<String, String>,
}

impl Scope<'_> {
    fn table(&self, name: &str) -> String {
        if name.starts_with("arn:") {
            return name.to_owned();
        }
        format!(
            "arn:aws:dynamodb:{}:{}:table/{name}",
            self.region, self.account
        )
    }

    fn queue_by_name(&self, name: &str) -> String {
        format!("arn:aws:sqs:{}:{}:{name}", self.region, self.account)
    }

    /// The queue of a `QueueUrl` (`http://host/<account>/<name>`).
    fn queue_by_url(&self, url: &str) -> Result<String> {
        let path = url.split_once("://").map_or(url, |(_, r)| r);
        let mut parts = path.rsplit('/');
        let name = parts.next().filter(|n| !n.is_empty());
        let account = parts.next().filter(|a| !a.is_empty());
        match (account, name) {
            (Some(account), Some(name)) => {
                Ok(format!("arn:aws:sqs:{}:{account}:{name}", self.region))
            }
            _ => bail!("{url:?} is no queue URL"),
        }
    }

    fn topic(&self, name: &str) -> String {
        format!("arn:aws:sns:{}:{}:{name}", self.region, self.account)
    }

    fn role(&self, name: &str) -> String {
        let path = self.role_paths.get(name).map_or("/", String::as_str);
        format!("arn:aws:iam::{}:role{path}{name}", self.account)
    }

    fn repository(&self, registry: Option<&str>, name: &str) -> String {
        format!(
            "arn:aws:ecr:{}:{}:repository/{name}",
            self.region,
            registry.unwrap_or(self.account)
        )
    }
}

/// Why a recorded request is no authorization.
fn ignored_reason(r: &Recorded) -> Option<String> {
    if r.path().starts_with("/moto-api") {
        return Some("moto's own API (/moto-api), no AWS request".into());
    }
    None
}

/// The credential of a SigV4 `Authorization` header: (access key, region,
/// service).
fn credential(header: &str) -> Option<(String, String, String)> {
    let start = header.find("Credential=")? + "Credential=".len();
    let scope = header[start..].split([',', ' ']).next()?;
    let mut parts = scope.split('/');
    let key = parts.next()?.to_owned();
    let _date = parts.next()?;
    let region = parts.next()?.to_owned();
    let service = parts.next()?.to_owned();
    Some((key, region, service))
}

/// The operation of a request and its parameters.
fn operation_and_params(r: &Recorded) -> Result<(String, Params)> {
    let body = String::from_utf8_lossy(&r.body).into_owned();
    if let Some(target) = r.header("x-amz-target") {
        let operation = target
            .rsplit_once('.')
            .map_or(target, |(_, op)| op)
            .to_owned();
        let params = if body.trim().is_empty() {
            Value::Object(serde_json::Map::new())
        } else {
            serde_json::from_str(&body)
                .with_context(|| format!("line {}: {target}'s body is not JSON", r.line))?
        };
        return Ok((operation, Params::Json(params)));
    }
    let mut pairs = form(r.query());
    if r.header("content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"))
        || body.contains("Action=")
    {
        pairs.extend(form(&body));
    }
    let params = Params::Query(pairs);
    let operation = params.string("Action").with_context(|| {
        format!(
            "line {}: neither X-Amz-Target nor Action= ({} {})",
            r.line, r.method, r.url
        )
    })?;
    Ok((operation, params))
}

/// What IAM authorizes one operation of `service` (the credential scope's)
/// as.
fn resolve(
    service: &str,
    operation: &str,
    params: &Params,
    scope: &Scope<'_>,
) -> Result<Operation> {
    let label = format!("{service}:{operation}");
    let op = Operation::new(label);
    let need = |name: &str| -> Result<String> {
        params
            .string(name)
            .with_context(|| format!("{service}:{operation} without {name}"))
    };
    let json = |name: &str| -> Option<&Value> {
        match params {
            Params::Json(v) => v.get(name),
            Params::Query(_) => None,
        }
    };
    Ok(match service {
        "dynamodb" => {
            let action = |a: &str| format!("dynamodb:{a}");
            match operation {
                "ListTables" | "DescribeLimits" | "DescribeEndpoints" => {
                    op.on(action(operation), "*")
                }
                "TagResource" => {
                    let arn = need("ResourceArn")?;
                    op.on(action(operation), arn)
                        .tagging(json_tags(json("Tags")))
                }
                "UntagResource" => {
                    let arn = need("ResourceArn")?;
                    op.on(action(operation), arn)
                        .untagging(json_strings(json("TagKeys")))
                }
                "ListTagsOfResource" => op.on(action(operation), need("ResourceArn")?),
                "CreateTable" => {
                    let table = scope.table(&need("TableName")?);
                    op.on(action(operation), table)
                        .created("dynamodb:TagResource", json_tags(json("Tags")))
                }
                "DeleteTable" => {
                    let mut op = op.on(action(operation), scope.table(&need("TableName")?));
                    op.effect = TagEffect::Delete;
                    op
                }
                "Query" | "Scan" => {
                    let table = scope.table(&need("TableName")?);
                    let resource = match params.string("IndexName") {
                        Some(index) => format!("{table}/index/{index}"),
                        None => table,
                    };
                    op.on(action(operation), resource)
                }
                // Authorized per item, as the item's own action.
                "TransactWriteItems" | "TransactGetItems" => {
                    let items = json("TransactItems")
                        .and_then(Value::as_array)
                        .with_context(|| format!("{operation} without TransactItems"))?;
                    let mut op = op;
                    for item in items {
                        let (kind, body) = item
                            .as_object()
                            .and_then(|o| o.iter().next())
                            .with_context(|| format!("{operation}: an empty item"))?;
                        let item_action = match kind.as_str() {
                            "Put" => "PutItem",
                            "Update" => "UpdateItem",
                            "Delete" => "DeleteItem",
                            "ConditionCheck" => "ConditionCheckItem",
                            "Get" => "GetItem",
                            other => bail!("{operation}: an item of kind {other}"),
                        };
                        let table = body["TableName"]
                            .as_str()
                            .with_context(|| format!("{operation}: an item without TableName"))?;
                        op = op.on(action(item_action), scope.table(table));
                    }
                    op
                }
                "BatchWriteItem" | "BatchGetItem" => {
                    let tables = json("RequestItems")
                        .and_then(Value::as_object)
                        .with_context(|| format!("{operation} without RequestItems"))?;
                    tables
                        .keys()
                        .fold(op, |op, t| op.on(action(operation), scope.table(t)))
                }
                _ => op.on(action(operation), scope.table(&need("TableName")?)),
            }
        }
        "sqs" => {
            let action = |a: &str| {
                let a = match a {
                    "SendMessageBatch" => "SendMessage",
                    "DeleteMessageBatch" => "DeleteMessage",
                    "ChangeMessageVisibilityBatch" => "ChangeMessageVisibility",
                    other => other,
                };
                format!("sqs:{a}")
            };
            // JSON: `tags`/`Tags` maps, `TagKeys`; query: `Tag.N.Key`, `TagKey.N`.
            let tags = |json_name: &str| match params {
                Params::Json(v) => json_tags(v.get(json_name)),
                Params::Query(_) => params.query_tags("Tag"),
            };
            match operation {
                "ListQueues" => op.on(action(operation), "*"),
                "CreateQueue" => op
                    .on(action(operation), scope.queue_by_name(&need("QueueName")?))
                    .created("sqs:TagQueue", tags("tags")),
                "GetQueueUrl" => op.on(action(operation), scope.queue_by_name(&need("QueueName")?)),
                _ => {
                    let queue = scope.queue_by_url(&need("QueueUrl")?)?;
                    let op = op.on(action(operation), queue);
                    match operation {
                        "TagQueue" => op.tagging(tags("Tags")),
                        "UntagQueue" => {
                            let keys = match params {
                                Params::Json(v) => json_strings(v.get("TagKeys")),
                                Params::Query(_) => params.query_list("TagKey"),
                            };
                            op.untagging(keys)
                        }
                        "DeleteQueue" => Operation {
                            effect: TagEffect::Delete,
                            ..op
                        },
                        _ => op,
                    }
                }
            }
        }
        "sns" => {
            let action = |a: &str| {
                let a = if a == "PublishBatch" { "Publish" } else { a };
                format!("sns:{a}")
            };
            match operation {
                // No resource type: IAM evaluates them against `*`.
                "GetSubscriptionAttributes"
                | "SetSubscriptionAttributes"
                | "Unsubscribe"
                | "ConfirmSubscription"
                | "ListTopics"
                | "ListSubscriptions" => op.on(action(operation), "*"),
                "CreateTopic" => op
                    .on(action(operation), scope.topic(&need("Name")?))
                    .created("sns:TagResource", params.query_tags("Tags")),
                "TagResource" => op
                    .on(action(operation), need("ResourceArn")?)
                    .tagging(params.query_tags("Tags")),
                "UntagResource" => op
                    .on(action(operation), need("ResourceArn")?)
                    .untagging(params.query_list("TagKeys")),
                "ListTagsForResource" => op.on(action(operation), need("ResourceArn")?),
                "DeleteTopic" => Operation {
                    effect: TagEffect::Delete,
                    ..op.on(action(operation), need("TopicArn")?)
                },
                _ => op.on(action(operation), need("TopicArn")?),
            }
        }
        "iam" => {
            let action = format!("iam:{operation}");
            match operation {
                "CreateRole" => {
                    let name = need("RoleName")?;
                    let path = params.string("Path").unwrap_or_else(|| "/".to_owned());
                    let arn = format!("arn:aws:iam::{}:role{path}{name}", scope.account);
                    let mut op = op
                        .on(action, arn)
                        .created("iam:TagRole", params.query_tags("Tags"));
                    op.permissions_boundary = params.string("PermissionsBoundary");
                    op.role_path = Some((name, path));
                    op
                }
                "PutRolePermissionsBoundary" => {
                    let mut op = op.on(action, scope.role(&need("RoleName")?));
                    op.permissions_boundary = params.string("PermissionsBoundary");
                    op
                }
                "TagRole" => op
                    .on(action, scope.role(&need("RoleName")?))
                    .tagging(params.query_tags("Tags")),
                "UntagRole" => op
                    .on(action, scope.role(&need("RoleName")?))
                    .untagging(params.query_list("TagKeys")),
                "DeleteRole" => Operation {
                    effect: TagEffect::Delete,
                    ..op.on(action, scope.role(&need("RoleName")?))
                },
                "ListRoles" | "ListPolicies" => op.on(action, "*"),
                _ => match params.string("RoleName") {
                    Some(name) => op.on(action, scope.role(&name)),
                    None => match params.string("PolicyArn") {
                        Some(arn) => op.on(action, arn),
                        None => bail!("iam:{operation}: no resource this parser knows"),
                    },
                },
            }
        }
        "sts" => match operation {
            "AssumeRole" => op.on("sts:AssumeRole", need("RoleArn")?),
            other => bail!("sts:{other}: no resource this parser knows"),
        },
        "ecr" | "api.ecr" => {
            let action = format!("ecr:{operation}");
            let registry = params.string("registryId");
            match operation {
                "GetAuthorizationToken" => op.on(action, "*"),
                "DescribeRepositories" => {
                    let names = json_strings(json("repositoryNames"));
                    if names.is_empty() {
                        op.on(action, "*")
                    } else {
                        names.iter().fold(op, |op, name| {
                            op.on(action.clone(), scope.repository(registry.as_deref(), name))
                        })
                    }
                }
                _ => op.on(
                    action,
                    scope.repository(registry.as_deref(), &need("repositoryName")?),
                ),
            }
        }
        // The Resource Groups Tagging API supports no resource-level
        // permissions.
        "tagging" => op.on(format!("tag:{operation}"), "*"),
        other => bail!("the service {other} ({operation}) is not one this parser knows"),
    })
}

/// One recorded request, attributed and resolved.
#[derive(Debug, Clone)]
pub struct Authorization {
    /// The role of the request's access key.
    pub principal: String,
    /// The recording line.
    pub line: usize,
    /// `service:Operation` as sent.
    pub operation: String,
    /// What IAM evaluates: one or more actions.
    pub requests: Vec<Request>,
}

/// A recording turned into authorizations.
#[derive(Debug, Clone, Default)]
pub struct Authorizations {
    pub authorized: Vec<Authorization>,
    /// Requests IAM does not authorize (or that no mapped key signed), by
    /// reason, counted.
    pub ignored: BTreeMap<String, usize>,
    /// The last tags each resource carried during the replay (a deleted
    /// resource keeps its last tags here): what a re-targeted request
    /// reads as `aws:ResourceTag`.
    pub tags: BTreeMap<String, Tags>,
}

impl Authorizations {
    /// Every request of one principal.
    pub fn of(&self, principal: &str) -> impl Iterator<Item = &Request> {
        self.authorized
            .iter()
            .filter(move |a| a.principal == principal)
            .flat_map(|a| a.requests.iter())
    }
}

/// The base table of an index ARN (`table/<t>/index/<i>`): its tags are the
/// index's `aws:ResourceTag`.
fn tagged_arn(resource: &str) -> &str {
    match resource.find("/index/") {
        Some(i) if resource.starts_with("arn:aws:dynamodb:") => &resource[..i],
        _ => resource,
    }
}

/// Turns `recording` (moto's format) into the authorizations AWS would make,
/// each attributed to the role `keys` maps its access key id to, in an
/// account (moto's: [`MOTO_ACCOUNT`]).
///
/// # Errors
/// A line that is not moto's format, or a request of a mapped principal
/// whose action or resource the parser does not know: a request it cannot
/// attribute is never silently passed.
pub fn authorizations(
    recording: &str,
    keys: &BTreeMap<String, String>,
    account: &str,
) -> Result<Authorizations> {
    let mut out = Authorizations::default();
    let mut current: BTreeMap<String, Tags> = BTreeMap::new();
    let mut role_paths: BTreeMap<String, String> = BTreeMap::new();
    let ignore = |out: &mut Authorizations, why: String| {
        *out.ignored.entry(why).or_default() += 1;
    };
    for recorded in parse_recording(recording)? {
        if let Some(why) = ignored_reason(&recorded) {
            ignore(&mut out, why);
            continue;
        }
        let Some((key, region, service)) = recorded.header("authorization").and_then(credential)
        else {
            let (operation, _) = operation_and_params(&recorded)
                .unwrap_or_else(|_| ("?".into(), Params::Query(Vec::new())));
            ignore(
                &mut out,
                format!(
                    "unsigned {operation}: no IAM authorization (sts:AssumeRoleWithWebIdentity \
                     is authorized by the role's trust, not the caller's policy)"
                ),
            );
            continue;
        };
        let (operation, params) = operation_and_params(&recorded)?;
        let Some(principal) = keys.get(&key) else {
            ignore(
                &mut out,
                format!(
                    "signed with {key}, which the map does not name (setup, not a role under test)"
                ),
            );
            continue;
        };
        if service == "sts" && operation == "GetCallerIdentity" {
            ignore(
                &mut out,
                "sts:GetCallerIdentity: allowed to every principal, no policy needed".into(),
            );
            continue;
        }
        let scope = Scope {
            region: &region,
            account,
            role_paths: &role_paths,
        };
        let op = resolve(&service, &operation, &params, &scope)
            .with_context(|| format!("recording line {}", recorded.line))?;
        let resource_tags = op
            .target
            .as_deref()
            .and_then(|t| current.get(tagged_arn(t)))
            .cloned()
            .unwrap_or_default();
        let requests = op
            .checks
            .iter()
            .map(|(action, resource)| Request {
                action: action.clone(),
                resource: resource.clone(),
                resource_tags: if resource == "*" {
                    Tags::new()
                } else {
                    resource_tags.clone()
                },
                request_tags: op.request_tags.clone(),
                tag_keys: op.tag_keys.clone(),
                permissions_boundary: op.permissions_boundary.clone(),
                what: format!(
                    "line {}: {} as {action} on {resource}",
                    recorded.line, op.label
                ),
            })
            .collect();
        // The replay: what this call leaves on its resource.
        if let Some(target) = op.target.as_deref().map(tagged_arn) {
            match &op.effect {
                TagEffect::None => {}
                TagEffect::Create(tags) => {
                    current
                        .entry(target.to_owned())
                        .or_insert_with(|| tags.clone());
                }
                TagEffect::Tag(tags) => current
                    .entry(target.to_owned())
                    .or_default()
                    .extend(tags.clone()),
                TagEffect::Untag(keys) => {
                    if let Some(tags) = current.get_mut(target) {
                        for key in keys {
                            tags.remove(key);
                        }
                    }
                }
                TagEffect::Delete => {
                    current.remove(target);
                }
            }
            if let Some(tags) = current.get(target) {
                out.tags.insert(target.to_owned(), tags.clone());
            }
        }
        if let Some((name, path)) = op.role_path {
            role_paths.insert(name, path);
        }
        out.authorized.push(Authorization {
            principal: principal.clone(),
            line: recorded.line,
            operation: op.label,
            requests,
        });
    }
    Ok(out)
}

/// One role's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleReport {
    /// Recorded AWS requests signed with the role's keys.
    pub requests: usize,
    /// IAM authorizations they make (a create with tags is two, a
    /// transaction one per item).
    pub authorizations: usize,
    /// Distinct IAM actions.
    pub actions: BTreeSet<String>,
    pub allowed: usize,
    /// What was denied, one line each.
    pub denied: Vec<String>,
}

/// The evaluation of a recording, per role.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub roles: BTreeMap<String, RoleReport>,
    /// Recorded requests left out, by reason.
    pub ignored: BTreeMap<String, usize>,
}

impl Report {
    /// Every denial, of every role.
    pub fn denied(&self) -> Vec<String> {
        self.roles
            .iter()
            .flat_map(|(role, r)| r.denied.iter().map(move |d| format!("{role}: {d}")))
            .collect()
    }

    /// Fails naming each denied request.
    ///
    /// # Errors
    /// When any request was denied.
    pub fn ensure_all_allowed(&self) -> Result<()> {
        let denied = self.denied();
        ensure!(
            denied.is_empty(),
            "{} recorded request(s) the rendered policies deny:\n{}\n\n{self}",
            denied.len(),
            denied.join("\n")
        );
        Ok(())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.roles.keys().map(String::len).max().unwrap_or(0).max(4);
        writeln!(
            f,
            "{:<width$} {:>8} {:>14} {:>8} {:>8} {:>7}",
            "role", "requests", "authorizations", "actions", "allowed", "denied"
        )?;
        for (role, r) in &self.roles {
            writeln!(
                f,
                "{role:<width$} {:>8} {:>14} {:>8} {:>8} {:>7}",
                r.requests,
                r.authorizations,
                r.actions.len(),
                r.allowed,
                r.denied.len()
            )?;
        }
        for (why, n) in &self.ignored {
            writeln!(f, "ignored {n:>5}: {why}")?;
        }
        Ok(())
    }
}

fn describe(request: &Request) -> String {
    format!(
        "{} (resource tags {:?}, request tags {:?}, tag keys {:?}, boundary {:?})",
        request.what,
        request.resource_tags,
        request.request_tags,
        request.tag_keys,
        request.permissions_boundary
    )
}

/// Evaluates every authorization against its principal's policies.
///
/// A principal with no entry in `policies` has every request denied.
///
/// # Errors
/// When a policy uses what the evaluator does not implement.
pub fn evaluate(
    authorizations: &Authorizations,
    policies: &BTreeMap<String, Principal>,
) -> Result<Report> {
    let mut report = Report {
        ignored: authorizations.ignored.clone(),
        ..Report::default()
    };
    for authorization in &authorizations.authorized {
        let role = report
            .roles
            .entry(authorization.principal.clone())
            .or_default();
        role.requests += 1;
        for request in &authorization.requests {
            role.authorizations += 1;
            role.actions.insert(request.action.clone());
            let decision = match policies.get(&authorization.principal) {
                Some(principal) => principal.decide(request)?,
                None => Decision::ImplicitDeny,
            };
            if decision == Decision::Allowed {
                role.allowed += 1;
            } else {
                role.denied
                    .push(format!("{decision:?}: {}", describe(request)));
            }
        }
    }
    Ok(report)
}

/// Requests that must each be denied: the ones `principal` allows, each
/// described (empty: all denied).
///
/// # Errors
/// When a policy uses what the evaluator does not implement.
pub fn allowed_among(principal: &Principal, requests: &[Request]) -> Result<Vec<String>> {
    let mut allowed = Vec::new();
    for request in requests {
        if principal.decide(request)? == Decision::Allowed {
            allowed.push(describe(request));
        }
    }
    Ok(allowed)
}

/// Evaluates a whole recorded run: the entry point for a suite that ran
/// with moto's recorder.
///
/// - `recording`: moto's recording (`GET /moto-api/recorder/download-recording`,
///   or the file `MOTO_RECORDER_FILEPATH` names), as text;
/// - `keys`: access key id -> role, for every key whose requests are under
///   test (requests signed with another key are counted as ignored);
/// - `policies`: role -> the rendered documents its requests are evaluated
///   against (identity policies and boundary, `make iam-policies`'
///   documents with the run's names);
/// - the account the ARNs are in: moto's, [`MOTO_ACCOUNT`].
///
/// Returns the [`Report`] (per role: requests, authorizations, distinct
/// actions, allowed, denied); fails when any request is denied, naming
/// each, or when the recording holds a request of a mapped key the parser
/// cannot resolve.
///
/// # Errors
/// As above.
pub fn check_recording(
    recording: &str,
    keys: &BTreeMap<String, String>,
    policies: &BTreeMap<String, Principal>,
) -> Result<Report> {
    let authorizations = authorizations(recording, keys, MOTO_ACCOUNT)?;
    let report = evaluate(&authorizations, policies)?;
    report.ensure_all_allowed()?;
    Ok(report)
}

/// [`check_recording`] of a recording saved to a file.
///
/// # Errors
/// As [`check_recording`], and when the file cannot be read.
pub fn check_recording_file(
    path: &Path,
    keys: &BTreeMap<String, String>,
    policies: &BTreeMap<String, Principal>,
) -> Result<Report> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the recording {}", path.display()))?;
    check_recording(&text, keys, policies)
}

/// The boundary file of [`check_recording_dir`]: every worker role's.
pub const WORKER_BOUNDARY_FILE: &str = "iam/worker-boundary.json";

/// [`check_recording`] of a run saved as a directory (the enforced-IAM
/// suite's `<target dir>/iam-enforced/`):
///
/// - `recording.jsonl`: moto's recording;
/// - `keys.json`: `{access key id: role}`;
/// - `iam/<role>.json`: each role's identity policy, as `make
///   iam-policies` names the documents (`operator`,
///   `worker-<namespace>-<name>`), and `iam/worker-boundary.json`, the
///   boundary of every `worker-*` role.
///
/// # Errors
/// As [`check_recording`]; a role of the key map without its document.
pub fn check_recording_dir(dir: &Path) -> Result<Report> {
    let read = |file: &str| -> Result<String> {
        std::fs::read_to_string(dir.join(file))
            .with_context(|| format!("reading {}", dir.join(file).display()))
    };
    let keys: BTreeMap<String, String> = serde_json::from_str(&read("keys.json")?)
        .with_context(|| format!("{}/keys.json: not a map of keys to roles", dir.display()))?;
    let boundary: Option<Value> = match read(WORKER_BOUNDARY_FILE) {
        Ok(text) => Some(serde_json::from_str(&text)?),
        Err(_) => None,
    };
    let mut policies = BTreeMap::new();
    for role in keys.values().collect::<BTreeSet<_>>() {
        let document: Value = serde_json::from_str(&read(&format!("iam/{role}.json"))?)
            .with_context(|| format!("iam/{role}.json is not JSON"))?;
        let worker = role.starts_with("worker-");
        ensure!(
            !worker || boundary.is_some(),
            "{role}: a worker role, but {WORKER_BOUNDARY_FILE} is missing"
        );
        policies.insert(
            role.clone(),
            Principal {
                identity: vec![document],
                boundary: if worker { boundary.clone() } else { None },
            },
        );
    }
    check_recording(&read("recording.jsonl")?, &keys, &policies)
}

#[cfg(test)]
mod tests;
