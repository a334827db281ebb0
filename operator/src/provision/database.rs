//! DynamoDB: one table per [`movieapp_model::TABLES`] entry, with the model's
//! keys, indexes and TTL attribute and the spec's billing, capacity,
//! point-in-time recovery and encryption.
//!
//! Changes follow DynamoDB's rules: nothing is changed while a table or an
//! index is not `ACTIVE`, and one `UpdateTable` carries one kind of change
//! (at most one index created or deleted). When AWS answers an update with
//! `UPDATING`, the part reports `Progressing`/`Updating` and the next
//! reconcile continues where this one stopped; when the table stays `ACTIVE`
//! (small tables, moto), the next change follows at once.
//!
//! Desired and actual settings are reduced to small comparable values
//! ([`DesiredTable`], [`TableShape`]); [`plan`] is pure and unit-tested.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types as ddb;
use futures::future::join_all;
use movieapp_model::{AttrType, KeyAttr, TABLES, Table};

use super::common::{self, Claim, Halt};
use super::{Cleanup, Notice, Observed, Target};
use crate::aws::AwsError;
use crate::crd::{BillingMode, DatabaseSpec, TableEncryption, TableStatus};
use crate::reason::Reason;

const SERVICE: &str = "dynamodb";

/// Changes applied in one reconcile before handing over to the next, so
/// that one pass stays short even when AWS applies changes instantly.
const MAX_UPDATES_PER_PASS: usize = 4;

pub async fn ensure(target: &Target<'_>) -> Observed<Vec<TableStatus>> {
    // The tables are independent: handle them concurrently.
    let results = join_all(TABLES.iter().map(|table| ensure_table(target, table))).await;
    let previous = target
        .previous
        .map(|s| s.tables.as_slice())
        .unwrap_or_default();
    let mut states = Vec::new();
    let mut notices = Vec::new();
    let mut tables = Vec::new();
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
        tables.extend(value);
        states.push((format!("table {}", table.component), observed.state));
        notices.extend(observed.notices);
    }
    let state = common::combine(states, format!("{} tables provisioned", TABLES.len()));
    Observed {
        state,
        value: (!tables.is_empty()).then_some(tables),
        notices,
    }
}

async fn ensure_table(target: &Target<'_>, table: &Table) -> Observed<TableStatus> {
    let name = target.id.table_name(table.component);
    let mut notices = Vec::new();
    let mut value = None;
    match reconcile_table(target, table, &name, &mut value, &mut notices).await {
        Ok(()) => match value {
            Some(value) => Observed::ready(value, notices),
            None => Halt::progressing(
                Reason::Creating,
                format!("DynamoDB table {name}: no ARN yet"),
            )
            .observed(None, notices),
        },
        Err(halt) => halt.observed(value, notices),
    }
}

async fn reconcile_table(
    target: &Target<'_>,
    table: &Table,
    name: &str,
    value: &mut Option<TableStatus>,
    notices: &mut Vec<Notice>,
) -> Result<(), Halt> {
    let dynamodb = &target.aws.dynamodb;
    let desired = DesiredTable::new(table, &target.spec.database);
    let what = format!("DynamoDB table {name}");

    let (description, created) = match describe(dynamodb, name).await? {
        Some(description) => (description, false),
        None => {
            let known_before = target
                .previous
                .is_some_and(|s| s.tables.iter().any(|t| t.name == name));
            let Some(description) = create(target, &desired, name).await? else {
                return Err(Halt::progressing(
                    Reason::Creating,
                    format!("{what} is being created"),
                ));
            };
            notices.push(common::created(known_before, &what));
            (description, true)
        }
    };
    let arn = description
        .table_arn
        .clone()
        .ok_or_else(|| Halt::progressing(Reason::Creating, format!("{what} has no ARN yet")))?;

    // A table we just created carries our tags already.
    if !created {
        claim(target, &arn, &what, notices).await?;
    }
    *value = Some(TableStatus {
        component: table.component.to_owned(),
        name: name.to_owned(),
        arn,
    });

    apply_table_changes(target, &desired, name, &what, description, notices).await?;
    ensure_point_in_time_recovery(target, &desired, name, &what, notices).await?;
    ensure_time_to_live(target, &desired, name, &what, notices).await?;
    Ok(())
}

