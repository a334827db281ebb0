//! SQS queues as a resource [`Kind`]: found by name (or by the URL the
//! status recorded), created with their attributes and ownership tags in a
//! single call, and kept at the declared attributes, compared by meaning.
//!
//! [`super::messaging`] decides what each queue declares (the jobs queue and
//! its dead-letter queue); this file only talks to SQS.

use std::collections::HashMap;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

use super::Target;
use super::common::Halt;
use super::policy::{self, Redrive};
use super::resource::{Deletion, Effect, Kind, LiveStatus, Tags};
use crate::aws::{self, AwsError};
use crate::reason::Reason;

const SERVICE: &str = "sqs";

/// What the access policy of a queue should be.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyWant {
    /// Not decided this pass (the topic's state is unknown): leave it as is.
    Unmanaged,
    /// No policy: nobody outside the account may send.
    Absent,
    /// Exactly this document (compared by meaning).
    Document(Value),
}

/// The declared state of one queue.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredQueue {
    /// `None`: not managed (the dead-letter queue keeps the SQS default).
    pub visibility_timeout: Option<i32>,
    pub retention: i32,
    pub redrive: Option<Redrive>,
    pub policy: PolicyWant,
}

impl DesiredQueue {
    /// Every declared attribute, for CreateQueue.
    fn attributes(&self) -> Vec<(QueueAttributeName, String)> {
        let mut out = vec![(
            QueueAttributeName::MessageRetentionPeriod,
            self.retention.to_string(),
        )];
        if let Some(timeout) = self.visibility_timeout {
            out.push((QueueAttributeName::VisibilityTimeout, timeout.to_string()));
        }
        if let Some(redrive) = &self.redrive {
            out.push((QueueAttributeName::RedrivePolicy, redrive.to_json()));
        }
        if let PolicyWant::Document(document) = &self.policy {
            out.push((QueueAttributeName::Policy, document.to_string()));
        }
        out
    }
}

/// One attribute to write, with the value it replaces (for the Event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeChange {
    pub name: QueueAttributeName,
    pub value: String,
    pub was: Option<String>,
}

impl AttributeChange {
    fn describe(&self) -> String {
        match self.name {
            // Documents are long: name them only.
            QueueAttributeName::Policy | QueueAttributeName::RedrivePolicy => {
                self.name.as_str().to_owned()
            }
            _ => format!(
                "{} {} → {}",
                self.name.as_str(),
                self.was.as_deref().unwrap_or("unset"),
                self.value
            ),
        }
    }
}

/// The writes that bring `actual` to `desired`, compared by meaning: numbers
/// as numbers, JSON documents parsed. Nothing here when nothing differs.
pub fn attribute_changes(
    desired: &DesiredQueue,
    actual: &HashMap<QueueAttributeName, String>,
) -> Vec<AttributeChange> {
    let mut changes = Vec::new();
    let mut change = |name: QueueAttributeName, value: String| {
        let was = actual.get(&name).cloned();
        changes.push(AttributeChange { name, value, was });
    };
    let number =
        |name: &QueueAttributeName| actual.get(name).and_then(|v| v.trim().parse::<i64>().ok());

    if let Some(timeout) = desired.visibility_timeout
        && number(&QueueAttributeName::VisibilityTimeout) != Some(i64::from(timeout))
    {
        change(QueueAttributeName::VisibilityTimeout, timeout.to_string());
    }
    if number(&QueueAttributeName::MessageRetentionPeriod) != Some(i64::from(desired.retention)) {
        change(
            QueueAttributeName::MessageRetentionPeriod,
            desired.retention.to_string(),
        );
    }
    if let Some(redrive) = &desired.redrive {
        let current = actual
            .get(&QueueAttributeName::RedrivePolicy)
            .and_then(|text| Redrive::parse(text));
        if current.as_ref() != Some(redrive) {
            change(QueueAttributeName::RedrivePolicy, redrive.to_json());
        }
    }
    let current_policy = actual
        .get(&QueueAttributeName::Policy)
        .map(String::as_str)
        .filter(|p| !p.trim().is_empty());
    match (&desired.policy, current_policy) {
        (PolicyWant::Document(document), current) => {
            let wanted = document.to_string();
            if !current.is_some_and(|current| policy::equivalent(&wanted, current)) {
                change(QueueAttributeName::Policy, wanted);
            }
        }
        // SQS removes a policy when it is set to the empty string.
        (PolicyWant::Absent, Some(_)) => change(QueueAttributeName::Policy, String::new()),
        (PolicyWant::Absent, None) | (PolicyWant::Unmanaged, _) => {}
    }
    changes
}

