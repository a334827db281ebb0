//! Chaos scenarios against the local environment (docs/reliability.md).
//! Each one breaks something real — the operator process, AWS, the
//! kube-apiserver, moto's state, the leader — and asserts the outcome: every
//! live MovieApp Ready, AWS holding exactly what the live objects own, the
//! request rate under its bound.
//!
//! Two scenarios restart shared components of the environment, so the
//! scenarios run one at a time (`ALONE`); `make test` runs this binary on
//! its own, after the other suites of this crate are done with the cluster.
//! Sizes come from `CHAOS_APPS` and `CHAOS_ROUNDS`; the random choices from
//! `CHAOS_SEED` (printed, so a failure can be replayed). With
//! `CHAOS_REPORT=<file>` each scenario appends its figures as a JSON line
//! (`make chaos` turns them into a table in docs/reliability.md).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures::future::try_join_all;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use movieapp_operator::crd::MovieApp;
use movieapp_operator::leader::Timing;
use movieapp_tests::aws_proxy::{Counters, FaultProxy};
use movieapp_tests::inventory::{Inventory, Owned};
use movieapp_tests::kube_proxy::{KubeProxy, Mode as KubeMode};
use movieapp_tests::operator::{OperatorProcess, metric_sum, operator_binary};
use movieapp_tests::{LocalEnv, eventually, fixtures};
use serde_json::json;
use tokio::sync::Mutex;

/// One scenario at a time: some restart what every test shares.
static ALONE: Mutex<()> = Mutex::const_new(());

