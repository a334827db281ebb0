//! Flags of `movieapp-operator run`, each mirrored by an environment variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use crate::crd::REGION_PATTERN;
use crate::provision::role::WorkerRoles;

/// How the controller runs.
#[derive(Debug, Clone, Args)]
pub struct RunConfig {
    /// Namespaces to watch (comma-separated); all namespaces when empty.
    #[arg(long, env = "MOVIEAPP_WATCH_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,

    /// Endpoint for every AWS client (moto, LocalStack). Real AWS when unset.
    #[arg(long, env = "AWS_ENDPOINT_URL", value_parser = parse_endpoint)]
    pub aws_endpoint_url: Option<String>,

    /// TMDB base URL given to the workers (the public API when unset).
    #[arg(long, env = "MOVIEAPP_WORKER_TMDB_BASE_URL", value_parser = parse_endpoint)]
    pub worker_tmdb_base_url: Option<String>,

    /// AWS endpoint given to the workers when they reach it at another
    /// address than the operator does (a local environment's Pods reach
    /// moto through their node's bridge); --aws-endpoint-url when unset.
    #[arg(long, env = "MOVIEAPP_WORKER_AWS_ENDPOINT_URL", value_parser = parse_endpoint)]
    pub worker_aws_endpoint_url: Option<String>,

    /// Run the workers on dedicated nodes only: `KEY=VALUE` gives their
    /// Pods the node selector KEY=VALUE and a toleration of the taint
    /// KEY=VALUE:NoSchedule (the usual label and taint of a dedicated node
    /// pool). Any node when unset.
    #[arg(long, env = "MOVIEAPP_WORKER_DEDICATED_NODES", value_parser = parse_dedicated_nodes)]
    pub worker_dedicated_nodes: Option<DedicatedNodes>,

    /// Region of MovieApps that do not set `spec.region`.
    #[arg(long, env = "MOVIEAPP_DEFAULT_REGION", default_value = "us-east-1", value_parser = parse_region)]
    pub default_region: String,

    /// This cluster's id, tagged on every AWS resource (`movieapp.io/cluster`):
    /// resources tagged for another cluster are never adopted. Give each
    /// cluster sharing an AWS account its own (e.g. the EKS cluster's name).
    #[arg(long, env = "MOVIEAPP_CLUSTER_ID", default_value = crate::aws::tags::DEFAULT_CLUSTER, value_parser = parse_cluster_id)]
    pub cluster_id: String,

    /// The cluster's IAM OIDC provider
    /// (`arn:aws:iam::ACCOUNT:oidc-provider/oidc.eks.REGION.amazonaws.com/id/ID`).
    /// With --worker-role-boundary-arn, the operator makes each MovieApp's
    /// worker IAM role (IRSA) itself; without both, it makes none and a
    /// pre-made role may be given in spec.worker.serviceAccount.annotations.
    #[arg(
        long,
        env = "MOVIEAPP_WORKER_ROLE_OIDC_PROVIDER_ARN",
        requires = "worker_role_boundary_arn"
    )]
    pub worker_role_oidc_provider_arn: Option<String>,

    /// The permissions boundary every worker role the operator makes
    /// carries (`arn:aws:iam::ACCOUNT:policy/NAME`, Terraform's
    /// `<name>-worker-boundary`).
    #[arg(
        long,
        env = "MOVIEAPP_WORKER_ROLE_BOUNDARY_ARN",
        requires = "worker_role_oidc_provider_arn"
    )]
    pub worker_role_boundary_arn: Option<String>,

    /// Tests only (hidden): the worker roles' inline policy with every
    /// statement on "*" and no condition
    /// ([`crate::policies::actions_only`]), for the enforced-IAM suite,
    /// whose moto checks actions only. The boundary and the trust policy are
    /// unchanged. Never set it against AWS: each worker role could then use
    /// every MovieApp's resources its boundary allows.
    #[arg(long, hide = true, requires = "worker_role_oidc_provider_arn")]
    pub worker_role_actions_only: bool,

    /// How often every MovieApp is re-read from AWS and repaired (e.g. 5m,
    /// 30s); by default 5m, or 1h with --events-queue-url.
    #[arg(long = "resync-interval", env = "MOVIEAPP_RESYNC_INTERVAL", value_parser = parse_duration)]
    pub resync_interval_flag: Option<Duration>,

    /// SQS queue of AWS change events (CloudTrail via EventBridge): a change
    /// to a MovieApp's AWS resources reconciles it at once.
    #[arg(long, env = "MOVIEAPP_EVENTS_QUEUE_URL", value_parser = parse_endpoint)]
    pub events_queue_url: Option<String>,

    /// With --events-queue-url: how often a resync reads everything (point-in-time
    /// recovery, time to live, the topic's subscriptions, the tables' settings)
    /// rather than what AWS change events may have missed only (e.g. 6h, 24h).
    /// Without events every resync reads everything.
    #[arg(long, env = "MOVIEAPP_FULL_VERIFICATION_INTERVAL", default_value = "6h", value_parser = parse_duration)]
    pub full_verification_interval: Duration,

    /// MovieApps reconciled at the same time.
    #[arg(long, env = "MOVIEAPP_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,

    /// Upper bound on AWS requests per second, across all MovieApps.
    #[arg(long, env = "MOVIEAPP_AWS_MAX_RPS", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub aws_max_rps: u32,

    /// Run only while holding the leader Lease (for more than one replica).
    #[arg(long, env = "MOVIEAPP_LEADER_ELECT", default_value_t = false)]
    pub leader_elect: bool,

    /// Namespace of the leader Lease; defaults to the Pod's namespace.
    #[arg(long, env = "MOVIEAPP_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,

    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, env = "MOVIEAPP_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Log format.
    #[arg(long, env = "MOVIEAPP_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// The resync interval without AWS change events.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(5 * 60);