/// How one queue is named: its physical name, and the URL the status
/// recorded (it saves a GetQueueUrl per resync; trusted only for this name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueId<'a> {
    pub name: String,
    pub known_url: Option<&'a str>,
}

/// A queue that exists: its address and its attributes as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub url: String,
    pub arn: String,
    pub attributes: Attributes,
}

/// SQS queues, as a [`Kind`].
#[derive(Debug, Clone, Copy)]
pub struct Queues<'a> {
    sqs: &'a aws_sdk_sqs::Client,
}

impl<'a> Queues<'a> {
    pub fn of(target: &Target<'a>) -> Self {
        Self {
            sqs: &target.aws.sqs,
        }
    }
}

impl<'a> Kind for Queues<'a> {
    type Id = QueueId<'a>;
    type Desired = DesiredQueue;
    type Found = Queue;
    type Actual = Attributes;
    /// One SetQueueAttributes carries every attribute that differs.
    type Change = Vec<AttributeChange>;

    const MAX_CHANGES_PER_PASS: usize = 1;

    fn what(id: &QueueId<'a>) -> String {
        format!("SQS queue {}", id.name)
    }

    async fn find(&self, id: &QueueId<'a>) -> Result<Option<Queue>, Halt> {
        let Some((url, attributes)) = find(self.sqs, &id.name, id.known_url).await? else {
            return Ok(None);
        };
        let arn = attributes
            .get(&QueueAttributeName::QueueArn)
            .cloned()
            .ok_or_else(|| {
                Halt::progressing(
                    Reason::AwsError,
                    format!("{} reported no QueueArn; retrying", Self::what(id)),
                )
            })?;
        Ok(Some(Queue {
            url,
            arn,
            attributes,
        }))
    }

    fn arn(queue: &Queue) -> Option<&str> {
        Some(&queue.arn)
    }

    async fn tags(&self, queue: &Queue) -> Result<Option<Tags>, AwsError> {
        match self
            .sqs
            .list_queue_tags()
            .queue_url(&queue.url)
            .send()
            .await
        {
            Ok(output) => Ok(Some(output.tags.unwrap_or_default().into_iter().collect())),
            Err(error) => not_found_is_none(AwsError::from_sdk(SERVICE, "ListQueueTags", error)),
        }
    }

