//! Apply: the children, when they were built, and how the worker stands.
//!
//! Every child goes through [`Applier::apply`], which uses
//! server-side apply under one field manager, but only when the child is
//! missing, drifted, or its desired form changed since this process last
//! applied it (remembered per object in [`Memory`]). A steady MovieApp
//! therefore costs no API writes.
//!
//! With `managementPolicy: ObserveOnly` nothing is applied or deleted: each
//! built child is compared with what exists ([`Applier::compare`]) and every
//! difference reported.
//!
//! Before anything is applied, every child name is claimed
//! ([`Applier::claim`]): an object with that name that this MovieApp does
//! not control (no controller owner reference with its uid) is a
//! `NameConflict`, and then nothing is applied at all. The caches hold only
//! objects with the operator's labels, so a name missing from the cache is
//! confirmed by a GET before it is created; a steady MovieApp, whose
//! children are all cached, costs no extra request.

use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use tracing::{info, warn};

use super::Context;
use super::build::Built;
use super::children::{self, Children, FIELD_MANAGER};
use super::memory::Memory;
use super::provision::WithAws;
use crate::conditions::PartState;
use crate::crd::MovieApp;
use crate::provision::Mode;
use crate::reason::Reason;

/// A MovieApp after its children were applied (or left alone).
#[derive(Debug)]
pub struct Applied<'a> {
    pub with_aws: WithAws<'a>,
    /// The worker Deployment as the cache shows it.
    pub deployment: Option<Arc<Deployment>>,
    /// How the worker stands.
    pub worker: PartState,
    /// A child the API server would not apply: reported in the status, then
    /// the reconcile fails and is retried with backoff.
    pub error: Option<ChildError>,
    /// How the children differ from what exists (ObserveOnly only).
    pub differences: Vec<String>,
}

/// The apply step.
pub async fn apply<'a>(built: Built<'a>, ctx: &Context) -> Applied<'a> {
    let Built { with_aws, children } = built;
    let object = &with_aws.object;
    let mut written = false;
    let mut error = None;
    let mut conflict = None;
    let mut differences = Vec::new();
    let applier = Applier {
        client: &ctx.shared.client,
        memory: &ctx.memory,
        uid: &object.uid,
    };
    if with_aws.mode == Mode::Observe {
        if let Some(children) = &children {
            match compare_children(ctx, applier, &object.namespace, &object.name, children).await {
                Ok(found) => differences = found,
                Err(failed) => error = Some(failed),
            }
        }
    } else if let Some(children) = &children {
        match apply_children(ctx, applier, &object.namespace, &object.name, children).await {
            Ok(Written::Children(wrote)) => written = wrote,
            Ok(Written::Conflict(foreign)) => {
                conflict = Some(PartState::blocked(
                    Reason::NameConflict,
                    children::conflict_message(&foreign),
                ));
            }
            Err(refused) => error = Some(refused),
        }
    }
    let deployment = own_deployment(ctx, &object.namespace, &object.name, &object.uid);
    let worker = if let Some(blocked) = &with_aws.worker_blocker {
        blocked.clone()
    } else if let Some(conflict) = conflict {
        conflict
    } else if let Some(error) = &error {
        failed_state(error)
    } else if with_aws.mode == Mode::Observe && deployment.is_none() {
        PartState::progressing(
            Reason::Drifted,
            "this MovieApp has no worker Deployment, and ObserveOnly creates none",
        )
    } else {
        worker_state(
            object.app,
            deployment.as_deref(),
            children.is_some(),
            written,
        )
    };
    Applied {
        with_aws,
        deployment,
        worker,
        error,
        differences,
    }
}

/// The metrics category of a failed Kubernetes request with this status code.
pub fn category(code: Option<u16>) -> &'static str {
    match code {
        Some(409) => "conflict",
        _ => "kubernetes",
    }
}

/// The worker part when a child could not be applied: a refusal only a
/// human can lift (forbidden by RBAC or a quota, rejected by validation or
/// an admission policy) stalls; anything else (the API server busy or
/// failing, a conflict) is retried.
fn failed_state(error: &ChildError) -> PartState {
    match error.code() {
        Some(400 | 403 | 422) => PartState::blocked(Reason::ChildRejected, error.to_string()),
        _ => PartState::progressing(Reason::ApplyFailed, format!("retrying: {error}")),
    }
}