/// The resync interval with AWS change events: a safety net only.
pub const DEFAULT_RESYNC_WITH_EVENTS: Duration = Duration::from_secs(60 * 60);

impl RunConfig {
    /// The resync interval: as set, else the default for whether AWS
    /// change events are consumed.
    pub fn resync_interval(&self) -> Duration {
        self.resync_interval_flag
            .unwrap_or(if self.events_queue_url.is_some() {
                DEFAULT_RESYNC_WITH_EVENTS
            } else {
                DEFAULT_RESYNC
            })
    }

    /// How long a complete AWS pass spares the resyncs after it from
    /// reading what only the operator writes: `None` without AWS change
    /// events (nothing would say it changed, so every resync is complete).
    pub fn full_verification(&self) -> Option<Duration> {
        self.events_queue_url
            .is_some()
            .then_some(self.full_verification_interval)
    }

    /// How old the region's ownership tag snapshot may be when a resync
    /// uses it: half the resync interval, so a tag stripped outside the
    /// operator is found within 1.5 intervals at worst (at once with AWS
    /// change events), for at most two refreshes per interval of one
    /// `GetResources` page per 16 MovieApps (6 resources each, 100 to a page).
    pub fn tag_snapshot_max_age(&self) -> Duration {
        self.resync_interval() / 2
    }

    /// The worker roles the operator makes; `Ok(None)` when it makes none.
    /// Malformed ARNs are refused (at start, by [`RunConfig::check`]).
    pub fn worker_roles(&self) -> Result<Option<WorkerRoles>, String> {
        match (
            &self.worker_role_oidc_provider_arn,
            &self.worker_role_boundary_arn,
        ) {
            (Some(oidc), Some(boundary)) => WorkerRoles::new(oidc, boundary).map(|roles| {
                Some(WorkerRoles {
                    actions_only: self.worker_role_actions_only,
                    ..roles
                })
            }),
            (None, None) => Ok(None),
            _ => Err(
                "--worker-role-oidc-provider-arn and --worker-role-boundary-arn go together"
                    .to_owned(),
            ),
        }
    }

    /// What the flags cannot check one by one: refused before anything starts.
    pub fn check(&self) -> Result<(), String> {
        self.worker_roles().map(|_| ())
    }

    /// The region of the events queue: from its URL
    /// (`https://sqs.<region>.amazonaws.com/...`), else the default region.
    pub fn events_region(&self) -> String {
        self.events_queue_url
            .as_deref()
            .and_then(|url| url.split("://").nth(1))
            .and_then(|rest| rest.split(['/', ':']).next())
            .and_then(|host| host.strip_prefix("sqs."))
            .and_then(|host| host.split('.').next())
            .filter(|region| region_is_valid(region))
            .map_or_else(|| self.default_region.clone(), str::to_owned)
    }
}

/// The label (and taint) of the nodes the workers run on: `--worker-dedicated-nodes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedicatedNodes {
    pub key: String,
    pub value: String,
}