fn env_number(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .with_context(|| format!("{name}={value:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}

/// The seed of this run's random choices.
fn seed() -> Result<u64> {
    let seed = env_number("CHAOS_SEED", fastrand::u64(..))?;
    eprintln!("chaos: CHAOS_SEED={seed}");
    Ok(seed)
}

/// Appends one scenario's figures to `$CHAOS_REPORT`, and prints them.
fn report(scenario: &str, figures: serde_json::Value) -> Result<()> {
    let line = json!({ "scenario": scenario, "figures": figures }).to_string();
    eprintln!("chaos figures: {line}");
    if let Ok(path) = std::env::var("CHAOS_REPORT") {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {path}"))?;
        writeln!(file, "{line}")?;
    }
    Ok(())
}

/// Restarts one component of the local environment, as
/// `localenv.sh restart <component>` does.
async fn restart(component: &str) -> Result<()> {
    let dir = std::env::var_os("LOCALENV_DIR").context("LOCALENV_DIR is not set")?;
    movieapp_localenv::restart(
        std::path::Path::new(&dir),
        movieapp_localenv::Component::from_name(component)?,
    )
    .await
}

fn ready(app: &MovieApp) -> bool {
    app.status.as_ref().is_some_and(|s| {
        s.observed_generation.is_some()
            && s.observed_generation == app.metadata.generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// A namespace with the TMDB Secret and an image in ECR.
struct Scenario {
    env: LocalEnv,
    client: kube::Client,
    aws: aws_config::SdkConfig,
    ns: String,
    repository: String,
    api: Api<MovieApp>,
}

impl Scenario {
    async fn new(prefix: &str) -> Result<Self> {
        let fixtures::Stage {
            env,
            client,
            aws,
            ns,
            repository,
            api,
            ..
        } = fixtures::Stage::new(prefix).await?;
        Ok(Self {
            env,
            client,
            aws,
            ns,
            repository,
            api,
        })
    }

    fn movieapp(&self, name: &str) -> Result<MovieApp> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "movieapp.io/v1alpha1",
            "kind": "MovieApp",
            "metadata": { "name": name },
            "spec": {
                "worker": { "image": { "repository": self.repository, "tag": "1.0.0" }, "replicas": 1 },
            },
        }))?)
    }

    async fn create_all(&self, names: &[String]) -> Result<()> {
        try_join_all(names.iter().map(|name| async move {
            match self
                .api
                .create(&PostParams::default(), &self.movieapp(name)?)
                .await
            {
                // Made by an earlier try whose answer was lost.
                Ok(_) => Ok(()),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
                Err(error) => Err(error).with_context(|| format!("creating {name}")),
            }
        }))
        .await?;
        Ok(())
    }

    /// Waits until every one of `live` is Ready for its current generation
    /// and every one of `gone` has left the API server (its finalizer ran).
    async fn converged(
        &self,
        live: &BTreeSet<String>,
        gone: &BTreeSet<String>,
        timeout: Duration,
    ) -> Result<Duration> {
        let started = Instant::now();
        eventually("every MovieApp to converge", timeout, || async {
            let apps = self.api.list(&ListParams::default()).await?.items;
            let present: BTreeMap<String, &MovieApp> = apps
                .iter()
                .filter_map(|a| Some((a.metadata.name.clone()?, a)))
                .collect();
            let waiting: Vec<&String> = live
                .iter()
                .filter(|name| !present.get(*name).is_some_and(|a| ready(a)))
                .chain(gone.iter().filter(|name| present.contains_key(*name)))
                .collect();
            if waiting.is_empty() {
                Ok(Some(()))
            } else {
                bail!(
                    "{} not converged yet, e.g. {:?}",
                    waiting.len(),
                    &waiting[..waiting.len().min(5)]
                )
            }
        })
        .await?;
        Ok(started.elapsed())
    }

    /// The uids of the MovieApps the API server holds.
    async fn live_uids(&self) -> Result<BTreeSet<String>> {
        Ok(self
            .api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter_map(|a| a.metadata.uid)
            .collect())
    }

    /// AWS holds exactly what the live MovieApps own: one full set per live
    /// uid, nothing for any other uid, nothing untagged.
    async fn assert_no_duplicate_and_no_orphan(&self) -> Result<Inventory> {
        let uids = self.live_uids().await?;
        let inventory = Inventory::of_namespace(&self.aws, &self.ns).await?;
        let owners = inventory.by_owner();
        for uid in &uids {
            let owned = owners.get(uid).copied().unwrap_or_default();
            ensure!(
                owned == Owned::ONE_MOVIEAPP,
                "MovieApp {uid} owns {owned:?} in AWS, expected {:?}",
                Owned::ONE_MOVIEAPP
            );
        }
        let orphans: Vec<(&String, &Owned)> = owners
            .iter()
            .filter(|(uid, _)| !uids.contains(*uid))
            .collect();
        ensure!(
            orphans.is_empty(),
            "AWS resources owned by no live MovieApp (uid \"\" = untagged): {orphans:?}"
        );
        Ok(inventory)
    }

    /// Deletes every MovieApp (an operator must be running), checks that AWS
    /// is empty for the namespace, and deletes the namespace.
    async fn tear_down(self) -> Result<()> {
        let names: BTreeSet<String> = self
            .api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter_map(|a| a.metadata.name)
            .collect();
        for name in &names {
            self.api.delete(name, &DeleteParams::default()).await?;
        }
        self.converged(&BTreeSet::new(), &names, Duration::from_secs(300))
            .await?;
        let inventory = Inventory::of_namespace(&self.aws, &self.ns).await?;
        ensure!(
            inventory.is_empty(),
            "deletion left AWS resources behind: {inventory:?}"
        );
        fixtures::delete_namespace(&self.client, &self.ns).await
    }
}

/// Scenario 1: the operator SIGKILLed at random moments while MovieApps are
/// created, updated and deleted, over several rounds.
#[tokio::test]
async fn sigkill_at_random_moments_leaves_no_duplicate_and_no_orphan() -> Result<()> {
    let _alone = ALONE.lock().await;
    let apps = env_number("CHAOS_APPS", 50)? as usize;
    let rounds = env_number("CHAOS_ROUNDS", 10)? as usize;
    let mut rng = fastrand::Rng::with_seed(seed()?);
    let s = Scenario::new("chaos-kill").await?;
    let binary = operator_binary("debug")?;
    let flags = [
        "--resync-interval",
        "30s",
        "--concurrency",
        "16",
        "--aws-max-rps",
        "200",
    ];

    // Creations spread over the first half of the rounds; updates and
    // deletions in every round after the first.
    let creating_rounds = (rounds / 2).max(1);
    let mut next = 0;
    let mut live: BTreeMap<String, i32> = BTreeMap::new(); // name → visibility timeout
    let mut gone: BTreeSet<String> = BTreeSet::new();
    let (mut updates, mut kills_during_start) = (0, 0);
    for round in 0..rounds {
        let operator = OperatorProcess::spawn(&binary, &s.ns, &flags, &[]).await?;
        let batch = if round < creating_rounds {
            (apps - next).div_ceil(creating_rounds - round)
        } else {
            0
        };
        let names: Vec<String> = (next..next + batch).map(|i| format!("app-{i}")).collect();
        next += batch;
        s.create_all(&names).await?;
        live.extend(names.iter().map(|n| (n.clone(), 60)));

        if round > 0 {
            let chosen: Vec<String> = live.keys().filter(|_| rng.u8(0..10) < 2).cloned().collect();
            for name in &chosen {
                let timeout = 30 + rng.i32(0..300);
                s.api
                    .patch(
                        name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({ "spec": {
                            "queue": { "visibilityTimeoutSeconds": timeout },
                            "worker": { "replicas": rng.i32(1..=2) },
                        }})),
                    )
                    .await
                    .with_context(|| format!("updating {name}"))?;
                live.insert(name.clone(), timeout);
                updates += 1;
            }
            let deletions = rng.usize(0..=3).min(live.len().saturating_sub(1));
            for _ in 0..deletions {
                let keys: Vec<String> = live.keys().cloned().collect();
                let name = keys[rng.usize(0..keys.len())].clone();
                s.api.delete(&name, &DeleteParams::default()).await?;
                live.remove(&name);
                gone.insert(name);
            }
        }

        let moment = Duration::from_millis(rng.u64(0..5_000));
        if moment < Duration::from_millis(500) {
            kills_during_start += 1;
        }
        tokio::time::sleep(moment).await;
        operator.kill();
    }

    let operator = OperatorProcess::spawn(&binary, &s.ns, &flags, &[]).await?;
    let live_names: BTreeSet<String> = live.keys().cloned().collect();
    let converge = s
        .converged(&live_names, &gone, Duration::from_secs(300))
        .await?;
    let inventory = s.assert_no_duplicate_and_no_orphan().await?;

    // The last update of each live MovieApp reached AWS.
    let sqs = aws_sdk_sqs::Client::new(&s.aws);
    for (name, timeout) in &live {
        let app = s.api.get(name).await?;
        let url = app
            .status
            .and_then(|st| st.queue)
            .map(|q| q.url)
            .with_context(|| format!("{name} has no queue in its status"))?;
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout)
            .send()
            .await?
            .attributes
            .unwrap_or_default();
        let actual = attributes
            .get(&aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout)
            .cloned()
            .unwrap_or_default();
        ensure!(
            actual == timeout.to_string(),
            "{name}: the jobs queue has VisibilityTimeout {actual}, the spec says {timeout}"
        );
    }
    report(
        "sigkill",
        json!({
            "rounds": rounds,
            "created": next,
            "updates": updates,
            "deleted": gone.len(),
            "live": live.len(),
            "kills_within_500ms_of_start": kills_during_start,
            "tables": inventory.tables.len(),
            "queues": inventory.queues.len(),
            "topics": inventory.topics.len(),
            "converge_after_last_kill_s": converge.as_secs_f64(),
        }),
    )?;
    s.tear_down().await?;
    operator.kill();
    Ok(())
}

