//! The shipped IAM policies under enforcement: a moto of the suite's own
//! that authenticates and authorises every call
//! (`INITIAL_NO_AUTH_ACTION_COUNT`), the operator running as a role with the
//! operator policy, and the api-worker (`serve`, `worker`, `sync-popular`,
//! `enqueue`) as the worker role the operator made, by IRSA: a token of the
//! worker's ServiceAccount from the kube-apiserver, exchanged by the SDK's
//! own web-identity provider at STS (`tests/localenv/moto_iam_enforced.py`
//! checks it against the role's trust as STS does).
//!
//! moto 5 checks actions, not resources or conditions (docs/iam.md, "Proven
//! under enforcement"): the roles carry the policies rendered
//! `--actions-only`, and what this suite proves is that no action any
//! component calls is missing from them. The scoping is proven on the
//! requests it records (`iam-enforced/recording.jsonl` in the target
//! directory, with `keys.json` naming the role of every access key and the
//! shipped policies under `iam/`), by [`evaluate_recording`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_iam::config::{Credentials, ProvideCredentials};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use movieapp_localenv::ports::Slot;
use movieapp_localenv::process::Spec;
use movieapp_localenv::{Layout, Probe};
use movieapp_model::iam::Component;
use movieapp_operator::crd::MovieApp;
use movieapp_operator::policies;
use movieapp_tests::inventory::Inventory;
use movieapp_tests::operator::{OperatorProcess, free_port, operator_binary};
use movieapp_tests::{LocalEnv, eventually, fixtures, journey, movieapps, unique_name};
use serde_json::{Value, json};

const REGION: &str = "us-east-1";
/// moto's account.
const ACCOUNT: &str = "123456789012";
/// The kube-apiserver's `--service-account-issuer`, as IAM names the OIDC
/// provider of a cluster.
const ISSUER: &str = "kubernetes.default.svc.cluster.local";
/// The calls moto lets through before it enforces: the admin's CreateUser,
/// PutUserPolicy and CreateAccessKey.
const BOOTSTRAP_CALLS: usize = 3;
/// The supervisor's name for the suite's moto.
const MOTO: &str = "iam-enforced-moto";
const OPERATOR_ROLE: &str = "movieapp-operator";
const BOUNDARY: &str = "movieapp-worker-boundary";
/// How long a MovieApp may take to be Ready or gone on a loaded machine.
const TIMEOUT: Duration = Duration::from_secs(180);
/// The line `moto_iam_enforced.py` logs for every call it refuses
/// (AccessDenied, an unknown key, a bad signature, a web identity its role
/// does not trust).
const REFUSED: &str = "moto_iam_enforced: refused";

/// The suite's moto, stopped when dropped.
struct EnforcedMoto {
    layout: Layout,
    url: String,
    log: PathBuf,
}

impl EnforcedMoto {
    /// Starts it through the local environment's supervisor, recording
    /// every request to `recording`.
    async fn start(layout: Layout, recording: &Path) -> Result<Self> {
        let port = layout.port(Slot::IamEnforcedMoto);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("localenv/moto_iam_enforced.py");
        let (_, service_account_key) = layout.pki().service_account();
        let args: Vec<std::ffi::OsString> = vec![
            script.into(),
            "--service-account-key".into(),
            service_account_key.into(),
            "--".into(),
            "-H".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string().into(),
        ];
        let spec = Spec::new(MOTO, layout.venv.join("bin/python"))
            .args(args)
            .env("INITIAL_NO_AUTH_ACTION_COUNT", BOOTSTRAP_CALLS.to_string())
            .env("MOTO_ENABLE_RECORDING", "True")
            .env("MOTO_RECORDER_FILEPATH", recording);
        let url = format!("http://127.0.0.1:{port}");
        movieapp_localenv::start_process(
            &layout,
            spec,
            Probe::get(format!("{url}/moto-api/")),
            Duration::from_secs(60),
        )
        .await
        .context("starting the suite's moto")?;
        Ok(Self {
            log: layout.log(MOTO),
            layout,
            url,
        })
    }

    async fn post(&self, path: &str) -> Result<()> {
        reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("POST {path}"))?;
        Ok(())
    }

    async fn get(&self, path: &str) -> Result<String> {
        Ok(reqwest::get(format!("{}{path}", self.url))
            .await?
            .error_for_status()
            .with_context(|| format!("GET {path}"))?
            .text()
            .await?)
    }

    /// How far its log has grown: [`Self::refusals_since`] reads on from there.
    fn log_mark(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    /// The lines of its log since `mark` that show a refused call.
    fn refusals_since(&self, mark: u64) -> Vec<String> {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let start = usize::try_from(mark).unwrap_or(usize::MAX).min(text.len());
        String::from_utf8_lossy(&text[start..])
            .lines()
            .filter(|line| line.contains(REFUSED))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for EnforcedMoto {
    fn drop(&mut self) {
        let _ = movieapp_localenv::stop_process(&self.layout, MOTO);
    }
}

/// An SDK configuration for the suite's moto with `credentials`.
async fn sdk(url: &str, credentials: Credentials) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new(REGION))
        .credentials_provider(credentials)
        .load()
        .await
}

