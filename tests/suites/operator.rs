//! End-to-end tests of `movieapp-operator` against the local environment:
//! admission by the real API server, status and conditions, Secrets and
//! images, steady state, leader election.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use movieapp_model::iam::Component;
use movieapp_operator::crd::MovieApp;
use movieapp_tests::movieapps::{TIMEOUT, condition, is, manifest, movieapp, wait_for};
use movieapp_tests::operator::Operator;
use movieapp_tests::{LocalEnv, eventually, fixtures, unique_name};
use serde_json::json;

/// An untyped MovieApp, so that tests can send what the Rust types cannot hold.
fn raw_movieapp(name: &str, spec: serde_json::Value) -> Result<DynamicObject> {
    Ok(serde_json::from_value(manifest(name, spec))?)
}

/// Creates the MovieApp `shop` running `<repository>:<tag>`.
async fn create_shop(api: &Api<MovieApp>, repository: &str, tag: &str) -> Result<()> {
    api.create(
        &PostParams::default(),
        &movieapp(
            "shop",
            json!({ "worker": { "image": { "repository": repository, "tag": tag } } }),
        )?,
    )
    .await?;
    Ok(())
}

/// What most tests start from (see [`fixtures::Stage`]).
type Setup = fixtures::Stage;

async fn setup(prefix: &str, tmdb_secret: bool) -> Result<Setup> {
    if tmdb_secret {
        Setup::new(prefix).await
    } else {
        Setup::without_tmdb_secret(prefix).await
    }
}

/// A new namespace with the CRD installed, for admission tests: the client,
/// the namespace, and its MovieApps typed and untyped.
async fn admission_namespace(
    prefix: &str,
) -> Result<(kube::Client, String, Api<MovieApp>, Api<DynamicObject>)> {
    let client = LocalEnv::get().kube().await?;
    fixtures::install_crd(&client).await?;
    let ns = unique_name(prefix);
    fixtures::namespace(&client, &ns).await?;
    let api: Api<MovieApp> = Api::namespaced(client.clone(), &ns);
    let raw: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &ApiResource::erase::<MovieApp>(&()));
    Ok((client, ns, api, raw))
}

/// Expects the API server to refuse `result` with a message containing `expected`.
fn refused<T: std::fmt::Debug>(
    what: &str,
    result: std::result::Result<T, kube::Error>,
    expected: &str,
) -> Result<()> {
    match result {
        Err(kube::Error::Api(status)) => ensure!(
            status.code == 422 && status.message.contains(expected),
            "{what}: expected a 422 mentioning {expected:?}, got {} {}",
            status.code,
            status.message
        ),
        Err(other) => bail!("{what}: unexpected error {other}"),
        Ok(accepted) => bail!("{what} was accepted: {accepted:?}"),
    }
    Ok(())
}

/// Expects the API server to refuse creating a MovieApp with each spec,
/// with a message containing the text paired with it.
async fn refuses_creating(
    raw: &Api<DynamicObject>,
    cases: &[(serde_json::Value, &str)],
) -> Result<()> {
    for (i, (spec, expected)) in cases.iter().enumerate() {
        let created = raw
            .create(
                &PostParams::default(),
                &raw_movieapp(&format!("bad-{i}"), spec.clone())?,
            )
            .await;
        refused(&format!("spec {spec}"), created, expected)?;
    }
    Ok(())
}

#[tokio::test]
async fn admission_rejects_invalid_specs_with_clear_messages() -> Result<()> {
    let (client, ns, api, raw) = admission_namespace("op-admission").await?;

    let cases = [
        (
            json!({ "worker": { "replicas": -1 } }),
            "spec.worker.replicas",
        ),
        (
            json!({ "worker": { "autoscaling": { "minReplicas": 5, "maxReplicas": 2 } } }),
            "autoscaling.minReplicas must not exceed autoscaling.maxReplicas",
        ),
        (
            json!({ "worker": { "image": { "tag": "not a tag" } } }),
            "spec.worker.image.tag",
        ),
        (
            json!({ "worker": { "image": { "tag": "1.0", "digest": format!("sha256:{}", "a".repeat(64)) } } }),
            "set either image.tag or image.digest",
        ),
        (
            json!({ "worker": { "image": { "digest": "sha256:short" } } }),
            "spec.worker.image.digest",
        ),
        (
            json!({ "deletionPolicy": "Maybe" }),
            "supported values: \"Delete\", \"Retain\"",
        ),
        (
            json!({ "managementPolicy": "Observe" }),
            "supported values: \"Full\", \"ObserveOnly\"",
        ),
        (json!({ "region": "moon-base-1x" }), "spec.region"),
        (
            json!({ "database": { "billingMode": "PROVISIONED" } }),
            "readCapacityUnits and writeCapacityUnits are required",
        ),
        (
            json!({ "notifications": { "subscriptions": [{ "protocol": "email", "endpoint": "not-an-address" }] } }),
            "endpoint does not fit the protocol",
        ),
    ];
    refuses_creating(&raw, &cases).await?;

    // Region: immutable once the object exists, in every direction.
    api.create(
        &PostParams::default(),
        &movieapp("regional", json!({ "region": "eu-west-1" }))?,
    )
    .await?;
    for patch in [
        json!({ "spec": { "region": "us-east-1" } }),
        json!({ "spec": { "region": null } }),
    ] {
        let patched = api
            .patch("regional", &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        refused(&format!("patch {patch}"), patched, "region is immutable")?;
    }
    // A minimal object is valid, and gets every default at admission.
    let created = api
        .create(&PostParams::default(), &movieapp("minimal", json!({}))?)
        .await?;
    ensure!(created.spec.worker.replicas == 2 && created.spec.queue.max_receive_count == 5);
    fixtures::delete_namespace(&client, &ns).await
}

#[tokio::test]
async fn missing_secret_stalls_and_recovers_when_it_is_created() -> Result<()> {
    let Setup {
        env,
        client,
        ns,
        repository,
        api,
        ..
    } = setup("op-secret", false).await?;
    let operator = Operator::start(&ns, &[]).await?;
    create_shop(&api, &repository, "1.0.0").await?;
    let stalled = wait_for(
        &api,
        "shop",
        "Stalled=True with reason SecretNotFound",
        |app| is(app, "Stalled", "True", Some("SecretNotFound")),
    )
    .await?;
    ensure!(is(&stalled, "Ready", "False", Some("SecretNotFound")));
    let (flux, _) = movieapp_tests::kstatus(&stalled)?;
    ensure!(
        flux == "Failed",
        "kstatus reads a stalled MovieApp as {flux}"
    );
    ensure!(
        condition(&stalled, "Stalled").is_some_and(|c| c.message.contains("tmdb")),
        "the message names the Secret"
    );
    ensure!(
        stalled.status.as_ref().and_then(|s| s.observed_generation) == stalled.metadata.generation
    );
    ensure!(
        stalled
            .metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == "movieapp.io/cleanup")),
        "the finalizer is set"
    );

    // The Secret appears: Stalled clears by itself, without a restart.
    fixtures::tmdb_secret(&client, &ns, &env.tmdb_api_key).await?;
    wait_for(&api, "shop", "Stalled to clear", |app| {
        is(app, "Stalled", "False", None)
    })
    .await?;

    operator.stop().await?;
    fixtures::delete_namespace(&client, &ns).await
}

/// Promotion with the registry Terraform makes: version tags never move, the
/// channel tag (the CRD's default tag) does, and a MovieApp that names no tag
/// runs what the channel points at, rolled out at the next resync.
#[tokio::test]
async fn promotion_moves_only_the_channel_tag_and_the_worker_follows_it() -> Result<()> {
    use k8s_openapi::api::apps::v1::Deployment;
    use movieapp_operator::crd::DEFAULT_TAG;

    let Setup {
        client,
        ns,
        ecr,
        api,
        ..
    } = setup("op-promote", true).await?;
    let repository = unique_name("release");
    fixtures::release_repository(&ecr, &repository, DEFAULT_TAG).await?;
    let version = fixtures::push_image(&ecr, &repository, "1.0.0", 1).await?;
    let first = fixtures::push_image(&ecr, &repository, DEFAULT_TAG, 1).await?;

    let operator = Operator::start(&ns, &["--resync-interval", "3s"]).await?;
    api.create(
        &PostParams::default(),
        &movieapp(
            "shop",
            json!({ "worker": { "image": { "repository": repository } } }),
        )?,
    )
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let runs = |digest: String| {
        let deployments = deployments.clone();
        async move {
            let d = deployments.get_opt("shop").await?;
            let image = d
                .and_then(|d| d.spec)
                .and_then(|s| s.template.spec)
                .and_then(|p| p.containers.first().and_then(|c| c.image.clone()));
            Ok(image.filter(|i| i.ends_with(&digest)).map(|_| ()))
        }
    };
    eventually("the worker to run the channel's image", TIMEOUT, || {
        runs(first.clone())
    })
    .await?;

    // A version tag cannot be moved: the registry refuses the push (ECR says
    // ImageTagAlreadyExistsException, moto ImageAlreadyExistsException), and
    // the tag still names the first build.
    let refused = fixtures::push_image(&ecr, &repository, "1.0.0", 2).await;
    let error = format!("{:#}", refused.err().context("moving 1.0.0 was accepted")?);
    ensure!(
        error.contains("AlreadyExistsException") && error.contains("1.0.0"),
        "moving a version tag failed for another reason: {error}"
    );
    let still = ecr
        .describe_images()
        .repository_name(&repository)
        .image_ids(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_tag("1.0.0")
                .build(),
        )
        .send()
        .await?;
    ensure!(
        still.image_details().first().and_then(|d| d.image_digest()) == Some(version.as_str()),
        "1.0.0 moved: {still:?}"
    );

    // Promoting a build to the channel rolls it out.
    let promoted = fixtures::push_image(&ecr, &repository, DEFAULT_TAG, 2).await?;
    ensure!(promoted != first);
    eventually("the promoted image to be rolled out", TIMEOUT, || {
        runs(promoted.clone())
    })
    .await?;

    operator.stop().await?;
    fixtures::delete_namespace(&client, &ns).await
}