/// Scenario 2: throttling, 5xx, hung requests and connection resets on 30 %
/// of AWS requests. Everything converges; the request rate stays under the
/// token bucket's bound; reconciles stay at the resync and backoff rate.
#[tokio::test]
async fn aws_faults_at_30_percent_converge_within_the_rate_bound() -> Result<()> {
    let _alone = ALONE.lock().await;
    let s = Scenario::new("chaos-faults").await?;
    let proxy = FaultProxy::start(&s.env.aws_endpoint_url).await?;
    // Hung requests outlast the operator's 10 s attempt time-out.
    proxy
        .set(json!({
            "throttle_ratio": 0.08, "error_ratio": 0.08,
            "hang_ratio": 0.07, "reset_ratio": 0.07, "hang_seconds": 12,
        }))
        .await?;
    const MAX_RPS: f64 = 20.0;
    const RESYNC_S: f64 = 10.0;
    let apps = 8;
    let operator = OperatorProcess::spawn(
        &operator_binary("debug")?,
        &s.ns,
        &[
            "--aws-endpoint-url",
            &proxy.url,
            "--aws-max-rps",
            "20",
            "--resync-interval",
            "10s",
        ],
        &[],
    )
    .await?;
    let started = Instant::now();
    let names: Vec<String> = (0..apps).map(|i| format!("app-{i}")).collect();
    s.create_all(&names).await?;
    let live: BTreeSet<String> = names.iter().cloned().collect();
    let converge = s
        .converged(&live, &BTreeSet::new(), Duration::from_secs(420))
        .await?;

    // Faults stay on over several resyncs: no hot loop.
    let before = operator.metrics().await?;
    let window = Duration::from_secs(40);
    tokio::time::sleep(window).await;
    let after = operator.metrics().await?;
    let elapsed = started.elapsed().as_secs_f64();
    let requests = metric_sum(&after, "movieapp_aws_requests_total", &[]);
    let outcomes: BTreeMap<&str, f64> = [
        "success",
        "throttled",
        "server_error",
        "timeout",
        "network_error",
        "client_error",
    ]
    .into_iter()
    .map(|o| {
        (
            o,
            metric_sum(
                &after,
                "movieapp_aws_requests_total",
                &[&format!("outcome=\"{o}\"")],
            ),
        )
    })
    .collect();
    let counters = proxy.counters().await?;
    ensure!(
        counters.throttled > 0
            && counters.server_error > 0
            && counters.hung > 0
            && counters.reset > 0,
        "every kind of fault was injected: {counters:?}"
    );
    ensure!(
        outcomes["throttled"] > 0.0 && outcomes["server_error"] > 0.0 && outcomes["timeout"] > 0.0,
        "the operator saw the faults: {outcomes:?}"
    );
    // The token bucket: at most MAX_RPS per second plus one burst of MAX_RPS.
    let bound = MAX_RPS * elapsed + MAX_RPS;
    ensure!(
        requests <= bound,
        "{requests} AWS requests in {elapsed:.1} s exceed the bound {bound:.0}"
    );
    // A reconcile per resync, plus the error backoff's retries (2 s, 4 s,
    // 8 s, ... so at most log2(window / 2 s) + 1 of them) per MovieApp.
    let reconciles = metric_sum(&after, "movieapp_reconcile_total", &[])
        - metric_sum(&before, "movieapp_reconcile_total", &[]);
    let window_s = window.as_secs_f64();
    let per_app_bound = window_s / RESYNC_S + 1.0 + ((window_s / 2.0).log2().floor() + 1.0);
    let reconcile_bound = per_app_bound * apps as f64;
    ensure!(
        reconciles <= reconcile_bound,
        "{reconciles} reconciles in {window_s} s for {apps} MovieApps: more than {reconcile_bound:.0}, a hot loop"
    );
    s.assert_no_duplicate_and_no_orphan().await?;
    report(
        "aws-faults",
        json!({
            "apps": apps,
            "fault_ratio": 0.30,
            "converge_s": converge.as_secs_f64(),
            "aws_requests": requests,
            "elapsed_s": elapsed,
            "request_rate": requests / elapsed,
            "rate_bound": MAX_RPS,
            "outcomes": outcomes,
            "injected": {
                "throttled": counters.throttled, "server_error": counters.server_error,
                "hung": counters.hung, "reset": counters.reset,
            },
            "reconciles_in_window": reconciles,
            "window_s": window_s,
            "reconcile_bound": reconcile_bound,
        }),
    )?;
    proxy
        .set(json!({ "throttle_ratio": 0, "error_ratio": 0, "hang_ratio": 0, "reset_ratio": 0 }))
        .await?;
    s.tear_down().await?;
    operator.kill();
    Ok(())
}

