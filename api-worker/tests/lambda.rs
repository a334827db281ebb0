//! The Lambda functions against moto and the TMDB stub (feature `lambda`):
//!
//! - API Gateway HTTP API (payload 2.0) events from `fixtures/lambda/`, in
//!   one table of cases, each run through the Lambda HTTP function and, as
//!   the same HTTP request, through the router `serve` runs: same status,
//!   headers and body;
//! - an SQS batch with two good jobs and a poison message: the jobs are done
//!   and exactly the poison message is reported in `batchItemFailures`;
//! - the `api-worker-lambda` binary itself against a stand-in for Lambda's
//!   Runtime API, as Lambda runs `bootstrap`.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api_worker::config::{Cli, Command, WorkerSettings};
use api_worker::lambda::{HttpFunction, http_function};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::Parser;
use common::Fixture;
use lambda_http::request::LambdaRequest;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;
use tokio::sync::{Mutex, mpsc};
use tower::ServiceExt;

/// One request (an API Gateway event under `fixtures/lambda/`) and the
/// status both paths must answer. Cases run in order on each path, so
/// later ones see what earlier ones did (sign-up before login, ...).
struct Case {
    fixture: &'static str,
    status: u16,
}

const fn case(fixture: &'static str, status: u16) -> Case {
    Case { fixture, status }
}

const CASES: &[Case] = &[
    case("get-healthz", 200),
    case("get-readyz", 200),
    case("get-web-page", 200),
    case("head-web-page", 200),
    case("get-stylesheet", 200),
    case("get-openapi", 200),
    case("get-popular-page-2", 200),
    case("get-search-percent-encoded", 200),
    case("get-search-plus-encoded", 200),
    case("get-search-without-query", 400),
    case("get-movie-details", 200),
    case("get-movie-unknown", 404),
    case("get-movie-bad-id", 400),
    case("post-signup-base64", 202),
    case("post-signup-again", 202),
    case("post-login-base64", 200),
    case("post-login-wrong-password", 401),
    case("post-signup-malformed-json", 400),
    case("post-signup-text-plain", 415),
    case("post-signup-too-large-base64", 413),
    case("get-profile-with-cookies", 200),
    case("get-profile-without-token", 401),
    case("patch-profile", 200),
    case("put-watchlist-movie", 201),
    case("get-watchlist", 200),
    case("delete-watchlist-movie", 204),
    case("get-unknown-route", 404),
    case("delete-popular-not-allowed", 405),
];

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/lambda/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An answer from either path, in comparable form.
#[derive(Debug, PartialEq)]
struct Reply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// Headers that differ between any two requests.
const PER_REQUEST_HEADERS: [&str; 1] = ["x-request-id"];

fn comparable_headers(
    headers: impl IntoIterator<Item = (String, String)>,
) -> BTreeMap<String, String> {
    headers
        .into_iter()
        .filter(|(name, _)| !PER_REQUEST_HEADERS.contains(&name.as_str()))
        .collect()
}

