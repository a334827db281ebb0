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
