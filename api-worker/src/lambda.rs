//! AWS Lambda entry points (feature `lambda`): thin adapters over the same
//! [`app`](crate::app) router and [`jobs::handle_message`] that `serve` and
//! `worker` run. One `bootstrap` binary serves two functions, chosen by the
//! function's `handler` setting (Lambda passes it as `_HANDLER`):
//!
//! - `http`: API Gateway HTTP API events (payload format 2.0) through the
//!   router, via `lambda_http`;
//! - `jobs`: SQS event batches from an event source mapping with
//!   `ReportBatchItemFailures`: only the messages whose job failed are
//!   reported, so one poison message does not send its batch back.
//!
//! Settings come from the same environment variables as the Deployment's
//! (clap reads them; there is no command line on Lambda). Extra flags, e.g.
//! `--argon2-memory-kib=12288`, can be given in `API_WORKER_LAMBDA_ARGS`.
//!
//! Cold start: building [`AppState`] makes no network call (clients connect
//! on first use), so init is parsing the environment and building clients.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use anyhow::bail;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderValue;
use axum::middleware::map_request;
use clap::Parser;
use futures::future::join_all;
use lambda_http::request::RequestContext;
use lambda_http::{RequestExt, service_fn};
use lambda_runtime::LambdaEvent;
use tracing::Instrument;

use crate::config::{AuthSettings, HttpSettings, Settings, WorkerSettings};
use crate::http::REQUEST_ID;
use crate::jobs::{self, JobError};
use crate::state::{AppState, aws_config};
use crate::{Accounts, app, serving, worker};

/// Lambda's variable holding the function's `handler` setting.
pub const HANDLER_ENV: &str = "_HANDLER";
/// Extra command-line flags for settings that have no variable of their own.
pub const EXTRA_ARGS_ENV: &str = "API_WORKER_LAMBDA_ARGS";

/// Which function this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// The HTTP API behind API Gateway.
    Http,
    /// The jobs consumer behind an SQS event source mapping.
    Jobs,
}

impl FromStr for Function {
    type Err = String;

    fn from_str(handler: &str) -> Result<Self, String> {
        match handler.trim() {
            "http" => Ok(Self::Http),
            "jobs" => Ok(Self::Jobs),
            other => Err(format!(
                "unknown handler {other:?} ({HANDLER_ENV}): set the function's handler to \"http\" \
                 (API Gateway HTTP API) or \"jobs\" (SQS event source mapping)"
            )),
        }
    }
}

/// The HTTP function's settings: those of `serve`, from the environment.
#[derive(Debug, Parser)]
#[command(
    name = "api-worker-lambda",
    about = "The api-worker's HTTP API on AWS Lambda"
)]
pub struct HttpFunctionArgs {
    #[command(flatten)]
    pub settings: Settings,
    #[command(flatten)]
    pub auth: AuthSettings,
    #[command(flatten)]
    pub http: HttpSettings,
}

/// The jobs function's settings: those of `worker`, from the environment.
#[derive(Debug, Parser)]
#[command(
    name = "api-worker-lambda",
    about = "The api-worker's jobs on AWS Lambda"
)]
pub struct JobsFunctionArgs {
    #[command(flatten)]
    pub settings: Settings,
    #[command(flatten)]
    pub worker: WorkerSettings,
}

/// The argument list clap parses: the program name and `extra`, split on
/// whitespace (flag values here never contain spaces).
pub fn arguments(extra: Option<&str>) -> Vec<String> {
    std::iter::once("api-worker-lambda".to_owned())
        .chain(
            extra
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned),
        )
        .collect()
}

/// The function the process was started as, from `_HANDLER`.
pub fn function_from_env() -> anyhow::Result<Function> {
    let handler = std::env::var(HANDLER_ENV).unwrap_or_default();
    Function::from_str(&handler).map_err(anyhow::Error::msg)
}

