//! AWS provisioning against moto: `movieapp_operator::provision` is called
//! directly, the way the reconciler calls it, and AWS is checked with the
//! SDK directly — never through what provisioning reports about itself.
//!
//! Needs the local environment (`make env-up`, then `. .localenv/env.sh`);
//! without it every test fails, none is skipped.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use aws_sdk_dynamodb::types as ddb;
use aws_sdk_sqs::types::QueueAttributeName;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use movieapp_operator::aws::tags::{self, Owner};
use movieapp_operator::aws::{Aws, AwsClients};
use movieapp_operator::crd::{
    BillingMode, MovieAppSpec, MovieAppStatus, SubscriptionProtocol, SubscriptionSpec,
};
use movieapp_operator::metrics::Metrics;
use movieapp_operator::naming::{AppId, component};
use movieapp_operator::provision::role::WorkerRoles;
use movieapp_operator::provision::{self, Cleanup, Notice, Provisioned, Target, iam};
use movieapp_operator::reason::Reason;
use movieapp_tests::{LocalEnv, unique_name};
use serde_json::{Value, json};

/// Passes allowed for a change to converge (moto applies changes at once,
/// so one or two are expected).
const MAX_PASSES: usize = 8;

// ------------------------------------------------------------------ fixture

/// One MovieApp as the reconciler would see it: spec, uid, annotations and
/// the status written after each pass.
struct App {
    namespace: String,
    name: String,
    owner: Owner,
    spec: MovieAppSpec,
    adopt: bool,
    /// The operator makes the worker's IAM role (`None`: it makes none).
    worker_roles: Option<WorkerRoles>,
    generation: i64,
    status: Option<MovieAppStatus>,
    metrics: Metrics,
    clients: Arc<AwsClients>,
    sdk: Sdk,
}

/// Plain SDK clients for checking AWS, independent of the operator's.
struct Sdk {
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    sns: aws_sdk_sns::Client,
}

fn default_spec() -> Result<MovieAppSpec> {
    // Every field has a default, exactly as the API server applies them.
    Ok(serde_json::from_value(json!({}))?)
}

impl App {
    async fn new(prefix: &str) -> Result<Self> {
        let env = LocalEnv::get();
        let metrics = Metrics::new();
        let aws = Aws::new(Some(&env.aws_endpoint_url), 50, metrics.clone()).await;
        let config = env.aws().await;
        let region = config
            .region()
            .map(ToString::to_string)
            .context("AWS_REGION is not set")?;
        let namespace = unique_name(&format!("{prefix}-ns"));
        let name = unique_name("app");
        Ok(Self {
            owner: Owner {
                uid: unique_name("uid"),
                namespace: namespace.clone(),
                name: name.clone(),
                cluster: "default".to_owned(),
            },
            namespace,
            name,
            spec: default_spec()?,
            adopt: false,
            worker_roles: None,
            generation: 1,
            status: None,
            metrics,
            clients: aws.clients(&region),
            sdk: Sdk {
                dynamodb: aws_sdk_dynamodb::Client::new(&config),
                sqs: aws_sdk_sqs::Client::new(&config),
                sns: aws_sdk_sns::Client::new(&config),
            },
        })
    }

    /// The same namespace and name, another object (a new uid), no status.
    async fn recreated(&self) -> Result<Self> {
        let mut app = Self::new("unused").await?;
        app.namespace = self.namespace.clone();
        app.name = self.name.clone();
        app.owner.namespace = self.namespace.clone();
        app.owner.name = self.name.clone();
        Ok(app)
    }

