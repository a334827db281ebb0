//! What every reconcile shares: clients, caches, metrics, configuration.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;

use crate::aws::Aws;
use crate::aws::ecr::{ImageResolver, ResolvedImage};
use crate::config::RunConfig;
use crate::metrics::Metrics;
use crate::provision::Provisioned;
use crate::reconcile::apply::Applier;

/// Shared by every controller of the process.
pub struct Shared {
    pub client: Client,
    pub aws: Aws,
    pub images: ImageResolver,
    pub metrics: Metrics,
    pub config: RunConfig,
    pub recorder: Recorder,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("aws", &self.aws)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Caches of the children, filled by the controller's watches, so that a
/// reconcile compares desired and actual state without reading the API.
#[derive(Debug, Clone)]
pub struct Stores {
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
    pub config_maps: Store<ConfigMap>,
    pub service_accounts: Store<ServiceAccount>,
    pub autoscalers: Store<HorizontalPodAutoscaler>,
    pub disruption_budgets: Store<PodDisruptionBudget>,
}

/// What a MovieApp's AWS pass depends on: a pass is valid only for these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassInputs {
    pub generation: Option<i64>,
    pub adopt: bool,
    pub region: String,
}

/// The last AWS pass of one MovieApp that found everything in place.
#[derive(Debug, Clone)]
pub struct Verified {
    pub inputs: PassInputs,
    pub provisioned: Provisioned,
    pub image: ResolvedImage,
    /// When the pass started.
    pub at: Instant,
}

/// The context of one controller (one watched namespace, or all).
#[derive(Debug)]
pub struct Context {
    pub shared: Arc<Shared>,
    pub stores: Stores,
    pub applier: Applier,
    failures: Mutex<HashMap<String, u32>>,
    /// By uid. Reconciles that a child's change causes between two resyncs
    /// reuse it instead of reading AWS again; the resync re-reads AWS.
    verified: Mutex<HashMap<String, Verified>>,
}

impl Context {
    pub fn new(shared: Arc<Shared>, stores: Stores) -> Self {
        Self {
            shared,
            stores,
            applier: Applier::default(),
            failures: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The last complete AWS pass of `uid`, when it was made for `inputs`
    /// less than `max_age` ago.
    pub fn verified(&self, uid: &str, inputs: &PassInputs, max_age: Duration) -> Option<Verified> {
        self.last_verified(uid, inputs)
            .filter(|v| v.at.elapsed() < max_age)
    }

    /// The last complete AWS pass of `uid` made for `inputs`, however old.
    pub fn last_verified(&self, uid: &str, inputs: &PassInputs) -> Option<Verified> {
        self.verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(uid)
            .filter(|v| v.inputs == *inputs)
            .cloned()
    }

    /// Records a complete AWS pass of `uid` (`None`: the last pass was not).
    pub fn set_verified(&self, uid: &str, verified: Option<Verified>) {
        let mut all = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        match verified {
            Some(verified) => all.insert(uid.to_owned(), verified),
            None => all.remove(uid),
        };
    }

    /// Counts a failed reconcile of `key` and returns how many failed in a row.
    pub fn record_failure(&self, key: &str) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let count = failures.entry(key.to_owned()).or_default();
        *count = count.saturating_add(1);
        *count
    }

    /// Resets the failure count of `key` after a successful reconcile.
    pub fn record_success(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}