/// Checks the table's owner; adopts or repairs its tags when allowed.
async fn claim(
    target: &Target<'_>,
    arn: &str,
    what: &str,
    notices: &mut Vec<Notice>,
) -> Result<(), Halt> {
    let dynamodb = &target.aws.dynamodb;
    let tags = list_tags(dynamodb, arn).await?;
    match common::claim(target, what, &tags) {
        Claim::Conflict(message) => Err(Halt::blocked(Reason::NameConflict, message)),
        Claim::Adopt => {
            write_tags(dynamodb, arn, &common::tag_changes(target.owner, &tags)).await?;
            notices.push(common::adopted(what));
            Ok(())
        }
        Claim::Ours => {
            let changes = common::tag_changes(target.owner, &tags);
            if !changes.is_empty() {
                write_tags(dynamodb, arn, &changes).await?;
                notices.push(common::changed(
                    target,
                    format!("{what}: restored tags {}", changes.describe()),
                ));
            }
            Ok(())
        }
    }
}

/// Brings billing, capacity, indexes and encryption to the declared state,
/// one `UpdateTable` at a time.
async fn apply_table_changes(
    target: &Target<'_>,
    desired: &DesiredTable,
    name: &str,
    what: &str,
    description: ddb::TableDescription,
    notices: &mut Vec<Notice>,
) -> Result<(), Halt> {
    let mut shape = TableShape::from_description(&description);
    for _ in 0..MAX_UPDATES_PER_PASS {
        if let Some((reason, message)) = shape.busy() {
            return Err(Halt::progressing(reason, format!("{what}: {message}")));
        }
        let change = match plan(desired, &shape) {
            Ok(Some(change)) => change,
            Ok(None) => return Ok(()),
            Err(incompatible) => {
                return Err(Halt::blocked(
                    Reason::IncompatibleTable,
                    format!("{what}: {incompatible}"),
                ));
            }
        };
        let description = update_table(&target.aws.dynamodb, name, desired, &change).await?;
        notices.push(common::changed(
            target,
            format!("{what}: {}", change.describe()),
        ));
        shape = TableShape::from_description(&description);
    }
    Err(Halt::progressing(
        Reason::Updating,
        format!("{what}: more changes follow at the next reconcile"),
    ))
}

async fn ensure_point_in_time_recovery(
    target: &Target<'_>,
    desired: &DesiredTable,
    name: &str,
    what: &str,
    notices: &mut Vec<Notice>,
) -> Result<(), Halt> {
    let dynamodb = &target.aws.dynamodb;
    let enabled = dynamodb
        .describe_continuous_backups()
        .table_name(name)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(SERVICE, "DescribeContinuousBackups", e))?
        .continuous_backups_description
        .and_then(|d| d.point_in_time_recovery_description)
        .and_then(|d| d.point_in_time_recovery_status)
        == Some(ddb::PointInTimeRecoveryStatus::Enabled);
    if enabled == desired.point_in_time_recovery {
        return Ok(());
    }
    let specification = ddb::PointInTimeRecoverySpecification::builder()
        .point_in_time_recovery_enabled(desired.point_in_time_recovery)
        .build()
        .map_err(|e| common::build_error(SERVICE, "UpdateContinuousBackups", e))?;
    dynamodb
        .update_continuous_backups()
        .table_name(name)
        .point_in_time_recovery_specification(specification)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(SERVICE, "UpdateContinuousBackups", e))?;
    let verb = if desired.point_in_time_recovery {
        "enabled"
    } else {
        "disabled"
    };
    notices.push(common::changed(
        target,
        format!("{what}: {verb} point-in-time recovery"),
    ));
    Ok(())
}

