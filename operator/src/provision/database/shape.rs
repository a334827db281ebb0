//! A table's keys, indexes, billing and encryption: what the model and the
//! spec declare ([`DesiredTable`]), what DescribeTable reports
//! ([`TableShape`]), and the next `UpdateTable` between them ([`plan`]),
//! pure and tested with tables of cases.
//!
//! DynamoDB's rules shape the plan: nothing changes while the table or an
//! index is not `ACTIVE`, and one `UpdateTable` carries one kind of change
//! (at most one index created or deleted).

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types as ddb;
use movieapp_model::{KeyAttr, Table};

use crate::crd::{BillingMode, DatabaseSpec, TableEncryption};
use crate::reason::Reason;

/// A key attribute in a key schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPart {
    pub name: String,
    /// `S` or `N`.
    pub kind: String,
    /// `RANGE` (sort key) rather than `HASH` (partition key).
    pub range: bool,
}

impl KeyPart {
    fn of(attr: KeyAttr, range: bool) -> Self {
        Self {
            name: attr.name.to_owned(),
            kind: attr.kind.code().to_owned(),
            range,
        }
    }
}

fn key_parts(partition: KeyAttr, sort: Option<KeyAttr>) -> Vec<KeyPart> {
    std::iter::once(KeyPart::of(partition, false))
        .chain(sort.map(|s| KeyPart::of(s, true)))
        .collect()
}

fn describe_keys(keys: &[KeyPart]) -> String {
    keys.iter()
        .map(|k| {
            let role = if k.range { "sort" } else { "partition" };
            format!("{} ({}, {role})", k.name, k.kind)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Billing as compared: on-demand, or provisioned with its capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Billing {
    OnDemand,
    Provisioned { read: i64, write: i64 },
}

/// Server-side encryption as compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    AwsOwned,
    Kms,
    /// Being enabled, disabled or updated: wait.
    Changing,
}

/// A global secondary index the model declares (every index projects all
/// attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredIndex {
    pub name: String,
    pub keys: Vec<KeyPart>,
}

/// Everything about one table that the model and the spec declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredTable {
    pub keys: Vec<KeyPart>,
    /// Every key attribute of the table and its indexes, once.
    pub attributes: Vec<KeyAttr>,
    pub indexes: Vec<DesiredIndex>,
    pub billing: Billing,
    pub encryption: Encryption,
    pub point_in_time_recovery: bool,
    pub ttl_attribute: Option<String>,
    /// DynamoDB deletion protection ([`crate::crd::MovieAppSpec::deletion_protection`]).
    pub deletion_protection: bool,
}

impl DesiredTable {
    pub fn new(table: &Table, spec: &DatabaseSpec, deletion_protection: bool) -> Self {
        let billing = match (
            spec.billing_mode,
            spec.read_capacity_units,
            spec.write_capacity_units,
        ) {
            // Admission requires both capacities with PROVISIONED; should an
            // object slip through without them, 1/1 is the smallest valid
            // capacity rather than a failed request.
            (BillingMode::Provisioned, read, write) => Billing::Provisioned {
                read: read.unwrap_or(1).max(1),
                write: write.unwrap_or(1).max(1),
            },
            (BillingMode::PayPerRequest, _, _) => Billing::OnDemand,
        };
        Self {
            keys: key_parts(table.partition_key, table.sort_key),
            attributes: table.key_attributes(),
            indexes: table
                .indexes
                .iter()
                .map(|index| DesiredIndex {
                    name: index.name.to_owned(),
                    keys: key_parts(index.partition_key, index.sort_key),
                })
                .collect(),
            billing,
            encryption: match spec.encryption {
                TableEncryption::AwsOwned => Encryption::AwsOwned,
                TableEncryption::Kms => Encryption::Kms,
            },
            point_in_time_recovery: spec.point_in_time_recovery,
            ttl_attribute: table.ttl_attribute.map(str::to_owned),
            deletion_protection,
        }
    }
}

/// An index as DescribeTable reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexShape {
    pub name: String,
    pub keys: Vec<KeyPart>,
    pub projects_all: bool,
    pub status: String,
    /// Read and write capacity (0/0 for on-demand tables).
    pub capacity: (i64, i64),
}

/// A table as DescribeTable reports it, reduced to what is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableShape {
    pub status: String,
    pub keys: Vec<KeyPart>,
    pub billing: Billing,
    pub indexes: Vec<IndexShape>,
    pub encryption: Encryption,
    pub deletion_protection: bool,
}

