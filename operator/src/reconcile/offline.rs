//! The pipeline ([`super::run`]) without a cluster, for the error paths the
//! real parts cannot be made to take on demand: AWS denying a create, AWS
//! throttling a resync, the API server refusing a child.
//!
//! AWS is the SDK clients of [`Aws::from_config`] over an HTTP client that
//! answers each request from the test's rules in the services' own wire
//! formats (JSON with `__type`, SNS's XML), so the SDK parses and the
//! operator classifies the errors exactly as they come from AWS. Kubernetes
//! is a [`kube::Client`] over a tower service that answers as the API server
//! would (404 for what is not there, the object for a write), unless the
//! test's rule says otherwise. Both record every request.

use std::convert::Infallible;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use clap::Parser;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::events::Reporter;
use kube::runtime::reflector;
use serde_json::{Value, json};

use super::memory::{Memory, Reread, Verified, Wake};
use super::{Context, Error, apply, status};
use crate::aws::Aws;
use crate::aws::ecr::{ImageResolver, ResolvedImage};
use crate::config::RunConfig;
use crate::context::{Shared, Stores};
use crate::crd::{MovieApp, MovieAppSpec, NotificationsStatus, QueueStatus, TableStatus};
use crate::events::Routes;
use crate::metrics::Metrics;
use crate::naming::{AppId, component};
use crate::provision::{Observed, Provisioned};
use crate::recorder::Recorder;
use crate::schedule::{ResyncBudget, Workers};

const NAMESPACE: &str = "movies";
const NAME: &str = "shop";
const UID: &str = "0c1f6b1e-offline";
const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";
const DIGEST: &str = "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945";

// ------------------------------------------------------------------ AWS

/// One AWS request: the service and the operation.
#[derive(Debug, Clone)]
struct AwsCall {
    service: &'static str,
    operation: String,
}

impl AwsCall {
    fn of(request: &HttpRequest) -> Self {
        let body = request
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        // The JSON protocols name the operation in X-Amz-Target, SNS's query
        // protocol in the form body.
        let (service, operation) = match request.headers().get("x-amz-target") {
            Some(target) => {
                let (prefix, operation) = target.split_once('.').unwrap_or((target, ""));
                let service = match prefix {
                    "DynamoDB_20120810" => "dynamodb",
                    "AmazonSQS" => "sqs",
                    "AmazonEC2ContainerRegistry_V20150921" => "ecr",
                    _ => "unknown",
                };
                (service, operation.to_owned())
            }
            None => {
                let action = body
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("Action="))
                    .unwrap_or_default();
                ("sns", action.to_owned())
            }
        };
        Self { service, operation }
    }

    fn is(&self, service: &str, operation: &str) -> bool {
        self.service == service && self.operation == operation
    }
}

impl fmt::Display for AwsCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.service, self.operation)
    }
}

/// How the fake AWS answers one request.
#[derive(Debug, Clone)]
enum Answer {
    /// 200 with this JSON document (the JSON protocols).
    Json(Value),
    /// An error with this HTTP status, code and message, as the service
    /// writes it.
    Error {
        status: u16,
        code: &'static str,
        message: String,
    },
}

impl Answer {
    fn error(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self::Error {
            status,
            code,
            message: message.into(),
        }
    }

    fn response(self, service: &str) -> HttpResponse {
        let (status, content_type, body, code) = match self {
            Answer::Json(value) => (200, "application/x-amz-json-1.0", value.to_string(), None),
            Answer::Error {
                status,
                code,
                message,
            } if service == "sns" => (
                status,
                "text/xml",
                format!(
                    "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
                     <Message>{message}</Message></Error><RequestId>1</RequestId></ErrorResponse>"
                ),
                None,
            ),
            Answer::Error {
                status,
                code,
                message,
            } => (
                status,
                "application/x-amz-json-1.0",
                json!({ "__type": format!("com.amazonaws.{service}#{code}"), "message": message })
                    .to_string(),
                Some(code),
            ),
        };
        let mut response = HttpResponse::new(
            status.try_into().expect("a valid HTTP status"),
            SdkBody::from(body),
        );
        response.headers_mut().insert("content-type", content_type);
        if let Some(code) = code {
            response.headers_mut().insert("x-amzn-errortype", code);
        }
        response
    }
}

