//! `movieapp-operator`: runs the movie-catalogue application on Kubernetes
//! and AWS from `MovieApp` objects.
//!
//! The reconcile pipeline lives in [`reconcile`]: dereference → validate →
//! provision → build (pure) → apply → status. AWS resources
//! are provisioned by [`provision`]; names come from [`naming`]; conditions
//! are computed by [`conditions`].

pub mod aws;
pub mod conditions;
pub mod config;
pub mod context;
pub mod controller;
pub mod crd;
pub mod events;
pub mod fence;
pub mod leader;
pub mod metrics;
pub mod naming;
pub mod policies;
pub mod provision;
pub mod reason;
pub mod reconcile;
pub mod recorder;
pub mod schedule;
pub mod server;
