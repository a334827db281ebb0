//! What every reconcile shares: clients, caches, metrics, configuration.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;

use crate::aws::Aws;
use crate::aws::ecr::ImageResolver;
use crate::config::RunConfig;
use crate::metrics::Metrics;
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

/// The context of one controller (one watched namespace, or all).
#[derive(Debug)]
pub struct Context {
    pub shared: Arc<Shared>,
    pub stores: Stores,
    pub applier: Applier,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(shared: Arc<Shared>, stores: Stores) -> Self {
        Self {
            shared,
            stores,
            applier: Applier::default(),
            failures: Mutex::new(HashMap::new()),
        }
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
