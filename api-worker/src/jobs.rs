//! Background jobs: parsing a queue message and handling it. Shared by the
//! SQS poller (`worker`), `sync-popular` and the Lambda SQS handler:
//! each calls [`handle_message`] (or [`handle`]) and decides itself what an
//! error means for the message (leave it for redelivery, report it failed).
//!
//! Messages are `{"type":"refresh-movie","movieId":550}` or
//! `{"type":"warm-popular","pages":3}`, sent raw or arriving through the SNS
//! topic's subscription (an SNS envelope). Our own notifications come back
//! through that subscription too and are acknowledged without work.
//!
//! Handling is idempotent: refresh-movie notifies a watcher only while the
//! watcher's snapshot differs from TMDB and then replaces the snapshot with a
//! conditional write, so a redelivered job finds nothing left to announce
//! (and an event published twice after a crash keeps its `eventId`).

use std::collections::HashMap;

use anyhow::Context;
use aws_lc_rs::digest;
use aws_sdk_dynamodb::types::AttributeValue;
use movieapp_model::{WATCHLISTS, WATCHLISTS_BY_MOVIE, jobs as job_types};
use serde::{Deserialize, Serialize};

use crate::movies::{self, MovieDetails};
use crate::notify::{Change, EVENT_TYPES, Event};
use crate::state::AppState;
use crate::watchlist::MOVIE;

pub const MAX_WARM_PAGES: u32 = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Job {
    /// Re-fetch one movie, update the cache, notify its watchers of changes.
    #[serde(rename = "refresh-movie", rename_all = "camelCase")]
    RefreshMovie { movie_id: u64 },
    /// Re-fetch the first `pages` pages of popular movies into the cache.
    #[serde(rename = "warm-popular", rename_all = "camelCase")]
    WarmPopular {
        #[serde(default = "default_pages")]
        pages: u32,
    },
}

fn default_pages() -> u32 {
    3
}

impl Job {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::RefreshMovie { .. } => job_types::REFRESH_MOVIE,
            Self::WarmPopular { .. } => job_types::WARM_POPULAR,
        }
    }
}

/// What a queue message turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Job(Job),
    /// A notification (ours or another publisher's) delivered through the
    /// topic's subscription: nothing to do.
    Notification,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Retrying cannot help; the message ends in the dead-letter queue.
    #[error("malformed job message: {0}")]
    Malformed(String),
    /// Possibly transient (TMDB, AWS); the message is retried.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Ignored,
}

pub fn parse(body: &str) -> Result<Message, JobError> {
    let malformed = |why: String| JobError::Malformed(why);
    let mut value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| malformed(format!("not JSON: {e}")))?;
    let via_sns = value.get("Type").and_then(|t| t.as_str()) == Some("Notification");
    if via_sns {
        let inner = value
            .get("Message")
            .and_then(|m| m.as_str())
            .unwrap_or_default();
        match serde_json::from_str(inner) {
            Ok(inner) => value = inner,
            Err(_) => return Ok(Message::Notification),
        }
    }
    let Some(kind) = value.get("type").and_then(|t| t.as_str()) else {
        return if via_sns {
            Ok(Message::Notification)
        } else {
            Err(malformed("no \"type\" field".into()))
        };
    };
    if EVENT_TYPES.contains(&kind) {
        return Ok(Message::Notification);
    }
    if via_sns && ![job_types::REFRESH_MOVIE, job_types::WARM_POPULAR].contains(&kind) {
        return Ok(Message::Notification);
    }
    let job: Job = serde_json::from_value(value).map_err(|e| malformed(e.to_string()))?;
    match &job {
        Job::RefreshMovie { movie_id: 0 } => Err(malformed("movieId must be positive".into())),
        Job::WarmPopular { pages } if !(1..=MAX_WARM_PAGES).contains(pages) => Err(malformed(
            format!("pages must be between 1 and {MAX_WARM_PAGES}"),
        )),
        _ => Ok(Message::Job(job)),
    }
}

/// Parses and handles one message body, recording `movieapp_jobs_total`.
pub async fn handle_message(state: &AppState, body: &str) -> Result<Outcome, JobError> {
    let message = match parse(body) {
        Ok(message) => message,
        Err(error) => {
            state.metrics.job("unknown", "malformed");
            return Err(error);
        }
    };
    let job = match message {
        Message::Job(job) => job,
        Message::Notification => {
            state.metrics.job("notification", "ignored");
            return Ok(Outcome::Ignored);
        }
    };
    let result = handle(state, &job).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(JobError::Malformed(_)) => "malformed",
        Err(JobError::Failed(_)) => "failed",
    };
    state.metrics.job(job.type_name(), outcome);
    result
}

