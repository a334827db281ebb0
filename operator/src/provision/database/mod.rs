//! The database part: one DynamoDB table per [`movieapp_model::TABLES`]
//! entry, with the model's keys, indexes and TTL attribute and the spec's
//! billing, capacity, point-in-time recovery and encryption.
//!
//! - [`table`]: tables as a resource kind (find, tags, create, the order of
//!   changes, delete);
//! - [`shape`]: keys, indexes, billing and encryption, and the next
//!   `UpdateTable` (pure);
//! - [`ttl`] and [`backups`]: time to live and point-in-time recovery;
//! - [`requests`]: the create and update requests in DynamoDB's types.
//!
//! When AWS answers an update with `UPDATING`, the part reports
//! `Progressing`/`Updating` and the next reconcile continues where this one
//! stopped; when the table stays `ACTIVE` (small tables, moto), the next
//! change follows at once.

mod backups;
mod requests;
pub mod shape;
pub mod table;
mod ttl;

use std::future::Future;

use futures::future::join_all;
use movieapp_model::{TABLES, Table};

use super::inspect::{self, Inspected, ResourceKind};
use super::resource;
use super::{Cleanup, Observed, Target, common};
use crate::aws::AwsError;
use crate::crd::TableStatus;
use shape::DesiredTable;
use table::Tables;

const SERVICE: &str = "dynamodb";

pub async fn ensure(target: &Target<'_>) -> Observed<Vec<TableStatus>> {
    let tables = Tables::of(target);
    // The tables are independent: handle them concurrently.
    let results = join_all(
        TABLES
            .iter()
            .map(|table| ensure_table(&tables, target, table)),
    )
    .await;
    let previous = target
        .previous
        .map(|s| s.tables.as_slice())
        .unwrap_or_default();
    let mut states = Vec::new();
    let mut notices = Vec::new();
    let mut statuses = Vec::new();
    for (table, observed) in TABLES.iter().zip(results) {
        // A table whose lookup failed for a transient reason is still there:
        // keep reporting what the status knew rather than flapping.
        let value = observed.value.or_else(|| {
            (!observed.state.is_blocked())
                .then(|| {
                    previous
                        .iter()
                        .find(|t| t.component == table.component)
                        .cloned()
                })
                .flatten()
        });
        statuses.extend(value);
        states.push((format!("table {}", table.component), observed.state));
        notices.extend(observed.notices);
    }
    let state = common::combine(states, format!("{} tables provisioned", TABLES.len()));
    Observed {
        state,
        value: (!statuses.is_empty()).then_some(statuses),
        notices,
    }
}

async fn ensure_table(
    tables: &Tables<'_>,
    target: &Target<'_>,
    table: &Table,
) -> Observed<TableStatus> {
    let name = target.names().table(table.component).to_owned();
    let desired = DesiredTable::new(
        table,
        &target.spec.database,
        target.spec.deletion_protection(),
    );
    let recorded = target
        .previous
        .is_some_and(|s| s.tables.iter().any(|t| t.name == name));
    let declared = resource::Declared {
        id: &name,
        desired: &desired,
        recorded,
    };
    resource::ensure(tables, target, declared)
        .await
        .observed(|found| TableStatus {
            component: table.component.to_owned(),
            name: found.name,
            arn: found.arn,
        })
}

/// Every table as it stands, read only ([`inspect`](super::inspect)).
pub async fn inspect(target: &Target<'_>) -> Vec<Inspected> {
    let tables = Tables::of(target);
    let tables = &tables;
    let names = target.names();
    let names = &names;
    join_all(TABLES.iter().map(|table| async move {
        let name = names.table(table.component).to_owned();
        let (presence, _) = inspect::one(tables, target, &name, |t| t.arn.clone()).await;
        Inspected {
            kind: ResourceKind::Table,
            component: table.component.to_owned(),
            name,
            declared: true,
            presence,
        }
    }))
    .await
}

/// Deletes every table that is ours; done once AWS reports them all gone.
pub async fn delete(target: &Target<'_>) -> Result<Cleanup, AwsError> {
    let tables = Tables::of(target);
    let results = every_table(target, |name| async move {
        resource::delete(&tables, target, &name).await
    })
    .await;
    let waiting: Vec<Option<String>> = results.into_iter().collect::<Result<_, _>>()?;
    Ok(Cleanup::waiting_for(
        waiting.into_iter().flatten().collect(),
    ))
}

/// Tags every table that is ours as retained.
pub async fn retain(target: &Target<'_>) -> Result<(), AwsError> {
    let tables = Tables::of(target);
    let results = every_table(target, |name| async move {
        resource::retain(&tables, target, &name).await
    })
    .await;
    results.into_iter().try_for_each(|result| result.map(drop))
}

/// `op` on the physical name of every table, all at once (the tables are
/// independent); the results in [`TABLES`] order.
async fn every_table<T, F>(target: &Target<'_>, op: impl Fn(String) -> F) -> Vec<T>
where
    F: Future<Output = T>,
{
    let names = target.names();
    join_all(
        TABLES
            .iter()
            .map(|table| op(names.table(table.component).to_owned())),
    )
    .await
}