/// Starts the function chosen by `_HANDLER` and serves events until Lambda
/// ends the process. Errors before the first event are init errors.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let function = function_from_env()?;
    let extra = std::env::var(EXTRA_ARGS_ENV).ok();
    let args = arguments(extra.as_deref());
    match function {
        Function::Http => {
            let args = HttpFunctionArgs::try_parse_from(args)?;
            let aws = aws_config(&args.settings).await;
            let (state, accounts) = serving(args.settings, args.auth, args.http, &aws)?;
            tracing::info!(function = "http", "api-worker Lambda function initialised");
            lambda_runtime::run(http_function(state, accounts)).await
        }
        Function::Jobs => {
            let args = JobsFunctionArgs::try_parse_from(args)?;
            check_jobs_settings(&args.settings)?;
            let aws = aws_config(&args.settings).await;
            let state = AppState::new(args.settings, HttpSettings::default(), &aws)?;
            let settings = args.worker;
            tracing::info!(function = "jobs", "api-worker Lambda function initialised");
            lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
                let state = state.clone();
                let settings = settings.clone();
                async move {
                    Ok::<_, Infallible>(handle_jobs_event(&state, &settings, event.payload).await)
                }
            }))
            .await
        }
    }
}

/// The jobs function needs what `worker` needs.
pub fn check_jobs_settings(settings: &Settings) -> anyhow::Result<()> {
    if settings.notifications_topic_arn.is_none() {
        bail!(
            "the jobs function needs the notifications topic: set {}",
            movieapp_model::env::NOTIFICATIONS_TOPIC_ARN
        );
    }
    if settings.jobs_queue_url.is_none() {
        bail!(
            "the jobs function needs the jobs queue (to schedule retries): set {}",
            movieapp_model::env::JOBS_QUEUE_URL
        );
    }
    Ok(())
}

// --- HTTP -----------------------------------------------------------------

/// The HTTP function: what `lambda_http::run` would run for the router,
/// exposed so tests drive exactly this service with API Gateway events.
pub type HttpFunction = lambda_http::Adapter<'static, axum::response::Response, Router>;

/// The router of `serve`, plus what a socket would have told it: the
/// client's address (API Gateway's `sourceIp`, for the per-address login
/// limit), that it came over HTTPS (HSTS) and, when the caller sent none, the Lambda request id as
/// `x-request-id`, so our logs join Lambda's own lines for the invocation.
pub fn http_function(state: AppState, accounts: Accounts) -> HttpFunction {
    lambda_http::Adapter::from(app(state, Some(accounts)).layer(map_request(from_api_gateway)))
}

async fn from_api_gateway(mut request: Request) -> Request {
    let source_ip = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context
            .http
            .source_ip
            .as_deref()
            .and_then(|ip| ip.parse::<IpAddr>().ok()),
        _ => None,
    };
    if let Some(ip) = source_ip {
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(ip, 0)));
    }
    // An HTTP API serves HTTPS only, so every answer may carry HSTS.
    if matches!(
        request.request_context_ref(),
        Some(RequestContext::ApiGatewayV2(_))
    ) {
        request.extensions_mut().insert(crate::client::HttpsEdge);
    }
    let lambda_request_id = request
        .lambda_context_ref()
        .map(|context| context.request_id.clone())
        .filter(|id| !id.is_empty());
    if !request.headers().contains_key(&REQUEST_ID)
        && let Some(id) = lambda_request_id.and_then(|id| HeaderValue::from_str(&id).ok())
    {
        request.headers_mut().insert(REQUEST_ID.clone(), id);
    }
    request
}

// --- SQS ------------------------------------------------------------------

/// Handles a batch like the poller handles one receive: every message
/// concurrently through [`jobs::handle_message`]. Messages that succeeded
/// (or were notifications) are left for the event source mapping to delete;
/// each failed one is reported in `batchItemFailures` and its visibility set
/// as the poller would (a poison message at once, towards the dead-letter
/// queue; a failed job after the retry delay).
pub async fn handle_jobs_event(
    state: &AppState,
    settings: &WorkerSettings,
    event: SqsEvent,
) -> SqsBatchResponse {
    let failed = join_all(event.records.iter().map(|record| {
        let span = tracing::info_span!(
            "job",
            message_id = record.message_id.as_deref().unwrap_or_default()
        );
        handle_record(state, settings, record).instrument(span)
    }))
    .await;
    let mut response = SqsBatchResponse::default();
    for id in failed.into_iter().flatten() {
        response.add_failure(id);
    }
    response
}

