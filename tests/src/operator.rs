//! Runs `movieapp-operator` in-process against the local environment, scoped
//! to one namespace so tests can run side by side.

use std::net::TcpListener;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use movieapp_operator::config::RunConfig;
use tokio::sync::oneshot;

use crate::eventually;

#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    run: RunConfig,
}

/// A running operator: `controller::run_until` on a thread and runtime of
/// its own, as `movieapp-operator run` runs it on the main thread of its
/// process (8 MiB of stack), not as a task on the test's thread (2 MiB).
#[derive(Debug)]
pub struct Operator {
    /// Its result, once it has ended.
    done: Option<oneshot::Receiver<Result<()>>>,
    stop: Option<oneshot::Sender<()>>,
    /// Ends it at once, without a graceful shutdown.
    abort: Option<oneshot::Sender<()>>,
    /// Base URL of its /metrics, /healthz, /readyz server.
    pub url: String,
}

/// The main thread's stack on Linux, which `movieapp-operator run` has.
const STACK: usize = 8 << 20;

impl Operator {
    /// Starts an operator watching `namespace` with extra `run` flags, and
    /// waits until it serves `/readyz`.
    pub async fn start(namespace: &str, extra: &[&str]) -> Result<Self> {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let mut argv = vec![
            "movieapp-operator",
            "--namespaces",
            namespace,
            "--metrics-addr",
            &addr,
        ];
        if !extra.contains(&"--resync-interval") {
            argv.extend(["--resync-interval", "10s"]);
        }
        argv.extend_from_slice(extra);
        let config = Args::try_parse_from(argv).context("operator flags")?.run;
        let (stop, stopped) = oneshot::channel::<()>();
        let (abort, aborted) = oneshot::channel::<()>();
        let (report, done) = oneshot::channel::<Result<()>>();
        std::thread::Builder::new()
            .name("operator".to_owned())
            .stack_size(STACK)
            .spawn(move || {
                let result = tokio::runtime::Builder::new_multi_thread()
                    .thread_stack_size(movieapp_operator::controller::WORKER_STACK)
                    .enable_all()
                    .build()
                    .context("the operator's runtime")
                    .and_then(|runtime| {
                        let result = runtime.block_on(async move {
                            let run =
                                movieapp_operator::controller::run_until(config, async move {
                                    let _ = stopped.await;
                                });
                            tokio::select! {
                                result = run => result,
                                // Like SIGKILL: what runs is dropped where it stands.
                                _ = aborted => Ok(()),
                            }
                        });
                        runtime.shutdown_background();
                        result
                    });
                let _ = report.send(result);
            })
            .context("starting the operator's thread")?;
        let url = format!("http://{addr}");
        let operator = Self {
            done: Some(done),
            stop: Some(stop),
            abort: Some(abort),
            url,
        };
        let http = reqwest::Client::new();
        let readyz = format!("{}/readyz", operator.url);
        eventually(
            "the operator to serve /readyz",
            Duration::from_secs(30),
            || {
                let http = http.clone();
                let readyz = readyz.clone();
                async move {
                    Ok(http
                        .get(&readyz)
                        .send()
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                        .map(|_| ()))
                }
            },
        )
        .await?;
        Ok(operator)
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> Result<String> {
        Ok(reqwest::get(format!("{}/metrics", self.url))
            .await?
            .text()
            .await?)
    }

    /// Stops gracefully (SIGTERM-like) and waits for the process to finish.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let done = self
            .done
            .take()
            .context("the operator was stopped already")?;
        // In-flight reconciles finish first; under a loaded machine one can
        // take a while (AWS calls time out after 30 s each).
        tokio::time::timeout(Duration::from_secs(120), done)
            .await
            .context("the operator did not stop within 120 s")?
            .context("the operator's thread panicked")?
    }

    /// Ends at once, like SIGKILL: no graceful shutdown, no Lease release.
    pub fn kill(self) {}
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(abort) = self.abort.take() {
            let _ = abort.send(());
        }
    }
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The AWS requests made between two `/metrics` texts of the operator, by
/// `service:Operation` (only those that grew), the change-events consumer's
/// polls (`sqs:ReceiveMessage`, `sqs:DeleteMessage`) left out: what its
/// reconciles read and wrote.
pub fn reconcile_requests(before: &str, after: &str) -> Vec<(String, f64)> {
    let (before, after) = (aws_requests(before), aws_requests(after));
    after
        .iter()
        .filter(|(key, _)| !matches!(key.as_str(), "sqs:ReceiveMessage" | "sqs:DeleteMessage"))
        .map(|(key, value)| (key.clone(), value - before.get(key).copied().unwrap_or(0.0)))
        .filter(|(_, grown)| *grown > 0.0)
        .collect()
}

