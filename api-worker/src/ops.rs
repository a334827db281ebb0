//! Operational endpoints. The public port answers `/healthz`, a `/readyz`
//! that says only ready or not, and `/openapi.json`; the admin listener
//! (`--admin-addr`) answers `/metrics` and a `/readyz` that names what is
//! unreachable. Both readiness answers share one memo, so probes on either
//! cost AWS at most one check per memo period.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use movieapp_model::http;

use crate::error::{AppError, Result, problem};
use crate::state::AppState;

/// The API description, written by hand and checked by schemathesis.
pub const OPENAPI: &str = include_str!("openapi.json");

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the public port serves besides the API and the web page.
pub fn public_router() -> Router<AppState> {
    Router::new()
        .route(http::HEALTHZ, get(healthz))
        .route(http::READYZ, get(public_readyz))
        .route("/openapi.json", get(openapi))
}

/// The admin listener's routes.
pub fn admin_router() -> Router<AppState> {
    Router::new()
        .route(http::HEALTHZ, get(healthz))
        .route(http::READYZ, get(admin_readyz))
        .route(http::METRICS, get(metrics))
}

async fn healthz() -> Response {
    json_static(r#"{"status":"ok"}"#)
}

fn json_static(body: &'static str) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

async fn readiness(state: &AppState) -> Result<(), String> {
    state
        .readiness
        .get_or_check(check_dependencies(state))
        .await
}

/// Ready or not, and nothing about why: strangers reach this port.
async fn public_readyz(State(state): State<AppState>) -> Response {
    match readiness(&state).await {
        Ok(()) => json_static(r#"{"status":"ready"}"#),
        Err(_) => problem(StatusCode::SERVICE_UNAVAILABLE, "not ready"),
    }
}

async fn admin_readyz(State(state): State<AppState>) -> Result<Response> {
    match readiness(&state).await {
        Ok(()) => Ok(json_static(r#"{"status":"ready"}"#)),
        Err(detail) => Err(AppError::Unavailable {
            detail: format!("not ready: {detail}"),
            retry_after: None,
        }),
    }
}
/// Every AWS resource this process uses answers (TMDB is left out on
/// purpose: while it is down the cache still serves).
pub async fn check_dependencies(state: &AppState) -> Result<(), String> {
    let settings = &state.settings;
    let table = |name: &str| {
        let request = state.dynamo.describe_table().table_name(name);
        let label = format!("table {name}");
        async move {
            request
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("{label}: {}", aws_error(&e)))
        }
    };
    let queue = async {
        match &settings.jobs_queue_url {
            Some(url) => state
                .sqs
                .get_queue_attributes()
                .queue_url(url.as_str())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("jobs queue: {}", aws_error(&e))),
            None => Ok(()),
        }
    };
    let topic = async {
        match state.notifier.topic_arn() {
            Some(arn) => state
                .notifier
                .sns()
                .get_topic_attributes()
                .topic_arn(arn)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("notifications topic: {}", aws_error(&e))),
            None => Ok(()),
        }
    };
    let checks = async {
        let (users, movies, watchlists, queue, topic) = tokio::join!(
            table(&settings.users_table),
            table(&settings.movies_table),
            table(&settings.watchlists_table),
            queue,
            topic
        );
        let failures: Vec<String> = [users, movies, watchlists, queue, topic]
            .into_iter()
            .filter_map(|r| r.err())
            .collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    };
    tokio::time::timeout(CHECK_TIMEOUT, checks)
        .await
        .unwrap_or_else(|_| Err(format!("AWS did not answer within {CHECK_TIMEOUT:?}")))
}

/// A short description of an SDK error without request details.
fn aws_error<E: std::error::Error>(error: &E) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text.chars().take(300).collect()
}

async fn metrics(State(state): State<AppState>) -> Result<Response> {
    let text = state.metrics.encode().map_err(AppError::internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}

async fn openapi() -> Response {
    json_static(OPENAPI)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_is_json_and_lists_every_public_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
        for path in [
            "/api/v1/movies/popular",
            "/api/v1/movies/search",
            "/api/v1/movies/{id}",
            "/api/v1/auth/signup",
            "/api/v1/auth/login",
            "/api/v1/me",
            "/api/v1/me/watchlist",
            "/api/v1/me/watchlist/{movieId}",
            "/healthz",
            "/readyz",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
        }
        assert!(
            doc["paths"].get("/metrics").is_none(),
            "/metrics is on the admin listener only"
        );
    }
}