#[tokio::test]
async fn an_invalid_movieapp_creates_nothing_in_aws_until_it_is_fixed() -> Result<()> {
    let Setup {
        client,
        ns,
        aws,
        repository,
        api,
        ..
    } = setup("op-invalid", true).await?;
    let operator = Operator::start(&ns, &[]).await?;
    let image = json!({ "repository": repository, "tag": "1.0.0" });
    api.create(
        &PostParams::default(),
        &movieapp(
            "shop",
            json!({ "worker": { "image": image, "env": [{ "name": "TMDB_API_KEY", "value": "mine" }] } }),
        )?,
    )
    .await?;
    let stalled = wait_for(
        &api,
        "shop",
        "Stalled=True with reason InvalidSpec",
        |app| is(app, "Stalled", "True", Some("InvalidSpec")),
    )
    .await?;
    ensure!(
        condition(&stalled, "Stalled").is_some_and(|c| c.message.contains("TMDB_API_KEY")),
        "the message names the variable"
    );
    for part in [
        "ImageResolved",
        "DatabaseReady",
        "QueueReady",
        "NotificationsReady",
    ] {
        ensure!(is(&stalled, part, "False", Some("InvalidSpec")), "{part}");
    }
    ensure!(
        stalled
            .metadata
            .finalizers
            .as_ref()
            .is_none_or(Vec::is_empty),
        "nothing to clean up, so no finalizer: {:?}",
        stalled.metadata.finalizers
    );
    // Not one AWS request, and nothing in AWS.
    let requests = movieapp_tests::operator::metric_sum(
        &operator.metrics().await?,
        "movieapp_aws_requests_total",
        &[],
    );
    ensure!(
        requests == 0.0,
        "{requests} AWS requests for an invalid MovieApp"
    );
    let inventory = movieapp_tests::inventory::Inventory::of_namespace(&aws, &ns).await?;
    ensure!(inventory.is_empty(), "AWS holds {inventory:?}");

    // Fixed: provisioned as any other.
    api.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "worker": { "env": null } } })),
    )
    .await?;
    let fixed = wait_for(&api, "shop", "DatabaseReady=True once fixed", |app| {
        is(app, "DatabaseReady", "True", None) && is(app, "Stalled", "False", None)
    })
    .await?;
    ensure!(
        fixed
            .metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == "movieapp.io/cleanup")),
        "the finalizer is set before anything exists in AWS"
    );
    api.delete("shop", &Default::default()).await?;
    eventually("the MovieApp to be gone", TIMEOUT, || async {
        Ok(api.get_opt("shop").await?.is_none().then_some(()))
    })
    .await?;
    ensure!(
        movieapp_tests::inventory::Inventory::of_namespace(&aws, &ns)
            .await?
            .is_empty(),
        "AWS resources left after deletion"
    );
    operator.stop().await?;
    fixtures::delete_namespace(&client, &ns).await
}

#[tokio::test]
async fn per_object_memory_goes_with_its_objects() -> Result<()> {
    let Setup {
        client,
        ns,
        repository,
        api,
        ..
    } = setup("op-memory", true).await?;
    let operator = Operator::start(&ns, &[]).await?;
    let remembered = || async {
        Ok::<f64, anyhow::Error>(movieapp_tests::operator::metric_sum(
            &operator.metrics().await?,
            "movieapp_remembered_objects",
            &[],
        ))
    };
    let spec = json!({ "worker": { "image": { "repository": repository, "tag": "1.0.0" } } });
    for round in 0..3 {
        // `shop` and `shop-2`: one deleted the usual way, the other with its
        // finalizer removed by hand (its AWS resources are cleaned up below).
        for name in ["shop", "shop-2"] {
            api.create(&PostParams::default(), &movieapp(name, spec.clone())?)
                .await?;
        }
        let mut provisioned = Vec::new();
        for name in ["shop", "shop-2"] {
            provisioned.push(
                wait_for(&api, name, "the AWS side in place", |app| {
                    ["DatabaseReady", "QueueReady", "NotificationsReady"]
                        .iter()
                        .all(|part| is(app, part, "True", None))
                })
                .await?,
            );
        }
        ensure!(
            remembered().await? >= 2.0,
            "round {round}: nothing remembered"
        );
        api.patch(
            "shop-2",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
        )
        .await?;
        for name in ["shop", "shop-2"] {
            api.delete(name, &Default::default()).await?;
        }
        for name in ["shop", "shop-2"] {
            eventually("the MovieApp to be gone", TIMEOUT, || async {
                Ok(api.get_opt(name).await?.is_none().then_some(()))
            })
            .await?;
        }
        eventually("the memory to be empty", TIMEOUT, || async {
            Ok((remembered().await? == 0.0).then_some(()))
        })
        .await
        .with_context(|| format!("round {round}"))?;
        let resources = movieapp_tests::operator::metric_sum(
            &operator.metrics().await?,
            "movieapp_resources",
            &["condition=\"Ready\""],
        );
        ensure!(
            resources == 0.0,
            "round {round}: {resources} objects still counted"
        );
        // What the deletion without clean-up left in AWS.
        delete_aws_side(&provisioned[1]).await?;
    }
    operator.stop().await?;
    fixtures::delete_namespace(&client, &ns).await
}

/// Deletes the AWS resources of `app` the way the operator's clean-up does.
async fn delete_aws_side(app: &MovieApp) -> Result<()> {
    use movieapp_operator::aws::Aws;
    use movieapp_operator::aws::tags::Owner;
    use movieapp_operator::metrics::Metrics;
    use movieapp_operator::naming::AppId;
    use movieapp_operator::provision::{self, Cleanup, Target};
    let env = LocalEnv::get();
    let aws = Aws::new(Some(&env.aws_endpoint_url), 50, Metrics::new()).await;
    let status = app.status.clone().context("no status")?;
    let clients = aws.clients(status.region.as_deref().context("no region")?);
    let namespace = app.metadata.namespace.clone().context("no namespace")?;
    let name = app.metadata.name.clone().context("no name")?;
    let owner = Owner {
        uid: app.metadata.uid.clone().context("no uid")?,
        namespace: namespace.clone(),
        name: name.clone(),
        cluster: "default".to_owned(),
    };
    let target = Target {
        aws: &clients,
        owner: &owner,
        id: AppId {
            namespace: &namespace,
            name: &name,
        },
        spec: &app.spec,
        adopt: false,
        previous: Some(&status),
        generation: app.metadata.generation,
        mode: provision::Mode::Manage,
        tags: None,
        light: None,
        worker_roles: None,
    };
    eventually("the AWS side to be deleted", TIMEOUT, || async {
        Ok((provision::delete(&target).await? == Cleanup::Done).then_some(()))
    })
    .await
}

#[tokio::test]
async fn missing_image_sets_image_resolved_false() -> Result<()> {
    let Setup {
        client,
        ns,
        ecr,
        repository,
        api,
        ..
    } = setup("op-image", true).await?;
    let operator = Operator::start(&ns, &[]).await?;
    create_shop(&api, &repository, "9.9.9").await?;
    let app = wait_for(&api, "shop", "ImageResolved=False (ImageNotFound)", |app| {
        is(app, "ImageResolved", "False", Some("ImageNotFound"))
    })
    .await?;
    ensure!(is(&app, "Stalled", "True", Some("ImageNotFound")));

    // Pushing the tag resolves it.
    let digest = fixtures::push_image(&ecr, &repository, "9.9.9", 2).await?;
    let app = wait_for(&api, "shop", "ImageResolved=True", |app| {
        is(app, "ImageResolved", "True", None)
    })
    .await?;
    ensure!(
        condition(&app, "ImageResolved")
            .is_some_and(|c| c.message.ends_with(&format!("{repository}@{digest}"))),
        "the resolved reference carries the digest"
    );

    // A missing repository is reported as such.
    api.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(
            json!({ "spec": { "worker": { "image": { "repository": unique_name("nope") } } } }),
        ),
    )
    .await?;
    wait_for(
        &api,
        "shop",
        "ImageResolved=False (RepositoryNotFound)",
        |app| {
            is(app, "ImageResolved", "False", Some("RepositoryNotFound"))
                && app.status.as_ref().and_then(|s| s.observed_generation)
                    == app.metadata.generation
        },
    )
    .await?;

    operator.stop().await?;
    fixtures::delete_namespace(&client, &ns).await
}

#[tokio::test]
async fn a_child_the_api_server_refuses_is_reported_and_retried() -> Result<()> {
    use k8s_openapi::api::core::v1::ResourceQuota;
    let Setup {
        client,
        ns,
        repository,
        api,
        ..
    } = setup("op-quota", true).await?;
    // A quota of no Services: the API server refuses the worker's Service.
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &ns);
    quotas
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": { "name": "no-services" },
                "spec": { "hard": { "services": "0" } },
            }))?,
        )
        .await?;
    let operator = Operator::start(&ns, &[]).await?;
    create_shop(&api, &repository, "1.0.0").await?;
    let stalled = wait_for(
        &api,
        "shop",
        "WorkerAvailable=False with reason ChildRejected",
        |app| is(app, "WorkerAvailable", "False", Some("ChildRejected")),
    )
    .await?;
    ensure!(is(&stalled, "Stalled", "True", Some("ChildRejected")));
    ensure!(is(&stalled, "Ready", "False", Some("ChildRejected")));
    // The AWS side is reported as it stands.
    ensure!(is(&stalled, "DatabaseReady", "True", None));
    let message = &condition(&stalled, "WorkerAvailable")
        .context("no WorkerAvailable condition")?
        .message;
    ensure!(
        message.contains(&format!("Service {ns}/shop")) && message.contains("quota"),
        "the message names the child and the API server's reason: {message}"
    );

    // The quota goes: the retries (with backoff) apply the Service.
    quotas.delete("no-services", &Default::default()).await?;
    wait_for(&api, "shop", "Ready=True once the quota is gone", |app| {
        is(app, "Ready", "True", None)
    })
    .await?;

    operator.stop().await?;
    fixtures::delete_namespace(&client, &ns).await
}

/// The API server's audit log of the local environment.
fn audit_log() -> Result<String> {
    Ok(format!(
        "{}/audit.log",
        std::env::var("LOCALENV_DIR")
            .context("LOCALENV_DIR is not set: source .localenv/env.sh")?
    ))
}

/// Counts audit-log entries of mutating requests in `namespace` after `offset` bytes.
fn audit_writes(audit: &str, namespace: &str, offset: usize) -> Result<Vec<String>> {
    let log = std::fs::read_to_string(audit).with_context(|| format!("reading {audit}"))?;
    let mut writes = Vec::new();
    for line in log.get(offset..).unwrap_or_default().lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let verb = entry["verb"].as_str().unwrap_or_default();
        let in_namespace = entry["objectRef"]["namespace"].as_str() == Some(namespace);
        if in_namespace
            && ["create", "update", "patch", "delete", "deletecollection"].contains(&verb)
        {
            writes.push(format!(
                "{verb} {}/{} by {}",
                entry["objectRef"]["resource"].as_str().unwrap_or_default(),
                entry["objectRef"]["name"].as_str().unwrap_or_default(),
                entry["user"]["username"].as_str().unwrap_or_default()
            ));
        }
    }
    Ok(writes)
}

#[tokio::test]
async fn a_steady_movieapp_costs_no_api_writes() -> Result<()> {
    let audit = audit_log()?;
    let Setup {
        client,
        ns,
        repository,
        api,
        ..
    } = setup("op-steady", true).await?;
    // A short resync, so the window below spans several.
    let operator = Operator::start(&ns, &["--resync-interval", "2s"]).await?;

    // Every child kind a default MovieApp can have, the exports ConfigMap
    // and the NetworkPolicy included.
    api.create(
        &PostParams::default(),
        &movieapp(
            "shop",
            json!({ "worker": { "image": { "repository": repository, "tag": "1.0.0" } },
                    "exports": { "configMapName": "shop-connection" } }),
        )?,
    )
    .await?;
    // Steady means Ready: on a loaded machine the worker's Pods may become
    // available well after the first status.
    wait_for(&api, "shop", "Ready=True", |app| {
        app.status.as_ref().and_then(|s| s.observed_generation) == app.metadata.generation
            && is(app, "Ready", "True", None)
    })
    .await?;
    // Let the first reconciles settle, then watch a window of resyncs.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let reconciles_before = movieapp_tests::operator::metric_sum(
        &operator.metrics().await?,
        "movieapp_reconcile_total",
        &[],
    );
    let offset = std::fs::metadata(&audit)?.len() as usize;
    tokio::time::sleep(Duration::from_secs(12)).await;
    let reconciles_after = movieapp_tests::operator::metric_sum(
        &operator.metrics().await?,
        "movieapp_reconcile_total",
        &[],
    );
    let writes = audit_writes(&audit, &ns, offset)?;
    // The audit log does see this namespace's writes (the create, the
    // finalizer and the first status), so an empty window means something.
    let earlier = audit_writes(&audit, &ns, 0)?;
    ensure!(
        earlier
            .iter()
            .any(|w| w.starts_with("patch movieapps/shop")),
        "the audit log shows none of the operator's first writes: {earlier:#?}"
    );

    ensure!(
        reconciles_after - reconciles_before >= 2.0,
        "expected at least two resyncs in the window, saw {}",
        reconciles_after - reconciles_before
    );
    ensure!(
        writes.is_empty(),
        "steady resyncs wrote to the API server: {writes:#?}"
    );

    operator.stop().await?;
    fixtures::delete_namespace(&client, &ns).await
}

