//! A MovieApp can never do more than its author may: the chart's admission
//! policy (`deploy/admission.yaml`) and user roles (`deploy/user-roles.yaml`)
//! on the real control plane, with real RBAC and requests made as namespace
//! users through impersonation.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use movieapp_operator::crd::MovieApp;
use movieapp_tests::{LocalEnv, eventually, fixtures, unique_name};
use serde_json::json;

/// The chart's objects as the Kustomize base ships them, server-side applied.
fn install(manifest: &str) -> Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(manifest);
    let output = std::process::Command::new("kubectl")
        .args(["apply", "--server-side", "--force-conflicts", "-f"])
        .arg(&path)
        .output()
        .context("running kubectl")?;
    ensure!(
        output.status.success(),
        "kubectl apply -f {manifest}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// The cluster-scoped objects a test installed (policies, ClusterRoles, the
/// operator's namespace), removed again when it ends however it ends: left
/// behind, they would collide with a Helm release of the chart in a later
/// suite (same names, another owner). The tests that install them take
/// turns, so one's removal never pulls them from under the other.
struct Installed {
    manifests: Vec<&'static str>,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Installed {
    async fn apply(manifests: &[&'static str]) -> Result<Self> {
        let installed = Self {
            manifests: manifests.to_vec(),
            _turn: TURN.lock().await,
        };
        for manifest in manifests {
            install(manifest)?;
        }
        Ok(installed)
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        for manifest in self.manifests.iter().rev() {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(manifest);
            let _ = std::process::Command::new("kubectl")
                .args(["delete", "--ignore-not-found", "--wait=false", "-f"])
                .arg(&path)
                .output();
        }
    }
}

/// A client that acts as `user` (impersonation: the admin's credentials,
/// the user's rights).
async fn as_user(user: &str) -> Result<Client> {
    let mut config = kube::Config::infer().await.context("reading KUBECONFIG")?;
    config.auth_info.impersonate = Some(user.to_owned());
    Client::try_from(config).context("building an impersonating client")
}

/// Binds `user` to the ClusterRole `cluster_role` in `ns`.
async fn bind(client: &Client, ns: &str, user: &str, kind: &str, role: &str) -> Result<()> {
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some(format!("{user}-{role}")),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: kind.to_owned(),
            name: role.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "User".to_owned(),
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            name: user.to_owned(),
            namespace: None,
        }]),
    };
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .with_context(|| format!("binding {user} to {role}"))?;
    Ok(())
}

/// A Role allowing `get` on the named objects of `resource` only.
async fn reader(
    client: &Client,
    ns: &str,
    name: &str,
    resource: &str,
    names: &[&str],
) -> Result<()> {
    let role = Role {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec![resource.to_owned()]),
            resource_names: Some(names.iter().map(|n| (*n).to_owned()).collect()),
            verbs: vec!["get".to_owned()],
            ..PolicyRule::default()
        }]),
    };
    Api::<Role>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .with_context(|| format!("creating Role {name}"))?;
    Ok(())
}

fn movieapp(
    name: &str,
    annotations: serde_json::Value,
    spec: serde_json::Value,
) -> Result<MovieApp> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "movieapp.io/v1alpha1",
        "kind": "MovieApp",
        "metadata": { "name": name, "annotations": annotations },
        "spec": spec,
    }))?)
}

/// `TMDB_IMAGE_BASE_URL` ends up in every poster URL of the public API: the
/// publication path of a Secret a user could not read.
fn env_from(kind: &str, name: &str, key: &str) -> serde_json::Value {
    json!({ "worker": { "env": [{ "name": "TMDB_IMAGE_BASE_URL",
        "valueFrom": { kind: { "name": name, "key": key } } }] } })
}

const DRY_RUN: PostParams = PostParams {
    dry_run: true,
    field_manager: None,
};

/// Expects the API server to refuse `app` with a 403 naming every `expected` part.
async fn refused(api: &Api<MovieApp>, app: &MovieApp, expected: &[&str]) -> Result<()> {
    match api.create(&DRY_RUN, app).await {
        Err(kube::Error::Api(status)) => {
            ensure!(
                status.code == 403 && expected.iter().all(|e| status.message.contains(e)),
                "expected a 403 naming {expected:?}, got {} {}",
                status.code,
                status.message
            );
            Ok(())
        }
        Err(other) => bail!("unexpected error {other}"),
        Ok(_) => bail!(
            "{:?} was admitted; expected a refusal naming {expected:?}",
            app.metadata.name
        ),
    }
}