pub async fn handle(state: &AppState, job: &Job) -> Result<Outcome, JobError> {
    match job {
        Job::RefreshMovie { movie_id } => refresh_movie(state, *movie_id).await,
        Job::WarmPopular { pages } => warm_popular(state, *pages).await,
    }
}

async fn warm_popular(state: &AppState, pages: u32) -> Result<Outcome, JobError> {
    for page in 1..=pages {
        let served = movies::popular(state, page, None)
            .await
            .map_err(|e| anyhow::anyhow!("popular page {page}: {e}"))?;
        if served.source == movies::Source::Stale {
            return Err(anyhow::anyhow!("TMDB did not answer for popular page {page}").into());
        }
    }
    tracing::info!(pages, "popular movies warmed");
    Ok(Outcome::Done)
}

/// The fields a watcher is told about when they change.
pub fn changes(before: &MovieDetails, after: &MovieDetails) -> Vec<Change> {
    let fields: [(&str, Option<String>, Option<String>); 4] = [
        (
            "title",
            Some(before.summary.title.clone()),
            Some(after.summary.title.clone()),
        ),
        (
            "releaseDate",
            before.summary.release_date.clone(),
            after.summary.release_date.clone(),
        ),
        ("status", before.status.clone(), after.status.clone()),
        (
            "runtime",
            before.runtime.map(|r| r.to_string()),
            after.runtime.map(|r| r.to_string()),
        ),
    ];
    fields
        .into_iter()
        .filter(|(_, b, a)| b != a)
        .map(|(field, before, after)| Change {
            field: field.into(),
            before,
            after,
        })
        .collect()
}

