//! What exists in AWS (moto) for one namespace's MovieApps, read with the SDK
//! directly: every table, queue and topic whose physical name belongs to the
//! namespace, with its ownership tag, and each topic's subscriptions.
//! Tests compare it with the live MovieApps to find duplicates and orphans.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use movieapp_operator::aws::tags;

/// A table as DynamoDB describes it; `None` when there is none.
pub async fn describe_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<Option<aws_sdk_dynamodb::types::TableDescription>> {
    match dynamodb.describe_table().table_name(name).send().await {
        Ok(output) => Ok(output.table),
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

/// One AWS resource and the uid tag it carries (`None`: untagged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub name: String,
    pub owner_uid: Option<String>,
}

/// Tables, queues and topics of one namespace.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub tables: Vec<Resource>,
    pub queues: Vec<Resource>,
    pub topics: Vec<Resource>,
    /// Subscriptions by topic name.
    pub subscriptions: BTreeMap<String, usize>,
}

/// How many of each kind one MovieApp owns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owned {
    pub tables: usize,
    pub queues: usize,
    pub topics: usize,
    pub subscriptions: usize,
}

impl Owned {
    /// What one MovieApp owns: three tables, the jobs queue and its DLQ,
    /// the topic with the jobs queue subscribed.
    pub const ONE_MOVIEAPP: Self = Self {
        tables: 3,
        queues: 2,
        topics: 1,
        subscriptions: 1,
    };
}

impl Inventory {
    /// Reads every resource named `movieapp-<namespace>-…` (the operator's
    /// physical names keep the whole namespace for the short ones the tests use).
    pub async fn of_namespace(aws: &aws_config::SdkConfig, namespace: &str) -> Result<Self> {
        let prefix = format!("{}-{namespace}-", movieapp_operator::naming::PREFIX);
        let dynamodb = aws_sdk_dynamodb::Client::new(aws);
        let sqs = aws_sdk_sqs::Client::new(aws);
        let sns = aws_sdk_sns::Client::new(aws);
        let mut inventory = Self::default();

        let mut pages = dynamodb.list_tables().into_paginator().send();
        while let Some(page) = pages.next().await {
            for name in page.context("ListTables")?.table_names.unwrap_or_default() {
                if !name.starts_with(&prefix) {
                    continue;
                }
                let arn = dynamodb
                    .describe_table()
                    .table_name(&name)
                    .send()
                    .await
                    .with_context(|| format!("DescribeTable {name}"))?
                    .table
                    .and_then(|t| t.table_arn)
                    .context("a table without an ARN")?;
                let owner_uid = dynamodb
                    .list_tags_of_resource()
                    .resource_arn(&arn)
                    .send()
                    .await
                    .with_context(|| format!("ListTagsOfResource {name}"))?
                    .tags
                    .unwrap_or_default()
                    .into_iter()
                    .find(|t| t.key == tags::UID)
                    .map(|t| t.value);
                inventory.tables.push(Resource { name, owner_uid });
            }
        }

        let mut pages = sqs
            .list_queues()
            .queue_name_prefix(&prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for url in page.context("ListQueues")?.queue_urls.unwrap_or_default() {
                let owner_uid = sqs
                    .list_queue_tags()
                    .queue_url(&url)
                    .send()
                    .await
                    .with_context(|| format!("ListQueueTags {url}"))?
                    .tags
                    .unwrap_or_default()
                    .remove(tags::UID);
                let name = url.rsplit('/').next().unwrap_or_default().to_owned();
                inventory.queues.push(Resource { name, owner_uid });
            }
        }

        let mut pages = sns.list_topics().into_paginator().send();
        while let Some(page) = pages.next().await {
            for arn in page
                .context("ListTopics")?
                .topics
                .unwrap_or_default()
                .into_iter()
                .filter_map(|t| t.topic_arn)
            {
                let name = arn.rsplit(':').next().unwrap_or_default().to_owned();
                if !name.starts_with(&prefix) {
                    continue;
                }
                let owner_uid = sns
                    .list_tags_for_resource()
                    .resource_arn(&arn)
                    .send()
                    .await
                    .with_context(|| format!("ListTagsForResource {arn}"))?
                    .tags
                    .unwrap_or_default()
                    .into_iter()
                    .find(|t| t.key == tags::UID)
                    .map(|t| t.value);
                let mut subscriptions = 0;
                let mut pages = sns
                    .list_subscriptions_by_topic()
                    .topic_arn(&arn)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    subscriptions += page
                        .context("ListSubscriptionsByTopic")?
                        .subscriptions
                        .unwrap_or_default()
                        .len();
                }
                inventory.subscriptions.insert(name.clone(), subscriptions);
                inventory.topics.push(Resource { name, owner_uid });
            }
        }
        Ok(inventory)
    }

    /// What each owner uid holds (`""` for untagged resources).
    pub fn by_owner(&self) -> BTreeMap<String, Owned> {
        let mut owners: BTreeMap<String, Owned> = BTreeMap::new();
        let uid = |r: &Resource| r.owner_uid.clone().unwrap_or_default();
        for table in &self.tables {
            owners.entry(uid(table)).or_default().tables += 1;
        }
        for queue in &self.queues {
            owners.entry(uid(queue)).or_default().queues += 1;
        }
        for topic in &self.topics {
            let owned = owners.entry(uid(topic)).or_default();
            owned.topics += 1;
            owned.subscriptions += self
                .subscriptions
                .get(&topic.name)
                .copied()
                .unwrap_or_default();
        }
        owners
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.queues.is_empty() && self.topics.is_empty()
    }
}
