//! `kubectl movieapp` end to end: the built plugin in a directory on the
//! PATH, found and run by the real `kubectl` (its plugin discovery), against
//! the local environment (a real API server, moto) and a running operator.
//!
//! Three MovieApps: one Ready, one Stalled (its TMDB Secret is missing) and
//! one paused with a deleted child waiting; each in text and `-o json`,
//! then what the plugin must say when things go wrong: a table deleted
//! behind the operator's back, AWS unreachable, an unknown MovieApp, bad
//! flags, no cluster.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Service;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use movieapp_operator::crd::MovieApp;
use movieapp_operator::naming::{AppId, PhysicalNames};
use movieapp_tests::operator::Operator;
use movieapp_tests::{eventually, fixtures};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(90);

/// A directory holding only the built plugin, as a user's `~/.local/bin`
/// would after installing it (the build directory also holds
/// `kubectl-movieapp.d`, which `kubectl plugin list` would warn about).
fn plugin_dir() -> Result<PathBuf> {
    let built = Path::new(env!("CARGO_BIN_EXE_kubectl-movieapp"));
    let dir = std::env::temp_dir().join(movieapp_tests::unique_name("kubectl-plugins"));
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(built, dir.join("kubectl-movieapp"))
        .with_context(|| format!("copying {}", built.display()))?;
    Ok(dir)
}

/// What one `kubectl` run printed, and its exit code.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.stdout)
            .with_context(|| format!("-o json printed no JSON:\n{}", self.stdout))
    }
}

/// `kubectl <args>` with `dir` first on the PATH and `env` added.
fn kubectl(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Run> {
    let path = std::env::var("PATH").unwrap_or_default();
    let output = Command::new("kubectl")
        .args(args)
        .env("PATH", format!("{}:{path}", dir.display()))
        .envs(env.iter().copied())
        .output()
        .context("running kubectl (is it installed?)")?;
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    println!(
        "$ kubectl {} -> {}\n{}{}",
        args.join(" "),
        run.code,
        run.stdout,
        run.stderr
    );
    Ok(run)
}

fn movieapp(name: &str, repository: &str, spec: Value) -> Result<MovieApp> {
    let mut spec = spec;
    spec["worker"]["image"] = json!({ "repository": repository, "tag": "1.0.0" });
    Ok(serde_json::from_value(json!({
        "apiVersion": "movieapp.io/v1alpha1",
        "kind": "MovieApp",
        "metadata": { "name": name },
        "spec": spec,
    }))?)
}

fn condition_is(app: &MovieApp, type_: &str, status: &str) -> bool {
    app.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == status)
    })
}

async fn wait_for(
    api: &Api<MovieApp>,
    name: &str,
    what: &str,
    check: impl Fn(&MovieApp) -> bool,
) -> Result<MovieApp> {
    fixtures::wait_for_movieapp(api, name, what, TIMEOUT, check).await
}

/// The physical names of a MovieApp's tables, from the operator's one place
/// for names (the spec's explicit names, else the derived ones), each
/// checked to be in moto.
async fn tables_of(dynamodb: &aws_sdk_dynamodb::Client, app: &MovieApp) -> Result<Vec<String>> {
    let namespace = app.namespace().unwrap_or_default();
    let name = app.name_any();
    let id = AppId {
        namespace: &namespace,
        name: &name,
    };
    let names: Vec<String> = PhysicalNames::of(id, &app.spec)
        .tables
        .into_iter()
        .map(|(_, name)| name)
        .collect();
    let listed = dynamodb.list_tables().send().await?;
    for table in &names {
        ensure!(
            listed.table_names().contains(table),
            "moto has no table {table}: {:?}",
            listed.table_names()
        );
    }
    Ok(names)
}