/// The worker Deployment as the cache shows it, when this MovieApp controls
/// it: a Deployment of someone else's with the same name says nothing about
/// this MovieApp's worker.
pub fn own_deployment(
    ctx: &Context,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Option<Arc<Deployment>> {
    ctx.stores
        .deployments
        .get(&ObjectRef::new(name).within(namespace))
        .filter(|d| children::controlled_by(&d.metadata, uid))
}

/// What [`apply_children`] did.
#[derive(Debug)]
enum Written {
    /// Every child claimed; whether anything was written.
    Children(bool),
    /// Objects this MovieApp does not control hold some children's names
    /// (each described): nothing was written.
    Conflict(Vec<String>),
}

/// Claims every child's name, then applies every child and deletes the
/// optional ones the spec no longer asks for.
async fn apply_children(
    ctx: &Context,
    applier: Applier<'_>,
    namespace: &str,
    name: &str,
    built: &Children,
) -> Result<Written, ChildError> {
    let stores = &ctx.stores;
    let claims = tokio::try_join!(
        applier.claim(&stores.service_accounts, Some(&built.service_account)),
        applier.claim(&stores.config_maps, Some(&built.config_map)),
        applier.claim(&stores.deployments, Some(&built.deployment)),
        applier.claim(&stores.services, Some(&built.service)),
        applier.claim(&stores.autoscalers, built.autoscaler.as_ref()),
        applier.claim(&stores.disruption_budgets, built.disruption_budget.as_ref()),
        applier.claim(&stores.config_maps, built.exports.as_ref()),
        applier.claim(&stores.network_policies, built.network_policy.as_ref()),
    )?;
    let foreign: Vec<String> = [
        claims.0, claims.1, claims.2, claims.3, claims.4, claims.5, claims.6, claims.7,
    ]
    .into_iter()
    .flatten()
    .collect();
    if !foreign.is_empty() {
        warn!(movieapp = %format!("{namespace}/{name}"), ?foreign, "children's names are taken; nothing applied");
        return Ok(Written::Conflict(foreign));
    }
    let mut outcomes = vec![
        applier
            .apply(&stores.service_accounts, &built.service_account)
            .await?,
        applier
            .apply(&stores.config_maps, &built.config_map)
            .await?,
        applier
            .apply(&stores.deployments, &built.deployment)
            .await?,
        applier.apply(&stores.services, &built.service).await?,
    ];
    outcomes.push(match &built.autoscaler {
        Some(hpa) => applier.apply(&stores.autoscalers, hpa).await?,
        None => applier.prune(&stores.autoscalers, namespace, name).await?,
    });
    outcomes.push(match &built.disruption_budget {
        Some(pdb) => applier.apply(&stores.disruption_budgets, pdb).await?,
        None => {
            applier
                .prune(&stores.disruption_budgets, namespace, name)
                .await?
        }
    });
    outcomes.push(match &built.network_policy {
        Some(policy) => applier.apply(&stores.network_policies, policy).await?,
        None => {
            applier
                .prune(&stores.network_policies, namespace, name)
                .await?
        }
    });
    if let Some(exports) = &built.exports {
        outcomes.push(applier.apply(&stores.config_maps, exports).await?);
    }
    // An exports ConfigMap under a name the spec no longer gives (renamed,
    // or exports removed) goes; the new one is in place first.
    let wanted = built.exports.as_ref().map(|e| e.name_any());
    for stale in exports_of(&stores.config_maps, namespace, name, applier.uid) {
        if Some(&stale) != wanted.as_ref() {
            outcomes.push(
                applier
                    .prune(&stores.config_maps, namespace, &stale)
                    .await?,
            );
        }
    }
    let written = outcomes.iter().filter(|o| **o == Outcome::Applied).count();
    if written > 0 {
        info!(movieapp = %format!("{namespace}/{name}"), written, "applied children");
    }
    Ok(Written::Children(written > 0))
}

/// ObserveOnly: how every child differs from what exists, as messages
/// (objects of someone else's under a child's name included); nothing is
/// written.
async fn compare_children(
    ctx: &Context,
    applier: Applier<'_>,
    namespace: &str,
    name: &str,
    built: &Children,
) -> Result<Vec<String>, ChildError> {
    let stores = &ctx.stores;
    let found = tokio::try_join!(
        applier.compare(
            &stores.service_accounts,
            Some(&built.service_account),
            namespace,
            name
        ),
        applier.compare(
            &stores.config_maps,
            Some(&built.config_map),
            namespace,
            name
        ),
        applier.compare(
            &stores.deployments,
            Some(&built.deployment),
            namespace,
            name
        ),
        applier.compare(&stores.services, Some(&built.service), namespace, name),
        applier.compare(
            &stores.autoscalers,
            built.autoscaler.as_ref(),
            namespace,
            name
        ),
        applier.compare(
            &stores.disruption_budgets,
            built.disruption_budget.as_ref(),
            namespace,
            name
        ),
        applier.compare(
            &stores.network_policies,
            built.network_policy.as_ref(),
            namespace,
            name
        ),
    )?;
    let mut differences: Vec<String> = [
        found.0, found.1, found.2, found.3, found.4, found.5, found.6,
    ]
    .into_iter()
    .flatten()
    .collect();
    if let Some(exports) = &built.exports {
        differences.extend(
            applier
                .compare(&stores.config_maps, Some(exports), namespace, name)
                .await?,
        );
    }
    // An exports ConfigMap under a name the spec no longer gives.
    let wanted = built.exports.as_ref().map(|e| e.name_any());
    for stale in exports_of(&stores.config_maps, namespace, name, applier.uid) {
        if Some(&stale) != wanted.as_ref() {
            differences.push(format!(
                "ConfigMap {namespace}/{stale} exists, but the spec does not ask for it"
            ));
        }
    }
    Ok(differences)
}

/// The names of the exports ConfigMaps of the MovieApp `name` (`uid`) the
/// cache shows: labelled as its exports and controlled by it.
fn exports_of(store: &Store<ConfigMap>, namespace: &str, name: &str, uid: &str) -> Vec<String> {
    store
        .state()
        .iter()
        .filter(|config_map| {
            let labels = config_map.labels();
            config_map.namespace().as_deref() == Some(namespace)
                && labels.get(children::INSTANCE_LABEL).map(String::as_str) == Some(name)
                && labels
                    .get("app.kubernetes.io/component")
                    .map(String::as_str)
                    == Some(children::EXPORTS_COMPONENT)
                && children::controlled_by(config_map.meta(), uid)
        })
        .map(|config_map| config_map.name_any())
        .collect()
}

/// How the worker Deployment stands (also what `kubectl movieapp status`
/// says of it).
pub fn worker_state(
    app: &MovieApp,
    deployment: Option<&Deployment>,
    inputs_ready: bool,
    applied_now: bool,
) -> PartState {
    let Some(deployment) = deployment else {
        return if inputs_ready || applied_now {
            PartState::progressing(Reason::Deploying, "the worker Deployment is being created")
        } else {
            PartState::progressing(
                Reason::WaitingForDependencies,
                "waiting for the image and the AWS resources before deploying the worker",
            )
        };
    };
    let status = deployment.status.clone().unwrap_or_default();
    let generation = deployment.metadata.generation.unwrap_or(0);
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(app.spec.worker.replicas);
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return PartState::progressing(
            Reason::Progressing,
            "the Deployment controller has not seen the latest change yet",
        );
    }
    if updated >= desired && available >= desired && total == updated {
        PartState::ready(
            Reason::Available,
            format!("{available}/{desired} replicas available"),
        )
    } else {
        PartState::progressing(
            Reason::Progressing,
            format!("{available}/{desired} replicas available, {updated} updated"),
        )
    }
}

