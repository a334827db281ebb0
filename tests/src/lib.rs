//! Shared helpers for the tests that run against the local environment of
//! `make env-up` (a real control plane, moto and the TMDB stub).
//!
//! The environment is found through the variables `.localenv/env.sh`
//! exports; `make test` sources it before running the suites.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Where the parts of the local environment listen.
#[derive(Debug, Clone)]
pub struct LocalEnv {
    pub aws_endpoint_url: String,
    pub tmdb_base_url: String,
    pub tmdb_api_key: String,
}

impl LocalEnv {
    /// Reads the environment written by `make env-up`, and checks (once per
    /// test binary, that is before each suite) that every one of its
    /// processes runs and answers its health check.
    ///
    /// # Panics
    /// When a variable is missing: these tests must never pass by skipping;
    /// and when a component is down or unhealthy, naming it with the end of
    /// its log, rather than leaving the tests to time out.
    pub fn get() -> Self {
        fn var(name: &str) -> String {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: run the integration tests through `make test`, \
                     or `make env-up && . .localenv/env.sh` first"
                )
            })
        }
        var("KUBECONFIG");
        var("LOCALENV_DIR");
        if let Err(problems) = checked_once() {
            panic!("{problems}");
        }
        Self {
            aws_endpoint_url: var("AWS_ENDPOINT_URL"),
            tmdb_base_url: var("TMDB_BASE_URL"),
            tmdb_api_key: var("TMDB_API_KEY"),
        }
    }

    /// A client for the local control plane, from `KUBECONFIG`.
    pub async fn kube(&self) -> Result<kube::Client> {
        kube::Client::try_default()
            .await
            .context("connecting to the local kube-apiserver")
    }

    /// The shared AWS configuration; every client built from it talks to moto.
    pub async fn aws(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.aws_endpoint_url)
            .load()
            .await
    }
}

/// What is wrong with the local environment of `LOCALENV_DIR` right now:
/// each component that is down or not healthy, with the end of its log.
/// `None` when all are well (processes run beside them, such as
/// `make demo`'s, do not count: no test uses them).
pub async fn environment_problems() -> Option<String> {
    let dir = std::path::PathBuf::from(std::env::var_os("LOCALENV_DIR")?);
    let report = match movieapp_localenv::Layout::load(&dir) {
        Ok(Some(layout)) => movieapp_localenv::Report::collect_components(&layout).await,
        Ok(None) => Err(anyhow::anyhow!(
            "no local environment runs in {}",
            dir.display()
        )),
        Err(error) => Err(error),
    };
    let problems = match report {
        Ok(report) => report.component_problems()?,
        Err(error) => format!("{error:#}"),
    };
    Some(format!(
        "the local environment is not healthy (`make env-status` shows it; \
         `make env-down && make env-up` starts it again):\n{problems}"
    ))
}

/// [`environment_problems`], checked once per process. Runs on a thread of
/// its own: `LocalEnv::get` is synchronous and called inside tests' runtimes.
fn checked_once() -> std::result::Result<(), String> {
    static CHECKED: std::sync::OnceLock<std::result::Result<(), String>> =
        std::sync::OnceLock::new();
    CHECKED
        .get_or_init(|| {
            std::thread::spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("a runtime for the health check: {e}"))?;
                match runtime.block_on(environment_problems()) {
                    Some(problems) => Err(problems),
                    None => Ok(()),
                }
            })
            .join()
            .unwrap_or_else(|_| {
                Err("the health check of the local environment panicked".to_owned())
            })
        })
        .clone()
}

/// A name unique to this test run, valid as a Kubernetes name and in AWS.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{:x}{n}", nanos ^ std::process::id())
}

/// Polls `check` until it returns `Some`, or fails after `timeout` naming
/// what was awaited and the last error seen.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(error) => last_error = Some(error),
        }
        if tokio::time::Instant::now() >= deadline {
            // A component that died is the likelier cause than the code
            // under test: say so first.
            let environment = environment_problems()
                .await
                .map(|problems| format!("\n{problems}"))
                .unwrap_or_default();
            match last_error {
                Some(error) => bail!(
                    "timed out after {timeout:?} waiting for {what}; last error: {error:#}{environment}"
                ),
                None => bail!("timed out after {timeout:?} waiting for {what}{environment}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub mod aws_proxy;
pub mod fixtures;
pub mod iam_record;
pub mod inventory;
pub mod journey;
pub mod kube_proxy;
pub mod movieapps;
pub mod operator;

/// The status Flux's kstatus library computes for `object` (`Current`,
/// `InProgress`, `Failed`, ...) and its message, through the Go helper in
/// `tests/kstatus/` (built once, cached).
pub fn kstatus<T: serde::Serialize>(object: &T) -> Result<(String, String)> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::sync::OnceLock;

    static HELPER: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    let helper = HELPER
        .get_or_init(|| {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/kstatus/build.sh");
            let output = Command::new("bash")
                .arg(script)
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| format!("running {script}: {e}"))?;
            if !output.status.success() {
                return Err(format!("{script} failed"));
            }
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .last()
                .map(str::to_owned)
                .ok_or_else(|| format!("{script} printed no path"))
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    let mut child = Command::new(helper)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {helper}"))?;
    child
        .stdin
        .take()
        .context("kstatus stdin")?
        .write_all(&serde_json::to_vec(object)?)?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "kstatus failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let result: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok((
        result["status"].as_str().unwrap_or_default().to_owned(),
        result["message"].as_str().unwrap_or_default().to_owned(),
    ))
}