async fn ensure_time_to_live(
    target: &Target<'_>,
    desired: &DesiredTable,
    name: &str,
    what: &str,
    notices: &mut Vec<Notice>,
) -> Result<(), Halt> {
    let dynamodb = &target.aws.dynamodb;
    let description = dynamodb
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(SERVICE, "DescribeTimeToLive", e))?
        .time_to_live_description;
    let actual = TtlState::from_description(description.as_ref());
    let Some(step) = ttl_step(desired.ttl_attribute.as_deref(), &actual) else {
        return Ok(());
    };
    let (enabled, attribute) = match &step {
        TtlStep::Wait => {
            return Err(Halt::progressing(
                Reason::Updating,
                format!("{what}: time to live is changing"),
            ));
        }
        TtlStep::Enable(attribute) => (true, attribute.as_str()),
        TtlStep::Disable(attribute) => (false, attribute.as_str()),
    };
    let specification = ddb::TimeToLiveSpecification::builder()
        .enabled(enabled)
        .attribute_name(attribute)
        .build()
        .map_err(|e| common::build_error(SERVICE, "UpdateTimeToLive", e))?;
    dynamodb
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(specification)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(SERVICE, "UpdateTimeToLive", e))?;
    let verb = if enabled { "enabled" } else { "disabled" };
    notices.push(common::changed(
        target,
        format!("{what}: {verb} time to live on {attribute}"),
    ));
    Ok(())
}

// ------------------------------------------------------------------ desired and actual

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
}

impl DesiredTable {
    pub fn new(table: &Table, spec: &DatabaseSpec) -> Self {
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
        }
    }
}

/// The next change that brings `actual` closer to `desired`, in the order
/// that keeps each step valid: drop wrong indexes, set billing and
/// capacity, create missing indexes, then encryption. `Err` when the table
/// can never match (its own key schema cannot change).
pub fn plan(desired: &DesiredTable, actual: &TableShape) -> Result<Option<TableChange>, String> {
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
    Ok(None)
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

/// Time to live as DescribeTimeToLive reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtlState {
    pub status: String,
    pub attribute: Option<String>,
}

impl TtlState {
    fn from_description(description: Option<&ddb::TimeToLiveDescription>) -> Self {
        Self {
            status: description
                .and_then(|d| d.time_to_live_status.as_ref())
                .map(|s| s.as_str().to_owned())
                .unwrap_or_else(|| "DISABLED".to_owned()),
            attribute: description.and_then(|d| d.attribute_name.clone()),
        }
    }
}

/// The next time-to-live call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TtlStep {
    Enable(String),
    Disable(String),
    /// `ENABLING`/`DISABLING`: DynamoDB refuses changes meanwhile.
    Wait,
}

/// TTL on the model's attribute, and off on tables without one (an expiry
/// set by hand on the users table would silently delete accounts).
pub fn ttl_step(desired: Option<&str>, actual: &TtlState) -> Option<TtlStep> {
    match actual.status.as_str() {
        "ENABLING" | "DISABLING" => Some(TtlStep::Wait),
        "ENABLED" => {
            let current = actual.attribute.as_deref().unwrap_or_default();
            // Another attribute: switch it off first; enabling follows.
            (desired != Some(current)).then(|| TtlStep::Disable(current.to_owned()))
        }
        _ => desired.map(|attribute| TtlStep::Enable(attribute.to_owned())),
    }
}

// ------------------------------------------------------------------ requests

fn key_schema(
    keys: &[KeyPart],
    operation: &'static str,
) -> Result<Vec<ddb::KeySchemaElement>, AwsError> {
    keys.iter()
        .map(|k| {
            ddb::KeySchemaElement::builder()
                .attribute_name(&k.name)
                .key_type(if k.range {
                    ddb::KeyType::Range
                } else {
                    ddb::KeyType::Hash
                })
                .build()
                .map_err(|e| common::build_error(SERVICE, operation, e))
        })
        .collect()
}

fn attribute_definitions(
    attributes: &[KeyAttr],
    operation: &'static str,
) -> Result<Vec<ddb::AttributeDefinition>, AwsError> {
    attributes
        .iter()
        .map(|a| {
            ddb::AttributeDefinition::builder()
                .attribute_name(a.name)
                .attribute_type(match a.kind {
                    AttrType::String => ddb::ScalarAttributeType::S,
                    AttrType::Number => ddb::ScalarAttributeType::N,
                })
                .build()
                .map_err(|e| common::build_error(SERVICE, operation, e))
        })
        .collect()
}

fn throughput(
    billing: Billing,
    operation: &'static str,
) -> Result<Option<ddb::ProvisionedThroughput>, AwsError> {
    let Billing::Provisioned { read, write } = billing else {
        return Ok(None);
    };
    ddb::ProvisionedThroughput::builder()
        .read_capacity_units(read)
        .write_capacity_units(write)
        .build()
        .map(Some)
        .map_err(|e| common::build_error(SERVICE, operation, e))
}

