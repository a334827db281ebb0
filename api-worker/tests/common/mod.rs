//! Helpers for the integration tests: they run against moto and the TMDB stub
//! of `make env-up` (`. .localenv/env.sh`), each test with its own tables,
//! queues and topic made from the `movieapp-model` definitions.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::HashMap;
use std::time::Duration;

use api_worker::config::{Cli, Command, ServeArgs, WorkerSettings};
use api_worker::{Accounts, AppState};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use clap::Parser;
use movieapp_model::{AttrType, TABLES, Table};
use serde_json::Value;
use tower::ServiceExt;

/// The local environment; panics naming what is missing, so these tests
/// fail rather than pass by skipping.
#[derive(Debug, Clone)]
pub struct Env {
    pub aws_endpoint_url: String,
    pub tmdb_base_url: String,
    pub tmdb_api_key: String,
}

impl Env {
    pub fn get() -> Self {
        fn var(name: &str) -> String {
            std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
                panic!(
                    "{name} is not set: the api-worker integration tests need moto and the TMDB stub; \
                     run `make env-up && . .localenv/env.sh` first (or `make test`)"
                )
            })
        }
        for name in ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            var(name);
        }
        Self {
            aws_endpoint_url: var("AWS_ENDPOINT_URL"),
            tmdb_base_url: var("TMDB_BASE_URL"),
            tmdb_api_key: var("TMDB_API_KEY"),
        }
    }

    pub async fn aws(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.aws_endpoint_url)
            .load()
            .await
    }
}

pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{:x}-{}",
        nanos ^ std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn scalar(kind: AttrType) -> ScalarAttributeType {
    match kind {
        AttrType::String => ScalarAttributeType::S,
        AttrType::Number => ScalarAttributeType::N,
    }
}

fn key(name: &str, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .expect("key schema")
}

/// Creates `table` as the operator would (keys, indexes, TTL).
pub async fn create_table(dynamo: &aws_sdk_dynamodb::Client, table: &Table, name: &str) {
    let mut request = dynamo
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for attr in table.key_attributes() {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attr.name)
                .attribute_type(scalar(attr.kind))
                .build()
                .expect("attribute"),
        );
    }
    request = request.key_schema(key(table.partition_key.name, KeyType::Hash));
    if let Some(sort) = table.sort_key {
        request = request.key_schema(key(sort.name, KeyType::Range));
    }
    for index in table.indexes {
        let mut gsi = GlobalSecondaryIndex::builder()
            .index_name(index.name)
            .key_schema(key(index.partition_key.name, KeyType::Hash))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            );
        if let Some(sort) = index.sort_key {
            gsi = gsi.key_schema(key(sort.name, KeyType::Range));
        }
        request = request.global_secondary_indexes(gsi.build().expect("index"));
    }
    request
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating table {name}: {e:?}"));
    if let Some(attribute) = table.ttl_attribute {
        dynamo
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                    .attribute_name(attribute)
                    .enabled(true)
                    .build()
                    .expect("ttl"),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("enabling TTL on {name}: {e:?}"));
    }
}

/// Every AWS resource of one test, deleted again when dropped.
#[derive(Debug)]
pub struct Fixture {
    pub env: Env,
    pub aws: aws_config::SdkConfig,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub users_table: String,
    pub movies_table: String,
    pub watchlists_table: String,
    pub queue_url: String,
    pub dlq_url: String,
    pub topic_arn: String,
}

pub const MAX_RECEIVE_COUNT: u32 = 2;

