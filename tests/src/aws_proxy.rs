//! The AWS fault proxy (`tests/localenv/aws_fault_proxy.py`) in front of
//! moto: throttling, 5xx, hung requests, connection resets and AccessDenied
//! at chosen ratios, and a count of every request by operation.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde::Deserialize;

use crate::eventually;
use crate::operator::free_port;

/// The proxy process; stopped on drop.
#[derive(Debug)]
pub struct FaultProxy {
    child: Child,
    /// Where AWS clients send requests instead of moto.
    pub url: String,
}

/// What the proxy has seen since it started.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Counters {
    pub forwarded: u64,
    pub throttled: u64,
    pub server_error: u64,
    pub hung: u64,
    pub reset: u64,
    pub denied: u64,
    /// Requests by operation name (`CreateTable`, `Subscribe`, ...), faults included.
    pub operations: std::collections::BTreeMap<String, u64>,
    /// Requests by operation that moto answered with a 2xx.
    pub succeeded: std::collections::BTreeMap<String, u64>,
}

impl Counters {
    pub fn total(&self) -> u64 {
        self.operations.values().sum()
    }

    pub fn succeeded(&self, operation: &str) -> u64 {
        self.succeeded.get(operation).copied().unwrap_or_default()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (moto's URL) on a free loopback port.
    pub async fn start(upstream: &str) -> Result<Self> {
        let port = free_port()?;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/localenv/aws_fault_proxy.py");
        let child = Command::new("python3")
            .args([script, "--port", &port.to_string(), "--upstream", upstream])
            .stdout(Stdio::null())
            .spawn()
            .context("starting the AWS fault proxy")?;
        let proxy = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let control = format!("{}/__faults", proxy.url);
        eventually("the fault proxy to answer", Duration::from_secs(10), || {
            let control = control.clone();
            async move { Ok(reqwest::get(&control).await.ok().map(|_| ())) }
        })
        .await?;
        Ok(proxy)
    }

    /// Changes the fault settings (see the script for the keys).
    pub async fn set(&self, faults: serde_json::Value) -> Result<()> {
        let response = reqwest::Client::new()
            .put(format!("{}/__faults", self.url))
            .json(&faults)
            .send()
            .await?;
        ensure!(
            response.status().is_success(),
            "fault settings refused: {}",
            response.text().await?
        );
        Ok(())
    }

    pub async fn counters(&self) -> Result<Counters> {
        #[derive(Deserialize)]
        struct Snapshot {
            counters: Counters,
        }
        let snapshot: Snapshot = reqwest::get(format!("{}/__faults", self.url))
            .await?
            .error_for_status()?
            .json()
            .await
            .context("the fault proxy's counters")?;
        Ok(snapshot.counters)
    }
}
