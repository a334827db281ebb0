//! Point-in-time recovery (continuous backups), as the spec declares it.

use aws_sdk_dynamodb::types as ddb;

use super::SERVICE;
use crate::aws::AwsError;
use crate::provision::common;

/// Whether point-in-time recovery is on.
pub async fn read(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> Result<bool, AwsError> {
    let status = dynamodb
        .describe_continuous_backups()
        .table_name(table)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(SERVICE, "DescribeContinuousBackups", e))?
        .continuous_backups_description
        .and_then(|d| d.point_in_time_recovery_description)
        .and_then(|d| d.point_in_time_recovery_status);
    Ok(status == Some(ddb::PointInTimeRecoveryStatus::Enabled))
}

/// Switches point-in-time recovery on or off.
pub async fn write(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    enabled: bool,
) -> Result<(), AwsError> {
    let specification = ddb::PointInTimeRecoverySpecification::builder()
        .point_in_time_recovery_enabled(enabled)
        .build()
        .map_err(|e| common::build_error(SERVICE, "UpdateContinuousBackups", e))?;
    dynamodb
        .update_continuous_backups()
        .table_name(table)
        .point_in_time_recovery_specification(specification)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(SERVICE, "UpdateContinuousBackups", e))?;
    Ok(())
}