/// Handles one record; returns its message id when it failed. (A record
/// without an id is reported as `""`, which fails the whole batch: the safe
/// side, and never seen from SQS.)
async fn handle_record(
    state: &AppState,
    settings: &WorkerSettings,
    record: &SqsMessage,
) -> Option<String> {
    let id = record.message_id.clone().unwrap_or_default();
    let body = record.body.as_deref().unwrap_or_default();
    let receives: u32 = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let error = match jobs::handle_message(state, body).await {
        Ok(outcome) => {
            tracing::debug!(?outcome, receives, "job handled");
            return None;
        }
        Err(error) => error,
    };
    match (
        queue_url_for(state, record.event_source_arn.as_deref()),
        record.receipt_handle.as_deref(),
    ) {
        (Some(queue_url), Some(receipt)) => {
            worker::schedule_retry(state, settings, &queue_url, receipt, receives, &error).await;
        }
        _ => {
            // Not our jobs queue: the queue's visibility timeout decides.
            log_failure(&error, receives);
        }
    }
    Some(id)
}

fn log_failure(error: &JobError, receives: u32) {
    match error {
        JobError::Malformed(reason) => {
            tracing::error!(%reason, receives, "poison message; it goes to the dead-letter queue after maxReceiveCount receives");
        }
        JobError::Failed(error) => {
            tracing::warn!(
                error = format!("{error:#}"),
                receives,
                "job failed; it will be retried"
            );
        }
    }
}

/// The configured jobs queue's URL when the record came from that queue
/// (`arn:aws:sqs:<region>:<account>:<name>` ends in the URL's last segment).
fn queue_url_for(state: &AppState, event_source_arn: Option<&str>) -> Option<String> {
    let url = state.settings.jobs_queue_url.as_ref()?;
    let queue_name = event_source_arn?.rsplit(':').next()?;
    let configured = url.path_segments()?.next_back()?;
    (configured == queue_name).then(|| url.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers_name_the_function() {
        assert_eq!("http".parse(), Ok(Function::Http));
        assert_eq!(" jobs ".parse(), Ok(Function::Jobs));
        let error = "bootstrap".parse::<Function>().expect_err("unknown");
        assert!(
            error.contains("\"http\"") && error.contains("\"jobs\""),
            "{error}"
        );
    }

    #[test]
    fn extra_arguments_are_split_on_whitespace() {
        assert_eq!(arguments(None), vec!["api-worker-lambda"]);
        assert_eq!(
            arguments(Some(" --argon2-memory-kib=12288  --token-ttl=5m\n")),
            vec![
                "api-worker-lambda",
                "--argon2-memory-kib=12288",
                "--token-ttl=5m"
            ]
        );
    }

    #[test]
    fn the_documented_sqs_event_parses() {
        let event: SqsEvent =
            serde_json::from_str(include_str!("../tests/fixtures/lambda/sqs-event.json"))
                .expect("event");
        assert_eq!(event.records.len(), 2);
        let first = &event.records[0];
        assert_eq!(
            first.message_id.as_deref(),
            Some("059f36b4-87a3-44ab-83d2-661975830a7d")
        );
        assert_eq!(
            first
                .attributes
                .get("ApproximateReceiveCount")
                .map(String::as_str),
            Some("1")
        );
        assert!(
            first
                .event_source_arn
                .as_deref()
                .is_some_and(|arn| arn.ends_with(":my-queue"))
        );
    }

    #[test]
    fn batch_responses_serialise_as_lambda_expects() {
        let mut response = SqsBatchResponse::default();
        response.add_failure("id-2");
        assert_eq!(
            serde_json::to_value(&response).expect("json"),
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "id-2"}]})
        );
    }
}