fn billing_mode(billing: Billing) -> ddb::BillingMode {
    match billing {
        Billing::OnDemand => ddb::BillingMode::PayPerRequest,
        Billing::Provisioned { .. } => ddb::BillingMode::Provisioned,
    }
}

fn sse_specification(encryption: Encryption) -> ddb::SseSpecification {
    match encryption {
        // No KMSMasterKeyId: DynamoDB uses the account's AWS managed key.
        Encryption::Kms => ddb::SseSpecification::builder()
            .enabled(true)
            .sse_type(ddb::SseType::Kms)
            .build(),
        Encryption::AwsOwned | Encryption::Changing => {
            ddb::SseSpecification::builder().enabled(false).build()
        }
    }
}

fn projection_all() -> ddb::Projection {
    ddb::Projection::builder()
        .projection_type(ddb::ProjectionType::All)
        .build()
}

// ------------------------------------------------------------------ calls

async fn describe(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<Option<ddb::TableDescription>, AwsError> {
    match dynamodb.describe_table().table_name(name).send().await {
        Ok(output) => Ok(output.table),
        Err(error) => {
            let error = AwsError::from_sdk(SERVICE, "DescribeTable", error);
            if error.is_not_found() {
                Ok(None)
            } else {
                Err(error)
            }
        }
    }
}

/// Creates the table with every setting and our tags in one call, so the
/// table never exists untagged. `None` when the name is already taken (a
/// concurrent or interrupted earlier create): the next pass describes it.
async fn create(
    target: &Target<'_>,
    desired: &DesiredTable,
    name: &str,
) -> Result<Option<ddb::TableDescription>, AwsError> {
    const OP: &str = "CreateTable";
    let indexes = desired
        .indexes
        .iter()
        .map(|index| {
            ddb::GlobalSecondaryIndex::builder()
                .index_name(&index.name)
                .set_key_schema(Some(key_schema(&index.keys, OP)?))
                .projection(projection_all())
                .set_provisioned_throughput(throughput(desired.billing, OP)?)
                .build()
                .map_err(|e| common::build_error(SERVICE, OP, e))
        })
        .collect::<Result<Vec<_>, AwsError>>()?;
    let tags = dynamodb_tags(target.owner.tags(), OP)?;
    let result = target
        .aws
        .dynamodb
        .create_table()
        .table_name(name)
        .set_attribute_definitions(Some(attribute_definitions(&desired.attributes, OP)?))
        .set_key_schema(Some(key_schema(&desired.keys, OP)?))
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
        .billing_mode(billing_mode(desired.billing))
        .set_provisioned_throughput(throughput(desired.billing, OP)?)
        .sse_specification(sse_specification(desired.encryption))
        .set_tags(Some(tags))
        .send()
        .await;
    match result {
        Ok(output) => Ok(output.table_description),
        Err(error) => {
            let error = AwsError::from_sdk(SERVICE, OP, error);
            if error.code.as_deref() == Some("ResourceInUseException") {
                Ok(None)
            } else {
                Err(error)
            }
        }
    }
}

async fn update_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
    desired: &DesiredTable,
    change: &TableChange,
) -> Result<ddb::TableDescription, AwsError> {
    const OP: &str = "UpdateTable";
    let mut request = dynamodb.update_table().table_name(name);
    match change {
        TableChange::DeleteIndex(index) => {
            let delete = ddb::DeleteGlobalSecondaryIndexAction::builder()
                .index_name(index)
                .build()
                .map_err(|e| common::build_error(SERVICE, OP, e))?;
            request = request.global_secondary_index_updates(
                ddb::GlobalSecondaryIndexUpdate::builder()
                    .delete(delete)
                    .build(),
            );
        }
        TableChange::Capacity { table, indexes } => {
            if let Some(billing) = table {
                request = request
                    .billing_mode(billing_mode(*billing))
                    .set_provisioned_throughput(throughput(*billing, OP)?);
            }
            for index in indexes {
                let update = ddb::UpdateGlobalSecondaryIndexAction::builder()
                    .index_name(index)
                    .set_provisioned_throughput(throughput(desired.billing, OP)?)
                    .build()
                    .map_err(|e| common::build_error(SERVICE, OP, e))?;
                request = request.global_secondary_index_updates(
                    ddb::GlobalSecondaryIndexUpdate::builder()
                        .update(update)
                        .build(),
                );
            }
        }
        TableChange::CreateIndex(index) => {
            let create = ddb::CreateGlobalSecondaryIndexAction::builder()
                .index_name(&index.name)
                .set_key_schema(Some(key_schema(&index.keys, OP)?))
                .projection(projection_all())
                .set_provisioned_throughput(throughput(desired.billing, OP)?)
                .build()
                .map_err(|e| common::build_error(SERVICE, OP, e))?;
            request = request
                .set_attribute_definitions(Some(attribute_definitions(&desired.attributes, OP)?))
                .global_secondary_index_updates(
                    ddb::GlobalSecondaryIndexUpdate::builder()
                        .create(create)
                        .build(),
                );
        }
        TableChange::Encryption(encryption) => {
            request = request.sse_specification(sse_specification(*encryption));
        }
    }
    let output = request
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(SERVICE, OP, e))?;
    output.table_description.ok_or_else(|| AwsError {
        service: SERVICE,
        operation: OP,
        kind: crate::aws::ErrorKind::Retryable,
        code: None,
        message: "UpdateTable returned no table description".to_owned(),
    })
}

