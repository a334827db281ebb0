//! The supervisor of the local environment (`make env-up`): a real
//! Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler, kwok with one fake node), moto as the AWS endpoint and the
//! TMDB stub, all on 127.0.0.1 in a block of ports below the kernel's
//! ephemeral range, all under `.localenv/` of the checkout; and the
//! processes run beside them (`make demo`'s operator and api-worker, the
//! tests' operator processes).
//!
//! - [`ports`]: the block, and why it is where it is;
//! - [`pki`]: certificates and kubeconfigs;
//! - [`components`]: what each component runs, needs and answers;
//! - [`process`]: starting, recognising and stopping processes;
//! - [`health`]: the checks;
//! - [`supervisor`]: up, status, restart, down;
//! - [`stress`]: many up/down cycles in a row.

pub mod components;
pub mod health;
pub mod pki;
pub mod ports;
pub mod process;
pub mod setup;
pub mod stress;
pub mod supervisor;

pub use components::{Component, Layout, REAL_NODE, REAL_NODE_LABEL, RealNode};
pub use health::{Health, Probe};
pub use supervisor::{
    RealNodeWanted, Report, Request, down, recorded, remove_real_node, restart, running,
    start_process, status, stop_process, stop_process_within, up,
};
