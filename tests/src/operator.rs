//! Runs `movieapp-operator` in-process against the local environment, scoped
//! to one namespace so tests can run side by side.

use std::net::TcpListener;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use movieapp_operator::config::RunConfig;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::eventually;

#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    run: RunConfig,
}

/// A running operator.
#[derive(Debug)]
pub struct Operator {
    task: JoinHandle<Result<()>>,
    stop: Option<oneshot::Sender<()>>,
    /// Base URL of its /metrics, /healthz, /readyz server.
    pub url: String,
}

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
        let task = tokio::spawn(movieapp_operator::controller::run_until(
            config,
            async move {
                let _ = stopped.await;
            },
        ));
        let url = format!("http://{addr}");
        let operator = Self {
            task,
            stop: Some(stop),
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
        // In-flight reconciles finish first; under a loaded machine one can
        // take a while (AWS calls time out after 30 s each).
        tokio::time::timeout(Duration::from_secs(120), &mut self.task)
            .await
            .context("the operator did not stop within 120 s")?
            .context("the operator task panicked")?
    }

    /// Ends at once, like SIGKILL: no graceful shutdown, no Lease release.
    pub fn kill(self) {
        self.task.abort();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Sums the samples of one metric whose label text contains every `filter`.
pub fn metric_sum(text: &str, name: &str, filters: &[&str]) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name) && filters.iter().all(|f| line.contains(f)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
