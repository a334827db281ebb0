//! The context of one controller: what the process shares, the caches of
//! the watched objects, and the per-object memory.

use std::sync::Arc;

use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};

use super::memory::Memory;
use crate::context::{Shared, Stores};
use crate::crd::MovieApp;
use crate::schedule::Workers;

/// The context of one controller (one watched namespace, or all).
#[derive(Debug)]
pub struct Context {
    pub shared: Arc<Shared>,
    /// The children, as the watches see them.
    pub stores: Stores,
    /// The MovieApps, as the watch sees them.
    pub apps: Store<DeserializeGuard<MovieApp>>,
    pub memory: Arc<Memory>,
    /// How many reconciles run (the timers wait for a free worker).
    pub workers: Arc<Workers>,
}

impl Context {
    pub fn new(
        shared: Arc<Shared>,
        stores: Stores,
        apps: Store<DeserializeGuard<MovieApp>>,
        memory: Arc<Memory>,
        workers: Arc<Workers>,
    ) -> Self {
        Self {
            memory,
            workers,
            shared,
            stores,
            apps,
        }
    }

    /// Forgets the object `uid` at `namespace/name` if it has left the watch
    /// cache: a reconcile that ends after its object was deleted must not
    /// leave anything behind.
    pub fn forget_if_gone(&self, namespace: &str, name: &str, uid: &str) {
        let live = self
            .apps
            .get(&ObjectRef::new(name).within(namespace))
            .is_some_and(|app| app.uid().as_deref() == Some(uid));
        self.memory.forget_unless(uid, live);
    }
}