/// The admin: the first calls, unauthenticated, make an IAM user with every
/// right and its access key; everything after is signed and checked.
async fn bootstrap_admin(url: &str) -> Result<Credentials> {
    let anyone = Credentials::new("bootstrap", "bootstrap", None, None, "bootstrap");
    let iam = aws_sdk_iam::Client::new(&sdk(url, anyone).await);
    iam.create_user().user_name("admin").send().await?;
    let everything = json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Action": "*", "Resource": "*" }],
    });
    iam.put_user_policy()
        .user_name("admin")
        .policy_name("admin")
        .policy_document(everything.to_string())
        .send()
        .await?;
    let key = iam
        .create_access_key()
        .user_name("admin")
        .send()
        .await?
        .access_key
        .context("CreateAccessKey returned no key")?;
    Ok(Credentials::new(
        key.access_key_id,
        key.secret_access_key,
        None,
        None,
        "admin",
    ))
}

/// The shipped documents for moto's account, `iam-policies` as
/// `make iam-policies` renders them (`actions_only`: as the suite's roles
/// carry them), by file stem.
fn rendered(actions_only: bool) -> Result<BTreeMap<String, String>> {
    let args = policies::IamPoliciesArgs {
        out: Some(PathBuf::from("unused")),
        templates: None,
        account: ACCOUNT.into(),
        region: REGION.into(),
        prefix: "movieapp-".into(),
        cluster: movieapp_operator::aws::tags::DEFAULT_CLUSTER.into(),
        movieapp: Vec::new(),
        ecr_repository_arn: Vec::new(),
        events_queue_arn: Vec::new(),
        actions_only,
    };
    Ok(policies::files(&args)
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .map(|(file, text)| (file.trim_end_matches(".json").to_owned(), text))
        .collect())
}

/// One MovieApp's worker policy as shipped (ownership conditions, its own
/// ARNs): what the scoping evaluation reads.
fn shipped_worker_policy(namespace: &str, app: &MovieApp) -> Result<String> {
    let target = policies::Target {
        account: ACCOUNT.into(),
        region: REGION.into(),
        prefix: "movieapp-".into(),
        cluster: movieapp_operator::aws::tags::DEFAULT_CLUSTER.into(),
    };
    let app = policies::App {
        namespace: namespace.to_owned(),
        name: app.metadata.name.clone().unwrap_or_default(),
        spec: app.spec.clone(),
    };
    policies::worker()
        .render(&target, Some(&app), &[])
        .map_err(anyhow::Error::msg)
}

/// What Terraform makes before the operator runs: the cluster's OIDC
/// provider, the worker boundary and the operator's role (trusted by the
/// admin here, by the operator's ServiceAccount on EKS).
struct Account {
    oidc_provider_arn: String,
    boundary_arn: String,
    operator_role_arn: String,
}

async fn terraform(
    admin: &aws_config::SdkConfig,
    moto_policies: &BTreeMap<String, String>,
) -> Result<Account> {
    let iam = aws_sdk_iam::Client::new(admin);
    let oidc_provider_arn = iam
        .create_open_id_connect_provider()
        .url(format!("https://{ISSUER}"))
        .client_id_list(movieapp_operator::provision::role::IRSA_AUDIENCE)
        .thumbprint_list("9e99a48a9960b14926bb7f3b02e22da2b0ab7280")
        .send()
        .await?
        .open_id_connect_provider_arn
        .context("no OIDC provider ARN")?;
    let boundary_arn = iam
        .create_policy()
        .policy_name(BOUNDARY)
        .policy_document(&moto_policies[policies::WORKER_BOUNDARY])
        .send()
        .await?
        .policy
        .and_then(|p| p.arn)
        .context("no boundary ARN")?;
    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "AWS": format!("arn:aws:iam::{ACCOUNT}:user/admin") },
            "Action": "sts:AssumeRole",
        }],
    });
    let operator_role_arn = iam
        .create_role()
        .role_name(OPERATOR_ROLE)
        .assume_role_policy_document(trust.to_string())
        .send()
        .await?
        .role
        .map(|r| r.arn)
        .context("no operator role")?;
    iam.put_role_policy()
        .role_name(OPERATOR_ROLE)
        .policy_name("movieapp-operator")
        .policy_document(&moto_policies[policies::OPERATOR])
        .send()
        .await?;
    Ok(Account {
        oidc_provider_arn,
        boundary_arn,
        operator_role_arn,
    })
}

/// Credentials of `role_arn`, assumed with sts:AssumeRole by the admin.
async fn assume(
    admin: &aws_config::SdkConfig,
    role_arn: &str,
    session: &str,
) -> Result<Credentials> {
    let provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
        .session_name(session)
        .configure(admin)
        .build()
        .await;
    Ok(provider.provide_credentials().await?)
}

/// Where the suite leaves its recording, its key map and the shipped
/// policies: `<target dir>/iam-enforced/`.
fn artifacts_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("iam-enforced")
}

/// A ServiceAccount token for STS, as EKS projects it for IRSA, written to
/// a file the SDK reads (`AWS_WEB_IDENTITY_TOKEN_FILE`).
async fn web_identity_token(
    client: &kube::Client,
    namespace: &str,
    account: &str,
    file: &Path,
) -> Result<()> {
    let request = TokenRequest {
        metadata: Default::default(),
        spec: TokenRequestSpec {
            audiences: vec![movieapp_operator::provision::role::IRSA_AUDIENCE.to_owned()],
            expiration_seconds: Some(3600),
            bound_object_ref: None,
        },
        status: None,
    };
    let token = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .with_context(|| format!("a token of the ServiceAccount {namespace}/{account}"))?
        .status
        .context("the TokenRequest has no status")?
        .token;
    std::fs::write(file, token).with_context(|| format!("writing {}", file.display()))
}