fn dynamodb_tags(
    tags: BTreeMap<String, String>,
    operation: &'static str,
) -> Result<Vec<ddb::Tag>, AwsError> {
    tags.into_iter()
        .map(|(key, value)| {
            ddb::Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|e| common::build_error(SERVICE, operation, e))
        })
        .collect()
}

async fn list_tags(
    dynamodb: &aws_sdk_dynamodb::Client,
    arn: &str,
) -> Result<BTreeMap<String, String>, AwsError> {
    let mut tags = BTreeMap::new();
    let mut next_token: Option<String> = None;
    loop {
        let page = dynamodb
            .list_tags_of_resource()
            .resource_arn(arn)
            .set_next_token(next_token.take())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "ListTagsOfResource", e))?;
        tags.extend(
            page.tags
                .unwrap_or_default()
                .into_iter()
                .map(|t| (t.key, t.value)),
        );
        match page.next_token {
            Some(token) if !token.is_empty() => next_token = Some(token),
            _ => return Ok(tags),
        }
    }
}

async fn write_tags(
    dynamodb: &aws_sdk_dynamodb::Client,
    arn: &str,
    changes: &common::TagChanges,
) -> Result<(), AwsError> {
    // Tag before untag: ownership is never missing in between.
    if !changes.set.is_empty() {
        dynamodb
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(dynamodb_tags(changes.set.clone(), "TagResource")?))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "TagResource", e))?;
    }
    if !changes.remove.is_empty() {
        dynamodb
            .untag_resource()
            .resource_arn(arn)
            .set_tag_keys(Some(changes.remove.clone()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "UntagResource", e))?;
    }
    Ok(())
}

// ------------------------------------------------------------------ delete and retain

pub async fn delete(target: &Target<'_>) -> Result<Cleanup, AwsError> {
    let results = join_all(TABLES.iter().map(|table| delete_table(target, table))).await;
    let mut waiting = Vec::new();
    for result in results {
        waiting.extend(result?);
    }
    Ok(if waiting.is_empty() {
        Cleanup::Done
    } else {
        Cleanup::Waiting(waiting.join("; "))
    })
}