#[tokio::test]
async fn only_the_leader_reconciles_and_a_killed_leader_is_replaced() -> Result<()> {
    let env = LocalEnv::get();
    let client = env.kube().await?;
    fixtures::install_crd(&client).await?;
    let ns = unique_name("op-leader");
    fixtures::namespace(&client, &ns).await?;
    let election = ["--leader-elect", "--leader-election-namespace", ns.as_str()];
    let first = Operator::start(&ns, &election).await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let holder = |lease: &Lease| lease.spec.as_ref().and_then(|s| s.holder_identity.clone());
    let first_holder = eventually("a leader", TIMEOUT, || async {
        Ok(leases
            .get_opt("movieapp-operator-leader")
            .await?
            .as_ref()
            .and_then(holder))
    })
    .await?;
    let second = Operator::start(&ns, &election).await?;

    let leader_gauge =
        |text: &str| movieapp_tests::operator::metric_sum(text, "movieapp_leader", &[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        leader_gauge(&first.metrics().await?) == 1.0,
        "the first replica leads"
    );
    ensure!(
        leader_gauge(&second.metrics().await?) == 0.0,
        "the second replica stands by"
    );

    // The standby does not reconcile: a MovieApp is only handled by the leader.
    let api: Api<MovieApp> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &movieapp("shop", json!({}))?)
        .await?;
    wait_for(&api, "shop", "a status from the leader", |app| {
        app.status.is_some()
    })
    .await?;
    let standby_reconciles = movieapp_tests::operator::metric_sum(
        &second.metrics().await?,
        "movieapp_reconcile_total",
        &[],
    );
    ensure!(
        standby_reconciles == 0.0,
        "the standby reconciled {standby_reconciles} times"
    );

    // Kill the leader without releasing the Lease: the standby takes over
    // once the Lease expires (from its last look at the renewed Lease, at
    // most a retry period after the renewal), plus slack for the request.
    let timing = movieapp_operator::leader::Timing::default();
    let bound = timing.lease_duration + timing.retry_period + Duration::from_secs(3);
    let killed_at = tokio::time::Instant::now();
    first.kill();
    let new_holder = eventually("a new leader", bound * 2, || async {
        let current = leases
            .get_opt("movieapp-operator-leader")
            .await?
            .as_ref()
            .and_then(holder);
        Ok(current.filter(|h| *h != first_holder))
    })
    .await?;
    let handover = killed_at.elapsed();
    ensure!(
        handover <= bound,
        "handover took {handover:?}, more than {bound:?}"
    );
    ensure!(!new_holder.is_empty());
    eventually("the new leader to report itself", TIMEOUT, || async {
        Ok((leader_gauge(&second.metrics().await?) == 1.0).then_some(()))
    })
    .await?;

    second.stop().await?;
    // A graceful stop releases the Lease at once.
    let released = leases.get("movieapp-operator-leader").await?;
    ensure!(
        holder(&released).is_none(),
        "the Lease was not released: {:?}",
        holder(&released)
    );
    fixtures::delete_namespace(&client, &ns).await
}

#[tokio::test]
async fn lifecycle_from_apply_to_ready_updates_repairs_and_deletion() -> Result<()> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
    use kube::api::DeleteParams;

    let Setup {
        client,
        ns,
        aws,
        ecr,
        repository,
        digest,
        api,
        ..
    } = setup("op-life", true).await?;
    let operator = Operator::start(&ns, &["--resync-interval", "3s"]).await?;

    // examples/movieapp.yaml, in this test's namespace and with its image.
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/movieapp.yaml"
    ))?;
    let mut app: MovieApp = serde_json::from_value(serde_json::to_value(
        parse_with_kubectl(&example).context("examples/movieapp.yaml")?,
    )?)?;
    app.metadata.namespace = Some(ns.clone());
    app.spec.worker.image.repository = repository.clone();
    app.spec.worker.autoscaling = Some(movieapp_operator::crd::AutoscalingSpec {
        min_replicas: 2,
        max_replicas: 4,
        target_cpu_utilization_percentage: 70,
    });
    let name = app
        .metadata
        .name
        .clone()
        .context("the example has a name")?;
    api.create(&PostParams::default(), &app).await?;

    let ready = wait_for(&api, &name, "Ready=True", |app| {
        is(app, "Ready", "True", None)
            && app.status.as_ref().and_then(|s| s.observed_generation) == app.metadata.generation
    })
    .await?;
    let (flux, _) = movieapp_tests::kstatus(&ready)?;
    ensure!(
        flux == "Current",
        "kstatus reads a Ready MovieApp as {flux}"
    );
    for part in [
        "ImageResolved",
        "DatabaseReady",
        "QueueReady",
        "NotificationsReady",
        "WorkerAvailable",
    ] {
        ensure!(is(&ready, part, "True", None), "{part} is not True");
    }
    let status = ready.status.clone().context("status")?;
    ensure!(status.tables.len() == 3 && status.queue.is_some() && status.notifications.is_some());
    ensure!(
        status
            .image
            .as_deref()
            .is_some_and(|i| i.ends_with(&format!("{repository}@{digest}"))),
        "status.image {:?}",
        status.image
    );
    // `kubectl get` shows the tag; `-o wide` the whole reference; the
    // category `all` lists the MovieApp in `kubectl get all`.
    let tag = app.spec.worker.image.effective_tag().to_owned();
    ensure!(
        status.image_version.as_deref() == Some(tag.as_str()),
        "status.imageVersion {:?}, expected the tag {tag}",
        status.image_version
    );
    let kubectl = |args: &[&str]| -> Result<String> {
        let output = std::process::Command::new("kubectl")
            .args(["-n", &ns])
            .args(args)
            .output()?;
        ensure!(
            output.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8(output.stdout)?)
    };
    let table = kubectl(&["get", "movieapp", &name])?;
    ensure!(
        table.starts_with("NAME") && table.contains("VERSION") && table.contains(&tag),
        "kubectl get shows no VERSION with the tag:\n{table}"
    );
    ensure!(
        !table.contains("sha256:"),
        "kubectl get shows a digest:\n{table}"
    );
    let wide = kubectl(&["get", "movieapp", &name, "-o", "wide"])?;
    ensure!(
        wide.contains("IMAGE") && wide.contains(&format!("{repository}@{digest}")),
        "kubectl get -o wide shows no IMAGE:\n{wide}"
    );
    // `kubectl get all` lists every kind of the category; a kind another
    // suite's CRD adds to it and removes again (Flux's, Argo CD's) fails the
    // list while kubectl's cached discovery still names it, so it is asked
    // again, each time with discovery of its own.
    let mut all = String::new();
    for attempt in 1..=10 {
        let cache = std::env::temp_dir().join(format!("kubectl-discovery-{ns}-{attempt}"));
        let cache = cache.to_string_lossy().into_owned();
        match kubectl(&["get", "all", "--cache-dir", &cache]) {
            Ok(listed) => {
                all = listed;
                break;
            }
            Err(error) if attempt == 10 => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_secs(3)).await,
        }
    }
    ensure!(
        all.contains(&format!("movieapp.movieapp.io/{name}")),
        "kubectl get all does not list the MovieApp:\n{all}"
    );

    // While the worker cannot roll out (Pods too big to schedule), the
    // MovieApp is Reconciling and Flux's kstatus says InProgress.
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(
            json!({ "spec": { "worker": { "resources": { "requests": { "cpu": "500" } } } } }),
        ),
    )
    .await?;
    let progressing = wait_for(
        &api,
        &name,
        "Reconciling=True while the rollout is stuck",
        |app| {
            is(app, "Reconciling", "True", None)
                && app.status.as_ref().and_then(|s| s.observed_generation)
                    == app.metadata.generation
        },
    )
    .await?;
    let (flux, _) = movieapp_tests::kstatus(&progressing)?;
    ensure!(
        flux == "InProgress",
        "kstatus reads a MovieApp in progress as {flux}"
    );
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(
            json!({ "spec": { "worker": { "resources": { "requests": { "cpu": "100m" } } } } }),
        ),
    )
    .await?;
    wait_for(&api, &name, "Ready=True again", |app| {
        is(app, "Ready", "True", None)
            && app.status.as_ref().and_then(|s| s.observed_generation) == app.metadata.generation
    })
    .await?;

    // `kubectl wait` agrees.
    let wait = std::process::Command::new("kubectl")
        .args([
            "-n",
            &ns,
            "wait",
            &format!("movieapp/{name}"),
            "--for=condition=Ready",
            "--timeout=10s",
        ])
        .output()?;
    ensure!(
        wait.status.success(),
        "kubectl wait: {}",
        String::from_utf8_lossy(&wait.stderr)
    );

    // Children, with owner references and the digest.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let deployment = deployments.get(&name).await?;
    let owner = deployment
        .metadata
        .owner_references
        .as_ref()
        .and_then(|o| o.first())
        .context("the Deployment has no owner")?;
    ensure!(
        owner.kind == "MovieApp"
            && owner.controller == Some(true)
            && Some(&owner.uid) == ready.metadata.uid.as_ref()
    );
    let pod = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .context("pod spec")?;
    ensure!(
        pod.containers
            .iter()
            .all(|c| c.image.as_deref().is_some_and(|i| i.ends_with(&digest)))
    );
    // With autoscaling the HPA owns the replica count: the operator's apply leaves it out.
    let ours = deployment
        .metadata
        .managed_fields
        .as_ref()
        .and_then(|fields| {
            fields
                .iter()
                .find(|f| f.manager.as_deref() == Some("movieapp-operator"))
        })
        .and_then(|f| f.fields_v1.as_ref())
        .map(|f| f.0.clone())
        .context("no fields managed by movieapp-operator")?;
    ensure!(
        ours["f:spec"]["f:template"].is_object(),
        "the operator manages the template"
    );
    ensure!(
        ours["f:spec"].get("f:replicas").is_none(),
        "the operator set replicas under an HPA"
    );
    let config = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get(&format!("{name}-config"))
        .await?;
    let data = config.data.unwrap_or_default();
    ensure!(
        data.get("MOVIEAPP_JOBS_QUEUE_URL") == status.queue.as_ref().map(|q| &q.url),
        "the ConfigMap carries the queue URL"
    );
    Api::<Service>::namespaced(client.clone(), &ns)
        .get(&name)
        .await?;
    Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .get(&name)
        .await?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &ns);
    ensure!(hpas.get(&name).await?.spec.map(|s| s.max_replicas) == Some(4));

    // Autoscaling removed: the HPA goes, replicas come back to the Deployment.
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "worker": { "autoscaling": null, "replicas": 3 } } })),
    )
    .await?;
    eventually("the HPA to be deleted", TIMEOUT, || async {
        Ok(hpas.get_opt(&name).await?.is_none().then_some(()))
    })
    .await?;
    eventually("the Deployment to follow replicas: 3", TIMEOUT, || async {
        let d = deployments.get(&name).await?;
        Ok((d.spec.and_then(|s| s.replicas) == Some(3)).then_some(()))
    })
    .await?;

    // A deleted Deployment is recreated at once (the watch, not the resync).
    deployments
        .delete(&name, &DeleteParams::foreground())
        .await?;
    let deleted_at = tokio::time::Instant::now();
    eventually("the Deployment to come back", TIMEOUT, || async {
        let d = deployments.get_opt(&name).await?;
        Ok(d.filter(|d| {
            d.metadata.deletion_timestamp.is_none() && d.metadata.uid != deployment.metadata.uid
        })
        .map(|_| ()))
    })
    .await?;
    let recreated_in = deleted_at.elapsed();
    ensure!(
        recreated_in <= Duration::from_secs(5),
        "recreated after {recreated_in:?}"
    );

    // A tag that moves is rolled out at the next resync.
    let moved = fixtures::push_image(&ecr, &repository, "1.0.0", 2).await?;
    ensure!(moved != digest);
    eventually("the new digest to be rolled out", TIMEOUT, || async {
        let d = deployments.get(&name).await?;
        let image = d
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|p| p.containers.first().and_then(|c| c.image.clone()));
        Ok(image.filter(|i| i.ends_with(&moved)).map(|_| ()))
    })
    .await?;

    // A missing image: ImageResolved=False, and the Deployment is left as it was.
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "worker": { "image": { "tag": "does-not-exist" } } } })),
    )
    .await?;
    wait_for(&api, &name, "ImageResolved=False", |app| {
        is(app, "ImageResolved", "False", Some("ImageNotFound"))
    })
    .await?;
    let untouched = deployments.get(&name).await?;
    let image = untouched
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers.first().and_then(|c| c.image.clone()))
        .unwrap_or_default();
    ensure!(
        image.ends_with(&moved),
        "the running Deployment changed: {image}"
    );

    // Deletion (deletionPolicy: Delete): AWS resources gone, object gone.
    let queue_url = status
        .queue
        .as_ref()
        .map(|q| q.url.clone())
        .context("queue")?;
    api.delete(&name, &DeleteParams::default()).await?;
    eventually("the MovieApp to be gone", TIMEOUT, || async {
        Ok(api.get_opt(&name).await?.is_none().then_some(()))
    })
    .await?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    for table in &status.tables {
        let gone = dynamodb
            .describe_table()
            .table_name(&table.name)
            .send()
            .await;
        ensure!(gone.is_err(), "table {} still exists", table.name);
    }
    let sqs = aws_sdk_sqs::Client::new(&aws);
    ensure!(
        sqs.get_queue_attributes()
            .queue_url(&queue_url)
            .send()
            .await
            .is_err(),
        "the jobs queue still exists"
    );

    operator.stop().await?;
    fixtures::delete_namespace(&client, &ns).await
}