/// What a child kind is to the applier: a namespaced object that can be
/// cached, compared as JSON and applied.
pub trait Child:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
{
}

impl<K> Child for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
{
}

/// Applies the children of one MovieApp (`uid`).
#[derive(Clone, Copy)]
pub struct Applier<'a> {
    pub client: &'a Client,
    pub memory: &'a Memory,
    pub uid: &'a str,
}

/// A child the API server would not apply or delete, with which one it was.
#[derive(Debug, thiserror::Error)]
#[error("{verb} {kind} {namespace}/{name} failed: {source}")]
pub struct ChildError {
    pub verb: &'static str,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    #[source]
    pub source: kube::Error,
}

impl ChildError {
    /// Wraps an error of `K` `namespace/name`; allocates only on failure.
    fn new<K: Resource<DynamicType = ()>>(
        verb: &'static str,
        namespace: &str,
        name: &str,
    ) -> impl FnOnce(kube::Error) -> Self {
        move |source| Self {
            verb,
            kind: K::kind(&()).into_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        }
    }

    /// The API server's status code, when it answered.
    pub fn code(&self) -> Option<u16> {
        match &self.source {
            kube::Error::Api(status) => Some(status.code),
            _ => None,
        }
    }
}

/// What an apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The child already matched.
    Unchanged,
    /// The child was created or patched.
    Applied,
}

