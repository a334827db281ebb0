//! The ownership tags of everything the operator owns in a region, read with
//! a few paginated Resource Groups Tagging API `GetResources` calls and
//! shared by every MovieApp's resync, instead of one tag call per resource
//! (six per MovieApp: three tables, two queues, the topic).
//!
//! A [`Snapshot`] lists every DynamoDB table, SQS queue and SNS topic of the
//! region that carries `app.kubernetes.io/managed-by=movieapp-operator` and
//! this operator's cluster id (and namespace, when it watches a few), by
//! ARN, 100 to a page. A resource it does not list (untagged, made after
//! it, or not there at all) is looked up one by one as before, so a
//! snapshot can only save requests, never hide a resource: it is used by
//! resyncs only (a new MovieApp, a spec change and an AWS change event read
//! each resource's tags themselves), and only while younger than the age
//! the caller allows. When `GetResources` fails (not allowed by the IAM
//! policy, throttled) the resyncs fall back to one tag call per resource.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_sdk_resourcegroupstagging::types::TagFilter;
use tracing::{info, warn};

use super::tags::{CLUSTER, MANAGED_BY, MANAGER, NAMESPACE};
use super::{AwsClients, AwsError};
use crate::provision::resource::Tags;

const SERVICE: &str = "tag";
/// The resource types a MovieApp owns, as the Tagging API names them.
pub const RESOURCE_TYPES: [&str; 3] = ["dynamodb:table", "sqs", "sns:topic"];
/// The most `GetResources` returns in one page.
const PAGE: i32 = 100;

/// The operator's resources of one region and their tags, by ARN.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// When the first page was asked for: nothing in it is older.
    pub taken: Instant,
    tags: HashMap<String, Tags>,
}

impl Snapshot {
    pub fn new(taken: Instant, tags: HashMap<String, Tags>) -> Self {
        Self { taken, tags }
    }

    /// The tags of the resource with this ARN, when the snapshot lists it.
    pub fn tags(&self, arn: &str) -> Option<&Tags> {
        self.tags.get(arn)
    }

    /// The ARN of the DynamoDB table `name`, when the snapshot lists it.
    pub fn table_arn(&self, name: &str) -> Option<&str> {
        let suffix = format!(":table/{name}");
        self.tags
            .keys()
            .find(|arn| arn.starts_with("arn:") && arn.ends_with(&suffix))
            .map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.tags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }
}

/// One [`Snapshot`] per region, refreshed on demand when too old, one
/// refresh at a time per region.
#[derive(Debug, Default)]
pub struct Snapshots {
    regions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Region>>>>,
    /// Besides the managed-by tag: this operator's cluster id and, for an
    /// operator scoped to a few namespaces, those (`movieapp.io/cluster`,
    /// `movieapp.io/namespace`), so that a snapshot lists what this process
    /// manages rather than every cluster's of the account.
    filters: Vec<TagFilter>,
}

/// The most values one `GetResources` tag filter takes.
const MAX_FILTER_VALUES: usize = 20;

#[derive(Debug, Default)]
struct Region {
    snapshot: Option<Arc<Snapshot>>,
    /// Whether the last refresh failed (logged once, not at every resync).
    failing: bool,
}

impl Snapshots {
    /// Snapshots of the resources of `cluster`, in `namespaces` (all when
    /// empty, or more than one filter can name).
    pub fn new(cluster: &str, namespaces: &[String]) -> Self {
        let mut filters = vec![
            TagFilter::builder().key(MANAGED_BY).values(MANAGER).build(),
            TagFilter::builder().key(CLUSTER).values(cluster).build(),
        ];
        if !namespaces.is_empty() && namespaces.len() <= MAX_FILTER_VALUES {
            filters.push(
                TagFilter::builder()
                    .key(NAMESPACE)
                    .set_values(Some(namespaces.to_vec()))
                    .build(),
            );
        }
        Self {
            regions: Mutex::default(),
            filters,
        }
    }

    /// A snapshot of `aws`'s region no older than `max_age`: the current
    /// one, else a new one. `None` when it cannot be read (the resync then
    /// reads each resource's tags).
    pub async fn fresh(&self, aws: &AwsClients, max_age: Duration) -> Option<Arc<Snapshot>> {
        let region = self
            .regions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(aws.region.clone())
            .or_default()
            .clone();
        // Resyncs that find it stale together wait for one refresh.
        let mut region = region.lock().await;
        if let Some(snapshot) = &region.snapshot
            && snapshot.taken.elapsed() <= max_age
        {
            return Some(snapshot.clone());
        }
        match read(aws, &self.filters).await {
            Ok(snapshot) => {
                if region.failing {
                    info!(region = %aws.region, "reading ownership tags with tag:GetResources again");
                }
                region.failing = false;
                let snapshot = Arc::new(snapshot);
                region.snapshot = Some(snapshot.clone());
                Some(snapshot)
            }
            Err(error) => {
                if !region.failing {
                    warn!(region = %aws.region, %error, "cannot read ownership tags with tag:GetResources: resyncs read each resource's tags instead");
                }
                region.failing = true;
                region.snapshot = None;
                None
            }
        }
    }
}

/// Every page of the resources in `aws`'s region that match every filter
/// (the operator's managed-by tag at least).
pub async fn read(aws: &AwsClients, filters: &[TagFilter]) -> Result<Snapshot, AwsError> {
    let taken = Instant::now();
    let filters = if filters.is_empty() {
        vec![TagFilter::builder().key(MANAGED_BY).values(MANAGER).build()]
    } else {
        filters.to_vec()
    };
    let mappings = super::all_pages(|token| {
        let filters = filters.clone();
        async move {
            let page = aws
                .tagging
                .get_resources()
                .set_tag_filters(Some(filters))
                .set_resource_type_filters(Some(
                    RESOURCE_TYPES.iter().map(|t| (*t).to_owned()).collect(),
                ))
                .resources_per_page(PAGE)
                .set_pagination_token(token)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(SERVICE, "GetResources", e))?;
            Ok((
                page.resource_tag_mapping_list.unwrap_or_default(),
                page.pagination_token,
            ))
        }
    })
    .await?;
    let tags = mappings
        .into_iter()
        .filter_map(|mapping| {
            let tags = mapping
                .tags
                .unwrap_or_default()
                .into_iter()
                .map(|t| (t.key, t.value))
                .collect();
            Some((mapping.resource_arn?, tags))
        })
        .collect();
    Ok(Snapshot::new(taken, tags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_found_by_name_only_as_a_whole_name() {
        let arn = "arn:aws:dynamodb:us-east-1:123456789012:table/movieapp-a-users";
        let snapshot = Snapshot::new(
            Instant::now(),
            HashMap::from([(arn.to_owned(), Tags::new())]),
        );
        assert_eq!(snapshot.table_arn("movieapp-a-users"), Some(arn));
        assert_eq!(snapshot.table_arn("a-users"), None);
        assert_eq!(snapshot.table_arn("movieapp-a-user"), None);
    }
}