/// Scenario 3: the kube-apiserver restarted while MovieApps are being
/// provisioned. The same operator process re-establishes its watches and
/// converges; a long resync proves the watches (not the timer) did it.
#[tokio::test]
async fn a_restarted_kube_apiserver_is_survived_without_restarting_the_operator() -> Result<()> {
    let _alone = ALONE.lock().await;
    let s = Scenario::new("chaos-apiserver").await?;
    let mut operator = OperatorProcess::spawn(
        &operator_binary("debug")?,
        &s.ns,
        &["--resync-interval", "10m"],
        &[],
    )
    .await?;
    let first: Vec<String> = (0..8).map(|i| format!("before-{i}")).collect();
    s.create_all(&first).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let restart_started = Instant::now();
    restart("kube-apiserver").await?;
    let downtime = restart_started.elapsed();
    ensure!(
        operator.is_running(),
        "the operator exited with the API server"
    );

    // Changes made after the restart arrive through the new watches.
    let client = s.env.kube().await?;
    let api: Api<MovieApp> = Api::namespaced(client.clone(), &s.ns);
    let second: Vec<String> = (0..4).map(|i| format!("after-{i}")).collect();
    eventually(
        "the API server to take writes",
        Duration::from_secs(60),
        || async { Ok(s.create_all(&second).await.ok()) },
    )
    .await?;
    api.patch(
        "before-0",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "worker": { "replicas": 2 } } })),
    )
    .await?;
    let live: BTreeSet<String> = first.iter().chain(&second).cloned().collect();
    let converge = s
        .converged(&live, &BTreeSet::new(), Duration::from_secs(240))
        .await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &s.ns);
    let replicas = deployments
        .get("before-0")
        .await?
        .spec
        .and_then(|spec| spec.replicas);
    ensure!(
        replicas == Some(2),
        "before-0 runs {replicas:?} replicas, the spec says 2"
    );

    // A deleted child comes back at once: the owns() watch is live again.
    let uid_before = deployments.get("after-0").await?.metadata.uid;
    deployments
        .delete("after-0", &DeleteParams::default())
        .await?;
    let repaired = Instant::now();
    eventually(
        "the deleted Deployment to be recreated",
        Duration::from_secs(20),
        || async {
            Ok(deployments
                .get_opt("after-0")
                .await?
                .filter(|d| d.metadata.uid != uid_before)
                .map(|_| ()))
        },
    )
    .await?;
    let repair = repaired.elapsed();
    ensure!(
        operator.is_running(),
        "the operator is the same process throughout"
    );
    s.assert_no_duplicate_and_no_orphan().await?;
    report(
        "apiserver-restart",
        json!({
            "apps": live.len(),
            "apiserver_restart_s": downtime.as_secs_f64(),
            "converge_after_restart_s": converge.as_secs_f64(),
            "deployment_recreated_s": repair.as_secs_f64(),
        }),
    )?;
    s.tear_down().await?;
    operator.kill();
    Ok(())
}

/// Scenario 4: moto restarted with its state lost. The operator notices at
/// the next resync, recreates every resource, and says so with Events.
#[tokio::test]
async fn moto_restarted_empty_is_noticed_at_resync_and_everything_recreated() -> Result<()> {
    let _alone = ALONE.lock().await;
    let s = Scenario::new("chaos-moto").await?;
    const RESYNC: Duration = Duration::from_secs(10);
    let operator = OperatorProcess::spawn(
        &operator_binary("debug")?,
        &s.ns,
        &["--resync-interval", "10s"],
        &[],
    )
    .await?;
    let names: Vec<String> = (0..5).map(|i| format!("app-{i}")).collect();
    s.create_all(&names).await?;
    let live: BTreeSet<String> = names.iter().cloned().collect();
    s.converged(&live, &BTreeSet::new(), Duration::from_secs(120))
        .await?;
    let uids = s.live_uids().await?;

    restart("moto").await?;
    let restarted = Instant::now();
    ensure!(
        Inventory::of_namespace(&s.aws, &s.ns).await?.is_empty(),
        "moto came back with its state"
    );
    // The image is a build artefact, not something the operator makes: push
    // it again, as a release pipeline would.
    fixtures::push_image(&aws_sdk_ecr::Client::new(&s.aws), &s.repository, "1.0.0", 1).await?;

    eventually(
        "every resource to be recreated",
        RESYNC * 2 + Duration::from_secs(90),
        || async {
            let inventory = s.assert_no_duplicate_and_no_orphan().await?;
            Ok((!inventory.is_empty()).then_some(()))
        },
    )
    .await?;
    let recreated = restarted.elapsed();
    s.converged(&live, &BTreeSet::new(), Duration::from_secs(120))
        .await?;

    // Each MovieApp says what happened, in its own Events.
    let events: Api<Event> = Api::namespaced(s.client.clone(), &s.ns);
    let recreated_events = eventually("Recreated Events", Duration::from_secs(30), || async {
        let events = events.list(&ListParams::default()).await?.items;
        let by_app: BTreeMap<String, usize> = events
            .iter()
            .filter(|e| e.reason.as_deref() == Some("Recreated"))
            .filter_map(|e| e.involved_object.uid.clone())
            .fold(BTreeMap::new(), |mut acc, uid| {
                *acc.entry(uid).or_default() += 1;
                acc
            });
        let missing: Vec<&String> = uids.iter().filter(|u| !by_app.contains_key(*u)).collect();
        if missing.is_empty() {
            Ok(Some(by_app.values().sum::<usize>()))
        } else {
            bail!("no Recreated Event yet for {} MovieApps", missing.len())
        }
    })
    .await?;
    report(
        "moto-state-lost",
        json!({
            "apps": names.len(),
            "resync_s": RESYNC.as_secs(),
            "all_recreated_after_s": recreated.as_secs_f64(),
            "recreated_events": recreated_events,
        }),
    )?;
    s.tear_down().await?;
    operator.kill();
    Ok(())
}

/// The longest a standby may take to lead after the leader died without a
/// word: the Lease duration from its last look at the renewed Lease, which
/// came at most a retry period after the renewal, plus slack for the
/// request that acquires it.
fn takeover_bound() -> Duration {
    let timing = Timing::default();
    timing.lease_duration + timing.retry_period + Duration::from_secs(3)
}

