//! Each api-worker component, run against moto, calls only the AWS
//! operations `movieapp_model::iam` declares for it: the IAM policies are
//! built from those declarations, so an undeclared call here is a call the
//! shipped role would refuse on AWS. The request counter
//! (`movieapp_aws_requests_total`) sees every operation the SDK sends.

mod common;

use api_worker::AppState;
use api_worker::jobs::{self, Job, Outcome};
use axum::http::{Method, StatusCode};
use common::{Fixture, age_snapshot, call, get, run_worker_until, sign_up};
use movieapp_model::iam::{Component, undeclared};
use serde_json::json;

/// Fails naming the calls `component` made but does not declare, and
/// unless every operation of `expected` was made (so the run covered them).
fn assert_declared(component: Component, state: &AppState, expected: &[&str]) {
    let text = state.metrics.encode().expect("metrics");
    let missing = undeclared(component, &text);
    assert!(
        missing.is_empty(),
        "{} called {missing:?}, which movieapp_model::iam does not declare for it",
        component.name()
    );
    for operation in expected {
        let (service, operation) = operation.split_once(':').expect("service:Operation");
        let line = format!(
            "movieapp_aws_requests_total{{service=\"{service}\",operation=\"{operation}\",outcome=\"success\"}}"
        );
        assert!(
            text.contains(&line),
            "{}: the run made no successful {service}:{operation}:\n{text}",
            component.name()
        );
    }
}

#[tokio::test]
async fn serve_calls_only_what_it_declares() {
    let fx = Fixture::new("iam-serve").await;
    let (state, app) = fx.app(&[]);
    let (_, token) = sign_up(&app, "reader@example.com").await;
    let wrong = json!({"email": "reader@example.com", "password": "not the password"});
    let refused = call(&app, Method::POST, "/api/v1/auth/login", None, Some(wrong)).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.text);
    for uri in [
        "/api/v1/movies/550",
        "/api/v1/movies/popular",
        "/api/v1/movies/search?query=fight",
    ] {
        let answer = get(&app, uri).await;
        assert_eq!(answer.status, StatusCode::OK, "{uri}: {}", answer.text);
    }
    let watchlist = "/api/v1/me/watchlist/550";
    let added = call(&app, Method::PUT, watchlist, Some(&token), None).await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let listed = call(
        &app,
        Method::GET,
        "/api/v1/me/watchlist",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let removed = call(&app, Method::DELETE, watchlist, Some(&token), None).await;
    assert!(removed.status.is_success(), "{}", removed.text);
    let ready = get(&api_worker::admin_app(state.clone()), "/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);

    assert_declared(
        Component::Serve,
        &state,
        &[
            "dynamodb:DescribeTable",
            "sqs:GetQueueAttributes",
            "sns:GetTopicAttributes",
            "dynamodb:TransactWriteItems",
            "dynamodb:Query",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        ],
    );
}

#[tokio::test]
async fn worker_and_sync_popular_call_only_what_they_declare() {
    let fx = Fixture::new("iam-worker").await;
    let (_, app) = fx.app(&[]);
    let (user, token) = sign_up(&app, "watcher@example.com").await;
    let added = call(
        &app,
        Method::PUT,
        "/api/v1/me/watchlist/550",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    // A changed movie on a watchlist: the job notifies its watcher.
    age_snapshot(&fx, &user, 550, "1999-01-01").await;
    fx.sqs
        .send_message()
        .queue_url(&fx.queue_url)
        .message_body(r#"{"type":"refresh-movie","movieId":550}"#)
        .send()
        .await
        .expect("send the job");

    let state = fx.state(&[]);
    run_worker_until(
        &state,
        &[r#"movieapp_jobs_total{type="refresh-movie",outcome="ok"} 1"#],
    )
    .await;
    assert_declared(
        Component::Worker,
        &state,
        &[
            "sqs:ReceiveMessage",
            "sqs:DeleteMessageBatch",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
            "dynamodb:PutItem",
            "sns:PublishBatch",
        ],
    );

    // `sync-popular` handles one warm-popular job in a process of its own.
    let state = fx.state(&[]);
    let outcome = jobs::handle(&state, &Job::WarmPopular { pages: 2 })
        .await
        .expect("warm-popular succeeds");
    assert_eq!(outcome, Outcome::Done);
    assert_declared(
        Component::SyncPopular,
        &state,
        &["dynamodb:GetItem", "dynamodb:PutItem"],
    );
}