/// Parses YAML through the API machinery's own rules: via `kubectl`, which
/// reads the file exactly as `kubectl apply -f` would.
fn parse_with_kubectl(yaml: &str) -> Result<serde_json::Value> {
    use std::io::Write;
    let mut child = std::process::Command::new("kubectl")
        .args(["create", "--dry-run=client", "-o", "json", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(yaml.as_bytes())?;
    let output = child.wait_with_output()?;
    ensure!(
        output.status.success(),
        "kubectl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// An object that exists before a MovieApp whose child would carry its name.
struct Foreign {
    /// The MovieApp whose child it collides with.
    app: &'static str,
    kind: &'static str,
    name: String,
    resource: ApiResource,
    body: serde_json::Value,
}

impl Foreign {
    fn api(&self, client: &kube::Client, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(client.clone(), ns, &self.resource)
    }
}

/// Objects of every child kind, each named like a child of its own MovieApp
/// and made by someone else: two carry the operator's labels (so they are
/// in its caches), the others none (so only a GET finds them).
fn foreign_objects() -> Result<Vec<Foreign>> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    let ours = json!({
        "app.kubernetes.io/managed-by": "movieapp-operator",
        "app.kubernetes.io/name": "api-worker",
    });
    let pods = json!({ "matchLabels": { "team": "payments" } });
    Ok(vec![
        Foreign {
            app: "c-deployment",
            kind: "Deployment",
            name: "c-deployment".into(),
            resource: ApiResource::erase::<Deployment>(&()),
            body: json!({
                "spec": { "replicas": 0, "selector": pods,
                  "template": { "metadata": { "labels": { "team": "payments" } },
                    "spec": { "containers": [{ "name": "db", "image": "postgres" }] } } },
            }),
        },
        Foreign {
            app: "c-service",
            kind: "Service",
            name: "c-service".into(),
            resource: ApiResource::erase::<Service>(&()),
            // The traffic-hijack case: the payments Service, labelled like ours.
            body: json!({
                "metadata": { "labels": ours },
                "spec": { "selector": { "team": "payments" }, "ports": [{ "port": 5432 }] },
            }),
        },
        Foreign {
            app: "c-config",
            kind: "ConfigMap",
            name: "c-config-config".into(),
            resource: ApiResource::erase::<ConfigMap>(&()),
            body: json!({ "metadata": { "labels": ours }, "data": { "owner": "payments" } }),
        },
        Foreign {
            app: "c-account",
            kind: "ServiceAccount",
            name: "c-account".into(),
            resource: ApiResource::erase::<ServiceAccount>(&()),
            body: json!({ "metadata": { "annotations": { "team": "payments" } } }),
        },
        Foreign {
            app: "c-hpa",
            kind: "HorizontalPodAutoscaler",
            name: "c-hpa".into(),
            resource: ApiResource::erase::<HorizontalPodAutoscaler>(&()),
            body: json!({
                "spec": { "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "payments" },
                  "minReplicas": 1, "maxReplicas": 3 },
            }),
        },
        Foreign {
            app: "c-pdb",
            kind: "PodDisruptionBudget",
            name: "c-pdb".into(),
            resource: ApiResource::erase::<PodDisruptionBudget>(&()),
            body: json!({ "spec": { "minAvailable": 1, "selector": pods } }),
        },
        Foreign {
            app: "c-netpol",
            kind: "NetworkPolicy",
            name: "c-netpol".into(),
            resource: ApiResource::erase::<NetworkPolicy>(&()),
            body: json!({ "spec": { "podSelector": pods, "policyTypes": ["Ingress"] } }),
        },
        Foreign {
            // The exports ConfigMap, under the name its spec chooses.
            app: "c-exports",
            kind: "ConfigMap",
            name: "payments-settings".into(),
            resource: ApiResource::erase::<ConfigMap>(&()),
            body: json!({ "data": { "DATABASE_HOST": "payments-db" } }),
        },
        Foreign {
            app: "c-auth",
            kind: "Secret",
            name: "c-auth-auth".into(),
            resource: ApiResource::erase::<Secret>(&()),
            body: json!({ "type": "Opaque", "stringData": { "token-signing-key": "payments-key" } }),
        },
    ])
}

/// What an object is, leaving out what its own controllers write (status,
/// and with it the resourceVersion of the Deployment, the HPA and the PDB):
/// the resourceVersion itself for the kinds no controller writes to.
fn snapshot(object: &DynamicObject) -> serde_json::Value {
    let meta = &object.metadata;
    let kind = object
        .types
        .as_ref()
        .map(|t| t.kind.as_str())
        .unwrap_or_default();
    let version = match kind {
        "Deployment" | "HorizontalPodAutoscaler" | "PodDisruptionBudget" => None,
        _ => meta.resource_version.clone(),
    };
    json!({
        "resourceVersion": version,
        "uid": meta.uid,
        "labels": meta.labels,
        "annotations": meta.annotations,
        "ownerReferences": meta.owner_references,
        "finalizers": meta.finalizers,
        "generation": meta.generation,
        "spec": object.data.get("spec"),
        "data": object.data.get("data"),
        "type": object.data.get("type"),
    })
}

/// Nothing the operator did not make is touched: a MovieApp whose child
/// would take an existing object's name stalls with `NameConflict` naming
/// it, and the object stays exactly as it was, through the MovieApp's
/// reconciles and its deletion.
#[tokio::test]
async fn objects_the_operator_did_not_make_are_never_touched() -> Result<()> {
    let Setup {
        client,
        ns,
        repository,
        api,
        ..
    } = setup("op-foreign", true).await?;
    let foreign = foreign_objects()?;
    for object in &foreign {
        let mut body = object.body.clone();
        body["apiVersion"] = json!(object.resource.api_version);
        body["kind"] = json!(object.kind);
        body["metadata"]["name"] = json!(object.name);
        let created = object
            .api(&client, &ns)
            .create(&PostParams::default(), &serde_json::from_value(body)?)
            .await
            .with_context(|| format!("creating {} {}", object.kind, object.name))?;
        ensure!(created.metadata.uid.is_some());
    }
    // The Deployment controller annotates its Deployment once; from then on
    // nothing but the operator could change these objects.
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), &ns);
    eventually(
        "the Deployment controller to see c-deployment",
        TIMEOUT,
        || async {
            let deployment = deployments.get("c-deployment").await?;
            let seen = deployment.status.and_then(|s| s.observed_generation);
            Ok((seen == deployment.metadata.generation
                && deployment
                    .metadata
                    .annotations
                    .is_some_and(|a| a.contains_key("deployment.kubernetes.io/revision")))
            .then_some(()))
        },
    )
    .await?;
    let mut versions = Vec::new();
    for object in &foreign {
        versions.push(snapshot(&object.api(&client, &ns).get(&object.name).await?));
    }
    let operator = Operator::start(&ns, &["--resync-interval", "3s"]).await?;
    for object in &foreign {
        // Autoscaling from 2: every child kind is wanted, the HPA and PDB
        // too (and the NetworkPolicy, by default).
        let mut spec = json!({ "worker": { "image": { "repository": repository, "tag": "1.0.0" },
                  "autoscaling": { "minReplicas": 2, "maxReplicas": 3 } } });
        if object.app == "c-exports" {
            spec["exports"] = json!({ "configMapName": object.name });
        }
        api.create(&PostParams::default(), &movieapp(object.app, spec)?)
            .await?;
    }
    for object in &foreign {
        let named = format!("{} {ns}/{}", object.kind, object.name);
        let stalled = wait_for(
            &api,
            object.app,
            &format!("{}: Stalled=True, NameConflict naming {named}", object.app),
            |app| {
                is(app, "Stalled", "True", Some("NameConflict"))
                    && condition(app, "WorkerAvailable")
                        .is_some_and(|c| c.reason == "NameConflict" && c.message.contains(&named))
            },
        )
        .await?;
        ensure!(is(&stalled, "Ready", "False", Some("NameConflict")));
        // None of its children was made either: the conflict stops them all.
        if object.kind != "Deployment" {
            ensure!(
                deployments.get_opt(object.app).await?.is_none(),
                "{}: a Deployment was made despite the conflict",
                object.app
            );
        }
    }
    // Several resyncs later, each object is exactly as it was.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let unchanged = |when: &'static str| {
        let client = client.clone();
        let ns = ns.clone();
        let foreign = &foreign;
        let versions = &versions;
        async move {
            for (object, before) in foreign.iter().zip(versions) {
                let now = object.api(&client, &ns).get(&object.name).await?;
                ensure!(
                    &snapshot(&now) == before,
                    "{when}: {} {} was modified:\n  before {before}\n  after  {}",
                    object.kind,
                    object.name,
                    snapshot(&now)
                );
                let managers: Vec<String> = now
                    .metadata
                    .managed_fields
                    .iter()
                    .flatten()
                    .filter_map(|f| f.manager.clone())
                    .collect();
                ensure!(
                    !managers.iter().any(|m| m == "movieapp-operator"),
                    "{when}: the operator wrote to {} {} (managers {managers:?})",
                    object.kind,
                    object.name
                );
            }
            Ok(())
        }
    };
    unchanged("after the reconciles").await?;

    // Deleting the MovieApps leaves the objects (no owner reference: no
    // garbage collection).
    for object in &foreign {
        api.delete(object.app, &Default::default()).await?;
    }
    for object in &foreign {
        eventually(
            &format!("MovieApp {} to be deleted", object.app),
            TIMEOUT,
            || async { Ok(api.get_opt(object.app).await?.is_none().then_some(())) },
        )
        .await?;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    unchanged("after the MovieApps were deleted").await?;

    operator.stop().await?;
    fixtures::delete_namespace(&client, &ns).await
}

#[tokio::test]
async fn aws_change_events_repair_drift_in_seconds_without_the_resync() -> Result<()> {
    use aws_sdk_dynamodb::types::PointInTimeRecoverySpecification;
    use aws_sdk_sqs::types::QueueAttributeName;
    use movieapp_tests::operator::metric_sum;

    let Setup {
        client,
        ns,
        aws,
        repository,
        api,
        ..
    } = setup("op-events", true).await?;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    // The events queue and its dead-letter queue, made here (the project's
    // Terraform does not make them yet; a short visibility timeout, so the
    // redrive is quick).
    let (dlq_url, dlq_arn) = fixtures::sqs_queue(&sqs, &format!("{ns}-events-dlq")).await?;
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("{ns}-events"))
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2 }).to_string(),
        )
        .send()
        .await?
        .queue_url
        .context("events queue URL")?;
    // An hour's resync: only the events can repair anything in this test.
    let operator = Operator::start(
        &ns,
        &["--resync-interval", "1h", "--events-queue-url", &queue_url],
    )
    .await?;
    create_shop(&api, &repository, "1.0.0").await?;
    let ready = wait_for(&api, "shop", "Ready=True", |app| {
        is(app, "Ready", "True", None)
    })
    .await?;
    let status = ready.status.context("status")?;
    let jobs = status.queue.context("status.queue")?.url;
    let users = status
        .tables
        .iter()
        .find(|t| t.component == "users")
        .context("the users table")?
        .name
        .clone();
    let visibility = |url: String| {
        let sqs = sqs.clone();
        async move {
            anyhow::Ok(
                sqs.get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(QueueAttributeName::VisibilityTimeout)
                    .send()
                    .await?
                    .attributes
                    .and_then(|a| a.get(&QueueAttributeName::VisibilityTimeout).cloned())
                    .unwrap_or_default(),
            )
        }
    };
    let desired = visibility(jobs.clone()).await?;
    let send = |body: String| {
        let sqs = sqs.clone();
        let queue_url = queue_url.clone();
        async move {
            sqs.send_message()
                .queue_url(queue_url)
                .message_body(body)
                .send()
                .await?;
            anyhow::Ok(())
        }
    };

    // Malformed and foreign messages change nothing and crash nothing; the
    // malformed one ends in the dead-letter queue.
    send("{ this is not an event".to_owned()).await?;
    send(fixtures::cloudtrail_event(
        "aws.sqs",
        "SetQueueAttributes",
        json!({ "queueUrl": "http://127.0.0.1/123456789012/movieapp-elsewhere-0badc0de-jobs" }),
    ))
    .await?;
    send(json!({ "detail-type": "Object Created", "source": "aws.s3", "time": "2026-01-01T00:00:00Z" }).to_string())
        .await?;
    eventually(
        "the malformed message in the dead-letter queue",
        TIMEOUT,
        || async {
            let received = sqs
                .receive_message()
                .queue_url(&dlq_url)
                .wait_time_seconds(1)
                .send()
                .await?;
            Ok(received
                .messages
                .unwrap_or_default()
                .iter()
                .any(|m| m.body.as_deref() == Some("{ this is not an event"))
                .then_some(()))
        },
    )
    .await?;
    let text = operator.metrics().await?;
    ensure!(
        metric_sum(
            &text,
            "movieapp_aws_events_total",
            &["outcome=\"malformed\""]
        ) >= 1.0,
        "{text}"
    );
    ensure!(
        metric_sum(&text, "movieapp_aws_events_total", &["outcome=\"foreign\""]) >= 1.0,
        "{text}"
    );
    ensure!(
        metric_sum(
            &text,
            "movieapp_aws_events_total",
            &["outcome=\"unmanaged\""]
        ) >= 1.0,
        "{text}"
    );
    ensure!(
        metric_sum(&text, "movieapp_aws_events_total", &["outcome=\"matched\""]) == 0.0,
        "{text}"
    );

    // A queue attribute edited in AWS: repaired within seconds of its event.
    sqs.set_queue_attributes()
        .queue_url(&jobs)
        .attributes(QueueAttributeName::VisibilityTimeout, "5")
        .send()
        .await?;
    let changed = tokio::time::Instant::now();
    send(fixtures::cloudtrail_event(
        "aws.sqs",
        "SetQueueAttributes",
        json!({ "queueUrl": jobs, "attributes": { "VisibilityTimeout": "5" } }),
    ))
    .await?;
    eventually("the queue attribute to be repaired", TIMEOUT, || async {
        Ok((visibility(jobs.clone()).await? == desired).then_some(()))
    })
    .await?;
    let queue_repaired = changed.elapsed();

    // Point-in-time recovery switched off: the same.
    dynamodb
        .update_continuous_backups()
        .table_name(&users)
        .point_in_time_recovery_specification(
            PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(false)
                .build()?,
        )
        .send()
        .await?;
    let changed = tokio::time::Instant::now();
    send(fixtures::cloudtrail_event(
        "aws.dynamodb",
        "UpdateContinuousBackups",
        json!({ "tableName": users }),
    ))
    .await?;
    eventually("point-in-time recovery to be repaired", TIMEOUT, || async {
        let enabled = dynamodb
            .describe_continuous_backups()
            .table_name(&users)
            .send()
            .await?
            .continuous_backups_description
            .and_then(|d| d.point_in_time_recovery_description)
            .and_then(|d| d.point_in_time_recovery_status)
            == Some(aws_sdk_dynamodb::types::PointInTimeRecoveryStatus::Enabled);
        Ok(enabled.then_some(()))
    })
    .await?;
    let pitr_repaired = changed.elapsed();
    // Far below the hour's resync; the bound leaves room for a loaded machine.
    for (what, took) in [("queue attribute", queue_repaired), ("PITR", pitr_repaired)] {
        ensure!(
            took < Duration::from_secs(30),
            "{what} repaired after {took:?}"
        );
    }
    let text = operator.metrics().await?;
    ensure!(
        metric_sum(&text, "movieapp_aws_events_total", &["outcome=\"matched\""]) >= 2.0,
        "{text}"
    );
    ensure!(
        metric_sum(&text, "movieapp_aws_event_to_reconcile_seconds_count", &[]) >= 2.0,
        "{text}"
    );
    ensure!(
        metric_sum(&text, "movieapp_aws_events_queue_up", &[]) == 1.0,
        "{text}"
    );
    // The consumer's receives and deletes, like every other call of this
    // run, are calls the operator's IAM policy is built from.
    let undeclared = movieapp_model::iam::undeclared(Component::Operator, &text);
    ensure!(
        undeclared.is_empty(),
        "the operator called {undeclared:?}, which movieapp_model::iam does not declare"
    );
    ensure!(
        text.contains("movieapp_aws_requests_total{service=\"sqs\",operation=\"ReceiveMessage\""),
        "the events consumer made no ReceiveMessage:\n{text}"
    );

    // The queue gone: the operator says so and keeps running on the resync.
    sqs.delete_queue().queue_url(&queue_url).send().await?;
    eventually(
        "movieapp_aws_events_queue_up to drop to 0",
        TIMEOUT,
        || async {
            let text = operator.metrics().await?;
            Ok((metric_sum(&text, "movieapp_aws_events_queue_up", &[]) == 0.0).then_some(()))
        },
    )
    .await?;
    api.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "worker": { "replicas": 3 } } })),
    )
    .await?;
    wait_for(
        &api,
        "shop",
        "a spec change served without the events queue",
        |app| {
            app.status.as_ref().and_then(|s| s.observed_generation) == app.metadata.generation
                && is(app, "Ready", "True", None)
        },
    )
    .await?;
    println!(
        "drift repaired after its event: queue attribute {queue_repaired:?}, PITR {pitr_repaired:?}"
    );

    sqs.delete_queue().queue_url(&dlq_url).send().await?;
    operator.stop().await?;
    fixtures::delete_namespace(&client, &ns).await
}