/// The api-worker's settings as the operator generated them, for moto at
/// `url`.
async fn worker_settings(
    client: &kube::Client,
    namespace: &str,
    app: &str,
    url: &str,
) -> Result<Vec<(String, String)>> {
    let mut env = journey::worker_settings(client, namespace, app).await?;
    env.push(("AWS_ENDPOINT_URL".into(), url.to_owned()));
    env.push(("AWS_REGION".into(), REGION.into()));
    env.push(("LOG_FORMAT".into(), "text".into()));
    Ok(env)
}

/// An api-worker command as the worker role, by IRSA: the SDK's default
/// chain finds no keys (removed by `env -u`) and no profile, and exchanges
/// the token file for the role's credentials.
fn as_worker_role(
    name: &str,
    api_worker: &Path,
    args: &[&str],
    settings: &[(String, String)],
    role_arn: &str,
    token_file: &Path,
) -> Spec {
    let mut spec = Spec::new(name, "env").args([
        "-u",
        "AWS_ACCESS_KEY_ID",
        "-u",
        "AWS_SECRET_ACCESS_KEY",
        "-u",
        "AWS_SESSION_TOKEN",
        "-u",
        "AWS_PROFILE",
    ]);
    spec = spec
        .args([api_worker.as_os_str()])
        .args(args.iter().copied());
    for (key, value) in settings {
        spec = spec.env(key, value);
    }
    spec.env("AWS_ROLE_ARN", role_arn)
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", token_file)
        .env("AWS_ROLE_SESSION_NAME", name)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
}

/// Runs `spec` to its end (`sync-popular`, `enqueue`), failing with its
/// output unless it succeeds.
async fn run_to_end(spec: &Spec, log: &Path) -> Result<()> {
    let output = tokio::process::Command::new(&spec.program)
        .args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .output()
        .await
        .with_context(|| format!("running {}", spec.name))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(log, &text)?;
    ensure!(
        output.status.success(),
        "{} failed ({}):\n{text}",
        spec.name,
        output.status
    );
    Ok(())
}

fn api_worker_binary() -> Result<PathBuf> {
    let operator = operator_binary("debug")?;
    let binary = operator.with_file_name("api-worker");
    ensure!(
        binary.is_file(),
        "{} is missing: build it first (cargo build -p api-worker)",
        binary.display()
    );
    Ok(binary)
}

/// Lines of a log that show AWS refusing a call.
fn denials(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| {
            [
                "AccessDenied",
                "not authorized",
                "InvalidClientTokenId",
                "SignatureDoesNotMatch",
                "ExpiredToken",
            ]
            .iter()
            .any(|needle| line.contains(needle))
        })
        .map(str::to_owned)
        .collect()
}

struct Suite {
    client: kube::Client,
    api: Api<MovieApp>,
    namespace: String,
    moto: EnforcedMoto,
    admin: aws_config::SdkConfig,
    layout: Layout,
    dir: PathBuf,
    /// The operator role's policy, as the suite's moto judges it.
    operator_policy: String,
}

impl Suite {
    fn app(&self, name: &str, policy: &str, repository: &str) -> Result<MovieApp> {
        movieapps::movieapp(
            name,
            json!({
                "deletionPolicy": policy,
                "worker": { "image": { "repository": repository, "tag": "1.0.0" } },
            }),
        )
    }

    /// Waits until the MovieApp is Ready; fails with its conditions.
    async fn ready(&self, name: &str) -> Result<MovieApp> {
        let ready = fixtures::wait_for_movieapp(&self.api, name, "Ready", TIMEOUT, |a| {
            movieapps::is(a, "Ready", "True", None)
        })
        .await;
        match ready {
            Ok(app) => Ok(app),
            Err(error) => {
                let conditions: Vec<String> = self
                    .api
                    .get(name)
                    .await?
                    .status
                    .map(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .filter(|c| c.status != "True" || c.type_ == "Stalled")
                    .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
                    .collect();
                Err(error.context(format!("{name}: {}", conditions.join("; "))))
            }
        }
    }

    /// status.workerRole, WorkerRoleReady and the ServiceAccount's
    /// annotation agree on a role IAM has.
    async fn check_worker_role(&self, app: &MovieApp) -> Result<String> {
        let name = app.metadata.name.clone().unwrap_or_default();
        let role = app
            .status
            .as_ref()
            .and_then(|s| s.worker_role.clone())
            .with_context(|| format!("{name}: no status.workerRole"))?;
        ensure!(
            role.arn == format!("arn:aws:iam::{ACCOUNT}:role/{}", role.name),
            "{name}: status.workerRole {role:?}"
        );
        ensure!(
            movieapps::is(app, "WorkerRoleReady", "True", None),
            "{name}: WorkerRoleReady is not True: {:?}",
            movieapps::condition(app, "WorkerRoleReady")
        );
        let account = Api::<ServiceAccount>::namespaced(self.client.clone(), &self.namespace)
            .get(&name)
            .await?;
        let annotation = account
            .metadata
            .annotations
            .unwrap_or_default()
            .get("eks.amazonaws.com/role-arn")
            .cloned();
        ensure!(
            annotation.as_deref() == Some(role.arn.as_str()),
            "{name}: the ServiceAccount's eks.amazonaws.com/role-arn is {annotation:?}, not {}",
            role.arn
        );
        let iam = aws_sdk_iam::Client::new(&self.admin);
        let made = iam.get_role().role_name(&role.name).send().await?;
        let boundary = made
            .role
            .and_then(|r| r.permissions_boundary)
            .and_then(|b| b.permissions_boundary_arn);
        ensure!(
            boundary.as_deref()
                == Some(format!("arn:aws:iam::{ACCOUNT}:policy/{BOUNDARY}").as_str()),
            "{name}: the role's boundary is {boundary:?}"
        );
        Ok(role.arn)
    }

    async fn delete(&self, name: &str) -> Result<()> {
        self.api.delete(name, &DeleteParams::default()).await?;
        eventually(&format!("{name} to be gone"), TIMEOUT, || async {
            Ok(self.api.get_opt(name).await?.is_none().then_some(()))
        })
        .await
    }

    async fn role_exists(&self, arn: &str) -> Result<bool> {
        let name = arn.rsplit('/').next().unwrap_or_default();
        match aws_sdk_iam::Client::new(&self.admin)
            .get_role()
            .role_name(name)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_no_such_entity_exception()) =>
            {
                Ok(false)
            }
            Err(error) => Err(error.into()),
        }
    }
}

