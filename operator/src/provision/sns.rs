//! SNS: the notifications topic and its subscriptions.
//!
//! The topic's ARN is derived from its deterministic name and the account
//! and region of our queues, so the topic is found without listing every
//! topic of the account (and without `sns:ListTopics` on `*`).

use std::collections::BTreeMap;

use aws_sdk_sns::types::Tag;

use super::common::{self, Claim, Halt};
use super::{Notice, Target};
use crate::aws::AwsError;
use crate::crd::SubscriptionStatus;
use crate::reason::Reason;

const SERVICE: &str = "sns";

/// What SNS lists instead of an ARN until the endpoint confirms.
const PENDING: &str = "PendingConfirmation";

/// One subscription the topic should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedSubscription {
    pub protocol: String,
    pub endpoint: String,
    /// `RawMessageDelivery=true`: the jobs queue receives the message body
    /// itself rather than SNS's JSON envelope.
    pub raw: bool,
}

/// One subscription as SNS lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingSubscription {
    pub arn: String,
    pub protocol: String,
    pub endpoint: String,
}

impl ExistingSubscription {
    /// Confirmed subscriptions have an ARN; pending ones cannot be
    /// unsubscribed or inspected (SNS drops them after three days).
    fn confirmed(&self) -> bool {
        self.arn.starts_with("arn:")
    }

    fn status(&self) -> SubscriptionStatus {
        SubscriptionStatus {
            protocol: self.protocol.clone(),
            endpoint: self.endpoint.clone(),
            arn: self.arn.clone(),
        }
    }
}

/// What to subscribe and unsubscribe so that the topic has exactly `wanted`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionPlan<'a> {
    pub subscribe: Vec<&'a WantedSubscription>,
    pub unsubscribe: Vec<&'a ExistingSubscription>,
}

/// Matches by protocol and endpoint. A pending subscription counts as
/// present, so an unconfirmed e-mail address is not subscribed (and mailed)
/// again at every resync.
pub fn plan_subscriptions<'a>(
    wanted: &'a [WantedSubscription],
    existing: &'a [ExistingSubscription],
) -> SubscriptionPlan<'a> {
    let same = |w: &WantedSubscription, e: &ExistingSubscription| {
        w.protocol == e.protocol && w.endpoint == e.endpoint
    };
    SubscriptionPlan {
        subscribe: wanted
            .iter()
            .filter(|w| !existing.iter().any(|e| same(w, e)))
            .collect(),
        unsubscribe: existing
            .iter()
            .filter(|e| e.confirmed() && !wanted.iter().any(|w| same(w, e)))
            .collect(),
    }
}

/// Makes the topic exist and be ours; returns its ARN.
pub async fn ensure_topic(
    target: &Target<'_>,
    arn: &str,
    known_before: bool,
    notices: &mut Vec<Notice>,
) -> Result<String, Halt> {
    let sns = &target.aws.sns;
    let name = target.id.topic_name();
    let what = format!("SNS topic {name}");
    // ListTagsForResource doubles as the existence check: one read per resync.
    let Some(tags) = list_tags(sns, arn).await? else {
        let created = create_topic(target, &name).await?;
        notices.push(common::created(known_before, &what));
        return Ok(created);
    };
    match common::claim(target, &what, &tags) {
        Claim::Conflict(message) => return Err(Halt::blocked(Reason::NameConflict, message)),
        Claim::Adopt => {
            write_tags(sns, arn, &common::tag_changes(target.owner, &tags)).await?;
            notices.push(common::adopted(&what));
        }
        Claim::Ours => {
            let changes = common::tag_changes(target.owner, &tags);
            if !changes.is_empty() {
                write_tags(sns, arn, &changes).await?;
                notices.push(common::changed(
                    target,
                    format!("{what}: restored tags {}", changes.describe()),
                ));
            }
        }
    }
    Ok(arn.to_owned())
}