/// A namespace user who may edit MovieApps but not read a Secret, a
/// ConfigMap or adopt gains none of it through a MovieApp: each path is
/// refused at admission with a message naming the object and the missing
/// permission; a user with the rights passes unchanged, and what a request
/// leaves as it was is not held against the next editor.
#[tokio::test]
async fn movieapps_are_admitted_only_with_their_authors_rights() -> Result<()> {
    let env = LocalEnv::get();
    let admin = env.kube().await?;
    fixtures::install_crd(&admin).await?;
    let _installed = Installed::apply(&["deploy/user-roles.yaml", "deploy/admission.yaml"]).await?;
    let ns = unique_name("tn-admission");
    fixtures::namespace(&admin, &ns).await?;
    fixtures::tmdb_secret(&admin, &ns, "key").await?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("db-creds".to_owned()),
            ..ObjectMeta::default()
        },
        string_data: Some(BTreeMap::from([(
            "password".to_owned(),
            "hunter2".to_owned(),
        )])),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await?;
    let config_map = ConfigMap {
        metadata: ObjectMeta {
            name: Some("payments".to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("iban".to_owned(), "DE00".to_owned())])),
        ..ConfigMap::default()
    };
    Api::<ConfigMap>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &config_map)
        .await?;

    // carol: the editor role alone; alice: plus get on the TMDB Secret;
    // bob: plus get on every Secret and ConfigMap, create on ConfigMaps, and adopt.
    let editor = "movieapp-operator-movieapp-editor";
    reader(&admin, &ns, "tmdb-reader", "secrets", &["tmdb"]).await?;
    reader(
        &admin,
        &ns,
        "secret-reader",
        "secrets",
        &["tmdb", "db-creds"],
    )
    .await?;
    reader(&admin, &ns, "config-reader", "configmaps", &["payments"]).await?;
    let creator = Role {
        metadata: ObjectMeta {
            name: Some("config-creator".to_owned()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".to_owned()]),
            verbs: vec!["create".to_owned()],
            ..PolicyRule::default()
        }]),
    };
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &creator)
        .await
        .context("creating Role config-creator")?;
    bind(&admin, &ns, "carol", "ClusterRole", editor).await?;
    bind(&admin, &ns, "alice", "ClusterRole", editor).await?;
    bind(&admin, &ns, "alice", "Role", "tmdb-reader").await?;
    bind(&admin, &ns, "bob", "ClusterRole", editor).await?;
    bind(&admin, &ns, "bob", "Role", "secret-reader").await?;
    bind(&admin, &ns, "bob", "Role", "config-reader").await?;
    bind(&admin, &ns, "bob", "Role", "config-creator").await?;
    bind(
        &admin,
        &ns,
        "bob",
        "ClusterRole",
        "movieapp-operator-movieapp-adopter",
    )
    .await?;
    let carol: Api<MovieApp> = Api::namespaced(as_user("carol").await?, &ns);
    let alice: Api<MovieApp> = Api::namespaced(as_user("alice").await?, &ns);
    let bob: Api<MovieApp> = Api::namespaced(as_user("bob").await?, &ns);

    // The default TMDB Secret: carol may not read it. The policy (and the
    // RBAC bindings) take effect within seconds of being written.
    let plain = movieapp("shop", json!({}), json!({}))?;
    eventually(
        "the admission policy to refuse carol",
        Duration::from_secs(30),
        || async {
            Ok(refused(
                &carol,
                &plain,
                &[
                    &format!("Secret {ns}/tmdb"),
                    "carol may not get",
                    "RBAC verb get on secrets",
                ],
            )
            .await
            .ok())
        },
    )
    .await?;

    let attacks = [
        (
            "a Secret as a setting published in every poster URL",
            movieapp(
                "a",
                json!({}),
                env_from("secretKeyRef", "db-creds", "password"),
            )?,
            vec![
                format!("spec.worker.env names Secret {ns}/db-creds"),
                "alice may not get it".into(),
            ],
        ),
        (
            "a ConfigMap as a setting",
            movieapp(
                "b",
                json!({}),
                env_from("configMapKeyRef", "payments", "iban"),
            )?,
            vec![
                format!("spec.worker.env names ConfigMap {ns}/payments"),
                "RBAC verb get on configmaps".into(),
            ],
        ),
        (
            "another Secret as the TMDB key",
            movieapp(
                "c",
                json!({}),
                json!({ "worker": { "tmdb": { "apiKeySecretRef": { "name": "db-creds", "key": "password" } } } }),
            )?,
            vec![
                format!("apiKeySecretRef names Secret {ns}/db-creds"),
                "alice may not get".into(),
            ],
        ),
        (
            "an exports ConfigMap, which the operator would create for her",
            movieapp(
                "e",
                json!({}),
                json!({ "exports": { "configMapName": "e-connection" } }),
            )?,
            vec![
                format!("has the operator create ConfigMap {ns}/e-connection"),
                "alice may not create ConfigMaps".into(),
                "RBAC verb create on configmaps".into(),
            ],
        ),
        (
            "adoption of retained AWS resources",
            movieapp("d", json!({ "movieapp.io/adopt": "true" }), json!({}))?,
            vec![
                "needs the RBAC verb adopt on movieapps.movieapp.io".into(),
                "alice does not hold".into(),
            ],
        ),
    ];
    for (what, app, expected) in &attacks {
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        refused(&alice, app, &expected)
            .await
            .with_context(|| format!("alice: {what}"))?;
        // bob holds every right: the same objects pass.
        bob.create(&DRY_RUN, app)
            .await
            .with_context(|| format!("bob: {what}"))?;
    }

    // Updates: alice's own MovieApp may not gain what she may not create.
    alice.create(&PostParams::default(), &plain).await?;
    for (what, patch) in [
        (
            "an env Secret",
            env_from("secretKeyRef", "db-creds", "password"),
        ),
        ("adoption", json!({})),
        (
            "exports",
            json!({ "exports": { "configMapName": "shop-connection" } }),
        ),
    ] {
        let patch = if what == "adoption" {
            json!({ "metadata": { "annotations": { "movieapp.io/adopt": "true" } } })
        } else {
            json!({ "spec": patch })
        };
        match alice
            .patch("shop", &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Err(kube::Error::Api(status)) if status.code == 403 => {}
            other => bail!("alice adding {what} by update: expected a 403, got {other:?}"),
        }
    }

    // bob's MovieApp names db-creds and adopts; alice may still scale it (the
    // reference is bob's, checked when he made it), but not point it elsewhere.
    let mut spec = env_from("secretKeyRef", "db-creds", "password");
    spec["worker"]["replicas"] = json!(1);
    bob.create(
        &PostParams::default(),
        &movieapp("bobs", json!({ "movieapp.io/adopt": "true" }), spec)?,
    )
    .await?;
    alice
        .patch(
            "bobs",
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": { "worker": { "replicas": 2 } } })),
        )
        .await
        .context("alice scaling bob's MovieApp")?;
    let renamed = json!({ "spec": { "worker": { "env": [{ "name": "LOG_FORMAT",
        "valueFrom": { "secretKeyRef": { "name": "db-creds", "key": "password" } } }] } } });
    match alice
        .patch("bobs", &PatchParams::default(), &Patch::Merge(&renamed))
        .await
    {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => {
            bail!("alice moving bob's Secret to another variable: expected a 403, got {other:?}")
        }
    }
    fixtures::delete_namespace(&admin, &ns).await
}

