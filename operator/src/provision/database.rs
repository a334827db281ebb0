//! Placeholder: replaced by the implementation of the AWS provisioning issue.

use super::{Cleanup, Observed, Target};
use crate::aws::AwsError;
use crate::conditions::PartState;
use crate::crd::TableStatus;

pub async fn ensure(_target: &Target<'_>) -> Observed<Vec<TableStatus>> {
    Observed {
        state: PartState::progressing("NotImplemented", "DynamoDB provisioning is not implemented"),
        value: None,
        notices: Vec::new(),
    }
}

pub async fn delete(_target: &Target<'_>) -> Result<Cleanup, AwsError> {
    Ok(Cleanup::Done)
}

pub async fn retain(_target: &Target<'_>) -> Result<(), AwsError> {
    Ok(())
}
