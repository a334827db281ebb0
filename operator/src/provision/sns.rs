//! SNS: the notifications topic as a resource [`Kind`], whose settings are
//! its subscriptions.
//!
//! The topic's ARN is derived from its deterministic name and the account
//! and region of our queues, so the topic is found without listing every
//! topic of the account (and without `sns:ListTopics` on `*`), and
//! ListTagsForResource doubles as the existence check: one read per resync.
//! Subscriptions carry no tags: they belong to the topic, and are matched by
//! protocol and endpoint.

use aws_sdk_sns::types::Tag;

use super::Target;
use super::common::{self, Halt};
use super::resource::{Deletion, Effect, Kind, Tags};
use crate::aws::tagging::Snapshot;
use crate::aws::{self, AwsError};
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
    /// The status recorded it: missing, it is `Recreated`, not `Created`.
    pub recorded: bool,
}

/// One subscription as SNS lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingSubscription {
    pub arn: String,
    pub protocol: String,
    pub endpoint: String,
    /// `RawMessageDelivery`, read only where it is declared.
    pub raw: Option<bool>,
}

impl ExistingSubscription {
    /// Confirmed subscriptions have an ARN; pending ones cannot be
    /// unsubscribed or inspected (SNS drops them after three days).
    pub fn confirmed(&self) -> bool {
        self.arn.starts_with("arn:")
    }

    pub fn is(&self, wanted: &WantedSubscription) -> bool {
        self.protocol == wanted.protocol && self.endpoint == wanted.endpoint
    }

    fn describe(&self) -> String {
        format!("{} {}", self.protocol, self.endpoint)
    }
}

/// One subscription change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionChange {
    Unsubscribe(ExistingSubscription),
    Subscribe(WantedSubscription),
    RawDelivery(ExistingSubscription),
}

/// The next change that makes the topic's subscriptions exactly `wanted`,
/// matched by protocol and endpoint: extra ones go first, then missing ones
/// are added, then raw delivery is set where it is declared. A pending
/// subscription counts as present, so an unconfirmed e-mail address is not
/// subscribed (and mailed) again at every resync.
pub fn plan_subscriptions(
    wanted: &[WantedSubscription],
    existing: &[ExistingSubscription],
) -> Option<SubscriptionChange> {
    if let Some(extra) = existing
        .iter()
        .find(|e| e.confirmed() && !wanted.iter().any(|w| e.is(w)))
    {
        return Some(SubscriptionChange::Unsubscribe(extra.clone()));
    }
    if let Some(missing) = wanted.iter().find(|w| !existing.iter().any(|e| e.is(w))) {
        return Some(SubscriptionChange::Subscribe(missing.clone()));
    }
    existing
        .iter()
        .find(|e| e.raw == Some(false))
        .map(|e| SubscriptionChange::RawDelivery(e.clone()))
}

/// The subscriptions after `change`; `subscribed` is the ARN SNS gave a new
/// subscription (none: pending confirmation, which ListSubscriptionsByTopic
/// shows as PendingConfirmation).
fn after(
    mut existing: Vec<ExistingSubscription>,
    change: &SubscriptionChange,
    subscribed: Option<String>,
) -> Vec<ExistingSubscription> {
    match change {
        SubscriptionChange::Unsubscribe(extra) => existing.retain(|e| e.arn != extra.arn),
        SubscriptionChange::Subscribe(wanted) => existing.push(ExistingSubscription {
            arn: subscribed
                .filter(|arn| arn.starts_with("arn:"))
                .unwrap_or_else(|| PENDING.to_owned()),
            protocol: wanted.protocol.clone(),
            endpoint: wanted.endpoint.clone(),
            raw: wanted.raw.then_some(true),
        }),
        SubscriptionChange::RawDelivery(subscription) => {
            for e in existing.iter_mut().filter(|e| e.arn == subscription.arn) {
                e.raw = Some(true);
            }
        }
    }
    existing
}

