//! The messaging part: the SQS jobs queue with its dead-letter queue, and the
//! SNS notifications topic that delivers to the jobs queue.
//!
//! Order matters and is fixed: the dead-letter queue first (the jobs queue's
//! redrive policy names it, and its ARN tells the account), then the topic,
//! then the jobs queue (its access policy names the topic, and is granted
//! only to a topic that is ours), then the subscriptions.

use super::common::{Arn, Halt};
use super::policy::{self, Redrive};
use super::sns::{self, WantedSubscription};
use super::sqs::{self, DesiredQueue, PolicyWant};
use super::{Cleanup, Notice, Observed, Target};
use crate::aws::AwsError;
use crate::conditions::PartState;
use crate::crd::{NotificationsStatus, QueueStatus};
use crate::naming::component;
use crate::reason::Reason;

/// The physical names of the messaging resources.
#[derive(Debug, Clone)]
struct Names {
    jobs: String,
    dead_letter: String,
    topic: String,
}

impl Names {
    fn of(target: &Target<'_>) -> Self {
        Self {
            jobs: target.id.queue_name(component::JOBS_QUEUE),
            dead_letter: target.id.queue_name(component::DEAD_LETTER_QUEUE),
            topic: target.id.topic_name(),
        }
    }
}

/// What the last written status recorded, restricted to our current names
/// (a status from another naming scheme is ignored, never trusted).
#[derive(Debug, Clone, Default)]
struct Known<'a> {
    jobs_url: Option<&'a str>,
    dead_letter_url: Option<&'a str>,
    topic_arn: Option<&'a str>,
}

impl<'a> Known<'a> {
    fn of(target: &Target<'a>, names: &Names) -> Self {
        let Some(status) = target.previous else {
            return Self::default();
        };
        let queue = status.queue.as_ref();
        let url_of = |url: Option<&'a String>, name: &str| {
            url.map(String::as_str)
                .filter(|url| url.ends_with(&format!("/{name}")))
        };
        Self {
            jobs_url: url_of(queue.map(|q| &q.url), &names.jobs),
            dead_letter_url: url_of(queue.map(|q| &q.dead_letter_url), &names.dead_letter),
            topic_arn: status
                .notifications
                .as_ref()
                .map(|n| n.topic_arn.as_str())
                .filter(|arn| arn.ends_with(&format!(":{}", names.topic))),
        }
    }
}

pub async fn ensure(target: &Target<'_>) -> (Observed<QueueStatus>, Observed<NotificationsStatus>) {
    let names = Names::of(target);
    let known = Known::of(target, &names);
    let spec = &target.spec.queue;
    let mut queue_notices = Vec::new();
    let mut topic_notices = Vec::new();

    let dead_letter_desired = DesiredQueue {
        name: names.dead_letter.clone(),
        // The dead-letter queue keeps failed jobs for as long as the jobs
        // queue keeps jobs (spec: retention applies to both queues).
        visibility_timeout: None,
        retention: spec.message_retention_seconds,
        redrive: None,
        policy: PolicyWant::Unmanaged,
    };
    let dead_letter = match sqs::ensure(
        target,
        &dead_letter_desired,
        known.dead_letter_url,
        known.dead_letter_url.is_some(),
        &mut queue_notices,
    )
    .await
    {
        Ok(queue) => queue,
        Err(halt) => {
            let notifications = waiting_for_queue(&halt);
            return (halt.observed(None, queue_notices), notifications);
        }
    };
    let Some(account) = Arn::parse(&dead_letter.arn) else {
        let halt = Halt::progressing(
            Reason::AwsError,
            format!(
                "SQS reported an unreadable queue ARN {}; retrying",
                dead_letter.arn
            ),
        );
        let notifications = waiting_for_queue(&halt);
        return (halt.observed(None, queue_notices), notifications);
    };
    let topic_arn = account.sibling("sns", &names.topic);
    let jobs_arn = account.sibling("sqs", &names.jobs);

    let topic = sns::ensure_topic(
        target,
        &topic_arn,
        known.topic_arn.is_some(),
        &mut topic_notices,
    )
    .await;
    let policy = match &topic {
        Ok(topic_arn) => PolicyWant::Document(policy::queue_policy(&jobs_arn, topic_arn)),
        // Never let a topic that is not ours deliver to our queue.
        Err(halt) if halt.is_conflict() => PolicyWant::Absent,
        Err(_) => PolicyWant::Unmanaged,
    };

    let jobs_desired = DesiredQueue {
        name: names.jobs.clone(),
        visibility_timeout: Some(spec.visibility_timeout_seconds),
        retention: spec.message_retention_seconds,
        redrive: Some(Redrive {
            dead_letter_target_arn: dead_letter.arn.clone(),
            max_receive_count: i64::from(spec.max_receive_count),
        }),
        policy,
    };
    let jobs = sqs::ensure(
        target,
        &jobs_desired,
        known.jobs_url,
        known.jobs_url.is_some(),
        &mut queue_notices,
    )
    .await;

    match (jobs, topic) {
        (Ok(jobs), topic) => {
            let queue = Observed::ready(
                QueueStatus {
                    url: jobs.url,
                    arn: jobs.arn.clone(),
                    dead_letter_url: dead_letter.url,
                    dead_letter_arn: dead_letter.arn,
                },
                queue_notices,
            );
            let notifications = match topic {
                Ok(topic_arn) => subscriptions(target, topic_arn, &jobs.arn, topic_notices).await,
                Err(halt) => halt.observed(None, topic_notices),
            };
            (queue, notifications)
        }
        (Err(halt), Ok(_)) => {
            let notifications = Observed {
                state: waiting_for_queue(&halt).state,
                value: None,
                notices: topic_notices,
            };
            (halt.observed(None, queue_notices), notifications)
        }
        (Err(jobs_halt), Err(topic_halt)) => (
            jobs_halt.observed(None, queue_notices),
            topic_halt.observed(None, topic_notices),
        ),
    }
}