/// `KEY=VALUE`, a Kubernetes label: KEY an optional DNS-subdomain prefix
/// and `/`, then a name of 1–63 letters, digits, `-`, `_` or `.` starting and
/// ending with a letter or digit; VALUE the same without a prefix, or empty.
pub(crate) fn parse_dedicated_nodes(input: &str) -> Result<DedicatedNodes, String> {
    fn name(part: &str, empty_ok: bool) -> bool {
        (empty_ok && part.is_empty())
            || (part.len() <= 63
                && part.starts_with(|c: char| c.is_ascii_alphanumeric())
                && part.ends_with(|c: char| c.is_ascii_alphanumeric())
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
    }
    fn prefix(part: &str) -> bool {
        part.len() <= 253
            && part.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && label.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
    }
    let refuse = || {
        format!(
            "'{input}' is not KEY=VALUE with a Kubernetes label key and value (e.g. pool=workers)"
        )
    };
    let (key, value) = input.split_once('=').ok_or_else(refuse)?;
    let key_ok = match key.rsplit_once('/') {
        Some((p, n)) => prefix(p) && name(n, false),
        None => name(key, false),
    };
    if !key_ok || !name(value, true) {
        return Err(refuse());
    }
    Ok(DedicatedNodes {
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Parses `90s`, `5m`, `1h`, or plain seconds (the parser the api-worker
/// uses too), with a minimum of one second.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let duration = movieapp_model::duration::parse(input)?;
    if duration < Duration::from_secs(1) {
        return Err(format!(
            "'{}' is too short: the minimum is 1s",
            input.trim()
        ));
    }
    Ok(duration)
}

/// A cluster id: 1–128 characters that every AWS service accepts in a tag
/// value, starting with a letter or digit.
pub(crate) fn parse_cluster_id(input: &str) -> Result<String, String> {
    let valid = (1..=128).contains(&input.len())
        && input.starts_with(|c: char| c.is_ascii_alphanumeric())
        && input
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/=+@-".contains(&b));
    if valid {
        Ok(input.to_owned())
    } else {
        Err(format!(
            "'{input}' is not a cluster id: 1-128 of A-Z a-z 0-9 . _ : / = + @ -, starting with a letter or digit"
        ))
    }
}

fn parse_region(input: &str) -> Result<String, String> {
    if region_is_valid(input) {
        Ok(input.to_owned())
    } else {
        Err(format!(
            "'{input}' is not an AWS region name such as us-east-1"
        ))
    }
}

/// Whether `input` matches [`REGION_PATTERN`] (checked without a regex engine).
pub fn region_is_valid(input: &str) -> bool {
    // ^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$
    let _ = REGION_PATTERN;
    let parts: Vec<&str> = input.split('-').collect();
    let lower = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase());
    let number = |s: &str| (1..=2).contains(&s.len()) && s.chars().all(|c| c.is_ascii_digit());
    match parts.as_slice() {
        [country, area, n] => country.len() == 2 && lower(country) && lower(area) && number(n),
        [country, partition, area, n] => {
            country.len() == 2
                && lower(country)
                && (*partition == "gov"
                    || partition.strip_prefix("iso").is_some_and(|rest| {
                        rest.len() <= 1 && rest.chars().all(|c| c.is_ascii_lowercase())
                    }))
                && lower(area)
                && number(n)
        }
        _ => false,
    }
}

fn parse_endpoint(input: &str) -> Result<String, String> {
    if input.starts_with("http://") || input.starts_with("https://") {
        Ok(input.trim_end_matches('/').to_owned())
    } else {
        Err(format!("'{input}' is not an http(s) URL"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedicated_nodes_are_a_label_key_and_value() {
        for (input, key, value) in [
            (
                "movieapp.io/real-node=true",
                "movieapp.io/real-node",
                "true",
            ),
            ("pool=workers", "pool", "workers"),
            ("pool=", "pool", ""),
            ("a.b-c/x_y.z=V-1", "a.b-c/x_y.z", "V-1"),
        ] {
            assert_eq!(
                parse_dedicated_nodes(input),
                Ok(DedicatedNodes {
                    key: key.to_owned(),
                    value: value.to_owned()
                }),
                "{input}"
            );
        }
        let long = format!("pool={}", "v".repeat(64));
        for bad in [
            "",
            "pool",
            "=true",
            "pool=a b",
            "-pool=x",
            "Bad.Prefix/pool=x",
            "/pool=x",
            "pool=x=y",
            "pool=-x",
            long.as_str(),
        ] {
            assert!(parse_dedicated_nodes(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("500ms").is_err(), "below the minimum");
        assert!(parse_duration("5 fortnights").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn regions() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "ap-southeast-4",
            "us-isob-east-1",
        ] {
            assert!(region_is_valid(ok), "{ok}");
        }
        for bad in [
            "",
            "us-east",
            "US-EAST-1",
            "useast1",
            "us-east-123",
            "u-east-1",
            "us-foo-east-1",
        ] {
            assert!(!region_is_valid(bad), "{bad}");
        }
    }

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunConfig,
    }

    fn run(args: &[&str]) -> Result<RunConfig, clap::Error> {
        use clap::Parser as _;
        Cli::try_parse_from(std::iter::once("movieapp-operator").chain(args.iter().copied()))
            .map(|cli| cli.run)
    }

    #[test]
    fn the_resync_default_follows_the_events_queue() {
        let queue = "https://sqs.eu-west-3.amazonaws.com/123456789012/movieapp-events";
        let plain = run(&[]).expect("no flags");
        assert_eq!(plain.resync_interval(), DEFAULT_RESYNC);
        assert_eq!(plain.events_region(), "us-east-1");
        let events = run(&["--events-queue-url", queue]).expect("events");
        assert_eq!(events.resync_interval(), DEFAULT_RESYNC_WITH_EVENTS);
        assert_eq!(events.events_region(), "eu-west-3");
        let both = run(&["--events-queue-url", queue, "--resync-interval", "10m"]).expect("both");
        assert_eq!(both.resync_interval(), Duration::from_secs(600));
        // Through moto, the queue's region is the default one.
        let local =
            run(&["--events-queue-url", "http://127.0.0.1:5000/123456789012/q"]).expect("local");
        assert_eq!(local.events_region(), "us-east-1");
        for bad in ["sqs.amazonaws.com/q", "", "ftp://x"] {
            let error = run(&["--events-queue-url", bad]).expect_err(bad);
            assert!(error.to_string().contains("http(s) URL"), "{error}");
        }
    }

    #[test]
    fn full_verification_only_with_events() {
        let queue = "https://sqs.eu-west-3.amazonaws.com/123456789012/movieapp-events";
        assert_eq!(run(&[]).expect("plain").full_verification(), None);
        let events = run(&["--events-queue-url", queue]).expect("events");
        assert_eq!(
            events.full_verification(),
            Some(Duration::from_secs(6 * 3600))
        );
        let set = run(&[
            "--events-queue-url",
            queue,
            "--full-verification-interval",
            "24h",
        ])
        .expect("set");
        assert_eq!(set.full_verification(), Some(Duration::from_secs(86400)));
        assert!(run(&["--full-verification-interval", "soon"]).is_err());
        assert_eq!(events.tag_snapshot_max_age(), Duration::from_secs(1800));
    }

    #[test]
    fn worker_roles_need_both_arns_and_refuse_bad_ones_at_start() {
        let oidc =
            "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC";
        let boundary = "arn:aws:iam::123456789012:policy/movieapp-worker-boundary";
        let off = run(&[]).expect("no flags");
        assert_eq!(off.worker_roles(), Ok(None));
        assert!(off.check().is_ok());
        let on = run(&[
            "--worker-role-oidc-provider-arn",
            oidc,
            "--worker-role-boundary-arn",
            boundary,
        ])
        .expect("both");
        let roles = on.worker_roles().expect("valid").expect("on");
        assert_eq!(roles.issuer(), "oidc.eks.us-east-1.amazonaws.com/id/ABC");
        assert_eq!(roles.boundary_arn, boundary);
        assert!(!roles.actions_only);
        // The tests' actions-only policies: only with the worker roles on.
        let tests = run(&[
            "--worker-role-oidc-provider-arn",
            oidc,
            "--worker-role-boundary-arn",
            boundary,
            "--worker-role-actions-only",
        ])
        .expect("tests");
        assert!(
            tests
                .worker_roles()
                .expect("valid")
                .expect("on")
                .actions_only
        );
        assert!(run(&["--worker-role-actions-only"]).is_err());
        // One without the other is refused by the parser.
        for args in [
            ["--worker-role-oidc-provider-arn", oidc],
            ["--worker-role-boundary-arn", boundary],
        ] {
            let error = run(&args).expect_err("alone");
            assert!(error.to_string().contains("--worker-role"), "{error}");
        }
        // Malformed: refused at start, naming the flag.
        let bad = run(&[
            "--worker-role-oidc-provider-arn",
            "oidc.eks.us-east-1.amazonaws.com/id/ABC",
            "--worker-role-boundary-arn",
            boundary,
        ])
        .expect("parsed");
        let error = bad.check().expect_err("malformed");
        assert!(error.contains("--worker-role-oidc-provider-arn"), "{error}");
    }

    #[test]
    fn the_cluster_id_is_a_tag_value() {
        assert_eq!(run(&[]).expect("no flags").cluster_id, "default");
        for ok in [
            "prod-eu",
            "arn:aws:eks:eu-west-1:123456789012:cluster/prod",
            "a",
        ] {
            assert_eq!(run(&["--cluster-id", ok]).expect(ok).cluster_id, ok);
        }
        let long = "c".repeat(129);
        for bad in ["", "-east", "east west", "prod\"", "é", long.as_str()] {
            let flag = format!("--cluster-id={bad}");
            let error = run(&[&flag]).expect_err(bad);
            assert!(error.to_string().contains("is not a cluster id"), "{error}");
        }
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("http://127.0.0.1:5000/"),
            Ok("http://127.0.0.1:5000".to_owned())
        );
        assert!(parse_endpoint("127.0.0.1:5000").is_err());
    }
}