type AwsRules = dyn Fn(&AwsCall) -> Answer + Send + Sync;

/// An HTTP client for the SDK that answers from rules and records requests.
#[derive(Clone)]
struct FakeAws {
    rules: Arc<AwsRules>,
    calls: Arc<Mutex<Vec<AwsCall>>>,
}

impl fmt::Debug for FakeAws {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeAws").finish_non_exhaustive()
    }
}

impl FakeAws {
    fn calls(&self) -> Vec<AwsCall> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl HttpClient for FakeAws {
    fn http_connector(
        &self,
        _: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for FakeAws {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let call = AwsCall::of(&request);
        let answer = (self.rules)(&call);
        let response = answer.response(call.service);
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(call);
        HttpConnectorFuture::ready(Ok(response))
    }
}

/// An answer for an operation a test did not expect: a 400 no code path
/// treats as anything but an error, and the test's request list says which.
fn unexpected(call: &AwsCall) -> Answer {
    Answer::error(400, "UnexpectedInTest", format!("no rule for {call}"))
}

/// ECR holding the worker image: the repository and the image's digest.
fn ecr(call: &AwsCall) -> Option<Answer> {
    if call.is("ecr", "DescribeRepositories") {
        Some(Answer::Json(json!({ "repositories": [{
            "repositoryName": "api-worker",
            "repositoryUri": format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/api-worker"),
        }]})))
    } else if call.is("ecr", "DescribeImages") {
        Some(Answer::Json(
            json!({ "imageDetails": [{ "imageDigest": DIGEST }] }),
        ))
    } else {
        None
    }
}

/// An account without the MovieApp's tables and queues: their lookups find nothing.
fn nothing_exists(call: &AwsCall) -> Option<Answer> {
    match (call.service, call.operation.as_str()) {
        ("dynamodb", "DescribeTable") => Some(Answer::error(
            400,
            "ResourceNotFoundException",
            "Requested resource not found",
        )),
        ("sqs", "GetQueueUrl") => Some(Answer::error(
            400,
            "QueueDoesNotExist",
            "The specified queue does not exist.",
        )),
        _ => None,
    }
}

// ------------------------------------------------------------------ Kubernetes

/// One API request: method, path, and the JSON body (`null` when none).
#[derive(Debug, Clone)]
struct ApiCall {
    method: String,
    path: String,
    body: Value,
}

impl ApiCall {
    fn is(&self, method: &str, path_end: &str) -> bool {
        self.method == method && self.path.ends_with(path_end)
    }
}

type ApiRules = dyn Fn(&ApiCall) -> Option<(u16, Value)> + Send + Sync;

fn not_found() -> (u16, Value) {
    status_body(404, "NotFound", "not found")
}

fn status_body(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": reason, "message": message, "code": code }),
    )
}

/// A client whose API server answers from `rules`, else: reads find
/// nothing (404), a status patch returns `app` with that status, other
/// writes return what they wrote.
fn fake_kube(
    app: &MovieApp,
    rules: Arc<ApiRules>,
    calls: Arc<Mutex<Vec<ApiCall>>>,
) -> kube::Client {
    let app = serde_json::to_value(app).expect("a MovieApp serializes");
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let (rules, calls, app) = (rules.clone(), calls.clone(), app.clone());
        async move {
            let method = request.method().to_string();
            let path = request.uri().path().to_owned();
            let bytes = request
                .into_body()
                .collect_bytes()
                .await
                .expect("a request body");
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let call = ApiCall { method, path, body };
            let (code, answer) = rules(&call).unwrap_or_else(|| match call.method.as_str() {
                "GET" => not_found(),
                "PATCH" if call.path.ends_with("/status") => {
                    let mut app = app.clone();
                    app["status"] = call.body["status"].clone();
                    (200, app)
                }
                "POST" => (201, call.body.clone()),
                _ => (200, call.body.clone()),
            });
            calls
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(call);
            let response = http::Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(kube::client::Body::from(answer.to_string().into_bytes()))
                .expect("a response");
            Ok::<_, Infallible>(response)
        }
    });
    kube::Client::new(service, NAMESPACE)
}