/// The subscriptions for the status, in a stable order.
pub fn statuses(existing: &[ExistingSubscription]) -> Vec<SubscriptionStatus> {
    let mut statuses: Vec<SubscriptionStatus> = existing
        .iter()
        .map(|s| SubscriptionStatus {
            protocol: s.protocol.clone(),
            endpoint: s.endpoint.clone(),
            arn: s.arn.clone(),
        })
        .collect();
    statuses.sort_by(|a, b| {
        (&a.protocol, &a.endpoint, &a.arn).cmp(&(&b.protocol, &b.endpoint, &b.arn))
    });
    statuses
}

/// How the topic is named: its physical name and the ARN it has in our
/// account and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicId {
    pub name: String,
    pub arn: String,
}

/// SNS topics, as a [`Kind`]; found by ARN.
#[derive(Debug, Clone, Copy)]
pub struct Topics<'a> {
    sns: &'a aws_sdk_sns::Client,
}

impl<'a> Topics<'a> {
    pub fn of(target: &Target<'a>) -> Self {
        Self {
            sns: &target.aws.sns,
        }
    }

    async fn subscriptions(&self, arn: &str) -> Result<Vec<ExistingSubscription>, AwsError> {
        let listed = self
            .sns
            .list_subscriptions_by_topic()
            .topic_arn(arn)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "ListSubscriptionsByTopic", e))?;
        Ok(listed
            .into_iter()
            .filter_map(|s| {
                Some(ExistingSubscription {
                    arn: s.subscription_arn.unwrap_or_else(|| PENDING.to_owned()),
                    protocol: s.protocol?,
                    endpoint: s.endpoint?,
                    raw: None,
                })
            })
            .collect())
    }

    async fn raw_delivery(&self, arn: &str) -> Result<bool, AwsError> {
        let attributes = self
            .sns
            .get_subscription_attributes()
            .subscription_arn(arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "GetSubscriptionAttributes", e))?
            .attributes
            .unwrap_or_default();
        Ok(attributes
            .get("RawMessageDelivery")
            .is_some_and(|v| v.eq_ignore_ascii_case("true")))
    }

    async fn unsubscribe(&self, arn: &str) -> Result<(), AwsError> {
        match self.sns.unsubscribe().subscription_arn(arn).send().await {
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
}

impl<'a> Kind for Topics<'a> {
    type Id = TopicId;
    /// The subscriptions.
    type Desired = Vec<WantedSubscription>;
    /// The topic's ARN.
    type Found = String;
    type Actual = Vec<ExistingSubscription>;
    type Change = SubscriptionChange;

    /// Every subscription change in one pass (SNS applies each at once);
    /// the bound only stops a plan that would never settle.
    const MAX_CHANGES_PER_PASS: usize = 256;

    fn what(id: &TopicId) -> String {
        format!("SNS topic {}", id.name)
    }

    async fn find(&self, id: &TopicId) -> Result<Option<String>, Halt> {
        Ok(Some(id.arn.clone()))
    }

    /// Listed: the topic exists and carries these tags.
    fn find_listed(&self, id: &TopicId, snapshot: &Snapshot) -> Option<(String, Tags)> {
        let tags = snapshot.tags(&id.arn)?.clone();
        Some((id.arn.clone(), tags))
    }

    /// The subscriptions: made and changed by the operator only.
    const LIGHT_KEEPS_SETTINGS: bool = true;

    async fn tags(&self, arn: &String) -> Result<Option<Tags>, AwsError> {
        match self
            .sns
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
        {
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

    /// The subscriptions, and raw delivery of the confirmed ones that declare it.
    async fn observe(
        &self,
        arn: &String,
        wanted: &Vec<WantedSubscription>,
    ) -> Result<Vec<ExistingSubscription>, Halt> {
        let mut existing = self.subscriptions(arn).await?;
        for subscription in existing.iter_mut().filter(|e| e.confirmed()) {
            if wanted.iter().any(|w| w.raw && subscription.is(w)) {
                subscription.raw = Some(self.raw_delivery(&subscription.arn).await?);
            }
        }
        Ok(existing)
    }

    fn plan(
        wanted: &Vec<WantedSubscription>,
        existing: &Vec<ExistingSubscription>,
    ) -> Result<Option<SubscriptionChange>, Halt> {
        Ok(plan_subscriptions(wanted, existing))
    }

    fn effect(_: &str, change: &SubscriptionChange) -> Effect {
        match change {
            SubscriptionChange::Unsubscribe(existing) => Effect::Removed(format!(
                "unsubscribed {} from the notifications topic",
                existing.describe()
            )),
            SubscriptionChange::Subscribe(wanted) => Effect::Created {
                what: format!(
                    "subscription of {} {} to the notifications topic",
                    wanted.protocol, wanted.endpoint
                ),
                recorded: wanted.recorded,
            },
            SubscriptionChange::RawDelivery(existing) => Effect::Changed(format!(
                "subscription of {}: set RawMessageDelivery to true",
                existing.describe()
            )),
        }
    }

    fn assume(
        _: &Vec<WantedSubscription>,
        existing: &Vec<ExistingSubscription>,
        change: &SubscriptionChange,
    ) -> Option<Vec<ExistingSubscription>> {
        Some(after(existing.clone(), change, None))
    }

    /// Tags go with the create: the topic never exists without them.
    async fn create(
        &self,
        id: &TopicId,
        _: &Vec<WantedSubscription>,
        tags: &Tags,
    ) -> Result<String, Halt> {
        let output = self
            .sns
            .create_topic()
            .name(&id.name)
            .set_tags(Some(sns_tags(tags, "CreateTopic")?))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "CreateTopic", e))?;
        output.topic_arn.ok_or_else(|| {
            Halt::progressing(
                Reason::Creating,
                format!("CreateTopic returned no ARN for {}", id.name),
            )
        })
    }

    async fn tag(&self, arn: &String, tags: &Tags) -> Result<(), AwsError> {
        let tags = Some(sns_tags(tags, "TagResource")?);
        let request = self.sns.tag_resource().resource_arn(arn).set_tags(tags);
        aws::send(SERVICE, "TagResource", request.send()).await?;
        Ok(())
    }

    async fn untag(&self, arn: &String, keys: &[String]) -> Result<(), AwsError> {
        let keys = Some(keys.to_vec());
        let request = self
            .sns
            .untag_resource()
            .resource_arn(arn)
            .set_tag_keys(keys);
        aws::send(SERVICE, "UntagResource", request.send()).await?;
        Ok(())
    }

    async fn act(
        &self,
        topic_arn: &String,
        _: &Vec<WantedSubscription>,
        existing: Vec<ExistingSubscription>,
        change: &SubscriptionChange,
    ) -> Result<Vec<ExistingSubscription>, Halt> {
        let mut subscribed = None;
        match change {
            SubscriptionChange::Unsubscribe(extra) => self.unsubscribe(&extra.arn).await?,
            SubscriptionChange::Subscribe(wanted) => {
                let mut request = self
                    .sns
                    .subscribe()
                    .topic_arn(topic_arn)
                    .protocol(&wanted.protocol)
                    .endpoint(&wanted.endpoint);
                if wanted.raw {
                    request = request.attributes("RawMessageDelivery", "true");
                }
                let output = request
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk(SERVICE, "Subscribe", e))?;
                subscribed = output.subscription_arn;
            }
            SubscriptionChange::RawDelivery(subscription) => {
                self.sns
                    .set_subscription_attributes()
                    .subscription_arn(&subscription.arn)
                    .attribute_name("RawMessageDelivery")
                    .attribute_value("true")
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk(SERVICE, "SetSubscriptionAttributes", e))?;
            }
        }
        Ok(after(existing, change, subscribed))
    }

    /// Its subscriptions first (pending ones go with the topic).
    async fn delete(&self, arn: &String) -> Result<Deletion, AwsError> {
        for subscription in self.subscriptions(arn).await? {
            if subscription.confirmed() {
                self.unsubscribe(&subscription.arn).await?;
            }
        }
        self.sns
            .delete_topic()
            .topic_arn(arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "DeleteTopic", e))?;
        Ok(Deletion::Started)
    }
}

