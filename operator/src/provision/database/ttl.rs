//! Time to live: on the model's attribute (the movie cache expires), off on
//! every other table (an expiry set by hand on the users table would
//! silently delete accounts).

use aws_sdk_dynamodb::types as ddb;

use super::SERVICE;
use crate::aws::AwsError;
use crate::provision::common;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtlState {
    pub status: String,
    pub attribute: Option<String>,
}

impl TtlState {
    pub fn from_description(description: Option<&ddb::TimeToLiveDescription>) -> Self {
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

/// Time to live as the table has it.
pub async fn read(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> Result<TtlState, AwsError> {
    let description = dynamodb
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(SERVICE, "DescribeTimeToLive", e))?
        .time_to_live_description;
    Ok(TtlState::from_description(description.as_ref()))
}

/// Switches time to live on or off for `attribute`.
pub async fn write(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    enabled: bool,
    attribute: &str,
) -> Result<(), AwsError> {
    let specification = ddb::TimeToLiveSpecification::builder()
        .enabled(enabled)
        .attribute_name(attribute)
        .build()
        .map_err(|e| common::build_error(SERVICE, "UpdateTimeToLive", e))?;
    dynamodb
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(specification)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(SERVICE, "UpdateTimeToLive", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The declared attribute, the state found, and the next step.
    #[test]
    fn time_to_live_follows_the_model() {
        let expires = Some("expiresAt");
        let cases = [
            (
                expires,
                "DISABLED",
                None,
                Some(TtlStep::Enable("expiresAt".into())),
            ),
            (expires, "ENABLED", Some("expiresAt"), None),
            // Another attribute: switched off first, enabling follows.
            (
                expires,
                "ENABLED",
                Some("ttl"),
                Some(TtlStep::Disable("ttl".into())),
            ),
            (expires, "ENABLING", None, Some(TtlStep::Wait)),
            (expires, "DISABLING", Some("ttl"), Some(TtlStep::Wait)),
            (None, "DISABLED", None, None),
            (
                None,
                "ENABLED",
                Some("x"),
                Some(TtlStep::Disable("x".into())),
            ),
        ];
        for (declared, status, attribute, expected) in cases {
            let actual = TtlState {
                status: status.into(),
                attribute: attribute.map(str::to_owned),
            };
            assert_eq!(
                ttl_step(declared, &actual),
                expected,
                "{declared:?} {actual:?}"
            );
        }
        assert_eq!(TtlState::from_description(None).status, "DISABLED");
    }
}