/// Scenario 6: two replicas with leader election; the leader SIGKILLed while
/// MovieApps are being provisioned. The standby takes over within the Lease
/// duration plus a retry period, and the AWS request counts show the work
/// was done once.
#[tokio::test]
async fn a_killed_leader_under_load_is_replaced_in_time_without_double_work() -> Result<()> {
    let _alone = ALONE.lock().await;
    let mut rng = fastrand::Rng::with_seed(seed()?);
    let s = Scenario::new("chaos-leader").await?;
    let proxy = FaultProxy::start(&s.env.aws_endpoint_url).await?;
    let binary = operator_binary("debug")?;
    let flags = [
        "--leader-elect",
        "--leader-election-namespace",
        &s.ns,
        "--aws-endpoint-url",
        &proxy.url,
        "--resync-interval",
        "1m",
    ];
    let a = OperatorProcess::spawn(&binary, &s.ns, &flags, &[]).await?;
    let b = OperatorProcess::spawn(&binary, &s.ns, &flags, &[]).await?;
    let is_leader = |text: &str| metric_sum(text, "movieapp_leader", &[]) == 1.0;
    let (leader, standby) = eventually("a leader", Duration::from_secs(30), || async {
        let (ta, tb) = (a.metrics().await?, b.metrics().await?);
        Ok(match (is_leader(&ta), is_leader(&tb)) {
            (true, false) => Some(true),
            (false, true) => Some(false),
            _ => None,
        })
    })
    .await
    .map(|a_leads| if a_leads { (a, b) } else { (b, a) })?;

    let apps = 16;
    let names: Vec<String> = (0..apps).map(|i| format!("app-{i}")).collect();
    s.create_all(&names).await?;
    // Under load: kill while the leader is provisioning.
    eventually(
        "provisioning under way",
        Duration::from_secs(30),
        || async { Ok((proxy.counters().await?.succeeded("CreateTable") > 0).then_some(())) },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(rng.u64(0..2_000))).await;
    let standby_requests = metric_sum(
        &standby.metrics().await?,
        "movieapp_aws_requests_total",
        &[],
    );
    ensure!(
        standby_requests == 0.0,
        "the standby made {standby_requests} AWS requests while the leader was alive"
    );
    let at_kill = proxy.counters().await?;
    leader.kill();
    let killed = Instant::now();
    eventually("the standby to lead", takeover_bound() * 2, || async {
        Ok(is_leader(&standby.metrics().await?).then_some(()))
    })
    .await?;
    let takeover = killed.elapsed();
    ensure!(
        takeover <= takeover_bound(),
        "the standby took over after {takeover:?}, more than {:?}",
        takeover_bound()
    );
    let live: BTreeSet<String> = names.iter().cloned().collect();
    s.converged(&live, &BTreeSet::new(), Duration::from_secs(180))
        .await?;
    s.assert_no_duplicate_and_no_orphan().await?;

    // Work done once: every resource created by exactly one call, however
    // the work was split between the two leaders.
    let counters = proxy.counters().await?;
    let expected = [
        ("CreateTable", 3 * apps),
        ("CreateQueue", 2 * apps),
        ("CreateTopic", apps),
        ("Subscribe", apps),
    ];
    for (operation, count) in expected {
        let calls = counters
            .operations
            .get(operation)
            .copied()
            .unwrap_or_default();
        ensure!(
            calls == count as u64,
            "{calls} {operation} requests for {apps} MovieApps, expected {count}: {counters:?}"
        );
    }
    report(
        "leader-kill",
        json!({
            "apps": apps,
            "tables_created_when_killed": at_kill.succeeded("CreateTable"),
            "takeover_s": takeover.as_secs_f64(),
            "create_requests": expected.iter().map(|(op, _)| (op.to_string(), counters.operations.get(*op).copied().unwrap_or_default())).collect::<BTreeMap<_, _>>(),
            "aws_requests_total": counters.total(),
        }),
    )?;
    s.tear_down().await?;
    standby.kill();
    Ok(())
}

/// Scenario 7: overload. `CHAOS_OVERLOAD_APPS` (100) MovieApps applied at
/// once under `--resync-interval 10s` and the default AWS budget of 50
/// requests/s: each resync reads AWS about 20 times, so that budget carries
/// some 2.5 resyncs a second, a quarter of what 100 objects every 10 s ask
/// for. No object may starve: every one is Ready within the bound, the
/// operator reports the longer resync interval it can sustain, and a
/// MovieApp applied while the resyncs are behind is served at once.
#[tokio::test]
async fn overload_starves_no_movieapp_and_the_stretched_resync_is_reported() -> Result<()> {
    let _alone = ALONE.lock().await;
    let apps = env_number("CHAOS_OVERLOAD_APPS", 100)? as usize;
    // Creating one MovieApp costs about 28 AWS requests: 100 need 56 s of
    // the whole budget; first reconciles must not wait behind resyncs.
    let bound = Duration::from_secs(60 + 2 * apps as u64);
    let s = Scenario::new("chaos-overload").await?;
    let binary = operator_binary("debug")?;
    let operator =
        OperatorProcess::spawn(&binary, &s.ns, &["--resync-interval", "10s"], &[]).await?;
    let names: Vec<String> = (0..apps).map(|i| format!("app-{i}")).collect();
    let started = Instant::now();
    s.create_all(&names).await?;
    let live: BTreeSet<String> = names.iter().cloned().collect();
    s.converged(&live, &BTreeSet::new(), bound).await?;
    let all_ready = started.elapsed();

    let effective = eventually(
        "the stretched resync interval to be reported",
        Duration::from_secs(30),
        || async {
            let value = metric_sum(
                &operator.metrics().await?,
                "movieapp_resync_effective_interval_seconds",
                &[],
            );
            Ok((value > 10.0).then_some(value))
        },
    )
    .await?;

    // New work is served while the resyncs run behind.
    let late = "late-arrival".to_owned();
    let applied = Instant::now();
    s.create_all(std::slice::from_ref(&late)).await?;
    s.converged(
        &BTreeSet::from([late.clone()]),
        &BTreeSet::new(),
        Duration::from_secs(60),
    )
    .await?;
    let late_ready = applied.elapsed();

    // Every object keeps getting its resync, in the stretched interval.
    let before = operator.metrics().await?;
    let resyncs_before = metric_sum(&before, "movieapp_resyncs_total", &[]);
    tokio::time::sleep(Duration::from_secs_f64(effective * 1.5)).await;
    let resyncs =
        metric_sum(&operator.metrics().await?, "movieapp_resyncs_total", &[]) - resyncs_before;
    ensure!(
        resyncs >= apps as f64,
        "{resyncs} resyncs in 1.5 effective intervals ({effective:.0} s each) for {} MovieApps",
        apps + 1
    );
    report(
        "overload",
        json!({
            "apps": apps,
            "resync_s": 10,
            "aws_max_rps": 50,
            "all_ready_s": all_ready.as_secs_f64(),
            "bound_s": bound.as_secs(),
            "effective_resync_s": effective,
            "late_arrival_ready_s": late_ready.as_secs_f64(),
            "resyncs_in_window": resyncs,
        }),
    )?;
    s.tear_down().await?;
    operator.kill();
    Ok(())
}