impl TableShape {
    pub fn from_description(description: &ddb::TableDescription) -> Self {
        let types: BTreeMap<&str, &str> = description
            .attribute_definitions()
            .iter()
            .map(|a| (a.attribute_name.as_str(), a.attribute_type.as_str()))
            .collect();
        let keys = |schema: &[ddb::KeySchemaElement]| -> Vec<KeyPart> {
            let mut parts: Vec<KeyPart> = schema
                .iter()
                .map(|k| KeyPart {
                    name: k.attribute_name.clone(),
                    kind: types
                        .get(k.attribute_name.as_str())
                        .copied()
                        .unwrap_or_default()
                        .to_owned(),
                    range: k.key_type == ddb::KeyType::Range,
                })
                .collect();
            // The partition key first, whatever order AWS lists them in.
            parts.sort_by_key(|k| k.range);
            parts
        };
        let capacity = |t: Option<&ddb::ProvisionedThroughputDescription>| {
            (
                t.and_then(|t| t.read_capacity_units).unwrap_or(0),
                t.and_then(|t| t.write_capacity_units).unwrap_or(0),
            )
        };
        // Tables created before on-demand existed report no billing summary.
        let on_demand = description
            .billing_mode_summary()
            .and_then(|b| b.billing_mode.as_ref())
            == Some(&ddb::BillingMode::PayPerRequest);
        let billing = if on_demand {
            Billing::OnDemand
        } else {
            let (read, write) = capacity(description.provisioned_throughput());
            Billing::Provisioned { read, write }
        };
        let encryption = match description.sse_description() {
            None => Encryption::AwsOwned,
            Some(sse) => match (&sse.status, &sse.sse_type) {
                (Some(ddb::SseStatus::Enabled), Some(ddb::SseType::Kms)) => Encryption::Kms,
                (Some(ddb::SseStatus::Enabled | ddb::SseStatus::Disabled) | None, _) => {
                    Encryption::AwsOwned
                }
                _ => Encryption::Changing,
            },
        };
        Self {
            status: description
                .table_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            keys: keys(description.key_schema()),
            billing,
            indexes: description
                .global_secondary_indexes()
                .iter()
                .map(|index| IndexShape {
                    name: index.index_name.clone().unwrap_or_default(),
                    keys: keys(index.key_schema.as_deref().unwrap_or_default()),
                    projects_all: index
                        .projection
                        .as_ref()
                        .and_then(|p| p.projection_type.as_ref())
                        == Some(&ddb::ProjectionType::All),
                    status: index
                        .index_status
                        .as_ref()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    capacity: capacity(index.provisioned_throughput.as_ref()),
                })
                .collect(),
            encryption,
            deletion_protection: description.deletion_protection_enabled().unwrap_or(false),
        }
    }

    /// Why nothing may be changed right now, if so: DynamoDB refuses updates
    /// to a table or index that is not `ACTIVE`.
    pub fn busy(&self) -> Option<(Reason, String)> {
        if self.status != "ACTIVE" {
            let reason = if self.status == "CREATING" {
                Reason::Creating
            } else {
                Reason::Updating
            };
            return Some((reason, format!("table is {}", self.status)));
        }
        if let Some(index) = self.indexes.iter().find(|i| i.status != "ACTIVE") {
            return Some((
                Reason::Updating,
                format!("index {} is {}", index.name, index.status),
            ));
        }
        if self.encryption == Encryption::Changing {
            return Some((Reason::Updating, "encryption is changing".to_owned()));
        }
        None
    }
}

/// One `UpdateTable` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableChange {
    /// An index the model does not declare, or declares differently (an
    /// index's keys cannot be changed in place: it is deleted, then created).
    DeleteIndex(String),
    /// Billing mode and/or capacity of the table and of its indexes.
    Capacity {
        table: Option<Billing>,
        indexes: Vec<String>,
    },
    CreateIndex(DesiredIndex),
    Encryption(Encryption),
    DeletionProtection(bool),
}

impl TableChange {
    pub fn describe(&self) -> String {
        match self {
            Self::DeleteIndex(name) => {
                format!("deleted index {name}, which the data model does not declare in this form")
            }
            Self::Capacity {
                table: Some(Billing::OnDemand),
                ..
            } => "switched to on-demand (PAY_PER_REQUEST) billing".to_owned(),
            Self::Capacity {
                table: Some(Billing::Provisioned { read, write }),
                ..
            } => format!(
                "set PROVISIONED billing with {read} read / {write} write capacity units (table and indexes)"
            ),
            Self::Capacity {
                table: None,
                indexes,
            } => format!("set the capacity of index {}", indexes.join(", ")),
            Self::CreateIndex(index) => format!("created index {}", index.name),
            Self::Encryption(Encryption::Kms) => {
                "switched server-side encryption to the AWS managed KMS key".to_owned()
            }
            Self::Encryption(_) => {
                "switched server-side encryption to the AWS owned key".to_owned()
            }
            Self::DeletionProtection(true) => "enabled deletion protection".to_owned(),
            Self::DeletionProtection(false) => "disabled deletion protection".to_owned(),
        }
    }
}

