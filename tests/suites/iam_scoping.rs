//! IAM scoping proven on a real run: every AWS request the operator and two
//! MovieApps' api-workers make in a whole lifecycle, recorded by moto, is
//! evaluated (conditions included) against the policies the project ships,
//! and a negative matrix built from those requests, re-targeted, is denied.
//!
//! moto enforces actions only (and no request context), so this is where
//! scoping is shown: a worker role on another MovieApp's table, queue or
//! topic, the operator on a table of another cluster or none, a role
//! without the boundary, `iam:PassRole`. The recording comes from a moto of
//! this test's own (`MOTO_ENABLE_RECORDING`), on a port of the
//! environment's block, so nothing else the environment runs is recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use aws_sdk_dynamodb::types::AttributeValue;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use movieapp_localenv::Probe;
use movieapp_localenv::process::Spec;
use movieapp_operator::crd::MovieApp;
use movieapp_operator::naming::{AppId, PhysicalNames};
use movieapp_operator::policies::evaluation::{Principal, Request};
use movieapp_operator::policies::{self, App, Target};
use movieapp_tests::iam_record::{self, Authorizations, MOTO_ACCOUNT};
use movieapp_tests::movieapps::{is, movieapp, wait_for};
use movieapp_tests::operator::{OperatorProcess, operator_binary};
use movieapp_tests::{LocalEnv, eventually, fixtures, journey, unique_name};
use serde_json::{Value, json};

const REGION: &str = "us-east-1";
const CLUSTER: &str = movieapp_operator::aws::tags::DEFAULT_CLUSTER;
const OIDC_PROVIDER: &str =
    "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/IAMSCOPING";
const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/movieapp-worker-boundary";

/// Distinct fake access keys: moto accepts any, and the recording names
/// each request's key, so each is attributed to its role.
const OPERATOR_KEY: &str = "AKIAIAMSCOPINGOPERATOR";
const KEY_A: &str = "AKIAIAMSCOPINGWORKERA";
const KEY_B: &str = "AKIAIAMSCOPINGWORKERB";

/// This test's moto: an offset of the environment's block no component
/// uses (`movieapp_localenv::ports::Slot`), then the next free ones.
const MOTO_OFFSETS: std::ops::Range<u16> = 24..32;

/// A process started through the environment's supervisor, stopped when
/// dropped.
struct Started {
    layout: movieapp_localenv::Layout,
    name: String,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = movieapp_localenv::stop_process(&self.layout, &self.name);
    }
}

async fn start(
    layout: &movieapp_localenv::Layout,
    spec: Spec,
    probe: Probe,
    timeout: Duration,
) -> Result<Started> {
    let name = spec.name.clone();
    movieapp_localenv::start_process(layout, spec, probe, timeout)
        .await
        .with_context(|| format!("starting {name}"))?;
    Ok(Started {
        layout: layout.clone(),
        name,
    })
}

fn layout() -> Result<movieapp_localenv::Layout> {
    let dir = std::env::var_os("LOCALENV_DIR").context("LOCALENV_DIR is not set")?;
    movieapp_localenv::Layout::load(&PathBuf::from(dir))?.context("no local environment runs")
}

