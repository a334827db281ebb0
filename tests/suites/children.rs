//! End-to-end tests of the children other consumers and the network see:
//! the exports ConfigMap (`spec.exports`), checked against what moto holds,
//! and the worker's NetworkPolicy (`spec.worker.networkPolicy`). The local
//! environment runs no network plugin that enforces NetworkPolicies: its
//! shape is what is tested here.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use aws_sdk_sqs::types::QueueAttributeName;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use movieapp_model::TABLES;
use movieapp_operator::crd::MovieApp;
use movieapp_tests::movieapps::{TIMEOUT, condition, is, manifest, movieapp, wait_for};
use movieapp_tests::operator::Operator;
use movieapp_tests::{eventually, fixtures};
use serde_json::json;

/// Ready for the MovieApp's current generation.
fn ready(app: &MovieApp) -> bool {
    is(app, "Ready", "True", None)
        && app.status.as_ref().and_then(|s| s.observed_generation) == app.metadata.generation
}

async fn patch_spec(api: &Api<MovieApp>, name: &str, spec: serde_json::Value) -> Result<()> {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": spec })),
    )
    .await?;
    Ok(())
}

/// Waits until the ConfigMap `name` exists and `check` holds for its data.
async fn config_map_data(
    config_maps: &Api<ConfigMap>,
    name: &str,
    what: &str,
    check: impl Fn(&BTreeMap<String, String>) -> bool,
) -> Result<BTreeMap<String, String>> {
    eventually(what, TIMEOUT, || async {
        let data = config_maps
            .get_opt(name)
            .await?
            .and_then(|c| c.data)
            .unwrap_or_default();
        Ok((!data.is_empty() && check(&data)).then_some(data))
    })
    .await
}

async fn gone<K>(api: &Api<K>, name: &str, what: &str) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(what, TIMEOUT, || async {
        Ok(api.get_opt(name).await?.is_none().then_some(()))
    })
    .await
}

fn value<'a>(data: &'a BTreeMap<String, String>, key: &str) -> Result<&'a str> {
    data.get(key)
        .map(String::as_str)
        .with_context(|| format!("the exports have no {key}: {data:?}"))
}

/// The exported details are those of the resources in AWS, read from moto
/// by what the exports name, and each other's: the jobs queue's redrive
/// target is the exported dead-letter queue, and it is subscribed to the
/// exported topic.
async fn check_against_aws(
    aws: &aws_config::SdkConfig,
    data: &BTreeMap<String, String>,
) -> Result<()> {
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let sqs = aws_sdk_sqs::Client::new(aws);
    let sns = aws_sdk_sns::Client::new(aws);
    for table in TABLES {
        let name = value(data, table.env_var)?;
        let described = dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .with_context(|| format!("describing the exported table {name}"))?;
        let arn = described.table().and_then(|t| t.table_arn());
        ensure!(
            arn == Some(value(data, &format!("{}_ARN", table.env_var))?),
            "{}: AWS says {arn:?}, the exports {data:?}",
            table.component
        );
    }
    let queue_arn = |url: String| {
        let sqs = sqs.clone();
        async move {
            let attributes = sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::All)
                .send()
                .await
                .with_context(|| format!("reading the exported queue {url}"))?;
            anyhow::Ok(attributes.attributes().cloned().unwrap_or_default())
        }
    };
    let jobs = queue_arn(value(data, "MOVIEAPP_JOBS_QUEUE_URL")?.to_owned()).await?;
    let dlq = queue_arn(value(data, "MOVIEAPP_JOBS_DLQ_URL")?.to_owned()).await?;
    ensure!(
        jobs.get(&QueueAttributeName::QueueArn).map(String::as_str)
            == Some(value(data, "MOVIEAPP_JOBS_QUEUE_ARN")?),
        "the jobs queue's ARN: AWS says {jobs:?}"
    );
    let dlq_arn = value(data, "MOVIEAPP_JOBS_DLQ_ARN")?;
    ensure!(
        dlq.get(&QueueAttributeName::QueueArn).map(String::as_str) == Some(dlq_arn),
        "the dead-letter queue's ARN: AWS says {dlq:?}"
    );
    let redrive = jobs
        .get(&QueueAttributeName::RedrivePolicy)
        .context("the jobs queue has no redrive policy")?;
    ensure!(
        redrive.contains(dlq_arn),
        "the jobs queue redrives to {redrive}, not the exported {dlq_arn}"
    );
    let topic_arn = value(data, "MOVIEAPP_NOTIFICATIONS_TOPIC_ARN")?;
    let subscriptions = sns
        .list_subscriptions_by_topic()
        .topic_arn(topic_arn)
        .send()
        .await
        .with_context(|| format!("listing the subscriptions of the exported topic {topic_arn}"))?;
    let jobs_arn = value(data, "MOVIEAPP_JOBS_QUEUE_ARN")?;
    ensure!(
        subscriptions
            .subscriptions()
            .iter()
            .any(|s| s.endpoint() == Some(jobs_arn)),
        "the exported jobs queue is not subscribed to the exported topic"
    );
    ensure!(value(data, "AWS_REGION")? == "us-east-1", "{data:?}");
    Ok(())
}