fn items<'a>(report: &'a Value, section: &str) -> Vec<&'a Value> {
    let list = match section {
        "aws" => &report["aws"]["resources"],
        other => &report[other],
    };
    list.as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn status_through_kubectl_plugin_discovery() -> Result<()> {
    let stage = fixtures::Stage::new("plugin").await?;
    let ns = stage.ns.clone();
    let api = stage.api.clone();
    let dynamodb = aws_sdk_dynamodb::Client::new(&stage.aws);
    // No resync during the test: a table deleted out of band stays deleted
    // until the plugin has seen it. The operator makes the worker roles, so
    // the plugin shows each MovieApp's role too.
    let operator = Operator::start(
        &ns,
        &[
            "--resync-interval",
            "10m",
            "--worker-role-oidc-provider-arn",
            "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/PLUGIN",
            "--worker-role-boundary-arn",
            "arn:aws:iam::123456789012:policy/movieapp-worker-boundary",
        ],
    )
    .await?;
    // The Ready one names its users table, jobs queue and topic explicitly
    // (spec.database.tableNames, spec.queue.name, spec.notifications.topicName):
    // the plugin shows the names the operator uses, whichever way chosen.
    let explicit_table = format!("{ns}-users");
    let explicit_queue = format!("{ns}-jobs");
    let explicit_topic = format!("{ns}-notifications");
    for (name, spec) in [
        (
            "ready",
            json!({
                "database": { "tableNames": { "users": explicit_table } },
                "queue": { "name": explicit_queue },
                "notifications": { "topicName": explicit_topic },
            }),
        ),
        (
            "stalled",
            json!({ "worker": { "tmdb": { "apiKeySecretRef": { "name": "absent" } } } }),
        ),
        ("paused", json!({})),
    ] {
        api.create(
            &PostParams::default(),
            &movieapp(name, &stage.repository, spec)?,
        )
        .await?;
    }
    let ready_app = wait_for(&api, "ready", "ready to be Ready", |a| {
        condition_is(a, "Ready", "True")
    })
    .await?;
    wait_for(&api, "stalled", "stalled to be Stalled", |a| {
        condition_is(a, "Stalled", "True")
    })
    .await?;
    wait_for(&api, "paused", "paused to be Ready", |a| {
        condition_is(a, "Ready", "True")
    })
    .await?;
    // Paused, then a child deleted: it stays missing while paused.
    api.patch(
        "paused",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "annotations": { "movieapp.io/paused": "true" } } })),
    )
    .await?;
    wait_for(&api, "paused", "Paused=True", |a| {
        condition_is(a, "Paused", "True")
    })
    .await?;
    Api::<Service>::namespaced(stage.client.clone(), &ns)
        .delete("paused", &DeleteParams::default())
        .await?;

    let dir = plugin_dir()?;
    let n = ns.as_str();

    // Discovery: kubectl finds the plugin on the PATH.
    let list = kubectl(&dir, &["plugin", "list"], &[])?;
    let installed = dir.join("kubectl-movieapp");
    ensure!(
        list.stdout
            .lines()
            .any(|l| l.trim() == installed.display().to_string()),
        "kubectl plugin list does not list {}",
        installed.display()
    );
    ensure!(
        !list.stderr.contains("kubectl-movieapp"),
        "kubectl warns about the plugin: {}",
        list.stderr
    );

    // Ready, as text: every table moto has for it, ACTIVE and ours.
    let ready = kubectl(&dir, &["movieapp", "status", "ready", "-n", n], &[])?;
    ensure!(
        ready.code == 0,
        "a Ready MovieApp exits 0, not {}",
        ready.code
    );
    ensure!(
        ready
            .stdout
            .starts_with(&format!("MovieApp {ns}/ready  ✓ Ready"))
    );
    let mut tables = tables_of(&dynamodb, &ready_app).await?;
    tables.sort_unstable();
    ensure!(
        tables.len() == 3 && tables.contains(&explicit_table),
        "the three tables, one named explicitly: {tables:?}"
    );
    for table in &tables {
        ensure!(
            ready.stdout.lines().any(|l| l.contains(&format!(
                "✓ DynamoDB table {table}  ACTIVE, owned by this MovieApp"
            ))),
            "the table {table} is shown ACTIVE and owned"
        );
    }
    for shown in [
        "✓ Ready=True",
        "✓ Stalled=False",
        &format!(
            "✓ SQS queue {explicit_queue}  0 messages waiting, 0 in flight, owned by this MovieApp"
        ),
        "✓ SQS dead-letter queue movieapp-",
        &format!("✓ SNS topic {explicit_topic}  owned by this MovieApp"),
        "✓ subscription sqs arn:",
        &format!(
            "✓ IAM role {}  owned by this MovieApp",
            ready_app
                .status
                .as_ref()
                .and_then(|s| s.worker_role.as_ref())
                .map(|r| r.name.as_str())
                .context("no status.workerRole")?
        ),
        "✓ Deployment ready  2/2 replicas available",
        "✓ Pod ready-",
        "✓ Service ready",
        "✓ ServiceAccount ready",
        "✓ ConfigMap ready-config",
        "✓ PodDisruptionBudget ready",
        "✓ NetworkPolicy ready",
        "✓ Secret ready-auth",
        "✓ Secret tmdb  (referenced, not managed)",
    ] {
        ensure!(
            ready.stdout.contains(shown),
            "the Ready tree shows {shown:?}"
        );
    }
    ensure!(!ready.stdout.contains('✗'), "nothing is marked not ready");

    // Ready, as JSON.
    let run = kubectl(
        &dir,
        &["movieapp", "status", "ready", "-n", n, "-o", "json"],
        &[],
    )?;
    ensure!(run.code == 0);
    let report = run.json()?;
    ensure!(report["schemaVersion"] == 1 && report["verdict"] == "Ready");
    ensure!(report["movieApp"]["name"] == "ready" && report["movieApp"]["namespace"] == n);
    ensure!(report["reasons"] == json!([]));
    let resources = items(&report, "aws");
    let kinds: Vec<&str> = resources
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    ensure!(
        kinds
            == [
                "DynamoDBTable",
                "DynamoDBTable",
                "DynamoDBTable",
                "SQSQueue",
                "SQSDeadLetterQueue",
                "SNSTopic",
                "SNSSubscription",
                "IAMRole"
            ],
        "{kinds:?}"
    );
    for resource in &resources {
        ensure!(
            resource["health"] == "Ready" && resource["exists"] == true,
            "{resource}"
        );
    }
    ensure!(
        resources
            .iter()
            .filter(|r| r["kind"] != "SNSSubscription")
            .all(|r| r["ownership"] == "ThisMovieApp")
    );
    let tables_in_json: Vec<&str> = resources
        .iter()
        .filter(|r| r["kind"] == "DynamoDBTable")
        .filter_map(|r| r["name"].as_str())
        .collect();
    let mut sorted = tables_in_json.clone();
    sorted.sort_unstable();
    ensure!(
        sorted == tables,
        "the JSON names moto's tables: {tables_in_json:?}"
    );
    ensure!(resources[0]["status"] == "ACTIVE");
    let children = items(&report, "kubernetes");
    let deployment = children
        .iter()
        .find(|c| c["kind"] == "Deployment")
        .context("a Deployment")?;
    ensure!(deployment["health"] == "Ready" && deployment["detail"] == "2/2 replicas available");
    ensure!(deployment["pods"].as_array().is_some_and(|p| p.len() == 2));
    ensure!(
        children.iter().all(|c| c["health"] == "Ready"),
        "{children:?}"
    );
    ensure!(report["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["health"] == "Ready")
    }));

    // Stalled: the missing Secret is marked, with the operator's reason.
    let stalled = kubectl(&dir, &["movieapp", "status", "stalled", "-n", n], &[])?;
    ensure!(
        stalled.code == 1,
        "a Stalled MovieApp exits 1, not {}",
        stalled.code
    );
    ensure!(
        stalled
            .stdout
            .starts_with(&format!("MovieApp {ns}/stalled  ✗ NOT READY"))
    );
    for shown in [
        "✗ Stalled=True  SecretNotFound",
        "✗ Ready=False  SecretNotFound",
        &format!(
            "✗ Secret absent  (referenced, not managed)  — SecretNotFound: Secret {ns}/absent (the TMDB API key) does not exist"
        ),
        "✗ Deployment stalled  — missing; made once what blocks the worker is resolved (WorkerAvailable: SecretNotFound)",
        "✓ DynamoDB table movieapp-",
    ] {
        ensure!(
            stalled.stdout.contains(shown),
            "the Stalled tree shows {shown:?}"
        );
    }
    let report = kubectl(
        &dir,
        &["movieapp", "status", "stalled", "-n", n, "-o", "json"],
        &[],
    )?;
    ensure!(report.code == 1);
    let report = report.json()?;
    ensure!(report["verdict"] == "NotReady");
    let reasons = report["reasons"].as_array().context("reasons")?;
    ensure!(
        reasons.len() == 2
            && reasons[0]
                .as_str()
                .is_some_and(|r| r.starts_with("Ready is False: SecretNotFound"))
            && reasons[1]
                .as_str()
                .is_some_and(|r| r.starts_with("Secret absent: SecretNotFound")),
        "the reasons are the condition and the Secret, not the children waiting for it: {reasons:?}"
    );
    let secret = items(&report, "kubernetes")
        .into_iter()
        .find(|c| c["kind"] == "Secret" && c["name"] == "absent")
        .context("the TMDB Secret in the JSON")?;
    ensure!(
        secret["exists"] == false && secret["health"] == "NotReady" && secret["managed"] == false
    );

    // Paused: the deleted Service waits, and says so.
    let paused = kubectl(&dir, &["movieapp", "status", "paused", "-n", n], &[])?;
    ensure!(
        paused.code == 1,
        "a paused MovieApp exits 1, not {}",
        paused.code
    );
    ensure!(
        paused
            .stdout
            .starts_with(&format!("MovieApp {ns}/paused  ⏸ PAUSED"))
    );
    ensure!(paused.stdout.contains("✗ Paused=True  Paused"));
    ensure!(paused.stdout.contains(
        "✗ Service paused  — missing; the MovieApp is paused: the operator creates it once the annotation is removed"
    ));
    let report = kubectl(
        &dir,
        &["movieapp", "status", "paused", "-n", n, "-o", "json"],
        &[],
    )?
    .json()?;
    ensure!(report["verdict"] == "Paused" && report["movieApp"]["paused"] == true);

    // Live state, not the status: a table deleted behind the operator's back.
    let gone = tables.first().context("a table")?;
    dynamodb.delete_table().table_name(gone).send().await?;
    let drifted = kubectl(&dir, &["movieapp", "status", "ready", "-n", n], &[])?;
    ensure!(
        drifted.code == 1,
        "a Ready MovieApp whose table is gone exits 1"
    );
    ensure!(drifted.stdout.contains(&format!(
        "✗ DynamoDB table {gone}  missing  — missing; the operator creates it at the next reconcile"
    )));

    // AWS unreachable: the Kubernetes part is still shown, AWS is unknown.
    let closed = format!(
        "http://127.0.0.1:{}",
        movieapp_tests::operator::free_port()?
    );
    let offline = kubectl(
        &dir,
        &["movieapp", "status", "stalled", "-n", n],
        &[("AWS_ENDPOINT_URL", &closed)],
    )?;
    ensure!(
        offline.code == 1,
        "AWS unreachable is no error: {}",
        offline.code
    );
    ensure!(
        offline.stdout.contains("? not read: "),
        "AWS is marked unknown"
    );
    ensure!(offline.stdout.contains("? DynamoDB table movieapp-"));
    ensure!(
        offline.stdout.contains("✓ Deployment stalled")
            || offline.stdout.contains("Deployment stalled")
    );
    let report = kubectl(
        &dir,
        &["movieapp", "status", "stalled", "-n", n, "-o", "json"],
        &[("AWS_ENDPOINT_URL", &closed)],
    )?
    .json()?;
    ensure!(report["aws"]["error"].is_string());
    ensure!(
        items(&report, "aws")
            .iter()
            .all(|r| r["health"] == "Unknown" && r["exists"].is_null())
    );

    // Bad input: each an error with exit code 2 and a message that helps.
    let unknown = kubectl(&dir, &["movieapp", "status", "nope", "-n", n], &[])?;
    ensure!(unknown.code == 2, "an unknown MovieApp exits 2");
    ensure!(unknown.stderr.contains(&format!(
        "error: MovieApp nope not found in namespace {ns} (MovieApps in {ns}: paused, ready, stalled)"
    )));
    let bad_flag = kubectl(&dir, &["movieapp", "status", "ready", "--bogus"], &[])?;
    ensure!(bad_flag.code == 2 && bad_flag.stderr.contains("unexpected argument '--bogus'"));
    let bad_output = kubectl(&dir, &["movieapp", "status", "ready", "-o", "yaml"], &[])?;
    ensure!(bad_output.code == 2 && bad_output.stderr.contains("invalid value 'yaml'"));
    let no_name = kubectl(&dir, &["movieapp", "status"], &[])?;
    ensure!(no_name.code == 2 && no_name.stderr.contains("<NAME>"));
    let no_cluster = kubectl(
        &dir,
        &["movieapp", "status", "ready", "-n", n],
        &[("KUBECONFIG", "/nonexistent/kubeconfig")],
    )?;
    ensure!(
        no_cluster.code == 2
            && no_cluster
                .stderr
                .starts_with("error: no Kubernetes cluster to talk to")
    );
    let unreachable = unreachable_kubeconfig(&closed)?;
    let down = kubectl(
        &dir,
        &[
            "movieapp",
            "status",
            "ready",
            "-n",
            n,
            "--kubeconfig",
            &unreachable.display().to_string(),
        ],
        &[],
    )?;
    ensure!(
        down.code == 2
            && down
                .stderr
                .starts_with("error: cannot reach the Kubernetes API server at http://127.0.0.1:")
    );

    // Clean up: resume, delete (the AWS side goes too), stop.
    api.patch(
        "paused",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "annotations": { "movieapp.io/paused": null } } })),
    )
    .await?;
    for name in ["ready", "stalled", "paused"] {
        api.delete(name, &DeleteParams::default()).await?;
    }
    eventually("the MovieApps to be deleted", TIMEOUT, || async {
        Ok(api
            .list(&Default::default())
            .await?
            .items
            .is_empty()
            .then_some(()))
    })
    .await?;
    operator.stop().await?;
    std::fs::remove_dir_all(&dir)?;
    fixtures::delete_namespace(&stage.client, &ns).await
}

/// A kubeconfig whose cluster is a closed port on loopback.
fn unreachable_kubeconfig(closed: &str) -> Result<PathBuf> {
    let path = std::env::temp_dir().join(movieapp_tests::unique_name("kubeconfig-down"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: down\n  cluster: {{ server: \"{closed}\" }}\n\
             users:\n- name: nobody\n  user: {{ token: none }}\ncontexts:\n- name: down\n  context: {{ cluster: down, user: nobody }}\n\
             current-context: down\n"
        ),
    )?;
    Ok(path)
}