impl std::fmt::Debug for Applier<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("uid", &self.uid)
            .finish_non_exhaustive()
    }
}

/// The key of a child in [`crate::reconcile::memory::Remembered::applied`].
fn child_key<K: Resource<DynamicType = ()>>(name: &str) -> String {
    format!("{}/{name}", K::kind(&()))
}

impl Applier<'_> {
    /// Whether this MovieApp may write `desired`: `None` when the name is
    /// free or the object there is controlled by this MovieApp, else a
    /// description of the object that holds it. The cache answers for
    /// labelled objects; a name missing from it is looked up (a metadata
    /// GET), since the caches see only objects with the operator's labels.
    pub async fn claim<K>(
        &self,
        store: &Store<K>,
        desired: Option<&K>,
    ) -> Result<Option<String>, ChildError>
    where
        K: Child,
    {
        let Some(desired) = desired else {
            return Ok(None);
        };
        let name = desired.name_any();
        let namespace = desired.namespace().unwrap_or_default();
        let kind = K::kind(&());
        if let Some(current) = store.get(&ObjectRef::new(&name).within(&namespace)) {
            return Ok((!children::controlled_by(current.meta(), self.uid))
                .then(|| children::foreign_description(&kind, current.meta())));
        }
        let api: Api<K> = Api::namespaced(self.client.clone(), &namespace);
        let found = api
            .get_metadata_opt(&name)
            .await
            .map_err(ChildError::new::<K>("reading", &namespace, &name))?;
        Ok(found
            .filter(|object| !children::controlled_by(&object.metadata, self.uid))
            .map(|object| children::foreign_description(&kind, &object.metadata)))
    }

    /// How `desired` differs from what exists, without writing: someone
    /// else's object under its name, missing, or the first field that
    /// differs. With `desired` `None` (an optional child the spec does not
    /// ask for), whether one of this MovieApp's is still there under
    /// `namespace/name`.
    pub async fn compare<K>(
        &self,
        store: &Store<K>,
        desired: Option<&K>,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, ChildError>
    where
        K: Child,
    {
        let kind = K::kind(&());
        let Some(desired) = desired else {
            let left = store
                .get(&ObjectRef::new(name).within(namespace))
                .is_some_and(|current| children::controlled_by(current.meta(), self.uid));
            return Ok(left.then(|| {
                format!("{kind} {namespace}/{name} exists, but the spec does not ask for it")
            }));
        };
        if let Some(foreign) = self.claim(store, Some(desired)).await? {
            return Ok(Some(foreign));
        }
        let name = desired.name_any();
        let Some(current) = store.get(&ObjectRef::new(&name).within(namespace)) else {
            return Ok(Some(format!("{kind} {namespace}/{name} does not exist")));
        };
        let (want, have) = match (
            serde_json::to_value(desired),
            serde_json::to_value(&*current),
        ) {
            (Ok(want), Ok(have)) => (want, have),
            (Err(error), _) | (_, Err(error)) => {
                let failed = ChildError::new::<K>("comparing", namespace, &name);
                return Err(failed(kube::Error::SerdeError(error)));
            }
        };
        Ok(first_difference(&want, &have, String::new())
            .map(|path| format!("{kind} {namespace}/{name} differs from the spec at {path}")))
    }

    /// Applies `desired` unless `store` shows it already in place.
    pub async fn apply<K>(&self, store: &Store<K>, desired: &K) -> Result<Outcome, ChildError>
    where
        K: Child,
    {
        let name = desired.name_any();
        let namespace = desired.namespace().unwrap_or_default();
        let key = child_key::<K>(&name);
        let failed = || ChildError::new::<K>("applying", &namespace, &name);
        let desired_value = serde_json::to_value(desired)
            .map_err(kube::Error::SerdeError)
            .map_err(failed())?;
        let desired_hash = hash_value(&desired_value);

        let current = store.get(&ObjectRef::new(&name).within(&namespace));
        let remembered = self
            .memory
            .read(self.uid, |r| r.applied.get(&key).copied())
            .flatten();
        if let Some(current) = current {
            let current_value = serde_json::to_value(current.as_ref())
                .map_err(kube::Error::SerdeError)
                .map_err(failed())?;
            match first_difference(&desired_value, &current_value, String::new()) {
                None if remembered == Some(desired_hash) => return Ok(Outcome::Unchanged),
                None => {}
                Some(path) => {
                    tracing::info!(child = %key, %path, "child differs from its desired form; applying")
                }
            }
        }

        let api: Api<K> = Api::namespaced(self.client.clone(), &namespace);
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(desired),
        )
        .await
        .map_err(failed())?;
        self.memory
            .update(self.uid, |r| r.applied.insert(key, desired_hash));
        Ok(Outcome::Applied)
    }

    /// Deletes a child the spec no longer asks for, if `store` shows it.
    pub async fn prune<K>(
        &self,
        store: &Store<K>,
        namespace: &str,
        name: &str,
    ) -> Result<Outcome, ChildError>
    where
        K: Child,
    {
        // Only a child of this MovieApp goes; an object of someone else's
        // with the name is none of its business.
        let Some(uid) = store
            .get(&ObjectRef::new(name).within(namespace))
            .filter(|current| children::controlled_by(current.meta(), self.uid))
            .and_then(|current| current.uid())
        else {
            return Ok(Outcome::Unchanged);
        };
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        // Exactly the object seen: one put in its place meanwhile stays.
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match api.delete(name, &params).await {
            Ok(_) => {}
            // Gone already, or replaced by another object (the uid precondition).
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(error) => return Err(ChildError::new::<K>("deleting", namespace, name)(error)),
        }
        self.memory
            .update(self.uid, |r| r.applied.remove(&child_key::<K>(name)));
        Ok(Outcome::Applied)
    }
}