/// `spec.exports`: the connection details land in the ConfigMap the spec
/// names, equal to what AWS holds; a change to the ConfigMap is repaired, a
/// rename moves it (the old one goes), removing the field removes it, and
/// so does deleting the MovieApp. A bad name is refused with a clear message.
#[tokio::test]
async fn exports_publish_what_aws_holds_and_follow_the_spec() -> Result<()> {
    let fixtures::Stage {
        client,
        ns,
        aws,
        repository,
        api,
        ..
    } = fixtures::Stage::new("ch-exports").await?;
    let operator = Operator::start(&ns, &["--resync-interval", "5s"]).await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let image = json!({ "repository": repository, "tag": "1.0.0" });
    api.create(
        &PostParams::default(),
        &movieapp(
            "shop",
            json!({ "worker": { "image": image, "replicas": 1 },
                    "exports": { "configMapName": "shop-connection" } }),
        )?,
    )
    .await?;
    let app = wait_for(&api, "shop", "shop Ready=True", ready).await?;

    let exports = config_maps.get("shop-connection").await?;
    let owner = exports
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .context("the exports ConfigMap has no controller")?;
    ensure!(owner.kind == "MovieApp" && Some(&owner.uid) == app.metadata.uid.as_ref());
    let data = exports.data.unwrap_or_default();
    check_against_aws(&aws, &data).await?;
    // And with the status, which says the same.
    let status = app.status.clone().context("status")?;
    let queue = status.queue.clone().context("status.queue")?;
    ensure!(value(&data, "MOVIEAPP_JOBS_DLQ_URL")? == queue.dead_letter_url);
    ensure!(status.tables.len() == TABLES.len());
    ensure!(
        !data.contains_key("AWS_ENDPOINT_URL") && !data.contains_key("MOVIEAPP_TOKEN_SIGNING_KEY"),
        "the exports carry more than connection details: {data:?}"
    );

    // Changed or removed out of band: put back.
    config_maps
        .patch(
            "shop-connection",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": {
                "MOVIEAPP_JOBS_QUEUE_URL": "http://elsewhere/queue",
                "AWS_REGION": null,
            } })),
        )
        .await?;
    let repaired = config_map_data(
        &config_maps,
        "shop-connection",
        "the changed exports repaired",
        |now| now == &data,
    )
    .await?;
    ensure!(repaired == data);
    config_maps
        .delete("shop-connection", &DeleteParams::default())
        .await?;
    config_map_data(
        &config_maps,
        "shop-connection",
        "the deleted exports made again",
        |now| now == &data,
    )
    .await?;

    // Renamed: the new one in place with the same details, the old one gone.
    patch_spec(
        &api,
        "shop",
        json!({ "exports": { "configMapName": "shop-aws" } }),
    )
    .await?;
    config_map_data(&config_maps, "shop-aws", "the renamed exports", |now| {
        now == &data
    })
    .await?;
    gone(&config_maps, "shop-connection", "the old exports deleted").await?;
    wait_for(&api, "shop", "Ready after the rename", ready).await?;

    // The worker's own ConfigMap is not a name exports may take.
    patch_spec(
        &api,
        "shop",
        json!({ "exports": { "configMapName": "shop-config" } }),
    )
    .await?;
    let invalid = wait_for(&api, "shop", "Stalled=True, InvalidSpec", |app| {
        is(app, "Stalled", "True", Some("InvalidSpec"))
    })
    .await?;
    let message = condition(&invalid, "Stalled")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    ensure!(
        message.contains("spec.exports.configMapName shop-config")
            && message.contains("worker's own ConfigMap"),
        "unclear message: {message}"
    );
    // Nothing was applied meanwhile: the worker's ConfigMap is its own still.
    let worker_config = config_maps
        .get("shop-config")
        .await?
        .data
        .unwrap_or_default();
    ensure!(worker_config.contains_key("MOVIEAPP_JOBS_QUEUE_URL"));
    ensure!(!worker_config.contains_key("MOVIEAPP_JOBS_QUEUE_ARN"));
    ensure!(config_maps.get_opt("shop-aws").await?.is_some());

    // Removed from the spec: the ConfigMap goes, the rest stays Ready.
    patch_spec(&api, "shop", json!({ "exports": null })).await?;
    gone(
        &config_maps,
        "shop-aws",
        "the exports deleted with the field",
    )
    .await?;
    wait_for(&api, "shop", "Ready without exports", ready).await?;
    ensure!(config_maps.get_opt("shop-config").await?.is_some());

    // Back, then the MovieApp deleted: garbage collection takes it.
    patch_spec(
        &api,
        "shop",
        json!({ "exports": { "configMapName": "shop-aws" } }),
    )
    .await?;
    config_map_data(&config_maps, "shop-aws", "the exports back", |now| {
        now == &data
    })
    .await?;
    api.delete("shop", &DeleteParams::default()).await?;
    gone(&api, "shop", "the MovieApp deleted").await?;
    gone(
        &config_maps,
        "shop-aws",
        "the exports gone with the MovieApp",
    )
    .await?;

    operator.stop().await?;
    fixtures::delete_namespace(&client, &ns).await
}

