//! Placeholder: replaced by the implementation of the AWS provisioning issue.

use super::{Cleanup, Observed, Target};
use crate::aws::AwsError;
use crate::conditions::PartState;
use crate::crd::{NotificationsStatus, QueueStatus};

pub async fn ensure(
    _target: &Target<'_>,
) -> (Observed<QueueStatus>, Observed<NotificationsStatus>) {
    let pending =
        || PartState::progressing("NotImplemented", "SQS/SNS provisioning is not implemented");
    (
        Observed {
            state: pending(),
            value: None,
            notices: Vec::new(),
        },
        Observed {
            state: pending(),
            value: None,
            notices: Vec::new(),
        },
    )
}

pub async fn delete(_target: &Target<'_>) -> Result<Cleanup, AwsError> {
    Ok(Cleanup::Done)
}

pub async fn retain(_target: &Target<'_>) -> Result<(), AwsError> {
    Ok(())
}
