//! Operator benchmark on the local environment, in two phases per run:
//!
//! - one at a time, then steady resync: `--sequential` MovieApps applied one
//!   after the other (time from apply to Ready, AWS requests), then one full
//!   window of a short resync interval (AWS reads per reconcile, AWS writes,
//!   API-server requests and writes);
//! - many at once: `--objects` MovieApps created together under the default
//!   resync interval (idle memory before, wall time to all Ready, CPU, peak
//!   memory), then a quiet window in which nothing may be written.
//!
//! Each figure is the median over `--repeat` runs, each phase in a fresh
//! namespace with a fresh operator process; the range is shown beside it.
//!
//! Runs the release `movieapp-operator` binary as its own process (so its
//! memory and CPU are its own), scoped to the run's namespace. Prints a
//! Markdown section on stdout, with the published figures of the anchors
//! (ACK, Crossplane) beside ours.
//!
//! With `--reads`, only the AWS-reads phase instead ([`reads`]): requests
//! per MovieApp per steady resync with AWS change events on and off, and
//! drift-to-repair of a queue attribute by its event and by the resync.
//!
//!   bench-operator <path to movieapp-operator> [--objects 500] [--sequential 20] [--repeat 3] [--reads]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use futures::TryStreamExt;
use futures::future::join_all;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::watcher::{self, watcher};
use movieapp_operator::crd::MovieApp;
use movieapp_tests::fixtures;
use movieapp_tests::operator::{OperatorProcess, cpu_seconds, metric_sum, reconcile_requests};
use serde_json::json;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn app(name: &str, repository: &str) -> Result<MovieApp> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "movieapp.io/v1alpha1",
        "kind": "MovieApp",
        "metadata": { "name": name },
        "spec": { "worker": { "image": { "repository": repository, "tag": "1.0.0" }, "replicas": 1 } },
    }))?)
}