/// Bad exports names never reach the operator: the API server refuses them.
#[tokio::test]
async fn invalid_exports_names_are_refused_at_admission() -> Result<()> {
    use kube::api::{ApiResource, DynamicObject};
    let env = movieapp_tests::LocalEnv::get();
    let client = env.kube().await?;
    fixtures::install_crd(&client).await?;
    let ns = movieapp_tests::unique_name("ch-bad-exports");
    fixtures::namespace(&client, &ns).await?;
    let raw: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &ApiResource::erase::<MovieApp>(&()));
    for (i, name) in [
        json!("Shop_Connection"),
        json!("-leading-dash"),
        json!(""),
        json!("x".repeat(254)),
        json!(7),
    ]
    .into_iter()
    .enumerate()
    {
        let object = serde_json::from_value(manifest(
            &format!("bad-{i}"),
            json!({ "exports": { "configMapName": name } }),
        ))?;
        match raw.create(&PostParams::default(), &object).await {
            Err(kube::Error::Api(status)) => ensure!(
                status.code == 422 && status.message.contains("spec.exports.configMapName"),
                "{name}: expected a 422 naming spec.exports.configMapName, got {} {}",
                status.code,
                status.message
            ),
            Err(other) => bail!("{name}: unexpected error {other}"),
            Ok(_) => bail!("exports name {name} was accepted"),
        }
    }
    let object = serde_json::from_value(manifest("no-name", json!({ "exports": {} })))?;
    match raw.create(&PostParams::default(), &object).await {
        Err(kube::Error::Api(status)) => ensure!(
            status.code == 422 && status.message.contains("configMapName"),
            "exports without a name: {} {}",
            status.code,
            status.message
        ),
        other => bail!("exports without a name: {other:?}"),
    }
    fixtures::delete_namespace(&client, &ns).await
}

fn ports(ports: Option<&Vec<NetworkPolicyPort>>) -> Vec<(String, i32)> {
    ports
        .into_iter()
        .flatten()
        .map(|p| {
            let number = match &p.port {
                Some(IntOrString::Int(n)) => *n,
                _ => -1,
            };
            (p.protocol.clone().unwrap_or_default(), number)
        })
        .collect()
}

