//! Prometheus metrics. Every label value comes from a closed set (results,
//! error categories, AWS services and operations, condition types and
//! reasons): never an object name or an error string, so cardinality is
//! bounded.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The outcomes of `movieapp_aws_events_total`, each served from the start.
pub const AWS_EVENT_OUTCOMES: [&str; 5] =
    ["matched", "coalesced", "malformed", "foreign", "unmanaged"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CategoryLabels {
    category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AwsRequestLabels {
    pub service: &'static str,
    pub operation: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct ConditionLabels {
    condition: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct ReasonLabels {
    condition: String,
    status: String,
    reason: String,
}

/// One condition of a MovieApp's status as the metrics count it: its type,
/// its status and its reason (a `Reason` variant, so a closed set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedCondition {
    pub type_: String,
    pub status: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClientLabels {
    client: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Every metric of the operator.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_errors: Family<CategoryLabels, Counter>,
    reconcile_duration: Histogram,
    aws_requests: Family<AwsRequestLabels, Counter>,
    events: Family<KindLabels, Counter>,
    leader: Gauge,
    remembered: Gauge,
    fenced_requests: Family<ClientLabels, Counter>,
    resources: Arc<ResourceConditions>,
    resyncs: Counter,
    resync_requests: Histogram,
    resync_lag: Histogram,
    resync_interval: Gauge<f64, AtomicU64>,
    resync_effective_interval: Gauge<f64, AtomicU64>,
    aws_events: Family<OutcomeLabels, Counter>,
    aws_event_latency: Histogram,
    aws_events_queue_up: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register(
            "movieapp_reconcile",
            "Reconciles of MovieApp objects, by result (success, error)",
            reconciles.clone(),
        );
        let reconcile_errors = Family::<CategoryLabels, Counter>::default();
        registry.register(
            "movieapp_reconcile_errors",
            "Failed reconciles, by error category",
            reconcile_errors.clone(),
        );
        let reconcile_duration =
            Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]);
        registry.register(
            "movieapp_reconcile_duration_seconds",
            "Duration of one reconcile of a MovieApp",
            reconcile_duration.clone(),
        );
        let aws_requests = Family::<AwsRequestLabels, Counter>::default();
        registry.register(
            "movieapp_aws_requests",
            "AWS API requests (each attempt, retries included), by service, operation and outcome",
            aws_requests.clone(),
        );
        let events = Family::<KindLabels, Counter>::default();
        registry.register(
            "movieapp_events",
            "Kubernetes Events published, by type (Normal, Warning)",
            events.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "movieapp_leader",
            "1 while this replica holds the leader Lease (or runs without leader election)",
            leader.clone(),
        );
        let remembered = Gauge::default();
        registry.register(
            "movieapp_remembered_objects",
            "MovieApps the operator keeps per-object state for (backoff, last AWS pass, applied children)",
            remembered.clone(),
        );
        let fenced_requests = Family::<ClientLabels, Counter>::default();
        // Both series exist from the start, at 0, so any increase shows.
        for client in ["aws", "kubernetes"] {
            fenced_requests
                .get_or_create(&ClientLabels { client })
                .inc_by(0);
        }
        registry.register(
            "movieapp_fenced_requests",
            "Requests refused because this replica no longer held a valid leader Lease, by client (aws, kubernetes)",
            fenced_requests.clone(),
        );
        registry.register(
            "movieapp_build",
            "Build information",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        let resources = Arc::new(ResourceConditions::default());
        registry.register_collector(Box::new(resources.clone()));
        let resyncs = Counter::default();
        registry.register(
            "movieapp_resyncs",
            "Resyncs that re-read a MovieApp's AWS resources",
            resyncs.clone(),
        );
        let resync_requests =
            Histogram::new([1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 50.0]);
        registry.register(
            "movieapp_resync_aws_requests",
            "AWS requests of one resync of one MovieApp",
            resync_requests.clone(),
        );
        let resync_lag = Histogram::new([0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0]);
        registry.register(
            "movieapp_resync_lag_seconds",
            "How long after it fell due a resync started (waiting for a free worker, changes and the AWS budget)",
            resync_lag.clone(),
        );
        let resync_interval = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "movieapp_resync_interval_seconds",
            "The configured resync interval (--resync-interval, or its default)",
            resync_interval.clone(),
        );
        let resync_effective_interval = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "movieapp_resync_effective_interval_seconds",
            "The resync interval kept: the configured one, or longer when the AWS budget cannot carry it",
            resync_effective_interval.clone(),
        );
        let aws_events = Family::<OutcomeLabels, Counter>::default();
        // Every outcome from the start, at 0: a documented series is served
        // before its first event (and rate() sees the first one).
        for outcome in AWS_EVENT_OUTCOMES {
            let _ = aws_events.get_or_create(&OutcomeLabels { outcome });
        }
        registry.register(
            "movieapp_aws_events",
            "AWS change events read from --events-queue-url, by outcome (matched, coalesced, malformed, foreign, unmanaged)",
            aws_events.clone(),
        );
        let aws_event_latency =
            Histogram::new([0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0]);
        registry.register(
            "movieapp_aws_event_to_reconcile_seconds",
            "From the AWS change an event reports to the start of the reconcile it caused",
            aws_event_latency.clone(),
        );
        let aws_events_queue_up = Gauge::default();
        registry.register(
            "movieapp_aws_events_queue_up",
            "1 while --events-queue-url can be read, 0 while reading it fails (drift is then found by the resync only)",
            aws_events_queue_up.clone(),
        );
        Self {
            registry: Arc::new(registry),
            reconciles,
            reconcile_errors,
            reconcile_duration,
            aws_requests,
            events,
            leader,
            remembered,
            fenced_requests,
            resources,
            resyncs,
            resync_requests,
            resync_lag,
            resync_interval,
            resync_effective_interval,
            aws_events,
            aws_event_latency,
            aws_events_queue_up,
        }
    }

    /// The registry as Prometheus text.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    pub fn reconciled(&self, duration: Duration) {
        self.reconciles
            .get_or_create(&ResultLabels { result: "success" })
            .inc();
        self.reconcile_duration.observe(duration.as_secs_f64());
    }

    pub fn reconcile_failed(&self, category: &'static str, duration: Duration) {
        self.reconciles
            .get_or_create(&ResultLabels { result: "error" })
            .inc();
        self.reconcile_errors
            .get_or_create(&CategoryLabels { category })
            .inc();
        self.reconcile_duration.observe(duration.as_secs_f64());
    }

    /// Counts one AWS request attempt. `operation` is an SDK operation name,
    /// a closed set defined by the operator's code.
    pub fn aws_request(&self, service: &'static str, operation: &str, outcome: &'static str) {
        self.aws_requests
            .get_or_create(&AwsRequestLabels {
                service,
                operation: operation.to_owned(),
                outcome,
            })
            .inc();
    }

    pub fn event_published(&self, kind: &'static str) {
        self.events.get_or_create(&KindLabels { kind }).inc();
    }

    /// Counts a request the fence refused; `client` is `aws` or `kubernetes`.
    pub fn fenced_request(&self, client: &'static str) {
        self.fenced_requests
            .get_or_create(&ClientLabels { client })
            .inc();
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Records the conditions of one MovieApp (by uid).
    pub fn set_conditions(&self, uid: String, conditions: Vec<ObservedCondition>) {
        self.resources.set(uid, conditions);
    }

    /// Forgets a deleted MovieApp (by uid).
    pub fn forget(&self, uid: &str) {
        self.resources.remove(uid);
    }

    /// A resync that read AWS with `requests` requests.
    pub fn resync_done(&self, requests: u32) {
        self.resyncs.inc();
        self.resync_requests.observe(f64::from(requests));
    }

    /// A resync handed to the controller `lag` after it fell due.
    pub fn resync_started(&self, lag: Duration) {
        self.resync_lag.observe(lag.as_secs_f64());
    }

    /// The configured and the effective resync interval.
    pub fn set_resync_interval(&self, configured: Duration, effective: Duration) {
        self.resync_interval.set(configured.as_secs_f64());
        self.resync_effective_interval.set(effective.as_secs_f64());
    }

    /// An AWS change event read from the events queue, by what came of it.
    pub fn aws_event(&self, outcome: &'static str) {
        debug_assert!(
            AWS_EVENT_OUTCOMES.contains(&outcome),
            "undeclared outcome {outcome}"
        );
        self.aws_events
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// A reconcile started `latency` after the AWS change that caused it.
    pub fn aws_event_reconciled(&self, latency: Duration) {
        self.aws_event_latency.observe(latency.as_secs_f64());
    }

    /// Whether the events queue can be read.
    pub fn set_aws_events_queue_up(&self, up: bool) {
        self.aws_events_queue_up.set(i64::from(up));
    }

    /// How many MovieApps the per-object memory holds.
    pub fn set_remembered(&self, objects: usize) {
        self.remembered
            .set(i64::try_from(objects).unwrap_or(i64::MAX));
    }
}

/// `movieapp_resources{condition,status}`: how many MovieApps have each
/// condition in each status, and `movieapp_condition_reasons{condition,status,reason}`
/// the same split by the condition's reason; computed at scrape time.
#[derive(Debug, Default)]
struct ResourceConditions {
    by_object: Mutex<HashMap<String, Vec<ObservedCondition>>>,
}

impl ResourceConditions {
    fn set(&self, key: String, conditions: Vec<ObservedCondition>) {
        self.by_object
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, conditions);
    }

    fn remove(&self, key: &str) {
        self.by_object
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

impl Collector for ResourceConditions {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Ordered maps, so the series come out in a stable order.
        let mut counts: BTreeMap<ConditionLabels, i64> = BTreeMap::new();
        let mut by_reason: BTreeMap<ReasonLabels, i64> = BTreeMap::new();
        {
            let by_object = self
                .by_object
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for c in by_object.values().flatten() {
                *counts
                    .entry(ConditionLabels {
                        condition: c.type_.clone(),
                        status: c.status.clone(),
                    })
                    .or_default() += 1;
                *by_reason
                    .entry(ReasonLabels {
                        condition: c.type_.clone(),
                        status: c.status.clone(),
                        reason: c.reason.clone(),
                    })
                    .or_default() += 1;
            }
        }
        encode_gauges(
            &mut encoder,
            "movieapp_resources",
            "MovieApp objects by condition type and status",
            counts,
        )?;
        encode_gauges(
            &mut encoder,
            "movieapp_condition_reasons",
            "MovieApp objects by condition type, status and reason",
            by_reason,
        )
    }
}

/// One gauge family computed at scrape time: a series per label set.
fn encode_gauges<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    counts: BTreeMap<L, i64>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for (labels, count) in counts {
        let family = metric.encode_family(&labels)?;
        ConstGauge::new(count).encode(family)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_bounded_labels() {
        let metrics = Metrics::new();
        metrics.reconciled(Duration::from_millis(20));
        metrics.reconcile_failed("aws", Duration::from_millis(5));
        metrics.aws_request("sqs", "GetQueueAttributes", "success");
        metrics.aws_request("sqs", "SetQueueAttributes", "throttled");
        let ready = |status: &str, reason: &str| ObservedCondition {
            type_: "Ready".into(),
            status: status.into(),
            reason: reason.into(),
        };
        metrics.set_conditions("a/x".into(), vec![ready("True", "Available")]);
        metrics.set_conditions("b/y".into(), vec![ready("True", "Available")]);
        metrics.set_conditions("c/z".into(), vec![ready("False", "SecretNotFound")]);
        metrics.set_leader(true);

        let text = metrics.render().expect("render");
        for expected in [
            "movieapp_reconcile_total{result=\"success\"} 1",
            "movieapp_reconcile_total{result=\"error\"} 1",
            "movieapp_reconcile_errors_total{category=\"aws\"} 1",
            "movieapp_reconcile_duration_seconds_count 2",
            "movieapp_aws_requests_total{service=\"sqs\",operation=\"GetQueueAttributes\",outcome=\"success\"} 1",
            "movieapp_resources{condition=\"Ready\",status=\"True\"} 2",
            "movieapp_resources{condition=\"Ready\",status=\"False\"} 1",
            "movieapp_condition_reasons{condition=\"Ready\",status=\"True\",reason=\"Available\"} 2",
            "movieapp_condition_reasons{condition=\"Ready\",status=\"False\",reason=\"SecretNotFound\"} 1",
            "movieapp_leader 1",
            "movieapp_build_info{version=",
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
        assert!(!text.contains("a/x"), "object names must never be labels");

        metrics.forget("c/z");
        let text = metrics.render().expect("render");
        assert!(!text.contains("status=\"False\""));
        assert!(
            !text.contains("SecretNotFound"),
            "a forgotten object's reasons go with it"
        );
    }
}