fn sns_tags(tags: &Tags, operation: &'static str) -> Result<Vec<Tag>, AwsError> {
    tags.iter()
        .map(|(key, value)| {
            Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|e| common::build_error(SERVICE, operation, e))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(protocol: &str, endpoint: &str) -> WantedSubscription {
        WantedSubscription {
            protocol: protocol.into(),
            endpoint: endpoint.into(),
            raw: protocol == "sqs",
            recorded: false,
        }
    }

    fn existing(
        arn: &str,
        protocol: &str,
        endpoint: &str,
        raw: Option<bool>,
    ) -> ExistingSubscription {
        ExistingSubscription {
            arn: arn.into(),
            protocol: protocol.into(),
            endpoint: endpoint.into(),
            raw,
        }
    }

    /// The wanted and existing subscriptions, and the next change (named
    /// by its endpoint): extra ones first, then missing ones, then raw delivery.
    #[test]
    fn subscription_plans() {
        use SubscriptionChange as C;
        let queue = || existing("arn:aws:sns:r:1:t:1", "sqs", "arn:q", Some(true));
        let old = || {
            existing(
                "arn:aws:sns:r:1:t:2",
                "https",
                "https://old.example.com",
                None,
            )
        };
        let pending = |endpoint| existing(PENDING, "email", endpoint, None);
        let want = [wanted("sqs", "arn:q"), wanted("email", "ops@example.com")];
        /// The case, what is wanted, what exists, the next change (`+` or
        /// `-` and the endpoint, `raw ` and the endpoint).
        type Case<'a> = (
            &'a str,
            &'a [WantedSubscription],
            Vec<ExistingSubscription>,
            Option<&'a str>,
        );
        let cases: [Case<'_>; 6] = [
            ("as wanted", &want[..1], vec![queue()], None),
            (
                "an extra one goes first",
                &want,
                vec![queue(), old()],
                Some("-https://old.example.com"),
            ),
            (
                "then a missing one",
                &want,
                vec![queue()],
                Some("+ops@example.com"),
            ),
            (
                "then raw delivery",
                &want[..1],
                vec![existing("arn:aws:sns:r:1:t:1", "sqs", "arn:q", Some(false))],
                Some("raw arn:q"),
            ),
            // A pending confirmation is neither subscribed again nor removed.
            (
                "pending",
                &want[1..],
                vec![pending("ops@example.com"), pending("gone@example.com")],
                None,
            ),
            ("nothing wanted", &[], vec![pending("a@example.com")], None),
        ];
        for (case, wanted, existing, expected) in cases {
            let change = plan_subscriptions(wanted, &existing).map(|change| match change {
                C::Unsubscribe(e) => format!("-{}", e.endpoint),
                C::Subscribe(w) => format!("+{}", w.endpoint),
                C::RawDelivery(e) => format!("raw {}", e.endpoint),
            });
            assert_eq!(change.as_deref(), expected, "{case}");
        }
    }

    #[test]
    fn statuses_are_sorted() {
        let listed = [
            existing("arn:2", "sqs", "arn:q", Some(true)),
            existing(PENDING, "email", "b@example.com", None),
        ];
        let statuses = statuses(&listed);
        assert_eq!(statuses[0].endpoint, "b@example.com");
        assert_eq!(statuses[1].arn, "arn:2");
    }
}