/// Through the Lambda HTTP function, as the runtime calls it: the event
/// deserialised from JSON, the response serialised back to JSON, then read
/// as API Gateway reads it (`statusCode`, `headers`, `cookies`, `body`,
/// `isBase64Encoded`).
async fn through_lambda(function: &HttpFunction, event: &str) -> Reply {
    let request: LambdaRequest = serde_json::from_str(event).expect("an API Gateway event");
    let mut context = Context::default();
    context.request_id = "8f5e3c1a-3b7e-4a52-9d7e-0c1f2a3b4c5d".into();
    let response = function
        .clone()
        .oneshot(LambdaEvent::new(request, context))
        .await
        .expect("infallible");
    let response = serde_json::to_value(&response).expect("response JSON");
    let status = u16::try_from(response["statusCode"].as_u64().expect("statusCode")).expect("u16");
    let mut headers: Vec<(String, String)> = response["headers"]
        .as_object()
        .map(|h| {
            h.iter()
                .map(|(k, v)| {
                    (
                        k.to_ascii_lowercase(),
                        v.as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(cookies) = response["cookies"].as_array().filter(|c| !c.is_empty()) {
        let cookies: Vec<&str> = cookies.iter().filter_map(Value::as_str).collect();
        headers.push(("set-cookie".into(), cookies.join(", ")));
    }
    let body = match (
        response["body"].as_str(),
        response["isBase64Encoded"].as_bool(),
    ) {
        (Some(body), Some(true)) => BASE64.decode(body).expect("base64 body"),
        (Some(body), _) => body.as_bytes().to_vec(),
        (None, _) => Vec::new(),
    };
    Reply {
        status,
        headers: comparable_headers(headers),
        body,
    }
}

/// Through the router `serve` runs, with the HTTP request the event
/// describes, read from the event independently of `lambda_http`.
async fn through_server(app: &Router, event: &str) -> Reply {
    let event: Value = serde_json::from_str(event).expect("event JSON");
    let method = event["requestContext"]["http"]["method"]
        .as_str()
        .expect("method");
    let mut uri = event["rawPath"].as_str().expect("rawPath").to_owned();
    if let Some(query) = event["rawQueryString"].as_str().filter(|q| !q.is_empty()) {
        uri = format!("{uri}?{query}");
    }
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in event["headers"].as_object().into_iter().flatten() {
        request = request.header(name.as_str(), value.as_str().expect("header value"));
    }
    if let Some(cookies) = event["cookies"].as_array() {
        let cookies: Vec<&str> = cookies.iter().filter_map(Value::as_str).collect();
        request = request.header("cookie", cookies.join("; "));
    }
    let body = match (event["body"].as_str(), event["isBase64Encoded"].as_bool()) {
        (Some(body), Some(true)) => BASE64.decode(body).expect("base64 body"),
        (Some(body), _) => body.as_bytes().to_vec(),
        (None, _) => Vec::new(),
    };
    let mut request = request.body(Body::from(body)).expect("request");
    // What the socket would tell `serve`: the client's address.
    let peer: IpAddr = event["requestContext"]["http"]["sourceIp"]
        .as_str()
        .and_then(|ip| ip.parse().ok())
        .expect("sourceIp");
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(peer, 50_000)));
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect::<Vec<_>>();
    let body = axum::body::to_bytes(response.into_body(), 4 << 20)
        .await
        .expect("body")
        .to_vec();
    Reply {
        status,
        headers: comparable_headers(headers),
        body,
    }
}

/// Values that differ between two accounts created the same way (ids,
/// tokens, timestamps), replaced so the rest can be compared.
fn without_volatile_values(body: &[u8]) -> Value {
    fn mask(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    let volatile = matches!(
                        key.as_str(),
                        "token" | "createdAt" | "updatedAt" | "addedAt"
                    ) || (key == "id" && value.is_string());
                    if volatile {
                        *value = Value::String("<volatile>".into());
                    } else {
                        mask(value);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(mask),
            _ => {}
        }
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(mut json) => {
            mask(&mut json);
            json
        }
        Err(_) => Value::String(String::from_utf8_lossy(body).into_owned()),
    }
}

fn with_token(event: &str, token: Option<&str>) -> String {
    event.replace("{{token}}", token.unwrap_or("no-token-yet"))
}

fn token_of(reply: &Reply) -> Option<String> {
    serde_json::from_slice::<Value>(&reply.body)
        .ok()?
        .get("token")?
        .as_str()
        .map(str::to_owned)
}

fn http_function_with(fx: &Fixture, extra: &[&str]) -> HttpFunction {
    let (state, accounts) = fx.serving(extra);
    http_function(state, accounts)
}

#[tokio::test]
async fn api_gateway_events_get_the_answers_serve_gives() {
    // Each path gets its own tables, so both see the same history.
    let lambda_fx = Fixture::new("lambda-http").await;
    let server_fx = Fixture::new("lambda-serve").await;
    let function = http_function_with(&lambda_fx, &[]);
    let (_, app) = server_fx.app(&[]);
    let (mut lambda_token, mut server_token) = (None, None);
    for case in CASES {
        let event = fixture(case.fixture);
        let via_lambda =
            through_lambda(&function, &with_token(&event, lambda_token.as_deref())).await;
        let via_server = through_server(&app, &with_token(&event, server_token.as_deref())).await;
        let name = case.fixture;
        assert_eq!(
            via_lambda.status,
            case.status,
            "{name} through Lambda: {}",
            String::from_utf8_lossy(&via_lambda.body)
        );
        assert_eq!(
            via_server.status,
            case.status,
            "{name} through serve: {}",
            String::from_utf8_lossy(&via_server.body)
        );
        // An HTTP API serves HTTPS only: every answer through it carries
        // HSTS; `serve` without a trusted proxy saying so sends none.
        let mut lambda_headers = via_lambda.headers.clone();
        assert_eq!(
            lambda_headers
                .remove("strict-transport-security")
                .as_deref(),
            Some("max-age=31536000"),
            "{name}: HSTS through Lambda"
        );
        assert!(
            !via_server.headers.contains_key("strict-transport-security"),
            "{name}: no HSTS from serve over plain HTTP"
        );
        assert_eq!(lambda_headers, via_server.headers, "{name}: headers");
        assert_eq!(
            without_volatile_values(&via_lambda.body),
            without_volatile_values(&via_server.body),
            "{name}: body"
        );
        if let (Some(l), Some(s)) = (token_of(&via_lambda), token_of(&via_server)) {
            (lambda_token, server_token) = (Some(l), Some(s));
        }
    }
}

#[tokio::test]
async fn the_http_function_gives_the_api_gateway_source_ip_and_request_id_to_the_app() {
    let fx = Fixture::new("lambda-addr").await;
    // One failed login per address allowed: the second from the same
    // sourceIp is refused, one from another sourceIp is not.
    let function = http_function_with(
        &fx,
        &["--login-address-burst=1", "--login-address-refill=1h"],
    );
    let event = fixture("post-login-wrong-password");
    let first = through_lambda(&function, &event).await;
    assert_eq!(first.status, 401);
    let second = through_lambda(&function, &event).await;
    assert_eq!(
        second.status,
        429,
        "{}",
        String::from_utf8_lossy(&second.body)
    );
    let elsewhere = event.replace("198.51.100.23", "203.0.113.7");
    let other = through_lambda(&function, &elsewhere).await;
    assert_eq!(
        other.status,
        401,
        "{}",
        String::from_utf8_lossy(&other.body)
    );

    // The Lambda request id becomes the request id when the caller sent none.
    let request: LambdaRequest = serde_json::from_str(&fixture("get-healthz")).expect("event");
    let mut context = Context::default();
    context.request_id = "0b0f7d0e-6f35-4f1c-9a8e-2d5c3b1a0f9e".into();
    let response = function
        .clone()
        .oneshot(LambdaEvent::new(request, context))
        .await
        .expect("infallible");
    let response = serde_json::to_value(&response).expect("json");
    assert_eq!(
        response["headers"]["x-request-id"],
        "0b0f7d0e-6f35-4f1c-9a8e-2d5c3b1a0f9e"
    );
}

fn worker_settings() -> WorkerSettings {
    let args = [
        "api-worker",
        "worker",
        "--users-table=u",
        "--movies-table=m",
        "--watchlists-table=w",
        "--tmdb-api-key=k",
    ];
    match Cli::try_parse_from(args).expect("worker arguments").command {
        Command::Worker(worker) => worker.worker,
        _ => unreachable!("worker"),
    }
}

/// Puts `bodies` on the fixture's jobs queue and receives them as the event
/// source mapping does, returning the SQS event Lambda would deliver.
async fn sqs_event_for(fx: &Fixture, bodies: &[&str]) -> (SqsEvent, Vec<String>) {
    let mut ids = Vec::new();
    for body in bodies {
        let sent = fx
            .sqs
            .send_message()
            .queue_url(&fx.queue_url)
            .message_body(*body)
            .send()
            .await
            .expect("send");
        ids.push(sent.message_id.expect("message id"));
    }
    let queue_arn = common::queue_arn(&fx.sqs, &fx.queue_url).await;
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while records.len() < bodies.len() && Instant::now() < deadline {
        let output = fx
            .sqs
            .receive_message()
            .queue_url(&fx.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive");
        for message in output.messages.unwrap_or_default() {
            let attributes: BTreeMap<String, String> = message
                .attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect();
            records.push(serde_json::json!({
                "messageId": message.message_id(),
                "receiptHandle": message.receipt_handle(),
                "body": message.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": message.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }));
        }
    }
    assert_eq!(records.len(), bodies.len(), "received every message");
    let event = serde_json::json!({ "Records": records }).to_string();
    (serde_json::from_str(&event).expect("an SQS event"), ids)
}

async fn cached(fx: &Fixture, key: &str) -> bool {
    fx.dynamo
        .get_item()
        .table_name(&fx.movies_table)
        .key("key", AttributeValue::S(key.into()))
        .send()
        .await
        .expect("get item")
        .item
        .is_some()
}

fn failures(response: &SqsBatchResponse) -> Vec<Value> {
    serde_json::to_value(response).expect("json")["batchItemFailures"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn an_sqs_batch_reports_only_its_poison_message() {
    let fx = Fixture::new("lambda-sqs").await;
    let state = fx.state(&[]);
    let (event, ids) = sqs_event_for(
        &fx,
        &[
            r#"{"type":"refresh-movie","movieId":550}"#,
            "this is not a job",
            r#"{"type":"warm-popular","pages":1}"#,
        ],
    )
    .await;
    let response = api_worker::lambda::handle_jobs_event(&state, &worker_settings(), event).await;
    assert_eq!(
        failures(&response),
        vec![serde_json::json!({"itemIdentifier": ids[1]})],
        "exactly the poison message is reported"
    );
    assert!(cached(&fx, "movie#550").await, "refresh-movie was done");
    assert!(cached(&fx, "popular#1").await, "warm-popular was done");
    let metrics = state.metrics.encode().expect("metrics");
    for line in [
        r#"movieapp_jobs_total{type="refresh-movie",outcome="ok"} 1"#,
        r#"movieapp_jobs_total{type="warm-popular",outcome="ok"} 1"#,
        r#"movieapp_jobs_total{type="unknown",outcome="malformed"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }

    // The event source mapping deletes what was not reported; the poison
    // message was made visible again at once (towards the dead-letter queue
    // after maxReceiveCount receives), not after the 30 s visibility timeout.
    let mut again = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while again.is_empty() && Instant::now() < deadline {
        let output = fx
            .sqs
            .receive_message()
            .queue_url(&fx.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        again.extend(output.messages.unwrap_or_default());
    }
    let again: Vec<_> = again.iter().filter_map(|m| m.message_id()).collect();
    assert_eq!(
        again,
        vec![ids[1].as_str()],
        "only the poison message is back"
    );
}

#[tokio::test]
async fn notifications_and_sns_wrapped_jobs_are_not_failures() {
    let fx = Fixture::new("lambda-sns").await;
    let state = fx.state(&[]);
    let wrapped = serde_json::json!({
        "Type": "Notification",
        "Message": r#"{"type":"refresh-movie","movieId":603}"#,
    })
    .to_string();
    let ours = serde_json::json!({
        "Type": "Notification",
        "Message": r#"{"type":"watchlist.movie-changed","eventId":"e","userId":"u","movieId":1,"title":"t","changes":[]}"#,
    })
    .to_string();
    let (event, _) = sqs_event_for(&fx, &[&wrapped, &ours]).await;
    let response = api_worker::lambda::handle_jobs_event(&state, &worker_settings(), event).await;
    assert!(failures(&response).is_empty(), "{response:?}");
    assert!(cached(&fx, "movie#603").await);
}

// --- the binary against a stand-in for the Lambda Runtime API --------------

/// Lambda's Runtime API (`/2018-06-01/runtime/...`), enough for `bootstrap`:
/// hands out queued events and collects responses and errors.
#[derive(Clone)]
struct RuntimeApi {
    events: Arc<Mutex<mpsc::Receiver<(String, String)>>>,
    results: mpsc::Sender<(String, Result<Value, String>)>,
    first_poll: Arc<std::sync::Mutex<Option<Instant>>>,
}

async fn next_event(State(api): State<RuntimeApi>) -> (HeaderMap, String) {
    api.first_poll
        .lock()
        .expect("lock")
        .get_or_insert_with(Instant::now);
    let Some((id, event)) = api.events.lock().await.recv().await else {
        // No more events: keep the function waiting, as Lambda does.
        std::future::pending::<()>().await;
        unreachable!()
    };
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        + 30_000;
    let mut headers = HeaderMap::new();
    let value = |s: &str| HeaderValue::from_str(s).expect("header");
    headers.insert("lambda-runtime-aws-request-id", value(&id));
    headers.insert("lambda-runtime-deadline-ms", value(&deadline.to_string()));
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        value("arn:aws:lambda:us-east-1:123456789012:function:movieapp-test"),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        value("Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"),
    );
    (headers, event)
}

async fn invocation_response(
    State(api): State<RuntimeApi>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    let value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"));
    let _ = api.results.send((id, value)).await;
    StatusCode::ACCEPTED
}

async fn invocation_error(
    State(api): State<RuntimeApi>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    let _ = api.results.send((id, Err(body))).await;
    StatusCode::ACCEPTED
}

async fn init_error(State(api): State<RuntimeApi>, body: String) -> StatusCode {
    let _ = api.results.send(("init".into(), Err(body))).await;
    StatusCode::ACCEPTED
}

struct Bootstrap {
    events: mpsc::Sender<(String, String)>,
    results: mpsc::Receiver<(String, Result<Value, String>)>,
    first_poll: Arc<std::sync::Mutex<Option<Instant>>>,
    started: Instant,
    process: tokio::process::Child,
}

impl Bootstrap {
    /// Starts `api-worker-lambda` as Lambda would, as function `handler`
    /// with the fixture's connection settings.
    async fn start(fx: &Fixture, handler: &str) -> Self {
        let (events_tx, events_rx) = mpsc::channel(8);
        let (results_tx, results_rx) = mpsc::channel(8);
        let first_poll = Arc::new(std::sync::Mutex::new(None));
        let api = RuntimeApi {
            events: Arc::new(Mutex::new(events_rx)),
            results: results_tx,
            first_poll: first_poll.clone(),
        };
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_event))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(invocation_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(api);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, router).await });

        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_api-worker-lambda"));
        for line in fx.exports().lines() {
            let (name, value) = line
                .trim_start_matches("export ")
                .split_once('=')
                .expect("NAME=value");
            command.env(name, value.trim_matches('\''));
        }
        command
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "movieapp-test")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/movieapp-test")
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2026/11/25/[$LATEST]0123456789abcdef",
            )
            .env("_HANDLER", handler)
            .env("AWS_ENDPOINT_URL", &fx.env.aws_endpoint_url)
            .env("TMDB_BASE_URL", &fx.env.tmdb_base_url)
            .env("TMDB_API_KEY", &fx.env.tmdb_api_key)
            .env(
                "MOVIEAPP_TOKEN_SIGNING_KEY",
                "integration-test-signing-key-0123456789",
            )
            .env("LOG_FORMAT", "text")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if handler == "http" {
            // Cheap hashing in tests, through the variable meant for such flags.
            command.env(
                "API_WORKER_LAMBDA_ARGS",
                "--argon2-memory-kib=7168 --argon2-iterations=5",
            );
        }
        let started = Instant::now();
        let process = command.spawn().expect("start api-worker-lambda");
        Self {
            events: events_tx,
            results: results_rx,
            first_poll,
            started,
            process,
        }
    }

    async fn invoke(&mut self, id: &str, event: String) -> Result<Value, String> {
        self.events
            .send((id.to_owned(), event))
            .await
            .expect("queue the event");
        let answer = tokio::time::timeout(Duration::from_secs(30), async {
            tokio::select! {
                answer = self.results.recv() => answer.expect("the runtime API is up"),
                status = self.process.wait() => panic!("api-worker-lambda exited: {status:?}"),
            }
        });
        let (got, result) = answer.await.expect("an answer within 30 s");
        assert_eq!(got, id, "answer for the event sent: {result:?}");
        result
    }

    /// Time from starting the process to its first request for an event:
    /// the function's init phase.
    fn init_duration(&self) -> Option<Duration> {
        let first = (*self.first_poll.lock().expect("lock"))?;
        Some(first - self.started)
    }
}

#[tokio::test]
async fn the_bootstrap_binary_serves_http_events_through_the_runtime_api() {
    let fx = Fixture::new("lambda-bin-http").await;
    let mut function = Bootstrap::start(&fx, "http").await;
    let answer = function
        .invoke("req-1", fixture("get-movie-details"))
        .await
        .expect("a response, not an error");
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(answer["isBase64Encoded"], false);
    assert_eq!(answer["headers"]["content-type"], "application/json");
    assert_eq!(answer["headers"]["x-request-id"], "req-1");
    let body: Value = serde_json::from_str(answer["body"].as_str().expect("body")).expect("json");
    assert_eq!(body["title"], "Fight Club");

    let answer = function
        .invoke("req-2", fixture("post-signup-base64"))
        .await
        .expect("a response");
    assert_eq!(answer["statusCode"], 202, "{answer}");
    if let Some(init) = function.init_duration() {
        eprintln!("api-worker-lambda http: init (process start to first poll) took {init:?}");
    }
}

#[tokio::test]
async fn the_bootstrap_binary_reports_batch_item_failures_through_the_runtime_api() {
    let fx = Fixture::new("lambda-bin-jobs").await;
    let mut function = Bootstrap::start(&fx, "jobs").await;
    let (event, ids) = sqs_event_for(
        &fx,
        &[
            r#"{"type":"warm-popular","pages":1}"#,
            "{\"type\":\"launch-rockets\"}",
        ],
    )
    .await;
    let event = serde_json::to_string(&event).expect("event JSON");
    let answer = function.invoke("sqs-1", event).await.expect("a response");
    assert_eq!(
        answer,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": ids[1]}]})
    );
    assert!(cached(&fx, "popular#1").await);
    if let Some(init) = function.init_duration() {
        eprintln!("api-worker-lambda jobs: init (process start to first poll) took {init:?}");
    }
}

#[tokio::test]
async fn the_bootstrap_binary_refuses_an_unknown_handler_at_init() {
    let fx = Fixture::new("lambda-bin-bad").await;
    let mut function = Bootstrap::start(&fx, "api-worker").await;
    let exited = tokio::time::timeout(Duration::from_secs(20), function.process.wait())
        .await
        .expect("exits at once")
        .expect("exit status");
    assert!(!exited.success());
    assert!(
        function.first_poll.lock().expect("lock").is_none(),
        "no event was asked for"
    );
}
