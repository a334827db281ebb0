//! AWS access: one set of SDK clients per region, each request counted by
//! service, operation and outcome, the whole operator held under one
//! request-rate bound, and every request refused once this replica's leader
//! Lease is no longer valid ([`Fence`]). Errors are classified once, here,
//! into what the reconciler does about them.

pub mod ecr;
pub mod tagging;
pub mod tags;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse, Metadata};
use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use tokio::time::Instant;

use crate::fence::{Fence, is_fenced};
use crate::metrics::Metrics;
use crate::reason::Reason;

/// The SDK clients of one region.
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub region: String,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub ecr: aws_sdk_ecr::Client,
    /// Resource Groups Tagging API: the ownership tags of a whole region
    /// ([`tagging`]).
    pub tagging: aws_sdk_resourcegroupstagging::Client,
    /// IAM is global; its client is only used with worker roles configured.
    pub iam: aws_sdk_iam::Client,
}

impl AwsClients {
    /// The clients of `region` from `config`, without request counting.
    pub fn from_config(region: &str, config: &SdkConfig) -> Self {
        Self::build(region, config, &[])
    }

    /// The clients of `region` from `config`, each with `interceptors`.
    fn build(region: &str, config: &SdkConfig, interceptors: &[SharedInterceptor]) -> Self {
        let config = config
            .to_builder()
            .region(Region::new(region.to_owned()))
            .build();
        macro_rules! client {
            ($sdk:ident) => {{
                let mut builder = $sdk::config::Builder::from(&config);
                for interceptor in interceptors {
                    builder.push_interceptor(interceptor.clone());
                }
                $sdk::Client::from_conf(builder.build())
            }};
        }
        Self {
            region: region.to_owned(),
            dynamodb: client!(aws_sdk_dynamodb),
            sqs: client!(aws_sdk_sqs),
            sns: client!(aws_sdk_sns),
            ecr: client!(aws_sdk_ecr),
            tagging: client!(aws_sdk_resourcegroupstagging),
            iam: client!(aws_sdk_iam),
        }
    }
}

/// Builds and caches [`AwsClients`] per region, all sharing one HTTP client,
/// one rate limit and one metrics interceptor.
#[derive(Debug)]
pub struct Aws {
    base: SdkConfig,
    /// On every client: request counting.
    interceptors: Vec<SharedInterceptor>,
    clients: Mutex<HashMap<String, Arc<AwsClients>>>,
}

impl Aws {
    /// Loads credentials and settings the SDK's usual way (environment, IRSA
    /// web identity, instance profile), with `endpoint` overriding every
    /// service's endpoint when set. Never fenced: for a process without
    /// leader election.
    pub async fn new(
        endpoint: Option<&str>,
        max_requests_per_second: u32,
        metrics: Metrics,
    ) -> Self {
        Self::fenced(
            endpoint,
            max_requests_per_second,
            metrics,
            Fence::unbounded(),
        )
        .await
    }

    /// As [`Aws::new`], with every attempt of every request checked against
    /// `fence` right before it is sent.
    pub async fn fenced(
        endpoint: Option<&str>,
        max_requests_per_second: u32,
        metrics: Metrics,
        fence: Fence,
    ) -> Self {
        let https = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .build_https();
        let http_client = RateLimitedHttpClient {
            inner: https,
            limiter: Arc::new(RateLimiter::new(max_requests_per_second)),
            fence,
            metrics: metrics.clone(),
        };
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(10))
                    .operation_timeout(Duration::from_secs(30))
                    .build(),
            );
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        Self::from_config(loader.load().await, metrics)
    }

    /// Clients made from `base` as it is, each request counted in `metrics`.
    pub fn from_config(base: SdkConfig, metrics: Metrics) -> Self {
        Self {
            base,
            interceptors: vec![SharedInterceptor::new(CountRequests { metrics })],
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The clients for `region`, created on first use.
    pub fn clients(&self, region: &str) -> Arc<AwsClients> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients
            .entry(region.to_owned())
            .or_insert_with(|| Arc::new(AwsClients::build(region, &self.base, &self.interceptors)))
            .clone()
    }
}

/// Sends one SDK request (`request` is its `send()`), an error classified
/// as `service`'s `operation`.
pub async fn send<O, E>(
    service: &'static str,
    operation: &'static str,
    request: impl Future<Output = Result<O, SdkError<E, HttpResponse>>>,
) -> Result<O, AwsError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    request
        .await
        .map_err(|e| AwsError::from_sdk(service, operation, e))
}

