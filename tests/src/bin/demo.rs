//! `make demo` (scripts/demo.sh builds this and the two binaries, then runs
//! it): starts the local environment with its real node when the machine
//! can run one (`LOCALENV_REAL_NODE`, default `auto`), runs the operator
//! built from this checkout, builds the api-worker image and pushes it to
//! the local registry and moto's ECR, creates the MovieApp of
//! examples/movieapp.yaml, waits until it is Ready, shows what was made, and
//! serves its web page through `kubectl port-forward` to the worker Pods on
//! the real node. Without a real node (not root, no iptables, another
//! checkout's node: the reason is printed) the worker Pods are kwok's
//! simulated ones and an api-worker host process wired to what the operator
//! provisioned serves the page instead. Everything it starts is run and
//! recorded by the local environment's supervisor: it keeps running after
//! the demo returns, `make env-status` checks it and `make env-down` stops
//! it.
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
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams};
use movieapp_localenv::pki::Client as ClientCert;
use movieapp_localenv::ports::{Slot, port_free};
use movieapp_localenv::process::{Spec, log_tail};
use movieapp_localenv::{Layout, Probe, REAL_NODE, REAL_NODE_LABEL, RealNodeWanted, Request};
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

    style.step(
        "starting the local environment (Kubernetes control plane, moto, TMDB stub, a real node)",
    );
    let mut request = Request::for_checkout(&root)?;
    request.real_node = RealNodeWanted::from_env(RealNodeWanted::IfPossible)?;
    let layout = movieapp_localenv::up(&request).await.map_err(|error| {
        failure(
            format!("the local environment did not start: {error:#}"),
            "See the message above and the logs in .localenv/logs/. \
                 'make env-down && make demo' starts from scratch.",
        )
    })?;

    let real_node = layout.real_node.clone();
    match (&real_node, &layout.no_real_node) {
        (Some(node), _) => println!(
            "   real node {REAL_NODE} ({}): the api-worker runs as Pods there",
            node.node_ip
        ),
        (None, why) => println!(
            "{}   no real node{}: the worker Pods are kwok's simulated ones, and an api-worker \
             host process serves the web page instead (docs/development.md, \"A real node\"){}",
            style.red,
            why.as_ref().map(|w| format!(" ({w})")).unwrap_or_default(),
            style.reset
        ),
    }
    let operator_port = port("OPERATOR_METRICS_PORT", &layout, Slot::DemoOperator)?;
    let api_port = port("DEMO_PORT", &layout, Slot::DemoApiWorker)?;
    // An earlier demo's processes are replaced by fresh ones.
    for name in [
        "demo-port-forward",
        "demo-jobs-worker",
        "demo-api-worker",
        "demo-operator",
    ] {
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
    // The worker Pods on the real node reach moto and the TMDB stub at the
    // node's bridge, and only the real node runs them.
    let workers_reach = real_node
        .as_ref()
        .map_or("127.0.0.1", |n| n.gateway.as_str());
    let mut operator = Spec::new("demo-operator", &args.operator).args([
        "run",
        "--metrics-addr",
        &metrics,
        "--aws-endpoint-url",
        &format!("http://127.0.0.1:{}", layout.port(Slot::Moto)),
        "--worker-aws-endpoint-url",
        &format!("http://{workers_reach}:{}", layout.port(Slot::Moto)),
        "--default-region",
        REGION,
        "--worker-tmdb-base-url",
        &format!("http://{workers_reach}:{}", layout.port(Slot::TmdbStub)),
        "--resync-interval",
        "30s",
        "--namespaces",
        NAMESPACE,
    ]);
    if real_node.is_some() {
        operator = operator.args([
            "--worker-dedicated-nodes".to_owned(),
            format!("{REAL_NODE_LABEL}=true"),
        ]);
    }
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

    let digest = if real_node.is_some() {
        style.step(
            "building the api-worker image and pushing it to the local registry and ECR (moto)",
        );
        push_image(&layout)?
    } else {
        style.step("pushing an api-worker image record to ECR (moto)");
        let ecr = aws_sdk_ecr::Client::new(&aws);
        image(&ecr).await.map_err(|error| {
            failure(
                "could not record the image in moto's ECR",
                format!("{error:#}\nIs moto up? make env-status"),
            )
        })?
    };
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

    let applied = if real_node.is_some() {
        // The Pods need credentials for moto (any will do); on EKS the
        // worker's IAM role gives them, and the host process of the
        // fallback has the demo's.
        style.step(
            "kubectl apply -f examples/movieapp.yaml, with spec.worker.env \
             AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY=testing for moto",
        );
        let applied = Instant::now();
        apply_with_moto_credentials(&layout)?;
        applied
    } else {
        style.step("kubectl apply -f examples/movieapp.yaml");
        let applied = Instant::now();
        kubectl(&layout, &["apply", "-f", "examples/movieapp.yaml"])?;
        applied
    };
    println!(
        "{}   waiting for Ready; conditions as they change:{}",
        style.dim, style.reset
    );
    let movieapps: Api<MovieApp> = Api::namespaced(kube.clone(), NAMESPACE);
    wait_ready(&movieapps, &layout).await?;
    // Ready includes the worker Deployment's available replicas: on the
    // real node, Pods that passed their own readiness probe.
    let apply_to_ready = applied.elapsed();

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

    let url = format!("http://127.0.0.1:{api_port}");
    let served_by = if real_node.is_some() {
        println!(
            "\n{}The worker Pods, on the real node (Ready {:.1} s after the apply):{}",
            style.bold,
            apply_to_ready.as_secs_f64(),
            style.reset
        );
        kubectl(
            &layout,
            &[
                "-n",
                NAMESPACE,
                "get",
                "pods",
                "-o",
                "wide",
                "-l",
                &format!("app.kubernetes.io/instance={MOVIEAPP}"),
            ],
        )?;
        style.step("kubectl port-forward to the worker's Service");
        port_forward(&layout, api_port, &url).await?;
        format!(
            "kubectl -n {NAMESPACE} port-forward svc/{MOVIEAPP} {api_port}:80 (demo-port-forward)"
        )
    } else {
        start_host_worker(&kube, &layout, args, api_port, &url).await?;
        "an api-worker host process (demo-api-worker)".to_owned()
    };

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
            let log = if real_node.is_some() {
                format!(
                    "{}\nThe Pods' logs: kubectl -n {NAMESPACE} logs deploy/{MOVIEAPP} -c api",
                    log_tail(&layout.log("demo-port-forward"), 20)
                )
            } else {
                log_tail(&layout.log("demo-api-worker"), 20)
            };
            return Err(failure(
                format!("the example 'curl -s '{example}'' did not return JSON"),
                log,
            ));
        }
    }

    std::fs::write(
        layout.state.join("demo.env"),
        format!(
            "DEMO_API_URL={url}\nDEMO_NAMESPACE={NAMESPACE}\nDEMO_MOVIEAPP={MOVIEAPP}\n\
             DEMO_REAL_NODE={}\n",
            u8::from(real_node.is_some())
        ),
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
  served by     {served_by}
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

/// Without a real node: the api-worker as host processes beside kwok's
/// simulated Pods, the same binary with the same settings (the generated
/// ConfigMap and Secrets).
async fn start_host_worker(
    kube: &kube::Client,
    layout: &Layout,
    args: &Args,
    api_port: u16,
    url: &str,
) -> Result<()> {
    Style::detect().step("starting an api-worker wired to what the operator provisioned");
    let worker_env = movieapp_tests::journey::worker_settings(kube, NAMESPACE, MOVIEAPP).await?;
    for (name, command) in [("demo-api-worker", "serve"), ("demo-jobs-worker", "worker")] {
        let mut spec = Spec::new(name, &args.api_worker)
            .args([command])
            .env("PORT", api_port.to_string())
            .env("LISTEN_ADDR", "127.0.0.1")
            .env("LOG_FORMAT", "text");
        for (key, value) in aws_env(layout).into_iter().chain(worker_env.clone()) {
            spec = spec.env(key, value);
        }
        let probe = if command == "serve" {
            Probe::get(format!("{url}/readyz"))
        } else {
            Probe::Running
        };
        movieapp_localenv::start_process(layout, spec, probe, Duration::from_secs(30))
            .await
            .map_err(|error| failure(format!("the {name} is not ready"), format!("{error:#}")))?;
    }

    Ok(())
}

/// examples/movieapp.yaml with moto's credentials in `spec.worker.env`,
/// applied (the file read by kubectl itself, changed as JSON).
fn apply_with_moto_credentials(layout: &Layout) -> Result<()> {
    let kubeconfig = layout.kubeconfig(ClientCert::Admin);
    let read = Command::new("kubectl")
        .args([
            "create",
            "--dry-run=client",
            "-o",
            "json",
            "-f",
            "examples/movieapp.yaml",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .current_dir(&layout.root)
        .output()
        .context("running kubectl")?;
    if !read.status.success() {
        bail!(
            "kubectl could not read examples/movieapp.yaml: {}",
            String::from_utf8_lossy(&read.stderr).trim()
        );
    }
    let mut app: serde_json::Value =
        serde_json::from_slice(&read.stdout).context("kubectl's JSON of the example")?;
    let worker = app
        .pointer_mut("/spec/worker")
        .and_then(serde_json::Value::as_object_mut)
        .context("examples/movieapp.yaml has no spec.worker")?;
    let env = worker
        .entry("env")
        .or_insert_with(|| serde_json::json!([]))
        .as_array_mut()
        .context("spec.worker.env is not a list")?;
    for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        env.push(serde_json::json!({ "name": name, "value": "testing" }));
    }
    let mut apply = Command::new("kubectl")
        .args(["apply", "-f", "-"])
        .env("KUBECONFIG", &kubeconfig)
        .current_dir(&layout.root)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("running kubectl")?;
    {
        use std::io::Write as _;
        let mut stdin = apply.stdin.take().context("kubectl's stdin")?;
        stdin
            .write_all(app.to_string().as_bytes())
            .context("writing to kubectl")?;
    }
    let status = apply.wait().context("waiting for kubectl")?;
    if !status.success() {
        bail!("kubectl apply of the example failed ({status})");
    }
    Ok(())
}

/// `kubectl port-forward` to the worker's Service, supervised
/// (`demo-port-forward`), ready once the page's `/readyz` answers through it.
async fn port_forward(layout: &Layout, port: u16, url: &str) -> Result<()> {
    let spec = Spec::new("demo-port-forward", "kubectl")
        .args([
            "-n".to_owned(),
            NAMESPACE.to_owned(),
            "port-forward".to_owned(),
            "--address".to_owned(),
            "127.0.0.1".to_owned(),
            format!("svc/{MOVIEAPP}"),
            format!("{port}:80"),
        ])
        .env(
            "KUBECONFIG",
            layout.kubeconfig(ClientCert::Admin).into_os_string(),
        );
    movieapp_localenv::start_process(
        layout,
        spec,
        Probe::get(format!("{url}/readyz")),
        Duration::from_secs(30),
    )
    .await
    .map_err(|error| {
        failure(
            "the port-forward to the worker Pods does not answer",
            format!("{error:#}"),
        )
    })?;
    Ok(())
}

/// The api-worker image built here (cached by content) in the local OCI
/// registry and moto's ECR under the demo's tag: its digest.
fn push_image(layout: &Layout) -> Result<String> {
    let script = layout.root.join("tests/images/push-api-worker.sh");
    let mut command = Command::new("bash");
    command
        .arg(&script)
        .arg(IMAGE_TAG)
        .current_dir(&layout.root)
        .env("LOCALENV_VENV", &layout.venv)
        .env("LOCALENV_DIR", &layout.state)
        .env("LOCALENV_PORT_BASE", layout.ports.base().to_string())
        .stderr(std::process::Stdio::inherit());
    for (key, value) in aws_env(layout) {
        command.env(key, value);
    }
    let output = command
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let digest = stdout
        .lines()
        .find_map(|l| l.strip_prefix("digest="))
        .map(str::to_owned);
    match digest {
        Some(digest) if output.status.success() => Ok(digest),
        _ => Err(failure(
            "the api-worker image was not built and pushed",
            format!(
                "{} {IMAGE_TAG} failed ({}); its output is above.",
                script.display(),
                output.status
            ),
        )),
    }
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