fn ready(app: &MovieApp) -> bool {
    app.status.as_ref().is_some_and(|s| {
        s.observed_generation == app.metadata.generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Waits until `count` MovieApps are Ready, following a watch (a list of
/// every object several times a second would load the API server the
/// operator is measured against).
async fn wait_all_ready(api: &Api<MovieApp>, count: usize, timeout: Duration) -> Result<()> {
    let mut ready_names = HashSet::new();
    let mut events = std::pin::pin!(watcher(api.clone(), watcher::Config::default()));
    let deadline = tokio::time::Instant::now() + timeout;
    while ready_names.len() < count {
        let event = tokio::time::timeout_at(deadline, events.try_next())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "only {} of {count} MovieApps Ready after {timeout:?}",
                    ready_names.len()
                )
            })?
            .context("watching MovieApps")?
            .context("the MovieApp watch ended")?;
        match event {
            watcher::Event::Apply(app) | watcher::Event::InitApply(app) => {
                let name = app.metadata.name.clone().unwrap_or_default();
                if ready(&app) {
                    ready_names.insert(name);
                } else {
                    ready_names.remove(&name);
                }
            }
            watcher::Event::Delete(app) => {
                ready_names.remove(&app.metadata.name.clone().unwrap_or_default());
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }
    Ok(())
}

/// The API server's audit log in the local environment.
fn audit_path() -> Result<String> {
    Ok(format!(
        "{}/audit.log",
        std::env::var("LOCALENV_DIR").context("LOCALENV_DIR")?
    ))
}

/// (all requests, mutating requests) in `namespace` after `offset` bytes of
/// the audit log; reads only what was appended after `offset`.
fn audit_requests(namespace: &str, offset: u64) -> Result<(usize, usize)> {
    use std::io::{Read, Seek, SeekFrom};
    let path = audit_path()?;
    let mut file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    file.seek(SeekFrom::Start(offset))?;
    let mut appended = Vec::new();
    file.read_to_end(&mut appended)?;
    let entries: Vec<serde_json::Value> = String::from_utf8_lossy(&appended)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["objectRef"]["namespace"].as_str() == Some(namespace))
        .collect();
    let writes = entries
        .iter()
        .filter(|e| {
            ["create", "update", "patch", "delete"]
                .contains(&e["verb"].as_str().unwrap_or_default())
        })
        .count();
    Ok((entries.len(), writes))
}

fn audit_len() -> Result<u64> {
    Ok(std::fs::metadata(audit_path()?)?.len())
}

/// The figures of one run.
#[derive(Debug, Clone, Copy)]
struct Run {
    idle_rss: f64,
    p50: f64,
    p95: f64,
    calls_per_create: f64,
    converge: f64,
    cpu: f64,
    /// CPU seconds of each of `COMPONENTS` while they converged.
    component_cpu: [f64; 5],
    loaded_rss: f64,
    peak_rss: f64,
    quiet_reconciles: f64,
    quiet_aws_requests: f64,
    quiet_aws_writes: f64,
    quiet_api_writes: f64,
    reads_per_resync: f64,
    aws_writes: f64,
    api_requests_per_app: f64,
    api_writes: f64,
}

/// Mutating AWS requests in a metrics text: everything but reads.
fn aws_writes(text: &str) -> f64 {
    let reads: f64 = ["Describe", "Get", "List", "BatchGet"]
        .iter()
        .map(|op| {
            metric_sum(
                text,
                "movieapp_aws_requests_total",
                &[&format!("operation=\"{op}")],
            )
        })
        .sum();
    metric_sum(text, "movieapp_aws_requests_total", &[]) - reads
}

/// The resync interval of the steady-resync phase: short, so that a window
/// of one interval holds a resync of every object.
const RESYNC_S: u64 = 20;
/// The resync interval of the many-at-once phase: the operator's default.
const MANY_RESYNC: &str = "5m";
/// The quiet window after the many-at-once phase converged.
const QUIET_S: u64 = 30;
/// Flags of every operator process of the bench besides the resync interval.
const FLAGS: [&str; 4] = ["--concurrency", "16", "--aws-max-rps", "1000"];

/// A namespace with the TMDB Secret and an ECR repository holding `1.0.0`.
struct Stage {
    client: kube::Client,
    ns: String,
    repository: String,
    api: Api<MovieApp>,
}

impl Stage {
    async fn new(prefix: &str) -> Result<Self> {
        let fixtures::Stage {
            client,
            ns,
            repository,
            api,
            ..
        } = fixtures::Stage::new(prefix).await?;
        Ok(Self {
            client,
            ns,
            repository,
            api,
        })
    }

    async fn operator(&self, binary: &std::path::Path, resync: &str) -> Result<OperatorProcess> {
        self.operator_with(binary, &["--resync-interval", resync])
            .await
    }

    /// The operator on this stage's namespace with `args`, [`FLAGS`] and
    /// the image's environment.
    async fn operator_with(
        &self,
        binary: &std::path::Path,
        args: &[&str],
    ) -> Result<OperatorProcess> {
        let args: Vec<&str> = args.iter().copied().chain(FLAGS.iter().copied()).collect();
        let env = image_env()?;
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        OperatorProcess::spawn(binary, &self.ns, &args, &env).await
    }

    /// Deletes every MovieApp (the operator deletes their AWS resources),
    /// then the operator and the namespace.
    async fn tear_down(self, operator: OperatorProcess) -> Result<()> {
        for app in self.api.list(&ListParams::default()).await? {
            if let Some(name) = app.metadata.name {
                self.api.delete(&name, &DeleteParams::default()).await?;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(900);
        while !self
            .api
            .list(&ListParams::default())
            .await?
            .items
            .is_empty()
        {
            ensure!(
                Instant::now() < deadline,
                "MovieApps in {} not deleted after 900 s",
                self.ns
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        operator.kill();
        fixtures::delete_namespace(&self.client, &self.ns).await
    }
}

/// The local environment's processes that serve the operator, by name.
const COMPONENTS: [&str; 5] = [
    "moto",
    "kube-apiserver",
    "etcd",
    "kube-controller-manager",
    "kwok",
];

/// CPU seconds so far of each of `COMPONENTS`.
fn component_cpu() -> Result<Vec<f64>> {
    let dir = std::env::var_os("LOCALENV_DIR").context("LOCALENV_DIR")?;
    COMPONENTS
        .iter()
        .map(|name| {
            let identity =
                movieapp_localenv::supervisor::recorded(std::path::Path::new(&dir), name)
                    .with_context(|| format!("{name} is not running"))?;
            cpu_seconds(identity.pid)
        })
        .collect()
}

/// (reconciles, AWS requests, AWS writes) so far.
async fn counters(operator: &OperatorProcess) -> Result<(f64, f64, f64)> {
    let text = operator.metrics().await?;
    Ok((
        metric_sum(&text, "movieapp_reconcile_total", &[]),
        metric_sum(&text, "movieapp_aws_requests_total", &[]),
        aws_writes(&text),
    ))
}

/// What the operator and the API server did in a window of `seconds`:
/// (reconciles, AWS requests, AWS writes, API requests, API writes).
async fn window(
    operator: &OperatorProcess,
    ns: &str,
    seconds: u64,
) -> Result<(f64, f64, f64, usize, usize)> {
    let before = counters(operator).await?;
    let offset = audit_len()?;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let after = counters(operator).await?;
    let (api_requests, api_writes) = audit_requests(ns, offset)?;
    Ok((
        after.0 - before.0,
        after.1 - before.1,
        after.2 - before.2,
        api_requests,
        api_writes,
    ))
}

/// One run: the steady-resync phase, then the many-at-once phase, each in
/// its own namespace with its own operator process.
async fn run_once(binary: &std::path::Path, objects: usize, sequential: usize) -> Result<Run> {
    // Apply → Ready one at a time, then a steady resync of those objects.
    let stage = Stage::new("bench-seq").await?;
    let operator = stage.operator(binary, &format!("{RESYNC_S}s")).await?;
    let calls_before = counters(&operator).await?.1;
    let mut latencies = Vec::new();
    for i in 0..sequential {
        let name = format!("seq-{i}");
        let started = Instant::now();
        stage
            .api
            .create(&PostParams::default(), &app(&name, &stage.repository)?)
            .await?;
        loop {
            if ready(&stage.api.get(&name).await?) {
                break;
            }
            ensure!(
                started.elapsed() < Duration::from_secs(60),
                "{name} not Ready after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        latencies.push(started.elapsed().as_secs_f64());
    }
    latencies.sort_by(f64::total_cmp);
    let calls_per_create = (counters(&operator).await?.1 - calls_before) / sequential.max(1) as f64;
    // Let the first resync after the last apply pass, then measure one full
    // resync window (plus a margin).
    tokio::time::sleep(Duration::from_secs(RESYNC_S)).await;
    let (reconciles, calls, aws_writes, api_requests, api_writes) =
        window(&operator, &stage.ns, RESYNC_S + 2).await?;
    stage.tear_down(operator).await?;

    // Many at once, with the default resync interval.
    let stage = Stage::new("bench-many").await?;
    let operator = stage.operator(binary, MANY_RESYNC).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (idle_rss, _) = operator.memory()?;
    let cpu_before = operator.cpu_seconds()?;
    let components_before = component_cpu()?;
    let started = Instant::now();
    let creates = (0..objects).map(|i| {
        let api = stage.api.clone();
        let repository = stage.repository.clone();
        async move {
            api.create(
                &PostParams::default(),
                &app(&format!("many-{i}"), &repository)?,
            )
            .await
            .map_err(anyhow::Error::from)
        }
    });
    for result in join_all(creates).await {
        result?;
    }
    wait_all_ready(&stage.api, objects, Duration::from_secs(900)).await?;
    let converge = started.elapsed().as_secs_f64();
    let cpu = operator.cpu_seconds()? - cpu_before;
    let mut components = [0.0; 5];
    for ((slot, after), before) in components
        .iter_mut()
        .zip(component_cpu()?)
        .zip(components_before)
    {
        *slot = after - before;
    }
    let (loaded_rss, peak_rss) = operator.memory()?;
    // Settled: nothing should happen until the next resync.
    let (quiet_reconciles, quiet_aws_requests, quiet_aws_writes, _, quiet_api_writes) =
        window(&operator, &stage.ns, QUIET_S).await?;
    stage.tear_down(operator).await?;

    Ok(Run {
        idle_rss,
        p50: percentile(&latencies, 50.0),
        p95: percentile(&latencies, 95.0),
        calls_per_create,
        converge,
        cpu,
        component_cpu: components,
        loaded_rss,
        peak_rss,
        quiet_reconciles,
        quiet_aws_requests,
        quiet_aws_writes,
        quiet_api_writes: quiet_api_writes as f64,
        reads_per_resync: if reconciles > 0.0 {
            calls / reconciles
        } else {
            0.0
        },
        aws_writes,
        api_requests_per_app: api_requests as f64 / sequential.max(1) as f64,
        api_writes: api_writes as f64,
    })
}

/// The environment the operator's image gives it (the `ENV` lines of the
/// Dockerfile's `movieapp-operator` stage, such as the allocator's arena
/// limit): the binary is measured as it runs in the image.
fn image_env() -> Result<Vec<(String, String)>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Dockerfile");
    let dockerfile = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    parse_image_env(&dockerfile, "movieapp-operator")
}

/// The `ENV KEY=VALUE` lines of stage `stage` (one pair per line, as the
/// Dockerfile writes them).
fn parse_image_env(dockerfile: &str, stage: &str) -> Result<Vec<(String, String)>> {
    let mut in_stage = false;
    let mut found_stage = false;
    let mut env = Vec::new();
    for line in dockerfile.lines().map(str::trim) {
        if let Some(from) = line.strip_prefix("FROM ") {
            in_stage = from
                .split_whitespace()
                .collect::<Vec<_>>()
                .ends_with(&["AS", stage]);
            found_stage |= in_stage;
        } else if in_stage && let Some(pair) = line.strip_prefix("ENV ") {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("the Dockerfile's ENV line {line:?} is not KEY=VALUE"))?;
            env.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    ensure!(found_stage, "the Dockerfile has no stage {stage}");
    Ok(env)
}

/// One figure of every run, sorted.
fn sorted(runs: &[Run], figure: impl Fn(&Run) -> f64) -> Vec<f64> {
    let mut values: Vec<f64> = runs.iter().map(figure).collect();
    values.sort_by(f64::total_cmp);
    values
}

/// "median (min–max)" of one figure over the runs.
fn summary(runs: &[Run], figure: impl Fn(&Run) -> f64, decimals: usize) -> String {
    let values = sorted(runs, figure);
    let median = median(&values);
    match (values.first(), values.last()) {
        (Some(min), Some(max)) if values.len() > 1 && min != max => {
            format!("{median:.decimals$} ({min:.decimals$}–{max:.decimals$})")
        }
        _ => format!("{median:.decimals$}"),
    }
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

/// A table row of a figure whose target is zero in every run.
fn zero_row(label: &str, runs: &[Run], figure: impl Fn(&Run) -> f64) {
    println!(
        "| {label} | {} | 0 | {} |",
        summary(runs, &figure, 0),
        verdict(runs.iter().all(|r| figure(r) == 0.0))
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let binary = args.get(1).context(
        "usage: bench-operator <movieapp-operator binary> [--objects N] [--sequential N] [--repeat N]",
    )?;
    let flag = |name: &str, default: usize| -> Result<usize> {
        match args.iter().position(|a| a == name) {
            None => Ok(default),
            Some(i) => {
                let value = args
                    .get(i + 1)
                    .with_context(|| format!("{name} needs a number"))?;
                value
                    .parse()
                    .with_context(|| format!("{name} {value:?} is not a whole number"))
            }
        }
    };
    let objects = flag("--objects", 500)?;
    let sequential = flag("--sequential", 20)?;
    let repeat = flag("--repeat", 3)?.max(1);
    let binary = std::path::Path::new(binary);
    if args.iter().any(|a| a == "--reads") {
        return reads(binary, sequential, repeat).await;
    }

    let mut runs = Vec::new();
    for i in 0..repeat {
        eprintln!("bench-operator: run {} of {repeat}", i + 1);
        let run = run_once(binary, objects, sequential).await?;
        eprintln!("bench-operator: {run:?}");
        runs.push(run);
    }
    let med = |figure: fn(&Run) -> f64| median(&sorted(&runs, figure));
    let (idle, converge, peak, writes) = (
        med(|r| r.idle_rss),
        med(|r| r.converge),
        med(|r| r.peak_rss),
        med(|r| r.aws_writes + r.api_writes + r.quiet_aws_writes + r.quiet_api_writes),
    );
    let flags = FLAGS.join(" ");

    println!("## movieapp-operator\n");
    println!(
        "`bench-operator`: release build against moto and the local control plane, one operator process per phase \
         (`{flags}`), scoped to the phase's own namespace. Each figure is the median of {repeat} runs \
         (fresh namespaces, fresh processes), the range in brackets.\n\n\
         - **one at a time** and **steady resync**: {sequential} MovieApps applied one after the other, \
         then one full window of `--resync-interval {RESYNC_S}s`, in which the operator re-reads every one of them \
         from AWS and compares it with its spec;\n\
         - **many at once**: {objects} MovieApps created together under the default `--resync-interval {MANY_RESYNC}`, \
         then {QUIET_S} s of quiet in which nothing changed and no resync was due.\n"
    );
    println!("| figure | measured | target | |");
    println!("|---|---:|---:|---|");
    println!(
        "| idle memory (RSS, no MovieApp) | {} MiB | ≤ 24 MiB | {} |",
        summary(&runs, |r| r.idle_rss, 1),
        verdict(idle <= 24.0)
    );
    println!(
        "| one at a time: apply → Ready, p50 ({sequential} objects) | {} s | | |",
        summary(&runs, |r| r.p50, 2)
    );
    println!(
        "| one at a time: apply → Ready, p95 | {} s | | |",
        summary(&runs, |r| r.p95, 2)
    );
    println!(
        "| one at a time: AWS requests per MovieApp, apply to Ready | {} | | |",
        summary(&runs, |r| r.calls_per_create, 1)
    );
    println!(
        "| steady resync: AWS requests per reconcile | {} (reads) | reads only | |",
        summary(&runs, |r| r.reads_per_resync, 1)
    );
    zero_row(
        &format!(
            "steady resync: AWS writes ({sequential} objects, {} s)",
            RESYNC_S + 2
        ),
        &runs,
        |r| r.aws_writes,
    );
    println!(
        "| steady resync: API-server requests per MovieApp | {} (reads) | | |",
        summary(&runs, |r| r.api_requests_per_app, 1)
    );
    zero_row(
        &format!(
            "steady resync: API-server writes ({sequential} objects, {} s)",
            RESYNC_S + 2
        ),
        &runs,
        |r| r.api_writes,
    );
    println!(
        "| many at once: {objects} MovieApps applied together, all Ready | {} s | ≤ 60 s | {} |",
        summary(&runs, |r| r.converge, 1),
        verdict(converge <= 60.0)
    );
    println!(
        "| … operator CPU for them | {} s | | |",
        summary(&runs, |r| r.cpu, 1)
    );
    for (i, name) in COMPONENTS.iter().enumerate() {
        println!(
            "| … CPU of {name} meanwhile | {} s | | |",
            summary(&runs, |r| r.component_cpu[i], 1)
        );
    }
    println!(
        "| … memory with {objects} MovieApps (RSS) | {} MiB | | |",
        summary(&runs, |r| r.loaded_rss, 1)
    );
    println!(
        "| … peak memory (VmHWM) | {} MiB | ≤ 64 MiB | {} |",
        summary(&runs, |r| r.peak_rss, 1),
        verdict(peak <= 64.0)
    );
    println!(
        "| … then {QUIET_S} s of quiet: reconciles, AWS requests | {}, {} | | |",
        summary(&runs, |r| r.quiet_reconciles, 0),
        summary(&runs, |r| r.quiet_aws_requests, 0)
    );
    println!(
        "| … then {QUIET_S} s of quiet: AWS writes, API-server writes | {}, {} | 0 | {} |",
        summary(&runs, |r| r.quiet_aws_writes, 0),
        summary(&runs, |r| r.quiet_api_writes, 0),
        verdict(
            runs.iter()
                .all(|r| r.quiet_aws_writes == 0.0 && r.quiet_api_writes == 0.0)
        )
    );
    println!();

    println!("### Beside the anchors\n");
    println!(
        "Published figures of the two usual ways to do this job, next to the medians above. \
         The anchors' figures are their defaults and their users' reports, not measured here.\n"
    );
    println!(
        "| | movieapp-operator (measured) | AWS Controllers for Kubernetes | Crossplane AWS providers |"
    );
    println!("|---|---|---|---|");
    println!(
        "| processes for DynamoDB + SQS + SNS + ECR | 1 | 4 controllers, one per service [1] | 1 monolithic or 4 family providers, plus Crossplane core [3] |"
    );
    println!(
        "| memory | {idle:.0} MiB idle, {peak:.0} MiB peak with {objects} MovieApps | 64 MiB requested, 128 MiB limit per controller: 256–512 MiB for four [1] | ≈ 600 MB idle, 1.4 GB reconciling 10 resources [3]; 1.1 GB average, 3 GB peak [4]; OOM-killed at 1.5 GB, 12 GB not enough for one provider [5] |"
    );
    println!(
        "| drift detected after | the resync interval, 5 min by default (Kubernetes children at once, by watch) | 10 h by default [2] | 10 min poll by default (upjet providers) [4] |"
    );
    println!(
        "| time to Ready | {:.2} s for one, {converge:.0} s for {objects} at once | | an XR ≈ 2 min after its resources were ready [6] |",
        med(|r| r.p50)
    );
    println!("| steady-state writes | {writes:.0} | | |");
    println!();
    println!(
        "[1] ACK Helm chart defaults, one controller per service: https://github.com/aws-controllers-k8s/community/blob/main/templates/helm/values.yaml.tpl (requests 64Mi/50m, limits 128Mi/100m)  "
    );
    println!(
        "[2] ACK drift recovery: https://aws-controllers-k8s.github.io/community/docs/user-docs/drift-recovery (\"once every 10 hours\"; `reconcile.defaultResyncPeriod: 36000`)  "
    );
    println!(
        "[3] Crossplane design doc \"smaller providers\": https://github.com/crossplane/crossplane/blob/master/design/design-doc-smaller-providers.md  "
    );
    println!(
        "[4] upjet sizing guide: https://github.com/crossplane/upjet/blob/main/docs/sizing-guide.md (provider-aws; `--poll` default 10m)  "
    );
    println!(
        "[5] provider-upjet-aws issue 801: https://github.com/crossplane-contrib/provider-upjet-aws/issues/801  "
    );
    println!(
        "[6] crossplane issue 5424: https://github.com/crossplane/crossplane/issues/5424 (managed resource ready in ≈ 40 s, its composite ≈ 2 min)"
    );
    println!();
    Ok(())
}

// ------------------------------------------------------------------ reads

/// The steady-resync interval of the reads phase (both with events on and off).
const READS_RESYNC_S: u64 = 20;
/// Drifts timed per run with events on, and with the resync.
const DRIFTS: usize = 10;

/// One run of the reads phase.
#[derive(Debug)]
struct Reads {
    /// AWS requests per MovieApp per steady resync, events on then off,
    /// and the breakdown (`service:Operation` → per resync) of each.
    per_resync: [f64; 2],
    breakdown: [Vec<(String, f64)>; 2],
    /// Seconds from a queue attribute's change to its repair: by its event,
    /// and by the resync (events off, `READS_RESYNC_S`).
    by_event: Vec<f64>,
    by_resync: Vec<f64>,
}

/// Requests per resync over one window of `seconds`: the total and by operation.
async fn resync_reads(
    operator: &OperatorProcess,
    seconds: u64,
) -> Result<(f64, Vec<(String, f64)>)> {
    let before = operator.metrics().await?;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let after = operator.metrics().await?;
    let resyncs = metric_sum(&after, "movieapp_resyncs_total", &[])
        - metric_sum(&before, "movieapp_resyncs_total", &[]);
    ensure!(resyncs > 0.0, "no resync in {seconds} s");
    let breakdown: Vec<(String, f64)> = reconcile_requests(&before, &after)
        .into_iter()
        .map(|(operation, requests)| (operation, requests / resyncs))
        .collect();
    Ok((breakdown.iter().map(|(_, v)| v).sum(), breakdown))
}

/// A queue's `VisibilityTimeout`.
async fn visibility(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String> {
    use aws_sdk_sqs::types::QueueAttributeName;
    Ok(sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::VisibilityTimeout)
        .send()
        .await?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::VisibilityTimeout).cloned())
        .unwrap_or_default())
}

/// Changes the jobs queue's `VisibilityTimeout` at `url` out of band, puts
/// the CloudTrail event AWS would deliver into `events` when given, and
/// returns the seconds until the operator restored `desired`.
async fn drift_to_repair(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    desired: &str,
    events: Option<&str>,
    timeout: Duration,
) -> Result<f64> {
    use aws_sdk_sqs::types::QueueAttributeName;
    sqs.set_queue_attributes()
        .queue_url(url)
        .attributes(QueueAttributeName::VisibilityTimeout, "7")
        .send()
        .await?;
    let changed = Instant::now();
    if let Some(queue) = events {
        sqs.send_message()
            .queue_url(queue)
            .message_body(fixtures::cloudtrail_event(
                "aws.sqs",
                "SetQueueAttributes",
                json!({ "queueUrl": url, "attributes": { "VisibilityTimeout": "7" } }),
            ))
            .send()
            .await?;
    }
    loop {
        if visibility(sqs, url).await? == desired {
            return Ok(changed.elapsed().as_secs_f64());
        }
        ensure!(
            changed.elapsed() < timeout,
            "{url} not repaired after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One run of the reads phase: `count` MovieApps, first under an operator
/// with AWS change events, then under one without.
async fn reads_once(binary: &std::path::Path, count: usize) -> Result<Reads> {
    let fixtures::Stage {
        client,
        ns,
        repository,
        api,
        aws,
        ..
    } = fixtures::Stage::new("bench-reads").await?;
    let stage = Stage {
        client,
        ns,
        repository,
        api,
    };
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let (events, _) = fixtures::sqs_queue(&sqs, &format!("{}-events", stage.ns)).await?;
    let resync = format!("{READS_RESYNC_S}s");
    let operator = stage
        .operator_with(
            binary,
            &["--resync-interval", &resync, "--events-queue-url", &events],
        )
        .await?;
    for i in 0..count {
        stage
            .api
            .create(
                &PostParams::default(),
                &app(&format!("reads-{i}"), &stage.repository)?,
            )
            .await?;
    }
    wait_all_ready(&stage.api, count, Duration::from_secs(300)).await?;
    let mut jobs = Vec::new();
    for app in stage.api.list(&ListParams::default()).await? {
        jobs.push(
            app.status
                .and_then(|s| s.queue)
                .context("status.queue")?
                .url,
        );
    }
    let desired = visibility(&sqs, &jobs[0]).await?;
    // Events on: the first (light) resync of each, then one whole interval.
    tokio::time::sleep(Duration::from_secs(READS_RESYNC_S)).await;
    let on = resync_reads(&operator, READS_RESYNC_S + 2).await?;
    let mut by_event = Vec::new();
    for url in jobs.iter().take(DRIFTS) {
        by_event.push(
            drift_to_repair(&sqs, url, &desired, Some(&events), Duration::from_secs(60)).await?,
        );
    }
    operator.kill();

    // Events off: every resync complete.
    let operator = stage.operator(binary, &resync).await?;
    tokio::time::sleep(Duration::from_secs(READS_RESYNC_S + 5)).await;
    let off = resync_reads(&operator, READS_RESYNC_S + 2).await?;
    // Drifts at random moments of the interval, all at once on different
    // MovieApps, each repaired only by its resync.
    let timeout = Duration::from_secs(3 * READS_RESYNC_S);
    let drifts = jobs.iter().take(DRIFTS).map(|url| {
        let sqs = sqs.clone();
        let desired = desired.clone();
        async move {
            let wait = fastrand::u64(0..READS_RESYNC_S * 1000);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            drift_to_repair(&sqs, url, &desired, None, timeout).await
        }
    });
    let by_resync = join_all(drifts)
        .await
        .into_iter()
        .collect::<Result<Vec<f64>>>()?;
    stage.tear_down(operator).await?;
    sqs.delete_queue().queue_url(&events).send().await?;
    Ok(Reads {
        per_resync: [on.0, off.0],
        breakdown: [on.1, off.1],
        by_event,
        by_resync,
    })
}

/// The reads phase on its own (`--reads`): prints its rows.
async fn reads(binary: &std::path::Path, count: usize, repeat: usize) -> Result<()> {
    let mut runs = Vec::new();
    for i in 0..repeat {
        eprintln!("bench-operator --reads: run {} of {repeat}", i + 1);
        let run = reads_once(binary, count).await?;
        eprintln!("bench-operator: {run:?}");
        runs.push(run);
    }
    let figure = |f: &dyn Fn(&Reads) -> f64, decimals: usize| {
        let mut values: Vec<f64> = runs.iter().map(f).collect();
        values.sort_by(f64::total_cmp);
        let median = median(&values);
        match (values.first(), values.last()) {
            (Some(min), Some(max)) if values.len() > 1 && min != max => {
                format!("{median:.decimals$} ({min:.decimals$}–{max:.decimals$})")
            }
            _ => format!("{median:.decimals$}"),
        }
    };
    let pooled = |f: &dyn Fn(&Reads) -> &Vec<f64>, p: f64| {
        let mut all: Vec<f64> = runs.iter().flat_map(|r| f(r).iter().copied()).collect();
        all.sort_by(f64::total_cmp);
        percentile(&all, p)
    };
    let on = median(&sorted_by(&runs, |r| r.per_resync[0]));
    let off = median(&sorted_by(&runs, |r| r.per_resync[1]));
    println!(
        "`bench-operator --reads --sequential {count} --repeat {repeat}`: {count} MovieApps, `--resync-interval {READS_RESYNC_S}s` \
         (`{}`), first with `--events-queue-url` then without; medians of {repeat} runs, range in brackets; \
         drift-to-repair pooled over {DRIFTS} drifts per run.\n",
        FLAGS.join(" ")
    );
    println!("| figure | measured | target | |\n|---|---:|---:|---|");
    println!(
        "| steady resync, events on (light): AWS requests per MovieApp | {} | ≤ 6 | {} |",
        figure(&|r| r.per_resync[0], 2),
        verdict(on <= 6.0)
    );
    println!(
        "| steady resync, events off (complete): AWS requests per MovieApp | {} | | |",
        figure(&|r| r.per_resync[1], 2)
    );
    // 1 h resync, a complete pass every 6 h (the defaults): 5 light, 1 complete.
    println!(
        "| AWS requests per MovieApp-hour, events on (1 h resync, complete pass every 6 h; computed) | {:.1} | | |",
        on * 5.0 / 6.0 + off / 6.0
    );
    println!(
        "| AWS requests per MovieApp-hour, events off (5 min resync; computed) | {:.0} | | |",
        off * 12.0
    );
    println!(
        "| drift-to-repair by its event, p50 / p95 | {:.2} / {:.2} s | | |",
        pooled(&|r| &r.by_event, 50.0),
        pooled(&|r| &r.by_event, 95.0)
    );
    let (p50, p95) = (
        pooled(&|r| &r.by_resync, 50.0),
        pooled(&|r| &r.by_resync, 95.0),
    );
    let scale = 300.0 / READS_RESYNC_S as f64;
    println!(
        "| drift-to-repair by the resync, p50 / p95, measured at {READS_RESYNC_S} s | {p50:.1} / {p95:.1} s | | |"
    );
    println!(
        "| … scaled to the 5 min resync (×{scale:.0}) | {:.0} / {:.0} s | | |",
        p50 * scale,
        p95 * scale
    );
    for (label, i) in [("events on", 0), ("events off", 1)] {
        let run = &runs[runs.len() / 2];
        let parts: Vec<String> = run.breakdown[i]
            .iter()
            .map(|(k, v)| format!("`{k}` {v:.2}"))
            .collect();
        println!(
            "\nPer steady resync, {label} (one run): {}.",
            parts.join(", ")
        );
    }
    Ok(())
}

fn sorted_by(runs: &[Reads], figure: impl Fn(&Reads) -> f64) -> Vec<f64> {
    let mut values: Vec<f64> = runs.iter().map(figure).collect();
    values.sort_by(f64::total_cmp);
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_env_is_the_operator_stage_s() {
        let dockerfile = "FROM rust AS builder
ENV CARGO=1
FROM runtime AS api-worker
ENV A=1
FROM runtime AS movieapp-operator
LABEL x=y
ENV MALLOC_ARENA_MAX=2
CMD [\"run\"]
";
        assert_eq!(
            parse_image_env(dockerfile, "movieapp-operator").expect("parsed"),
            vec![("MALLOC_ARENA_MAX".to_owned(), "2".to_owned())]
        );
        assert!(parse_image_env(dockerfile, "absent").is_err());
        let bad = "FROM runtime AS movieapp-operator\nENV MALLOC_ARENA_MAX 2\n";
        assert!(parse_image_env(bad, "movieapp-operator").is_err());
    }

    #[test]
    fn the_dockerfile_limits_the_operator_s_allocator_arenas() {
        let env = image_env().expect("the Dockerfile's operator stage");
        assert!(
            env.contains(&("MALLOC_ARENA_MAX".to_owned(), "2".to_owned())),
            "{env:?}"
        );
    }
}
