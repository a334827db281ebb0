//! AWS change events: `--events-queue-url` names an SQS queue that an
//! EventBridge rule fills with CloudTrail's "AWS API Call via CloudTrail"
//! events for the DynamoDB, SQS and SNS writes on the operator's resources
//! (see docs/aws-events.md). Each event is mapped to the MovieApp that
//! manages the resource it names, through the index the per-object memory
//! keeps of every MovieApp's physical AWS names, and that MovieApp is
//! reconciled at once, reading AWS: drift is repaired in seconds instead of
//! at the next resync.
//!
//! - A message is deleted only once its reconcile is queued; bursts about
//!   one MovieApp coalesce into one reconcile.
//! - Events that are valid but not about a managed resource (`foreign`:
//!   another source or kind; `unmanaged`: no MovieApp of this process owns
//!   the resource) are deleted and counted.
//! - A message that is not an event at all (`malformed`) is counted and
//!   left in the queue: its redrive policy moves it to the dead-letter
//!   queue after a few receives.
//! - While the queue cannot be read (missing, access denied, unreachable)
//!   the resync alone finds drift: `movieapp_aws_events_queue_up` is 0, a
//!   warning is logged, and reading is retried with backoff. Reconciling
//!   never waits for the queue.
//!
//! Only the leader consumes: the consumer runs with the controllers.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::aws::{AwsClients, AwsError};
use crate::metrics::Metrics;
use crate::reconcile::memory::{AppRef, Memory, Reread};

/// EventBridge's `detail-type` of a CloudTrail management event.
pub const CLOUDTRAIL_DETAIL_TYPE: &str = "AWS API Call via CloudTrail";
/// The event sources the rule matches.
pub const SOURCES: [&str; 3] = ["aws.dynamodb", "aws.sqs", "aws.sns"];
/// Messages read per receive (SQS's maximum).
const BATCH: i32 = 10;
/// Long-poll wait of one receive; below the SDK's per-attempt timeout.
const WAIT_SECONDS: i32 = 5;
/// The longest wait between two attempts to read a failing queue.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Where the events of one MovieApp go: the memory and the trigger of the
/// controller that watches it (one per watched namespace, or one for all).
#[derive(Debug, Default)]
pub struct Routes {
    scopes: Mutex<Vec<(Arc<Memory>, mpsc::Sender<AppRef>)>>,
}

impl Routes {
    /// Adds a controller: its memory, and the sender of its `reconcile_on`.
    pub fn add(&self, memory: Arc<Memory>, trigger: mpsc::Sender<AppRef>) {
        self.lock().push((memory, trigger));
    }

    /// Marks the MovieApp managing one of `names` to read AWS and returns
    /// what to send to which controller: `Ok(None)` when a reconcile that
    /// reads AWS is already on its way (the burst coalesces), `Err(())`
    /// when no MovieApp of this process manages any of `names`.
    fn route(
        &self,
        names: &[String],
        changed_at: SystemTime,
    ) -> Result<Option<(AppRef, mpsc::Sender<AppRef>)>, ()> {
        let scopes = self.lock().clone();
        for (memory, trigger) in scopes {
            if trigger.is_closed() {
                continue;
            }
            if let Some(uid) = names.iter().find_map(|name| memory.owner_of(name)) {
                let object = memory.reread(&uid, Reread::Change { at: changed_at });
                return Ok(object.map(|object| (object, trigger)));
            }
        }
        Err(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Arc<Memory>, mpsc::Sender<AppRef>)>> {
        self.scopes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What one message is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A CloudTrail write on these physical names, made at `at`.
    Change { names: Vec<String>, at: SystemTime },
    /// A well-formed event of another source or kind, or one naming no
    /// resource.
    Foreign,
}

/// Why a message is not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("not a JSON EventBridge event: {0}")]
    NotAnEvent(String),
    #[error("the event's time '{0}' is not an RFC 3339 timestamp")]
    Time(String),
}

/// The EventBridge envelope, as delivered to an SQS target.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(rename = "detail-type")]
    detail_type: String,
    source: String,
    time: String,
    #[serde(default)]
    detail: serde_json::Value,
}

