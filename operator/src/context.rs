//! What every controller of the process shares: clients, metrics,
//! configuration, and the caches of the children its watches fill.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::runtime::reflector::Store;

use crate::aws::Aws;
use crate::aws::ecr::ImageResolver;
use crate::aws::tagging::Snapshots;
use crate::config::RunConfig;
use crate::events::Routes;
use crate::metrics::Metrics;
use crate::recorder::Recorder;
use crate::schedule::ResyncBudget;

/// Shared by every controller of the process.
pub struct Shared {
    pub client: Client,
    pub aws: Aws,
    pub images: ImageResolver,
    /// The ownership tags of each region, shared by the resyncs.
    pub tag_snapshots: Snapshots,
    pub metrics: Metrics,
    pub config: RunConfig,
    pub recorder: Recorder,
    /// The pace of resyncs, shared by every controller.
    pub resyncs: std::sync::Arc<ResyncBudget>,
    /// Where AWS change events go, one route per controller.
    pub routes: std::sync::Arc<Routes>,
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
    pub network_policies: Store<NetworkPolicy>,
}