/// `movieapp_aws_requests_total` summed over the operations that write:
/// every operation but the reads (`Describe*`, `Get*`, `List*`).
fn aws_write_requests(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with("movieapp_aws_requests_total{"))
        .filter(|line| {
            let operation = line
                .split("operation=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_default();
            !["Describe", "Get", "List"]
                .iter()
                .any(|read| operation.starts_with(read))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn visibility_timeout(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<String> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::VisibilityTimeout)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    attributes
        .get(&QueueAttributeName::VisibilityTimeout)
        .cloned()
        .context("no VisibilityTimeout")
}

#[tokio::test]
async fn a_paused_movieapp_writes_nothing_until_it_resumes_and_repairs() -> Result<()> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Service;
    use kube::api::DeleteParams;
    use movieapp_tests::inventory::{Inventory, Owned};

    let audit = audit_log()?;
    let Setup {
        client,
        ns,
        aws,
        repository,
        api,
        ..
    } = setup("op-pause", true).await?;
    // A short resync: the paused window below spans several.
    let operator = Operator::start(&ns, &["--resync-interval", "2s"]).await?;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let current = |app: &MovieApp| {
        app.status.as_ref().and_then(|s| s.observed_generation) == app.metadata.generation
    };
    let pause = |value: Option<&str>| {
        Patch::Merge(json!({ "metadata": { "annotations": { "movieapp.io/paused": value } } }))
    };

    create_shop(&api, &repository, "1.0.0").await?;
    let ready = wait_for(&api, "shop", "Ready=True", |app| {
        current(app) && is(app, "Ready", "True", None)
    })
    .await?;
    ensure!(
        is(&ready, "Paused", "False", Some("Active")),
        "an unpaused MovieApp says Paused=False"
    );
    let queue_url = ready
        .status
        .as_ref()
        .and_then(|s| s.queue.as_ref())
        .map(|q| q.url.clone())
        .context("status.queue")?;
    ensure!(visibility_timeout(&sqs, &queue_url).await? == "60");
    // The count sees the operator's writes (the creation), so a flat count
    // below means something.
    let metrics = operator.metrics().await?;
    ensure!(
        aws_write_requests(&metrics) > 0.0,
        "no AWS write counted while the MovieApp was created"
    );

    // Paused: the condition says so, and Argo CD's health check says Suspended.
    api.patch("shop", &PatchParams::default(), &pause(Some("true")))
        .await?;
    let paused = wait_for(&api, "shop", "Paused=True", |app| {
        is(app, "Paused", "True", Some("Paused"))
    })
    .await?;
    let message = condition(&paused, "Paused")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    ensure!(
        message.contains("movieapp.io/paused") && message.contains("spec changes and repairs wait"),
        "Paused message: {message}"
    );

    // A spec change (an AWS attribute and the Deployment) and a deleted
    // child, while paused: several resyncs' time passes without a write.
    let metrics = operator.metrics().await?;
    let (writes_before, reconciles_before) = (
        aws_write_requests(&metrics),
        movieapp_tests::operator::metric_sum(&metrics, "movieapp_reconcile_total", &[]),
    );
    let offset = std::fs::metadata(&audit)?.len() as usize;
    api.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": {
            "queue": { "visibilityTimeoutSeconds": 120 },
            "worker": { "replicas": 3 },
        } })),
    )
    .await?;
    services.delete("shop", &DeleteParams::default()).await?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let metrics = operator.metrics().await?;
    let (writes_after, reconciles_after) = (
        aws_write_requests(&metrics),
        movieapp_tests::operator::metric_sum(&metrics, "movieapp_reconcile_total", &[]),
    );
    ensure!(
        reconciles_after > reconciles_before,
        "the operator did not reconcile the paused MovieApp after its changes"
    );
    ensure!(
        writes_after == writes_before,
        "a paused MovieApp wrote to AWS: {} write requests",
        writes_after - writes_before
    );
    // The API server saw only this test's own two writes: no status patch
    // and no child applied. (The control plane's own writes, e.g. the
    // Service's EndpointSlices, and Events, which may trail the pause's
    // status write, are not the operator's writes to what it manages.)
    let writes: Vec<String> = audit_writes(&audit, &ns, offset)?
        .into_iter()
        .filter(|w| !w.contains(" by system:") && !w.contains(" events/"))
        .collect();
    let ours = |w: &String| {
        w.starts_with("patch movieapps/shop ") || w.starts_with("delete services/shop ")
    };
    ensure!(
        writes.len() == 2 && writes.iter().all(ours),
        "writes while paused besides the test's own spec change and Service deletion: {writes:#?}"
    );
    ensure!(
        services.get_opt("shop").await?.is_none(),
        "the deleted Service was recreated while paused"
    );
    let replicas = deployments.get("shop").await?.spec.and_then(|s| s.replicas);
    ensure!(
        replicas == Some(2),
        "the Deployment changed while paused: {replicas:?}"
    );
    ensure!(visibility_timeout(&sqs, &queue_url).await? == "60");
    let held = api.get("shop").await?;
    ensure!(
        !current(&held),
        "observedGeneration moved on although the spec change was not acted on"
    );
    let (flux, _) = movieapp_tests::kstatus(&held)?;
    ensure!(
        flux == "InProgress",
        "kstatus reads a paused MovieApp with a waiting spec change as {flux}"
    );

    // Resumed: both wait no longer.
    api.patch("shop", &PatchParams::default(), &pause(None))
        .await?;
    wait_for(&api, "shop", "Ready=True after resuming", |app| {
        current(app) && is(app, "Ready", "True", None) && is(app, "Paused", "False", None)
    })
    .await?;
    ensure!(
        services.get_opt("shop").await?.is_some(),
        "the Service was not repaired"
    );
    let replicas = deployments.get("shop").await?.spec.and_then(|s| s.replicas);
    ensure!(
        replicas == Some(3),
        "the Deployment has {replicas:?} replicas, not 3"
    );
    ensure!(visibility_timeout(&sqs, &queue_url).await? == "120");
    ensure!(aws_write_requests(&operator.metrics().await?) > writes_after);

    // Deleted while paused: the deletion waits, the AWS resources stay.
    api.patch("shop", &PatchParams::default(), &pause(Some("true")))
        .await?;
    wait_for(&api, "shop", "Paused=True", |app| {
        is(app, "Paused", "True", None)
    })
    .await?;
    api.delete("shop", &DeleteParams::default()).await?;
    let deleting = wait_for(&api, "shop", "Paused says the deletion waits", |app| {
        condition(app, "Paused").is_some_and(|c| c.message.contains("the deletion waits"))
    })
    .await?;
    ensure!(deleting.metadata.deletion_timestamp.is_some());
    tokio::time::sleep(Duration::from_secs(5)).await;
    ensure!(
        api.get_opt("shop").await?.is_some(),
        "a paused MovieApp's finalizer was removed"
    );
    let owned = Inventory::of_namespace(&aws, &ns).await?.by_owner();
    let uid = deleting.metadata.uid.clone().unwrap_or_default();
    ensure!(
        owned.get(&uid) == Some(&Owned::ONE_MOVIEAPP),
        "AWS resources changed while the deletion was paused: {owned:?}"
    );
    api.patch("shop", &PatchParams::default(), &pause(None))
        .await?;
    eventually("the MovieApp gone after resuming", TIMEOUT, || async {
        Ok(api.get_opt("shop").await?.is_none().then_some(()))
    })
    .await?;
    ensure!(
        Inventory::of_namespace(&aws, &ns).await?.is_empty(),
        "AWS resources left after the resumed deletion"
    );

    operator.stop().await?;
    fixtures::delete_namespace(&client, &ns).await
}