/// Reads one message body. The physical names come from the request's
/// parameters (`tableName`, `queueUrl`, `topicArn`, `subscriptionArn`,
/// `resourceArn`), which CloudTrail records for every write the rule matches.
pub fn parse(body: &str) -> Result<Parsed, Malformed> {
    let envelope: Envelope =
        serde_json::from_str(body).map_err(|e| Malformed::NotAnEvent(e.to_string()))?;
    if envelope.detail_type != CLOUDTRAIL_DETAIL_TYPE
        || !SOURCES.contains(&envelope.source.as_str())
    {
        return Ok(Parsed::Foreign);
    }
    let detail = &envelope.detail;
    // CloudTrail's own time of the call, else EventBridge's.
    let time = detail["eventTime"].as_str().unwrap_or(&envelope.time);
    let at = time
        .parse::<Timestamp>()
        .map(SystemTime::from)
        .map_err(|_| Malformed::Time(time.to_owned()))?;
    let parameters = &detail["requestParameters"];
    let mut names: Vec<String> = [
        "tableName",
        "queueUrl",
        "topicArn",
        "subscriptionArn",
        "resourceArn",
    ]
    .iter()
    .filter_map(|key| parameters[*key].as_str())
    // Not only names under the operator's prefix: a MovieApp may name its
    // resources explicitly (`spec.queue.name`, ...). The index of managed
    // names decides which events are ours.
    .filter_map(physical_name)
    .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Ok(Parsed::Foreign);
    }
    Ok(Parsed::Change { names, at })
}

/// The physical name in a table name, queue URL or DynamoDB/SQS/SNS ARN.
fn physical_name(value: &str) -> Option<String> {
    let name = if let Some(arn) = value.strip_prefix("arn:") {
        // arn:partition:service:region:account:resource
        let mut fields = arn.splitn(5, ':');
        let service = fields.nth(1)?;
        let resource = fields.nth(2)?;
        match service {
            // table/NAME, or table/NAME/stream/... and the like
            "dynamodb" => resource.strip_prefix("table/")?.split('/').next()?,
            // TOPIC, or TOPIC:subscription-id
            "sns" => resource.split(':').next()?,
            // QUEUE
            "sqs" => resource,
            _ => return None,
        }
    } else if value.starts_with("http://") || value.starts_with("https://") {
        // .../account/QUEUE
        value.trim_end_matches('/').rsplit('/').next()?
    } else {
        value
    };
    (!name.is_empty()).then(|| name.to_owned())
}

