//! `kubectl-movieapp`: the kubectl plugin of the MovieApp operator.
//!
//! `kubectl movieapp status NAME` reads the MovieApp, its AWS resources (as
//! AWS reports them now) and its Kubernetes children, and prints them as a
//! tree that marks what is not ready and why; `-o json` prints the same
//! [`report::StatusReport`] for scripts.
//!
//! Everything it knows about names, ownership and readiness is the
//! operator's own code (the `movieapp-operator` library): the physical AWS
//! names and their lookups ([`movieapp_operator::provision::inspect`]), the
//! children's names ([`movieapp_operator::reconcile::children::child_refs`]),
//! the TMDB Secret check and the worker's rollout state. It only reads.

pub mod cli;
pub mod collect;
pub mod render;
pub mod report;
pub mod status;
