//! AWS faults, injected by a proxy in front of moto
//! (tests/localenv/aws_fault_proxy.py): the operator converges through
//! throttling and 5xx at 30 % while its request rate stays under its bound,
//! and access denied is reported as Stalled with the AWS code, clearing once
//! access is granted.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use kube::api::PostParams;
use movieapp_operator::crd::MovieApp;
use movieapp_tests::operator::{Operator, free_port, metric_sum};
use movieapp_tests::{LocalEnv, eventually, fixtures, unique_name};
use serde_json::json;

/// The proxy process; stopped on drop.
struct Proxy {
    child: Child,
    url: String,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    async fn start(upstream: &str) -> Result<Self> {
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

    async fn set(&self, faults: serde_json::Value) -> Result<()> {
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
}

fn condition<'a>(app: &'a MovieApp, type_: &str) -> Option<&'a Condition> {
    app.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

async fn scenario(prefix: &str) -> Result<(LocalEnv, kube::Client, String, String, Api<MovieApp>)> {
    let env = LocalEnv::get();
    let client = env.kube().await?;
    let crd = <MovieApp as kube::CustomResourceExt>::crd();
    Api::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>::all(
        client.clone(),
    )
    .patch(
        "movieapps.movieapp.io",
        &kube::api::PatchParams::apply("movieapp-tests").force(),
        &kube::api::Patch::Apply(&crd),
    )
    .await?;
    let ns = unique_name(prefix);
    fixtures::namespace(&client, &ns).await?;
    fixtures::tmdb_secret(&client, &ns, &env.tmdb_api_key).await?;
    let repository = unique_name("img");
    fixtures::push_image(
        &aws_sdk_ecr::Client::new(&env.aws().await),
        &repository,
        "1.0.0",
        1,
    )
    .await?;
    let api = Api::namespaced(client.clone(), &ns);
    Ok((env, client, ns, repository, api))
}

fn app(repository: &str) -> Result<MovieApp> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "movieapp.io/v1alpha1",
        "kind": "MovieApp",
        "metadata": { "name": "shop" },
        "spec": { "worker": { "image": { "repository": repository, "tag": "1.0.0" } } },
    }))?)
}

#[tokio::test]
async fn throttling_and_server_errors_at_30_percent_converge_within_the_rate_bound() -> Result<()> {
    let (env, client, ns, repository, api) = scenario("faults-throttle").await?;
    let proxy = Proxy::start(&env.aws_endpoint_url).await?;
    proxy
        .set(json!({ "throttle_ratio": 0.15, "error_ratio": 0.15 }))
        .await?;
    const MAX_RPS: f64 = 20.0;
    let operator = Operator::start(
        &ns,
        &[
            "--aws-endpoint-url",
            &proxy.url,
            "--aws-max-rps",
            "20",
            "--resync-interval",
            "5s",
        ],
    )
    .await?;
    let started = Instant::now();

    api.create(&PostParams::default(), &app(&repository)?)
        .await?;
    eventually(
        "Ready=True through the faults",
        Duration::from_secs(180),
        || async {
            let app = api.get("shop").await?;
            Ok(condition(&app, "Ready")
                .filter(|c| c.status == "True")
                .map(|_| ()))
        },
    )
    .await?;
    // Keep the faults on for a few resyncs: no hot loop.
    tokio::time::sleep(Duration::from_secs(10)).await;

    let elapsed = started.elapsed().as_secs_f64();
    let metrics = operator.metrics().await?;
    let total = metric_sum(&metrics, "movieapp_aws_requests_total", &[]);
    let throttled = metric_sum(
        &metrics,
        "movieapp_aws_requests_total",
        &["outcome=\"throttled\""],
    );
    let server_errors = metric_sum(
        &metrics,
        "movieapp_aws_requests_total",
        &["outcome=\"server_error\""],
    );
    ensure!(
        throttled > 0.0 && server_errors > 0.0,
        "no injected fault was seen: {throttled} throttled, {server_errors} 5xx"
    );
    // The token bucket: at most MAX_RPS per second plus one burst of MAX_RPS.
    let bound = MAX_RPS * elapsed + MAX_RPS;
    ensure!(
        total <= bound,
        "{total} AWS requests in {elapsed:.1} s exceed the bound {bound:.0}"
    );

    operator.stop().await?;
    drop(proxy);
    let _ = client;
    fixtures::delete_namespace(&env.kube().await?, &ns).await
}

#[tokio::test]
async fn access_denied_stalls_with_the_aws_code_and_clears_when_granted() -> Result<()> {
    let (env, client, ns, repository, api) = scenario("faults-denied").await?;
    let proxy = Proxy::start(&env.aws_endpoint_url).await?;
    proxy
        .set(json!({ "deny": ["CreateTable", "DescribeTable"] }))
        .await?;
    let operator = Operator::start(
        &ns,
        &["--aws-endpoint-url", &proxy.url, "--resync-interval", "3s"],
    )
    .await?;

    api.create(&PostParams::default(), &app(&repository)?)
        .await?;
    let stalled = eventually(
        "Stalled=True with AccessDenied",
        Duration::from_secs(60),
        || async {
            let app = api.get("shop").await?;
            Ok(condition(&app, "Stalled")
                .filter(|c| c.status == "True" && c.reason == "AccessDenied")
                .cloned())
        },
    )
    .await?;
    ensure!(
        stalled.message.contains("AccessDeniedException"),
        "the message carries the AWS code: {}",
        stalled.message
    );

    // Access granted: the world changed, Stalled clears without a restart.
    proxy.set(json!({ "deny": [] })).await?;
    eventually(
        "Ready=True once access is granted",
        Duration::from_secs(60),
        || async {
            let app = api.get("shop").await?;
            Ok(condition(&app, "Ready")
                .filter(|c| c.status == "True")
                .map(|_| ()))
        },
    )
    .await?;

    operator.stop().await?;
    let _ = client;
    fixtures::delete_namespace(&env.kube().await?, &ns).await
}