#[tokio::test]
async fn the_lifecycle_passes_under_enforced_iam_with_the_shipped_policies() -> Result<()> {
    let started = Instant::now();
    let env = LocalEnv::get();
    let state = std::env::var_os("LOCALENV_DIR").context("LOCALENV_DIR")?;
    let layout = Layout::load(Path::new(&state))?.context("no local environment")?;
    let dir = artifacts_dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("iam"))?;
    let moto = EnforcedMoto::start(
        layout.clone(),
        &layout.state.join("iam-enforced-moto-recording.jsonl"),
    )
    .await?;

    // Terraform's part, as the admin; the roles carry the actions-only
    // rendering, the record keeps the shipped one.
    let admin_key = bootstrap_admin(&moto.url).await?;
    let admin = sdk(&moto.url, admin_key.clone()).await;
    let moto_policies = rendered(true)?;
    for (role, text) in rendered(false)? {
        std::fs::write(dir.join(format!("iam/{role}.json")), text)?;
    }
    let account = terraform(&admin, &moto_policies).await?;
    // Enforced from here on: the anonymous bootstrap key is refused.
    let anyone = Credentials::new("bootstrap", "bootstrap", None, None, "bootstrap");
    let refused = aws_sdk_dynamodb::Client::new(&sdk(&moto.url, anyone).await)
        .list_tables()
        .send()
        .await;
    ensure!(
        refused.is_err(),
        "moto does not enforce: an unknown key listed the tables"
    );

    moto.post("/moto-api/recorder/reset-recording").await?;
    moto.post("/moto-api/recorder/start-recording").await?;
    let mark = moto.log_mark();

    // The operator, as its role.
    let client = env.kube().await?;
    fixtures::install_crd(&client).await?;
    let namespace = unique_name("iame");
    fixtures::namespace(&client, &namespace).await?;
    fixtures::tmdb_secret(&client, &namespace, &env.tmdb_api_key).await?;
    // Under the prefix: the shipped operator policy reads images there only.
    let repository = unique_name("movieapp-img");
    fixtures::push_image(&aws_sdk_ecr::Client::new(&admin), &repository, "1.0.0", 1).await?;
    let operator_key = assume(&admin, &account.operator_role_arn, "movieapp-operator").await?;
    let session_token = operator_key.session_token().unwrap_or_default().to_owned();
    let operator = OperatorProcess::spawn(
        &operator_binary("debug")?,
        &namespace,
        &[
            "--aws-endpoint-url",
            &moto.url,
            "--default-region",
            REGION,
            "--worker-tmdb-base-url",
            &env.tmdb_base_url,
            "--worker-role-oidc-provider-arn",
            &account.oidc_provider_arn,
            "--worker-role-boundary-arn",
            &account.boundary_arn,
            "--worker-role-actions-only",
            // Events and the watches drive every pass here; a resync would
            // undo the narrowed policy of the negative case below.
            "--resync-interval",
            "1h",
        ],
        &[
            ("AWS_ACCESS_KEY_ID", operator_key.access_key_id()),
            ("AWS_SECRET_ACCESS_KEY", operator_key.secret_access_key()),
            ("AWS_SESSION_TOKEN", &session_token),
            ("AWS_ENDPOINT_URL", &moto.url),
            ("AWS_REGION", REGION),
        ],
    )
    .await?;
    let suite = Suite {
        api: Api::namespaced(client.clone(), &namespace),
        client: client.clone(),
        namespace: namespace.clone(),
        moto,
        admin,
        layout,
        dir,
        operator_policy: moto_policies[policies::OPERATOR].clone(),
    };
    let result = lifecycle(&suite, &repository, &operator, mark).await;
    let operator_log = operator.log.clone();
    operator.kill();
    for name in ["iam-enforced-serve", "iam-enforced-worker"] {
        let _ = movieapp_localenv::stop_process(&suite.layout, name);
    }
    let _ = fixtures::delete_namespace(&client, &namespace).await;
    let finished = result.and_then(|()| {
        let denied = denials(&operator_log);
        ensure!(
            denied.is_empty(),
            "the operator was refused:\n{}",
            denied.join("\n")
        );
        Ok(())
    });
    println!(
        "the enforced-IAM lifecycle took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    finished
}