/// The two replicas of the fenced-leader scenarios: `a` through its own
/// proxy to the API server (so it can be cut off or slowed down), `b`
/// direct; each through its own counting proxy to moto (so what each sent
/// to AWS is known from outside it).
struct Replicas {
    a: OperatorProcess,
    b: OperatorProcess,
    kube_a: KubeProxy,
    aws_a: FaultProxy,
    aws_b: FaultProxy,
    /// The AWS change events queue both consume.
    events: String,
}

impl Replicas {
    /// Starts `a` (resync every `resync_a`) and waits until it leads, then
    /// `b` (resync every `resync_b`), a standby. Their Events name them
    /// (`POD_NAME` replica-a and replica-b), and so do their identities.
    async fn start(s: &Scenario, resync_a: &str, resync_b: &str) -> Result<Self> {
        let sqs = aws_sdk_sqs::Client::new(&s.aws);
        // A short visibility timeout: an event a replica received but did
        // not delete is soon there for the other one.
        let events = sqs
            .create_queue()
            .queue_name(format!("{}-events", s.ns))
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                "1",
            )
            .send()
            .await?
            .queue_url
            .context("events queue URL")?;
        let kube_a = KubeProxy::start().await?;
        let aws_a = FaultProxy::start(&s.env.aws_endpoint_url).await?;
        let aws_b = FaultProxy::start(&s.env.aws_endpoint_url).await?;
        let binary = operator_binary("debug")?;
        let replica = |aws: String, resync: String| {
            vec![
                "--leader-elect".to_owned(),
                "--leader-election-namespace".to_owned(),
                s.ns.clone(),
                "--aws-endpoint-url".to_owned(),
                aws,
                "--events-queue-url".to_owned(),
                events.clone(),
                "--resync-interval".to_owned(),
                resync,
            ]
        };
        let flags_a = replica(aws_a.url.clone(), resync_a.to_owned());
        let flags_a: Vec<&str> = flags_a.iter().map(String::as_str).collect();
        let kubeconfig_a = kube_a
            .kubeconfig
            .to_str()
            .context("the proxy's kubeconfig path is not UTF-8")?;
        let a = OperatorProcess::spawn(
            &binary,
            &s.ns,
            &flags_a,
            &[("KUBECONFIG", kubeconfig_a), ("POD_NAME", "replica-a")],
        )
        .await?;
        until_leads("replica a to lead", &a, Duration::from_secs(30)).await?;
        let flags_b = replica(aws_b.url.clone(), resync_b.to_owned());
        let flags_b: Vec<&str> = flags_b.iter().map(String::as_str).collect();
        let b =
            OperatorProcess::spawn(&binary, &s.ns, &flags_b, &[("POD_NAME", "replica-b")]).await?;
        ensure!(!leads(&b).await?, "replica b leads beside replica a");
        Ok(Self {
            a,
            b,
            kube_a,
            aws_a,
            aws_b,
            events,
        })
    }

    /// Deletes the MovieApps (through whichever replica leads), the
    /// namespace and the events queue.
    async fn tear_down(self, s: Scenario) -> Result<()> {
        let sqs = aws_sdk_sqs::Client::new(&s.aws);
        s.tear_down().await?;
        sqs.delete_queue().queue_url(&self.events).send().await?;
        Ok(())
    }
}

/// Whether the replica says it leads (`movieapp_leader`).
async fn leads(replica: &OperatorProcess) -> Result<bool> {
    Ok(metric_sum(&replica.metrics().await?, "movieapp_leader", &[]) == 1.0)
}