/// Collects every page of a listing the SDK has no paginator for: `page`
/// asks for the page after a token (none for the first) and returns its
/// items and the next token.
pub async fn all_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, AwsError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), AwsError>>,
{
    let mut items = Vec::new();
    let mut token = None;
    loop {
        let (batch, next) = page(token.take()).await?;
        items.extend(batch);
        match next {
            Some(next) if !next.is_empty() => token = Some(next),
            _ => return Ok(items),
        }
    }
}

// ------------------------------------------------------------------ errors

/// What the reconciler does about an AWS error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Throttling, 5xx, timeouts, resources busy: retry with backoff.
    Retryable,
    /// The resource does not exist.
    NotFound,
    /// Credentials or permissions: a human must act (`Stalled`).
    AccessDenied,
    /// AWS rejected the request's content: a human must act (`Stalled`).
    Invalid,
}

/// An AWS error with the context a human needs.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{service} {operation} failed: {}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
pub struct AwsError {
    pub service: &'static str,
    pub operation: &'static str,
    pub kind: ErrorKind,
    /// The AWS error code, e.g. `AccessDeniedException`.
    pub code: Option<String>,
    pub message: String,
}

impl AwsError {
    /// Classifies an SDK error of `service`'s `operation`.
    pub fn from_sdk<E>(
        service: &'static str,
        operation: &'static str,
        error: SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match &error {
            SdkError::ServiceError(service_error) => {
                let inner = service_error.err();
                let code = inner.code().map(str::to_owned);
                let message = inner
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| inner.to_string());
                let kind = classify(code.as_deref());
                Self {
                    service,
                    operation,
                    kind,
                    code,
                    message,
                }
            }
            SdkError::ConstructionFailure(_) => Self {
                service,
                operation,
                kind: ErrorKind::Invalid,
                code: None,
                message: format!("could not build the request: {}", error_chain(&error)),
            },
            _ => Self {
                service,
                operation,
                kind: ErrorKind::Retryable,
                code: None,
                message: error_chain(&error),
            },
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// A `Stalled` reason for errors a human must fix.
    pub fn stalled_reason(&self) -> Option<Reason> {
        match self.kind {
            ErrorKind::AccessDenied => Some(Reason::AccessDenied),
            ErrorKind::Invalid => Some(Reason::AwsValidationError),
            ErrorKind::Retryable | ErrorKind::NotFound => None,
        }
    }
}

/// Maps an AWS error code to what to do about it.
pub fn classify(code: Option<&str>) -> ErrorKind {
    let Some(code) = code else {
        return ErrorKind::Retryable;
    };
    let code = code.rsplit('.').next().unwrap_or(code);
    match code {
        "AccessDenied"
        | "AccessDeniedException"
        | "AuthorizationError"
        | "AuthorizationErrorException"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "MissingAuthenticationToken"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "KMSAccessDeniedException"
        | "KMSAccessDenied"
        | "OptInRequired" => ErrorKind::AccessDenied,
        "ResourceNotFoundException"
        | "NonExistentQueue"
        | "QueueDoesNotExist"
        | "NotFound"
        | "NotFoundException"
        // SNS ListTagsForResource/TagResource on a topic that does not exist.
        | "ResourceNotFound"
        | "RepositoryNotFoundException"
        | "ImageNotFoundException"
        | "TableNotFoundException"
        // IAM: a role or inline policy that does not exist.
        | "NoSuchEntity" => ErrorKind::NotFound,
        "ValidationException"
        | "ValidationError"
        | "InvalidParameterValue"
        | "InvalidParameterValueException"
        | "InvalidParameter"
        | "InvalidParameterException"
        | "InvalidAttributeName"
        | "InvalidAttributeValue"
        | "InvalidParameterCombination"
        | "SerializationException"
        | "UnsupportedOperation"
        | "InvalidAddress"
        | "InvalidSecurity"
        | "TagPolicy"
        | "TagPolicyException"
        | "MalformedPolicyDocument" => ErrorKind::Invalid,
        // Throttling, server errors, busy resources (a table being created,
        // a queue name deleted less than 60 s ago) and anything unknown: retry.
        _ => ErrorKind::Retryable,
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

// ------------------------------------------------------------------ metrics

tokio::task_local! {
    /// AWS request attempts made by the future [`counting`] runs.
    static REQUESTS: std::cell::Cell<u32>;
}

/// Runs `future` and counts the AWS request attempts it makes (retries
/// included): what one reconcile cost.
pub async fn counting<F: std::future::Future>(future: F) -> (F::Output, u32) {
    REQUESTS
        .scope(std::cell::Cell::new(0), async {
            let output = future.await;
            (output, REQUESTS.with(std::cell::Cell::get))
        })
        .await
}

/// Counts every attempt of every AWS request in
/// `movieapp_aws_requests_total{service,operation,outcome}`.
#[derive(Debug)]
struct CountRequests {
    metrics: Metrics,
}

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "movieapp-count-requests"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(metadata) = cfg.load::<Metadata>() else {
            return Ok(());
        };
        // Refused by the fence: never sent, so not an AWS request (the fence
        // counts it in movieapp_fenced_requests_total).
        if let Some(Err(error)) = context.output_or_error()
            && error
                .as_connector_error()
                .is_some_and(|error| is_fenced(error))
        {
            return Ok(());
        }
        let outcome = match context.response() {
            Some(response) => {
                let status = response.status().as_u16();
                let throttled = status == 429
                    || ["x-amzn-errortype", "x-amzn-query-error"]
                        .iter()
                        .any(|h| response.headers().get(*h).is_some_and(is_throttling_code))
                    || response
                        .body()
                        .bytes()
                        .is_some_and(|body| status >= 400 && contains_throttling_code(body));
                match status {
                    _ if throttled => "throttled",
                    200..=399 => "success",
                    400..=499 => "client_error",
                    _ => "server_error",
                }
            }
            None => match context.output_or_error() {
                Some(Err(error)) if error.is_timeout_error() => "timeout",
                _ => "network_error",
            },
        };
        self.metrics
            .aws_request(service_label(metadata.service()), metadata.name(), outcome);
        // Outside `counting` (the events consumer, tests) there is nothing to add to.
        let _ = REQUESTS.try_with(|requests| requests.set(requests.get().saturating_add(1)));
        Ok(())
    }
}

/// The service label: a closed set.
fn service_label(service: &str) -> &'static str {
    match service.to_ascii_lowercase().as_str() {
        "dynamodb" => "dynamodb",
        "sqs" => "sqs",
        "sns" => "sns",
        "ecr" => "ecr",
        "sts" => "sts",
        // The IAM prefix, as model::iam names the service.
        "resource groups tagging api" | "resourcegroupstaggingapi" | "tag" => "tag",
        "iam" => "iam",
        _ => "other",
    }
}