/// `movieapp_aws_requests_total` by `service:Operation`.
fn aws_requests(text: &str) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for line in text
        .lines()
        .filter_map(|l| l.strip_prefix("movieapp_aws_requests_total{"))
    {
        let Some((labels, value)) = line.split_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
            let len = labels[start..].find('"')?;
            Some(labels[start..start + len].to_owned())
        };
        if let (Some(service), Some(operation), Ok(value)) =
            (label("service"), label("operation"), value.parse::<f64>())
        {
            *out.entry(format!("{service}:{operation}")).or_default() += value;
        }
    }
    out
}

/// Sums the samples of one metric whose label text contains every `filter`.
pub fn metric_sum(text: &str, name: &str, filters: &[&str]) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name) && filters.iter().all(|f| line.contains(f)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// User + system CPU seconds process `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("/proc/pid/stat without a name")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime: fields 14 and 15 of /proc/pid/stat, 12 and 13 after the name.
    let ticks = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i)
            .context("/proc/pid/stat is too short")?
            .parse()?)
    };
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// The `movieapp-operator` binary of a Cargo profile (`debug` or `release`)
/// in the workspace's target directory; `make test` builds the debug one first.
pub fn operator_binary(profile: &str) -> Result<std::path::PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let binary = target.join(profile).join("movieapp-operator");
    anyhow::ensure!(
        binary.is_file(),
        "{} is missing: build it first (cargo build{} -p movieapp-operator)",
        binary.display(),
        if profile == "release" {
            " --release"
        } else {
            ""
        }
    );
    Ok(binary)
}

/// `movieapp-operator run` as a process of its own: it can be SIGKILLed at
/// any moment, and its memory and CPU are its own. Started by the local
/// environment's supervisor (in the test's process group, so it dies with
/// the test); killed when dropped.
#[derive(Debug)]
pub struct OperatorProcess {
    child: movieapp_localenv::process::Child,
    identity: movieapp_localenv::process::Identity,
    /// Base URL of its /metrics, /healthz, /readyz server.
    pub url: String,
    /// Where its output goes.
    pub log: std::path::PathBuf,
}

impl OperatorProcess {
    /// Starts `binary run --namespaces <namespace> --metrics-addr <free port>
    /// <extra>` with `env` added to the environment, and waits until it
    /// serves `/healthz`; fails with the end of its log if it exits first.
    ///
    /// Its output is appended to `MOVIEAPP_OPERATOR_LOG` when set, else to
    /// `.localenv/logs/operator-<namespace>-<n>.log` (gone with `make env-down`).
    pub async fn spawn(
        binary: &std::path::Path,
        namespace: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        use movieapp_localenv::process::Spec;
        let addr = format!("127.0.0.1:{}", free_port()?);
        let log = operator_log(namespace);
        let mut spec = Spec::new("movieapp-operator", binary)
            .args(["run", "--namespaces", namespace, "--metrics-addr", &addr])
            .args(extra.iter().copied())
            .log(&log);
        for (key, value) in env {
            spec = spec.env(*key, *value);
        }
        let started = spec.spawn()?;
        let child = started.child.context("an attached process has a handle")?;
        let process = Self {
            child,
            identity: started.identity,
            url: format!("http://{addr}"),
            log,
        };
        movieapp_localenv::supervisor::wait_healthy(
            "the operator",
            process.identity,
            movieapp_localenv::Probe::get(format!("{}/healthz", process.url)),
            &process.log,
            Duration::from_secs(30),
        )
        .await?;
        Ok(process)
    }

    pub fn pid(&self) -> u32 {
        self.identity.pid
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> Result<String> {
        Ok(reqwest::get(format!("{}/metrics", self.url))
            .await?
            .text()
            .await?)
    }

    /// (VmRSS, VmHWM) in MiB.
    pub fn memory(&self) -> Result<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let field = |name: &str| -> Result<f64> {
            let kib: f64 = status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .with_context(|| format!("{name} in /proc/{}/status", self.pid()))?
                .parse()?;
            Ok(kib / 1024.0)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// User + system CPU seconds so far.
    pub fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds(self.pid())
    }

    /// Whether the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child.is_running()
    }

    /// Sends `signal` to the process: SIGSTOP pauses it (a VM stall, a long
    /// GC), SIGCONT resumes it, SIGTERM asks it to shut down gracefully.
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> Result<()> {
        let pid =
            nix::unistd::Pid::from_raw(i32::try_from(self.pid()).context("pid out of range")?);
        nix::sys::signal::kill(pid, signal)
            .with_context(|| format!("sending {signal} to the operator (pid {pid})"))
    }

    /// SIGKILL: no graceful shutdown, no Lease release.
    pub fn kill(mut self) {
        self.child.kill();
    }
}

/// `MOVIEAPP_OPERATOR_LOG`, or a file of its own in the environment's logs.
fn operator_log(namespace: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static STARTED: AtomicU32 = AtomicU32::new(0);
    if let Some(path) = std::env::var_os("MOVIEAPP_OPERATOR_LOG") {
        return path.into();
    }
    let dir = std::env::var_os("LOCALENV_DIR")
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from)
        .join("logs");
    let n = STARTED.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(
        "operator-{namespace}-{}-{n}.log",
        std::process::id()
    ))
}
