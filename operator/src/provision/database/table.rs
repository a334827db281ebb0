//! DynamoDB tables as a resource [`Kind`]: found with DescribeTable, tagged
//! by ARN, created with every setting and the ownership tags in one call,
//! then kept at the declared shape ([`shape`](super::shape)), point-in-time
//! recovery ([`backups`](super::backups)) and time to live
//! ([`ttl`](super::ttl)), in that order.

use aws_sdk_dynamodb::types as ddb;

use super::shape::{DesiredTable, TableChange, TableShape};
use super::ttl::{self, TtlState, TtlStep};
use super::{SERVICE, backups, requests};
use crate::aws::tagging::Snapshot;
use crate::aws::{self, AwsError};
use crate::provision::Target;
use crate::provision::common::Halt;
use crate::provision::resource::{Deletion, Effect, Kind, LiveStatus, Tags};
use crate::reason::Reason;

/// A table that exists: its ARN and how DescribeTable (or the request that
/// created or changed it) described it.
#[derive(Debug, Clone)]
pub struct FoundTable {
    pub name: String,
    pub arn: String,
    pub description: ddb::TableDescription,
}

impl FoundTable {
    fn status(&self) -> &str {
        self.description
            .table_status()
            .map(ddb::TableStatus::as_str)
            .unwrap_or_default()
    }
}

/// A table's settings as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSettings {
    pub shape: TableShape,
    /// `None` while the table is busy: not read, nothing changes then.
    pub point_in_time_recovery: Option<bool>,
    /// `None` while the table is busy, and after a change in this pass:
    /// DynamoDB takes a while to switch it, the next pass looks again.
    pub time_to_live: Option<TtlState>,
}

/// One write to a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableUpdate {
    Table(TableChange),
    PointInTimeRecovery(bool),
    TimeToLive { enabled: bool, attribute: String },
}

/// DynamoDB tables, as a [`Kind`]; named by their physical name.
#[derive(Debug, Clone, Copy)]
pub struct Tables<'a> {
    dynamodb: &'a aws_sdk_dynamodb::Client,
}

impl<'a> Tables<'a> {
    pub fn of(target: &Target<'a>) -> Self {
        Self {
            dynamodb: &target.aws.dynamodb,
        }
    }

    fn found(name: &str, description: ddb::TableDescription) -> Result<FoundTable, Halt> {
        let arn = description.table_arn.clone().ok_or_else(|| {
            Halt::progressing(
                Reason::Creating,
                format!("{} has no ARN yet", Self::what(&name.to_owned())),
            )
        })?;
        Ok(FoundTable {
            name: name.to_owned(),
            arn,
            description,
        })
    }
}