fn hash_value(value: &Value) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.to_string().hash(&mut hasher);
    hasher.finish()
}

/// The path of the first field set in `desired` whose value differs in
/// `actual`, or `None` when `desired` is a subset of `actual`.
fn first_difference(desired: &Value, actual: &Value, path: String) -> Option<String> {
    match (desired, actual) {
        (Value::Object(want), Value::Object(have)) => {
            want.iter().find_map(|(key, value)| match have.get(key) {
                Some(actual) => first_difference(value, actual, format!("{path}.{key}")),
                None if value.is_null() => None,
                None => Some(format!("{path}.{key}")),
            })
        }
        (Value::Array(want), Value::Array(have)) if want.len() == have.len() => want
            .iter()
            .zip(have)
            .enumerate()
            .find_map(|(i, (w, h))| first_difference(w, h, format!("{path}[{i}]"))),
        _ => (!is_subset(desired, actual)).then_some(path),
    }
}

/// Whether every field set in `desired` has the same value in `actual`
/// (which may hold more: defaults, status, other managers' fields).
/// Quantities compare by value, so `0.5` matches the server's `500m`.
pub fn is_subset(desired: &Value, actual: &Value) -> bool {
    match (desired, actual) {
        (Value::Object(want), Value::Object(have)) => want.iter().all(|(key, value)| {
            have.get(key).is_some_and(|actual| is_subset(value, actual))
                || (value.is_null() && !have.contains_key(key))
        }),
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(w, h)| is_subset(w, h))
        }
        (Value::String(want), Value::String(have)) => {
            want == have || quantity(want).is_some_and(|w| quantity(have) == Some(w))
        }
        (Value::Number(want), Value::Number(have)) => want.as_f64() == have.as_f64(),
        (want, have) => want == have,
    }
}

