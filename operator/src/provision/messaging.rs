//! The messaging part: the SQS jobs queue with its dead-letter queue, and the
//! SNS notifications topic that delivers to the jobs queue.
//!
//! Order matters and is fixed: the dead-letter queue first (the jobs queue's
//! redrive policy names it, and its ARN tells the account), then the topic,
//! then the jobs queue (its access policy names the topic, and is granted
//! only to a topic that is ours), then the subscriptions.

use super::common::{Arn, Halt};
use super::inspect::{self, Inspected, Presence, ResourceKind};
use super::policy::{self, Redrive};
use super::resource::{self, Declared, Kind, LiveStatus};
use super::sns::{self, TopicId, Topics, WantedSubscription};
use super::sqs::{DesiredQueue, PolicyWant, Queue, QueueId, Queues};
use super::{Cleanup, Observed, Target};
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
        let names = target.names();
        Self {
            jobs: names.jobs_queue,
            dead_letter: names.dead_letter_queue,
            topic: names.topic,
        }
    }

    fn topic_id(&self, arn: String) -> TopicId {
        TopicId {
            name: self.topic.clone(),
            arn,
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

    /// The jobs queue, then the dead-letter queue (deleted in that order).
    fn queue_ids(&self, names: &Names) -> [QueueId<'a>; 2] {
        [
            QueueId {
                name: names.jobs.clone(),
                known_url: self.jobs_url,
            },
            QueueId {
                name: names.dead_letter.clone(),
                known_url: self.dead_letter_url,
            },
        ]
    }
}

pub async fn ensure(target: &Target<'_>) -> (Observed<QueueStatus>, Observed<NotificationsStatus>) {
    let names = Names::of(target);
    let known = Known::of(target, &names);
    let spec = &target.spec.queue;
    let queues = Queues::of(target);
    let topics = Topics::of(target);

    let dead_letter_desired = DesiredQueue {
        // The dead-letter queue keeps failed jobs for as long as the jobs
        // queue keeps jobs (spec: retention applies to both queues).
        visibility_timeout: None,
        retention: spec.message_retention_seconds,
        redrive: None,
        policy: PolicyWant::Unmanaged,
    };
    let dead_letter = ensure_queue(
        &queues,
        target,
        &names.dead_letter,
        known.dead_letter_url,
        &dead_letter_desired,
    )
    .await;
    let mut queue_notices = dead_letter.notices;
    let dead_letter = match dead_letter.result {
        Ok(queue) => queue,
        Err(stopped) => {
            let notifications = waiting_for_queue(&stopped.halt);
            return (stopped.halt.observed(None, queue_notices), notifications);
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
    let topic_id = TopicId {
        name: names.topic.clone(),
        arn: account.sibling("sns", &names.topic),
    };
    let jobs_arn = account.sibling("sqs", &names.jobs);
    let subscriptions = wanted_subscriptions(target, &jobs_arn);

    let topic = resource::claim(
        &topics,
        target,
        Declared {
            id: &topic_id,
            desired: &subscriptions,
            recorded: known.topic_arn.is_some(),
        },
    )
    .await;
    let topic_notices = topic.notices;
    let policy = match &topic.result {
        Ok(topic_arn) => PolicyWant::Document(policy::queue_policy(&jobs_arn, topic_arn)),
        // Never let a topic that is not ours deliver to our queue.
        Err(stopped) if stopped.halt.is_conflict() => PolicyWant::Absent,
        Err(_) => PolicyWant::Unmanaged,
    };

    let jobs_desired = DesiredQueue {
        visibility_timeout: Some(spec.visibility_timeout_seconds),
        retention: spec.message_retention_seconds,
        redrive: Some(Redrive {
            dead_letter_target_arn: dead_letter.arn.clone(),
            max_receive_count: i64::from(spec.max_receive_count),
        }),
        policy,
    };
    let jobs = ensure_queue(&queues, target, &names.jobs, known.jobs_url, &jobs_desired).await;
    queue_notices.extend(jobs.notices);

    match (jobs.result, topic.result) {
        (Ok(jobs), topic) => {
            let queue = Observed::ready(
                QueueStatus {
                    url: jobs.url,
                    arn: jobs.arn,
                    dead_letter_url: dead_letter.url,
                    dead_letter_arn: dead_letter.arn,
                },
                queue_notices,
            );
            let kept = target
                .light
                .and_then(|last| last.notifications.value.as_ref())
                .filter(|last| topic.as_ref().is_ok_and(|arn| *arn == last.topic_arn));
            let notifications = match (topic, kept) {
                // A light pass keeps the subscriptions the last complete one found.
                (Ok(_), Some(kept)) => Observed::ready(kept.clone(), topic_notices),
                (Ok(topic_arn), None) => {
                    let settled =
                        resource::settle(&topics, target, &topic_id, &topic_arn, &subscriptions)
                            .await;
                    let mut notices = topic_notices;
                    notices.extend(settled.notices);
                    resource::Outcome {
                        result: settled.result,
                        notices,
                    }
                    .observed(|existing| NotificationsStatus {
                        topic_arn,
                        subscriptions: sns::statuses(&existing),
                    })
                }
                (Err(stopped), _) => stopped.halt.observed(None, topic_notices),
            };
            (queue, notifications)
        }
        (Err(stopped), Ok(_)) => {
            let notifications = Observed {
                state: waiting_for_queue(&stopped.halt).state,
                value: None,
                notices: topic_notices,
            };
            (stopped.halt.observed(None, queue_notices), notifications)
        }
        (Err(jobs), Err(topic)) => (
            jobs.halt.observed(None, queue_notices),
            topic.halt.observed(None, topic_notices),
        ),
    }
}

/// The jobs queue (raw delivery: the worker reads the published body as is)
/// and the spec's subscriptions, each once.
fn wanted_subscriptions(target: &Target<'_>, jobs_arn: &str) -> Vec<WantedSubscription> {
    let recorded = |protocol: &str, endpoint: &str| {
        target
            .previous
            .and_then(|s| s.notifications.as_ref())
            .is_some_and(|n| {
                n.subscriptions
                    .iter()
                    .any(|s| s.protocol == protocol && s.endpoint == endpoint)
            })
    };
    let mut wanted = vec![WantedSubscription {
        protocol: "sqs".to_owned(),
        endpoint: jobs_arn.to_owned(),
        raw: true,
        recorded: recorded("sqs", jobs_arn),
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
                recorded: recorded(protocol, &subscription.endpoint),
            });
        }
    }
    wanted
}

/// The notifications part while the queues are not there: it cannot
/// subscribe the jobs queue yet.
/// Ensures the queue `name`, found at `known_url` when the status recorded it.
async fn ensure_queue(
    queues: &Queues<'_>,
    target: &Target<'_>,
    name: &str,
    known_url: Option<&str>,
    desired: &DesiredQueue,
) -> resource::Outcome<Queue> {
    let id = QueueId {
        name: name.to_owned(),
        known_url,
    };
    let declared = Declared {
        id: &id,
        desired,
        recorded: known_url.is_some(),
    };
    resource::ensure(queues, target, declared).await
}

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

/// The queues, the topic and its subscriptions as they stand, read only
/// ([`inspect`](super::inspect)). The topic is looked up by the ARN the
/// status recorded, else by the one the queues' account gives it, as
/// provisioning does.
pub async fn inspect(target: &Target<'_>) -> Vec<Inspected> {
    let names = Names::of(target);
    let known = Known::of(target, &names);
    let queues = Queues::of(target);
    let [jobs_id, dead_letter_id] = known.queue_ids(&names);
    let url = |queue: &Queue| queue.url.clone();
    let ((jobs, jobs_found), (dead_letter, dead_letter_found)) = futures::future::join(
        inspect::one(&queues, target, &jobs_id, url),
        inspect::one(&queues, target, &dead_letter_id, url),
    )
    .await;
    let queue = |kind, component: &str, name: &str, presence| Inspected {
        kind,
        component: component.to_owned(),
        name: name.to_owned(),
        declared: true,
        presence,
    };
    let mut resources = vec![
        queue(
            ResourceKind::Queue,
            component::JOBS_QUEUE,
            &names.jobs,
            jobs,
        ),
        queue(
            ResourceKind::DeadLetterQueue,
            component::DEAD_LETTER_QUEUE,
            &names.dead_letter,
            dead_letter,
        ),
    ];
    let account = jobs_found
        .iter()
        .chain(&dead_letter_found)
        .find_map(|q| Arn::parse(&q.arn));
    let topic_arn = known
        .topic_arn
        .map(str::to_owned)
        .or_else(|| account.as_ref().map(|a| a.sibling("sns", &names.topic)));
    let Some(topic_arn) = topic_arn else {
        resources.push(queue(
            ResourceKind::Topic,
            component::TOPIC,
            &names.topic,
            Presence::Unknown(
                "not looked up: its ARN follows from the queues' account, and neither queue \
                 exists nor does the status record it"
                    .to_owned(),
            ),
        ));
        return resources;
    };
    let topics = Topics::of(target);
    let topic_id = names.topic_id(topic_arn);
    let (topic, topic_found) = inspect::one(&topics, target, &topic_id, String::clone).await;
    resources.push(queue(
        ResourceKind::Topic,
        component::TOPIC,
        &names.topic,
        topic,
    ));
    let Some(topic_arn) = topic_found else {
        return resources;
    };
    let jobs_arn = jobs_found
        .as_ref()
        .map(|q| q.arn.clone())
        .or_else(|| account.as_ref().map(|a| a.sibling("sqs", &names.jobs)))
        .unwrap_or_default();
    let wanted = wanted_subscriptions(target, &jobs_arn);
    match topics.observe(&topic_arn, &wanted).await {
        Ok(existing) => resources.extend(inspect_subscriptions(&wanted, &existing)),
        Err(halt) => resources.push(Inspected {
            kind: ResourceKind::Subscription,
            component: "*".to_owned(),
            name: "subscriptions".to_owned(),
            declared: true,
            presence: Presence::Unknown(halt.message()),
        }),
    }
    resources
}

/// Each wanted subscription as found (or missing), then those the spec
/// does not list (the next reconcile removes the confirmed ones).
fn inspect_subscriptions(
    wanted: &[WantedSubscription],
    existing: &[sns::ExistingSubscription],
) -> Vec<Inspected> {
    let found = |e: &sns::ExistingSubscription| Presence::Found {
        address: e.arn.clone(),
        live: Some(LiveStatus {
            text: if e.confirmed() {
                "confirmed".to_owned()
            } else {
                "pending confirmation by the endpoint".to_owned()
            },
            settled: true,
        }),
        claim: None,
    };
    let declared = wanted.iter().map(|w| Inspected {
        kind: ResourceKind::Subscription,
        component: w.protocol.clone(),
        name: w.endpoint.clone(),
        declared: true,
        presence: existing
            .iter()
            .find(|e| e.is(w))
            .map_or(Presence::Missing, found),
    });
    let extra = existing
        .iter()
        .filter(|e| !wanted.iter().any(|w| e.is(w)))
        .map(|e| Inspected {
            kind: ResourceKind::Subscription,
            component: e.protocol.clone(),
            name: e.endpoint.clone(),
            declared: false,
            presence: found(e),
        });
    declared.chain(extra).collect()
}

/// Deletes the topic (and its subscriptions) first, so nothing is delivered
/// to a queue being deleted, then both queues; only what is ours.
pub async fn delete(target: &Target<'_>) -> Result<Cleanup, AwsError> {
    let names = Names::of(target);
    let known = Known::of(target, &names);
    let queues = Queues::of(target);
    let mut waiting = Vec::new();

    if let Some(topic) = topic_id(target, &names, &known).await? {
        waiting.extend(resource::delete(&Topics::of(target), target, &topic).await?);
    }
    for queue in known.queue_ids(&names) {
        waiting.extend(resource::delete(&queues, target, &queue).await?);
    }
    Ok(Cleanup::waiting_for(waiting))
}

/// Tags the queues and the topic `movieapp.io/retained=true` when ours.
pub async fn retain(target: &Target<'_>) -> Result<(), AwsError> {
    let names = Names::of(target);
    let known = Known::of(target, &names);
    let queues = Queues::of(target);
    let mut arns = Vec::new();
    for queue in known.queue_ids(&names) {
        arns.extend(
            resource::retain(&queues, target, &queue)
                .await?
                .map(|q| q.arn),
        );
    }
    let topic = match known.topic_arn {
        Some(arn) => Some(names.topic_id(arn.to_owned())),
        None => arns.iter().find_map(|arn| {
            Arn::parse(arn).map(|a| names.topic_id(a.sibling("sns", &names.topic)))
        }),
    };
    if let Some(topic) = topic {
        resource::retain(&Topics::of(target), target, &topic).await?;
    }
    Ok(())
}

/// The topic's ARN: from the status, else from either queue's account.
/// `None` when neither is known: then no queue of ours exists, and a topic
/// can only have outlived them if the operator crashed right after creating
/// it and both queues were then deleted by hand (see docs/aws-resources.md).
async fn topic_id(
    target: &Target<'_>,
    names: &Names,
    known: &Known<'_>,
) -> Result<Option<TopicId>, AwsError> {
    if let Some(arn) = known.topic_arn {
        return Ok(Some(names.topic_id(arn.to_owned())));
    }
    let queues = Queues::of(target);
    for queue in known.queue_ids(names).into_iter().rev() {
        let found = match queues.find(&queue).await {
            Ok(found) => found,
            Err(Halt::Aws(error)) => return Err(error),
            Err(Halt::State(_)) => None,
        };
        if let Some(parsed) = found.as_ref().and_then(|q| Arn::parse(&q.arn)) {
            return Ok(Some(names.topic_id(parsed.sibling("sns", &names.topic))));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(protocol: &str, endpoint: &str) -> WantedSubscription {
        WantedSubscription {
            protocol: protocol.to_owned(),
            endpoint: endpoint.to_owned(),
            raw: protocol == "sqs",
            recorded: false,
        }
    }

    fn existing(protocol: &str, endpoint: &str, arn: &str) -> sns::ExistingSubscription {
        sns::ExistingSubscription {
            arn: arn.to_owned(),
            protocol: protocol.to_owned(),
            endpoint: endpoint.to_owned(),
            raw: None,
        }
    }

    #[test]
    fn subscriptions_are_reported_as_declared_missing_pending_or_extra() {
        let wanted = [
            wanted("sqs", "arn:aws:sqs:us-east-1:1:jobs"),
            wanted("email", "ops@example.com"),
            wanted("https", "https://hooks.example.com"),
        ];
        let existing = [
            existing(
                "sqs",
                "arn:aws:sqs:us-east-1:1:jobs",
                "arn:aws:sns:us-east-1:1:t:a",
            ),
            existing("email", "ops@example.com", "PendingConfirmation"),
            existing("email", "old@example.com", "arn:aws:sns:us-east-1:1:t:b"),
        ];
        let report: Vec<(String, bool, Presence)> = inspect_subscriptions(&wanted, &existing)
            .into_iter()
            .map(|i| {
                assert_eq!(i.kind, ResourceKind::Subscription);
                (
                    format!("{} {}", i.component, i.name),
                    i.declared,
                    i.presence,
                )
            })
            .collect();
        let found = |address: &str, text: &str| Presence::Found {
            address: address.to_owned(),
            live: Some(LiveStatus {
                text: text.to_owned(),
                settled: true,
            }),
            claim: None,
        };
        assert_eq!(
            report,
            [
                (
                    "sqs arn:aws:sqs:us-east-1:1:jobs".to_owned(),
                    true,
                    found("arn:aws:sns:us-east-1:1:t:a", "confirmed")
                ),
                (
                    "email ops@example.com".to_owned(),
                    true,
                    found(
                        "PendingConfirmation",
                        "pending confirmation by the endpoint"
                    )
                ),
                (
                    "https https://hooks.example.com".to_owned(),
                    true,
                    Presence::Missing
                ),
                (
                    "email old@example.com".to_owned(),
                    false,
                    found("arn:aws:sns:us-east-1:1:t:b", "confirmed")
                ),
            ]
        );
    }
}