/// moto with its recorder on, on a free port of the block.
async fn recording_moto(layout: &movieapp_localenv::Layout) -> Result<(Started, String, PathBuf)> {
    let base = layout.ports.base();
    let port = MOTO_OFFSETS
        .map(|offset| base + offset)
        .find(|p| movieapp_localenv::ports::port_free(*p))
        .context("no free port for the recording moto in the block")?;
    let file = layout.state.join(format!(
        "iam-scoping-recording-{}.jsonl",
        std::process::id()
    ));
    let url = format!("http://127.0.0.1:{port}");
    let spec = Spec::new("iam-scoping-moto", layout.venv.join("bin/moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("MOTO_ENABLE_RECORDING", "True")
        .env("MOTO_RECORDER_FILEPATH", &file);
    let started = start(
        layout,
        spec,
        Probe::get(format!("{url}/moto-api/")),
        Duration::from_secs(120),
    )
    .await?;
    // Only what follows is evaluated.
    reqwest::Client::new()
        .post(format!("{url}/moto-api/recorder/reset-recording"))
        .send()
        .await?
        .error_for_status()?;
    Ok((started, url, file))
}

async fn download(moto: &str) -> Result<String> {
    Ok(
        reqwest::get(format!("{moto}/moto-api/recorder/download-recording"))
            .await?
            .error_for_status()?
            .text()
            .await?,
    )
}

fn binary(name: &str) -> Result<PathBuf> {
    let operator = operator_binary("debug")?;
    let path = operator.with_file_name(name);
    ensure!(
        path.is_file(),
        "{} is missing: cargo build -p {name}",
        path.display()
    );
    Ok(path)
}

/// One MovieApp of the run.
struct Tenant {
    label: &'static str,
    key: &'static str,
    ns: String,
    name: &'static str,
    api: Api<MovieApp>,
}

impl Tenant {
    fn role(&self) -> String {
        format!("worker-{}", self.label)
    }

    fn names(&self, app: &MovieApp) -> PhysicalNames {
        PhysicalNames::of(
            AppId {
                namespace: &self.ns,
                name: self.name,
            },
            &app.spec,
        )
    }
}

/// The api-worker's environment as the operator generated it, with the
/// tenant's own key.
async fn worker_env(client: &kube::Client, tenant: &Tenant) -> Result<Vec<(String, String)>> {
    let mut env = journey::worker_settings(client, &tenant.ns, tenant.name).await?;
    env.extend([
        ("AWS_ACCESS_KEY_ID".into(), tenant.key.into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "fake".into()),
        ("AWS_REGION".into(), REGION.into()),
        ("LOG_FORMAT".into(), "text".into()),
    ]);
    Ok(env)
}

/// Sign-up, login, a watchlist entry, search and a movie through `serve`;
/// then a job (`enqueue`) that the `worker` handles with a notification.
async fn use_the_api(
    tenant: &Tenant,
    url: &str,
    worker_env: &[(String, String)],
    aws: &aws_config::SdkConfig,
    watchlists_table: &str,
    api_worker: &std::path::Path,
) -> Result<()> {
    let http = reqwest::Client::new();
    let signed = journey::sign_up(&http, url, &format!("{}@example.com", tenant.label)).await?;
    let user = signed.id.clone();
    journey::watch(&http, url, &signed, 550).await?;
    journey::browse(
        &http,
        url,
        &["/api/v1/movies/search?query=fight", "/api/v1/movies/603"],
    )
    .await?;
    // The watcher's snapshot made old (with the test's own key, not
    // evaluated), so refreshing the movie notifies of a change.
    let dynamo = aws_sdk_dynamodb::Client::new(aws);
    let key = [
        ("userId".to_owned(), AttributeValue::S(user)),
        ("movieId".to_owned(), AttributeValue::N("550".into())),
    ];
    let item = dynamo
        .get_item()
        .table_name(watchlists_table)
        .set_key(Some(key.clone().into()))
        .send()
        .await?
        .item
        .context("the watchlist entry")?;
    let mut movie: Value = serde_json::from_str(
        item["movie"]
            .as_s()
            .map_err(|_| anyhow::anyhow!("no snapshot"))?,
    )?;
    movie["releaseDate"] = "1999-01-01".into();
    dynamo
        .update_item()
        .table_name(watchlists_table)
        .set_key(Some(key.into()))
        .update_expression("SET movie = :m")
        .expression_attribute_values(":m", AttributeValue::S(movie.to_string()))
        .send()
        .await?;
    let mut enqueue = tokio::process::Command::new(api_worker);
    enqueue
        .arg("enqueue")
        .arg(r#"{"type":"refresh-movie","movieId":550}"#)
        .envs(worker_env.iter().map(|(k, v)| (k, v)))
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), enqueue.output())
        .await
        .context("api-worker enqueue did not finish within 60 s")??;
    ensure!(
        output.status.success(),
        "api-worker enqueue: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Whether the recording holds an operation of `key`'s role yet.
async fn recorded(moto: &str, key: &str, operation: &str) -> Result<bool> {
    let keys = BTreeMap::from([(key.to_owned(), "x".to_owned())]);
    let text = download(moto).await?;
    let out = iam_record::authorizations(&text, &keys, MOTO_ACCOUNT)?;
    Ok(out.authorized.iter().any(|a| a.operation == operation))
}

/// The rendered documents each role's requests are evaluated against.
fn policies_for(
    apps: &[(&Tenant, &MovieApp)],
    repository_arn: &str,
) -> Result<BTreeMap<String, Principal>> {
    let target = Target {
        account: MOTO_ACCOUNT.into(),
        region: REGION.into(),
        prefix: "movieapp-".into(),
        cluster: CLUSTER.into(),
    };
    let parse = |text: String| -> Result<Value> { Ok(serde_json::from_str(&text)?) };
    let operator = parse(
        policies::operator()
            .render(
                &target,
                None,
                &[
                    ("ecr_repository_arns", vec![repository_arn.to_owned()]),
                    ("events_queue_arns", vec![]),
                ],
            )
            .map_err(anyhow::Error::msg)?,
    )?;
    let boundary = parse(
        policies::worker_boundary()
            .render(&target, None, &[])
            .map_err(anyhow::Error::msg)?,
    )?;
    let mut out = BTreeMap::from([("operator".to_owned(), Principal::with_policy(operator))]);
    for (tenant, app) in apps {
        let worker = parse(
            policies::worker()
                .render(
                    &target,
                    Some(&App {
                        namespace: tenant.ns.clone(),
                        name: tenant.name.to_owned(),
                        spec: app.spec.clone(),
                    }),
                    &[],
                )
                .map_err(anyhow::Error::msg)?,
        )?;
        out.insert(
            tenant.role(),
            Principal {
                identity: vec![worker],
                boundary: Some(boundary.clone()),
            },
        );
    }
    Ok(out)
}

#[tokio::test]
async fn every_recorded_request_is_allowed_and_the_negative_matrix_denied() -> Result<()> {
    let env = LocalEnv::get();
    let layout = layout()?;
    let client = env.kube().await?;
    fixtures::install_crd(&client).await?;
    let (moto_process, moto, recording_file) = recording_moto(&layout).await?;
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&moto)
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await;

    let repository = unique_name("movieapp-img");
    let ecr = aws_sdk_ecr::Client::new(&aws);
    fixtures::push_image(&ecr, &repository, "1.0.0", 1).await?;
    let repository_arn = format!("arn:aws:ecr:{REGION}:{MOTO_ACCOUNT}:repository/{repository}");

    let mut tenants = Vec::new();
    for (label, key, policy) in [("a", KEY_A, "Delete"), ("b", KEY_B, "Retain")] {
        let ns = unique_name(&format!("iam-{label}"));
        fixtures::namespace(&client, &ns).await?;
        fixtures::tmdb_secret(&client, &ns, &env.tmdb_api_key).await?;
        let api: Api<MovieApp> = Api::namespaced(client.clone(), &ns);
        api.create(
            &PostParams::default(),
            &movieapp(
                "shop",
                json!({
                    "deletionPolicy": policy,
                    "worker": { "image": { "repository": repository, "tag": "1.0.0" } },
                }),
            )?,
        )
        .await?;
        tenants.push(Tenant {
            label,
            key,
            ns,
            name: "shop",
            api,
        });
    }
    let namespaces = tenants
        .iter()
        .map(|t| t.ns.as_str())
        .collect::<Vec<_>>()
        .join(",");

    let operator = OperatorProcess::spawn(
        &operator_binary("debug")?,
        &namespaces,
        &[
            "--aws-endpoint-url",
            &moto,
            "--default-region",
            REGION,
            "--worker-tmdb-base-url",
            &env.tmdb_base_url,
            "--resync-interval",
            "5s",
            "--worker-role-oidc-provider-arn",
            OIDC_PROVIDER,
            "--worker-role-boundary-arn",
            BOUNDARY,
        ],
        &[
            ("AWS_ACCESS_KEY_ID", OPERATOR_KEY),
            ("AWS_SECRET_ACCESS_KEY", "fake"),
            ("AWS_REGION", REGION),
        ],
    )
    .await?;

    let ready = |app: &MovieApp| {
        is(app, "Ready", "True", None)
            && app.status.as_ref().and_then(|s| s.observed_generation) == app.metadata.generation
    };
    let mut apps = Vec::new();
    for tenant in &tenants {
        let app = wait_for(&tenant.api, tenant.name, "Ready=True", ready).await?;
        ensure!(
            app.status
                .as_ref()
                .and_then(|s| s.worker_role.as_ref())
                .is_some(),
            "no worker role in the status"
        );
        apps.push(app);
    }

    // Drift, made with the test's key, repaired by the operator: a queue
    // setting, the role's boundary, an ownership tag of a table.
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let iam = aws_sdk_iam::Client::new(&aws);
    let dynamo = aws_sdk_dynamodb::Client::new(&aws);
    let status = apps[0].status.clone().context("status")?;
    let queue_url = status.queue.as_ref().context("a queue")?.url.clone();
    let role = status.worker_role.as_ref().context("a role")?.name.clone();
    let table_arn = status.tables.first().context("a table")?.arn.clone();
    let visibility = aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout;
    sqs.set_queue_attributes()
        .queue_url(&queue_url)
        .attributes(visibility.clone(), "7")
        .send()
        .await?;
    iam.delete_role_permissions_boundary()
        .role_name(&role)
        .send()
        .await?;
    let name_tag = movieapp_operator::aws::tags::NAME;
    dynamo
        .untag_resource()
        .resource_arn(&table_arn)
        .tag_keys(name_tag)
        .send()
        .await?;
    eventually("the drift repaired", Duration::from_secs(90), || async {
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(visibility.clone())
            .send()
            .await?
            .attributes
            .unwrap_or_default();
        let boundary = iam
            .get_role()
            .role_name(&role)
            .send()
            .await?
            .role
            .and_then(|r| r.permissions_boundary)
            .and_then(|b| b.permissions_boundary_arn);
        let tags = dynamo
            .list_tags_of_resource()
            .resource_arn(&table_arn)
            .send()
            .await?
            .tags
            .unwrap_or_default();
        Ok(
            (attributes.get(&visibility).map(String::as_str) != Some("7")
                && boundary.as_deref() == Some(BOUNDARY)
                && tags.iter().any(|t| t.key == name_tag))
            .then_some(()),
        )
    })
    .await?;

    // Each tenant's api-worker: serve and worker, with its own key.
    let api_worker = binary("api-worker")?;
    let mut workers = Vec::new();
    for (tenant, app) in tenants.iter().zip(&apps) {
        let env_vars = worker_env(&client, tenant).await?;
        let port = movieapp_tests::operator::free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        for command in ["serve", "worker"] {
            let mut spec = Spec::new(
                &format!("iam-scoping-{}-{command}", tenant.label),
                &api_worker,
            )
            .args([command])
            .env("PORT", port.to_string())
            .env("LISTEN_ADDR", "127.0.0.1");
            for (k, v) in &env_vars {
                spec = spec.env(k, v);
            }
            let probe = if command == "serve" {
                Probe::get(format!("{url}/readyz"))
            } else {
                Probe::Running
            };
            workers.push(start(&layout, spec, probe, Duration::from_secs(60)).await?);
        }
        let names = tenant.names(app);
        use_the_api(
            tenant,
            &url,
            &env_vars,
            &aws,
            names.table(movieapp_model::WATCHLISTS.component),
            &api_worker,
        )
        .await?;
        // sync-popular: one job in a process of its own.
        let mut sync = tokio::process::Command::new(&api_worker);
        sync.args(["sync-popular", "--pages", "1"])
            .envs(env_vars.iter().map(|(k, v)| (k, v)))
            .kill_on_drop(true);
        let output = tokio::time::timeout(Duration::from_secs(60), sync.output())
            .await
            .context("sync-popular did not finish within 60 s")??;
        ensure!(
            output.status.success(),
            "sync-popular: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    for tenant in &tenants {
        eventually(
            &format!("{}'s worker to publish the notification", tenant.label),
            Duration::from_secs(90),
            || async {
                Ok(recorded(&moto, tenant.key, "sns:PublishBatch")
                    .await?
                    .then_some(()))
            },
        )
        .await?;
    }
    drop(workers);

    // Deletion: A's resources deleted, B's retained.
    for tenant in &tenants {
        tenant
            .api
            .delete(tenant.name, &DeleteParams::default())
            .await?;
    }
    for tenant in &tenants {
        eventually("the MovieApp gone", Duration::from_secs(120), || async {
            Ok(tenant
                .api
                .get_opt(tenant.name)
                .await?
                .is_none()
                .then_some(()))
        })
        .await?;
    }
    operator.kill();

    // Every recorded request, evaluated.
    let recording = download(&moto).await?;
    drop(moto_process);
    let keys: BTreeMap<String, String> = [(OPERATOR_KEY.to_owned(), "operator".to_owned())]
        .into_iter()
        .chain(tenants.iter().map(|t| (t.key.to_owned(), t.role())))
        .collect();
    let pairs: Vec<(&Tenant, &MovieApp)> = tenants.iter().zip(&apps).collect();
    let policies = policies_for(&pairs, &repository_arn)?;
    let authorizations = iam_record::authorizations(&recording, &keys, MOTO_ACCOUNT)?;
    let report = iam_record::evaluate(&authorizations, &policies)?;
    eprintln!("{report}");
    for (role, figures) in &report.roles {
        eprintln!("{role}: {:?}", figures.actions);
    }
    report.ensure_all_allowed()?;
    for role in ["operator", "worker-a", "worker-b"] {
        ensure!(
            report.roles.get(role).is_some_and(|r| r.requests > 0),
            "no request of {role} recorded"
        );
    }
    // Only the test's own setup, moto's API and nothing else is left out.
    for why in report.ignored.keys() {
        ensure!(
            why.contains("testing") || why.contains("moto-api"),
            "unexpected requests left out: {why}"
        );
    }
    // The same, through the entry point a suite of its own would call.
    iam_record::check_recording(&recording, &keys, &policies)?;

    let matrix = negative_matrix(&authorizations, &pairs)?;
    let mut allowed = Vec::new();
    for (role, requests) in &matrix {
        allowed.extend(
            iam_record::allowed_among(&policies[role], requests)?
                .into_iter()
                .map(|d| format!("{role}: {d}")),
        );
    }
    let cases: usize = matrix.values().map(Vec::len).sum();
    ensure!(
        allowed.is_empty(),
        "{} of {cases} negative cases allowed:\n{}",
        allowed.len(),
        allowed.join("\n")
    );
    eprintln!(
        "negative matrix: {cases} cases denied ({})",
        matrix
            .iter()
            .map(|(role, r)| format!("{role}: {}", r.len()))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // The matrix can fail: with A's worker policy widened to every name
    // under the prefix, A's requests on B's resources are allowed.
    let mut widened = policies["worker-a"].clone();
    widen(&mut widened.identity[0]);
    let on_b = &matrix["worker-a"];
    let now_allowed = iam_record::allowed_among(&widened, on_b)?;
    ensure!(
        !now_allowed.is_empty(),
        "a widened worker policy still denies every negative case: the matrix proves nothing"
    );
    eprintln!(
        "with A's worker policy widened to movieapp-*: {} of {} of its negative cases allowed",
        now_allowed.len(),
        on_b.len()
    );
    // Kept for a look when the test fails.
    let _ = std::fs::remove_file(&recording_file);
    Ok(())
}

/// Every statement's resources widened to every name under the prefix of
/// their service, and their conditions dropped: the mistake the matrix is
/// there to catch.
fn widen(policy: &mut Value) {
    for statement in policy["Statement"].as_array_mut().into_iter().flatten() {
        let object = statement.as_object_mut().expect("a statement");
        object.remove("Condition");
        let resources: Vec<Value> = match object.get("Resource") {
            Some(Value::Array(items)) => items.clone(),
            Some(one) => vec![one.clone()],
            None => Vec::new(),
        };
        let wide: BTreeSet<String> = resources
            .iter()
            .filter_map(Value::as_str)
            .map(|arn| match arn.find("movieapp-") {
                Some(i) => format!("{}movieapp-*", &arn[..i]),
                None => arn.to_owned(),
            })
            .collect();
        object.insert("Resource".into(), json!(wide));
    }
}

/// The tags a re-targeted request reads: what `arn`'s resource carried.
fn tags_of(
    authorizations: &Authorizations,
    arn: &str,
) -> movieapp_operator::policies::evaluation::Tags {
    let base = arn.find("/index/").map_or(arn, |i| &arn[..i]);
    authorizations.tags.get(base).cloned().unwrap_or_default()
}

/// The negative matrix, by the role whose policy must deny it, from the
/// recorded requests:
///
/// - each worker on the other MovieApp's tables (and indexes), queue and
///   topic: each of its requests re-targeted at the other's resource of
///   the same kind, with that resource's tags;
/// - each worker on any other action: each action the operator used on
///   its MovieApp's resources, made by the worker on them, and a few no
///   component declares;
/// - the operator changing, deleting or tagging a table that is untagged
///   (without claiming it: claiming an untagged table is adoption) or
///   tagged for another cluster;
/// - the operator creating a role without the boundary, with another one,
///   or outside the prefix, or setting another boundary;
/// - `iam:PassRole` by anyone, on the roles made and on `*`.
fn negative_matrix(
    authorizations: &Authorizations,
    apps: &[(&Tenant, &MovieApp)],
) -> Result<BTreeMap<String, Vec<Request>>> {
    let [(a, app_a), (b, app_b)] = apps else {
        bail!("two MovieApps");
    };
    let mut matrix: BTreeMap<String, Vec<Request>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut push = |matrix: &mut BTreeMap<String, Vec<Request>>, role: &str, request: Request| {
        let key = (
            role.to_owned(),
            request.action.clone(),
            request.resource.clone(),
            format!(
                "{:?}{:?}{:?}",
                request.resource_tags, request.request_tags, request.permissions_boundary
            ),
        );
        if seen.insert(key) {
            matrix.entry(role.to_owned()).or_default().push(request);
        }
    };
    for ((x, app_x), (y, app_y)) in [((a, app_a), (b, app_b)), ((b, app_b), (a, app_a))] {
        let (names_x, names_y) = (x.names(app_x), y.names(app_y));
        let renames: Vec<(String, String)> = names_x.all().into_iter().zip(names_y.all()).collect();
        // X's worker on Y's resources.
        for request in authorizations.of(&x.role()) {
            let mut resource = request.resource.clone();
            for (from, to) in &renames {
                resource = resource.replace(from.as_str(), to);
            }
            ensure!(
                resource != request.resource,
                "{}: not one of {}'s resources",
                request.what,
                x.label
            );
            push(
                &mut matrix,
                &x.role(),
                Request {
                    resource_tags: tags_of(authorizations, &resource),
                    what: format!(
                        "{}'s {} re-targeted at {}'s {resource}",
                        x.label, request.action, y.label
                    ),
                    resource,
                    ..request.clone()
                },
            );
        }
        // X's worker on any other action on its own resources: what the
        // operator did to them, and a few calls no component declares.
        let worker_actions: BTreeSet<String> = authorizations
            .of(&x.role())
            .map(|r| r.action.clone())
            .collect();
        let own = names_x.all();
        for request in authorizations.of("operator") {
            let mine = own.iter().any(|n| {
                request.resource.ends_with(&format!(":{n}"))
                    || request.resource.ends_with(&format!("/{n}"))
            });
            if mine && !worker_actions.contains(&request.action) {
                push(
                    &mut matrix,
                    &x.role(),
                    Request {
                        what: format!(
                            "{}'s worker making the operator's {}",
                            x.label, request.what
                        ),
                        ..request.clone()
                    },
                );
            }
        }
        let table = format!(
            "arn:aws:dynamodb:{REGION}:{MOTO_ACCOUNT}:table/{}",
            names_x.table(movieapp_model::USERS.component)
        );
        let queue = format!("arn:aws:sqs:{REGION}:{MOTO_ACCOUNT}:{}", names_x.jobs_queue);
        for (action, resource) in [
            ("dynamodb:Scan", &table),
            ("dynamodb:BatchWriteItem", &table),
            ("dynamodb:DeleteTable", &table),
            ("dynamodb:ExportTableToPointInTime", &table),
            ("sqs:PurgeQueue", &queue),
            ("sqs:SetQueueAttributes", &queue),
            ("sqs:DeleteQueue", &queue),
        ] {
            push(
                &mut matrix,
                &x.role(),
                Request {
                    action: action.into(),
                    resource: resource.clone(),
                    resource_tags: tags_of(authorizations, resource),
                    what: format!("{}'s worker: {action} on its own {resource}", x.label),
                    ..Request::default()
                },
            );
        }
    }

    // The operator on tables it does not own.
    let foreign_cluster = "another-cluster";
    for request in authorizations.of("operator") {
        if !request.resource.contains(":table/") {
            continue;
        }
        let change = matches!(
            request.action.as_str(),
            "dynamodb:DeleteTable"
                | "dynamodb:UpdateTable"
                | "dynamodb:UpdateContinuousBackups"
                | "dynamodb:UpdateTimeToLive"
                | "dynamodb:TagResource"
                | "dynamodb:UntagResource"
        );
        if !change || request.resource_tags.is_empty() {
            continue;
        }
        let mut foreign = request.resource_tags.clone();
        foreign.insert(
            movieapp_operator::aws::tags::CLUSTER.into(),
            foreign_cluster.into(),
        );
        push(
            &mut matrix,
            "operator",
            Request {
                resource_tags: foreign,
                what: format!("{} on a table of {foreign_cluster}", request.what),
                ..request.clone()
            },
        );
        // Untagged: a change, or a tag write that does not claim it for
        // this cluster (the managed-by tag left out).
        let mut untagged = Request {
            resource_tags: Default::default(),
            what: format!("{} on an untagged table", request.what),
            ..request.clone()
        };
        if request.action == "dynamodb:TagResource" {
            untagged
                .request_tags
                .remove(movieapp_operator::aws::tags::MANAGED_BY);
            untagged.tag_keys = untagged.request_tags.keys().cloned().collect();
            if untagged.tag_keys.is_empty() {
                continue;
            }
        }
        push(&mut matrix, "operator", untagged);
    }
    // Roles: without the boundary, with another, outside the prefix.
    let mut roles = BTreeSet::new();
    for request in authorizations.of("operator") {
        if request.action == "iam:CreateRole" || request.action == "iam:PutRolePermissionsBoundary"
        {
            roles.insert(request.resource.clone());
            for (boundary, what) in [
                (None, "without a boundary"),
                (
                    Some("arn:aws:iam::aws:policy/AdministratorAccess"),
                    "with AdministratorAccess as its boundary",
                ),
                (
                    Some("arn:aws:iam::123456789012:policy/movieapp-other-boundary"),
                    "with another boundary",
                ),
            ] {
                push(
                    &mut matrix,
                    "operator",
                    Request {
                        permissions_boundary: boundary.map(str::to_owned),
                        what: format!("{} {what}", request.what),
                        ..request.clone()
                    },
                );
            }
            if request.action == "iam:CreateRole" {
                let name = request.resource.rsplit('/').next().unwrap_or_default();
                push(
                    &mut matrix,
                    "operator",
                    Request {
                        resource: format!("arn:aws:iam::{MOTO_ACCOUNT}:role/admin-{name}"),
                        what: format!("{} outside the prefix", request.what),
                        ..request.clone()
                    },
                );
            }
        }
    }
    ensure!(!roles.is_empty(), "the operator made no role");
    // iam:PassRole, by anyone.
    for role in ["operator".to_owned(), a.role(), b.role()] {
        for resource in roles.iter().cloned().chain(["*".to_owned()]) {
            push(
                &mut matrix,
                &role,
                Request {
                    action: "iam:PassRole".into(),
                    what: format!("{role}: iam:PassRole on {resource}"),
                    resource,
                    ..Request::default()
                },
            );
        }
    }
    Ok(matrix)
}
