//! Smoke tests of the local environment: each part answers like the real
//! thing, so the operator and api-worker suites can rely on it.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use movieapp_tests::{LocalEnv, eventually, fixtures, unique_name};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);

async fn namespace(client: &kube::Client, prefix: &str) -> Result<String> {
    let name = unique_name(prefix);
    let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": name } }))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .context("creating a test namespace")?;
    Ok(name)
}

async fn delete_namespace(client: &kube::Client, name: &str) -> Result<()> {
    Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await
        .context("deleting the test namespace")?;
    Ok(())
}

#[tokio::test]
async fn kube_lists_namespaces() -> Result<()> {
    let client = LocalEnv::get().kube().await?;
    let names: Vec<String> = Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter_map(|ns| ns.metadata.name)
        .collect();
    for expected in ["default", "kube-system", "kube-public"] {
        ensure!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn deployment_becomes_available_and_garbage_collection_removes_its_replicaset() -> Result<()>
{
    let client = LocalEnv::get().kube().await?;
    let ns = namespace(&client, "smoke-deploy").await?;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), &ns);

    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "web", "image": "registry.invalid/web:1" }] }
            }
        }
    }))?;
    deployments
        .create(&PostParams::default(), &deployment)
        .await?;

    eventually("2 available replicas", TIMEOUT, || async {
        let d = deployments.get("web").await?;
        let available = d.status.and_then(|s| s.available_replicas).unwrap_or(0);
        Ok((available == 2).then_some(()))
    })
    .await?;

    let owned = replica_sets
        .list(&ListParams::default().labels("app=web"))
        .await?;
    ensure!(
        owned.items.len() == 1,
        "expected one ReplicaSet, found {}",
        owned.items.len()
    );

    deployments
        .delete("web", &DeleteParams::background())
        .await?;
    eventually(
        "the ReplicaSet to be garbage-collected",
        TIMEOUT,
        || async {
            let left = replica_sets
                .list(&ListParams::default().labels("app=web"))
                .await?;
            Ok(left.items.is_empty().then_some(()))
        },
    )
    .await?;

    delete_namespace(&client, &ns).await
}

#[tokio::test]
async fn crd_is_established_and_its_schema_and_cel_rules_are_enforced() -> Result<()> {
    let client = LocalEnv::get().kube().await?;
    let group = format!("{}.smoke.movieapp.io", unique_name("g"));
    let crd_name = format!("widgets.{group}");
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": { "name": crd_name },
        "spec": {
            "group": group,
            "names": { "kind": "Widget", "plural": "widgets", "singular": "widget" },
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": { "spec": {
                        "type": "object",
                        "x-kubernetes-validations": [
                            { "rule": "self.min <= self.max", "message": "min must not exceed max" }
                        ],
                        "properties": {
                            "replicas": { "type": "integer", "minimum": 0 },
                            "min": { "type": "integer" },
                            "max": { "type": "integer" }
                        }
                    }}
                }}
            }]
        }
    }))?;
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    crds.create(&PostParams::default(), &crd).await?;
    eventually("the CRD to be Established", TIMEOUT, || async {
        let crd = crds.get(&crd_name).await?;
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        Ok(established.then_some(()))
    })
    .await?;

    let ns = namespace(&client, "smoke-crd").await?;
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(&group, "v1", "Widget"));
    let widgets = Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &resource);
    let widget = |name: &str, spec: serde_json::Value| -> Result<DynamicObject> {
        let mut object = DynamicObject::new(name, &resource);
        object.data = json!({ "spec": spec });
        Ok(object)
    };

    // A valid object is accepted once the new API is served.
    eventually("a valid object to be accepted", TIMEOUT, || async {
        let ok = widgets
            .create(
                &PostParams::default(),
                &widget("good", json!({ "replicas": 1, "min": 1, "max": 2 }))?,
            )
            .await;
        Ok(ok.ok().map(|_| ()))
    })
    .await?;

    let rejected = |result: Result<DynamicObject, kube::Error>| -> Result<String> {
        match result {
            Err(kube::Error::Api(status)) if status.code == 422 => Ok(status.message.to_string()),
            Err(other) => Err(anyhow::anyhow!("expected a 422 rejection, got {other}")),
            Ok(_) => Err(anyhow::anyhow!(
                "expected a rejection, the object was accepted"
            )),
        }
    };
    let message = rejected(
        widgets
            .create(
                &PostParams::default(),
                &widget("negative", json!({ "replicas": -1, "min": 0, "max": 0 }))?,
            )
            .await,
    )?;
    ensure!(
        message.contains("spec.replicas") && message.contains("greater than or equal to 0"),
        "unexpected message: {message}"
    );
    let message = rejected(
        widgets
            .create(
                &PostParams::default(),
                &widget("inverted", json!({ "min": 3, "max": 2 }))?,
            )
            .await,
    )?;
    ensure!(
        message.contains("min must not exceed max"),
        "unexpected message: {message}"
    );

    delete_namespace(&client, &ns).await?;
    crds.delete(&crd_name, &DeleteParams::default()).await?;
    Ok(())
}

#[tokio::test]
async fn dynamodb_table_lifecycle() -> Result<()> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        TableStatus,
    };
    let env = LocalEnv::get();
    let dynamodb = aws_sdk_dynamodb::Client::new(&env.aws().await);
    let name = unique_name("smoke-table");
    dynamodb
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()?,
        )
        .send()
        .await?;
    let table = dynamodb.describe_table().table_name(&name).send().await?;
    let table = table.table.context("DescribeTable returned no table")?;
    ensure!(
        table.table_status == Some(TableStatus::Active),
        "status {:?}",
        table.table_status
    );
    ensure!(table.table_name.as_deref() == Some(name.as_str()));

    dynamodb.delete_table().table_name(&name).send().await?;
    let gone = dynamodb.describe_table().table_name(&name).send().await;
    ensure!(
        gone.as_ref()
            .err()
            .and_then(|e| e.as_service_error())
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "the table still exists: {gone:?}"
    );
    Ok(())
}

