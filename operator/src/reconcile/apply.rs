//! Apply: every child goes through [`Applier::apply`], which uses
//! server-side apply under one field manager, but only when the child is
//! missing, drifted, or its desired form changed since this process last
//! applied it. A steady MovieApp therefore costs no API writes.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, PoisonError};

use k8s_openapi::NamespaceResourceScope;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::children::FIELD_MANAGER;

/// Remembers, per child, the hash of the desired form this process applied last.
#[derive(Debug, Default)]
pub struct Applier {
    applied: Mutex<HashMap<String, u64>>,
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

impl Applier {
    /// Applies `desired` unless `store` shows it already in place.
    pub async fn apply<K>(
        &self,
        client: &Client,
        store: &Store<K>,
        desired: &K,
    ) -> Result<Outcome, ChildError>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + Debug
            + Serialize
            + DeserializeOwned,
    {
        let name = desired.name_any();
        let namespace = desired.namespace().unwrap_or_default();
        let key = format!("{}/{namespace}/{name}", K::kind(&()));
        let failed = || ChildError::new::<K>("applying", &namespace, &name);
        let desired_value = serde_json::to_value(desired)
            .map_err(kube::Error::SerdeError)
            .map_err(failed())?;
        let desired_hash = hash_value(&desired_value);

        let current = store.get(&ObjectRef::new(&name).within(&namespace));
        let remembered = self
            .applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .copied();
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

        let api: Api<K> = Api::namespaced(client.clone(), &namespace);
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(desired),
        )
        .await
        .map_err(failed())?;
        self.applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, desired_hash);
        Ok(Outcome::Applied)
    }

    /// Deletes a child the spec no longer asks for, if `store` shows it.
    pub async fn prune<K>(
        &self,
        client: &Client,
        store: &Store<K>,
        namespace: &str,
        name: &str,
    ) -> Result<Outcome, ChildError>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + Debug
            + DeserializeOwned,
    {
        if store.get(&ObjectRef::new(name).within(namespace)).is_none() {
            return Ok(Outcome::Unchanged);
        }
        let api: Api<K> = Api::namespaced(client.clone(), namespace);
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(ChildError::new::<K>("deleting", namespace, name)(error)),
        }
        self.applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&format!("{}/{namespace}/{name}", K::kind(&())));
        Ok(Outcome::Applied)
    }

    /// Forgets every child of a deleted MovieApp.
    pub fn forget(&self, namespace: &str, name: &str) {
        let prefix_matches = |key: &str| {
            let mut parts = key.splitn(3, '/');
            let (_, ns, child) = (parts.next(), parts.next(), parts.next());
            ns == Some(namespace)
                && child.is_some_and(|c| c == name || c.starts_with(&format!("{name}-")))
        };
        self.applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|key, _| !prefix_matches(key));
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
