//! Jobs against moto and the TMDB stub: refresh-movie updates the cache and
//! notifies watchers through SNS (observed on a subscribed queue), the SQS
//! worker deletes what it handled, and poison messages reach the DLQ.

mod common;

use std::time::Duration;

use api_worker::jobs::{self, Outcome};
use aws_sdk_dynamodb::types::AttributeValue;
use axum::http::{Method, StatusCode};
use common::{
    Fixture, MAX_RECEIVE_COUNT, RunningWorker, age_snapshot, call, drain, run_worker_until, sign_up,
};
use serde_json::Value;

fn notification(body: &str) -> Value {
    let envelope: Value = serde_json::from_str(body).expect("SNS envelope");
    serde_json::from_str(envelope["Message"].as_str().expect("Message")).expect("event JSON")
}

#[tokio::test]
async fn refresh_movie_updates_the_cache_and_notifies_watchers_once() {
    let fx = Fixture::new("job-refresh").await;
    let observer = fx.observe_topic().await;
    let (state, app) = fx.app(&[]);
    let (alice, token) = sign_up(&app, "watcher@example.com").await;
    let (bob, other) = sign_up(&app, "calm@example.com").await;
    for t in [&token, &other] {
        assert_eq!(
            call(&app, Method::PUT, "/api/v1/me/watchlist/550", Some(t), None)
                .await
                .status,
            StatusCode::CREATED
        );
    }
    age_snapshot(&fx, &alice, 550, "1999-01-01").await;
    let before = api_worker::clock::now_epoch();

    let outcome = jobs::handle_message(&state, r#"{"type":"refresh-movie","movieId":550}"#)
        .await
        .expect("job succeeds");
    assert_eq!(outcome, Outcome::Done);

    let messages = drain(&fx.sqs, &observer, Duration::from_secs(10)).await;
    assert_eq!(
        messages.len(),
        1,
        "only the watcher whose snapshot changed is told: {messages:?}"
    );
    let event = notification(&messages[0]);
    assert_eq!(event["type"], "watchlist.movie-changed");
    assert_eq!(event["userId"], alice.as_str());
    assert_ne!(event["userId"], bob.as_str());
    assert_eq!(event["movieId"], 550);
    assert_eq!(event["changes"][0]["field"], "releaseDate");
    assert_eq!(event["changes"][0]["before"], "1999-01-01");
    assert_eq!(event["changes"][0]["after"], "1999-10-15");
    assert!(event["eventId"].as_str().is_some_and(|id| id.len() == 32));

    // The cache holds what TMDB just said.
    let cached = fx
        .dynamo
        .get_item()
        .table_name(&fx.movies_table)
        .key("key", AttributeValue::S("movie#550".into()))
        .send()
        .await
        .expect("get")
        .item
        .expect("cached");
    let fetched: u64 = cached["fetchedAt"]
        .as_n()
        .expect("n")
        .parse()
        .expect("number");
    assert!(fetched >= before);

    // Handling the same job again announces nothing new.
    jobs::handle_message(&state, r#"{"type":"refresh-movie","movieId":550}"#)
        .await
        .expect("job succeeds");
    let repeat = drain(&fx.sqs, &observer, Duration::from_secs(3)).await;
    assert!(
        repeat.is_empty(),
        "a redelivered job must not notify twice: {repeat:?}"
    );
    let _ = fx.sqs.delete_queue().queue_url(&observer).send().await;
}

#[tokio::test]
async fn the_worker_handles_queued_jobs_and_ignores_its_own_notifications() {
    let fx = Fixture::new("job-worker").await;
    let (state, _) = fx.app(&[]);
    // Notifications come back through the topic's subscription to the jobs queue.
    fx.sns
        .subscribe()
        .topic_arn(&fx.topic_arn)
        .protocol("sqs")
        .endpoint(common::queue_arn(&fx.sqs, &fx.queue_url).await)
        .send()
        .await
        .expect("subscribe the jobs queue");
    for body in [
        r#"{"type":"warm-popular","pages":2}"#,
        r#"{"type":"refresh-movie","movieId":603}"#,
    ] {
        fx.sqs
            .send_message()
            .queue_url(&fx.queue_url)
            .message_body(body)
            .send()
            .await
            .expect("send");
    }
    let event = r#"{"type":"watchlist.movie-changed","eventId":"e","userId":"u","movieId":1,"title":"t","changes":[]}"#;
    fx.sns
        .publish()
        .topic_arn(&fx.topic_arn)
        .message(event)
        .send()
        .await
        .expect("publish");

    run_worker_until(
        &state,
        &[
            r#"movieapp_jobs_total{type="warm-popular",outcome="ok"} 1"#,
            r#"movieapp_jobs_total{type="refresh-movie",outcome="ok"} 1"#,
            r#"movieapp_jobs_total{type="notification",outcome="ignored"} 1"#,
        ],
    )
    .await;

    for key in ["popular#1", "popular#2", "movie#603"] {
        let item = fx
            .dynamo
            .get_item()
            .table_name(&fx.movies_table)
            .key("key", AttributeValue::S(key.into()))
            .send()
            .await
            .expect("get")
            .item;
        assert!(item.is_some(), "{key} was cached by the jobs");
    }
    // Everything handled was deleted (visibility is 2 s: it would be back by now).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let left = drain(&fx.sqs, &fx.queue_url, Duration::from_secs(2)).await;
    assert!(left.is_empty(), "handled messages were deleted: {left:?}");
}

#[tokio::test]
async fn poison_messages_end_in_the_dead_letter_queue() {
    let fx = Fixture::new("job-poison").await;
    let (state, _) = fx.app(&[]);
    fx.sqs
        .send_message()
        .queue_url(&fx.queue_url)
        .message_body("this is not a job")
        .send()
        .await
        .expect("send");
    let worker = RunningWorker::start(&state);
    let dead = drain(&fx.sqs, &fx.dlq_url, Duration::from_secs(30)).await;
    worker.stop().await;
    assert_eq!(dead, vec!["this is not a job".to_owned()]);
    let metrics = state.metrics.encode().expect("metrics");
    let line =
        format!(r#"movieapp_jobs_total{{type="unknown",outcome="malformed"}} {MAX_RECEIVE_COUNT}"#);
    assert!(
        metrics.contains(&line),
        "received {MAX_RECEIVE_COUNT} times before the DLQ:\n{metrics}"
    );
}
