//! Health checks, and the HTTP client that makes them and talks to the
//! cluster as its admin.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::pki::{Client, Pki};

/// How a process shows it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Probe {
    /// A GET answers 2xx (HTTPS verified against the environment's CA).
    Get { url: String },
    /// The Node is `Ready` (a node agent such as kwok keeps it so).
    NodeReady { node: String },
    /// Nothing to ask: running is all that can be checked.
    Running,
}

impl Probe {
    pub fn get(url: impl Into<String>) -> Self {
        Self::Get { url: url.into() }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Healthy,
    Unhealthy(String),
}

impl Health {
    pub fn is_healthy(&self) -> bool {
        matches!(self, Self::Healthy)
    }
}

/// One HTTP client for every check: trusts the environment's CA alone and
/// presents the admin certificate (plain-HTTP endpoints ignore both).
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    /// `https://127.0.0.1:<port>` of kube-apiserver.
    pub apiserver: String,
}

impl Http {
    pub fn new(pki: &Pki, apiserver: String) -> Result<Self> {
        let ca = std::fs::read(pki.ca()).context("reading the CA certificate")?;
        let (cert, key) = pki.client(Client::Admin);
        let identity = [
            std::fs::read(&cert).with_context(|| format!("reading {}", cert.display()))?,
            std::fs::read(&key).with_context(|| format!("reading {}", key.display()))?,
        ]
        .concat();
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).context("the CA certificate")?])
            .identity(reqwest::Identity::from_pem(&identity).context("the admin certificate")?)
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        Ok(Self { client, apiserver })
    }

    /// A client for plain-HTTP probes only (no CA, no cluster).
    pub fn plain() -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            client,
            apiserver: String::new(),
        })
    }

    /// Checks once.
    pub async fn check(&self, probe: &Probe) -> Health {
        let outcome = match probe {
            Probe::Running => Ok(()),
            Probe::Get { url } => self.get_ok(url).await,
            Probe::NodeReady { node } => self.node_ready(node).await,
        };
        match outcome {
            Ok(()) => Health::Healthy,
            Err(error) => Health::Unhealthy(format!("{error:#}")),
        }
    }

    /// Asks until healthy, at most `attempts` times `pause` apart, while
    /// `alive()` holds: the last answer, or `None` once the process is gone.
    /// On a machine whose every core is busy one answer can miss its
    /// time-out; a process is called unhealthy only when it keeps failing.
    pub async fn check_settled(
        &self,
        probe: &Probe,
        attempts: u32,
        pause: Duration,
        alive: impl Fn() -> bool,
    ) -> Option<Health> {
        let mut last = None;
        for attempt in 0..attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(pause).await;
            }
            let health = self.check(probe).await;
            if !alive() {
                return None;
            }
            if health.is_healthy() {
                return Some(health);
            }
            last = Some(health);
        }
        last
    }

    async fn get_ok(&self, url: &str) -> Result<()> {
        let response = self
            .client
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!("GET {url}: {status} {}", body.trim());
        }
        Ok(())
    }

    async fn node_ready(&self, node: &str) -> Result<()> {
        let object = self.get_json(&format!("/api/v1/nodes/{node}")).await?;
        let ready = object["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        if !ready {
            bail!("node {node} is not Ready");
        }
        Ok(())
    }

    /// GET of an API path, as admin.
    pub async fn get_json(&self, path: &str) -> Result<Value> {
        let url = format!("{}{path}", self.apiserver);
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        answer(response, &url).await
    }

    /// Server-side apply of `object` at an API path, as admin.
    pub async fn apply(&self, path: &str, object: &Value) -> Result<Value> {
        let url = format!(
            "{}{path}?fieldManager=movieapp-localenv&force=true",
            self.apiserver
        );
        let response = self
            .client
            .patch(&url)
            .header("Content-Type", "application/apply-patch+yaml")
            .body(serde_json::to_vec(object)?)
            .send()
            .await
            .with_context(|| format!("PATCH {url}"))?;
        answer(response, &url).await
    }

    /// DELETE of an API path, as admin; a missing object is not an error.
    pub async fn delete(&self, path: &str) -> Result<()> {
        let url = format!("{}{path}", self.apiserver);
        let response = self
            .client
            .delete(&url)
            .send()
            .await
            .with_context(|| format!("DELETE {url}"))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        answer(response, &url).await.map(drop)
    }
}

async fn answer(response: reqwest::Response, url: &str) -> Result<Value> {
    let status = response.status();
    let body = response.text().await.with_context(|| url.to_owned())?;
    if !status.is_success() {
        bail!("{url}: {status} {}", body.trim());
    }
    serde_json::from_str(&body).with_context(|| format!("{url}: not JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on 127.0.0.1 answering its connections with `statuses` in
    /// turn (one request a connection), then 200; its `/` URL.
    async fn answering(statuses: Vec<u16>) -> Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/", listener.local_addr()?);
        let mut statuses = statuses.into_iter();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let status = statuses.next().unwrap_or(200);
                let mut request = [0_u8; 1024];
                let _ = stream.read(&mut request).await;
                let response = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = stream.write_all(response.as_bytes()).await;
            }
        });
        Ok(url)
    }

    #[tokio::test]
    async fn a_process_that_fails_one_check_then_answers_is_healthy() -> Result<()> {
        let http = Http::plain()?;
        let probe = Probe::get(answering(vec![503, 503]).await?);
        let health = http
            .check_settled(&probe, 3, Duration::from_millis(10), || true)
            .await;
        assert_eq!(health, Some(Health::Healthy));
        Ok(())
    }

    #[tokio::test]
    async fn a_process_that_keeps_failing_is_unhealthy_with_its_last_answer() -> Result<()> {
        let http = Http::plain()?;
        let probe = Probe::get(answering(vec![503, 500]).await?);
        let health = http
            .check_settled(&probe, 2, Duration::from_millis(10), || true)
            .await;
        match health {
            Some(Health::Unhealthy(reason)) => assert!(reason.contains("500"), "{reason}"),
            other => panic!("expected unhealthy, got {other:?}"),
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_process_that_exits_while_checked_is_not_called_unhealthy() -> Result<()> {
        let http = Http::plain()?;
        let probe = Probe::get(answering(vec![503]).await?);
        let health = http
            .check_settled(&probe, 3, Duration::from_millis(10), || false)
            .await;
        assert_eq!(health, None);
        Ok(())
    }
}