/// Requests by operation that one proxy forwarded between two snapshots.
fn sent_between(before: &Counters, after: &Counters) -> BTreeMap<String, u64> {
    after
        .operations
        .iter()
        .map(|(op, n)| {
            (
                op.clone(),
                n - before.operations.get(op).copied().unwrap_or(0),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The operations among `sent` that change something in AWS: all but the
/// reads (`Get*`, `List*`, `Describe*`). `ReceiveMessage` counts as a
/// write: it hides the message from every other consumer and counts a
/// receive towards the dead-letter queue.
fn writes(sent: &BTreeMap<String, u64>) -> u64 {
    sent.iter()
        .filter(|(op, _)| {
            !["Get", "List", "Describe"]
                .iter()
                .any(|p| op.starts_with(p))
        })
        .map(|(_, n)| n)
        .sum()
}

/// Creates the MovieApp `shop` and waits until it is Ready; returns its
/// jobs queue and the queue's `VisibilityTimeout`.
async fn shop(s: &Scenario) -> Result<(String, String)> {
    let name = "shop".to_owned();
    s.create_all(std::slice::from_ref(&name)).await?;
    s.converged(
        &BTreeSet::from([name]),
        &BTreeSet::new(),
        Duration::from_secs(120),
    )
    .await?;
    let url = s
        .api
        .get("shop")
        .await?
        .status
        .and_then(|st| st.queue)
        .map(|q| q.url)
        .context("shop has no queue in its status")?;
    let timeout = visibility_timeout(s, &url).await?;
    Ok((url, timeout))
}

/// Waits until `replica` leads.
async fn until_leads(what: &str, replica: &OperatorProcess, timeout: Duration) -> Result<()> {
    eventually(what, timeout, || async {
        Ok(leads(replica).await?.then_some(()))
    })
    .await
}

/// Waits until the jobs queue `url` has its `VisibilityTimeout` back.
async fn until_repaired(s: &Scenario, url: &str, desired: &str) -> Result<()> {
    eventually(
        "the drift to be repaired",
        Duration::from_secs(30),
        || async { Ok((visibility_timeout(s, url).await? == desired).then_some(())) },
    )
    .await
}

async fn visibility_timeout(s: &Scenario, url: &str) -> Result<String> {
    use aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout;
    Ok(aws_sdk_sqs::Client::new(&s.aws)
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(VisibilityTimeout)
        .send()
        .await?
        .attributes
        .and_then(|a| a.get(&VisibilityTimeout).cloned())
        .unwrap_or_default())
}

/// Drift: the jobs queue's `VisibilityTimeout` changed behind the
/// operator's back, and, when `event`, the CloudTrail event AWS would
/// deliver for it sent to the change events queue.
async fn drift(s: &Scenario, queue: &str, events: Option<&str>) -> Result<()> {
    let sqs = aws_sdk_sqs::Client::new(&s.aws);
    sqs.set_queue_attributes()
        .queue_url(queue)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "5",
        )
        .send()
        .await?;
    if let Some(events) = events {
        sqs.send_message()
            .queue_url(events)
            .message_body(fixtures::cloudtrail_event(
                "aws.sqs",
                "SetQueueAttributes",
                json!({ "queueUrl": queue, "attributes": { "VisibilityTimeout": "5" } }),
            ))
            .send()
            .await?;
    }
    Ok(())
}

/// Scenario 8: the leader cut off from the API server (its connections
/// through a proxy closed, new ones refused) while AWS stays reachable.
/// From its renew deadline on, before its Lease can expire, it sends AWS
/// nothing: not its change events consumer's polls (which need no API
/// server), not a repair. The standby takes over within the Lease
/// duration and repairs drift introduced afterwards, through its change
/// event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_api_server_stops_before_its_lease_expires() -> Result<()> {
    let _alone = ALONE.lock().await;
    let timing = Timing::default();
    let s = Scenario::new("chaos-cutoff").await?;
    let r = Replicas::start(&s, "1h", "1h").await?;
    let (jobs, desired) = shop(&s).await?;

    r.kube_a.set(KubeMode::Cut);
    let cut = Instant::now();
    // Its last renewal started before the cut, so its renew deadline has
    // passed 1 s after this; the Lease can expire (lease duration after a
    // renewal, every retry period) 3 s later at the earliest.
    tokio::time::sleep_until((cut + timing.renew_deadline + Duration::from_secs(1)).into()).await;
    let aws_a_at_deadline = r.aws_a.counters().await?;
    let metric_a_at_deadline =
        metric_sum(&r.a.metrics().await?, "movieapp_aws_requests_total", &[]);

    until_leads("replica b to lead", &r.b, takeover_bound() * 2).await?;
    let takeover = cut.elapsed();
    ensure!(
        takeover <= takeover_bound(),
        "replica b took over {takeover:?} after the cut, more than {:?}",
        takeover_bound()
    );
    let repairs_before = r.aws_b.counters().await?.succeeded("SetQueueAttributes");
    drift(&s, &jobs, Some(&r.events)).await?;
    let drifted = Instant::now();
    until_repaired(&s, &jobs, &desired).await?;
    let repair = drifted.elapsed();
    let repairs = r.aws_b.counters().await?.succeeded("SetQueueAttributes") - repairs_before;
    ensure!(
        repairs >= 1,
        "replica b did not repair the drift: someone else did"
    );
    // One more poll of the events queue for a replica that still consumed it.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let sent = sent_between(&aws_a_at_deadline, &r.aws_a.counters().await?);
    let metric_a = metric_sum(&r.a.metrics().await?, "movieapp_aws_requests_total", &[]);
    ensure!(
        sent.is_empty() && metric_a == metric_a_at_deadline,
        "replica a, cut off from the API server, sent AWS {sent:?} ({} writes; its \
         movieapp_aws_requests_total went from {metric_a_at_deadline} to {metric_a}) after \
         its renew deadline",
        writes(&sent)
    );
    ensure!(
        !leads(&r.a).await?,
        "replica a still leads {:?} after it was cut off from the API server",
        cut.elapsed()
    );
    report(
        "leader-cut-off",
        json!({
            "takeover_s": takeover.as_secs_f64(),
            "repaired_after_drift_s": repair.as_secs_f64(),
            "cut_off_aws_requests_before_deadline": aws_a_at_deadline.total(),
            "cut_off_aws_requests_after_deadline": sent.values().sum::<u64>(),
            "cut_off_aws_writes_after_deadline": writes(&sent),
            "standby_repairs": repairs,
        }),
    )?;
    r.tear_down(s).await
}

/// Scenario 9: the leader paused (SIGSTOP) past the Lease duration; the
/// standby leads; AWS drift appears that only the paused replica would see
/// at once (its resync is due every 2 s, the standby's every hour, and no
/// change event is sent); then SIGCONT, while its requests to the API
/// server are slowed to 500 ms, so its renewal cannot be quick to notice.
/// Until it leads again it sends AWS nothing (it finds its renew deadline
/// passed on its first look and stands down; whatever it still tried would
/// be refused by the fence, and counted), writes no Event and leaves the
/// Lease alone; the drift stays. Once the standby
/// shuts down and it leads again, it repairs the drift.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_sends_nothing_when_it_resumes_until_it_leads_again() -> Result<()> {
    use k8s_openapi::api::coordination::v1::Lease;
    use nix::sys::signal::Signal;

    let _alone = ALONE.lock().await;
    let s = Scenario::new("chaos-paused").await?;
    let r = Replicas::start(&s, "2s", "1h").await?;
    let (jobs, desired) = shop(&s).await?;

    let refused_before = metric_sum(&r.a.metrics().await?, "movieapp_fenced_requests_total", &[]);
    r.a.signal(Signal::SIGSTOP)?;
    let paused = Instant::now();
    until_leads("replica b to lead", &r.b, takeover_bound() * 2).await?;
    let takeover = paused.elapsed();
    // Its first pass over the MovieApp done, replica b reads AWS again only
    // in an hour.
    eventually(
        "replica b's first reconcile",
        Duration::from_secs(30),
        || async {
            let text = r.b.metrics().await?;
            Ok((metric_sum(&text, "movieapp_reconcile_total", &[]) >= 1.0).then_some(()))
        },
    )
    .await?;
    drift(&s, &jobs, None).await?;
    let events: Api<Event> = Api::namespaced(s.client.clone(), &s.ns);
    let events_by_a = || async {
        anyhow::Ok(
            events
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter(|e| e.reporting_instance.as_deref() == Some("replica-a"))
                .map(|e| (e.metadata.name, e.metadata.resource_version))
                .collect::<BTreeSet<_>>(),
        )
    };
    let events_before = events_by_a().await?;
    let aws_a_paused = r.aws_a.counters().await?;

    // The standby leads once the Lease expired, the Lease duration after it
    // first saw the last renewal, which may have come up to a retry period
    // before the pause: paused for the Lease duration at least all the same.
    let lease_duration = Timing::default().lease_duration;
    tokio::time::sleep_until((paused + lease_duration + Duration::from_secs(1)).into()).await;
    r.kube_a.set(KubeMode::Slow(Duration::from_millis(500)));
    r.a.signal(Signal::SIGCONT)?;
    let paused_for = paused.elapsed();
    ensure!(
        paused_for > lease_duration,
        "paused for {paused_for:?} only"
    );
    // Two of its resync intervals and more than one poll of the events queue.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let text_a = r.a.metrics().await?;
    let sent = sent_between(&aws_a_paused, &r.aws_a.counters().await?);
    let refused = metric_sum(&text_a, "movieapp_fenced_requests_total", &[]) - refused_before;
    ensure!(
        sent.is_empty(),
        "replica a sent AWS {sent:?} ({} writes) after it resumed, not leading",
        writes(&sent)
    );
    ensure!(!leads(&r.a).await?, "replica a leads beside replica b");
    let events_after = events_by_a().await?;
    ensure!(
        events_after == events_before,
        "replica a wrote Events after it resumed: {:?}",
        events_after.difference(&events_before).collect::<Vec<_>>()
    );
    let holder = Api::<Lease>::namespaced(s.client.clone(), &s.ns)
        .get(movieapp_operator::leader::LEASE_NAME)
        .await?
        .spec
        .and_then(|spec| spec.holder_identity)
        .unwrap_or_default();
    ensure!(
        holder.starts_with("replica-b-"),
        "the Lease names {holder:?}, not replica b"
    );
    ensure!(
        visibility_timeout(&s, &jobs).await? != desired,
        "the drift was repaired while replica a did not lead"
    );

    // Replica b shuts down and releases the Lease: replica a leads again,
    // and only then repairs the drift.
    r.kube_a.set(KubeMode::Open);
    r.b.signal(Signal::SIGTERM)?;
    let released = Instant::now();
    until_leads("replica a to lead again", &r.a, Duration::from_secs(30)).await?;
    let leads_again = released.elapsed();
    until_repaired(&s, &jobs, &desired).await?;
    let repairs = r.aws_a.counters().await?.succeeded("SetQueueAttributes")
        - aws_a_paused.succeeded("SetQueueAttributes");
    ensure!(
        repairs >= 1,
        "replica a did not repair the drift once it led again"
    );
    report(
        "leader-paused",
        json!({
            "paused_s": paused_for.as_secs_f64(),
            "takeover_s": takeover.as_secs_f64(),
            "aws_requests_after_resume": sent.values().sum::<u64>(),
            "aws_writes_after_resume": writes(&sent),
            "refused_after_resume": refused,
            "refused_after_resume_by_client": {
                "aws": metric_sum(&text_a, "movieapp_fenced_requests_total", &["client=\"aws\""]),
                "kubernetes": metric_sum(&text_a, "movieapp_fenced_requests_total", &["client=\"kubernetes\""]),
            },
            "events_written_after_resume": events_after.difference(&events_before).count(),
            "leads_again_after_release_s": leads_again.as_secs_f64(),
        }),
    )?;
    r.tear_down(s).await
}