/// `None` once the table is gone (or is not ours to delete).
async fn delete_table(target: &Target<'_>, table: &Table) -> Result<Option<String>, AwsError> {
    let dynamodb = &target.aws.dynamodb;
    let name = target.id.table_name(table.component);
    let Some(description) = describe(dynamodb, &name).await? else {
        return Ok(None);
    };
    let status = description
        .table_status()
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default();
    if status == "DELETING" {
        return Ok(Some(format!("DynamoDB table {name} is being deleted")));
    }
    let Some(arn) = description.table_arn.as_deref() else {
        return Ok(Some(format!("DynamoDB table {name} has no ARN yet")));
    };
    if !common::is_ours(target, &list_tags(dynamodb, arn).await?) {
        return Ok(None);
    }
    match dynamodb.delete_table().table_name(&name).send().await {
        Ok(_) => Ok(Some(format!("DynamoDB table {name} is being deleted"))),
        Err(error) => {
            let error = AwsError::from_sdk(SERVICE, "DeleteTable", error);
            if error.is_not_found() {
                Ok(None)
            } else if error.code.as_deref() == Some("ResourceInUseException") {
                // Still CREATING or UPDATING: it can be deleted once ACTIVE.
                Ok(Some(format!(
                    "DynamoDB table {name} is {status}; deleting it once ACTIVE"
                )))
            } else {
                Err(error)
            }
        }
    }
}

pub async fn retain(target: &Target<'_>) -> Result<(), AwsError> {
    let results = join_all(TABLES.iter().map(|table| retain_table(target, table))).await;
    results.into_iter().collect()
}

