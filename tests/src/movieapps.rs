//! MovieApps as the end-to-end tests write and read them: a typed object
//! from a JSON spec, its conditions, and waiting for a state.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use movieapp_operator::crd::MovieApp;
use serde_json::json;

/// How long [`wait_for`] waits.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The MovieApp `name` with `spec`, as JSON: also what the Rust types
/// cannot hold (specs the API server must refuse).
pub fn manifest(name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "movieapp.io/v1alpha1",
        "kind": "MovieApp",
        "metadata": { "name": name },
        "spec": spec,
    })
}

/// The MovieApp `name` with `spec` (JSON, as a user would write it).
pub fn movieapp(name: &str, spec: serde_json::Value) -> Result<MovieApp> {
    Ok(serde_json::from_value(manifest(name, spec))?)
}

/// The condition `type_` of the status, if any.
pub fn condition<'a>(app: &'a MovieApp, type_: &str) -> Option<&'a Condition> {
    app.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// Whether the condition `type_` has `status` (and `reason`, when given).
pub fn is(app: &MovieApp, type_: &str, status: &str, reason: Option<&str>) -> bool {
    condition(app, type_)
        .is_some_and(|c| c.status == status && reason.is_none_or(|r| c.reason == r))
}

/// Waits until `check` holds for the MovieApp, returning it.
pub async fn wait_for(
    api: &Api<MovieApp>,
    name: &str,
    what: &str,
    check: impl Fn(&MovieApp) -> bool,
) -> Result<MovieApp> {
    crate::fixtures::wait_for_movieapp(api, name, what, TIMEOUT, check).await
}