/// create → Ready (a Delete and a Retain MovieApp) → the api-worker as its
/// role → the old worker policy refused → delete; then the recording.
async fn lifecycle(
    suite: &Suite,
    repository: &str,
    operator: &OperatorProcess,
    mark: u64,
) -> Result<()> {
    let (deleted, retained) = ("films", "kept");
    for (name, policy) in [(deleted, "Delete"), (retained, "Retain")] {
        suite
            .api
            .create(
                &PostParams::default(),
                &suite.app(name, policy, repository)?,
            )
            .await?;
    }
    let app = suite.ready(deleted).await?;
    let kept = suite.ready(retained).await?;
    let role_arn = suite.check_worker_role(&app).await?;
    let kept_role_arn = suite.check_worker_role(&kept).await?;
    let refused = suite.moto.refusals_since(mark);
    ensure!(
        refused.is_empty(),
        "moto refused calls of the operator:\n{}",
        refused.join("\n")
    );
    let mark = trust_admits_only_its_service_account(suite, &role_arn, &kept_role_arn).await?;
    for (name, app) in [(deleted, &app), (retained, &kept)] {
        std::fs::write(
            suite
                .dir
                .join(format!("iam/worker-{}-{name}.json", suite.namespace)),
            shipped_worker_policy(&suite.namespace, app)?,
        )?;
    }

    let workers = api_worker(suite, &app, &role_arn, mark).await;
    let negative = match &workers {
        Ok(()) => old_worker_policy_is_refused(suite, &app, &role_arn).await,
        Err(_) => Ok(0),
    };
    let keys = key_map(suite, &role_arn, &kept_role_arn).await;
    workers?;
    let mark = negative?;
    let keys = keys?;
    let mark = operator_without_create_role_stalls(suite, repository, mark).await?;

    // Delete: every resource of the MovieApp gone, its role too; Retain:
    // all of them left.
    let before = Inventory::of_namespace(&suite.admin, &suite.namespace).await?;
    suite.delete(deleted).await?;
    suite.delete(retained).await?;
    let after = Inventory::of_namespace(&suite.admin, &suite.namespace).await?;
    let owned = |inventory: &Inventory, uid: &str| -> usize {
        inventory
            .tables
            .iter()
            .chain(&inventory.queues)
            .chain(&inventory.topics)
            .filter(|r| r.owner_uid.as_deref() == Some(uid))
            .count()
    };
    let (uid, kept_uid) = (
        app.metadata.uid.clone().unwrap_or_default(),
        kept.metadata.uid.clone().unwrap_or_default(),
    );
    ensure!(
        owned(&before, &uid) == 6,
        "{deleted}: {} resources before deletion, not 6",
        owned(&before, &uid)
    );
    ensure!(
        owned(&after, &uid) == 0,
        "{deleted}: resources left after deletion: {after:?}"
    );
    ensure!(
        !suite.role_exists(&role_arn).await?,
        "{deleted}: the role {role_arn} is left"
    );
    ensure!(
        owned(&after, &kept_uid) == 6,
        "{retained}: {} of its 6 resources left",
        owned(&after, &kept_uid)
    );
    ensure!(
        suite.role_exists(&kept_role_arn).await?,
        "{retained}: its role is gone"
    );
    let refused = suite.moto.refusals_since(mark);
    ensure!(
        refused.is_empty(),
        "moto refused calls of the deletion:\n{}",
        refused.join("\n")
    );

    let metrics = operator.metrics().await?;
    ensure!(
        !metrics.contains("AccessDenied"),
        "the operator's metrics show AccessDenied"
    );
    let text = suite
        .moto
        .get("/moto-api/recorder/download-recording")
        .await?;
    std::fs::write(suite.dir.join("recording.jsonl"), &text)?;
    std::fs::write(
        suite.dir.join("keys.json"),
        serde_json::to_string_pretty(&keys)?,
    )?;
    let actions = actions_by_role(&text, &keys)?;
    println!("the recording and its key map: {}", suite.dir.display());
    for (role, actions) in &actions {
        println!("{role}: {} distinct actions: {actions:?}", actions.len());
    }
    std::fs::write(
        suite.dir.join("actions.json"),
        serde_json::to_string_pretty(&actions)?,
    )?;
    ensure!(
        actions
            .get("operator")
            .is_some_and(|a| a.contains("iam:CreateRole") && a.contains("dynamodb:CreateTable")),
        "the recording lacks the operator's creates: {actions:?}"
    );
    evaluate_recording(&suite.dir)
}