    fn id(&self) -> AppId<'_> {
        AppId {
            namespace: &self.namespace,
            name: &self.name,
        }
    }

    fn target(&self) -> Target<'_> {
        Target {
            aws: &self.clients,
            owner: &self.owner,
            id: self.id(),
            spec: &self.spec,
            adopt: self.adopt,
            previous: self.status.as_ref(),
            generation: Some(self.generation),
            mode: provision::Mode::Manage,
            tags: None,
            light: None,
            worker_roles: self.worker_roles.as_ref(),
        }
    }

    /// The physical name of a table: the spec's explicit one, else the operator's.
    fn table(&self, component: &str) -> String {
        self.target().names().table(component).to_owned()
    }

    fn jobs_queue(&self) -> String {
        self.target().names().jobs_queue
    }

    fn dead_letter_queue(&self) -> String {
        self.target().names().dead_letter_queue
    }

    /// Edits the spec as `kubectl apply` would: a new generation.
    fn edit(&mut self, change: impl FnOnce(&mut MovieAppSpec)) {
        change(&mut self.spec);
        self.generation += 1;
    }

    /// One provisioning pass, then the status the reconciler would write
    /// (its parts, and Ready when every part is).
    async fn pass(&mut self) -> Provisioned {
        let provisioned = provision::provision(&self.target()).await;
        let previous = self.status.take().unwrap_or_default();
        let ready = Condition {
            type_: "Ready".into(),
            status: if all_ready(&provisioned) {
                "True"
            } else {
                "False"
            }
            .into(),
            observed_generation: Some(self.generation),
            reason: "Test".into(),
            message: String::new(),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::now()),
        };
        self.status = Some(MovieAppStatus {
            observed_generation: Some(self.generation),
            conditions: vec![ready],
            tables: provisioned.tables.value.clone().unwrap_or(previous.tables),
            queue: provisioned.queue.value.clone().or(previous.queue),
            notifications: provisioned
                .notifications
                .value
                .clone()
                .or(previous.notifications),
            worker_role: provisioned
                .role
                .as_ref()
                .and_then(|r| r.value.clone())
                .or(previous.worker_role),
            ..previous
        });
        provisioned
    }

    /// Passes until every part is ready; the notices of all passes.
    async fn converge(&mut self) -> Result<Vec<Notice>> {
        let mut notices = Vec::new();
        for _ in 0..MAX_PASSES {
            let provisioned = self.pass().await;
            notices.extend(all_notices(&provisioned));
            if all_ready(&provisioned) {
                return Ok(notices);
            }
            if let Some(blocked) = blocked(&provisioned) {
                bail!("provisioning is blocked: {blocked:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let last = self.pass().await;
        bail!("not ready after {MAX_PASSES} passes: {last:#?}")
    }

    /// Converges, then checks that the next pass writes nothing: a change
    /// that settles in one place and unsettles another shows up here.
    async fn converge_and_settle(&mut self) -> Result<Vec<Notice>> {
        let notices = self.converge().await?;
        let before = self.mutating_calls()?;
        let provisioned = self.pass().await;
        let writes = calls_since(&before, &self.mutating_calls()?);
        ensure!(
            writes.is_empty() && all_notices(&provisioned).is_empty(),
            "the pass after converging wrote {writes:?}: {:#?}",
            all_notices(&provisioned)
        );
        Ok(notices)
    }

    /// Deletes everything (deletionPolicy: Delete) and waits until AWS
    /// reports it gone.
    async fn delete(&self) -> Result<usize> {
        for attempt in 1..=20 {
            match provision::delete(&self.target()).await? {
                Cleanup::Done => return Ok(attempt),
                Cleanup::Waiting(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        bail!("deletion did not finish")
    }

    /// Mutating AWS calls so far, by `service:Operation`.
    fn mutating_calls(&self) -> Result<BTreeMap<String, u64>> {
        Ok(aws_calls(&self.metrics)?
            .into_iter()
            .filter(|(call, _)| is_mutating(call))
            .collect())
    }

    fn total_calls(&self) -> Result<u64> {
        Ok(aws_calls(&self.metrics)?.values().sum())
    }
}

/// Runs `body`, then deletes whatever `app` made, whatever `body` returned.
async fn with_cleanup<F, Fut>(app: App, body: F) -> Result<()>
where
    F: FnOnce(App) -> Fut,
    Fut: std::future::Future<Output = (App, Result<()>)>,
{
    let (app, result) = body(app).await;
    let cleaned = app.delete().await;
    result?;
    cleaned.map(|_| ())
}

/// `movieapp_aws_requests_total` by `service:Operation` (all outcomes).
fn aws_calls(metrics: &Metrics) -> Result<BTreeMap<String, u64>> {
    let text = metrics.render()?;
    let mut calls = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("movieapp_aws_requests_total{") else {
            continue;
        };
        let (labels, count) = rest.rsplit_once("} ").context("malformed metric line")?;
        let label = |name: &str| -> Result<String> {
            let start = labels
                .find(&format!("{name}=\""))
                .with_context(|| format!("no {name} in {line}"))?
                + name.len()
                + 2;
            let end = labels[start..].find('"').context("unterminated label")? + start;
            Ok(labels[start..end].to_owned())
        };
        let key = format!("{}:{}", label("service")?, label("operation")?);
        *calls.entry(key).or_default() += count.trim().parse::<u64>()?;
    }
    Ok(calls)
}

fn is_mutating(call: &str) -> bool {
    let operation = call.split(':').nth(1).unwrap_or(call);
    !["Describe", "Get", "List", "BatchGet"]
        .iter()
        .any(|read| operation.starts_with(read))
}

fn calls_since(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(call, n)| {
            let delta = n - before.get(call).copied().unwrap_or(0);
            (delta > 0).then(|| (call.clone(), delta))
        })
        .collect()
}

fn all_ready(p: &Provisioned) -> bool {
    p.tables.state.is_ready()
        && p.queue.state.is_ready()
        && p.notifications.state.is_ready()
        && p.role.as_ref().is_none_or(|r| r.state.is_ready())
}

fn blocked(p: &Provisioned) -> Option<&movieapp_operator::conditions::PartState> {
    [&p.tables.state, &p.queue.state, &p.notifications.state]
        .into_iter()
        .chain(p.role.as_ref().map(|r| &r.state))
        .find(|s| s.is_blocked())
}

fn all_notices(p: &Provisioned) -> Vec<Notice> {
    p.tables
        .notices
        .iter()
        .chain(&p.queue.notices)
        .chain(&p.notifications.notices)
        .chain(p.role.iter().flat_map(|r| &r.notices))
        .cloned()
        .collect()
}

fn count_reason(notices: &[Notice], reason: Reason) -> usize {
    notices.iter().filter(|n| n.reason == reason).count()
}

// ------------------------------------------------------------------ AWS checks

async fn describe_table(sdk: &Sdk, name: &str) -> Result<Option<ddb::TableDescription>> {
    movieapp_tests::inventory::describe_table(&sdk.dynamodb, name).await
}

async fn table(sdk: &Sdk, name: &str) -> Result<ddb::TableDescription> {
    describe_table(sdk, name)
        .await?
        .with_context(|| format!("table {name} does not exist"))
}

async fn table_tags(sdk: &Sdk, arn: &str) -> Result<BTreeMap<String, String>> {
    let tags = sdk
        .dynamodb
        .list_tags_of_resource()
        .resource_arn(arn)
        .send()
        .await?
        .tags
        .unwrap_or_default();
    Ok(tags.into_iter().map(|t| (t.key, t.value)).collect())
}

async fn point_in_time_recovery(sdk: &Sdk, name: &str) -> Result<bool> {
    let status = sdk
        .dynamodb
        .describe_continuous_backups()
        .table_name(name)
        .send()
        .await?
        .continuous_backups_description
        .and_then(|d| d.point_in_time_recovery_description)
        .and_then(|d| d.point_in_time_recovery_status);
    Ok(status == Some(ddb::PointInTimeRecoveryStatus::Enabled))
}

fn billing(table: &ddb::TableDescription) -> Option<ddb::BillingMode> {
    table
        .billing_mode_summary()
        .and_then(|b| b.billing_mode.clone())
}

async fn queue_url(sdk: &Sdk, name: &str) -> Result<Option<String>> {
    match sdk.sqs.get_queue_url().queue_name(name).send().await {
        Ok(output) => Ok(output.queue_url),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_queue_does_not_exist()) =>
        {
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

async fn queue_attributes(sdk: &Sdk, url: &str) -> Result<HashMap<QueueAttributeName, String>> {
    Ok(sdk
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await?
        .attributes
        .unwrap_or_default())
}

fn attribute(attributes: &HashMap<QueueAttributeName, String>, name: QueueAttributeName) -> &str {
    attributes
        .get(&name)
        .map(String::as_str)
        .unwrap_or_default()
}

async fn queue_tags(sdk: &Sdk, url: &str) -> Result<BTreeMap<String, String>> {
    let tags = sdk.sqs.list_queue_tags().queue_url(url).send().await?.tags;
    Ok(tags.unwrap_or_default().into_iter().collect())
}

async fn topic_tags(sdk: &Sdk, arn: &str) -> Result<Option<BTreeMap<String, String>>> {
    match sdk
        .sns
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
    {
        Ok(output) => Ok(Some(
            output
                .tags
                .unwrap_or_default()
                .into_iter()
                .map(|t| (t.key, t.value))
                .collect(),
        )),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

/// Topics of the account with this name (ARNs end with `:<name>`).
async fn topics_named(sdk: &Sdk, name: &str) -> Result<Vec<String>> {
    let topics = sdk
        .sns
        .list_topics()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await?;
    Ok(topics
        .into_iter()
        .filter_map(|t| t.topic_arn)
        .filter(|arn| arn.rsplit(':').next() == Some(name))
        .collect())
}

/// `(protocol, endpoint, arn)` of the topic's subscriptions, sorted.
async fn subscriptions(sdk: &Sdk, topic_arn: &str) -> Result<Vec<(String, String, String)>> {
    let listed = sdk
        .sns
        .list_subscriptions_by_topic()
        .topic_arn(topic_arn)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await?;
    let mut out: Vec<(String, String, String)> = listed
        .into_iter()
        .map(|s| {
            (
                s.protocol.unwrap_or_default(),
                s.endpoint.unwrap_or_default(),
                s.subscription_arn.unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    Ok(out)
}

fn has_ownership_tags(app: &App, tags: &BTreeMap<String, String>) -> bool {
    app.owner.tags().iter().all(|(k, v)| tags.get(k) == Some(v))
}

fn status(app: &App) -> Result<&MovieAppStatus> {
    app.status.as_ref().context("no status written yet")
}

fn topic_arn(app: &App) -> Result<String> {
    Ok(status(app)?
        .notifications
        .as_ref()
        .context("no notifications in status")?
        .topic_arn
        .clone())
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn create_provisions_everything_and_a_steady_resync_only_reads() -> Result<()> {
    let mut app = App::new("create").await?;
    app.spec.queue.visibility_timeout_seconds = 30;
    app.spec.queue.max_receive_count = 2;
    app.spec.notifications.subscriptions = vec![SubscriptionSpec {
        protocol: SubscriptionProtocol::Email,
        endpoint: "ops@example.com".into(),
    }];
    with_cleanup(app, |mut app| async move {
        let result = create_and_resync(&mut app).await;
        (app, result)
    })
    .await
}

async fn create_and_resync(app: &mut App) -> Result<()> {
    let notices = app.converge().await?;
    let calls_to_create = app.total_calls()?;
    // 3 tables, 2 queues, 1 topic, 2 subscriptions.
    ensure!(
        count_reason(&notices, Reason::Created) == 8,
        "notices: {notices:#?}"
    );
    // Settings made once a new table is active are part of making it, not
    // drift: no DriftRepaired for a MovieApp that was never Ready.
    ensure!(
        count_reason(&notices, Reason::DriftRepaired) == 0
            && count_reason(&notices, Reason::Updated) > 0,
        "notices: {notices:#?}"
    );

    check_tables(app).await?;
    let (jobs_url, dead_letter_url) = check_queues(app).await?;
    check_topic(app).await?;
    check_delivery(app, &jobs_url, &dead_letter_url).await?;

    // Three resyncs of an unchanged MovieApp: reads only, nothing to report.
    let before = aws_calls(&app.metrics)?;
    for _ in 0..3 {
        let provisioned = app.pass().await;
        ensure!(all_ready(&provisioned), "not ready: {provisioned:#?}");
        ensure!(all_notices(&provisioned).is_empty(), "{provisioned:#?}");
    }
    let after = aws_calls(&app.metrics)?;
    let resync = calls_since(&before, &after);
    let writes: BTreeMap<&String, &u64> = resync.iter().filter(|(c, _)| is_mutating(c)).collect();
    ensure!(writes.is_empty(), "a steady resync wrote: {writes:?}");
    let per_pass = resync.values().sum::<u64>() / 3;
    eprintln!(
        "AWS calls: {calls_to_create} to create (all passes), {per_pass} per steady pass: {resync:?}"
    );

    // Every call the operator made is one the documented IAM policy grants.
    for call in after.keys() {
        let (service, operation) = call.split_once(':').context("call label")?;
        ensure!(
            iam::is_listed(service, operation),
            "{call} is not declared in movieapp_model::iam for the operator"
        );
    }
    Ok(())
}

async fn check_tables(app: &App) -> Result<()> {
    for model in movieapp_model::TABLES {
        let name = app.table(model.component);
        let table = table(&app.sdk, &name).await?;
        let key_names: Vec<(&str, &ddb::KeyType)> = table
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name.as_str(), &k.key_type))
            .collect();
        ensure!(
            key_names.contains(&(model.partition_key.name, &ddb::KeyType::Hash)),
            "{name}: {key_names:?}"
        );
        if let Some(sort) = model.sort_key {
            ensure!(key_names.contains(&(sort.name, &ddb::KeyType::Range)));
        }
        for attr in model.key_attributes() {
            let declared = table
                .attribute_definitions()
                .iter()
                .find(|a| a.attribute_name == attr.name)
                .with_context(|| format!("{name}: {} not declared", attr.name))?;
            ensure!(declared.attribute_type.as_str() == attr.kind.code());
        }
        let index_names: Vec<&str> = table
            .global_secondary_indexes()
            .iter()
            .filter_map(|i| i.index_name.as_deref())
            .collect();
        let declared: Vec<&str> = model.indexes.iter().map(|i| i.name).collect();
        ensure!(index_names == declared, "{name}: indexes {index_names:?}");
        for index in table.global_secondary_indexes() {
            ensure!(
                index
                    .projection
                    .as_ref()
                    .and_then(|p| p.projection_type.clone())
                    == Some(ddb::ProjectionType::All)
            );
        }
        ensure!(billing(&table) == Some(ddb::BillingMode::PayPerRequest));
        ensure!(table.sse_description().is_none(), "AWS owned key expected");
        ensure!(
            point_in_time_recovery(&app.sdk, &name).await?,
            "{name}: PITR off"
        );

        let ttl = app
            .sdk
            .dynamodb
            .describe_time_to_live()
            .table_name(&name)
            .send()
            .await?
            .time_to_live_description
            .context("no TTL description")?;
        match model.ttl_attribute {
            Some(attribute) => {
                ensure!(ttl.time_to_live_status == Some(ddb::TimeToLiveStatus::Enabled));
                ensure!(ttl.attribute_name.as_deref() == Some(attribute));
            }
            None => ensure!(ttl.time_to_live_status != Some(ddb::TimeToLiveStatus::Enabled)),
        }
        let arn = table.table_arn.as_deref().context("no ARN")?;
        let tags = table_tags(&app.sdk, arn).await?;
        ensure!(has_ownership_tags(app, &tags), "{name}: tags {tags:?}");
    }
    Ok(())
}

async fn check_queues(app: &App) -> Result<(String, String)> {
    let jobs_url = queue_url(&app.sdk, &app.jobs_queue())
        .await?
        .context("no jobs queue")?;
    let dead_letter_url = queue_url(&app.sdk, &app.dead_letter_queue())
        .await?
        .context("no dead-letter queue")?;
    let jobs = queue_attributes(&app.sdk, &jobs_url).await?;
    let dead_letter = queue_attributes(&app.sdk, &dead_letter_url).await?;
    let dead_letter_arn = attribute(&dead_letter, QueueAttributeName::QueueArn);

    ensure!(attribute(&jobs, QueueAttributeName::VisibilityTimeout) == "30");
    for attributes in [&jobs, &dead_letter] {
        ensure!(attribute(attributes, QueueAttributeName::MessageRetentionPeriod) == "345600");
    }
    let redrive: Value = serde_json::from_str(attribute(&jobs, QueueAttributeName::RedrivePolicy))?;
    ensure!(
        redrive["deadLetterTargetArn"] == dead_letter_arn,
        "{redrive}"
    );
    ensure!(
        redrive["maxReceiveCount"] == json!(2) || redrive["maxReceiveCount"] == json!("2"),
        "{redrive}"
    );

    let policy: Value = serde_json::from_str(attribute(&jobs, QueueAttributeName::Policy))?;
    let statements = match &policy["Statement"] {
        Value::Array(items) => items.clone(),
        single => vec![single.clone()],
    };
    ensure!(statements.len() == 1, "{policy}");
    let statement = &statements[0];
    ensure!(statement["Effect"] == "Allow");
    ensure!(
        statement["Principal"]["Service"] == "sns.amazonaws.com",
        "{policy}"
    );
    ensure!(statement["Action"] == "sqs:SendMessage", "{policy}");
    ensure!(statement["Resource"] == attribute(&jobs, QueueAttributeName::QueueArn));
    ensure!(statement["Condition"]["ArnEquals"]["aws:SourceArn"] == topic_arn(app)?.as_str());

    for url in [&jobs_url, &dead_letter_url] {
        let tags = queue_tags(&app.sdk, url).await?;
        ensure!(has_ownership_tags(app, &tags), "{url}: tags {tags:?}");
    }
    Ok((jobs_url, dead_letter_url))
}

async fn check_topic(app: &App) -> Result<()> {
    let topic = topic_arn(app)?;
    ensure!(topic.ends_with(&format!(":{}", app.id().topic_name())));
    let tags = topic_tags(&app.sdk, &topic).await?.context("no topic")?;
    ensure!(has_ownership_tags(app, &tags), "topic tags {tags:?}");

    let jobs_url = queue_url(&app.sdk, &app.jobs_queue())
        .await?
        .context("no queue")?;
    let jobs_arn =
        queue_attributes(&app.sdk, &jobs_url).await?[&QueueAttributeName::QueueArn].clone();
    let listed = subscriptions(&app.sdk, &topic).await?;
    let endpoints: Vec<(&str, &str)> = listed
        .iter()
        .map(|(p, e, _)| (p.as_str(), e.as_str()))
        .collect();
    ensure!(
        endpoints == [("email", "ops@example.com"), ("sqs", jobs_arn.as_str())],
        "{listed:?}"
    );
    let (_, _, jobs_subscription) = listed.iter().find(|(p, _, _)| p == "sqs").context("sqs")?;
    let attributes = app
        .sdk
        .sns
        .get_subscription_attributes()
        .subscription_arn(jobs_subscription)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    ensure!(
        attributes
            .get("RawMessageDelivery")
            .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        "{attributes:?}"
    );
    Ok(())
}

async fn receive(sdk: &Sdk, url: &str) -> Result<Option<aws_sdk_sqs::types::Message>> {
    let received = sdk
        .sqs
        .receive_message()
        .queue_url(url)
        .visibility_timeout(0)
        .wait_time_seconds(1)
        .send()
        .await?;
    Ok(received.messages.unwrap_or_default().into_iter().next())
}

async fn check_delivery(app: &App, jobs_url: &str, dead_letter_url: &str) -> Result<()> {
    // Published to the topic → in the jobs queue, body as published (raw).
    let body = r#"{"type":"warm-popular","pages":1}"#;
    app.sdk
        .sns
        .publish()
        .topic_arn(topic_arn(app)?)
        .message(body)
        .send()
        .await?;
    let message = receive(&app.sdk, jobs_url)
        .await?
        .context("nothing delivered")?;
    ensure!(message.body.as_deref() == Some(body), "{message:?}");
    app.sdk
        .sqs
        .delete_message()
        .queue_url(jobs_url)
        .receipt_handle(message.receipt_handle.unwrap_or_default())
        .send()
        .await?;

    // Received maxReceiveCount (2) times without being deleted → dead-letter queue.
    let poison = "poison-pill";
    app.sdk
        .sqs
        .send_message()
        .queue_url(jobs_url)
        .message_body(poison)
        .send()
        .await?;
    let mut receives = 0;
    while receive(&app.sdk, jobs_url).await?.is_some() {
        receives += 1;
        ensure!(
            receives <= 5,
            "the message never moved to the dead-letter queue"
        );
    }
    ensure!(receives == 2, "received {receives} times before moving");
    let dead = receive(&app.sdk, dead_letter_url)
        .await?
        .context("the dead-letter queue is empty")?;
    ensure!(dead.body.as_deref() == Some(poison));
    Ok(())
}

#[tokio::test]
async fn drift_is_repaired_and_an_equivalent_policy_is_left_alone() -> Result<()> {
    let app = App::new("drift").await?;
    with_cleanup(app, |mut app| async move {
        let result = drift(&mut app).await;
        (app, result)
    })
    .await
}

async fn drift(app: &mut App) -> Result<()> {
    app.converge().await?;
    let jobs_url = queue_url(&app.sdk, &app.jobs_queue())
        .await?
        .context("no queue")?;

    // Visibility timeout changed out of band → restored at the next resync.
    app.sdk
        .sqs
        .set_queue_attributes()
        .queue_url(&jobs_url)
        .attributes(QueueAttributeName::VisibilityTimeout, "5")
        .send()
        .await?;
    let provisioned = app.pass().await;
    ensure!(all_ready(&provisioned), "{provisioned:#?}");
    let notices = all_notices(&provisioned);
    ensure!(
        notices
            .iter()
            .any(|n| n.reason == Reason::DriftRepaired
                && n.message.contains("VisibilityTimeout 5 → 60")),
        "{notices:#?}"
    );
    let attributes = queue_attributes(&app.sdk, &jobs_url).await?;
    ensure!(attribute(&attributes, QueueAttributeName::VisibilityTimeout) == "60");
    ensure!(
        !attribute(&attributes, QueueAttributeName::Policy).is_empty(),
        "policy lost"
    );

    // The same policy, re-ordered and re-shaped → no write at all.
    let policy: Value = serde_json::from_str(attribute(&attributes, QueueAttributeName::Policy))?;
    let statement = &policy["Statement"][0];
    let equivalent = json!({
        "Statement": {
            "Condition": statement["Condition"],
            "Resource": [statement["Resource"]],
            "Action": ["sqs:SendMessage"],
            "Principal": { "Service": ["sns.amazonaws.com"] },
            "Effect": "Allow",
            "Sid": "relabelled"
        },
        "Version": "2012-10-17"
    })
    .to_string();
    app.sdk
        .sqs
        .set_queue_attributes()
        .queue_url(&jobs_url)
        .attributes(QueueAttributeName::Policy, &equivalent)
        .send()
        .await?;
    let before = app.mutating_calls()?;
    let provisioned = app.pass().await;
    ensure!(
        all_ready(&provisioned) && all_notices(&provisioned).is_empty(),
        "{provisioned:#?}"
    );
    let writes = calls_since(&before, &app.mutating_calls()?);
    ensure!(
        writes.is_empty(),
        "an equivalent policy caused writes: {writes:?}"
    );
    let kept: Value = serde_json::from_str(attribute(
        &queue_attributes(&app.sdk, &jobs_url).await?,
        QueueAttributeName::Policy,
    ))?;
    ensure!(
        kept["Statement"]["Sid"] == "relabelled",
        "the policy was rewritten: {kept}"
    );

    // The queue deleted out of band → recreated, with an Event.
    app.sdk
        .sqs
        .delete_queue()
        .queue_url(&jobs_url)
        .send()
        .await?;
    let notices = app.converge().await?;
    ensure!(
        notices
            .iter()
            .any(|n| n.reason == Reason::Recreated && n.message.contains(&app.jobs_queue())),
        "{notices:#?}"
    );
    let url = queue_url(&app.sdk, &app.jobs_queue())
        .await?
        .context("not recreated")?;
    let attributes = queue_attributes(&app.sdk, &url).await?;
    ensure!(attribute(&attributes, QueueAttributeName::VisibilityTimeout) == "60");
    ensure!(has_ownership_tags(app, &queue_tags(&app.sdk, &url).await?));

    // A table deleted out of band → recreated too.
    let movies = app.table("movies");
    app.sdk
        .dynamodb
        .delete_table()
        .table_name(&movies)
        .send()
        .await?;
    let notices = app.converge().await?;
    ensure!(
        notices
            .iter()
            .any(|n| n.reason == Reason::Recreated && n.message.contains(&movies)),
        "{notices:#?}"
    );
    ensure!(point_in_time_recovery(&app.sdk, &movies).await?);
    Ok(())
}

#[tokio::test]
async fn spec_changes_are_applied_and_visible_in_aws() -> Result<()> {
    let app = App::new("spec").await?;
    with_cleanup(app, |mut app| async move {
        let result = spec_changes(&mut app).await;
        (app, result)
    })
    .await
}

async fn spec_changes(app: &mut App) -> Result<()> {
    app.converge_and_settle().await?;
    let users = app.table("users");
    let watchlists = app.table("watchlists");

    // Point-in-time recovery off, then on again.
    app.edit(|s| s.database.point_in_time_recovery = false);
    let notices = app.converge_and_settle().await?;
    ensure!(count_reason(&notices, Reason::Updated) == 3, "{notices:#?}");
    ensure!(!point_in_time_recovery(&app.sdk, &users).await?);
    app.edit(|s| s.database.point_in_time_recovery = true);
    app.converge_and_settle().await?;
    ensure!(point_in_time_recovery(&app.sdk, &users).await?);

    // On-demand → provisioned (table and index capacity) → on-demand.
    app.edit(|s| {
        s.database.billing_mode = BillingMode::Provisioned;
        s.database.read_capacity_units = Some(4);
        s.database.write_capacity_units = Some(2);
    });
    app.converge_and_settle().await?;
    let table = table(&app.sdk, &watchlists).await?;
    ensure!(billing(&table) == Some(ddb::BillingMode::Provisioned));
    let throughput = table.provisioned_throughput().context("no throughput")?;
    ensure!(
        (
            throughput.read_capacity_units,
            throughput.write_capacity_units
        ) == (Some(4), Some(2))
    );
    let index = table
        .global_secondary_indexes()
        .first()
        .context("no index")?;
    let throughput = index
        .provisioned_throughput
        .as_ref()
        .context("no index throughput")?;
    ensure!(
        (
            throughput.read_capacity_units,
            throughput.write_capacity_units
        ) == (Some(4), Some(2))
    );

    app.edit(|s| {
        s.database.billing_mode = BillingMode::PayPerRequest;
        s.database.read_capacity_units = None;
        s.database.write_capacity_units = None;
    });
    app.converge_and_settle().await?;
    ensure!(billing(&table_of(app, &watchlists).await?) == Some(ddb::BillingMode::PayPerRequest));

    // Retention of both queues.
    app.edit(|s| s.queue.message_retention_seconds = 86_400);
    app.converge_and_settle().await?;
    for name in [app.jobs_queue(), app.dead_letter_queue()] {
        let url = queue_url(&app.sdk, &name).await?.context("no queue")?;
        let attributes = queue_attributes(&app.sdk, &url).await?;
        ensure!(attribute(&attributes, QueueAttributeName::MessageRetentionPeriod) == "86400");
    }

    // A subscription added, then removed.
    let extra = SubscriptionSpec {
        protocol: SubscriptionProtocol::Email,
        endpoint: "oncall@example.com".into(),
    };
    app.edit(|s| s.notifications.subscriptions.push(extra.clone()));
    app.converge_and_settle().await?;
    let topic = topic_arn(app)?;
    let has_extra = |listed: &[(String, String, String)]| {
        listed
            .iter()
            .any(|(p, e, _)| p == "email" && e == &extra.endpoint)
    };
    ensure!(has_extra(&subscriptions(&app.sdk, &topic).await?));
    app.edit(|s| s.notifications.subscriptions.clear());
    let notices = app.converge_and_settle().await?;
    ensure!(count_reason(&notices, Reason::Deleted) == 1, "{notices:#?}");
    let listed = subscriptions(&app.sdk, &topic).await?;
    ensure!(!has_extra(&listed) && listed.len() == 1, "{listed:?}");
    Ok(())
}

async fn table_of(app: &App, name: &str) -> Result<ddb::TableDescription> {
    table(&app.sdk, name).await
}

/// Creates a table with `name` and the model's keys for `model`, outside the
/// operator, with `tags`.
async fn create_table_by_hand(
    sdk: &Sdk,
    name: &str,
    model: &movieapp_model::Table,
    tags: &[(&str, &str)],
) -> Result<()> {
    let mut request = sdk
        .dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(ddb::BillingMode::Provisioned)
        .provisioned_throughput(
            ddb::ProvisionedThroughput::builder()
                .read_capacity_units(1)
                .write_capacity_units(1)
                .build()?,
        )
        .attribute_definitions(
            ddb::AttributeDefinition::builder()
                .attribute_name(model.partition_key.name)
                .attribute_type(ddb::ScalarAttributeType::S)
                .build()?,
        )
        .key_schema(
            ddb::KeySchemaElement::builder()
                .attribute_name(model.partition_key.name)
                .key_type(ddb::KeyType::Hash)
                .build()?,
        );
    for (key, value) in tags {
        request = request.tags(ddb::Tag::builder().key(*key).value(*value).build()?);
    }
    request.send().await?;
    Ok(())
}

#[tokio::test]
async fn a_table_owned_by_someone_else_is_a_name_conflict_and_left_untouched() -> Result<()> {
    let app = App::new("conflict").await?;
    let users = app.table("users");
    let foreign = [
        (tags::UID, "someone-else"),
        (tags::NAMESPACE, app.namespace.as_str()),
        (tags::NAME, app.name.as_str()),
        ("team", "data"),
    ];
    create_table_by_hand(&app.sdk, &users, &movieapp_model::USERS, &foreign).await?;
    let arn = table(&app.sdk, &users).await?.table_arn.context("arn")?;
    let tags_before = table_tags(&app.sdk, &arn).await?;
    let foreign_table = users.clone();

    let result = with_cleanup(app, |mut app| async move {
        let result = async {
            let mut last = None;
            for _ in 0..3 {
                last = Some(app.pass().await);
            }
            let provisioned = last.context("no pass")?;
            match &provisioned.tables.state {
                movieapp_operator::conditions::PartState::Blocked { reason, message } => {
                    ensure!(*reason == Reason::NameConflict, "{reason}");
                    ensure!(
                        message.contains("someone-else") && message.contains(&users),
                        "{message}"
                    );
                }
                other => bail!("expected NameConflict, got {other:?}"),
            }
            // The other parts are not held back by one conflicting table.
            ensure!(
                provisioned.queue.state.is_ready() && provisioned.notifications.state.is_ready()
            );
            let reported: Vec<&str> = provisioned
                .tables
                .value
                .iter()
                .flatten()
                .map(|t| t.component.as_str())
                .collect();
            ensure!(reported == ["movies", "watchlists"], "{reported:?}");

            // Untouched: tags, billing, point-in-time recovery.
            ensure!(table_tags(&app.sdk, &arn).await? == tags_before);
            let table = table(&app.sdk, &users).await?;
            ensure!(billing(&table) == Some(ddb::BillingMode::Provisioned));
            ensure!(!point_in_time_recovery(&app.sdk, &users).await?);

            // Deletion leaves it alone, too.
            app.delete().await?;
            ensure!(
                describe_table(&app.sdk, &users).await?.is_some(),
                "a foreign table was deleted"
            );
            ensure!(table_tags(&app.sdk, &arn).await? == tags_before);
            Ok(())
        }
        .await;
        (app, result)
    })
    .await;
    // The foreign table is not the operator's to delete: the test made it.
    let dynamodb = aws_sdk_dynamodb::Client::new(&LocalEnv::get().aws().await);
    dynamodb
        .delete_table()
        .table_name(&foreign_table)
        .send()
        .await?;
    result
}

#[tokio::test]
async fn an_untagged_table_is_adopted_only_with_the_annotation() -> Result<()> {
    let app = App::new("adopt").await?;
    let movies = app.table("movies");
    create_table_by_hand(&app.sdk, &movies, &movieapp_model::MOVIES, &[]).await?;
    with_cleanup(app, |mut app| async move {
        let result = async {
            let provisioned = app.pass().await;
            match &provisioned.tables.state {
                movieapp_operator::conditions::PartState::Blocked { reason, message } => {
                    ensure!(*reason == Reason::NameConflict);
                    ensure!(message.contains("movieapp.io/adopt: \"true\""), "{message}");
                }
                other => bail!("expected NameConflict, got {other:?}"),
            }
            let arn = table(&app.sdk, &movies).await?.table_arn.context("arn")?;
            ensure!(
                table_tags(&app.sdk, &arn).await?.is_empty(),
                "tagged without adopt"
            );

            app.adopt = true;
            let notices = app.converge().await?;
            ensure!(
                notices
                    .iter()
                    .any(|n| n.reason == Reason::Adopted && n.message.contains(&movies)),
                "{notices:#?}"
            );
            ensure!(has_ownership_tags(&app, &table_tags(&app.sdk, &arn).await?));
            // Adopted, then brought to the declared settings.
            let table = table(&app.sdk, &movies).await?;
            ensure!(billing(&table) == Some(ddb::BillingMode::PayPerRequest));
            ensure!(point_in_time_recovery(&app.sdk, &movies).await?);
            Ok(())
        }
        .await;
        (app, result)
    })
    .await
}

#[tokio::test]
async fn delete_removes_everything_and_waits_until_it_is_gone() -> Result<()> {
    let mut app = App::new("delete").await?;
    app.spec.notifications.subscriptions = vec![SubscriptionSpec {
        protocol: SubscriptionProtocol::Email,
        endpoint: "ops@example.com".into(),
    }];
    app.converge().await?;
    let topic = topic_arn(&app)?;

    let first = provision::delete(&app.target()).await?;
    ensure!(matches!(first, Cleanup::Waiting(_)), "{first:?}");
    app.delete().await?;

    for model in movieapp_model::TABLES {
        let name = app.table(model.component);
        ensure!(
            describe_table(&app.sdk, &name).await?.is_none(),
            "{name} still exists"
        );
    }
    for name in [app.jobs_queue(), app.dead_letter_queue()] {
        ensure!(
            queue_url(&app.sdk, &name).await?.is_none(),
            "{name} still exists"
        );
    }
    ensure!(
        topic_tags(&app.sdk, &topic).await?.is_none(),
        "the topic still exists"
    );
    ensure!(
        topics_named(&app.sdk, &app.id().topic_name())
            .await?
            .is_empty()
    );
    let leftover = app
        .sdk
        .sns
        .list_subscriptions()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await?
        .into_iter()
        .filter(|s| s.topic_arn.as_deref() == Some(topic.as_str()))
        .count();
    ensure!(leftover == 0, "{leftover} subscriptions left");

    // Already gone is fine.
    ensure!(provision::delete(&app.target()).await? == Cleanup::Done);
    Ok(())
}

#[tokio::test]
async fn retain_keeps_everything_tagged_and_a_new_object_can_adopt_it() -> Result<()> {
    let mut app = App::new("retain").await?;
    app.converge().await?;
    provision::retain(&app.target()).await?;

    let retained = |tags: &BTreeMap<String, String>| {
        tags.get(tags::RETAINED).map(String::as_str) == Some("true")
    };
    for model in movieapp_model::TABLES {
        let table = table(&app.sdk, &app.table(model.component)).await?;
        let tags = table_tags(&app.sdk, table.table_arn.as_deref().context("arn")?).await?;
        ensure!(
            retained(&tags) && has_ownership_tags(&app, &tags),
            "{tags:?}"
        );
    }
    for name in [app.jobs_queue(), app.dead_letter_queue()] {
        let url = queue_url(&app.sdk, &name).await?.context("queue deleted")?;
        ensure!(retained(&queue_tags(&app.sdk, &url).await?));
    }
    let topic = topic_arn(&app)?;
    ensure!(retained(
        &topic_tags(&app.sdk, &topic)
            .await?
            .context("topic deleted")?
    ));
    // Retaining twice writes nothing new.
    let before = app.mutating_calls()?;
    provision::retain(&app.target()).await?;
    ensure!(calls_since(&before, &app.mutating_calls()?).is_empty());

    // The MovieApp re-created under the same name: its data is there to adopt.
    let mut successor = app.recreated().await?;
    let provisioned = successor.pass().await;
    ensure!(
        matches!(&provisioned.tables.state, movieapp_operator::conditions::PartState::Blocked { reason: Reason::NameConflict, message } if message.contains("retained")),
        "{:?}",
        provisioned.tables.state
    );
    successor.adopt = true;
    with_cleanup(successor, |mut successor| async move {
        let result = async {
            let notices = successor.converge().await?;
            ensure!(count_reason(&notices, Reason::Adopted) == 6, "{notices:#?}");
            let url = queue_url(&successor.sdk, &successor.jobs_queue())
                .await?
                .context("queue")?;
            let tags = queue_tags(&successor.sdk, &url).await?;
            ensure!(
                has_ownership_tags(&successor, &tags) && !tags.contains_key(tags::RETAINED),
                "{tags:?}"
            );
            Ok(())
        }
        .await;
        (successor, result)
    })
    .await
}

/// Two clusters sharing an AWS account may each hold a MovieApp of the same
/// namespace and name: they are two applications. What one cluster retained
/// is never adopted by the other (`movieapp.io/cluster`), adopt or not: no
/// write, the tags as they were, and NameConflict naming both clusters.
#[tokio::test]
async fn retained_resources_of_another_cluster_are_never_adopted() -> Result<()> {
    let mut app = App::new("cluster").await?;
    app.owner.cluster = "west".to_owned();
    app.converge().await?;
    provision::retain(&app.target()).await?;
    let table_arn = table(&app.sdk, &app.table(movieapp_model::TABLES[0].component))
        .await?
        .table_arn
        .context("arn")?;
    let jobs_url = queue_url(&app.sdk, &app.jobs_queue())
        .await?
        .context("queue")?;
    let tags_before = (
        table_tags(&app.sdk, &table_arn).await?,
        queue_tags(&app.sdk, &jobs_url).await?,
    );
    ensure!(
        tags_before.0.get(tags::CLUSTER).map(String::as_str) == Some("west"),
        "{tags_before:?}"
    );

    // This cluster ("default"): the same namespace and name, adopting.
    let mut other = app.recreated().await?;
    ensure!(other.owner.cluster == "default");
    other.adopt = true;
    let result = async {
        for _ in 0..3 {
            let provisioned = other.pass().await;
            for (part, state) in [
                ("tables", &provisioned.tables.state),
                ("queue", &provisioned.queue.state),
            ] {
                ensure!(
                    matches!(state, movieapp_operator::conditions::PartState::Blocked { reason: Reason::NameConflict, message }
                        if message.contains("another cluster (movieapp.io/cluster=west, this operator's is default)")),
                    "{part}: {state:?}"
                );
            }
            ensure!(
                !provisioned.notifications.state.is_ready(),
                "{:?}",
                provisioned.notifications.state
            );
        }
        let writes = other.mutating_calls()?;
        ensure!(writes.is_empty(), "the other cluster wrote {writes:?}");
        let tags_after = (
            table_tags(&app.sdk, &table_arn).await?,
            queue_tags(&app.sdk, &jobs_url).await?,
        );
        ensure!(tags_after == tags_before, "{tags_before:?} -> {tags_after:?}");
        Ok(())
    }
    .await;
    // The cluster that made them deletes them.
    with_cleanup(app, |app| async move { (app, result) }).await
}

#[tokio::test]
async fn interrupted_passes_neither_duplicate_nor_leak() -> Result<()> {
    let app = App::new("crash").await?;
    with_cleanup(app, |mut app| async move {
        let result = async {
            // Kill the pass at ever later points (a dropped future stops
            // wherever it is, like SIGKILL: requests in flight may or may
            // not have reached AWS), never writing a status. A pass reads
            // before it writes, and on a loaded machine its first write
            // comes later: past 400 ms the kills go on, further apart, only
            // until one got as far as a write.
            for millis in [
                1, 3, 6, 10, 15, 25, 40, 60, 100, 150, 250, 400, 650, 1000, 1600, 2500, 4000,
            ] {
                if millis > 400 && !app.mutating_calls()?.is_empty() {
                    break;
                }
                let target = app.target();
                let _ = tokio::time::timeout(
                    Duration::from_millis(millis),
                    provision::provision(&target),
                )
                .await;
            }
            ensure!(app.status.is_none());
            // The killed passes got somewhere (else this proves nothing) but
            // not everywhere: some resources exist, not yet all of them.
            let made_by_killed_passes = app.mutating_calls()?;
            eprintln!("writes of the killed passes: {made_by_killed_passes:?}");
            // (A write cut off in flight may reach AWS without being counted,
            // so any counted write is evidence the passes got somewhere.)
            ensure!(
                !made_by_killed_passes.is_empty(),
                "no killed pass got as far as writing anything"
            );
            app.converge().await?;

            let prefix = format!("movieapp-{}-{}-", app.namespace, app.name);
            let tables: Vec<String> = app
                .sdk
                .dynamodb
                .list_tables()
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await?
                .into_iter()
                .filter(|t| t.starts_with(&prefix))
                .collect();
            ensure!(tables.len() == 3, "{tables:?}");
            let queues = app
                .sdk
                .sqs
                .list_queues()
                .queue_name_prefix(&prefix)
                .send()
                .await?
                .queue_urls
                .unwrap_or_default();
            ensure!(queues.len() == 2, "{queues:?}");
            let topics = topics_named(&app.sdk, &app.id().topic_name()).await?;
            ensure!(topics.len() == 1, "{topics:?}");
            let listed = subscriptions(&app.sdk, &topics[0]).await?;
            ensure!(listed.len() == 1, "{listed:?}");
            for url in &queues {
                ensure!(has_ownership_tags(&app, &queue_tags(&app.sdk, url).await?));
            }
            Ok(())
        }
        .await;
        (app, result)
    })
    .await
}

#[tokio::test]
async fn kms_encryption_is_applied_at_creation_and_then_left_alone() -> Result<()> {
    let mut app = App::new("kms").await?;
    app.spec.database.encryption = movieapp_operator::crd::TableEncryption::Kms;
    with_cleanup(app, |mut app| async move {
        let result = async {
            app.converge_and_settle().await?;
            for model in movieapp_model::TABLES {
                let table = table(&app.sdk, &app.table(model.component)).await?;
                let sse = table.sse_description().context("no SSE description")?;
                ensure!(sse.sse_type == Some(ddb::SseType::Kms), "{sse:?}");
                ensure!(sse.status == Some(ddb::SseStatus::Enabled), "{sse:?}");
            }
            Ok(())
        }
        .await;
        (app, result)
    })
    .await
}

// ------------------------------------------------------------------ external names

fn part_conflict(state: &movieapp_operator::conditions::PartState) -> Option<&str> {
    match state {
        movieapp_operator::conditions::PartState::Blocked {
            reason: Reason::NameConflict,
            message,
        } => Some(message.as_str()),
        _ => None,
    }
}

/// A table, a queue and a topic another tool made, under names of its own
/// choosing: the MovieApp names them in its spec, adopts them with the
/// annotation, manages them like its own and deletes them with
/// `deletionPolicy: Delete`; what it does not name keeps the operator's names.
#[tokio::test]
async fn resources_another_tool_made_are_adopted_under_their_explicit_names() -> Result<()> {
    let mut app = App::new("external").await?;
    let users = unique_name("Legacy.Users");
    let jobs = unique_name("legacy_jobs");
    let topic = unique_name("legacy_topic");
    create_table_by_hand(&app.sdk, &users, &movieapp_model::USERS, &[]).await?;
    let jobs_url = app
        .sdk
        .sqs
        .create_queue()
        .queue_name(&jobs)
        .send()
        .await?
        .queue_url
        .context("no queue URL")?;
    let topic_arn_made = app
        .sdk
        .sns
        .create_topic()
        .name(&topic)
        .send()
        .await?
        .topic_arn
        .context("no topic ARN")?;
    app.spec = serde_json::from_value(json!({
        "database": { "tableNames": { "users": users } },
        "queue": { "name": jobs },
        "notifications": { "topicName": topic },
    }))?;
    ensure!(app.table("users") == users && app.jobs_queue() == jobs);
    with_cleanup(app, |mut app| async move {
        let result = async {
            // Untagged and not adopted: a conflict, and left untouched.
            let provisioned = app.pass().await;
            let message = part_conflict(&provisioned.tables.state)
                .with_context(|| format!("tables: {:?}", provisioned.tables.state))?;
            ensure!(
                message.contains(&users) && message.contains("movieapp.io/adopt"),
                "{message}"
            );
            let messaging = [&provisioned.queue.state, &provisioned.notifications.state];
            ensure!(
                messaging.iter().any(|s| part_conflict(s).is_some()),
                "{messaging:?}"
            );
            let users_arn = table(&app.sdk, &users).await?.table_arn.context("arn")?;
            ensure!(table_tags(&app.sdk, &users_arn).await?.is_empty());
            ensure!(queue_tags(&app.sdk, &jobs_url).await?.is_empty());
            ensure!(topic_tags(&app.sdk, &topic_arn_made).await? == Some(BTreeMap::new()));

            app.adopt = true;
            let notices = app.converge_and_settle().await?;
            for name in [&users, &jobs, &topic] {
                ensure!(
                    notices
                        .iter()
                        .any(|n| n.reason == Reason::Adopted && n.message.contains(name.as_str())),
                    "{name} not adopted: {notices:#?}"
                );
            }
            ensure!(has_ownership_tags(
                &app,
                &table_tags(&app.sdk, &users_arn).await?
            ));
            ensure!(has_ownership_tags(
                &app,
                &queue_tags(&app.sdk, &jobs_url).await?
            ));
            ensure!(has_ownership_tags(
                &app,
                &topic_tags(&app.sdk, &topic_arn_made)
                    .await?
                    .context("topic gone")?
            ));
            // Status and the worker's settings name them.
            let status = status(&app)?;
            let reported: Vec<(&str, &str)> = status
                .tables
                .iter()
                .map(|t| (t.component.as_str(), t.name.as_str()))
                .collect();
            ensure!(
                reported.contains(&("users", users.as_str())),
                "{reported:?}"
            );
            ensure!(
                status.queue.as_ref().map(|q| q.url.as_str()) == Some(jobs_url.as_str()),
                "{:?}",
                status.queue
            );
            ensure!(topic_arn(&app)? == topic_arn_made);
            // Brought to the declared settings, and the topic delivers to
            // the named queue.
            let made = table(&app.sdk, &users).await?;
            ensure!(billing(&made) == Some(ddb::BillingMode::PayPerRequest));
            let jobs_arn = status.queue.as_ref().context("queue")?.arn.clone();
            ensure!(
                subscriptions(&app.sdk, &topic_arn_made)
                    .await?
                    .iter()
                    .any(|(protocol, endpoint, _)| protocol == "sqs" && *endpoint == jobs_arn),
                "the named queue is not subscribed to the named topic"
            );
            // What the spec does not name keeps the operator's name.
            let derived = app.id();
            ensure!(
                describe_table(&app.sdk, &derived.table_name("movies"))
                    .await?
                    .is_some()
            );
            ensure!(
                queue_url(&app.sdk, &derived.queue_name(component::DEAD_LETTER_QUEUE))
                    .await?
                    .is_some()
            );
            ensure!(
                describe_table(&app.sdk, &derived.table_name("users"))
                    .await?
                    .is_none()
            );

            // deletionPolicy: Delete deletes what was adopted, too.
            app.delete().await?;
            ensure!(
                describe_table(&app.sdk, &users).await?.is_none(),
                "{users} left"
            );
            ensure!(queue_url(&app.sdk, &jobs).await?.is_none(), "{jobs} left");
            ensure!(
                topics_named(&app.sdk, &topic).await?.is_empty(),
                "{topic} left"
            );
            Ok(())
        }
        .await;
        (app, result)
    })
    .await
}

/// Two MovieApps naming the same table: the one whose tags it carries owns
/// it; the other is a `NameConflict`, adopt annotation or not, and its
/// deletion leaves the table alone.
#[tokio::test]
async fn two_movieapps_naming_one_table_never_both_own_it() -> Result<()> {
    let shared = unique_name("shared-watchlists");
    let mut first = App::new("first").await?;
    first.spec.database.table_names = Some(movieapp_operator::crd::TableNames {
        watchlists: Some(shared.clone()),
        ..Default::default()
    });
    first.converge().await?;
    let arn = table(&first.sdk, &shared).await?.table_arn.context("arn")?;
    let tags_before = table_tags(&first.sdk, &arn).await?;
    ensure!(has_ownership_tags(&first, &tags_before), "{tags_before:?}");

    let mut second = App::new("second").await?;
    second.spec.database.table_names = first.spec.database.table_names.clone();
    second.adopt = true;
    let name = shared.clone();
    let result = with_cleanup(second, |mut second| async move {
        let shared = name;
        let result = async {
            let provisioned = second.pass().await;
            let message = part_conflict(&provisioned.tables.state)
                .with_context(|| format!("tables: {:?}", provisioned.tables.state))?;
            ensure!(
                message.contains(&shared) && message.contains("belongs to another MovieApp"),
                "{message}"
            );
            ensure!(table_tags(&second.sdk, &arn).await? == tags_before);
            second.delete().await?;
            ensure!(
                describe_table(&second.sdk, &shared).await?.is_some(),
                "deleted by the other MovieApp"
            );
            Ok(())
        }
        .await;
        (second, result)
    })
    .await;
    first.delete().await?;
    ensure!(describe_table(&first.sdk, &shared).await?.is_none());
    result
}

// ------------------------------------------------------------------ deletion protection

async fn protected(sdk: &Sdk, name: &str) -> Result<bool> {
    Ok(table(sdk, name).await?.deletion_protection_enabled == Some(true))
}

async fn set_protection(sdk: &Sdk, name: &str, enabled: bool) -> Result<()> {
    sdk.dynamodb
        .update_table()
        .table_name(name)
        .deletion_protection_enabled(enabled)
        .send()
        .await?;
    Ok(())
}

/// Deletion protection follows `spec.database.deletionProtection`, by
/// default on with `Retain` and off with `Delete`; switched in AWS, it is
/// switched back (drift); and a table protected behind the spec's back does
/// not stop a deletion the spec allows.
#[tokio::test]
async fn deletion_protection_follows_the_spec_and_drift_is_repaired() -> Result<()> {
    let mut app = App::new("protect").await?;
    app.spec.deletion_policy = movieapp_operator::crd::DeletionPolicy::Retain;
    with_cleanup(app, |mut app| async move {
        let result = async {
            app.converge_and_settle().await?;
            for model in movieapp_model::TABLES {
                let name = app.table(model.component);
                ensure!(
                    protected(&app.sdk, &name).await?,
                    "{name}: Retain protects by default"
                );
            }
            let users = app.table("users");

            // Switched off in AWS: drift, repaired.
            set_protection(&app.sdk, &users, false).await?;
            let notices = app.converge_and_settle().await?;
            ensure!(protected(&app.sdk, &users).await?, "not repaired");
            ensure!(
                notices.iter().any(|n| n.reason == Reason::DriftRepaired
                    && n.message.contains(&users)
                    && n.message.contains("enabled deletion protection")),
                "{notices:#?}"
            );

            // Turned off in the spec: an update.
            app.edit(|spec| spec.database.deletion_protection = Some(false));
            let notices = app.converge_and_settle().await?;
            ensure!(count_reason(&notices, Reason::Updated) == 3, "{notices:#?}");
            for model in movieapp_model::TABLES {
                let name = app.table(model.component);
                ensure!(!protected(&app.sdk, &name).await?, "{name} still protected");
            }

            // Switched on in AWS: repaired too.
            set_protection(&app.sdk, &users, true).await?;
            app.converge_and_settle().await?;
            ensure!(!protected(&app.sdk, &users).await?, "not repaired");

            // Protected behind the spec's back just before a deletion the
            // spec allows: the deletion turns it off and goes on.
            set_protection(&app.sdk, &users, true).await?;
            app.delete().await?;
            ensure!(
                describe_table(&app.sdk, &users).await?.is_none(),
                "{users} left"
            );
            Ok(())
        }
        .await;
        (app, result)
    })
    .await
}

/// `deletionPolicy: Delete` creates unprotected tables unless the spec
/// asks, and then creates them protected in the same call.
#[tokio::test]
async fn tables_are_created_protected_only_when_asked() -> Result<()> {
    let mut app = App::new("protect-create").await?;
    app.spec.database.deletion_protection = Some(true);
    with_cleanup(app, |mut app| async move {
        let result = async {
            app.converge_and_settle().await?;
            for model in movieapp_model::TABLES {
                let name = app.table(model.component);
                ensure!(protected(&app.sdk, &name).await?, "{name}");
            }
            // The create carried it: no UpdateTable was needed.
            let calls = app.mutating_calls()?;
            ensure!(!calls.contains_key("dynamodb:UpdateTable"), "{calls:?}");
            // The test's own clean-up needs them unprotected.
            app.edit(|spec| spec.database.deletion_protection = None);
            app.converge_and_settle().await?;
            for model in movieapp_model::TABLES {
                let name = app.table(model.component);
                ensure!(
                    !protected(&app.sdk, &name).await?,
                    "{name}: Delete leaves them unprotected"
                );
            }
            Ok(())
        }
        .await;
        (app, result)
    })
    .await
}

// ------------------------------------------------------------------ worker roles

/// moto's account; its IAM checks the ARNs' form only.
const OIDC_PROVIDER: &str =
    "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/MOVIEAPPTEST";
const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/movieapp-worker-boundary";
const OIDC_ISSUER: &str = "oidc.eks.us-east-1.amazonaws.com/id/MOVIEAPPTEST";

/// A plain IAM client, apart from the operator's (and its request counts).
async fn iam_client() -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::new(&LocalEnv::get().aws().await)
}

/// The role as IAM has it, read with the SDK: trust policy and inline
/// policy decoded, boundary, tags. `None` when there is none.
struct RoleSeen {
    arn: String,
    trust: Value,
    inline: Option<Value>,
    boundary: Option<String>,
    tags: BTreeMap<String, String>,
    inline_names: Vec<String>,
}

async fn role_seen(iam: &aws_sdk_iam::Client, name: &str) -> Result<Option<RoleSeen>> {
    let role = match iam.get_role().role_name(name).send().await {
        Ok(output) => output.role.context("GetRole returned no role")?,
        Err(error)
            if error.as_service_error().is_some_and(
                aws_sdk_iam::operation::get_role::GetRoleError::is_no_such_entity_exception,
            ) =>
        {
            return Ok(None);
        }
        Err(error) => return Err(error.into()),
    };
    let decode = |text: &str| -> Result<Value> {
        Ok(serde_json::from_str(&provision::role::decode_document(
            text,
        ))?)
    };
    let inline = match iam
        .get_role_policy()
        .role_name(name)
        .policy_name(provision::role::INLINE_POLICY)
        .send()
        .await
    {
        Ok(output) => Some(decode(&output.policy_document)?),
        Err(error)
            if error.as_service_error().is_some_and(
                aws_sdk_iam::operation::get_role_policy::GetRolePolicyError::is_no_such_entity_exception,
            ) =>
        {
            None
        }
        Err(error) => return Err(error.into()),
    };
    let inline_names = iam
        .list_role_policies()
        .role_name(name)
        .send()
        .await?
        .policy_names;
    Ok(Some(RoleSeen {
        arn: role.arn,
        trust: decode(role.assume_role_policy_document.as_deref().unwrap_or("{}"))?,
        inline,
        boundary: role
            .permissions_boundary
            .and_then(|b| b.permissions_boundary_arn),
        tags: role
            .tags
            .unwrap_or_default()
            .into_iter()
            .map(|t| (t.key, t.value))
            .collect(),
        inline_names,
    }))
}

/// A managed policy `<role>-extra` with `document`, attached to the role as
/// someone other than the operator would; its ARN.
async fn attach_managed_policy(
    iam: &aws_sdk_iam::Client,
    role: &str,
    document: &str,
) -> Result<String> {
    let arn = iam
        .create_policy()
        .policy_name(format!("{role}-extra"))
        .policy_document(document)
        .send()
        .await?
        .policy
        .and_then(|p| p.arn)
        .context("CreatePolicy returned no ARN")?;
    iam.attach_role_policy()
        .role_name(role)
        .policy_arn(&arn)
        .send()
        .await?;
    Ok(arn)
}

fn role_name(app: &App) -> String {
    provision::role::role_name(app.id())
}

impl App {
    async fn with_roles(prefix: &str) -> Result<Self> {
        let mut app = Self::new(prefix).await?;
        app.worker_roles =
            Some(WorkerRoles::new(OIDC_PROVIDER, BOUNDARY).map_err(anyhow::Error::msg)?);
        Ok(app)
    }

    /// The inline policy `make iam-policies` renders for this MovieApp.
    fn rendered_worker_policy(&self) -> Result<Value> {
        let target = movieapp_operator::policies::Target {
            account: "123456789012".into(),
            region: self.clients.region.clone(),
            prefix: "movieapp-".into(),
            cluster: self.owner.cluster.clone(),
        };
        let app = movieapp_operator::policies::App {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            spec: self.spec.clone(),
        };
        let text = movieapp_operator::policies::worker()
            .render(&target, Some(&app), &[])
            .map_err(anyhow::Error::msg)?;
        Ok(serde_json::from_str(&text)?)
    }
}

#[tokio::test]
async fn the_worker_role_is_made_with_its_trust_boundary_policy_and_tags_and_kept_so() -> Result<()>
{
    let app = App::with_roles("role").await?;
    with_cleanup(app, |mut app| async move {
        let result = async {
            let notices = app.converge_and_settle().await?;
            let name = role_name(&app);
            ensure!(name.len() <= 64 && name.starts_with("movieapp-"), "{name}");
            ensure!(
                notices
                    .iter()
                    .any(|n| n.reason == Reason::Created && n.message.contains(&name)),
                "{notices:#?}"
            );
            let iam = iam_client().await;
            let role = role_seen(&iam, &name).await?.context("no role")?;

            // Trust: the cluster's OIDC provider, this MovieApp's
            // ServiceAccount (named after it), the STS audience.
            let statement = &role.trust["Statement"][0];
            ensure!(statement["Principal"]["Federated"] == OIDC_PROVIDER, "{}", role.trust);
            ensure!(statement["Action"] == "sts:AssumeRoleWithWebIdentity", "{}", role.trust);
            let conditions = &statement["Condition"]["StringEquals"];
            ensure!(
                conditions[format!("{OIDC_ISSUER}:sub")]
                    == format!("system:serviceaccount:{}:{}", app.namespace, app.name)
                    && conditions[format!("{OIDC_ISSUER}:aud")] == "sts.amazonaws.com",
                "{}",
                role.trust
            );
            ensure!(role.trust["Statement"].as_array().map(Vec::len) == Some(1));

            // Exactly the document make iam-policies renders, and only it.
            ensure!(
                role.inline.as_ref() == Some(&app.rendered_worker_policy()?),
                "{:?}",
                role.inline
            );
            ensure!(
                role.inline_names == [provision::role::INLINE_POLICY],
                "{:?}",
                role.inline_names
            );
            let inline = serde_json::to_string(&role.inline)?;
            ensure!(inline.contains(&app.table("users")) && inline.contains(&app.jobs_queue()));
            ensure!(role.boundary.as_deref() == Some(BOUNDARY));
            ensure!(has_ownership_tags(&app, &role.tags), "{:?}", role.tags);
            ensure!(
                role.tags.get(tags::CLUSTER).map(String::as_str) == Some("default"),
                "{:?}",
                role.tags
            );
            let recorded = status(&app)?.worker_role.as_ref().context("no status")?;
            ensure!(recorded.arn == role.arn && recorded.name == name);
            ensure!(
                role.arn == format!("arn:aws:iam::123456789012:role/{name}"),
                "{}",
                role.arn
            );

            // Drift: a wider inline policy, the boundary removed, a trust
            // policy opened to every ServiceAccount. One pass repairs all.
            iam.put_role_policy()
                .role_name(&name)
                .policy_name(provision::role::INLINE_POLICY)
                .policy_document(
                    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
                        .to_string(),
                )
                .send()
                .await?;
            iam.delete_role_permissions_boundary()
                .role_name(&name)
                .send()
                .await?;
            let mut opened = role.trust.clone();
            opened["Statement"][0]["Condition"] = json!({});
            iam.update_assume_role_policy()
                .role_name(&name)
                .policy_document(opened.to_string())
                .send()
                .await?;
            // And what widens a role besides its own policy: an inline
            // policy of another name, a managed policy attached.
            let everything = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}).to_string();
            iam.put_role_policy()
                .role_name(&name)
                .policy_name("added-by-hand")
                .policy_document(&everything)
                .send()
                .await?;
            let managed = attach_managed_policy(&iam, &name, &everything).await?;
            let provisioned = app.pass().await;
            let role_part = provisioned.role.as_ref().context("no role part")?;
            ensure!(role_part.state.is_ready(), "{:?}", role_part.state);
            ensure!(
                count_reason(&role_part.notices, Reason::DriftRepaired) == 5,
                "{:#?}",
                role_part.notices
            );
            let repaired = role_seen(&iam, &name).await?.context("no role")?;
            ensure!(repaired.boundary.as_deref() == Some(BOUNDARY));
            ensure!(repaired.inline == Some(app.rendered_worker_policy()?));
            ensure!(repaired.trust == role.trust, "{}", repaired.trust);
            ensure!(
                repaired.inline_names == [provision::role::INLINE_POLICY],
                "{:?}",
                repaired.inline_names
            );
            let attached = iam
                .list_attached_role_policies()
                .role_name(&name)
                .send()
                .await?
                .attached_policies
                .unwrap_or_default();
            ensure!(attached.is_empty(), "{attached:?}");
            iam.delete_policy().policy_arn(&managed).send().await?;
            // Then steady again.
            app.converge_and_settle().await?;

            // Every IAM call made is declared for the operator.
            for call in aws_calls(&app.metrics)?.keys() {
                let (service, operation) = call.split_once(':').context("label")?;
                ensure!(iam::is_listed(service, operation), "undeclared call {call}");
            }
            Ok(())
        }
        .await;
        (app, result)
    })
    .await
}

#[tokio::test]
async fn a_role_owned_by_someone_else_is_a_name_conflict_and_left_untouched() -> Result<()> {
    let app = App::with_roles("rolex").await?;
    let iam = iam_client().await;
    let name = role_name(&app);
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    let mut request = iam
        .create_role()
        .role_name(&name)
        .assume_role_policy_document(trust.to_string());
    for (key, value) in [
        (tags::UID, "someone-else"),
        (tags::NAMESPACE, app.namespace.as_str()),
        (tags::NAME, app.name.as_str()),
    ] {
        request = request.tags(
            aws_sdk_iam::types::Tag::builder()
                .key(key)
                .value(value)
                .build()?,
        );
    }
    request.send().await?;
    let before = role_seen(&iam, &name).await?.context("made")?;
    let foreign = name.clone();
    let iam_after = iam.clone();

    let outcome = with_cleanup(app, |mut app| async move {
        let result = async {
            let provisioned = app.pass().await;
            match &provisioned.role.as_ref().context("no role part")?.state {
                movieapp_operator::conditions::PartState::Blocked { reason, message } => {
                    ensure!(*reason == Reason::NameConflict, "{reason}");
                    ensure!(
                        message.contains("someone-else") && message.contains(&name),
                        "{message}"
                    );
                }
                other => bail!("expected NameConflict, got {other:?}"),
            }
            ensure!(
                provisioned
                    .role
                    .as_ref()
                    .and_then(|r| r.value.as_ref())
                    .is_none()
            );
            let after = role_seen(&iam, &name).await?.context("deleted")?;
            ensure!(after.trust == before.trust && after.tags == before.tags);
            ensure!(after.boundary.is_none() && after.inline_names.is_empty());
            // Deletion leaves it alone, too.
            app.delete().await?;
            ensure!(
                role_seen(&iam, &name).await?.is_some(),
                "a foreign role was deleted"
            );
            Ok(())
        }
        .await;
        (app, result)
    })
    .await;
    // The foreign role is not the operator's to delete: the test made it.
    iam_after.delete_role().role_name(&foreign).send().await?;
    outcome
}

#[tokio::test]
async fn retain_keeps_the_role_and_delete_removes_it_with_its_policy() -> Result<()> {
    let mut app = App::with_roles("roledel").await?;
    app.converge().await?;
    let iam = iam_client().await;
    let name = role_name(&app);

    provision::retain(&app.target()).await?;
    let retained = role_seen(&iam, &name)
        .await?
        .context("retain deleted the role")?;
    ensure!(
        retained.tags.get(tags::RETAINED).map(String::as_str) == Some("true"),
        "{:?}",
        retained.tags
    );
    ensure!(retained.inline.is_some() && retained.boundary.as_deref() == Some(BOUNDARY));

    // A managed policy someone attached no longer blocks the deletion.
    let managed = attach_managed_policy(
        &iam,
        &name,
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]})
            .to_string(),
    )
    .await?;
    app.delete().await?;
    ensure!(
        role_seen(&iam, &name).await?.is_none(),
        "{name} still exists"
    );
    iam.delete_policy().policy_arn(&managed).send().await?;
    let calls = aws_calls(&app.metrics)?;
    for call in [
        "iam:DeleteRolePolicy",
        "iam:DetachRolePolicy",
        "iam:DeleteRole",
    ] {
        ensure!(calls.contains_key(call), "{call} not called: {calls:?}");
    }
    // Already gone is fine.
    ensure!(provision::delete(&app.target()).await? == Cleanup::Done);
    Ok(())
}

#[tokio::test]
async fn without_worker_roles_configured_no_iam_call_is_made() -> Result<()> {
    let app = App::new("norole").await?;
    with_cleanup(app, |mut app| async move {
        let result = async {
            let provisioned = {
                app.converge().await?;
                app.pass().await
            };
            ensure!(provisioned.role.is_none());
            ensure!(status(&app)?.worker_role.is_none());
            let calls = aws_calls(&app.metrics)?;
            ensure!(
                !calls
                    .keys()
                    .any(|c| c.starts_with("iam:") || c.starts_with("other:")),
                "{calls:?}"
            );
            ensure!(
                role_seen(&iam_client().await, &role_name(&app))
                    .await?
                    .is_none(),
                "a role was made"
            );
            Ok(())
        }
        .await;
        (app, result)
    })
    .await
}