    /// The messages waiting: on the dead-letter queue, jobs that failed
    /// `maxReceiveCount` times.
    fn live_status(queue: &Queue) -> Option<LiveStatus> {
        let count = |name: &QueueAttributeName| {
            queue
                .attributes
                .get(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let waiting = count(&QueueAttributeName::ApproximateNumberOfMessages);
        let in_flight = count(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
        Some(LiveStatus {
            text: format!("{waiting} messages waiting, {in_flight} in flight"),
            settled: true,
        })
    }

    /// Read with the queue already.
    async fn observe(&self, queue: &Queue, _: &DesiredQueue) -> Result<Attributes, Halt> {
        Ok(queue.attributes.clone())
    }

    fn plan(desired: &DesiredQueue, actual: &Attributes) -> Result<Option<Self::Change>, Halt> {
        let changes = attribute_changes(desired, actual);
        Ok((!changes.is_empty()).then_some(changes))
    }

    fn effect(what: &str, changes: &Self::Change) -> Effect {
        let described: Vec<String> = changes.iter().map(AttributeChange::describe).collect();
        Effect::Changed(format!("{what}: set {}", described.join(", ")))
    }

    fn assume(_: &DesiredQueue, actual: &Attributes, changes: &Self::Change) -> Option<Attributes> {
        Some(after(actual.clone(), changes))
    }

    /// Attributes and tags go in the same call: there is no moment at which
    /// the queue exists without our ownership tags, whatever happens next.
    async fn create(
        &self,
        id: &QueueId<'a>,
        desired: &DesiredQueue,
        tags: &Tags,
    ) -> Result<Queue, Halt> {
        let what = Self::what(id);
        let mut request = self
            .sqs
            .create_queue()
            .queue_name(&id.name)
            .set_tags(Some(tags.clone().into_iter().collect()));
        for (name, value) in desired.attributes() {
            request = request.attributes(name, value);
        }
        let url = match request.send().await {
            Ok(output) => output.queue_url,
            Err(error) => {
                let error = AwsError::from_sdk(SERVICE, "CreateQueue", error);
                return Err(creation_refused(&what, error));
            }
        };
        let url = url.ok_or_else(|| {
            Halt::progressing(
                Reason::Creating,
                format!("CreateQueue returned no URL for {what}"),
            )
        })?;
        let attributes = attributes(self.sqs, &url).await?.unwrap_or_default();
        let arn = attributes
            .get(&QueueAttributeName::QueueArn)
            .cloned()
            .ok_or_else(|| {
                Halt::progressing(Reason::Creating, format!("{what} is being created"))
            })?;
        Ok(Queue {
            url,
            arn,
            attributes,
        })
    }

    async fn tag(&self, queue: &Queue, tags: &Tags) -> Result<(), AwsError> {
        let tags = Some(tags.clone().into_iter().collect());
        let request = self.sqs.tag_queue().queue_url(&queue.url).set_tags(tags);
        aws::send(SERVICE, "TagQueue", request.send()).await?;
        Ok(())
    }

    async fn untag(&self, queue: &Queue, keys: &[String]) -> Result<(), AwsError> {
        let keys = Some(keys.to_vec());
        let request = self
            .sqs
            .untag_queue()
            .queue_url(&queue.url)
            .set_tag_keys(keys);
        aws::send(SERVICE, "UntagQueue", request.send()).await?;
        Ok(())
    }

    async fn act(
        &self,
        queue: &Queue,
        desired: &DesiredQueue,
        actual: Attributes,
        changes: &Self::Change,
    ) -> Result<Attributes, Halt> {
        let mut request = self.sqs.set_queue_attributes().queue_url(&queue.url);
        for change in changes {
            request = request.attributes(change.name.clone(), change.value.clone());
        }
        // moto 5 drops a queue's policy on any SetQueueAttributes that leaves
        // Policy out; re-sending the declared policy costs nothing on AWS and
        // keeps one write from causing another.
        if let PolicyWant::Document(document) = &desired.policy
            && !changes.iter().any(|c| c.name == QueueAttributeName::Policy)
        {
            request = request.attributes(QueueAttributeName::Policy, document.to_string());
        }
        request
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "SetQueueAttributes", e))?;
        Ok(after(actual, changes))
    }

    async fn delete(&self, queue: &Queue) -> Result<Deletion, AwsError> {
        self.sqs
            .delete_queue()
            .queue_url(&queue.url)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "DeleteQueue", e))?;
        Ok(Deletion::Started)
    }
}

// ------------------------------------------------------------------ calls

type Attributes = HashMap<QueueAttributeName, String>;

/// The attributes once `changes` are written.
fn after(mut actual: Attributes, changes: &[AttributeChange]) -> Attributes {
    for change in changes {
        actual.insert(change.name.clone(), change.value.clone());
    }
    actual
}

/// `Ok(None)` for a "not found" error, the error otherwise.
fn not_found_is_none<T>(error: AwsError) -> Result<Option<T>, AwsError> {
    if error.is_not_found() {
        Ok(None)
    } else {
        Err(error)
    }
}

/// The queue's URL and attributes, or `None` when no queue has this name.
async fn find(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    known_url: Option<&str>,
) -> Result<Option<(String, Attributes)>, AwsError> {
    // A URL from the status is only trusted for this very name.
    if let Some(url) = known_url.filter(|url| url.ends_with(&format!("/{name}")))
        && let Some(attributes) = attributes(sqs, url).await?
    {
        return Ok(Some((url.to_owned(), attributes)));
    }
    let url = match sqs.get_queue_url().queue_name(name).send().await {
        Ok(output) => output.queue_url,
        Err(error) => return not_found_is_none(AwsError::from_sdk(SERVICE, "GetQueueUrl", error)),
    };
    let Some(url) = url else {
        return Ok(None);
    };
    Ok(attributes(sqs, &url).await?.map(|a| (url, a)))
}

