//! What the operator remembers about each MovieApp between two reconciles,
//! in one place, keyed by the object's uid.
//!
//! Everything here can be lost at any moment (a restart loses it all): it
//! only saves work. An entry lives exactly as long as its object:
//! [`Memory::forget`] drops it (and the object's metrics) when the clean-up
//! removed the finalizer, when the watch reports the object deleted by any
//! other path (a finalizer removed by hand, an object that never had one),
//! and when a relist of the watch no longer shows it. A reconcile that ends
//! after its object left the cache forgets it too ([`Memory::forget_unless`]),
//! so no write can outlive a deletion.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;

use crate::aws::ecr::ResolvedImage;
use crate::crd::MovieApp;
use crate::metrics::Metrics;
use crate::provision::Provisioned;

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

/// Everything remembered about one MovieApp.
#[derive(Debug, Default)]
pub struct Remembered {
    /// Failed reconciles in a row: the backoff grows with it.
    pub failures: u32,
    /// The last complete AWS pass. Reconciles that a child's change causes
    /// between two resyncs reuse it instead of reading AWS again.
    pub verified: Option<Verified>,
    /// Per child (`Kind/name`), the hash of the desired form this process
    /// applied last: a child that matches it and the cache is not applied again.
    pub applied: HashMap<String, u64>,
}

/// The per-object memory of one controller.
#[derive(Debug)]
pub struct Memory {
    objects: Mutex<HashMap<String, Remembered>>,
    metrics: Metrics,
}

impl Memory {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            objects: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// Changes what is remembered about `uid` (an empty entry at first).
    pub fn update<R>(&self, uid: &str, change: impl FnOnce(&mut Remembered) -> R) -> R {
        let mut objects = self.lock();
        let before = objects.len();
        let result = change(objects.entry(uid.to_owned()).or_default());
        if objects.len() != before {
            self.metrics.set_remembered(objects.len());
        }
        result
    }

    /// Reads what is remembered about `uid`, if anything.
    pub fn read<R>(&self, uid: &str, read: impl FnOnce(&Remembered) -> R) -> Option<R> {
        self.lock().get(uid).map(read)
    }

    /// The last complete AWS pass of `uid` made for `inputs`, however old.
    pub fn last_verified(&self, uid: &str, inputs: &PassInputs) -> Option<Verified> {
        self.read(uid, |r| r.verified.clone())
            .flatten()
            .filter(|v| v.inputs == *inputs)
    }

    /// The last complete AWS pass of `uid`, when it was made for `inputs`
    /// less than `max_age` ago.
    pub fn verified(&self, uid: &str, inputs: &PassInputs, max_age: Duration) -> Option<Verified> {
        self.last_verified(uid, inputs)
            .filter(|v| v.at.elapsed() < max_age)
    }

    /// Drops everything about `uid`: its entry and its metrics.
    pub fn forget(&self, uid: &str) {
        let mut objects = self.lock();
        if objects.remove(uid).is_some() {
            self.metrics.set_remembered(objects.len());
        }
        self.metrics.forget(uid);
    }

    /// Forgets `uid` unless `live` says its object is still there.
    pub fn forget_unless(&self, uid: &str, live: bool) {
        if !live {
            self.forget(uid);
        }
    }

    /// Keeps only the objects `live` accepts (after a relist of the watch,
    /// which reports no deletion for objects deleted while it was down).
    pub fn retain(&self, live: impl Fn(&str) -> bool) {
        let gone: Vec<String> = self
            .lock()
            .keys()
            .filter(|uid| !live(uid))
            .cloned()
            .collect();
        for uid in gone {
            self.forget(&uid);
        }
    }

