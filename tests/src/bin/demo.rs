//! `make demo` (scripts/demo.sh builds this and the two binaries, then runs
//! it): starts the local environment, runs the operator built from this
//! checkout, creates the MovieApp of examples/movieapp.yaml, waits until it
//! is Ready, shows what was made, and starts an api-worker wired to exactly
//! what the operator provisioned. Everything it starts is run and recorded
//! by the local environment's supervisor: it keeps running after the demo
//! returns, `make env-status` checks it and `make env-down` stops it.
//!
//!   demo --operator <movieapp-operator> --api-worker <api-worker>
//!
//! `DEMO_PORT` and `OPERATOR_METRICS_PORT` choose the api-worker's and the
//! operator's ports (default: the two demo ports of the environment's block).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams};
use movieapp_localenv::pki::Client as ClientCert;
use movieapp_localenv::ports::{Slot, port_free};
use movieapp_localenv::process::{Spec, log_tail};
use movieapp_localenv::{Layout, Probe, Request};
use movieapp_operator::crd::MovieApp;
use movieapp_tests::fixtures;

const NAMESPACE: &str = "movies";
const MOVIEAPP: &str = "netflix-clone";
const IMAGE_REPOSITORY: &str = "api-worker";
const IMAGE_TAG: &str = "1.0.0";
const REGION: &str = "us-east-1";

#[derive(Debug, Parser)]
struct Args {
    /// The checkout the caller means; refused (exit 98) when this binary
    /// was built from another, as a shared target directory allows.
    #[arg(long, hide = true)]
    checkout: Option<PathBuf>,
    /// The movieapp-operator binary to run.
    #[arg(long)]
    operator: PathBuf,
    /// The api-worker binary to run.
    #[arg(long)]
    api_worker: PathBuf,
}

/// Bold, dim, green, red, reset: empty when stdout is not a terminal.
struct Style {
    bold: &'static str,
    dim: &'static str,
    green: &'static str,
    red: &'static str,
    reset: &'static str,
}

impl Style {
    fn detect() -> Self {
        if std::io::stdout().is_terminal() {
            Self {
                bold: "\x1b[1m",
                dim: "\x1b[2m",
                green: "\x1b[32m",
                red: "\x1b[31m",
                reset: "\x1b[0m",
            }
        } else {
            Self {
                bold: "",
                dim: "",
                green: "",
                red: "",
                reset: "",
            }
        }
    }

    fn step(&self, what: &str) {
        println!("\n{}==> {what}{}", self.bold, self.reset);
    }
}

/// A failure with what to do about it.
#[derive(Debug)]
struct Failure {
    what: String,
    hint: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.what)
    }
}

impl std::error::Error for Failure {}

fn failure(what: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    Failure {
        what: what.into(),
        hint: hint.into(),
    }
    .into()
}

#[tokio::main]
async fn main() -> ExitCode {
    let style = Style::detect();
    let args = Args::parse();
    if let (Some(checkout), Ok(root)) = (&args.checkout, root())
        && checkout.canonicalize().ok().as_ref() != Some(&root)
    {
        eprintln!(
            "demo: this build is of {}, not {}",
            root.display(),
            checkout.display()
        );
        return ExitCode::from(98);
    }
    let outcome = tokio::select! {
        outcome = run(&args, &style) => outcome,
        _ = tokio::signal::ctrl_c() => {
            eprintln!(
                "\n{}interrupted.{} Everything started so far is recorded: make env-down stops it, \
                 make demo starts again.",
                style.red, style.reset
            );
            return ExitCode::from(130);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!();
            match error.downcast_ref::<Failure>() {
                Some(f) => {
                    eprintln!("{}make demo failed: {}{}", style.red, f.what, style.reset);
                    eprintln!("{}", f.hint);
                }
                None => eprintln!("{}make demo failed: {error:#}{}", style.red, style.reset),
            }
            ExitCode::FAILURE
        }
    }
}

/// The checkout this binary was built from.
fn root() -> Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .context("finding the checkout")
}

/// A port from `variable`, else the block's `slot`.
fn port(variable: &str, layout: &Layout, slot: Slot) -> Result<u16> {
    match std::env::var(variable) {
        Ok(value) if !value.is_empty() => value
            .parse()
            .with_context(|| format!("{variable}={value:?} is not a port number")),
        _ => Ok(layout.port(slot)),
    }
}

