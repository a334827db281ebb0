//! Single faults, each at a chosen moment: access denied is reported as
//! Stalled with the AWS code and clears once access is granted; a SIGKILL
//! between "AWS created it" and "the status recorded it" neither duplicates
//! nor leaks. The randomised, many-object scenarios are in `chaos.rs`.

use std::time::Duration;

use anyhow::{Result, ensure};
use kube::Api;
use kube::api::PostParams;
use movieapp_operator::crd::MovieApp;
use movieapp_tests::aws_proxy::FaultProxy;
use movieapp_tests::movieapps::condition;
use movieapp_tests::operator::{Operator, OperatorProcess, operator_binary};
use movieapp_tests::{LocalEnv, eventually, fixtures};
use serde_json::json;

async fn scenario(prefix: &str) -> Result<(LocalEnv, kube::Client, String, String, Api<MovieApp>)> {
    let stage = fixtures::Stage::new(prefix).await?;
    Ok((
        stage.env,
        stage.client,
        stage.ns,
        stage.repository,
        stage.api,
    ))
}

fn app(repository: &str) -> Result<MovieApp> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "movieapp.io/v1alpha1",
        "kind": "MovieApp",
        "metadata": { "name": "shop" },
        "spec": { "worker": { "image": { "repository": repository, "tag": "1.0.0" } } },
    }))?)
}

#[tokio::test]
async fn access_denied_stalls_with_the_aws_code_and_clears_when_granted() -> Result<()> {
    let (env, client, ns, repository, api) = scenario("faults-denied").await?;
    let proxy = FaultProxy::start(&env.aws_endpoint_url).await?;
    proxy
        .set(json!({ "deny": ["CreateTable", "DescribeTable"] }))
        .await?;
    let operator = Operator::start(
        &ns,
        &["--aws-endpoint-url", &proxy.url, "--resync-interval", "3s"],
    )
    .await?;

    api.create(&PostParams::default(), &app(&repository)?)
        .await?;
    let stalled = eventually(
        "Stalled=True with AccessDenied",
        Duration::from_secs(60),
        || async {
            let app = api.get("shop").await?;
            Ok(condition(&app, "Stalled")
                .filter(|c| c.status == "True" && c.reason == "AccessDenied")
                .cloned())
        },
    )
    .await?;
    ensure!(
        stalled.message.contains("AccessDeniedException"),
        "the message carries the AWS code: {}",
        stalled.message
    );

    // Access granted: the world changed, Stalled clears without a restart.
    proxy.set(json!({ "deny": [] })).await?;
    eventually(
        "Ready=True once access is granted",
        Duration::from_secs(60),
        || async {
            let app = api.get("shop").await?;
            Ok(condition(&app, "Ready")
                .filter(|c| c.status == "True")
                .map(|_| ()))
        },
    )
    .await?;

    operator.stop().await?;
    let _ = client;
    fixtures::delete_namespace(&env.kube().await?, &ns).await
}

#[tokio::test]
async fn sigkill_between_create_and_status_neither_duplicates_nor_leaks() -> Result<()> {
    use movieapp_operator::naming::{AppId, component};
    let (env, client, ns, repository, api) = scenario("faults-kill").await?;
    let binary = operator_binary("debug")?;
    let aws = env.aws().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let sns = aws_sdk_sns::Client::new(&aws);
    let id = AppId {
        namespace: &ns,
        name: "shop",
    };
    let users_table = id.table_name(movieapp_model::USERS.component);

    let spawn = || OperatorProcess::spawn(&binary, &ns, &["--resync-interval", "3s"], &[]);
    let first = spawn().await?;
    api.create(&PostParams::default(), &app(&repository)?)
        .await?;
    // Kill the process the moment AWS has the first resource, before the
    // status records it (checked below, so the kill did land in that window).
    eventually(
        "the first table to exist",
        Duration::from_secs(60),
        || async {
            Ok(dynamodb
                .describe_table()
                .table_name(&users_table)
                .send()
                .await
                .ok()
                .map(|_| ()))
        },
    )
    .await?;
    first.kill();
    let status_at_kill = api.get("shop").await?.status.unwrap_or_default();

    // Restart: the new process finds what the killed one made.
    let second = spawn().await?;
    eventually(
        "Ready=True after the restart",
        Duration::from_secs(90),
        || async {
            let app = api.get("shop").await?;
            Ok(condition(&app, "Ready")
                .filter(|c| c.status == "True")
                .map(|_| ()))
        },
    )
    .await?;
    second.kill();

    // Exactly one of each resource, looked up by the deterministic names.
    let prefix = id.table_name("");
    let prefix = prefix.trim_end_matches('-');
    let mut tables = Vec::new();
    let mut start = None;
    loop {
        let page = dynamodb
            .list_tables()
            .set_exclusive_start_table_name(start)
            .send()
            .await?;
        tables.extend(
            page.table_names
                .unwrap_or_default()
                .into_iter()
                .filter(|t| t.starts_with(prefix)),
        );
        start = page.last_evaluated_table_name;
        if start.is_none() {
            break;
        }
    }
    ensure!(tables.len() == 3, "tables: {tables:?}");
    let queues = sqs
        .list_queues()
        .queue_name_prefix(id.queue_name(component::JOBS_QUEUE))
        .send()
        .await?
        .queue_urls
        .unwrap_or_default();
    ensure!(queues.len() == 2, "queues (jobs and its DLQ): {queues:?}");
    let topic = id.topic_name();
    let topics: Vec<String> = sns
        .list_topics()
        .send()
        .await?
        .topics
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| t.topic_arn)
        .filter(|arn| arn.ends_with(&format!(":{topic}")))
        .collect();
    ensure!(topics.len() == 1, "topics: {topics:?}");
    let subscriptions = sns
        .list_subscriptions_by_topic()
        .topic_arn(&topics[0])
        .send()
        .await?
        .subscriptions
        .unwrap_or_default();
    ensure!(subscriptions.len() == 1, "subscriptions: {subscriptions:?}");
    eprintln!(
        "killed with {} table(s) in status; after restart: 3 tables, 2 queues, 1 topic, 1 subscription",
        status_at_kill.tables.len()
    );

    // Clean up through the operator: deletion removes them all.
    let third = spawn().await?;
    api.delete("shop", &Default::default()).await?;
    eventually(
        "the MovieApp to be deleted",
        Duration::from_secs(90),
        || async { Ok(api.get_opt("shop").await?.is_none().then_some(())) },
    )
    .await?;
    third.kill();
    let _ = client;
    fixtures::delete_namespace(&env.kube().await?, &ns).await
}
