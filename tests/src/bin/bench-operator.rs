//! Operator benchmark on the local environment: idle memory, time from apply
//! to Ready, many MovieApps at once (wall time, peak memory, CPU), and what a
//! steady resync costs (AWS reads, AWS writes, API-server writes).
//!
//! Runs the release `movieapp-operator` binary as its own process (so its
//! memory and CPU are its own), scoped to a fresh namespace. Prints a
//! Markdown section on stdout.
//!
//!   bench-operator <path to movieapp-operator> [--objects 200] [--sequential 20]

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures::future::join_all;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use movieapp_operator::crd::MovieApp;
use movieapp_tests::operator::{free_port, metric_sum};
use movieapp_tests::{LocalEnv, fixtures, unique_name};
use serde_json::json;

struct Process {
    child: std::process::Child,
    url: String,
}

impl Process {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (VmRSS, VmHWM) in MiB.
    fn memory(&self) -> Result<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let field = |name: &str| -> f64 {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1024.0
        };
        Ok((field("VmRSS:"), field("VmHWM:")))
    }

    /// User + system CPU seconds so far.
    fn cpu_seconds(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        let after_name = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // Fields 14 and 15 of /proc/pid/stat (utime, stime), counted after the name.
        let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
            + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        Ok(ticks / 100.0)
    }

    async fn metrics(&self) -> Result<String> {
        Ok(reqwest::get(format!("{}/metrics", self.url))
            .await?
            .text()
            .await?)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

async fn wait_all_ready(api: &Api<MovieApp>, count: usize, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let list = api.list(&ListParams::default()).await?;
        let done = list.items.iter().filter(|a| ready(a)).count();
        if done >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {done} of {count} MovieApps Ready after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// (all requests, mutating requests) in `namespace` after `offset` bytes of the audit log.
fn audit_requests(namespace: &str, offset: u64) -> Result<(usize, usize)> {
    let path = format!(
        "{}/audit.log",
        std::env::var("LOCALENV_DIR").context("LOCALENV_DIR")?
    );
    let log = std::fs::read(&path)?;
    let text = String::from_utf8_lossy(log.get(offset as usize..).unwrap_or_default()).into_owned();
    let entries: Vec<serde_json::Value> = text
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
    let path = format!(
        "{}/audit.log",
        std::env::var("LOCALENV_DIR").context("LOCALENV_DIR")?
    );
    Ok(std::fs::metadata(path)?.len())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let binary = args.get(1).context(
        "usage: bench-operator <movieapp-operator binary> [--objects N] [--sequential N]",
    )?;
    let flag = |name: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let objects = flag("--objects", 200);
    let sequential = flag("--sequential", 20);

    let env = LocalEnv::get();
    let client = env.kube().await?;
    let ns = unique_name("bench");
    fixtures::namespace(&client, &ns).await?;
    fixtures::tmdb_secret(&client, &ns, &env.tmdb_api_key).await?;
    let ecr = aws_sdk_ecr::Client::new(&env.aws().await);
    let repository = unique_name("bench-img");
    fixtures::push_image(&ecr, &repository, "1.0.0", 1).await?;

    let resync = 20;
    let port = free_port()?;
    let child = std::process::Command::new(binary)
        .args([
            "run",
            "--namespaces",
            &ns,
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
            "--resync-interval",
            &format!("{resync}s"),
            "--concurrency",
            "16",
            "--aws-max-rps",
            "1000",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {binary}"))?;
    let operator = Process {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if reqwest::get(format!("{}/readyz", operator.url))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (idle_rss, _) = operator.memory()?;

    let api: Api<MovieApp> = Api::namespaced(client.clone(), &ns);

    // Apply → Ready, one at a time.
    let calls_before = metric_sum(
        &operator.metrics().await?,
        "movieapp_aws_requests_total",
        &[],
    );
    let mut latencies = Vec::new();
    for i in 0..sequential {
        let name = format!("seq-{i}");
        let started = Instant::now();
        api.create(&PostParams::default(), &app(&name, &repository)?)
            .await?;
        loop {
            if ready(&api.get(&name).await?) {
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
    let calls_per_create = (metric_sum(
        &operator.metrics().await?,
        "movieapp_aws_requests_total",
        &[],
    ) - calls_before)
        / sequential.max(1) as f64;

    // Many at once.
    let cpu_before = operator.cpu_seconds()?;
    let started = Instant::now();
    let creates = (0..objects).map(|i| {
        let api = api.clone();
        let repository = repository.clone();
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
    wait_all_ready(&api, objects + sequential, Duration::from_secs(600)).await?;
    let converge = started.elapsed().as_secs_f64();
    let cpu = operator.cpu_seconds()? - cpu_before;
    let (loaded_rss, peak_rss) = operator.memory()?;

    // Steady state: one full resync window.
    tokio::time::sleep(Duration::from_secs(resync)).await;
    let total = objects + sequential;
    let text = operator.metrics().await?;
    let (reconciles0, calls0, writes0) = (
        metric_sum(&text, "movieapp_reconcile_total", &[]),
        metric_sum(&text, "movieapp_aws_requests_total", &[]),
        metric_sum(&text, "movieapp_aws_requests_total", &[])
            - ["Describe", "Get", "List", "BatchGet"]
                .iter()
                .map(|op| {
                    metric_sum(
                        &text,
                        "movieapp_aws_requests_total",
                        &[&format!("operation=\"{op}")],
                    )
                })
                .sum::<f64>(),
    );
    let offset = audit_len()?;
    tokio::time::sleep(Duration::from_secs(resync + 2)).await;
    let text = operator.metrics().await?;
    let reconciles = metric_sum(&text, "movieapp_reconcile_total", &[]) - reconciles0;
    let calls = metric_sum(&text, "movieapp_aws_requests_total", &[]) - calls0;
    let aws_writes = metric_sum(&text, "movieapp_aws_requests_total", &[])
        - ["Describe", "Get", "List", "BatchGet"]
            .iter()
            .map(|op| {
                metric_sum(
                    &text,
                    "movieapp_aws_requests_total",
                    &[&format!("operation=\"{op}")],
                )
            })
            .sum::<f64>()
        - writes0;
    let (api_requests, api_writes) = audit_requests(&ns, offset)?;

    // Clean up: deletion removes every AWS resource.
    for app in api.list(&ListParams::default()).await? {
        if let Some(name) = app.metadata.name {
            api.delete(&name, &DeleteParams::default()).await?;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while !api.list(&ListParams::default()).await?.items.is_empty() {
        ensure!(
            Instant::now() < deadline,
            "MovieApps not deleted after 600 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(operator);
    fixtures::delete_namespace(&client, &ns).await?;

    let per_app = if reconciles > 0.0 {
        calls / reconciles
    } else {
        0.0
    };
    println!("## movieapp-operator\n");
    println!(
        "Release build, one process, `--concurrency 16 --aws-max-rps 1000 --resync-interval {resync}s`, against moto and the local control plane.\n"
    );
    println!("| figure | measured | target |");
    println!("|---|---:|---:|");
    println!("| idle memory (RSS, no MovieApp) | {idle_rss:.1} MiB | ≤ 24 MiB |");
    println!(
        "| apply → Ready, one at a time ({sequential} objects) | p50 {:.2} s, p95 {:.2} s | |",
        percentile(&latencies, 50.0),
        percentile(&latencies, 95.0)
    );
    println!("| AWS requests per MovieApp, apply to Ready | {calls_per_create:.1} | |");
    println!("| {objects} MovieApps applied at once: all Ready | {converge:.1} s | |");
    println!("| … operator CPU for them | {cpu:.1} s | |");
    println!(
        "| … memory with {total} MovieApps (RSS / peak) | {loaded_rss:.1} / {peak_rss:.1} MiB | ≤ 64 MiB |"
    );
    println!("| steady resync: AWS requests per MovieApp | {per_app:.1} (reads) | reads only |");
    println!("| steady resync: AWS writes | {aws_writes:.0} | 0 |");
    println!(
        "| steady resync: API-server requests per MovieApp | {:.1} (reads) | |",
        api_requests as f64 / total as f64
    );
    println!(
        "| steady resync: API-server writes ({total} objects, {} s) | {api_writes} | 0 |",
        resync + 2
    );
    println!();
    Ok(())
}