/// The next change that brings `actual` closer to `desired`, in the order
/// that keeps each step valid: drop wrong indexes, set billing and
/// capacity, create missing indexes, then encryption. Deletion protection
/// that should be on comes first (a table is never left unprotected while
/// other changes wait), protection that should be off last. `Err` when the
/// table can never match (its own key schema cannot change).
pub fn plan(desired: &DesiredTable, actual: &TableShape) -> Result<Option<TableChange>, String> {
    if desired.deletion_protection && !actual.deletion_protection {
        return Ok(Some(TableChange::DeletionProtection(true)));
    }
    if actual.keys != desired.keys {
        return Err(format!(
            "its key schema is {}, but the application needs {}; a key schema cannot be changed, \
             so delete or rename that table",
            describe_keys(&actual.keys),
            describe_keys(&desired.keys)
        ));
    }
    let matches = |index: &IndexShape| {
        desired
            .indexes
            .iter()
            .any(|d| d.name == index.name && d.keys == index.keys && index.projects_all)
    };
    if let Some(wrong) = actual.indexes.iter().find(|i| !matches(i)) {
        return Ok(Some(TableChange::DeleteIndex(wrong.name.clone())));
    }
    if let Some(change) = capacity_change(desired.billing, actual) {
        return Ok(Some(change));
    }
    if let Some(missing) = desired
        .indexes
        .iter()
        .find(|d| !actual.indexes.iter().any(|i| i.name == d.name))
    {
        return Ok(Some(TableChange::CreateIndex(missing.clone())));
    }
    if desired.encryption != actual.encryption {
        return Ok(Some(TableChange::Encryption(desired.encryption)));
    }
    if desired.deletion_protection != actual.deletion_protection {
        return Ok(Some(TableChange::DeletionProtection(
            desired.deletion_protection,
        )));
    }
    Ok(None)
}

/// The shape as it would be once `change` is applied and the table is
/// `ACTIVE` again: what lets an observe-only pass plan on and list every
/// change. Pure.
pub fn assume(actual: &TableShape, change: &TableChange) -> TableShape {
    let mut shape = actual.clone();
    let capacity = |billing: Billing| match billing {
        Billing::Provisioned { read, write } => (read, write),
        Billing::OnDemand => (0, 0),
    };
    match change {
        TableChange::DeleteIndex(name) => shape.indexes.retain(|i| &i.name != name),
        TableChange::Capacity { table, indexes } => {
            if let Some(billing) = table {
                shape.billing = *billing;
            }
            let set = capacity(shape.billing);
            for index in shape
                .indexes
                .iter_mut()
                .filter(|i| indexes.contains(&i.name))
            {
                index.capacity = set;
            }
        }
        TableChange::CreateIndex(index) => shape.indexes.push(IndexShape {
            name: index.name.clone(),
            keys: index.keys.clone(),
            projects_all: true,
            status: "ACTIVE".to_owned(),
            capacity: capacity(shape.billing),
        }),
        TableChange::Encryption(encryption) => shape.encryption = *encryption,
        TableChange::DeletionProtection(enabled) => shape.deletion_protection = *enabled,
    }
    shape
}

fn capacity_change(desired: Billing, actual: &TableShape) -> Option<TableChange> {
    match desired {
        Billing::OnDemand => {
            (actual.billing != Billing::OnDemand).then_some(TableChange::Capacity {
                table: Some(Billing::OnDemand),
                indexes: Vec::new(),
            })
        }
        Billing::Provisioned { read, write } => {
            let switching = actual.billing == Billing::OnDemand;
            let table = (actual.billing != desired).then_some(desired);
            // Switching to PROVISIONED needs every index's capacity in the
            // same call; otherwise only the indexes whose capacity differs
            // (AWS rejects an update that changes nothing).
            let indexes: Vec<String> = actual
                .indexes
                .iter()
                .filter(|i| switching || i.capacity != (read, write))
                .map(|i| i.name.clone())
                .collect();
            (table.is_some() || !indexes.is_empty())
                .then_some(TableChange::Capacity { table, indexes })
        }
    }
}

#[cfg(test)]
mod tests;