#[tokio::test]
async fn sqs_queue_lifecycle() -> Result<()> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let env = LocalEnv::get();
    let sqs = aws_sdk_sqs::Client::new(&env.aws().await);
    let name = unique_name("smoke-queue");
    let url = sqs
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::VisibilityTimeout, "45")
        .send()
        .await?
        .queue_url
        .context("CreateQueue returned no URL")?;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    ensure!(
        attributes
            .get(&QueueAttributeName::VisibilityTimeout)
            .map(String::as_str)
            == Some("45"),
        "attributes: {attributes:?}"
    );
    sqs.delete_queue().queue_url(&url).send().await?;
    let gone = sqs.get_queue_url().queue_name(&name).send().await;
    ensure!(gone.is_err(), "the queue still exists");
    Ok(())
}

#[tokio::test]
async fn sns_topic_delivers_to_a_subscribed_queue() -> Result<()> {
    let env = LocalEnv::get();
    let config = env.aws().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);

    let topic_arn = sns
        .create_topic()
        .name(unique_name("smoke-topic"))
        .send()
        .await?
        .topic_arn
        .context("CreateTopic returned no ARN")?;
    let topic = sns
        .get_topic_attributes()
        .topic_arn(&topic_arn)
        .send()
        .await?;
    ensure!(
        topic.attributes.unwrap_or_default().get("TopicArn") == Some(&topic_arn),
        "GetTopicAttributes does not describe the topic"
    );

    let (queue_url, queue_arn) =
        fixtures::sqs_queue(&sqs, &unique_name("smoke-subscriber")).await?;
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await?;
    sns.publish()
        .topic_arn(&topic_arn)
        .message("hello from the smoke test")
        .send()
        .await?;

    let body = eventually(
        "the message in the queue",
        Duration::from_secs(20),
        || async {
            let received = sqs
                .receive_message()
                .queue_url(&queue_url)
                .wait_time_seconds(1)
                .send()
                .await?;
            Ok(received
                .messages
                .unwrap_or_default()
                .into_iter()
                .find_map(|m| m.body))
        },
    )
    .await?;
    ensure!(
        body == "hello from the smoke test",
        "unexpected body {body}"
    );

    sns.delete_topic().topic_arn(&topic_arn).send().await?;
    sqs.delete_queue().queue_url(&queue_url).send().await?;
    let topics = sns.list_topics().send().await?.topics.unwrap_or_default();
    ensure!(
        !topics
            .iter()
            .any(|t| t.topic_arn.as_deref() == Some(topic_arn.as_str())),
        "the topic still exists"
    );
    Ok(())
}

#[tokio::test]
async fn ecr_image_is_pushed_described_and_deleted() -> Result<()> {
    let env = LocalEnv::get();
    let ecr = aws_sdk_ecr::Client::new(&env.aws().await);
    let repository = unique_name("smoke-repo");
    ecr.create_repository()
        .repository_name(&repository)
        .send()
        .await?;

    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1469,
            "digest": "sha256:0d4b8c1d9f5e2a8e1e4f7d2a6b9c3e5f7a1b2c3d4e5f60718293a4b5c6d7e8f9"
        },
        "layers": []
    });
    ecr.put_image()
        .repository_name(&repository)
        .image_tag("1.0.0")
        .image_manifest(manifest.to_string())
        .image_manifest_media_type("application/vnd.docker.distribution.manifest.v2+json")
        .send()
        .await?;
    let images = ecr
        .describe_images()
        .repository_name(&repository)
        .image_ids(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_tag("1.0.0")
                .build(),
        )
        .send()
        .await?
        .image_details
        .unwrap_or_default();
    let digest = images
        .first()
        .and_then(|i| i.image_digest.clone())
        .context("no image digest")?;
    ensure!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "unexpected digest {digest}"
    );

    ecr.delete_repository()
        .repository_name(&repository)
        .force(true)
        .send()
        .await?;
    let gone = ecr
        .describe_repositories()
        .repository_names(&repository)
        .send()
        .await;
    ensure!(gone.is_err(), "the repository still exists");
    Ok(())
}

#[tokio::test]
async fn tmdb_stub_checks_the_api_key() -> Result<()> {
    let env = LocalEnv::get();
    let http = reqwest::Client::new();
    let url = format!("{}/3/movie/popular", env.tmdb_base_url);

    let ok = http
        .get(&url)
        .query(&[("api_key", env.tmdb_api_key.as_str()), ("page", "1")])
        .send()
        .await?;
    ensure!(ok.status() == 200, "status {}", ok.status());
    let body: serde_json::Value = ok.json().await?;
    let results = body["results"].as_array().context("no results")?;
    ensure!(results.len() == 20, "{} results on page 1", results.len());
    ensure!(
        body["total_results"].as_u64().unwrap_or(0) >= 30,
        "catalog too small: {body}"
    );

    let bearer = http.get(&url).bearer_auth(&env.tmdb_api_key).send().await?;
    ensure!(bearer.status() == 200, "bearer status {}", bearer.status());

    let denied = http.get(&url).query(&[("api_key", "wrong")]).send().await?;
    ensure!(denied.status() == 401, "status {}", denied.status());
    let body: BTreeMap<String, serde_json::Value> = denied.json().await?;
    ensure!(
        body.get("status_code") == Some(&json!(7)),
        "unexpected error body {body:?}"
    );
    Ok(())
}