/// The value of a Kubernetes quantity (`100m`, `64Mi`, `1.5`, `2G`), in
/// thousandths, when `text` is one.
fn quantity(text: &str) -> Option<i128> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() {
        return None;
    }
    let multiplier: i128 = match suffix {
        "m" => 1,
        "" => 1_000,
        "k" => 1_000_000,
        "M" => 1_000_000_000,
        "G" => 1_000_000_000_000,
        "T" => 1_000_000_000_000_000,
        "Ki" => 1_024 * 1_000,
        "Mi" => 1_024 * 1_024 * 1_000,
        "Gi" => 1_024 * 1_024 * 1_024 * 1_000,
        "Ti" => 1_024_i128.pow(4) * 1_000,
        _ => return None,
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let whole: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut value = whole.checked_mul(multiplier)?;
    if !fraction.is_empty() {
        let digits = i128::try_from(fraction.len()).ok()?;
        let scale = 10_i128.checked_pow(u32::try_from(digits).ok()?)?;
        value += fraction.parse::<i128>().ok()?.checked_mul(multiplier)? / scale;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_ignores_extra_fields_but_not_changed_ones() {
        let desired = json!({ "spec": { "replicas": 2, "template": { "labels": { "a": "1" } } } });
        let actual = json!({ "spec": { "replicas": 2, "paused": false, "template": { "labels": { "a": "1", "b": "2" } } }, "status": {} });
        assert!(is_subset(&desired, &actual));
        let drifted = json!({ "spec": { "replicas": 3, "template": { "labels": { "a": "1" } } } });
        assert!(!is_subset(&desired, &drifted));
    }

    #[test]
    fn lists_must_match_in_length_and_order() {
        let desired = json!({ "env": [{ "name": "A" }, { "name": "B" }] });
        assert!(is_subset(
            &desired,
            &json!({ "env": [{ "name": "A", "x": 1 }, { "name": "B" }] })
        ));
        assert!(!is_subset(&desired, &json!({ "env": [{ "name": "A" }] })));
        assert!(!is_subset(
            &desired,
            &json!({ "env": [{ "name": "B" }, { "name": "A" }] })
        ));
    }

    #[test]
    fn forgetting_shop_keeps_what_was_applied_for_shop_2() {
        use crate::metrics::Metrics;
        use k8s_openapi::api::apps::v1::Deployment;
        use k8s_openapi::api::core::v1::ConfigMap;
        // `shop` and `shop-2` in one namespace: their children share a prefix.
        let memory = Memory::new(Metrics::new());
        for (uid, app) in [("uid-shop", "shop"), ("uid-shop-2", "shop-2")] {
            memory.update(uid, |r| {
                r.applied.insert(child_key::<Deployment>(app), 1);
                r.applied
                    .insert(child_key::<ConfigMap>(&format!("{app}-config")), 2);
            });
        }
        memory.forget("uid-shop");
        let kept = memory
            .read("uid-shop-2", |r| r.applied.clone())
            .unwrap_or_default();
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert!(kept.contains_key("Deployment/shop-2"), "{kept:?}");
        assert!(memory.read("uid-shop", |_| ()).is_none());
    }

    #[test]
    fn quantities_compare_by_value() {
        assert!(is_subset(&json!("0.5"), &json!("500m")));
        assert!(is_subset(&json!("1Gi"), &json!("1024Mi")));
        assert!(is_subset(&json!("1000m"), &json!("1")));
        assert!(!is_subset(&json!("100m"), &json!("200m")));
        assert!(!is_subset(&json!("abc"), &json!("abd")));
        assert_eq!(quantity("64Mi"), Some(64 * 1024 * 1024 * 1000));
        assert_eq!(quantity("1.5"), Some(1500));
        assert_eq!(quantity("Mi"), None);
    }
}