fn is_throttling_code(code: &str) -> bool {
    [
        "Throttl",
        "RequestLimitExceeded",
        "TooManyRequests",
        "ProvisionedThroughputExceeded",
        "SlowDown",
    ]
    .iter()
    .any(|marker| code.contains(marker))
}

fn contains_throttling_code(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&body[..body.len().min(2048)]);
    is_throttling_code(&text)
}

// ------------------------------------------------------------------ rate limit

/// A token bucket: at most `rate` requests per second on average, bursts of
/// up to `rate` requests.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    state: tokio::sync::Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second.max(1));
        Self {
            rate,
            state: tokio::sync::Mutex::new(Bucket {
                tokens: rate,
                updated: Instant::now(),
            }),
        }
    }

    /// Waits for one token.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut bucket = self.state.lock().await;
                let now = Instant::now();
                let elapsed = now.duration_since(bucket.updated).as_secs_f64();
                bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.rate);
                bucket.updated = now;
                if bucket.tokens >= 1.0 {
                    bucket.tokens -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// The SDK's HTTPS client behind a [`RateLimiter`] and a [`Fence`]: every
/// attempt of every request, retries included, waits for a token, then is
/// refused if the fence has closed meanwhile.
#[derive(Debug, Clone)]
struct RateLimitedHttpClient {
    inner: SharedHttpClient,
    limiter: Arc<RateLimiter>,
    fence: Fence,
    metrics: Metrics,
}

impl HttpClient for RateLimitedHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(RateLimitedConnector {
            inner: self.inner.http_connector(settings, components),
            limiter: self.limiter.clone(),
            fence: self.fence.clone(),
            metrics: self.metrics.clone(),
        })
    }
}

#[derive(Debug)]
struct RateLimitedConnector {
    inner: SharedHttpConnector,
    limiter: Arc<RateLimiter>,
    fence: Fence,
    metrics: Metrics,
}