/// Explicit physical names: each service's naming rules at admission, and
/// immutable once the object exists: not changed, removed, nor set later.
#[tokio::test]
async fn explicit_names_are_checked_and_immutable_at_admission() -> Result<()> {
    let (client, ns, api, raw) = admission_namespace("op-names").await?;

    let cases = [
        (
            json!({ "database": { "tableNames": { "users": "ab" } } }),
            "spec.database.tableNames.users",
        ),
        (
            json!({ "database": { "tableNames": { "movies": "a/b" } } }),
            "spec.database.tableNames.movies",
        ),
        (
            json!({ "database": { "tableNames": { "watchlists": "t".repeat(256) } } }),
            "spec.database.tableNames.watchlists",
        ),
        (
            json!({ "queue": { "name": "jobs.fifo" } }),
            "spec.queue.name",
        ),
        (json!({ "queue": { "name": "" } }), "spec.queue.name"),
        (
            json!({ "queue": { "deadLetterQueueName": "q".repeat(81) } }),
            "spec.queue.deadLetterQueueName",
        ),
        (
            json!({ "notifications": { "topicName": "a:b" } }),
            "spec.notifications.topicName",
        ),
        (
            json!({ "notifications": { "topicName": "t".repeat(257) } }),
            "spec.notifications.topicName",
        ),
    ];
    refuses_creating(&raw, &cases).await?;

    // The longest valid names are accepted.
    let named = json!({
        "database": { "tableNames": { "users": "Legacy.Users_1", "watchlists": "w".repeat(255) } },
        "queue": { "name": "q".repeat(80), "deadLetterQueueName": "legacy-dlq" },
        "notifications": { "topicName": "t".repeat(256) },
    });
    api.create(&PostParams::default(), &movieapp("named", named)?)
        .await?;
    let merge = |patch: serde_json::Value| Patch::Merge(json!({ "spec": patch }));
    for (patch, expected) in [
        (
            json!({ "database": { "tableNames": { "users": "Other.Users" } } }),
            "database.tableNames.users is immutable",
        ),
        (
            json!({ "database": { "tableNames": null } }),
            "database.tableNames.users is immutable",
        ),
        (
            json!({ "queue": { "name": null } }),
            "queue.name is immutable",
        ),
        (
            json!({ "queue": { "deadLetterQueueName": "other-dlq" } }),
            "queue.deadLetterQueueName is immutable",
        ),
        (
            json!({ "notifications": { "topicName": "other" } }),
            "notifications.topicName is immutable",
        ),
        // A table it did not name cannot be named later either.
        (
            json!({ "database": { "tableNames": { "movies": "Legacy.Movies" } } }),
            "database.tableNames.movies is immutable",
        ),
    ] {
        let patched = api
            .patch("named", &PatchParams::default(), &merge(patch.clone()))
            .await;
        refused(&format!("patch {patch}"), patched, expected)?;
    }
    // Other fields still change.
    api.patch(
        "named",
        &PatchParams::default(),
        &merge(json!({ "worker": { "replicas": 3 } })),
    )
    .await?;

    // An object created without names cannot be given one.
    api.create(&PostParams::default(), &movieapp("plain", json!({}))?)
        .await?;
    for (patch, expected) in [
        (
            json!({ "database": { "tableNames": { "watchlists": "Legacy.Watchlists" } } }),
            "database.tableNames.watchlists is immutable",
        ),
        (
            json!({ "queue": { "name": "legacy-jobs" } }),
            "queue.name is immutable",
        ),
        (
            json!({ "notifications": { "topicName": "legacy-topic" } }),
            "notifications.topicName is immutable",
        ),
    ] {
        let patched = api
            .patch("plain", &PatchParams::default(), &merge(patch.clone()))
            .await;
        refused(&format!("patch {patch}"), patched, expected)?;
    }
    fixtures::delete_namespace(&client, &ns).await
}