async fn subscriptions(
    target: &Target<'_>,
    topic_arn: String,
    jobs_arn: &str,
    mut notices: Vec<Notice>,
) -> Observed<NotificationsStatus> {
    let wanted = wanted_subscriptions(target, jobs_arn);
    match sns::ensure_subscriptions(target, &topic_arn, &wanted, &mut notices).await {
        Ok(subscriptions) => Observed::ready(
            NotificationsStatus {
                topic_arn,
                subscriptions,
            },
            notices,
        ),
        Err(halt) => halt.observed(None, notices),
    }
}

/// The jobs queue (raw delivery: the worker reads the published body as is)
/// and the spec's subscriptions, each once.
fn wanted_subscriptions(target: &Target<'_>, jobs_arn: &str) -> Vec<WantedSubscription> {
    let mut wanted = vec![WantedSubscription {
        protocol: "sqs".to_owned(),
        endpoint: jobs_arn.to_owned(),
        raw: true,
    }];
    for subscription in &target.spec.notifications.subscriptions {
        let protocol = subscription.protocol.as_str();
        if !wanted
            .iter()
            .any(|w| w.protocol == protocol && w.endpoint == subscription.endpoint)
        {
            wanted.push(WantedSubscription {
                protocol: protocol.to_owned(),
                endpoint: subscription.endpoint.clone(),
                raw: false,
            });
        }
    }
    wanted
}

/// The notifications part while the queues are not there: it cannot
/// subscribe the jobs queue yet.
fn waiting_for_queue(halt: &Halt) -> Observed<NotificationsStatus> {
    let why = halt.message();
    Observed {
        state: PartState::progressing(
            Reason::WaitingForQueue,
            format!("the topic is provisioned once the jobs queues are: {why}"),
        ),
        value: None,
        notices: Vec::new(),
    }
}

/// Deletes the topic (and its subscriptions) first, so nothing is delivered
/// to a queue being deleted, then both queues; only what is ours.
pub async fn delete(target: &Target<'_>) -> Result<Cleanup, AwsError> {
    let names = Names::of(target);
    let known = Known::of(target, &names);
    let mut waiting = Vec::new();

    if let Some(topic_arn) = topic_arn(target, &names, &known).await? {
        waiting.extend(sns::delete_topic(target, &topic_arn).await?);
    }
    waiting.extend(sqs::delete(target, &names.jobs, known.jobs_url).await?);
    waiting.extend(sqs::delete(target, &names.dead_letter, known.dead_letter_url).await?);

    Ok(if waiting.is_empty() {
        Cleanup::Done
    } else {
        Cleanup::Waiting(waiting.join("; "))
    })
}

/// Tags the queues and the topic `movieapp.io/retained=true` when ours.
pub async fn retain(target: &Target<'_>) -> Result<(), AwsError> {
    let names = Names::of(target);
    let known = Known::of(target, &names);
    let jobs = sqs::retain(target, &names.jobs, known.jobs_url).await?;
    let dead_letter = sqs::retain(target, &names.dead_letter, known.dead_letter_url).await?;
    let topic_arn = known.topic_arn.map(str::to_owned).or_else(|| {
        [jobs, dead_letter]
            .iter()
            .flatten()
            .find_map(|arn| Arn::parse(arn).map(|a| a.sibling("sns", &names.topic)))
    });
    if let Some(topic_arn) = topic_arn {
        sns::retain_topic(target, &topic_arn).await?;
    }
    Ok(())
}

/// The topic's ARN: from the status, else from either queue's account.
/// `None` when neither is known: then no queue of ours exists, and a topic
/// can only have outlived them if the operator crashed right after creating
/// it and both queues were then deleted by hand (see docs/aws-resources.md).
async fn topic_arn(
    target: &Target<'_>,
    names: &Names,
    known: &Known<'_>,
) -> Result<Option<String>, AwsError> {
    if let Some(arn) = known.topic_arn {
        return Ok(Some(arn.to_owned()));
    }
    for (name, url) in [
        (&names.dead_letter, known.dead_letter_url),
        (&names.jobs, known.jobs_url),
    ] {
        if let Some(arn) = sqs::arn(target, name, url).await?
            && let Some(parsed) = Arn::parse(&arn)
        {
            return Ok(Some(parsed.sibling("sns", &names.topic)));
        }
    }
    Ok(None)
}