impl HttpConnector for RateLimitedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let inner = self.inner.clone();
        let limiter = self.limiter.clone();
        let fence = self.fence.clone();
        let metrics = self.metrics.clone();
        HttpConnectorFuture::new(async move {
            limiter.acquire().await;
            // The last moment before the request leaves: after the wait for
            // a token, which can be long. A user error, so the SDK does not
            // retry it.
            if let Err(fenced) = fence.check() {
                metrics.fenced_request("aws");
                return Err(ConnectorError::user(Box::new(fenced)).never_connected());
            }
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(
            classify(Some("AccessDeniedException")),
            ErrorKind::AccessDenied
        );
        assert_eq!(
            classify(Some("AuthorizationError")),
            ErrorKind::AccessDenied
        );
        assert_eq!(
            classify(Some("AWS.SimpleQueueService.NonExistentQueue")),
            ErrorKind::NotFound
        );
        assert_eq!(
            classify(Some("ResourceNotFoundException")),
            ErrorKind::NotFound
        );
        assert_eq!(classify(Some("ResourceNotFound")), ErrorKind::NotFound);
        assert_eq!(classify(Some("ValidationException")), ErrorKind::Invalid);
        assert_eq!(classify(Some("ThrottlingException")), ErrorKind::Retryable);
        assert_eq!(
            classify(Some("ResourceInUseException")),
            ErrorKind::Retryable
        );
        assert_eq!(classify(Some("InternalServerError")), ErrorKind::Retryable);
        assert_eq!(classify(None), ErrorKind::Retryable);
    }

    #[test]
    fn throttling_codes() {
        assert!(is_throttling_code("ThrottlingException"));
        assert!(is_throttling_code(
            "AWS.SimpleQueueService.RequestThrottled;Sender"
        ));
        assert!(contains_throttling_code(
            b"<Error><Code>Throttling</Code></Error>"
        ));
        assert!(!is_throttling_code("ValidationException"));
    }

    /// An SQS client through the doorway's HTTP client and interceptor, to
    /// `endpoint`, with static credentials.
    fn sqs_through(fence: Fence, endpoint: &str, metrics: &Metrics) -> aws_sdk_sqs::Client {
        let https = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .build_https();
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                None,
                None,
                "test",
            ))
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .http_client(RateLimitedHttpClient {
                inner: https,
                limiter: Arc::new(RateLimiter::new(100)),
                fence,
                metrics: metrics.clone(),
            })
            .interceptor(CountRequests {
                metrics: metrics.clone(),
            })
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    #[tokio::test]
    async fn a_closed_fence_keeps_every_request_from_leaving() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.set_nonblocking(true).expect("non-blocking");
        let endpoint = format!("http://{}", listener.local_addr().expect("its address"));
        let accepted = || {
            std::iter::from_fn(|| listener.accept().ok())
                .take(10)
                .count()
        };

        // Open: the request reaches the endpoint (which closes it).
        let metrics = Metrics::new();
        let sent = sqs_through(Fence::unbounded(), &endpoint, &metrics)
            .list_queues()
            .send();
        let _ = tokio::time::timeout(Duration::from_secs(1), sent).await;
        assert!(accepted() > 0, "an open fence lets the request out");

        // Closed: refused before any connection, counted as fenced only.
        let metrics = Metrics::new();
        let fence = Fence::until(Instant::now() + Duration::from_secs(10));
        fence.close();
        let error = sqs_through(fence, &endpoint, &metrics)
            .list_queues()
            .send()
            .await
            .expect_err("refused");
        assert!(is_fenced(&error), "{}", error_chain(&error));
        let classified = AwsError::from_sdk("sqs", "ListQueues", error);
        assert!(classified.message.contains("leader Lease"), "{classified}");
        assert_eq!(accepted(), 0, "nothing left the process");
        let text = metrics.render().unwrap_or_default();
        assert!(
            text.contains("movieapp_fenced_requests_total{client=\"aws\"} 1"),
            "{text}"
        );
        assert!(
            !text.contains("movieapp_aws_requests_total{"),
            "a refused request is not an AWS request: {text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limiter_bounds_the_rate() {
        let limiter = RateLimiter::new(10);
        let start = Instant::now();
        for _ in 0..30 {
            limiter.acquire().await;
        }
        // 10 from the initial burst, then 20 more at 10 per second.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(1900), "{elapsed:?}");
        assert!(elapsed <= Duration::from_millis(2100), "{elapsed:?}");
    }
}