/// The TMDB Secret the default spec refers to, with its key.
fn tmdb_secret(app: &MovieApp, call: &ApiCall) -> Option<(u16, Value)> {
    let reference = &app.spec.worker.tmdb.api_key_secret_ref;
    call.is("GET", &format!("/secrets/{}", reference.name))
        .then(|| {
            (
                200,
                json!({ "apiVersion": "v1", "kind": "Secret",
                        "metadata": { "name": reference.name, "namespace": NAMESPACE },
                        "data": { reference.key.clone(): "a2V5" } }),
            )
        })
}

// ------------------------------------------------------------------ the stage

/// One MovieApp, a controller context over the fakes, and what they saw.
struct Stage {
    app: MovieApp,
    ctx: Context,
    aws: FakeAws,
    api: Arc<Mutex<Vec<ApiCall>>>,
}

impl Stage {
    async fn new(
        aws_rules: impl Fn(&AwsCall) -> Answer + Send + Sync + 'static,
        api_rules: impl Fn(&ApiCall) -> Option<(u16, Value)> + Send + Sync + 'static,
    ) -> Self {
        let spec: MovieAppSpec = serde_json::from_value(json!({})).expect("the default spec");
        let mut app = MovieApp::new(NAME, spec);
        app.metadata.namespace = Some(NAMESPACE.to_owned());
        app.metadata.uid = Some(UID.to_owned());
        app.metadata.generation = Some(1);

        let aws = FakeAws {
            rules: Arc::new(aws_rules),
            calls: Arc::default(),
        };
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .http_client(aws.clone())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(
                "AKIDOFFLINE",
                "offline",
                None,
                None,
                "offline-test",
            ))
            .endpoint_url("http://aws.invalid")
            // One attempt: what the operator does with the error is the
            // test, not how long the SDK retries it.
            .retry_config(RetryConfig::disabled())
            .load()
            .await;
        let api = Arc::default();
        let tmdb_app = app.clone();
        let client = fake_kube(
            &app,
            Arc::new(move |call: &ApiCall| {
                api_rules(call).or_else(|| tmdb_secret(&tmdb_app, call))
            }),
            Arc::clone(&api),
        );
        let metrics = Metrics::new();
        let config = Cli::parse_from(["movieapp-operator"]).run;
        let shared = Shared {
            aws: Aws::from_config(sdk, metrics.clone()),
            images: ImageResolver::default(),
            tag_snapshots: Default::default(),
            recorder: Recorder::new(
                client.clone(),
                Reporter {
                    controller: "movieapp-operator".to_owned(),
                    instance: None,
                },
            ),
            resyncs: Arc::new(ResyncBudget::new(
                config.resync_interval(),
                config.aws_max_rps,
                metrics.clone(),
            )),
            routes: Arc::new(Routes::default()),
            metrics: metrics.clone(),
            config,
            client,
        };
        let ctx = Context::new(
            Arc::new(shared),
            Stores {
                deployments: reflector::store().0,
                services: reflector::store().0,
                config_maps: reflector::store().0,
                service_accounts: reflector::store().0,
                autoscalers: reflector::store().0,
                disruption_budgets: reflector::store().0,
                network_policies: reflector::store().0,
            },
            reflector::store().0,
            Arc::new(Memory::new(metrics)),
            Arc::new(Workers::new(1)),
        );
        Self { app, ctx, aws, api }
    }

    async fn run(
        &self,
        reread: Option<Reread>,
    ) -> Result<kube::runtime::controller::Action, Error> {
        let writable = super::pause::check(&self.app).expect("the MovieApp here is not paused");
        let access = super::observe::access(&self.app, &writable);
        super::run(&self.app, &self.ctx, reread, access).await
    }

    fn api_calls(&self) -> Vec<ApiCall> {
        self.api
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The conditions of the last status this reconcile wrote.
    fn written_conditions(&self) -> Vec<Condition> {
        let patch = self
            .api_calls()
            .into_iter()
            .rfind(|c| c.is("PATCH", &format!("/movieapps/{NAME}/status")))
            .expect("the status was written");
        serde_json::from_value(patch.body["status"]["conditions"].clone())
            .expect("conditions in the status")
    }

    /// The notes of the Events published with this reason.
    fn events(&self, reason: &str) -> Vec<(String, String)> {
        self.api_calls()
            .into_iter()
            .filter(|c| c.method == "POST" && c.path.ends_with("/events"))
            .filter(|c| c.body["reason"] == reason)
            .map(|c| {
                (
                    c.body["type"].as_str().unwrap_or_default().to_owned(),
                    c.body["note"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// A complete AWS pass for this MovieApp, remembered as if made at `at`
    /// (what a previous reconcile leaves in the memory).
    fn remember_complete_pass(&self, at: Instant) -> Verified {
        let id = AppId {
            namespace: NAMESPACE,
            name: NAME,
        };
        let queue_url = |component| {
            format!(
                "https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{}",
                id.queue_name(component)
            )
        };
        let provisioned = Provisioned {
            tables: Observed::ready(
                movieapp_model::TABLES
                    .iter()
                    .map(|t| TableStatus {
                        component: t.component.to_owned(),
                        name: id.table_name(t.component),
                        arn: format!(
                            "arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{}",
                            id.table_name(t.component)
                        ),
                    })
                    .collect(),
                Vec::new(),
            ),
            queue: Observed::ready(
                QueueStatus {
                    url: queue_url(component::JOBS_QUEUE),
                    arn: format!(
                        "arn:aws:sqs:{REGION}:{ACCOUNT}:{}",
                        id.queue_name(component::JOBS_QUEUE)
                    ),
                    dead_letter_url: queue_url(component::DEAD_LETTER_QUEUE),
                    dead_letter_arn: format!(
                        "arn:aws:sqs:{REGION}:{ACCOUNT}:{}",
                        id.queue_name(component::DEAD_LETTER_QUEUE)
                    ),
                },
                Vec::new(),
            ),
            notifications: Observed::ready(
                NotificationsStatus {
                    topic_arn: format!("arn:aws:sns:{REGION}:{ACCOUNT}:{}", id.topic_name()),
                    subscriptions: Vec::new(),
                },
                Vec::new(),
            ),
            role: None,
        };
        let object =
            super::dereference::Object::of(&self.app, REGION, "offline").expect("an object");
        let verified = status::verified_pass(
            object.pass_inputs(),
            &Ok(ResolvedImage {
                reference: format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/api-worker@{DIGEST}"),
                digest: DIGEST.to_owned(),
            }),
            &provisioned,
            at,
            at,
        )
        .expect("every part is ready");
        self.ctx
            .memory
            .update(UID, |r| r.verified = Some(verified.clone()));
        verified
    }
}

/// The operator's command line with no flags (its defaults).
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    run: RunConfig,
}

fn condition<'c>(conditions: &'c [Condition], type_: &str) -> &'c Condition {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {conditions:?}"))
}

// ------------------------------------------------------------------ tests

/// A role that may read but not create: the tables and the queues cannot be
/// made, and the status says so, with AWS's own error code, as Stalled.
#[tokio::test]
async fn access_denied_on_create_stalls_with_the_aws_code() {
    let stage = Stage::new(
        |call| {
            let denied = |operation: &str| {
                Answer::error(
                    400,
                    "AccessDeniedException",
                    format!(
                        "User: arn:aws:iam::{ACCOUNT}:role/movieapp-operator is not authorized \
                         to perform: {}:{operation}",
                        call.service
                    ),
                )
            };
            ecr(call)
                .or_else(|| nothing_exists(call))
                .unwrap_or_else(|| match (call.service, call.operation.as_str()) {
                    ("dynamodb", "CreateTable") | ("sqs", "CreateQueue") => denied(&call.operation),
                    _ => unexpected(call),
                })
        },
        |_| None,
    )
    .await;

    stage
        .run(None)
        .await
        .expect("the reconcile reports, it does not fail");

    let calls = stage.aws.calls();
    let creates: Vec<String> = calls
        .iter()
        .filter(|c| c.operation.starts_with("Create"))
        .map(ToString::to_string)
        .collect();
    assert!(
        creates.iter().any(|c| c == "dynamodb CreateTable")
            && creates.iter().any(|c| c == "sqs CreateQueue"),
        "the creates were tried: {calls:?}"
    );
    let expected = [
        "ecr DescribeRepositories",
        "ecr DescribeImages",
        "dynamodb DescribeTable",
        "dynamodb CreateTable",
        "sqs GetQueueUrl",
        "sqs CreateQueue",
    ];
    assert!(
        calls
            .iter()
            .all(|c| expected.contains(&c.to_string().as_str())),
        "only lookups and creates: {calls:?}"
    );
    let conditions = stage.written_conditions();
    let stalled = condition(&conditions, "Stalled");
    assert_eq!(stalled.status, "True", "{conditions:?}");
    assert_eq!(stalled.reason, "AccessDenied", "{conditions:?}");
    for (type_, operation) in [
        ("DatabaseReady", "CreateTable"),
        ("QueueReady", "CreateQueue"),
    ] {
        let part = condition(&conditions, type_);
        assert_eq!(
            (part.status.as_str(), part.reason.as_str()),
            ("False", "AccessDenied"),
            "{part:?}"
        );
        assert!(
            part.message.contains(operation) && part.message.contains("AccessDeniedException"),
            "{type_} names the operation and the AWS code: {}",
            part.message
        );
    }
    assert!(
        stalled.message.contains("AccessDeniedException"),
        "Stalled carries the AWS code: {}",
        stalled.message
    );
    assert_eq!(condition(&conditions, "Ready").status, "False");
    // Nothing is built on resources that are not there.
    assert!(
        !stage
            .api_calls()
            .iter()
            .any(|c| c.path.contains("/deployments")),
        "{:?}",
        stage.api_calls()
    );
}

/// A resync while AWS throttles every read: what the last complete pass
/// found stands (every AWS part stays Ready, the pass stays remembered), a
/// ResyncFailed Warning names the throttling, and the pass is retried soon.
#[tokio::test]
async fn throttling_during_a_resync_holds_the_last_pass() {
    let stage = Stage::new(
        |call| match call.service {
            "sns" => Answer::error(400, "Throttling", "Rate exceeded"),
            "sqs" => Answer::error(400, "RequestThrottled", "Request is throttled."),
            _ => Answer::error(
                400,
                "ThrottlingException",
                "Rate of requests exceeds the allowed throughput.",
            ),
        },
        |_| None,
    )
    .await;
    let made = Instant::now() - Duration::from_secs(600);
    let last = stage.remember_complete_pass(made);

    let reconciled = Instant::now();
    stage
        .run(Some(Reread::Resync))
        .await
        .expect("a throttled resync is not a failed reconcile");

    let calls = stage.aws.calls();
    assert!(
        calls.iter().any(|c| c.service == "dynamodb") && calls.iter().any(|c| c.service == "sqs"),
        "the resync read AWS: {calls:?}"
    );
    let conditions = stage.written_conditions();
    for type_ in [
        "ImageResolved",
        "DatabaseReady",
        "QueueReady",
        "NotificationsReady",
    ] {
        let part = condition(&conditions, type_);
        assert_eq!(part.status, "True", "{type_} holds: {conditions:?}");
    }
    assert_eq!(condition(&conditions, "Stalled").status, "False");
    let warnings = stage.events("ResyncFailed");
    assert_eq!(warnings.len(), 1, "{:?}", stage.api_calls());
    let (type_, note) = &warnings[0];
    assert_eq!(type_, "Warning");
    assert!(
        note.contains("last observed state stands") && note.contains("ThrottlingException"),
        "{note}"
    );
    // The held pass is the one remembered, unchanged, and the worker was
    // built from it.
    let kept = stage
        .ctx
        .memory
        .read(UID, |r| r.verified.clone())
        .flatten()
        .expect("the last pass is still remembered");
    assert_eq!(kept.at, last.at);
    assert_eq!(kept.provisioned, last.provisioned);
    let deployment = stage
        .api_calls()
        .into_iter()
        .find(|c| c.is("PATCH", &format!("/deployments/{NAME}")))
        .expect("the worker was applied");
    assert!(
        deployment.body.to_string().contains(DIGEST),
        "the worker runs the held image"
    );
    // Retried soon, not at the next resync.
    let retry = stage
        .ctx
        .memory
        .next_due(Wake::Retry)
        .expect("a retry is set");
    assert!(retry <= reconciled + status::PROGRESS_INTERVAL + Duration::from_secs(5));
    assert_eq!(stage.ctx.memory.next_due(Wake::Resync), None);
}

/// The API server refusing a child: WorkerAvailable says ApplyFailed with
/// the API server's answer, and the reconcile fails (to be retried with
/// backoff). A refusal only a human can lift stalls as ChildRejected.
#[tokio::test]
async fn an_api_server_refusing_a_child_is_apply_failed() {
    for (code, reason, status_reason, stalled) in [
        (500, "InternalError", "ApplyFailed", "False"),
        (422, "Invalid", "ChildRejected", "True"),
    ] {
        let stage = Stage::new(unexpected, move |call| {
            call.is("PATCH", &format!("/deployments/{NAME}"))
                .then(|| status_body(code, reason, "admission webhook \"quota.example\" said no"))
        })
        .await;
        // A reconcile a child's change caused: AWS is not read again.
        stage.remember_complete_pass(Instant::now());

        let error = stage
            .run(None)
            .await
            .expect_err("a refused child fails the reconcile");

        assert!(matches!(error, Error::Apply(_)), "{error:?}");
        assert_eq!(
            error.category(),
            apply::category(None),
            "a refused child is a kubernetes failure"
        );
        assert!(stage.aws.calls().is_empty(), "{:?}", stage.aws.calls());
        let conditions = stage.written_conditions();
        let worker = condition(&conditions, "WorkerAvailable");
        assert_eq!(
            (worker.status.as_str(), worker.reason.as_str()),
            ("False", status_reason),
            "{code}: {worker:?}"
        );
        assert!(
            worker.message.contains("Deployment")
                && worker.message.contains(&code.to_string())
                && worker.message.contains("quota.example"),
            "{code}: the message names the child and the API server's answer: {}",
            worker.message
        );
        assert_eq!(
            condition(&conditions, "Stalled").status,
            stalled,
            "{code}: {conditions:?}"
        );
        assert_eq!(condition(&conditions, "DatabaseReady").status, "True");
    }
}

/// ObserveOnly over an account where nothing exists: only reads reach AWS,
/// only the status and Events reach the API server (no finalizer, no auth
/// Secret, no child), and Drifted lists what is missing.
#[tokio::test]
async fn observe_only_reads_and_reports_what_is_missing() {
    let mut stage = Stage::new(
        |call| {
            ecr(call)
                .or_else(|| nothing_exists(call))
                .unwrap_or_else(|| unexpected(call))
        },
        |_| None,
    )
    .await;
    stage.app.spec.management_policy = crate::crd::ManagementPolicy::ObserveOnly;

    stage
        .run(None)
        .await
        .expect("an observing reconcile reports");

    let calls = stage.aws.calls();
    assert!(!calls.is_empty());
    let writes: Vec<String> = calls
        .iter()
        .filter(|c| {
            !["Describe", "Get", "List"]
                .iter()
                .any(|r| c.operation.starts_with(r))
        })
        .map(ToString::to_string)
        .collect();
    assert!(writes.is_empty(), "AWS writes: {writes:?}");
    let api_writes: Vec<String> = stage
        .api_calls()
        .into_iter()
        .filter(|c| c.method != "GET")
        .filter(|c| !c.path.ends_with("/events"))
        .map(|c| format!("{} {}", c.method, c.path))
        .collect();
    assert_eq!(
        api_writes,
        [format!(
            "PATCH /apis/movieapp.io/v1alpha1/namespaces/{NAMESPACE}/movieapps/{NAME}/status"
        )],
        "only the status is written"
    );
    let conditions = stage.written_conditions();
    let drifted = condition(&conditions, "Drifted");
    assert_eq!(
        (drifted.status.as_str(), drifted.reason.as_str()),
        ("True", "Drifted")
    );
    let id = AppId {
        namespace: NAMESPACE,
        name: NAME,
    };
    for missing in movieapp_model::TABLES
        .iter()
        .map(|t| {
            format!(
                "DynamoDB table {} does not exist",
                id.table_name(t.component)
            )
        })
        .chain([
            format!(
                "SQS queue {} does not exist",
                id.queue_name(component::DEAD_LETTER_QUEUE)
            ),
            format!(
                "Secret {NAMESPACE}/{NAME}-auth (the worker's token signing key) does not exist"
            ),
        ])
    {
        assert!(
            drifted.message.contains(&missing),
            "{missing}: {}",
            drifted.message
        );
    }
    let ready = condition(&conditions, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Drifted")
    );
    let reconciling = condition(&conditions, "Reconciling");
    assert_eq!(
        (reconciling.status.as_str(), reconciling.reason.as_str()),
        ("False", "Observing")
    );
    assert_eq!(condition(&conditions, "Stalled").status, "False");
    let warnings = stage.events("Drifted");
    assert_eq!(warnings.len(), 1, "{:?}", stage.api_calls());
    assert_eq!(warnings[0].0, "Warning");
    // Nothing waits on the operator: the next look is the resync.
    assert!(stage.ctx.memory.next_due(Wake::Resync).is_some());
    assert_eq!(stage.ctx.memory.next_due(Wake::Retry), None);
}

/// A resync is light only with AWS change events on and a complete pass
/// younger than `--full-verification-interval`; an event, a first or
/// failed pass, and events off read everything.
#[tokio::test]
async fn only_a_resync_after_a_recent_complete_pass_with_events_on_is_light() {
    use super::dereference::may_be_light;
    use std::time::SystemTime;
    let stage = Stage::new(unexpected, |_| None).await;
    let six_hours = Some(Duration::from_secs(6 * 3600));
    let recent = stage.remember_complete_pass(Instant::now() - Duration::from_secs(3600));
    assert!(may_be_light(Some(Reread::Resync), six_hours, Some(&recent)));
    // Events off: every resync is complete.
    assert!(!may_be_light(Some(Reread::Resync), None, Some(&recent)));
    // An AWS change event, or a reconcile that is no resync.
    let event = Reread::Change {
        at: SystemTime::now(),
    };
    assert!(!may_be_light(Some(event), six_hours, Some(&recent)));
    assert!(!may_be_light(None, six_hours, Some(&recent)));
    // Nothing remembered (a first pass, a failed one, a restart).
    assert!(!may_be_light(Some(Reread::Resync), six_hours, None));
    // The complete pass is due.
    let old = stage.remember_complete_pass(Instant::now() - Duration::from_secs(7 * 3600));
    assert!(!may_be_light(Some(Reread::Resync), six_hours, Some(&old)));
    // A light pass keeps the time of the complete pass it kept settings of.
    let light = Verified {
        at: Instant::now(),
        ..old.clone()
    };
    assert!(!may_be_light(Some(Reread::Resync), six_hours, Some(&light)));
}
