//! The requests that create a table and change it: what the plans decided,
//! in DynamoDB's types.

use aws_sdk_dynamodb::types as ddb;
use movieapp_model::{AttrType, KeyAttr};

use super::SERVICE;
use super::shape::{Billing, DesiredTable, Encryption, KeyPart, TableChange};
use crate::aws::{AwsError, ErrorKind};
use crate::provision::common;
use crate::provision::resource::Tags;

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

pub fn projection_all() -> ddb::Projection {
    ddb::Projection::builder()
        .projection_type(ddb::ProjectionType::All)
        .build()
}

/// Creates the table with every setting and our tags in one call, so the
/// table never exists untagged. `None` when the name is already taken (a
/// concurrent or interrupted earlier create): the next pass describes it.
pub async fn create_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
    desired: &DesiredTable,
    tags: &Tags,
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
    let result = dynamodb
        .create_table()
        .table_name(name)
        .set_attribute_definitions(Some(attribute_definitions(&desired.attributes, OP)?))
        .set_key_schema(Some(key_schema(&desired.keys, OP)?))
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
        .billing_mode(billing_mode(desired.billing))
        .set_provisioned_throughput(throughput(desired.billing, OP)?)
        .sse_specification(sse_specification(desired.encryption))
        .deletion_protection_enabled(desired.deletion_protection)
        .set_tags(Some(dynamodb_tags(tags, OP)?))
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

pub async fn update_table(
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
        TableChange::DeletionProtection(enabled) => {
            request = request.deletion_protection_enabled(*enabled);
        }
    }
    let output = request
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(SERVICE, OP, e))?;
    output.table_description.ok_or_else(|| AwsError {
        service: SERVICE,
        operation: OP,
        kind: ErrorKind::Retryable,
        code: None,
        message: "UpdateTable returned no table description".to_owned(),
    })
}

pub fn dynamodb_tags(tags: &Tags, operation: &'static str) -> Result<Vec<ddb::Tag>, AwsError> {
    tags.iter()
        .map(|(key, value)| {
            ddb::Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|e| common::build_error(SERVICE, operation, e))
        })
        .collect()
}