impl Fixture {
    pub async fn new(prefix: &str) -> Self {
        let env = Env::get();
        let aws = env.aws().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&aws);
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let sns = aws_sdk_sns::Client::new(&aws);
        let base = unique(prefix);
        let names: Vec<String> = TABLES
            .iter()
            .map(|t| format!("{base}-{}", t.component))
            .collect();
        for (table, name) in TABLES.iter().zip(&names) {
            create_table(&dynamo, table, name).await;
        }
        let dlq_url = sqs
            .create_queue()
            .queue_name(format!("{base}-dlq"))
            .send()
            .await
            .expect("dlq")
            .queue_url
            .expect("url");
        let dlq_arn = queue_arn(&sqs, &dlq_url).await;
        let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT.to_string()});
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("{base}-jobs"))
            .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
            .attributes(QueueAttributeName::VisibilityTimeout, "30")
            .send()
            .await
            .expect("jobs queue")
            .queue_url
            .expect("url");
        let topic_arn = sns
            .create_topic()
            .name(format!("{base}-events"))
            .send()
            .await
            .expect("topic")
            .topic_arn
            .expect("arn");
        let [users_table, movies_table, watchlists_table]: [String; 3] =
            names.try_into().expect("three tables");
        Self {
            env,
            aws,
            dynamo,
            sqs,
            sns,
            users_table,
            movies_table,
            watchlists_table,
            queue_url,
            dlq_url,
            topic_arn,
        }
    }

    /// `serve` arguments for this fixture, plus `extra` flags. Argon2 runs
    /// at OWASP's cheapest equivalent cost (7 MiB, 5 iterations).
    pub fn serve_args(&self, extra: &[&str]) -> ServeArgs {
        let mut args: Vec<String> = vec![
            "api-worker".into(),
            "serve".into(),
            format!("--users-table={}", self.users_table),
            format!("--movies-table={}", self.movies_table),
            format!("--watchlists-table={}", self.watchlists_table),
            format!("--jobs-queue-url={}", self.queue_url),
            format!("--notifications-topic-arn={}", self.topic_arn),
            format!("--aws-endpoint-url={}", self.env.aws_endpoint_url),
            format!("--tmdb-base-url={}", self.env.tmdb_base_url),
            format!("--tmdb-api-key={}", self.env.tmdb_api_key),
            "--token-signing-key=integration-test-signing-key-0123456789".into(),
            "--argon2-memory-kib=7168".into(),
            "--argon2-iterations=5".into(),
        ];
        // A flag in `extra` replaces the fixture's value.
        let flag = |arg: &str| arg.split('=').next().unwrap_or_default().to_owned();
        args.retain(|arg| {
            !extra
                .iter()
                .any(|e| flag(e) == flag(arg) && arg.starts_with("--"))
        });
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        match Cli::try_parse_from(args)
            .unwrap_or_else(|e| panic!("test arguments: {e}"))
            .command
        {
            Command::Serve(serve) => serve,
            _ => unreachable!("serve"),
        }
    }

    /// What `serve` runs on with this fixture's settings plus `extra`.
    pub fn serving(&self, extra: &[&str]) -> (AppState, Accounts) {
        let args = self.serve_args(extra);
        api_worker::serving(args.settings, args.auth, args.http, &self.aws).expect("state")
    }

    pub fn state(&self, extra: &[&str]) -> AppState {
        self.serving(extra).0
    }

    pub fn app(&self, extra: &[&str]) -> (AppState, Router) {
        let (state, accounts) = self.serving(extra);
        (state.clone(), api_worker::app(state, Some(accounts)))
    }

    /// A queue subscribed to the topic, to observe what was published.
    pub async fn observe_topic(&self) -> String {
        let url = self
            .sqs
            .create_queue()
            .queue_name(unique("observer"))
            .send()
            .await
            .expect("observer queue")
            .queue_url
            .expect("url");
        let arn = queue_arn(&self.sqs, &url).await;
        self.sns
            .subscribe()
            .topic_arn(&self.topic_arn)
            .protocol("sqs")
            .endpoint(arn)
            .send()
            .await
            .expect("subscribe");
        url
    }
}

/// The names of a fixture's resources, enough to delete them later.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Resources {
    pub tables: Vec<String>,
    pub queues: Vec<String>,
    pub topic: String,
}

impl Resources {
    /// Deletes everything named, ignoring what is already gone.
    pub async fn delete(&self, aws: &aws_config::SdkConfig) {
        let dynamo = aws_sdk_dynamodb::Client::new(aws);
        let sqs = aws_sdk_sqs::Client::new(aws);
        let sns = aws_sdk_sns::Client::new(aws);
        for table in &self.tables {
            let _ = dynamo.delete_table().table_name(table).send().await;
        }
        for queue in &self.queues {
            let _ = sqs.delete_queue().queue_url(queue).send().await;
        }
        let _ = sns.delete_topic().topic_arn(&self.topic).send().await;
    }
}

impl Fixture {
    pub fn resources(&self) -> Resources {
        Resources {
            tables: vec![
                self.users_table.clone(),
                self.movies_table.clone(),
                self.watchlists_table.clone(),
            ],
            queues: vec![self.queue_url.clone(), self.dlq_url.clone()],
            topic: self.topic_arn.clone(),
        }
    }

    /// The variables the operator would inject for these resources.
    pub fn exports(&self) -> String {
        use movieapp_model::env;
        [
            (env::USERS_TABLE, &self.users_table),
            (env::MOVIES_TABLE, &self.movies_table),
            (env::WATCHLISTS_TABLE, &self.watchlists_table),
            (env::JOBS_QUEUE_URL, &self.queue_url),
            (env::NOTIFICATIONS_TOPIC_ARN, &self.topic_arn),
        ]
        .iter()
        .map(|(name, value)| format!("export {name}='{value}'\n"))
        .collect()
    }

    /// Keeps the resources beyond this value (a script deletes them later).
    pub fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let resources = self.resources();
        let env = self.env.clone();
        // Drop cannot await, and may run during a panic: clean up on a
        // thread with its own runtime and clients.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move { resources.delete(&env.aws().await).await });
        });
        let _ = cleanup.join();
    }
}

pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .expect("queue arn")
}

/// Receives what is on `url` within `wait`, deleting it.
pub async fn drain(sqs: &aws_sdk_sqs::Client, url: &str, wait: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut bodies = Vec::new();
    while tokio::time::Instant::now() < deadline {
        let output = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        for message in output.messages.unwrap_or_default() {
            if let Some(receipt) = message.receipt_handle() {
                let _ = sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(receipt)
                    .send()
                    .await;
            }
            bodies.extend(message.body);
        }
        if !bodies.is_empty() {
            break;
        }
    }
    bodies
}

/// One answer: status, headers and the body as JSON (`Value::Null` if empty
/// or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem document with `status` whose detail contains `needle`.
    pub fn assert_problem(&self, status: u16, needle: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        let detail = self.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.to_lowercase().contains(&needle.to_lowercase()),
            "detail {detail:?} should mention {needle:?}"
        );
        assert_eq!(self.body["status"].as_u64(), Some(u64::from(status)));
    }
}

pub async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 4 << 20)
        .await
        .expect("body");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        text,
    }
}

pub async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    };
    send(app, request.expect("request")).await
}

pub async fn get(app: &Router, uri: &str) -> Answer {
    call(app, Method::GET, uri, None, None).await
}

/// Signs up `email`, logs in and returns (user id, token).
pub async fn sign_up(app: &Router, email: &str) -> (String, String) {
    let credentials = serde_json::json!({"email": email, "password": "correct horse battery"});
    let answer = call(
        app,
        Method::POST,
        "/api/v1/auth/signup",
        None,
        Some(credentials.clone()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
    let login = call(
        app,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(credentials),
    )
    .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    let token = login.body["token"].as_str().expect("token").to_owned();
    let me = call(app, Method::GET, "/api/v1/me", Some(&token), None).await;
    let id = me.body["id"].as_str().expect("user id").to_owned();
    (id, token)
}

pub type Item = HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// The worker's settings for tests: short polls, visibility and retries, plus
/// `extra` flags.
pub fn worker_settings(extra: &[&str]) -> WorkerSettings {
    let mut args = vec![
        "api-worker",
        "worker",
        "--users-table=u",
        "--movies-table=m",
        "--watchlists-table=w",
        "--tmdb-api-key=k",
        "--poll-wait=1s",
        "--visibility-timeout=2s",
        "--retry-delay=0s",
    ];
    args.extend_from_slice(extra);
    match Cli::try_parse_from(args).expect("worker arguments").command {
        Command::Worker(worker) => worker.worker,
        _ => unreachable!("worker"),
    }
}

/// Sets the snapshot of `movie_id` on `user_id`'s watchlist to an older
/// release date, as if TMDB had changed it since the movie was added.
pub async fn age_snapshot(fx: &Fixture, user_id: &str, movie_id: u64, release_date: &str) {
    let key = [
        ("userId".to_owned(), AttributeValue::S(user_id.to_owned())),
        (
            "movieId".to_owned(),
            AttributeValue::N(movie_id.to_string()),
        ),
    ];
    let item = fx
        .dynamo
        .get_item()
        .table_name(&fx.watchlists_table)
        .set_key(Some(key.clone().into()))
        .send()
        .await
        .expect("get")
        .item
        .expect("watchlist entry");
    let mut movie: Value =
        serde_json::from_str(item["movie"].as_s().expect("snapshot")).expect("json");
    movie["releaseDate"] = Value::String(release_date.into());
    fx.dynamo
        .update_item()
        .table_name(&fx.watchlists_table)
        .set_key(Some(key.into()))
        .update_expression("SET movie = :m")
        .expression_attribute_values(":m", AttributeValue::S(movie.to_string()))
        .send()
        .await
        .expect("update snapshot");
}

/// `worker` running on a state in the background, until [`Self::stop`].
pub struct RunningWorker {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningWorker {
    pub fn start(state: &AppState) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(api_worker::worker::run(
            state.clone(),
            worker_settings(&[]),
            async {
                let _ = stopped.await;
            },
        ));
        Self { stop, task }
    }

    /// Asks it to stop and waits for a clean stop.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("worker task")
            .expect("worker stops cleanly");
    }
}

/// Runs `worker` on `state` until its metrics hold every line of `done`
/// (failing after 20 s), then stops it and waits for a clean stop.
pub async fn run_worker_until(state: &AppState, done: &[&str]) {
    let worker = RunningWorker::start(state);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = state.metrics.encode().expect("metrics");
        if done.iter().all(|line| metrics.contains(line)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "jobs not handled in time:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    worker.stop().await;
}