async fn attributes(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<Option<Attributes>, AwsError> {
    match sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
    {
        Ok(output) => Ok(Some(output.attributes.unwrap_or_default())),
        Err(error) => not_found_is_none(AwsError::from_sdk(SERVICE, "GetQueueAttributes", error)),
    }
}

/// CreateQueue errors that only mean "not yet".
fn creation_refused(what: &str, error: AwsError) -> Halt {
    let code = error.code.as_deref().unwrap_or_default();
    let code = code.rsplit('.').next().unwrap_or(code);
    match code {
        // AWS keeps a deleted queue's name for 60 seconds.
        "QueueDeletedRecently" => Halt::progressing(
            Reason::Creating,
            format!(
                "{what} was deleted less than 60 s ago and SQS does not allow the name yet; retrying"
            ),
        ),
        // Someone created the name between our lookup and our create: the
        // next pass looks at it (and checks its owner) again.
        "QueueAlreadyExists" | "QueueNameExists" => Halt::progressing(
            Reason::Creating,
            format!("{what} appeared while being created; checking it again"),
        ),
        _ => Halt::Aws(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DLQ: &str = "arn:aws:sqs:us-east-1:1:q-dlq";

    fn desired() -> DesiredQueue {
        DesiredQueue {
            visibility_timeout: Some(60),
            retention: 345_600,
            redrive: Some(Redrive {
                dead_letter_target_arn: DLQ.into(),
                max_receive_count: 5,
            }),
            policy: PolicyWant::Document(json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:q"}
            ]})),
        }
    }

    fn actual(pairs: &[(QueueAttributeName, &str)]) -> Attributes {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), (*v).to_owned()))
            .collect()
    }

    fn matching() -> Attributes {
        actual(&[
            (QueueAttributeName::VisibilityTimeout, "60"),
            (QueueAttributeName::MessageRetentionPeriod, "345600"),
            (
                QueueAttributeName::RedrivePolicy,
                &format!(r#"{{"maxReceiveCount":"5","deadLetterTargetArn":"{DLQ}"}}"#),
            ),
            (
                QueueAttributeName::Policy,
                r#"{"Statement":{"Resource":"arn:q","Action":["sqs:SendMessage"],"Effect":"Allow"},"Version":"2012-10-17"}"#,
            ),
            (QueueAttributeName::DelaySeconds, "0"),
            (QueueAttributeName::QueueArn, "arn:q"),
        ])
    }

    fn names(changes: &[AttributeChange]) -> Vec<&str> {
        changes.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn equivalent_attributes_need_no_write() {
        assert!(attribute_changes(&desired(), &matching()).is_empty());
    }

    #[test]
    fn each_differing_attribute_is_written_with_what_it_replaces() {
        let mut drifted = matching();
        drifted.insert(QueueAttributeName::VisibilityTimeout, "30".into());
        drifted.insert(
            QueueAttributeName::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn":"{DLQ}","maxReceiveCount":9}}"#),
        );
        let changes = attribute_changes(&desired(), &drifted);
        assert_eq!(names(&changes), ["VisibilityTimeout", "RedrivePolicy"]);
        assert_eq!(changes[0].was.as_deref(), Some("30"));
        assert_eq!(changes[0].describe(), "VisibilityTimeout 30 → 60");
        assert_eq!(
            Redrive::parse(&changes[1].value).map(|r| r.max_receive_count),
            Some(5)
        );
    }

    #[test]
    fn missing_attributes_are_written() {
        let changes = attribute_changes(&desired(), &HashMap::new());
        assert_eq!(
            names(&changes),
            [
                "VisibilityTimeout",
                "MessageRetentionPeriod",
                "RedrivePolicy",
                "Policy"
            ]
        );
    }

    #[test]
    fn undeclared_attributes_are_left_alone() {
        let dlq = DesiredQueue {
            visibility_timeout: None,
            retention: 345_600,
            redrive: None,
            policy: PolicyWant::Unmanaged,
        };
        let mut attrs = matching();
        attrs.insert(QueueAttributeName::VisibilityTimeout, "999".into());
        assert!(attribute_changes(&dlq, &attrs).is_empty());
    }

    #[test]
    fn an_absent_policy_removes_an_existing_one() {
        let mut want = desired();
        want.policy = PolicyWant::Absent;
        let changes = attribute_changes(&want, &matching());
        assert_eq!(names(&changes), ["Policy"]);
        assert_eq!(changes[0].value, "");
        let mut without = matching();
        without.insert(QueueAttributeName::Policy, " ".into());
        assert!(attribute_changes(&want, &without).is_empty());
    }

    #[test]
    fn create_sends_every_declared_attribute() {
        let names: Vec<QueueAttributeName> =
            desired().attributes().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                QueueAttributeName::MessageRetentionPeriod,
                QueueAttributeName::VisibilityTimeout,
                QueueAttributeName::RedrivePolicy,
                QueueAttributeName::Policy
            ]
        );
    }
}