fn event_id(user_id: &str, movie_id: u64, before: &str, after: &str) -> String {
    let input = format!("{user_id}\n{movie_id}\n{before}\n{after}");
    let hash = digest::digest(&digest::SHA256, input.as_bytes());
    hash.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

type Item = HashMap<String, AttributeValue>;

async fn watchers(state: &AppState, movie_id: u64) -> anyhow::Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let output = state
            .dynamo
            .query()
            .table_name(&state.settings.watchlists_table)
            .index_name(WATCHLISTS_BY_MOVIE.name)
            .key_condition_expression("#movie = :movie")
            .expression_attribute_names("#movie", WATCHLISTS_BY_MOVIE.partition_key.name)
            .expression_attribute_values(":movie", AttributeValue::N(movie_id.to_string()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .context("finding a movie's watchers")?;
        items.extend(output.items.unwrap_or_default());
        start = output.last_evaluated_key;
        if start.is_none() {
            return Ok(items);
        }
    }
}

async fn refresh_movie(state: &AppState, movie_id: u64) -> Result<Outcome, JobError> {
    let details = match movies::refetch_details(state, movie_id).await {
        Ok(Some(details)) => details,
        Ok(None) => {
            tracing::info!(
                movie_id,
                "TMDB no longer has this movie; nothing to refresh"
            );
            return Ok(Outcome::Done);
        }
        Err(error) => return Err(anyhow::anyhow!("fetching movie {movie_id}: {error}").into()),
    };
    let snapshot = serde_json::to_string(&details).context("serialising movie details")?;
    let user_key = WATCHLISTS.partition_key.name;
    let mut events = Vec::new();
    let mut updates = Vec::new();
    for item in watchers(state, movie_id).await? {
        let (Some(user_id), Some(old)) = (
            item.get(user_key).and_then(|v| v.as_s().ok()),
            item.get(MOVIE).and_then(|v| v.as_s().ok()),
        ) else {
            continue;
        };
        if *old == snapshot {
            continue;
        }
        if let Ok(before) = serde_json::from_str::<MovieDetails>(old) {
            let changes = changes(&before, &details);
            if !changes.is_empty() {
                events.push(Event::WatchlistMovieChanged {
                    event_id: event_id(user_id, movie_id, old, &snapshot),
                    user_id: user_id.clone(),
                    movie_id,
                    title: details.summary.title.clone(),
                    changes,
                });
            }
        }
        updates.push((user_id.clone(), old.clone()));
    }
    // Publish before replacing the snapshots: a crash in between repeats the
    // (same-id) events rather than losing them.
    state.notifier.publish(&events).await?;
    for (user_id, old) in &updates {
        let result = state
            .dynamo
            .update_item()
            .table_name(&state.settings.watchlists_table)
            .key(user_key, AttributeValue::S(user_id.clone()))
            .key(
                WATCHLISTS_BY_MOVIE.partition_key.name,
                AttributeValue::N(movie_id.to_string()),
            )
            .update_expression("SET #snapshot = :new")
            .condition_expression("#snapshot = :old")
            .expression_attribute_names("#snapshot", MOVIE)
            .expression_attribute_values(":new", AttributeValue::S(snapshot.clone()))
            .expression_attribute_values(":old", AttributeValue::S(old.clone()))
            .send()
            .await;
        match result {
            Ok(_) => {}
            // Removed from the watchlist, or updated by a concurrent job.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
            Err(error) => {
                return Err(anyhow::Error::new(error)
                    .context("updating a watchlist snapshot")
                    .into());
            }
        }
    }
    tracing::info!(
        movie_id,
        notified = events.len(),
        updated = updates.len(),
        "movie refreshed"
    );
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_type_names_match_the_shared_model() {
        let refresh = serde_json::to_value(Job::RefreshMovie { movie_id: 1 }).expect("serialises");
        assert_eq!(refresh["type"], job_types::REFRESH_MOVIE);
        assert_eq!(refresh["movieId"], 1);
        let warm = serde_json::to_value(Job::WarmPopular { pages: 2 }).expect("serialises");
        assert_eq!(warm["type"], job_types::WARM_POPULAR);
    }

    #[test]
    fn raw_and_sns_wrapped_jobs_parse() {
        let raw = r#"{"type":"refresh-movie","movieId":550}"#;
        assert_eq!(
            parse(raw).ok(),
            Some(Message::Job(Job::RefreshMovie { movie_id: 550 }))
        );
        let wrapped = serde_json::json!({"Type": "Notification", "Message": raw}).to_string();
        assert_eq!(
            parse(&wrapped).ok(),
            Some(Message::Job(Job::RefreshMovie { movie_id: 550 }))
        );
        assert_eq!(
            parse(r#"{"type":"warm-popular"}"#).ok(),
            Some(Message::Job(Job::WarmPopular { pages: 3 }))
        );
    }

    #[test]
    fn our_own_and_foreign_notifications_are_ignored() {
        let ours = serde_json::json!({"Type": "Notification", "Message": r#"{"type":"watchlist.movie-changed"}"#});
        assert_eq!(parse(&ours.to_string()).ok(), Some(Message::Notification));
        let foreign = serde_json::json!({"Type": "Notification", "Message": "hello ops"});
        assert_eq!(
            parse(&foreign.to_string()).ok(),
            Some(Message::Notification)
        );
    }

    #[test]
    fn poison_messages_are_malformed() {
        for body in [
            "not json",
            "{}",
            r#"{"type":"launch-rockets"}"#,
            r#"{"type":"refresh-movie"}"#,
            r#"{"type":"refresh-movie","movieId":0}"#,
            r#"{"type":"refresh-movie","movieId":"x"}"#,
            r#"{"type":"warm-popular","pages":5000}"#,
        ] {
            assert!(matches!(parse(body), Err(JobError::Malformed(_))), "{body}");
        }
    }

    #[test]
    fn changes_cover_what_watchers_care_about() {
        let movie: crate::tmdb::TmdbMovie = serde_json::from_str(
            r#"{"id":1,"title":"A","release_date":"2025-01-01","overview":"x"}"#,
        )
        .expect("parses");
        let before = MovieDetails::from_tmdb(&movie, "");
        let mut after = before.clone();
        after.summary.overview = "a new overview".into();
        assert!(
            changes(&before, &after).is_empty(),
            "overview edits are not news"
        );
        after.summary.release_date = Some("2025-06-01".into());
        let found = changes(&before, &after);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].field, "releaseDate");
        assert_eq!(found[0].before.as_deref(), Some("2025-01-01"));
        assert_eq!(event_id("u", 1, "a", "b"), event_id("u", 1, "a", "b"));
        assert_ne!(event_id("u", 1, "a", "b"), event_id("v", 1, "a", "b"));
    }
}