    /// How many objects are remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets the objects a watch event says are gone: a deletion, or a
    /// relist that no longer lists them (`listed` gives the uids the cache
    /// holds once the relist is complete).
    pub fn follow_watch(
        &self,
        event: &watcher::Event<DeserializeGuard<MovieApp>>,
        listed: impl FnOnce() -> Vec<String>,
    ) {
        match event {
            watcher::Event::Delete(object) => {
                if let Some(uid) = object.uid() {
                    self.forget(&uid);
                }
            }
            watcher::Event::InitDone => {
                let listed = listed();
                self.retain(|uid| listed.iter().any(|l| l == uid));
            }
            watcher::Event::Init | watcher::Event::InitApply(_) | watcher::Event::Apply(_) => {}
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Remembered>> {
        self.objects.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The closure a MovieApp watch stream calls on every event (after its
/// cache took the event in), so that the memory forgets objects as the
/// cache does.
pub fn follow(
    memory: Arc<Memory>,
    apps: Store<DeserializeGuard<MovieApp>>,
) -> impl FnMut(&Result<watcher::Event<DeserializeGuard<MovieApp>>, watcher::Error>) {
    move |event| {
        if let Ok(event) = event {
            memory.follow_watch(event, || {
                apps.state().iter().filter_map(|app| app.uid()).collect()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn object(uid: &str) -> DeserializeGuard<MovieApp> {
        let mut app = MovieApp::new("shop", serde_json::from_str("{}").expect("spec"));
        app.metadata = ObjectMeta {
            name: Some("shop".into()),
            namespace: Some("ns".into()),
            uid: Some(uid.into()),
            ..ObjectMeta::default()
        };
        DeserializeGuard(Ok(app))
    }

    /// What one reconcile leaves behind.
    fn reconciled(memory: &Memory, metrics: &Metrics, uid: &str) {
        memory.update(uid, |r| {
            r.failures += 1;
            r.applied.insert("Deployment/shop".into(), 7);
        });
        metrics.set_conditions(uid.to_owned(), vec![("Ready".into(), "True".into())]);
    }

    fn resources(metrics: &Metrics) -> String {
        metrics
            .render()
            .expect("render")
            .lines()
            .filter(|l| l.starts_with("movieapp_resources{"))
            .collect()
    }

    #[test]
    fn memory_does_not_grow_over_create_and_delete_cycles() {
        let metrics = Metrics::new();
        let memory = Memory::new(metrics.clone());
        for cycle in 0..3_000 {
            let uid = format!("uid-{cycle}");
            reconciled(&memory, &metrics, &uid);
            match cycle % 3 {
                // The clean-up removed the finalizer.
                0 => memory.forget(&uid),
                // The finalizer was removed by hand: only the watch tells.
                1 => memory.follow_watch(&watcher::Event::Delete(object(&uid)), Vec::new),
                // Deleted while the watch was down: the relist does not list it.
                _ => {
                    memory.follow_watch(&watcher::Event::Init, Vec::new);
                    memory.follow_watch(&watcher::Event::InitDone, Vec::new);
                }
            }
            // A reconcile still running when the object went ends after it.
            reconciled(&memory, &metrics, &uid);
            memory.forget_unless(&uid, false);
        }
        assert!(memory.is_empty(), "{} objects remembered", memory.len());
        assert!(resources(&metrics).is_empty(), "{}", resources(&metrics));
        assert!(
            metrics
                .render()
                .expect("render")
                .contains("movieapp_remembered_objects 0")
        );
    }

    #[test]
    fn objects_are_told_apart_by_uid_not_by_name() {
        // `shop` and `shop-2` in one namespace, and `shop` deleted and created
        // again (a new uid under the same name).
        let memory = Memory::new(Metrics::new());
        for uid in ["shop", "shop-2", "shop-again"] {
            memory.update(uid, |r| {
                r.applied.insert("Deployment/x".into(), 1);
            });
        }
        memory.forget("shop");
        assert_eq!(memory.read("shop", |_| ()), None);
        for uid in ["shop-2", "shop-again"] {
            assert_eq!(
                memory.read(uid, |r| r.applied.len()),
                Some(1),
                "{uid} was forgotten with shop"
            );
        }
        // A relist keeps what it lists.
        memory.follow_watch(&watcher::Event::InitDone, || vec!["shop-2".into()]);
        assert_eq!(memory.len(), 1);
    }
}