/// Whether DynamoDB reports the table protected from deletion; `None` when
/// it does not exist.
async fn deletion_protection(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Option<bool>> {
    let described = movieapp_tests::inventory::describe_table(dynamodb, table).await?;
    Ok(described.map(|t| t.deletion_protection_enabled == Some(true)))
}

/// Deletion protection end to end, under both deletion policies: `Retain`
/// protects by default and keeps the tables protected after the MovieApp
/// goes; `Delete` with protection asked for deletes nothing and stalls
/// (`DeletionProtected`) until protection is turned off, then deletes
/// everything. The protected MovieApp also names a table explicitly, which
/// the worker's settings carry; and two tables under one name are refused
/// by the validate step.
#[tokio::test]
async fn deletion_protection_guards_the_tables_under_either_policy() -> Result<()> {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::DeleteParams;

    let Setup {
        client,
        ns,
        aws,
        repository,
        api,
        ..
    } = setup("op-protect", true).await?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let operator = Operator::start(&ns, &[]).await?;
    let image = json!({ "repository": repository, "tag": "1.0.0" });
    let users = unique_name("Guarded.Users");
    for (name, spec) in [
        (
            "kept",
            json!({ "deletionPolicy": "Retain", "worker": { "image": image } }),
        ),
        (
            "guarded",
            json!({
                "deletionPolicy": "Delete",
                "worker": { "image": image },
                "database": { "deletionProtection": true, "tableNames": { "users": users } },
            }),
        ),
        (
            "twice",
            json!({
                "worker": { "image": image },
                "database": { "tableNames": { "users": "same-name", "movies": "same-name" } },
            }),
        ),
    ] {
        api.create(&PostParams::default(), &movieapp(name, spec)?)
            .await?;
    }
    let aws_ready = |app: &MovieApp| {
        ["DatabaseReady", "QueueReady", "NotificationsReady"]
            .iter()
            .all(|part| is(app, part, "True", None))
    };
    let kept = wait_for(&api, "kept", "kept: the AWS parts ready", aws_ready).await?;
    let guarded = wait_for(&api, "guarded", "guarded: the AWS parts ready", aws_ready).await?;
    let tables = |app: &MovieApp| -> Vec<String> {
        app.status
            .iter()
            .flat_map(|s| s.tables.iter().map(|t| t.name.clone()))
            .collect()
    };
    for app in [&kept, &guarded] {
        ensure!(tables(app).len() == 3, "{:?}", app.status);
        for table in tables(app) {
            ensure!(
                deletion_protection(&dynamodb, &table).await? == Some(true),
                "{table} is not protected"
            );
        }
    }
    ensure!(tables(&guarded).contains(&users), "{:?}", tables(&guarded));
    let config: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let settings = eventually("guarded's ConfigMap", TIMEOUT, || async {
        Ok(config.get_opt("guarded-config").await?.and_then(|c| c.data))
    })
    .await?;
    ensure!(
        settings.get("MOVIEAPP_USERS_TABLE") == Some(&users),
        "the worker is not told the explicit name: {settings:?}"
    );

    // One name for two tables: the validate step refuses, nothing is made.
    let twice = wait_for(&api, "twice", "twice: Stalled=True, InvalidSpec", |app| {
        is(app, "Stalled", "True", Some("InvalidSpec"))
    })
    .await?;
    ensure!(
        condition(&twice, "Stalled")
            .is_some_and(|c| c.message.contains("each table needs its own name")),
        "{:?}",
        condition(&twice, "Stalled")
    );
    ensure!(deletion_protection(&dynamodb, "same-name").await?.is_none());

    // Delete + protection: the deletion waits for a human, nothing goes.
    api.delete("guarded", &DeleteParams::default()).await?;
    let waiting = wait_for(
        &api,
        "guarded",
        "guarded: Stalled=True, DeletionProtected",
        |app| is(app, "Stalled", "True", Some("DeletionProtected")),
    )
    .await?;
    ensure!(
        condition(&waiting, "Stalled").is_some_and(|c| c.message.contains("deletionProtection")),
        "{:?}",
        condition(&waiting, "Stalled")
    );
    ensure!(is(&waiting, "Ready", "False", Some("DeletionProtected")));
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        api.get_opt("guarded").await?.is_some(),
        "the finalizer went"
    );
    for table in tables(&guarded) {
        ensure!(
            deletion_protection(&dynamodb, &table).await? == Some(true),
            "{table} changed while the deletion waited"
        );
    }
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let queue = guarded
        .status
        .as_ref()
        .and_then(|s| s.queue.as_ref())
        .context("no queue in status")?;
    sqs.get_queue_attributes()
        .queue_url(&queue.url)
        .send()
        .await
        .context("the jobs queue went while the deletion waited")?;

    // Protection lifted: everything goes.
    api.patch(
        "guarded",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "database": { "deletionProtection": false } } })),
    )
    .await?;
    eventually("guarded gone once unprotected", TIMEOUT, || async {
        Ok(api.get_opt("guarded").await?.is_none().then_some(()))
    })
    .await?;
    for table in tables(&guarded) {
        ensure!(
            deletion_protection(&dynamodb, &table).await?.is_none(),
            "{table} left"
        );
    }

    // Retain: the MovieApp goes at once, the tables stay protected.
    api.delete("kept", &DeleteParams::default()).await?;
    eventually("kept gone", TIMEOUT, || async {
        Ok(api.get_opt("kept").await?.is_none().then_some(()))
    })
    .await?;
    for table in tables(&kept) {
        ensure!(
            deletion_protection(&dynamodb, &table).await? == Some(true),
            "{table} is not kept protected"
        );
    }
    operator.stop().await?;
    // What Retain kept is the test's to remove.
    delete_aws_side(&kept).await?;
    fixtures::delete_namespace(&client, &ns).await
}

/// Creates, directly in AWS and without any tag, the resources a MovieApp
/// `name` of `namespace` would use, as someone else's tool might have:
/// the tables with the model's keys and indexes but PROVISIONED billing,
/// both queues (the jobs queue with a 30 s visibility timeout and no
/// redrive policy), and the topic with nothing subscribed.
async fn untagged_installation(
    aws: &aws_config::SdkConfig,
    namespace: &str,
    name: &str,
) -> Result<()> {
    use aws_sdk_dynamodb::types as ddb;
    use aws_sdk_sqs::types::QueueAttributeName;
    use movieapp_operator::naming::{AppId, component};
    let id = AppId { namespace, name };
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let throughput = || {
        ddb::ProvisionedThroughput::builder()
            .read_capacity_units(1)
            .write_capacity_units(1)
            .build()
    };
    let key = |attr: movieapp_model::KeyAttr, kind: ddb::KeyType| {
        ddb::KeySchemaElement::builder()
            .attribute_name(attr.name)
            .key_type(kind)
            .build()
    };
    let keys = |partition, sort: Option<movieapp_model::KeyAttr>| -> Result<Vec<_>> {
        let mut keys = vec![key(partition, ddb::KeyType::Hash)?];
        if let Some(sort) = sort {
            keys.push(key(sort, ddb::KeyType::Range)?);
        }
        Ok(keys)
    };
    for table in movieapp_model::TABLES {
        let mut request = dynamodb
            .create_table()
            .table_name(id.table_name(table.component))
            .billing_mode(ddb::BillingMode::Provisioned)
            .provisioned_throughput(throughput()?)
            .set_key_schema(Some(keys(table.partition_key, table.sort_key)?));
        for attr in table.key_attributes() {
            request = request.attribute_definitions(
                ddb::AttributeDefinition::builder()
                    .attribute_name(attr.name)
                    .attribute_type(ddb::ScalarAttributeType::from(attr.kind.code()))
                    .build()?,
            );
        }
        for index in table.indexes {
            request = request.global_secondary_indexes(
                ddb::GlobalSecondaryIndex::builder()
                    .index_name(index.name)
                    .set_key_schema(Some(keys(index.partition_key, index.sort_key)?))
                    .projection(
                        ddb::Projection::builder()
                            .projection_type(ddb::ProjectionType::All)
                            .build(),
                    )
                    .provisioned_throughput(throughput()?)
                    .build()?,
            );
        }
        request.send().await?;
    }
    let sqs = aws_sdk_sqs::Client::new(aws);
    sqs.create_queue()
        .queue_name(id.queue_name(component::DEAD_LETTER_QUEUE))
        .send()
        .await?;
    sqs.create_queue()
        .queue_name(id.queue_name(component::JOBS_QUEUE))
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .send()
        .await?;
    aws_sdk_sns::Client::new(aws)
        .create_topic()
        .name(id.topic_name())
        .send()
        .await?;
    Ok(())
}

/// The Events of `reason` the operator published on MovieApp `name`.
async fn events_of(
    client: &kube::Client,
    ns: &str,
    name: &str,
    reason: &str,
) -> Result<Vec<String>> {
    use k8s_openapi::api::events::v1::Event;
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    Ok(events
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| e.note.unwrap_or_default())
        .collect())
}