/// Runs `kubectl` against the environment, its output shown.
fn kubectl(layout: &Layout, args: &[&str]) -> Result<()> {
    let status = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", layout.kubeconfig(ClientCert::Admin))
        .current_dir(&layout.root)
        .status()
        .context("running kubectl (is it installed?)")?;
    if !status.success() {
        bail!("kubectl {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// The settings every process of the demo talks to AWS with.
fn aws_env(layout: &Layout) -> Vec<(String, String)> {
    [
        (
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", layout.port(Slot::Moto)),
        ),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_DEFAULT_REGION", REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        (
            "KUBECONFIG",
            layout.kubeconfig(ClientCert::Admin).display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

async fn run(args: &Args, style: &Style) -> Result<()> {
    let started = Instant::now();
    let root = root()?;
    let logs = |name: &str| format!(".localenv/logs/{name}.log");

    style.step("starting the local environment (Kubernetes control plane, moto, TMDB stub)");
    let layout = movieapp_localenv::up(&Request::for_checkout(&root)?)
        .await
        .map_err(|error| {
            failure(
                format!("the local environment did not start: {error:#}"),
                "See the message above and the logs in .localenv/logs/. \
                 'make env-down && make demo' starts from scratch.",
            )
        })?;

    let operator_port = port("OPERATOR_METRICS_PORT", &layout, Slot::DemoOperator)?;
    let api_port = port("DEMO_PORT", &layout, Slot::DemoApiWorker)?;
    // An earlier demo's processes are replaced by fresh ones.
    for name in ["demo-jobs-worker", "demo-api-worker", "demo-operator"] {
        movieapp_localenv::stop_process(&layout, name)?;
    }
    for p in [api_port, operator_port] {
        if !port_free(p) {
            return Err(failure(
                format!("port {p} on 127.0.0.1 is already in use"),
                format!(
                    "Stop what listens there (ss -ltnp 'sport = :{p}'), or choose others: \
                     DEMO_PORT=... OPERATOR_METRICS_PORT=... make demo"
                ),
            ));
        }
    }

    let kube = kube_client(&layout).await?;
    let aws = aws_config(&layout).await;

    style.step("installing the MovieApp CRD and starting the operator");
    kubectl(&layout, &["apply", "-f", "crds/"])?;
    kubectl(
        &layout,
        &[
            "wait",
            "--for=condition=Established",
            "crd/movieapps.movieapp.io",
            "--timeout=30s",
        ],
    )?;
    let metrics = format!("127.0.0.1:{operator_port}");
    let mut operator = Spec::new("demo-operator", &args.operator).args([
        "run",
        "--metrics-addr",
        &metrics,
        "--aws-endpoint-url",
        &format!("http://127.0.0.1:{}", layout.port(Slot::Moto)),
        "--default-region",
        REGION,
        "--worker-tmdb-base-url",
        &format!("http://127.0.0.1:{}", layout.port(Slot::TmdbStub)),
        "--resync-interval",
        "30s",
        "--namespaces",
        NAMESPACE,
    ]);
    for (key, value) in aws_env(&layout) {
        operator = operator.env(key, value);
    }
    let pid = movieapp_localenv::start_process(
        &layout,
        operator,
        Probe::get(format!("http://{metrics}/readyz")),
        Duration::from_secs(60),
    )
    .await
    .map_err(|error| failure("the operator did not become ready", format!("{error:#}")))?
    .pid;
    println!(
        "   operator running (pid {pid}), log: {}",
        logs("demo-operator")
    );

    style.step("pushing an api-worker image record to ECR (moto) and creating the TMDB Secret");
    let ecr = aws_sdk_ecr::Client::new(&aws);
    let digest = image(&ecr).await.map_err(|error| {
        failure(
            "could not record the image in moto's ECR",
            format!("{error:#}\nIs moto up? make env-status"),
        )
    })?;
    println!("   {IMAGE_REPOSITORY}:{IMAGE_TAG} -> {digest}");
    let apply = PatchParams::apply("movieapp-demo").force();
    Api::<Namespace>::all(kube.clone())
        .patch(
            NAMESPACE,
            &apply,
            &Patch::Apply(Namespace {
                metadata: ObjectMeta {
                    name: Some(NAMESPACE.to_owned()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            }),
        )
        .await
        .context("creating the namespace")?;
    let tmdb_key = layout.tmdb_api_key.clone();
    Api::<Secret>::namespaced(kube.clone(), NAMESPACE)
        .patch(
            "tmdb",
            &apply,
            &Patch::Apply(Secret {
                metadata: ObjectMeta {
                    name: Some("tmdb".to_owned()),
                    ..ObjectMeta::default()
                },
                data: Some(BTreeMap::from([(
                    "api-key".to_owned(),
                    ByteString(tmdb_key.into_bytes()),
                )])),
                ..Secret::default()
            }),
        )
        .await
        .context("creating the TMDB Secret")?;

    style.step("kubectl apply -f examples/movieapp.yaml");
    kubectl(&layout, &["apply", "-f", "examples/movieapp.yaml"])?;
    println!(
        "{}   waiting for Ready; conditions as they change:{}",
        style.dim, style.reset
    );
    let movieapps: Api<MovieApp> = Api::namespaced(kube.clone(), NAMESPACE);
    wait_ready(&movieapps, &layout).await?;

    style.step("what was made");
    kubectl(&layout, &["-n", NAMESPACE, "get", "movieapp", MOVIEAPP])?;
    println!(
        "\n{}AWS resources (read back from moto):{}",
        style.bold, style.reset
    );
    let app = movieapps.get(MOVIEAPP).await?;
    show_aws(&aws, &app).await?;
    println!(
        "\n{}The Deployment runs the image by digest:{}",
        style.bold, style.reset
    );
    let deployment = Api::<Deployment>::namespaced(kube.clone(), NAMESPACE)
        .get(MOVIEAPP)
        .await?;
    let image = deployment
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.image)
        .unwrap_or_default();
    println!("   {image}");

    style.step("starting an api-worker wired to what the operator provisioned");
    // The cluster's Pods are simulated by kwok; this is the same binary and
    // the same settings (the generated ConfigMap and Secrets), run beside them.
    let worker_env = worker_env(&kube).await?;
    let url = format!("http://127.0.0.1:{api_port}");
    for (name, command) in [("demo-api-worker", "serve"), ("demo-jobs-worker", "worker")] {
        let mut spec = Spec::new(name, &args.api_worker)
            .args([command])
            .env("PORT", api_port.to_string())
            .env("LISTEN_ADDR", "127.0.0.1")
            .env("LOG_FORMAT", "text");
        for (key, value) in aws_env(&layout).into_iter().chain(worker_env.clone()) {
            spec = spec.env(key, value);
        }
        let probe = if command == "serve" {
            Probe::get(format!("{url}/readyz"))
        } else {
            Probe::Running
        };
        movieapp_localenv::start_process(&layout, spec, probe, Duration::from_secs(30))
            .await
            .map_err(|error| failure(format!("the {name} is not ready"), format!("{error:#}")))?;
    }

    // The commands printed below are run once here, so they are known to work.
    let examples = [
        format!("{url}/api/v1/movies/popular?page=1"),
        format!("{url}/api/v1/movies/search?query=matrix"),
        format!("{url}/api/v1/movies/603"),
    ];
    for example in &examples {
        let answer = reqwest::get(example)
            .await
            .and_then(|r| r.error_for_status());
        let json = match answer {
            Ok(response) => response.json::<serde_json::Value>().await.ok(),
            Err(_) => None,
        };
        if json.is_none() {
            return Err(failure(
                format!("the example 'curl -s '{example}'' did not return JSON"),
                log_tail(&layout.log("demo-api-worker"), 20),
            ));
        }
    }

    std::fs::write(
        layout.state.join("demo.env"),
        format!("DEMO_API_URL={url}\nDEMO_NAMESPACE={NAMESPACE}\nDEMO_MOVIEAPP={MOVIEAPP}\n"),
    )
    .context("writing .localenv/demo.env")?;

    let Style {
        bold, green, reset, ..
    } = style;
    println!(
        "
{green}{bold}The demo is running{reset} (set up in {elapsed}s).

  web page      {url}/
  API           {url}/api/v1   (OpenAPI: {url}/openapi.json)
  operator      http://{metrics}/metrics

Try:
  curl -s '{e0}'
  curl -s '{e1}'
  curl -s '{e2}'

And with kubectl (after '. .localenv/env.sh'):
  kubectl get movieapps -A
  kubectl -n {NAMESPACE} describe movieapp {MOVIEAPP}

Logs are in .localenv/logs/; 'make env-status' checks every process, 'make env-down' stops everything.",
        elapsed = started.elapsed().as_secs(),
        e0 = examples[0],
        e1 = examples[1],
        e2 = examples[2],
    );
    Ok(())
}

/// The digest of the demo's image in ECR, recorded there unless an earlier
/// demo did (ECR refuses the same manifest under the same tag twice).
async fn image(ecr: &aws_sdk_ecr::Client) -> Result<String> {
    let existing = ecr
        .describe_images()
        .repository_name(IMAGE_REPOSITORY)
        .image_ids(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_tag(IMAGE_TAG)
                .build(),
        )
        .send()
        .await
        .ok()
        .and_then(|found| {
            found
                .image_details()
                .first()
                .and_then(|d| d.image_digest().map(str::to_owned))
        });
    match existing {
        Some(digest) => Ok(digest),
        None => fixtures::push_image(ecr, IMAGE_REPOSITORY, IMAGE_TAG, 1).await,
    }
}

async fn kube_client(layout: &Layout) -> Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(layout.kubeconfig(ClientCert::Admin))
        .context("reading the environment's kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .context("the environment's kubeconfig")?;
    kube::Client::try_from(config).context("a client for the local kube-apiserver")
}

async fn aws_config(layout: &Layout) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(format!("http://127.0.0.1:{}", layout.port(Slot::Moto)))
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_sdk_ecr::config::Credentials::new(
            "testing", "testing", None, None, "localenv",
        ))
        .load()
        .await
}

/// Waits up to 180 s for `Ready=True`, printing the conditions whenever
/// they change.
async fn wait_ready(api: &Api<MovieApp>, layout: &Layout) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last = String::new();
    loop {
        let app = api.get_opt(MOVIEAPP).await.ok().flatten();
        let conditions = app
            .as_ref()
            .and_then(|a| a.status.as_ref())
            .map(|s| {
                s.conditions
                    .iter()
                    .map(|c| format!("{}={}", c.type_, c.status))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        if !conditions.is_empty() && conditions != last {
            println!("   {}  {conditions}", clock());
            last.clone_from(&conditions);
        }
        if conditions.split(' ').any(|c| c == "Ready=True") {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let status = app
                .and_then(|a| a.status)
                .map(|s| serde_json::to_string_pretty(&s).unwrap_or_default())
                .unwrap_or_default();
            return Err(failure(
                "the MovieApp did not become Ready within 180 s",
                format!(
                    "{status}\nThe conditions above say why; the operator's log is {}.\n{}",
                    layout.log("demo-operator").display(),
                    movieapp_tests::environment_problems()
                        .await
                        .unwrap_or_default()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The time of day, UTC, as HH:MM:SS.
fn clock() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

/// The tables, queues and topic the status names, read back from AWS.
async fn show_aws(aws: &aws_config::SdkConfig, app: &MovieApp) -> Result<()> {
    let Some(status) = &app.status else {
        return Ok(());
    };
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    for table in &status.tables {
        let described = dynamodb
            .describe_table()
            .table_name(&table.name)
            .send()
            .await
            .with_context(|| format!("DescribeTable {}", table.name))?;
        let table_status = described
            .table()
            .and_then(|t| t.table_status())
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        let items = described
            .table()
            .and_then(|t| t.item_count())
            .unwrap_or_default();
        println!(
            "   DynamoDB table   {}  ({table_status}, {items} items)",
            table.name
        );
    }
    if let Some(queue) = &status.queue {
        let sqs = aws_sdk_sqs::Client::new(aws);
        for (label, url) in [
            ("SQS queue       ", &queue.url),
            ("SQS dead-letter ", &queue.dead_letter_url),
        ] {
            let attributes = sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .send()
                .await
                .with_context(|| format!("GetQueueAttributes {url}"))?;
            let arn = attributes
                .attributes()
                .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
                .cloned()
                .unwrap_or_default();
            println!("   {label} {url}  ({arn})");
        }
    }
    if let Some(notifications) = &status.notifications {
        let subscriptions = aws_sdk_sns::Client::new(aws)
            .list_subscriptions_by_topic()
            .topic_arn(&notifications.topic_arn)
            .send()
            .await
            .with_context(|| format!("ListSubscriptionsByTopic {}", notifications.topic_arn))?;
        println!(
            "   SNS topic        {}  ({} subscription(s))",
            notifications.topic_arn,
            subscriptions.subscriptions().len()
        );
    }
    Ok(())
}

/// The api-worker's settings as the operator generated them: the
/// ConfigMap's data, the TMDB key and the token signing key.
async fn worker_env(kube: &kube::Client) -> Result<Vec<(String, String)>> {
    let config = Api::<ConfigMap>::namespaced(kube.clone(), NAMESPACE)
        .get(&format!("{MOVIEAPP}-config"))
        .await
        .context("reading the generated ConfigMap")?;
    let secrets: Api<Secret> = Api::namespaced(kube.clone(), NAMESPACE);
    let secret_value = |secret: Secret, key: &str| -> Result<String> {
        let bytes = secret
            .data
            .and_then(|mut d| d.remove(key))
            .with_context(|| format!("no {key} in the Secret"))?;
        String::from_utf8(bytes.0).with_context(|| format!("{key} is not text"))
    };
    let mut env: Vec<(String, String)> = config.data.unwrap_or_default().into_iter().collect();
    env.push((
        "TMDB_API_KEY".to_owned(),
        secret_value(secrets.get("tmdb").await?, "api-key")?,
    ));
    env.push((
        "MOVIEAPP_TOKEN_SIGNING_KEY".to_owned(),
        secret_value(
            secrets.get(&format!("{MOVIEAPP}-auth")).await?,
            "token-signing-key",
        )?,
    ));
    Ok(env)
}