/// A stolen operator token cannot mint ServiceAccount tokens: the chart's RBAC
/// lets the operator create Secrets (its `<name>-auth` signing keys), and a
/// `kubernetes.io/service-account-token` Secret naming any ServiceAccount
/// would be filled with that account's token by the token controller. With
/// the operator's own credentials (its ServiceAccount, bound by
/// `deploy/rbac.yaml`), such a Secret is refused; so is any Secret but an
/// Opaque `<movieapp>-auth` the MovieApp controls, which passes.
#[tokio::test]
async fn the_operators_credentials_create_no_secret_but_its_own() -> Result<()> {
    let env = LocalEnv::get();
    let admin = env.kube().await?;
    fixtures::install_crd(&admin).await?;
    let _installed = Installed::apply(&[
        "deploy/namespace.yaml",
        "deploy/rbac.yaml",
        "deploy/admission.yaml",
    ])
    .await?;
    let ns = unique_name("tn-token");
    fixtures::namespace(&admin, &ns).await?;
    let operator = as_user("system:serviceaccount:movieapp-system:movieapp-operator").await?;
    let secrets: Api<Secret> = Api::namespaced(operator.clone(), &ns);
    let secret = |name: &str,
                  type_: &str,
                  annotations: serde_json::Value,
                  owners: serde_json::Value|
     -> Result<Secret> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": { "name": name, "annotations": annotations, "ownerReferences": owners },
            "type": type_,
        }))?)
    };
    let token = secret(
        "steal",
        "kubernetes.io/service-account-token",
        json!({ "kubernetes.io/service-account.name": "default" }),
        json!([]),
    )?;
    eventually(
        "the operator's token Secret to be refused",
        Duration::from_secs(30),
        || async {
            match secrets.create(&DRY_RUN, &token).await {
                Err(kube::Error::Api(status))
                    if status.code == 403
                        && status.message.contains(&format!(
                            "refused Secret {ns}/steal of type kubernetes.io/service-account-token"
                        )) =>
                {
                    Ok(Some(()))
                }
                Err(kube::Error::Api(status)) if status.code == 403 => {
                    bail!("refused, but not by the policy: {}", status.message)
                }
                Err(other) => bail!("unexpected error {other}"),
                Ok(_) => Ok(None),
            }
        },
    )
    .await?;
    // In kube-system too (cluster mode grants create everywhere).
    match Api::<Secret>::namespaced(operator.clone(), "kube-system")
        .create(&DRY_RUN, &token)
        .await
    {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => bail!("a token Secret in kube-system: expected a 403, got {other:?}"),
    }

    let app = Api::<MovieApp>::namespaced(admin.clone(), &ns)
        .create(
            &PostParams::default(),
            &movieapp("shop", json!({}), json!({}))?,
        )
        .await?;
    let owner = json!([{ "apiVersion": "movieapp.io/v1alpha1", "kind": "MovieApp",
        "name": "shop", "uid": app.metadata.uid, "controller": true }]);
    for (what, refused_secret) in [
        (
            "an Opaque Secret with another name",
            secret("payments", "Opaque", json!({}), owner.clone())?,
        ),
        (
            "an auth Secret no MovieApp controls",
            secret("shop-auth", "Opaque", json!({}), json!([]))?,
        ),
        (
            "a Secret of another type",
            secret("shop-auth", "example.com/custom", json!({}), owner.clone())?,
        ),
    ] {
        match secrets.create(&DRY_RUN, &refused_secret).await {
            Err(kube::Error::Api(status))
                if status.code == 403
                    && status.message.contains("may create only Opaque Secrets") => {}
            other => bail!("{what}: expected the policy's 403, got {other:?}"),
        }
    }
    secrets
        .create(&DRY_RUN, &secret("shop-auth", "Opaque", json!({}), owner)?)
        .await
        .context("the operator's own auth Secret")?;
    fixtures::delete_namespace(&admin, &ns).await
}

