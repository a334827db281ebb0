//! Domain events published to the SNS notifications topic.
//!
//! Each message is the event as JSON, with `eventType` (and `userId` where
//! there is one) as message attributes so subscriptions can filter. Events
//! carry a deterministic `eventId`: a redelivered job publishes the same id,
//! so subscribers can drop duplicates.

use anyhow::{Context, bail};
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use serde::{Deserialize, Serialize};

/// One changed field of a watched movie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub field: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    /// A movie on a user's watchlist changed (release date, title, ...).
    #[serde(rename = "watchlist.movie-changed", rename_all = "camelCase")]
    WatchlistMovieChanged {
        event_id: String,
        user_id: String,
        movie_id: u64,
        title: String,
        changes: Vec<Change>,
    },
}

impl Event {
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::WatchlistMovieChanged { .. } => "watchlist.movie-changed",
        }
    }

    fn user_id(&self) -> Option<&str> {
        match self {
            Self::WatchlistMovieChanged { user_id, .. } => Some(user_id),
        }
    }
}

/// Event types we publish; a job consumer receiving them back through the
/// queue's subscription knows to ignore them.
pub const EVENT_TYPES: [&str; 1] = ["watchlist.movie-changed"];

#[derive(Debug, Clone)]
pub struct Notifier {
    sns: aws_sdk_sns::Client,
    topic_arn: Option<String>,
}

/// SNS accepts at most ten messages per PublishBatch.
const BATCH: usize = 10;

impl Notifier {
    pub fn new(sns: aws_sdk_sns::Client, topic_arn: Option<String>) -> Self {
        Self { sns, topic_arn }
    }

    pub fn topic_arn(&self) -> Option<&str> {
        self.topic_arn.as_deref()
    }

    pub fn sns(&self) -> &aws_sdk_sns::Client {
        &self.sns
    }

    /// Publishes every event or fails (the job is then retried).
    pub async fn publish(&self, events: &[Event]) -> anyhow::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let Some(topic) = &self.topic_arn else {
            bail!(
                "no notifications topic is configured ({})",
                movieapp_model::env::NOTIFICATIONS_TOPIC_ARN
            );
        };
        for chunk in events.chunks(BATCH) {
            let mut request = self.sns.publish_batch().topic_arn(topic);
            for (i, event) in chunk.iter().enumerate() {
                request = request.publish_batch_request_entries(entry(i, event)?);
            }
            let output = request
                .send()
                .await
                .context("publishing notifications to SNS")?;
            if let Some(failed) = output.failed.as_ref().and_then(|f| f.first()) {
                bail!(
                    "SNS refused {} of {} notifications: {}",
                    output.failed.as_ref().map_or(0, Vec::len),
                    chunk.len(),
                    failed.message.as_deref().unwrap_or(&failed.code)
                );
            }
        }
        Ok(())
    }
}

fn string_attribute(value: &str) -> anyhow::Result<MessageAttributeValue> {
    Ok(MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()?)
}

fn entry(index: usize, event: &Event) -> anyhow::Result<PublishBatchRequestEntry> {
    let mut entry = PublishBatchRequestEntry::builder()
        .id(format!("e{index}"))
        .message(serde_json::to_string(event)?)
        .message_attributes("eventType", string_attribute(event.event_type())?);
    if let Some(user_id) = event.user_id() {
        entry = entry.message_attributes("userId", string_attribute(user_id)?);
    }
    Ok(entry.build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_with_their_type() {
        let event = Event::WatchlistMovieChanged {
            event_id: "e".into(),
            user_id: "u".into(),
            movie_id: 550,
            title: "Fight Club".into(),
            changes: vec![Change {
                field: "releaseDate".into(),
                before: None,
                after: Some("1999-10-15".into()),
            }],
        };
        let json = serde_json::to_value(&event).expect("serialises");
        assert_eq!(json["type"], "watchlist.movie-changed");
        assert_eq!(json["movieId"], 550);
        assert_eq!(json["changes"][0]["after"], "1999-10-15");
        assert!(EVENT_TYPES.contains(&event.event_type()));
    }
}