/// Makes the topic's subscriptions exactly `wanted`; returns them as SNS
/// lists them, in a stable order.
pub async fn ensure_subscriptions(
    target: &Target<'_>,
    topic_arn: &str,
    wanted: &[WantedSubscription],
    notices: &mut Vec<Notice>,
) -> Result<Vec<SubscriptionStatus>, Halt> {
    let sns = &target.aws.sns;
    let existing = list_subscriptions(sns, topic_arn).await?;
    let plan = plan_subscriptions(wanted, &existing);
    let changed = !plan.subscribe.is_empty() || !plan.unsubscribe.is_empty();

    for subscription in &plan.unsubscribe {
        unsubscribe(sns, &subscription.arn).await?;
        notices.push(Notice::new(
            Reason::Deleted,
            format!(
                "unsubscribed {} {} from the notifications topic",
                subscription.protocol, subscription.endpoint
            ),
        ));
    }
    for subscription in &plan.subscribe {
        subscribe(sns, topic_arn, subscription).await?;
        let known_before = target
            .previous
            .and_then(|s| s.notifications.as_ref())
            .is_some_and(|n| {
                n.subscriptions.iter().any(|s| {
                    s.protocol == subscription.protocol && s.endpoint == subscription.endpoint
                })
            });
        notices.push(common::created(
            known_before,
            &format!(
                "subscription of {} {} to the notifications topic",
                subscription.protocol, subscription.endpoint
            ),
        ));
    }
    for subscription in existing.iter().filter(|e| e.confirmed()) {
        let raw = wanted.iter().any(|w| {
            w.raw && w.protocol == subscription.protocol && w.endpoint == subscription.endpoint
        });
        if raw && ensure_raw_delivery(sns, &subscription.arn).await? {
            notices.push(common::changed(
                target,
                format!(
                    "subscription of {} {}: set RawMessageDelivery to true",
                    subscription.protocol, subscription.endpoint
                ),
            ));
        }
    }

    let listed = if changed {
        list_subscriptions(sns, topic_arn).await?
    } else {
        existing
    };
    let mut statuses: Vec<SubscriptionStatus> =
        listed.iter().map(ExistingSubscription::status).collect();
    statuses.sort_by(|a, b| {
        (&a.protocol, &a.endpoint, &a.arn).cmp(&(&b.protocol, &b.endpoint, &b.arn))
    });
    Ok(statuses)
}

/// Deletes the topic (after its subscriptions) if it is ours. `Ok(None)`:
/// gone or not ours; `Ok(Some(message))`: deletion under way.
pub async fn delete_topic(target: &Target<'_>, arn: &str) -> Result<Option<String>, AwsError> {
    let sns = &target.aws.sns;
    let Some(tags) = list_tags(sns, arn).await? else {
        return Ok(None);
    };
    if !common::is_ours(target, &tags) {
        return Ok(None);
    }
    for subscription in list_subscriptions(sns, arn).await? {
        if subscription.confirmed() {
            unsubscribe(sns, &subscription.arn).await?;
        }
    }
    match sns.delete_topic().topic_arn(arn).send().await {
        Ok(_) => Ok(Some(format!("SNS topic {arn} is being deleted"))),
        Err(error) => {
            let error = AwsError::from_sdk(SERVICE, "DeleteTopic", error);
            if error.is_not_found() {
                Ok(None)
            } else {
                Err(error)
            }
        }
    }
}

/// Tags the topic as retained if it is ours.
pub async fn retain_topic(target: &Target<'_>, arn: &str) -> Result<(), AwsError> {
    let sns = &target.aws.sns;
    let Some(tags) = list_tags(sns, arn).await? else {
        return Ok(());
    };
    if common::is_ours(target, &tags)
        && let Some((key, value)) = common::retained_tag(&tags)
    {
        let changes = common::TagChanges {
            set: BTreeMap::from([(key, value)]),
            remove: Vec::new(),
        };
        write_tags(sns, arn, &changes).await?;
    }
    Ok(())
}

// ------------------------------------------------------------------ calls

/// The topic's tags, or `None` when the topic does not exist.
async fn list_tags(
    sns: &aws_sdk_sns::Client,
    arn: &str,
) -> Result<Option<BTreeMap<String, String>>, AwsError> {
    match sns.list_tags_for_resource().resource_arn(arn).send().await {
        Ok(output) => Ok(Some(
            output
                .tags
                .unwrap_or_default()
                .into_iter()
                .map(|t| (t.key, t.value))
                .collect(),
        )),
        Err(error) => {
            let error = AwsError::from_sdk(SERVICE, "ListTagsForResource", error);
            if error.is_not_found() {
                Ok(None)
            } else {
                Err(error)
            }
        }
    }
}

fn sns_tags(tags: BTreeMap<String, String>, operation: &'static str) -> Result<Vec<Tag>, AwsError> {
    tags.into_iter()
        .map(|(key, value)| {
            Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|e| common::build_error(SERVICE, operation, e))
        })
        .collect()
}

async fn create_topic(target: &Target<'_>, name: &str) -> Result<String, Halt> {
    // Tags go with the create: the topic never exists without them.
    let output = target
        .aws
        .sns
        .create_topic()
        .name(name)
        .set_tags(Some(sns_tags(target.owner.tags(), "CreateTopic")?))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(SERVICE, "CreateTopic", e))?;
    output.topic_arn.ok_or_else(|| {
        Halt::progressing(
            Reason::Creating,
            format!("CreateTopic returned no ARN for {name}"),
        )
    })
}