/// The trust the operator wrote, through STS as the SDK calls it (unsigned,
/// the token the credential): the worker's ServiceAccount token assumes its
/// own role, not another MovieApp's, and a tampered token nothing.
async fn trust_admits_only_its_service_account(
    suite: &Suite,
    role_arn: &str,
    other_role_arn: &str,
) -> Result<u64> {
    let token_file = suite.layout.state.join("iam-enforced-trust-token");
    web_identity_token(&suite.client, &suite.namespace, "films", &token_file).await?;
    let token = std::fs::read_to_string(&token_file)?;
    let tampered = format!("{}AAAA", &token[..token.len() - 4]);
    let mark = suite.moto.log_mark();
    let http = reqwest::Client::new();
    let mut answers = Vec::new();
    for (role, token) in [
        (role_arn, &token),
        (other_role_arn, &token),
        (role_arn, &tampered),
    ] {
        let body = [
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", role),
            ("RoleSessionName", "trust-check"),
            ("WebIdentityToken", token.as_str()),
        ]
        .iter()
        .map(|(key, value)| format!("{key}={}", form_encode(value)))
        .collect::<Vec<_>>()
        .join("&");
        let answer = http
            .post(&suite.moto.url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await?;
        answers.push(answer.status().as_u16());
    }
    ensure!(
        answers == [200, 403, 403],
        "AssumeRoleWithWebIdentity with the films ServiceAccount's token: its role, the other \
         MovieApp's role, a tampered token answered {answers:?}, not [200, 403, 403]"
    );
    ensure!(
        suite.moto.refusals_since(mark).len() >= 2,
        "moto's log does not show the refusals"
    );
    Ok(suite.moto.log_mark())
}

/// `value` percent-encoded for a form body.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `serve`, `worker`, `sync-popular` and `enqueue` as the role the operator
/// made, through the user-facing flows.
async fn api_worker(suite: &Suite, app: &MovieApp, role_arn: &str, mark: u64) -> Result<()> {
    let name = app.metadata.name.clone().unwrap_or_default();
    let binary = api_worker_binary()?;
    let token_file = suite.layout.state.join("iam-enforced-web-identity-token");
    web_identity_token(&suite.client, &suite.namespace, &name, &token_file).await?;
    let settings = worker_settings(&suite.client, &suite.namespace, &name, &suite.moto.url).await?;
    let (port, admin_port) = (free_port()?, free_port()?);
    let url = format!("http://127.0.0.1:{port}");
    let admin_url = format!("http://127.0.0.1:{admin_port}");
    let serve = as_worker_role(
        "iam-enforced-serve",
        &binary,
        &["serve"],
        &settings,
        role_arn,
        &token_file,
    )
    .env("PORT", port.to_string())
    .env("LISTEN_ADDR", "127.0.0.1")
    .env("ADMIN_ADDR", format!("127.0.0.1:{admin_port}"));
    // Ready only when every table, the queue and the topic answer it
    // (DescribeTable, GetQueueAttributes, GetTopicAttributes).
    movieapp_localenv::start_process(
        &suite.layout,
        serve,
        Probe::get(format!("{admin_url}/readyz")),
        Duration::from_secs(60),
    )
    .await
    .context("serve as the worker role")?;
    let worker = as_worker_role(
        "iam-enforced-worker",
        &binary,
        &["worker"],
        &settings,
        role_arn,
        &token_file,
    );
    movieapp_localenv::start_process(
        &suite.layout,
        worker,
        Probe::Running,
        Duration::from_secs(10),
    )
    .await?;

    let http = reqwest::Client::new();
    let signed = journey::sign_up(&http, &url, "enforced@example.com").await?;
    let user = signed.id.clone();
    journey::browse(
        &http,
        &url,
        &[
            "/api/v1/movies/search?query=fight",
            "/api/v1/movies/popular",
            "/api/v1/movies/550",
        ],
    )
    .await?;
    journey::watch(&http, &url, &signed, 550).await?;

    // A job through SQS (enqueued as the role) whose movie changed since the
    // watchlist's snapshot: the worker notifies the watcher through SNS
    // (PublishBatch) before it replaces the snapshot, so a replaced
    // snapshot shows the notification went out.
    let watchlists = app
        .status
        .as_ref()
        .and_then(|s| s.tables.iter().find(|t| t.component == "watchlists"))
        .map(|t| t.name.clone())
        .context("no watchlists table in the status")?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&suite.admin);
    let key = [
        ("userId".to_owned(), AttributeValue::S(user.clone())),
        ("movieId".to_owned(), AttributeValue::N("550".into())),
    ];
    let snapshot =
        |item: Option<std::collections::HashMap<String, AttributeValue>>| -> Result<Value> {
            let item = item.context("no watchlist entry")?;
            Ok(serde_json::from_str(
                item.get("movie")
                    .and_then(|m| m.as_s().ok())
                    .context("no snapshot")?,
            )?)
        };
    let entry = dynamodb
        .get_item()
        .table_name(&watchlists)
        .set_key(Some(key.clone().into()))
        .send()
        .await?;
    let mut movie = snapshot(entry.item)?;
    movie["releaseDate"] = "1999-01-01".into();
    dynamodb
        .update_item()
        .table_name(&watchlists)
        .set_key(Some(key.clone().into()))
        .update_expression("SET movie = :m")
        .expression_attribute_values(":m", AttributeValue::S(movie.to_string()))
        .send()
        .await?;
    let enqueue = as_worker_role(
        "iam-enforced-enqueue",
        &binary,
        &["enqueue", r#"{"type":"refresh-movie","movieId":550}"#],
        &settings,
        role_arn,
        &token_file,
    );
    run_to_end(&enqueue, &suite.layout.log("iam-enforced-enqueue")).await?;
    eventually(
        "the worker to notify and replace the snapshot",
        Duration::from_secs(60),
        || async {
            let entry = dynamodb
                .get_item()
                .table_name(&watchlists)
                .set_key(Some(key.clone().into()))
                .send()
                .await?;
            Ok((snapshot(entry.item)?["releaseDate"] != "1999-01-01").then_some(()))
        },
    )
    .await?;
    let sync = as_worker_role(
        "iam-enforced-sync-popular",
        &binary,
        &["sync-popular", "--pages", "1"],
        &settings,
        role_arn,
        &token_file,
    );
    run_to_end(&sync, &suite.layout.log("iam-enforced-sync-popular")).await?;

    // Nothing refused: moto's log, each process's log, serve's counters.
    let metrics = http
        .get(format!("{admin_url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let failed: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("movieapp_aws_requests_total")
                && !l.contains("outcome=\"success\"")
                && !l.ends_with(" 0")
        })
        .collect();
    ensure!(
        failed.is_empty(),
        "serve's AWS requests that failed:\n{}",
        failed.join("\n")
    );
    for name in [
        "iam-enforced-serve",
        "iam-enforced-worker",
        "iam-enforced-enqueue",
        "iam-enforced-sync-popular",
    ] {
        let denied = denials(&suite.layout.log(name));
        ensure!(
            denied.is_empty(),
            "{name} was refused:\n{}",
            denied.join("\n")
        );
    }
    let refused = suite.moto.refusals_since(mark);
    ensure!(
        refused.is_empty(),
        "moto refused calls of the api-worker:\n{}",
        refused.join("\n")
    );
    for name in ["iam-enforced-serve", "iam-enforced-worker"] {
        movieapp_localenv::stop_process(&suite.layout, name)?;
    }
    Ok(())
}

/// The worker policy as it was before `/readyz`'s calls were declared
/// (without dynamodb:DescribeTable): `serve` never becomes ready.
async fn old_worker_policy_is_refused(
    suite: &Suite,
    app: &MovieApp,
    role_arn: &str,
) -> Result<u64> {
    let name = app.metadata.name.clone().unwrap_or_default();
    let role = role_arn.rsplit('/').next().unwrap_or_default();
    let current = shipped_worker_policy(&suite.namespace, app)?;
    let mut old: Value =
        serde_json::from_str(&policies::actions_only(&current).map_err(anyhow::Error::msg)?)?;
    for statement in old["Statement"].as_array_mut().context("statements")? {
        if let Some(actions) = statement["Action"].as_array_mut() {
            actions.retain(|a| a != "dynamodb:DescribeTable");
        }
    }
    let iam = aws_sdk_iam::Client::new(&suite.admin);
    iam.put_role_policy()
        .role_name(role)
        .policy_name(movieapp_operator::provision::role::INLINE_POLICY)
        .policy_document(old.to_string())
        .send()
        .await?;
    let binary = api_worker_binary()?;
    let token_file = suite.layout.state.join("iam-enforced-web-identity-token");
    let settings = worker_settings(&suite.client, &suite.namespace, &name, &suite.moto.url).await?;
    let admin_port = free_port()?;
    let mark = suite.moto.log_mark();
    let serve = as_worker_role(
        "iam-enforced-serve",
        &binary,
        &["serve"],
        &settings,
        role_arn,
        &token_file,
    )
    .env("PORT", free_port()?.to_string())
    .env("LISTEN_ADDR", "127.0.0.1")
    .env("ADMIN_ADDR", format!("127.0.0.1:{admin_port}"));
    movieapp_localenv::start_process(
        &suite.layout,
        serve,
        Probe::Running,
        Duration::from_secs(10),
    )
    .await?;
    let readyz = format!("http://127.0.0.1:{admin_port}/readyz");
    let answer = eventually(
        "serve's /readyz to answer",
        Duration::from_secs(30),
        || async {
            match reqwest::get(&readyz).await {
                Ok(response) => Ok(Some((response.status(), response.text().await?))),
                Err(_) => Ok(None),
            }
        },
    )
    .await?;
    movieapp_localenv::stop_process(&suite.layout, "iam-enforced-serve")?;
    ensure!(
        answer.0 == 503
            && answer
                .1
                .contains("not authorized to perform: dynamodb:DescribeTable"),
        "without dynamodb:DescribeTable /readyz answered {} {}",
        answer.0,
        answer.1
    );
    let refused = suite.moto.refusals_since(mark);
    ensure!(
        refused.iter().any(|l| l.contains(REFUSED)),
        "moto refused nothing without dynamodb:DescribeTable"
    );
    println!(
        "without dynamodb:DescribeTable: /readyz {} {} ({} calls refused)",
        answer.0,
        answer.1.trim(),
        refused.len()
    );
    Ok(suite.moto.log_mark())
}

/// The operator's policy without `iam:CreateRole`: a new MovieApp is
/// Stalled with reason AccessDenied naming the action, and nothing else
/// is refused; then the policy is put back. Returns where moto's log stands
/// afterwards.
async fn operator_without_create_role_stalls(
    suite: &Suite,
    repository: &str,
    mark: u64,
) -> Result<u64> {
    let refused = suite.moto.refusals_since(mark);
    ensure!(
        refused.is_empty(),
        "moto refused calls before the operator's negative case:\n{}",
        refused.join("\n")
    );
    let mut narrowed: Value = serde_json::from_str(&suite.operator_policy)?;
    let statements = narrowed["Statement"].as_array_mut().context("statements")?;
    for statement in statements.iter_mut() {
        if let Some(actions) = statement["Action"].as_array_mut() {
            actions.retain(|a| a != "iam:CreateRole");
        }
    }
    statements.retain(|s| s["Action"].as_array().is_none_or(|a| !a.is_empty()));
    let iam = aws_sdk_iam::Client::new(&suite.admin);
    let put = |document: String| {
        iam.put_role_policy()
            .role_name(OPERATOR_ROLE)
            .policy_name("movieapp-operator")
            .policy_document(document)
            .send()
    };
    put(narrowed.to_string()).await?;
    let mark = suite.moto.log_mark();
    let name = "denied";
    suite
        .api
        .create(
            &PostParams::default(),
            &suite.app(name, "Delete", repository)?,
        )
        .await?;
    let stalled =
        fixtures::wait_for_movieapp(&suite.api, name, "Stalled AccessDenied", TIMEOUT, |a| {
            movieapps::is(a, "Stalled", "True", Some("AccessDenied"))
        })
        .await;
    put(suite.operator_policy.clone()).await?;
    let stalled = stalled?;
    let message = movieapps::condition(&stalled, "Stalled")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    ensure!(
        message.contains("not authorized to perform: iam:CreateRole"),
        "{name} is Stalled for another reason: {message}"
    );
    let refused = suite.moto.refusals_since(mark);
    ensure!(
        !refused.is_empty() && refused.iter().all(|l| l.contains("iam:CreateRole")),
        "without iam:CreateRole moto refused:\n{}",
        refused.join("\n")
    );
    println!("the operator without iam:CreateRole: Stalled, {message}");
    suite.delete(name).await?;
    Ok(suite.moto.log_mark())
}

/// Each access key of the lifecycle and the role it belongs to, named as
/// the shipped policies' files are (`operator`, `worker-<namespace>-<name>`),
/// from moto's record of the sessions it issued.
async fn key_map(
    suite: &Suite,
    role_arn: &str,
    kept_role_arn: &str,
) -> Result<BTreeMap<String, String>> {
    let data: Value = serde_json::from_str(&suite.moto.get("/moto-api/data.json").await?)?;
    let roles: BTreeMap<String, String> = [
        (
            format!("arn:aws:iam::{ACCOUNT}:role/{OPERATOR_ROLE}"),
            "operator".to_owned(),
        ),
        (
            role_arn.to_owned(),
            format!("worker-{}-films", suite.namespace),
        ),
        (
            kept_role_arn.to_owned(),
            format!("worker-{}-kept", suite.namespace),
        ),
    ]
    .into();
    let mut keys = BTreeMap::new();
    for session in data["sts"]["AssumedRole"]
        .as_array()
        .context("no sts sessions in moto's data")?
    {
        let (Some(key), Some(arn)) = (
            session["access_key_id"].as_str(),
            session["role_arn"].as_str(),
        ) else {
            continue;
        };
        if let Some(role) = roles.get(arn) {
            keys.insert(key.to_owned(), role.clone());
        }
    }
    ensure!(
        keys.values().any(|r| r == "operator") && keys.values().any(|r| r.ends_with("-films")),
        "moto issued no session of the operator or the worker: {keys:?}"
    );
    Ok(keys)
}

/// The IAM actions each role's requests in the recording needed: the
/// operation of each signed request (X-Amz-Target, or the query protocols'
/// Action), as the declarations of `movieapp_model::iam` translate it.
fn actions_by_role(
    recording: &str,
    keys: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in recording.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value = serde_json::from_str(line)?;
        let header = |name: &str| -> Option<String> {
            entry["headers"]
                .as_object()?
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.as_str().map(str::to_owned))
        };
        let Some(authorization) = header("Authorization") else {
            continue;
        };
        let Some(scope) = authorization
            .split("Credential=")
            .nth(1)
            .and_then(|s| s.split(',').next())
        else {
            continue;
        };
        let parts: Vec<&str> = scope.split('/').collect();
        let (Some(key), Some(service)) = (parts.first(), parts.get(3)) else {
            continue;
        };
        let Some(role) = keys.get(*key) else {
            continue;
        };
        let service = if *service == "tagging" {
            "tag"
        } else {
            service
        };
        let body = entry["body"].as_str().unwrap_or_default();
        let body = if entry["body_encoded"].as_bool() == Some(true) {
            String::from_utf8_lossy(&base64_decode(body)).into_owned()
        } else {
            body.to_owned()
        };
        let url = entry["url"].as_str().unwrap_or_default();
        let operation = header("X-Amz-Target")
            .and_then(|t| t.rsplit('.').next().map(str::to_owned))
            .or_else(|| {
                let query = url.split_once('?').map_or("", |(_, q)| q);
                query
                    .split('&')
                    .chain(body.split('&'))
                    .find_map(|p| p.strip_prefix("Action="))
                    .map(str::to_owned)
            })
            .with_context(|| format!("no operation in a recorded request: {line}"))?;
        let declared: BTreeSet<String> = Component::ALL
            .iter()
            .flat_map(|c| c.calls().iter())
            .filter(|c| c.service.prefix() == service && c.operation == operation)
            .flat_map(|c| c.actions.iter().map(|a| (*a).to_owned()))
            .collect();
        let entry = out.entry(role.clone()).or_default();
        if declared.is_empty() {
            entry.insert(format!("{service}:{operation}"));
        } else {
            entry.extend(declared);
        }
    }
    Ok(out)
}

/// Standard base64 (moto's recording of binary bodies).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for v in text.bytes().filter_map(value) {
        buffer = (buffer << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}

/// The scoping proof: `dir` holds `recording.jsonl` (moto's record of every
/// request of the lifecycle), `keys.json` (access key id → role, as
/// `iam/<role>.json` names the shipped documents) and those documents. Each
/// recorded request is evaluated against its role's shipped policy (and a
/// worker's against the boundary too), with the conditions and the context
/// the real services would supply (`movieapp_tests::iam_record`); any
/// denial fails the suite.
fn evaluate_recording(dir: &Path) -> Result<()> {
    let report = movieapp_tests::iam_record::check_recording_dir(dir)?;
    println!("the recorded requests against the shipped policies:\n{report}");
    ensure!(
        report.roles.get("operator").is_some_and(|r| r.allowed > 0)
            && report
                .roles
                .iter()
                .any(|(role, r)| role.starts_with("worker-") && r.allowed > 0),
        "no request of the operator or a worker evaluated:\n{report}"
    );
    Ok(())
}