/// Importing an existing installation: over untagged resources with the
/// MovieApp's names, ObserveOnly writes nothing to AWS (the operator's
/// request counter) and nothing but its status and Events to the API server
/// (the audit log), lists every difference in `Drifted` (one Warning Event
/// however many resyncs pass), and Ready says they differ (kstatus:
/// InProgress). Switched to Full, the untagged resources are left alone
/// (`NameConflict`) until the MovieApp may adopt them; then it adopts,
/// converges and is Ready.
#[tokio::test]
async fn observe_only_reports_an_untagged_installation_then_full_adopts_it() -> Result<()> {
    use movieapp_operator::naming::{AppId, component};
    let audit = audit_log()?;
    let Setup {
        client,
        ns,
        aws,
        repository,
        api,
        ..
    } = setup("op-observe", true).await?;
    let id = AppId {
        namespace: &ns,
        name: "shop",
    };
    untagged_installation(&aws, &ns, "shop").await?;
    // A short resync: the observed window below spans several.
    let operator = Operator::start(&ns, &["--resync-interval", "2s"]).await?;
    let current = |app: &MovieApp| {
        app.status.as_ref().and_then(|s| s.observed_generation) == app.metadata.generation
    };

    let offset = std::fs::metadata(&audit)?.len() as usize;
    api.create(
        &PostParams::default(),
        &movieapp(
            "shop",
            json!({
                "managementPolicy": "ObserveOnly",
                "database": { "pointInTimeRecovery": false },
                "worker": { "image": { "repository": repository, "tag": "1.0.0" } },
            }),
        )?,
    )
    .await?;
    let drifted = wait_for(&api, "shop", "Drifted=True", |app| {
        current(app) && is(app, "Drifted", "True", Some("Drifted"))
    })
    .await?;
    let message = condition(&drifted, "Drifted")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    let mut expected: Vec<String> = movieapp_model::TABLES
        .iter()
        .flat_map(|t| {
            let table = id.table_name(t.component);
            [
                format!(
                    "DynamoDB table {table} already exists without the movieapp.io ownership tags"
                ),
                format!("DynamoDB table {table}: switched to on-demand (PAY_PER_REQUEST) billing"),
            ]
        })
        .collect();
    let jobs = id.queue_name(component::JOBS_QUEUE);
    expected.extend([
        format!("SQS queue {jobs}: set VisibilityTimeout 30 → 60"),
        format!(
            "SQS queue {} already exists without",
            id.queue_name(component::DEAD_LETTER_QUEUE)
        ),
        format!("SNS topic {} already exists without", id.topic_name()),
        "subscription of sqs arn:aws:sqs:".to_owned(),
        format!("Secret {ns}/shop-auth (the worker's token signing key) does not exist"),
        format!("Deployment {ns}/shop does not exist"),
        format!("Service {ns}/shop does not exist"),
        format!("NetworkPolicy {ns}/shop does not exist"),
    ]);
    for difference in &expected {
        ensure!(
            message.contains(difference.as_str()),
            "Drifted does not list {difference:?}: {message}"
        );
    }
    ensure!(
        is(&drifted, "Ready", "False", Some("Drifted"))
            && is(&drifted, "Reconciling", "False", Some("Observing"))
            && is(&drifted, "Stalled", "False", None),
        "ObserveOnly with differences: {:?}",
        drifted.status.as_ref().map(|s| &s.conditions)
    );
    // kstatus falls back to Ready: in progress, saying what differs.
    let (flux, flux_message) = movieapp_tests::kstatus(&drifted)?;
    ensure!(
        flux == "InProgress" && flux_message.contains("in condition Drifted"),
        "kstatus reads a drifted ObserveOnly MovieApp as {flux}: {flux_message}"
    );

    // Several resyncs: still nothing written, and the same differences are
    // one Event, not one per resync.
    let metrics = operator.metrics().await?;
    let reconciles_before =
        movieapp_tests::operator::metric_sum(&metrics, "movieapp_reconcile_total", &[]);
    tokio::time::sleep(Duration::from_secs(7)).await;
    let metrics = operator.metrics().await?;
    ensure!(
        movieapp_tests::operator::metric_sum(&metrics, "movieapp_reconcile_total", &[])
            > reconciles_before,
        "the operator did not look again during the observed window"
    );
    let writes = aws_write_requests(&metrics);
    ensure!(
        writes == 0.0,
        "ObserveOnly wrote to AWS: {writes} write requests"
    );
    let api_writes: Vec<String> = audit_writes(&audit, &ns, offset)?
        .into_iter()
        .filter(|w| !w.contains(" by system:") && !w.contains(" events/"))
        .filter(|w| !w.starts_with("create movieapps/shop "))
        .collect();
    ensure!(
        api_writes
            .iter()
            .all(|w| w.starts_with("patch movieapps/shop ")),
        "writes besides the MovieApp's own: {api_writes:#?}"
    );
    let observed = api.get("shop").await?;
    ensure!(
        observed.metadata.finalizers.is_none_or(|f| f.is_empty()),
        "an ObserveOnly MovieApp got a finalizer"
    );
    let warnings = events_of(&client, &ns, "shop", "Drifted").await?;
    ensure!(
        warnings.len() == 1,
        "one Drifted Event for one list of differences: {warnings:#?}"
    );
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let users = id.table_name("users");
    let arn = dynamodb
        .describe_table()
        .table_name(&users)
        .send()
        .await?
        .table
        .and_then(|t| t.table_arn)
        .context("users table ARN")?;
    let tags = |arn: String| {
        let dynamodb = dynamodb.clone();
        async move {
            anyhow::Ok(
                dynamodb
                    .list_tags_of_resource()
                    .resource_arn(arn)
                    .send()
                    .await?
                    .tags
                    .unwrap_or_default(),
            )
        }
    };
    ensure!(
        tags(arn.clone()).await?.is_empty(),
        "ObserveOnly tagged {users}"
    );

    // Full without permission to adopt: the untagged resources stay untouched.
    api.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "managementPolicy": "Full" } })),
    )
    .await?;
    let conflict = wait_for(&api, "shop", "Stalled=True (NameConflict)", |app| {
        current(app) && is(app, "Stalled", "True", Some("NameConflict"))
    })
    .await?;
    ensure!(is(&conflict, "Drifted", "False", Some("Managed")));
    ensure!(
        tags(arn.clone()).await?.is_empty(),
        "{users} was tagged without adopt"
    );

    // With adopt: taken over, converged, Ready.
    api.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "annotations": { "movieapp.io/adopt": "true" } } })),
    )
    .await?;
    let ready = wait_for(&api, "shop", "Ready=True after adoption", |app| {
        current(app) && is(app, "Ready", "True", None)
    })
    .await?;
    let uid = ready.metadata.uid.clone().unwrap_or_default();
    ensure!(
        tags(arn)
            .await?
            .iter()
            .any(|t| t.key == "movieapp.io/uid" && t.value == uid),
        "{users} does not carry the MovieApp's uid"
    );
    let queue_url = ready
        .status
        .as_ref()
        .and_then(|s| s.queue.as_ref())
        .map(|q| q.url.clone())
        .context("status.queue")?;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    ensure!(visibility_timeout(&sqs, &queue_url).await? == "60");
    ensure!(!events_of(&client, &ns, "shop", "Adopted").await?.is_empty());

    api.delete("shop", &kube::api::DeleteParams::default())
        .await?;
    eventually("the MovieApp gone", TIMEOUT, || async {
        Ok(api.get_opt("shop").await?.is_none().then_some(()))
    })
    .await?;
    operator.stop().await?;
    fixtures::delete_namespace(&client, &ns).await
}

/// A steady resync reads at most 6 AWS requests per MovieApp with AWS
/// change events on (a light pass: ownership tags from the region's
/// `GetResources` snapshot, the queues' attributes, the image), measured
/// from the operator's own counters over several MovieApps and resync
/// rounds; and what it reads with events off, where every resync is a
/// complete pass.
#[tokio::test]
async fn a_steady_resync_reads_at_most_six_aws_requests_per_movieapp() -> Result<()> {
    use movieapp_tests::operator::{metric_sum, reconcile_requests};
    const APPS: usize = 4;
    const ROUNDS: u64 = 3;
    let Setup {
        client,
        ns,
        aws,
        repository,
        api,
        ..
    } = setup("op-reads", true).await?;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let (queue_url, _) = fixtures::sqs_queue(&sqs, &format!("{ns}-events")).await?;
    let names: Vec<String> = (0..APPS).map(|i| format!("shop-{i}")).collect();
    for name in &names {
        api.create(
            &PostParams::default(),
            &movieapp(
                name,
                json!({ "worker": { "image": { "repository": repository, "tag": "1.0.0" } } }),
            )?,
        )
        .await?;
    }
    let mut figures = Vec::new();
    for events in [true, false] {
        let mut args = vec!["--resync-interval", "5s"];
        if events {
            args.extend(["--events-queue-url", queue_url.as_str()]);
        }
        let operator = Operator::start(&ns, &args).await?;
        for name in &names {
            wait_for(&api, name, "Ready=True", |app| {
                is(app, "Ready", "True", None)
            })
            .await?;
        }
        // The first resync of each after its complete pass, then whole rounds.
        tokio::time::sleep(Duration::from_secs(7)).await;
        let before = operator.metrics().await?;
        tokio::time::sleep(Duration::from_secs(5 * ROUNDS)).await;
        let after = operator.metrics().await?;
        let resyncs = metric_sum(&after, "movieapp_resyncs_total", &[])
            - metric_sum(&before, "movieapp_resyncs_total", &[]);
        let breakdown = reconcile_requests(&before, &after);
        let total: f64 = breakdown.iter().map(|(_, v)| v).sum();
        ensure!(
            resyncs >= (APPS as f64) * (ROUNDS as f64 - 1.0),
            "only {resyncs} resyncs of {APPS} MovieApps in {ROUNDS} rounds of 5 s"
        );
        let per = total / resyncs;
        let per_app: Vec<String> = breakdown
            .iter()
            .map(|(k, v)| format!("{k} {:.2}", v / resyncs))
            .collect();
        println!(
            "events {}: {per:.2} AWS requests per MovieApp per steady resync ({resyncs} resyncs of {APPS} MovieApps): {}",
            if events { "on" } else { "off" },
            per_app.join(", ")
        );
        if events {
            ensure!(
                per <= 6.0,
                "a steady resync with events on read {per:.2} AWS requests per MovieApp: {per_app:?}"
            );
        } else {
            // Complete: every setting read, the tags from the snapshot.
            for read in [
                "dynamodb:DescribeContinuousBackups",
                "sns:ListSubscriptionsByTopic",
            ] {
                ensure!(
                    breakdown.iter().any(|(k, _)| k == read),
                    "a resync without events did not read {read}: {per_app:?}"
                );
            }
        }
        let undeclared = movieapp_model::iam::undeclared(Component::Operator, &after);
        ensure!(undeclared.is_empty(), "undeclared calls: {undeclared:?}");
        figures.push(per);
        operator.stop().await?;
    }
    ensure!(figures[0] < figures[1], "{figures:?}");
    sqs.delete_queue().queue_url(&queue_url).send().await?;
    fixtures::delete_namespace(&client, &ns).await
}

/// With AWS change events on, a steady resync does not read the settings
/// only the operator writes (here point-in-time recovery): a change to one
/// is repaired at once when its event arrives, and without an event by the
/// next complete pass (`--full-verification-interval`), never left for good.
#[tokio::test]
async fn a_drift_in_a_setting_the_light_resync_skips_is_found_by_its_event_and_the_full_pass()
-> Result<()> {
    use aws_sdk_dynamodb::types::{PointInTimeRecoverySpecification, PointInTimeRecoveryStatus};
    const FULL: u64 = 30;
    let Setup {
        client,
        ns,
        aws,
        repository,
        api,
        ..
    } = setup("op-fullpass", true).await?;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let (queue_url, _) = fixtures::sqs_queue(&sqs, &format!("{ns}-events")).await?;
    let full = format!("{FULL}s");
    let operator = Operator::start(
        &ns,
        &[
            "--resync-interval",
            "3s",
            "--events-queue-url",
            &queue_url,
            "--full-verification-interval",
            &full,
        ],
    )
    .await?;
    create_shop(&api, &repository, "1.0.0").await?;
    let ready = wait_for(&api, "shop", "Ready=True", |app| {
        is(app, "Ready", "True", None)
    })
    .await?;
    let users = ready
        .status
        .context("status")?
        .tables
        .iter()
        .find(|t| t.component == "users")
        .context("the users table")?
        .name
        .clone();
    let pitr_off = || async {
        dynamodb
            .update_continuous_backups()
            .table_name(&users)
            .point_in_time_recovery_specification(
                PointInTimeRecoverySpecification::builder()
                    .point_in_time_recovery_enabled(false)
                    .build()?,
            )
            .send()
            .await?;
        anyhow::Ok(tokio::time::Instant::now())
    };
    let pitr_on = || async {
        anyhow::Ok(
            dynamodb
                .describe_continuous_backups()
                .table_name(&users)
                .send()
                .await?
                .continuous_backups_description
                .and_then(|d| d.point_in_time_recovery_description)
                .and_then(|d| d.point_in_time_recovery_status)
                == Some(PointInTimeRecoveryStatus::Enabled),
        )
    };

    // With its event: at once (the complete pass is not due for 30 s).
    let changed = pitr_off().await?;
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body(fixtures::cloudtrail_event(
            "aws.dynamodb",
            "UpdateContinuousBackups",
            json!({ "tableName": users }),
        ))
        .send()
        .await?;
    eventually("PITR repaired after its event", TIMEOUT, || async {
        Ok(pitr_on().await?.then_some(()))
    })
    .await?;
    let by_event = changed.elapsed();
    ensure!(
        by_event < Duration::from_secs(10),
        "repaired after {by_event:?}"
    );

    // Without an event: the light resyncs (every 3 s) leave it, the next
    // complete pass repairs it.
    let changed = pitr_off().await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    ensure!(
        !pitr_on().await?,
        "a light resync read point-in-time recovery"
    );
    eventually(
        "PITR repaired by the complete pass",
        Duration::from_secs(FULL + 30),
        || async { Ok(pitr_on().await?.then_some(())) },
    )
    .await?;
    let by_full_pass = changed.elapsed();
    ensure!(
        by_full_pass <= Duration::from_secs(FULL + 10),
        "repaired after {by_full_pass:?}"
    );
    println!(
        "point-in-time recovery switched off: repaired {by_event:?} after its event, \
         {by_full_pass:?} after the change without one (complete pass every {FULL} s)"
    );
    operator.stop().await?;
    sqs.delete_queue().queue_url(&queue_url).send().await?;
    fixtures::delete_namespace(&client, &ns).await
}