/// `spec.worker.networkPolicy`: on by default, selecting exactly the
/// worker's Pods, admitting its port and letting out DNS, HTTPS and the AWS
/// endpoint; repaired when deleted; `ingressFrom` narrows who may connect; a
/// peer the API server refuses stalls with its message; `enabled: false`
/// removes it and leaves the worker Ready.
#[tokio::test]
async fn the_network_policy_has_its_shape_and_can_be_turned_off() -> Result<()> {
    let fixtures::Stage {
        env,
        client,
        ns,
        repository,
        api,
        ..
    } = fixtures::Stage::new("ch-netpol").await?;
    let operator = Operator::start(&ns, &["--resync-interval", "5s"]).await?;
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns);
    api.create(
        &PostParams::default(),
        &movieapp(
            "shop",
            json!({ "worker": { "image": { "repository": repository, "tag": "1.0.0" },
                    "replicas": 1, "port": 8081 } }),
        )?,
    )
    .await?;
    let app = wait_for(&api, "shop", "shop Ready=True", ready).await?;

    let policy = policies.get("shop").await?;
    ensure!(
        policy
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && Some(&o.uid) == app.metadata.uid.as_ref()),
        "the NetworkPolicy is not controlled by the MovieApp"
    );
    let spec = policy.spec.clone().context("spec")?;
    // It selects the worker's Pods: the Deployment's selector, and the Pods running.
    let deployment = Api::<Deployment>::namespaced(client.clone(), &ns)
        .get("shop")
        .await?;
    let selector = spec.pod_selector.clone().and_then(|s| s.match_labels);
    ensure!(
        selector.is_some() && selector == deployment.spec.and_then(|s| s.selector.match_labels),
        "the policy selects {selector:?}, not the worker's Pods"
    );
    let label_selector = selector
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods = Api::<Pod>::namespaced(client.clone(), &ns)
        .list(&ListParams::default().labels(&label_selector))
        .await?;
    ensure!(
        !pods.items.is_empty()
            && pods.items.iter().all(|p| {
                p.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.kind == "ReplicaSet" && o.name.starts_with("shop-"))
            }),
        "the policy's selector finds no worker Pod, or others too"
    );
    ensure!(
        spec.policy_types == Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
        "{:?}",
        spec.policy_types
    );
    let ingress = spec.ingress.clone().unwrap_or_default();
    ensure!(ingress.len() == 2, "{ingress:?}");
    ensure!(ports(ingress[0].ports.as_ref()) == [("TCP".to_owned(), 8081)]);
    ensure!(
        ingress[0].from.is_none(),
        "the HTTP port is open to any source by default"
    );
    ensure!(ports(ingress[1].ports.as_ref()) == [("TCP".to_owned(), 9090)]);
    let egress = spec.egress.clone().unwrap_or_default();
    let moto_port = movieapp_operator::reconcile::children::url_port(&env.aws_endpoint_url)
        .context("AWS_ENDPOINT_URL has no port")?;
    let out: Vec<(String, i32)> = egress
        .iter()
        .flat_map(|rule| ports(rule.ports.as_ref()))
        .collect();
    for wanted in [
        ("UDP".to_owned(), 53),
        ("TCP".to_owned(), 53),
        ("TCP".to_owned(), 443),
        ("TCP".to_owned(), i32::from(moto_port)),
    ] {
        ensure!(out.contains(&wanted), "egress lacks {wanted:?}: {out:?}");
    }
    ensure!(egress.iter().all(|rule| rule.to.is_none()));

    // Deleted out of band: made again.
    policies.delete("shop", &DeleteParams::default()).await?;
    eventually("the NetworkPolicy made again", TIMEOUT, || async {
        Ok(policies
            .get_opt("shop")
            .await?
            .filter(|p| p.metadata.uid != policy.metadata.uid)
            .map(|_| ()))
    })
    .await?;

    // Only the edge namespace may connect.
    patch_spec(
        &api,
        "shop",
        json!({ "worker": { "networkPolicy": { "ingressFrom": [
            { "namespaceSelector": { "matchLabels": { "team": "edge" } } } ] } } }),
    )
    .await?;
    eventually("ingressFrom in the policy", TIMEOUT, || async {
        let from = policies
            .get("shop")
            .await?
            .spec
            .and_then(|s| s.ingress)
            .and_then(|i| i.into_iter().next())
            .and_then(|rule| rule.from)
            .unwrap_or_default();
        Ok((from.len() == 1
            && from[0]
                .namespace_selector
                .as_ref()
                .and_then(|s| s.match_labels.as_ref())
                .and_then(|l| l.get("team"))
                .map(String::as_str)
                == Some("edge"))
        .then_some(()))
    })
    .await?;

    // A peer the API server refuses: Stalled with its message, then repaired.
    patch_spec(
        &api,
        "shop",
        json!({ "worker": { "networkPolicy": { "ingressFrom": [
            { "ipBlock": { "cidr": "10.0.0.0/33" } } ] } } }),
    )
    .await?;
    let refused = wait_for(&api, "shop", "Stalled=True, ChildRejected", |app| {
        is(app, "Stalled", "True", Some("ChildRejected"))
    })
    .await?;
    let message = condition(&refused, "WorkerAvailable")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    ensure!(
        message.contains(&format!("NetworkPolicy {ns}/shop")) && message.contains("cidr"),
        "unclear message: {message}"
    );
    patch_spec(
        &api,
        "shop",
        json!({ "worker": { "networkPolicy": { "ingressFrom": [
            { "ipBlock": { "cidr": "10.0.0.0/16" } } ] } } }),
    )
    .await?;
    wait_for(&api, "shop", "Ready after the repair", ready).await?;

    // Opted out: the policy goes, the worker stays Ready.
    patch_spec(
        &api,
        "shop",
        json!({ "worker": { "networkPolicy": { "enabled": false } } }),
    )
    .await?;
    gone(&policies, "shop", "the NetworkPolicy deleted on opt-out").await?;
    wait_for(&api, "shop", "Ready without a NetworkPolicy", ready).await?;
    tokio::time::sleep(Duration::from_secs(6)).await;
    ensure!(
        policies.get_opt("shop").await?.is_none(),
        "a resync made the NetworkPolicy again"
    );

    operator.stop().await?;
    fixtures::delete_namespace(&client, &ns).await
}