/// A MovieApp whose worker ServiceAccount carries `role` as its IRSA role.
fn with_role(name: &str, role: &str) -> Result<MovieApp> {
    movieapp(
        name,
        json!({}),
        json!({ "worker": { "serviceAccount": { "annotations": {
            "eks.amazonaws.com/role-arn": role } } } }),
    )
}

/// IAM role choice belongs to the platform: a MovieApp may name a pre-made
/// role for its worker only where the platform listed it for the namespace
/// (the chart's `admission.workerRoleArns`, the first variable of the
/// policy `movieapp-operator-worker-roles`, set here as a Kustomize overlay
/// would), even when its author is a cluster admin; a role a request leaves
/// as it was is not checked again, and removing it always passes.
#[tokio::test]
async fn a_worker_role_is_admitted_only_where_the_platform_allows_it() -> Result<()> {
    const POLICY: &str = "movieapp-operator-worker-roles";
    let team_a = "arn:aws:iam::123456789012:role/team-a-*";
    let shared = "arn:aws:iam::123456789012:role/shared";
    let env = LocalEnv::get();
    let admin = env.kube().await?;
    fixtures::install_crd(&admin).await?;
    let _installed = Installed::apply(&["deploy/admission.yaml"]).await?;
    let ns = unique_name("tn-roles");
    let other = unique_name("tn-roles-b");
    for namespace in [&ns, &other] {
        fixtures::namespace(&admin, namespace).await?;
        fixtures::tmdb_secret(&admin, namespace, "key").await?;
    }
    // As a Kustomize overlay would: the policy's first variable.
    let allow = |list: serde_json::Value| async move {
        let patch = json!([{ "op": "replace", "path": "/spec/variables/0/expression",
            "value": list.to_string() }]);
        let output = tokio::process::Command::new("kubectl")
            .args([
                "patch",
                "validatingadmissionpolicy",
                POLICY,
                "--type=json",
                "-p",
            ])
            .arg(patch.to_string())
            .output()
            .await
            .context("running kubectl")?;
        ensure!(
            output.status.success(),
            "setting the allow-list: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        anyhow::Ok(())
    };
    allow(json!({ &ns: [team_a, shared] })).await?;
    let apps: Api<MovieApp> = Api::namespaced(admin.clone(), &ns);
    let others: Api<MovieApp> = Api::namespaced(admin.clone(), &other);
    let allowed_here = format!("the platform allows only {team_a}, {shared}");

    // The policy and its ConfigMap take effect within seconds.
    eventually(
        "the worker-role policy to refuse another team's role",
        Duration::from_secs(30),
        || async {
            Ok(refused(
                &apps,
                &with_role("b", "arn:aws:iam::123456789012:role/team-b-worker")?,
                &[
                    "names IAM role arn:aws:iam::123456789012:role/team-b-worker",
                    &format!("which MovieApps in namespace {ns} may not use"),
                    &allowed_here,
                    &format!("policy {POLICY}"),
                ],
            )
            .await
            .ok())
        },
    )
    .await?;
    for (what, role) in [
        (
            "a role under the team's prefix",
            "arn:aws:iam::123456789012:role/team-a-worker",
        ),
        ("the exact shared role", shared),
    ] {
        apps.create(&DRY_RUN, &with_role("a", role)?)
            .await
            .with_context(|| format!("{what} ({role}) was refused"))?;
    }
    for role in [
        // An exact entry is not a prefix.
        "arn:aws:iam::123456789012:role/shared-admin",
        // The prefix is the ARN's, not the role name's.
        "arn:aws:iam::999999999999:role/team-a-worker",
    ] {
        refused(&apps, &with_role("c", role)?, &[role, &allowed_here]).await?;
    }
    // The same role in a namespace the platform did not list.
    refused(
        &others,
        &with_role("d", "arn:aws:iam::123456789012:role/team-a-worker")?,
        &[
            &format!("which MovieApps in namespace {other} may not use"),
            "the platform allows no pre-made role there",
        ],
    )
    .await?;

    // Updates: adding or changing the role is checked; what a request
    // leaves as it was is not, even once the platform withdrew it.
    apps.create(
        &PostParams::default(),
        &movieapp("shop", json!({}), json!({}))?,
    )
    .await?;
    let set_role = |role: &str| {
        json!({ "spec": { "worker": { "serviceAccount": { "annotations": {
            "eks.amazonaws.com/role-arn": role } } } } })
    };
    let patch = |role: &str| {
        let body = set_role(role);
        let apps = apps.clone();
        async move {
            apps.patch("shop", &PatchParams::default(), &Patch::Merge(&body))
                .await
        }
    };
    match patch("arn:aws:iam::123456789012:role/admin").await {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => bail!("adding a role the platform did not list: expected a 403, got {other:?}"),
    }
    patch("arn:aws:iam::123456789012:role/team-a-worker")
        .await
        .context("adding a listed role")?;
    allow(json!({})).await?;
    eventually(
        "the withdrawn role to be refused",
        Duration::from_secs(30),
        || async {
            Ok(refused(
                &apps,
                &with_role("e", shared)?,
                &["the platform allows no pre-made role there"],
            )
            .await
            .ok())
        },
    )
    .await?;
    apps.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(&json!({ "spec": { "worker": { "replicas": 3 } } })),
    )
    .await
    .context("scaling a MovieApp whose role the request leaves as it was")?;
    match patch("arn:aws:iam::123456789012:role/team-a-other").await {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => bail!("changing to a withdrawn role: expected a 403, got {other:?}"),
    }

    // Removing the role always passes.
    apps.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(
            &json!({ "spec": { "worker": { "serviceAccount": { "annotations": {
            "eks.amazonaws.com/role-arn": null } } } } }),
        ),
    )
    .await
    .context("removing the role")?;
    fixtures::delete_namespace(&admin, &ns).await?;
    fixtures::delete_namespace(&admin, &other).await
}