/// Consumes `queue_url` until the task is dropped.
pub async fn consume(
    aws: Arc<AwsClients>,
    queue_url: String,
    routes: Arc<Routes>,
    metrics: Metrics,
) {
    info!(queue = %queue_url, "consuming AWS change events");
    let mut failures: u32 = 0;
    loop {
        let received = aws
            .sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(BATCH)
            .wait_time_seconds(WAIT_SECONDS)
            .send()
            .await;
        let messages = match received {
            Ok(output) => {
                if failures > 0 {
                    info!(queue = %queue_url, "the AWS change events queue can be read again");
                }
                failures = 0;
                metrics.set_aws_events_queue_up(true);
                output.messages.unwrap_or_default()
            }
            Err(error) => {
                let error = AwsError::from_sdk("sqs", "ReceiveMessage", error);
                metrics.set_aws_events_queue_up(false);
                let delay = backoff(failures);
                if failures == 0 {
                    warn!(queue = %queue_url, %error, retry_in = ?delay,
                        "cannot read the AWS change events queue: AWS drift is found by the resync only until it can");
                } else {
                    debug!(queue = %queue_url, %error, retry_in = ?delay, "the AWS change events queue is still unreadable");
                }
                failures = failures.saturating_add(1);
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        for message in messages {
            let Some(receipt) = message.receipt_handle else {
                continue;
            };
            let body = message.body.unwrap_or_default();
            if !handle(&body, &routes, &metrics).await {
                // Left for the redrive policy to move to the dead-letter queue.
                continue;
            }
            if let Err(error) = aws
                .sqs
                .delete_message()
                .queue_url(&queue_url)
                .receipt_handle(receipt)
                .send()
                .await
            {
                // It comes back after its visibility timeout: one more reconcile.
                let error = AwsError::from_sdk("sqs", "DeleteMessage", error);
                warn!(queue = %queue_url, %error, "could not delete a handled AWS change event");
            }
        }
    }
}

/// Handles one message body; whether it may be deleted.
async fn handle(body: &str, routes: &Routes, metrics: &Metrics) -> bool {
    match parse(body) {
        Err(malformed) => {
            metrics.aws_event("malformed");
            warn!(error = %malformed, "an AWS change events message is not an event; leaving it for the dead-letter queue");
            false
        }
        Ok(Parsed::Foreign) => {
            metrics.aws_event("foreign");
            true
        }
        Ok(Parsed::Change { names, at }) => match routes.route(&names, at) {
            Err(()) => {
                metrics.aws_event("unmanaged");
                debug!(
                    ?names,
                    "an AWS change event about no MovieApp of this operator"
                );
                true
            }
            Ok(None) => {
                metrics.aws_event("coalesced");
                true
            }
            Ok(Some((object, trigger))) => {
                let queued = trigger.send(object).await.is_ok();
                if queued {
                    metrics.aws_event("matched");
                    debug!(?names, "an AWS change event: reconciling its MovieApp");
                }
                // A controller that stopped: the message comes back to the
                // next leader.
                queued
            }
        },
    }
}

/// 1 s, 2 s, 4 s, ... up to [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(6)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(source: &str, name: &str, parameters: serde_json::Value) -> String {
        serde_json::json!({
            "version": "0",
            "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": CLOUDTRAIL_DETAIL_TYPE,
            "source": source,
            "account": "123456789012",
            "time": "2026-12-02T14:00:01Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {
                "eventVersion": "1.09",
                "eventTime": "2026-12-02T14:00:00Z",
                "eventSource": format!("{}.amazonaws.com", source.trim_start_matches("aws.")),
                "eventName": name,
                "awsRegion": "us-east-1",
                "requestParameters": parameters,
            }
        })
        .to_string()
    }

    fn names(body: &str) -> Vec<String> {
        match parse(body) {
            Ok(Parsed::Change { names, .. }) => names,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_write_the_rule_matches_names_its_resource() {
        let table = "movieapp-ns-shop-1a2b3c4d-movies";
        let queue = "movieapp-ns-shop-1a2b3c4d-jobs";
        let topic = "movieapp-ns-shop-1a2b3c4d-notifications";
        let cases = [
            event(
                "aws.dynamodb",
                "UpdateContinuousBackups",
                serde_json::json!({ "tableName": table }),
            ),
            event(
                "aws.dynamodb",
                "UntagResource",
                serde_json::json!({
                    "resourceArn": format!("arn:aws:dynamodb:us-east-1:123456789012:table/{table}"),
                    "tagKeys": ["movieapp.io/uid"],
                }),
            ),
            event(
                "aws.sqs",
                "SetQueueAttributes",
                serde_json::json!({
                    "queueUrl": format!("https://sqs.us-east-1.amazonaws.com/123456789012/{queue}"),
                    "attributes": { "VisibilityTimeout": "5" },
                }),
            ),
            event(
                "aws.sns",
                "Unsubscribe",
                serde_json::json!({
                    "subscriptionArn": format!("arn:aws:sns:us-east-1:123456789012:{topic}:9f1c1b7e-5d7c-4d2b-a1f0-3c3a3c0c1e11"),
                }),
            ),
            event(
                "aws.sns",
                "TagResource",
                serde_json::json!({
                    "resourceArn": format!("arn:aws-us-gov:sns:us-gov-west-1:123456789012:{topic}"),
                }),
            ),
        ];
        let expected = [table, table, queue, topic, topic];
        for (body, expected) in cases.iter().zip(expected) {
            assert_eq!(names(body), vec![expected.to_owned()], "{body}");
        }
        let Ok(Parsed::Change { at, .. }) = parse(&cases[0]) else {
            panic!("no change");
        };
        // CloudTrail's time of the call, not EventBridge's delivery time.
        assert_eq!(
            at,
            SystemTime::from("2026-12-02T14:00:00Z".parse::<Timestamp>().expect("time"))
        );
    }

    #[test]
    fn foreign_events_are_told_apart_from_malformed_messages() {
        let foreign = [
            // Another service.
            event(
                "aws.s3",
                "PutBucketPolicy",
                serde_json::json!({ "bucketName": "movieapp-x" }),
            ),
            // Another kind of event from a matched source.
            serde_json::json!({
                "detail-type": "DynamoDB Table State Change", "source": "aws.dynamodb",
                "time": "2026-12-02T14:00:01Z", "detail": {}
            })
            .to_string(),
            // No request parameters (a failed call, a read).
            event("aws.sqs", "SetQueueAttributes", serde_json::Value::Null),
            // An ARN of an unknown service.
            event(
                "aws.sns",
                "TagResource",
                serde_json::json!({
                    "resourceArn": "arn:aws:iam::123456789012:role/movieapp-x",
                }),
            ),
        ];
        for body in foreign {
            assert_eq!(parse(&body), Ok(Parsed::Foreign), "{body}");
        }
        for body in [
            "",
            "not json",
            "[]",
            "{\"source\": \"aws.sqs\"}",
            "{\"detail-type\": 1, \"source\": \"aws.sqs\", \"time\": \"x\"}",
        ] {
            assert!(
                matches!(parse(body), Err(Malformed::NotAnEvent(_))),
                "{body:?}: {:?}",
                parse(body)
            );
        }
        let mut bad_time: serde_json::Value = serde_json::from_str(&event(
            "aws.dynamodb",
            "DeleteTable",
            serde_json::json!({ "tableName": "movieapp-a" }),
        ))
        .expect("json");
        bad_time["detail"]["eventTime"] = "yesterday".into();
        assert_eq!(
            parse(&bad_time.to_string()),
            Err(Malformed::Time("yesterday".to_owned()))
        );
    }

    #[tokio::test]
    async fn an_event_reconciles_its_owner_once_per_burst() {
        let metrics = Metrics::new();
        let memory = Arc::new(Memory::new(metrics.clone()));
        let routes = Routes::default();
        let (trigger, mut triggered) = mpsc::channel(8);
        routes.add(memory.clone(), trigger);
        let object = AppRef::new("shop").within("ns");
        memory.name("uid-1", object.clone());
        let queue = "movieapp-ns-shop-1a2b3c4d-jobs";
        // A table named explicitly (`spec.database.tableNames`), outside
        // the operator's prefix.
        let legacy = "legacy-users";
        memory.index("uid-1", vec![queue.to_owned(), legacy.to_owned()]);
        let body = event(
            "aws.sqs",
            "SetQueueAttributes",
            serde_json::json!({
                "queueUrl": format!("http://127.0.0.1:5000/123456789012/{queue}"),
            }),
        );

        assert!(handle(&body, &routes, &metrics).await);
        assert!(handle(&body, &routes, &metrics).await);
        assert_eq!(triggered.try_recv().ok(), Some(object.clone()));
        assert!(triggered.try_recv().is_err(), "a burst is one reconcile");
        assert!(matches!(memory.begin("uid-1"), Some(Reread::Change { .. })));
        let explicit = event(
            "aws.dynamodb",
            "UpdateTable",
            serde_json::json!({ "tableName": legacy }),
        );
        assert!(handle(&explicit, &routes, &metrics).await);
        assert_eq!(
            triggered.try_recv().ok(),
            Some(object),
            "an explicitly named resource finds its MovieApp"
        );
        assert!(matches!(memory.begin("uid-1"), Some(Reread::Change { .. })));

        // Unknown resources and malformed messages trigger nothing; only a
        // malformed one is kept for the dead-letter queue.
        let other = event(
            "aws.sqs",
            "DeleteQueue",
            serde_json::json!({
                "queueUrl": "http://127.0.0.1:5000/123456789012/movieapp-other-jobs",
            }),
        );
        assert!(handle(&other, &routes, &metrics).await);
        assert!(!handle("{oops", &routes, &metrics).await);
        assert!(triggered.try_recv().is_err());
        // After the object is forgotten its names map to nothing.
        memory.forget("uid-1");
        assert!(handle(&body, &routes, &metrics).await);
        assert!(triggered.try_recv().is_err());

        let text = metrics.render().expect("render");
        for line in [
            "movieapp_aws_events_total{outcome=\"matched\"} 2",
            "movieapp_aws_events_total{outcome=\"coalesced\"} 1",
            "movieapp_aws_events_total{outcome=\"unmanaged\"} 2",
            "movieapp_aws_events_total{outcome=\"malformed\"} 1",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