impl Kind for Tables<'_> {
    type Id = String;
    type Desired = DesiredTable;
    type Found = FoundTable;
    type Actual = TableSettings;
    type Change = TableUpdate;

    /// Up to four `UpdateTable` calls (small tables, and moto, apply them at
    /// once), then backups and time to live.
    const MAX_CHANGES_PER_PASS: usize = 6;

    fn what(name: &String) -> String {
        format!("DynamoDB table {name}")
    }

    async fn find(&self, name: &String) -> Result<Option<FoundTable>, Halt> {
        match self.dynamodb.describe_table().table_name(name).send().await {
            Ok(output) => output
                .table
                .map(|description| Self::found(name, description))
                .transpose(),
            Err(error) => {
                let error = AwsError::from_sdk(SERVICE, "DescribeTable", error);
                if error.is_not_found() {
                    Ok(None)
                } else {
                    Err(error.into())
                }
            }
        }
    }

    fn arn(table: &FoundTable) -> Option<&str> {
        Some(&table.arn)
    }

    /// Listed by ARN: existence and ownership without a DescribeTable.
    fn find_listed(&self, name: &String, snapshot: &Snapshot) -> Option<(FoundTable, Tags)> {
        let arn = snapshot.table_arn(name)?;
        let tags = snapshot.tags(arn)?.clone();
        let description = ddb::TableDescription::builder()
            .table_name(name)
            .table_arn(arn)
            .table_status(ddb::TableStatus::Active)
            .build();
        Some((
            FoundTable {
                name: name.clone(),
                arn: arn.to_owned(),
                description,
            },
            tags,
        ))
    }

    /// Keys, indexes, billing, encryption, deletion protection,
    /// point-in-time recovery and time to live: written by the operator only.
    const LIGHT_KEEPS_SETTINGS: bool = true;

    async fn tags(&self, table: &FoundTable) -> Result<Option<Tags>, AwsError> {
        let listed = aws::all_pages(|token| async move {
            let page = self
                .dynamodb
                .list_tags_of_resource()
                .resource_arn(&table.arn)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(SERVICE, "ListTagsOfResource", e))?;
            Ok((page.tags.unwrap_or_default(), page.next_token))
        })
        .await;
        match listed {
            Ok(tags) => Ok(Some(tags.into_iter().map(|t| (t.key, t.value)).collect())),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The shape as described; backups and time to live only when the
    /// table may be changed at all.
    async fn observe(&self, table: &FoundTable, _: &DesiredTable) -> Result<TableSettings, Halt> {
        let shape = TableShape::from_description(&table.description);
        if shape.busy().is_some() {
            return Ok(TableSettings {
                shape,
                point_in_time_recovery: None,
                time_to_live: None,
            });
        }
        let name = &table.name;
        let (backups, time_to_live) = futures::try_join!(
            backups::read(self.dynamodb, name),
            ttl::read(self.dynamodb, name)
        )?;
        Ok(TableSettings {
            shape,
            point_in_time_recovery: Some(backups),
            time_to_live: Some(time_to_live),
        })
    }

    fn being_deleted(table: &FoundTable) -> bool {
        table.status() == "DELETING"
    }

    fn live_status(table: &FoundTable) -> Option<LiveStatus> {
        let status = table.status();
        Some(LiveStatus {
            text: status.to_owned(),
            settled: status == "ACTIVE",
        })
    }

    fn plan(desired: &DesiredTable, actual: &TableSettings) -> Result<Option<TableUpdate>, Halt> {
        if let Some((reason, message)) = actual.shape.busy() {
            return Err(Halt::progressing(reason, message));
        }
        match super::shape::plan(desired, &actual.shape) {
            Err(incompatible) => {
                return Err(Halt::blocked(Reason::IncompatibleTable, incompatible));
            }
            Ok(Some(change)) => return Ok(Some(TableUpdate::Table(change))),
            Ok(None) => {}
        }
        if actual
            .point_in_time_recovery
            .is_some_and(|enabled| enabled != desired.point_in_time_recovery)
        {
            return Ok(Some(TableUpdate::PointInTimeRecovery(
                desired.point_in_time_recovery,
            )));
        }
        let Some(time_to_live) = &actual.time_to_live else {
            return Ok(None);
        };
        match ttl::ttl_step(desired.ttl_attribute.as_deref(), time_to_live) {
            None => Ok(None),
            Some(TtlStep::Wait) => Err(Halt::progressing(
                Reason::Updating,
                "time to live is changing",
            )),
            Some(TtlStep::Enable(attribute)) => Ok(Some(TableUpdate::TimeToLive {
                enabled: true,
                attribute,
            })),
            Some(TtlStep::Disable(attribute)) => Ok(Some(TableUpdate::TimeToLive {
                enabled: false,
                attribute,
            })),
        }
    }

    fn effect(what: &str, update: &TableUpdate) -> Effect {
        let verb = |enabled: bool| if enabled { "enabled" } else { "disabled" };
        Effect::Changed(match update {
            TableUpdate::Table(change) => format!("{what}: {}", change.describe()),
            TableUpdate::PointInTimeRecovery(enabled) => {
                format!("{what}: {} point-in-time recovery", verb(*enabled))
            }
            TableUpdate::TimeToLive { enabled, attribute } => {
                format!("{what}: {} time to live on {attribute}", verb(*enabled))
            }
        })
    }

    fn assume(
        _: &DesiredTable,
        actual: &TableSettings,
        update: &TableUpdate,
    ) -> Option<TableSettings> {
        let mut settings = actual.clone();
        match update {
            TableUpdate::Table(change) => {
                settings.shape = super::shape::assume(&actual.shape, change)
            }
            TableUpdate::PointInTimeRecovery(enabled) => {
                settings.point_in_time_recovery = Some(*enabled);
            }
            TableUpdate::TimeToLive { enabled, attribute } => {
                settings.time_to_live = Some(TtlState {
                    status: if *enabled { "ENABLED" } else { "DISABLED" }.to_owned(),
                    attribute: enabled.then(|| attribute.clone()),
                });
            }
        }
        Some(settings)
    }

    /// `CreateTable` answers a name already taken (a concurrent or
    /// interrupted earlier create) with ResourceInUse: the next pass
    /// describes that table.
    async fn create(
        &self,
        name: &String,
        desired: &DesiredTable,
        tags: &Tags,
    ) -> Result<FoundTable, Halt> {
        match requests::create_table(self.dynamodb, name, desired, tags).await? {
            Some(description) => Self::found(name, description),
            None => Err(Halt::progressing(
                Reason::Creating,
                format!("{} is being created", Self::what(name)),
            )),
        }
    }

    async fn tag(&self, table: &FoundTable, tags: &Tags) -> Result<(), AwsError> {
        let tags = Some(requests::dynamodb_tags(tags, "TagResource")?);
        let request = self
            .dynamodb
            .tag_resource()
            .resource_arn(&table.arn)
            .set_tags(tags);
        aws::send(SERVICE, "TagResource", request.send()).await?;
        Ok(())
    }

    async fn untag(&self, table: &FoundTable, keys: &[String]) -> Result<(), AwsError> {
        let keys = Some(keys.to_vec());
        let request = self
            .dynamodb
            .untag_resource()
            .resource_arn(&table.arn)
            .set_tag_keys(keys);
        aws::send(SERVICE, "UntagResource", request.send()).await?;
        Ok(())
    }

    async fn act(
        &self,
        table: &FoundTable,
        desired: &DesiredTable,
        mut actual: TableSettings,
        update: &TableUpdate,
    ) -> Result<TableSettings, Halt> {
        let name = &table.name;
        match update {
            TableUpdate::Table(change) => {
                let description =
                    requests::update_table(self.dynamodb, name, desired, change).await?;
                actual.shape = TableShape::from_description(&description);
            }
            TableUpdate::PointInTimeRecovery(enabled) => {
                backups::write(self.dynamodb, name, *enabled).await?;
                actual.point_in_time_recovery = Some(*enabled);
            }
            TableUpdate::TimeToLive { enabled, attribute } => {
                ttl::write(self.dynamodb, name, *enabled, attribute).await?;
                actual.time_to_live = None;
            }
        }
        Ok(actual)
    }

    /// Reached only when the spec wants the tables unprotected (the
    /// clean-up deletes nothing otherwise): protection switched on outside
    /// the operator is drift, undone first.
    async fn delete(&self, table: &FoundTable) -> Result<Deletion, AwsError> {
        let name = &table.name;
        if table.description.deletion_protection_enabled() == Some(true) {
            let request = self
                .dynamodb
                .update_table()
                .table_name(name)
                .deletion_protection_enabled(false);
            match aws::send(SERVICE, "UpdateTable", request.send()).await {
                Ok(_) => {}
                Err(error) if error.code.as_deref() == Some("ResourceInUseException") => {
                    return Ok(Deletion::NotYet(format!(
                        "DynamoDB table {name} is {}; turning its deletion protection off once ACTIVE",
                        table.status()
                    )));
                }
                Err(error) => return Err(error),
            }
        }
        match self.dynamodb.delete_table().table_name(name).send().await {
            Ok(_) => Ok(Deletion::Started),
            Err(error) => {
                let error = AwsError::from_sdk(SERVICE, "DeleteTable", error);
                if error.code.as_deref() == Some("ResourceInUseException") {
                    // Still CREATING or UPDATING: it can be deleted once ACTIVE.
                    Ok(Deletion::NotYet(format!(
                        "DynamoDB table {name} is {}; deleting it once ACTIVE",
                        table.status()
                    )))
                } else {
                    Err(error)
                }
            }
        }
    }
}