async fn write_tags(
    sns: &aws_sdk_sns::Client,
    arn: &str,
    changes: &common::TagChanges,
) -> Result<(), AwsError> {
    if !changes.set.is_empty() {
        sns.tag_resource()
            .resource_arn(arn)
            .set_tags(Some(sns_tags(changes.set.clone(), "TagResource")?))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "TagResource", e))?;
    }
    if !changes.remove.is_empty() {
        sns.untag_resource()
            .resource_arn(arn)
            .set_tag_keys(Some(changes.remove.clone()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "UntagResource", e))?;
    }
    Ok(())
}

async fn list_subscriptions(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
) -> Result<Vec<ExistingSubscription>, AwsError> {
    let mut out = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let page = sns
            .list_subscriptions_by_topic()
            .topic_arn(topic_arn)
            .set_next_token(next_token.take())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "ListSubscriptionsByTopic", e))?;
        out.extend(
            page.subscriptions
                .unwrap_or_default()
                .into_iter()
                .filter_map(|s| {
                    Some(ExistingSubscription {
                        arn: s.subscription_arn.unwrap_or_else(|| PENDING.to_owned()),
                        protocol: s.protocol?,
                        endpoint: s.endpoint?,
                    })
                }),
        );
        match page.next_token {
            Some(token) if !token.is_empty() => next_token = Some(token),
            _ => return Ok(out),
        }
    }
}

async fn subscribe(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    subscription: &WantedSubscription,
) -> Result<(), AwsError> {
    let mut request = sns
        .subscribe()
        .topic_arn(topic_arn)
        .protocol(&subscription.protocol)
        .endpoint(&subscription.endpoint);
    if subscription.raw {
        request = request.attributes("RawMessageDelivery", "true");
    }
    request
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(SERVICE, "Subscribe", e))?;
    Ok(())
}

async fn unsubscribe(sns: &aws_sdk_sns::Client, arn: &str) -> Result<(), AwsError> {
    match sns.unsubscribe().subscription_arn(arn).send().await {
        Ok(_) => Ok(()),
        Err(error) => {
            let error = AwsError::from_sdk(SERVICE, "Unsubscribe", error);
            if error.is_not_found() {
                Ok(())
            } else {
                Err(error)
            }
        }
    }
}

/// Sets `RawMessageDelivery=true` when it is not; true when it wrote.
async fn ensure_raw_delivery(sns: &aws_sdk_sns::Client, arn: &str) -> Result<bool, AwsError> {
    let attributes = sns
        .get_subscription_attributes()
        .subscription_arn(arn)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(SERVICE, "GetSubscriptionAttributes", e))?
        .attributes
        .unwrap_or_default();
    let raw = attributes
        .get("RawMessageDelivery")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if raw {
        return Ok(false);
    }
    sns.set_subscription_attributes()
        .subscription_arn(arn)
        .attribute_name("RawMessageDelivery")
        .attribute_value("true")
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(SERVICE, "SetSubscriptionAttributes", e))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(protocol: &str, endpoint: &str) -> WantedSubscription {
        WantedSubscription {
            protocol: protocol.into(),
            endpoint: endpoint.into(),
            raw: protocol == "sqs",
        }
    }

    fn existing(arn: &str, protocol: &str, endpoint: &str) -> ExistingSubscription {
        ExistingSubscription {
            arn: arn.into(),
            protocol: protocol.into(),
            endpoint: endpoint.into(),
        }
    }

    #[test]
    fn missing_subscriptions_are_added_and_extra_ones_removed() {
        let want = [wanted("sqs", "arn:q"), wanted("email", "ops@example.com")];
        let have = [
            existing("arn:aws:sns:r:1:t:1", "sqs", "arn:q"),
            existing("arn:aws:sns:r:1:t:2", "https", "https://old.example.com"),
        ];
        let plan = plan_subscriptions(&want, &have);
        assert_eq!(plan.subscribe, [&want[1]]);
        assert_eq!(plan.unsubscribe, [&have[1]]);
    }

    #[test]
    fn pending_confirmations_are_neither_resubscribed_nor_unsubscribed() {
        let want = [wanted("email", "ops@example.com")];
        let have = [
            existing(PENDING, "email", "ops@example.com"),
            existing(PENDING, "email", "gone@example.com"),
        ];
        let plan = plan_subscriptions(&want, &have);
        assert!(plan.subscribe.is_empty());
        assert!(plan.unsubscribe.is_empty());
    }

    #[test]
    fn a_matching_set_needs_nothing() {
        let want = [wanted("sqs", "arn:q")];
        let have = [existing("arn:aws:sns:r:1:t:1", "sqs", "arn:q")];
        let plan = plan_subscriptions(&want, &have);
        assert!(plan.subscribe.is_empty() && plan.unsubscribe.is_empty());
    }
}
