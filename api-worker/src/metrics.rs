//! Prometheus metrics. Every label value comes from a bounded set: route
//! templates (never raw paths), method names, status codes, fixed outcomes.

use std::sync::Arc;
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TmdbLabels {
    endpoint: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    r#type: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AwsRequestLabels {
    service: &'static str,
    operation: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
    cache: Family<CacheLabels, Counter>,
    tmdb: Family<TmdbLabels, Counter>,
    jobs: Family<JobLabels, Counter>,
    aws_requests: Family<AwsRequestLabels, Counter>,
}

/// The process's metrics; cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics(Arc<Inner>);

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~4 s: cache hits land in the first buckets, TMDB calls later.
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("movieapp");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let cache = Family::<CacheLabels, Counter>::default();
        let tmdb = Family::<TmdbLabels, Counter>::default();
        let jobs = Family::<JobLabels, Counter>::default();
        let aws_requests = Family::<AwsRequestLabels, Counter>::default();
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "cache_lookups",
            "Movie cache lookups by kind and result",
            cache.clone(),
        );
        registry.register(
            "tmdb_requests",
            "Requests to TMDB by endpoint and outcome",
            tmdb.clone(),
        );
        registry.register("jobs", "Jobs handled by type and outcome", jobs.clone());
        registry.register(
            "aws_requests",
            "AWS requests (every attempt) by service, operation and outcome",
            aws_requests.clone(),
        );
        registry.register("api_worker_build_info", "Build information", build);
        Self(Arc::new(Inner {
            registry,
            requests,
            latency,
            cache,
            tmdb,
            jobs,
            aws_requests,
        }))
    }

    pub fn http_request(&self, method: &'static str, route: &str, status: u16, elapsed: Duration) {
        let route = route.to_owned();
        self.0
            .latency
            .get_or_create(&LatencyLabels {
                method,
                route: route.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.0
            .requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    /// `result` is `hit` (memory), `hit_dynamodb`, `miss`, `stale`,
    /// `coalesced` (answered by a concurrent request's lookup) or `limited`
    /// (the client's share of TMDB calls was used up).
    pub fn cache_lookup(&self, kind: &'static str, result: &'static str) {
        self.0
            .cache
            .get_or_create(&CacheLabels { kind, result })
            .inc();
    }

    /// `endpoint` and `outcome` come from the TMDB client's fixed sets.
    pub fn tmdb_request(&self, endpoint: &'static str, outcome: &'static str) {
        self.0
            .tmdb
            .get_or_create(&TmdbLabels { endpoint, outcome })
            .inc();
    }

    pub fn job(&self, r#type: &'static str, outcome: &'static str) {
        self.0
            .jobs
            .get_or_create(&JobLabels { r#type, outcome })
            .inc();
    }

    /// `service` and `outcome` come from [`CountAwsRequests`]'s fixed sets;
    /// `operation` is the SDK's operation name (a closed set per service).
    pub fn aws_request(&self, service: &'static str, operation: &str, outcome: &'static str) {
        self.0
            .aws_requests
            .get_or_create(&AwsRequestLabels {
                service,
                operation: operation.to_owned(),
                outcome,
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.0.registry)?;
        Ok(text)
    }
}

/// Counts every attempt of every AWS request in
/// `movieapp_aws_requests_total{service,operation,outcome}`: the figure to
/// watch for throttling and errors, and what the tests compare with the
/// calls declared in [`movieapp_model::iam`].
#[derive(Debug)]
pub struct CountAwsRequests(pub Metrics);

impl Intercept for CountAwsRequests {
    fn name(&self) -> &'static str {
        "movieapp-count-aws-requests"
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
        let outcome = match context.response().map(|r| r.status().as_u16()) {
            Some(200..=399) => "success",
            Some(429) => "throttled",
            Some(400..=499) => "client_error",
            Some(_) => "server_error",
            None => "network_error",
        };
        let service = match metadata.service().to_ascii_lowercase().as_str() {
            "dynamodb" => "dynamodb",
            "sqs" => "sqs",
            "sns" => "sns",
            _ => "other",
        };
        self.0.aws_request(service, metadata.name(), outcome);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_every_family_with_bounded_labels() {
        let metrics = Metrics::new();
        metrics.http_request("GET", "/api/v1/movies/{id}", 200, Duration::from_millis(2));
        metrics.cache_lookup("movie", "hit");
        metrics.tmdb_request("details", "ok");
        metrics.job("refresh-movie", "ok");
        let text = metrics.encode().expect("encodes");
        for expected in [
            r#"movieapp_http_requests_total{method="GET",route="/api/v1/movies/{id}",status="200"} 1"#,
            "movieapp_http_request_duration_seconds_bucket",
            r#"movieapp_cache_lookups_total{kind="movie",result="hit"} 1"#,
            r#"movieapp_tmdb_requests_total{endpoint="details",outcome="ok"} 1"#,
            r#"movieapp_jobs_total{type="refresh-movie",outcome="ok"} 1"#,
            "movieapp_api_worker_build_info",
        ] {
            assert!(text.contains(expected), "{expected} missing from\n{text}");
        }
    }
}