async fn retain_table(target: &Target<'_>, table: &Table) -> Result<(), AwsError> {
    let dynamodb = &target.aws.dynamodb;
    let name = target.id.table_name(table.component);
    let Some(arn) = describe(dynamodb, &name).await?.and_then(|d| d.table_arn) else {
        return Ok(());
    };
    let tags = list_tags(dynamodb, &arn).await?;
    if common::is_ours(target, &tags)
        && let Some((key, value)) = common::retained_tag(&tags)
    {
        let changes = common::TagChanges {
            set: BTreeMap::from([(key, value)]),
            remove: Vec::new(),
        };
        write_tags(dynamodb, &arn, &changes).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use movieapp_model::{MOVIES, USERS, WATCHLISTS};

    fn spec(billing: BillingMode) -> DatabaseSpec {
        let provisioned = billing == BillingMode::Provisioned;
        DatabaseSpec {
            billing_mode: billing,
            read_capacity_units: provisioned.then_some(5),
            write_capacity_units: provisioned.then_some(3),
            ..DatabaseSpec::default()
        }
    }

    /// The shape DescribeTable would report for a table created as desired.
    fn shape_of(desired: &DesiredTable) -> TableShape {
        let capacity = match desired.billing {
            Billing::OnDemand => (0, 0),
            Billing::Provisioned { read, write } => (read, write),
        };
        TableShape {
            status: "ACTIVE".into(),
            keys: desired.keys.clone(),
            billing: desired.billing,
            indexes: desired
                .indexes
                .iter()
                .map(|i| IndexShape {
                    name: i.name.clone(),
                    keys: i.keys.clone(),
                    projects_all: true,
                    status: "ACTIVE".into(),
                    capacity,
                })
                .collect(),
            encryption: desired.encryption,
        }
    }

    #[test]
    fn a_table_as_declared_needs_no_change() {
        for table in TABLES {
            for billing in [BillingMode::PayPerRequest, BillingMode::Provisioned] {
                let desired = DesiredTable::new(&table, &spec(billing));
                assert_eq!(
                    plan(&desired, &shape_of(&desired)),
                    Ok(None),
                    "{}",
                    table.component
                );
            }
        }
    }

    #[test]
    fn desired_tables_follow_the_model() {
        let desired = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::PayPerRequest));
        assert_eq!(
            desired.keys,
            [
                KeyPart {
                    name: "userId".into(),
                    kind: "S".into(),
                    range: false
                },
                KeyPart {
                    name: "movieId".into(),
                    kind: "N".into(),
                    range: true
                },
            ]
        );
        assert_eq!(desired.indexes.len(), 1);
        assert_eq!(desired.indexes[0].name, "by-movie");
        assert_eq!(desired.indexes[0].keys[0].name, "movieId");
        assert_eq!(desired.billing, Billing::OnDemand);
        assert!(desired.point_in_time_recovery);
        assert_eq!(
            DesiredTable::new(&MOVIES, &DatabaseSpec::default())
                .ttl_attribute
                .as_deref(),
            Some("expiresAt")
        );
        assert_eq!(
            DesiredTable::new(&USERS, &spec(BillingMode::Provisioned)).billing,
            Billing::Provisioned { read: 5, write: 3 }
        );
    }

    #[test]
    fn switching_to_provisioned_sets_every_index_in_the_same_call() {
        let on_demand = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::PayPerRequest));
        let provisioned = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::Provisioned));
        let change = plan(&provisioned, &shape_of(&on_demand));
        assert_eq!(
            change,
            Ok(Some(TableChange::Capacity {
                table: Some(Billing::Provisioned { read: 5, write: 3 }),
                indexes: vec!["by-movie".into()],
            }))
        );
        // And back: billing only (on-demand indexes carry no capacity).
        assert_eq!(
            plan(&on_demand, &shape_of(&provisioned)),
            Ok(Some(TableChange::Capacity {
                table: Some(Billing::OnDemand),
                indexes: vec![],
            }))
        );
    }

    #[test]
    fn capacity_changes_touch_only_what_differs() {
        let desired = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::Provisioned));
        let mut actual = shape_of(&desired);
        actual.indexes[0].capacity = (1, 1);
        assert_eq!(
            plan(&desired, &actual),
            Ok(Some(TableChange::Capacity {
                table: None,
                indexes: vec!["by-movie".into()]
            }))
        );
        let mut actual = shape_of(&desired);
        actual.billing = Billing::Provisioned { read: 5, write: 10 };
        assert_eq!(
            plan(&desired, &actual),
            Ok(Some(TableChange::Capacity {
                table: Some(Billing::Provisioned { read: 5, write: 3 }),
                indexes: vec![]
            }))
        );
        // On-demand tables report capacity 5/5 in moto after a switch: ignored.
        let on_demand = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::PayPerRequest));
        let mut actual = shape_of(&on_demand);
        actual.indexes[0].capacity = (5, 5);
        assert_eq!(plan(&on_demand, &actual), Ok(None));
    }

    #[test]
    fn index_changes_come_one_at_a_time_deletes_first() {
        let desired = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::PayPerRequest));
        let mut actual = shape_of(&desired);
        actual.indexes.clear();
        assert_eq!(
            plan(&desired, &actual),
            Ok(Some(TableChange::CreateIndex(desired.indexes[0].clone())))
        );

        let mut actual = shape_of(&desired);
        actual.indexes.push(IndexShape {
            name: "by-someone".into(),
            keys: desired.keys.clone(),
            projects_all: true,
            status: "ACTIVE".into(),
            capacity: (0, 0),
        });
        assert_eq!(
            plan(&desired, &actual),
            Ok(Some(TableChange::DeleteIndex("by-someone".into())))
        );

        // Same name, other keys or projection: delete now, create next.
        let mut actual = shape_of(&desired);
        actual.indexes[0].projects_all = false;
        assert_eq!(
            plan(&desired, &actual),
            Ok(Some(TableChange::DeleteIndex("by-movie".into())))
        );
        actual.indexes.clear();
        assert!(matches!(
            plan(&desired, &actual),
            Ok(Some(TableChange::CreateIndex(_)))
        ));
    }

    #[test]
    fn billing_comes_before_creating_an_index() {
        let desired = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::Provisioned));
        let mut actual = shape_of(&DesiredTable::new(
            &WATCHLISTS,
            &spec(BillingMode::PayPerRequest),
        ));
        actual.indexes.clear();
        assert!(matches!(
            plan(&desired, &actual),
            Ok(Some(TableChange::Capacity { table: Some(_), .. }))
        ));
    }

    #[test]
    fn encryption_is_compared() {
        let mut database = spec(BillingMode::PayPerRequest);
        database.encryption = TableEncryption::Kms;
        let desired = DesiredTable::new(&USERS, &database);
        let mut actual = shape_of(&desired);
        actual.encryption = Encryption::AwsOwned;
        assert_eq!(
            plan(&desired, &actual),
            Ok(Some(TableChange::Encryption(Encryption::Kms)))
        );
    }

    #[test]
    fn a_different_key_schema_cannot_be_fixed() {
        let desired = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::PayPerRequest));
        let mut actual = shape_of(&desired);
        actual.keys[1].kind = "S".into();
        let error = plan(&desired, &actual).expect_err("incompatible");
        assert!(error.contains("movieId (S, sort)"), "{error}");
    }

    #[test]
    fn nothing_is_changed_while_the_table_or_an_index_is_busy() {
        let desired = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::PayPerRequest));
        let mut actual = shape_of(&desired);
        assert_eq!(actual.busy(), None);
        actual.status = "CREATING".into();
        assert_eq!(actual.busy().map(|b| b.0), Some(Reason::Creating));
        actual.status = "UPDATING".into();
        assert_eq!(actual.busy().map(|b| b.0), Some(Reason::Updating));
        let mut actual = shape_of(&desired);
        actual.indexes[0].status = "CREATING".into();
        assert_eq!(
            actual.busy(),
            Some((Reason::Updating, "index by-movie is CREATING".into()))
        );
    }

    #[test]
    fn shapes_are_read_from_describe_table() {
        let key = |name: &str, kind: ddb::KeyType| {
            ddb::KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .expect("key")
        };
        let attribute = |name: &str, kind: ddb::ScalarAttributeType| {
            ddb::AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(kind)
                .build()
                .expect("attribute")
        };
        let description = ddb::TableDescription::builder()
            .table_status(ddb::TableStatus::Active)
            // Listed sort key first: the shape still puts the partition key first.
            .key_schema(key("movieId", ddb::KeyType::Range))
            .key_schema(key("userId", ddb::KeyType::Hash))
            .attribute_definitions(attribute("userId", ddb::ScalarAttributeType::S))
            .attribute_definitions(attribute("movieId", ddb::ScalarAttributeType::N))
            .billing_mode_summary(
                ddb::BillingModeSummary::builder()
                    .billing_mode(ddb::BillingMode::PayPerRequest)
                    .build(),
            )
            .provisioned_throughput(
                ddb::ProvisionedThroughputDescription::builder()
                    .read_capacity_units(0)
                    .write_capacity_units(0)
                    .build(),
            )
            .global_secondary_indexes(
                ddb::GlobalSecondaryIndexDescription::builder()
                    .index_name("by-movie")
                    .key_schema(key("movieId", ddb::KeyType::Hash))
                    .key_schema(key("userId", ddb::KeyType::Range))
                    .projection(projection_all())
                    .index_status(ddb::IndexStatus::Active)
                    .build(),
            )
            .build();
        let shape = TableShape::from_description(&description);
        let desired = DesiredTable::new(&WATCHLISTS, &spec(BillingMode::PayPerRequest));
        assert_eq!(shape.encryption, Encryption::AwsOwned);
        assert_eq!(plan(&desired, &shape), Ok(None));

        // No billing summary: a PROVISIONED table from before on-demand.
        let old = ddb::TableDescription::builder()
            .table_status(ddb::TableStatus::Active)
            .provisioned_throughput(
                ddb::ProvisionedThroughputDescription::builder()
                    .read_capacity_units(5)
                    .write_capacity_units(3)
                    .build(),
            )
            .sse_description(
                ddb::SseDescription::builder()
                    .status(ddb::SseStatus::Enabled)
                    .sse_type(ddb::SseType::Kms)
                    .build(),
            )
            .build();
        let shape = TableShape::from_description(&old);
        assert_eq!(shape.billing, Billing::Provisioned { read: 5, write: 3 });
        assert_eq!(shape.encryption, Encryption::Kms);
    }

    #[test]
    fn time_to_live_follows_the_model() {
        let state = |status: &str, attribute: Option<&str>| TtlState {
            status: status.into(),
            attribute: attribute.map(str::to_owned),
        };
        assert_eq!(
            ttl_step(Some("expiresAt"), &state("DISABLED", None)),
            Some(TtlStep::Enable("expiresAt".into()))
        );
        assert_eq!(
            ttl_step(Some("expiresAt"), &state("ENABLED", Some("expiresAt"))),
            None
        );
        assert_eq!(
            ttl_step(Some("expiresAt"), &state("ENABLED", Some("ttl"))),
            Some(TtlStep::Disable("ttl".into()))
        );
        assert_eq!(
            ttl_step(Some("expiresAt"), &state("ENABLING", None)),
            Some(TtlStep::Wait)
        );
        assert_eq!(ttl_step(None, &state("DISABLED", None)), None);
        assert_eq!(
            ttl_step(None, &state("ENABLED", Some("x"))),
            Some(TtlStep::Disable("x".into()))
        );
    }
}
