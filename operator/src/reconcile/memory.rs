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

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::aws::ecr::ResolvedImage;
use crate::crd::MovieApp;
use crate::metrics::Metrics;
use crate::provision::Provisioned;

/// How the controller names a MovieApp (the watch delivers it guarded).
pub type AppRef = ObjectRef<DeserializeGuard<MovieApp>>;

/// What an AWS pass of a MovieApp depends on: a pass is valid only for these.
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
    /// When the last complete pass started: this one, or, for a light pass
    /// (see [`crate::provision::Target::light`]), the one it kept settings of.
    pub full_at: Instant,
}

/// What a timer wakes a MovieApp for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Look again soon: something is being created, a human must act, or
    /// the last reconcile failed. Served as soon as a worker is free.
    Retry,
    /// The safety-net resync: re-read AWS and repair drift. Served only
    /// when no change waits and the AWS budget allows (see `resync`).
    Resync,
}

/// Why the next reconcile must read AWS instead of reusing the last pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reread {
    /// The resync is due.
    Resync,
    /// AWS reported a change to one of its resources; `at` is when the
    /// earliest such change was made (for the event-to-reconcile latency).
    Change { at: SystemTime },
}

impl Reread {
    /// Two reasons in one: a change wins over a resync (it carries a
    /// latency to report), the earlier change over a later one.
    fn merge(self, other: Reread) -> Reread {
        match (self, other) {
            (Reread::Change { at: a }, Reread::Change { at: b }) => Reread::Change { at: a.min(b) },
            (change @ Reread::Change { .. }, Reread::Resync)
            | (Reread::Resync, change @ Reread::Change { .. }) => change,
            (Reread::Resync, Reread::Resync) => Reread::Resync,
        }
    }
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
    /// How the controller names the object (to wake it from a timer or an
    /// AWS change event).
    object: Option<AppRef>,
    /// The next timed reconcile (mirrored in `Inner::retries`/`resyncs`).
    timer: Option<(Instant, Wake)>,
    /// The next reconcile reads AWS, and why.
    reread: Option<Reread>,
    /// A change seen by the watch whose reconcile has not started yet.
    changed: Option<Instant>,
    /// The physical names of its AWS resources (mirrored in `Inner::owners`).
    resources: Vec<String>,
}

/// The entries and the indexes over them, under one lock so that they
/// always agree.
#[derive(Debug, Default)]
struct Inner {
    objects: HashMap<String, Remembered>,
    /// Due retries and resyncs, by time then uid: the oldest is served first.
    retries: BTreeSet<(Instant, String)>,
    resyncs: BTreeSet<(Instant, String)>,
    /// Physical AWS name → uid of the MovieApp that manages it.
    owners: HashMap<String, String>,
}

impl Inner {
    fn queue(&mut self, wake: Wake) -> &mut BTreeSet<(Instant, String)> {
        match wake {
            Wake::Retry => &mut self.retries,
            Wake::Resync => &mut self.resyncs,
        }
    }

    fn clear_timer(&mut self, uid: &str) {
        if let Some((at, wake)) = self.objects.get_mut(uid).and_then(|r| r.timer.take()) {
            self.queue(wake).remove(&(at, uid.to_owned()));
        }
    }
}

/// A timed reconcile that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub object: AppRef,
    /// When it was due: how late it is served is `now - at`.
    pub at: Instant,
}

/// The per-object memory of one controller.
#[derive(Debug)]
pub struct Memory {
    inner: Mutex<Inner>,
    metrics: Metrics,
}

impl Memory {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            metrics,
        }
    }

    /// Changes what is remembered about `uid` (an empty entry at first).
    pub fn update<R>(&self, uid: &str, change: impl FnOnce(&mut Remembered) -> R) -> R {
        let mut inner = self.lock();
        let before = inner.objects.len();
        let result = change(inner.objects.entry(uid.to_owned()).or_default());
        if inner.objects.len() != before {
            self.metrics.set_remembered(inner.objects.len());
        }
        result
    }

    /// Reads what is remembered about `uid`, if anything.
    pub fn read<R>(&self, uid: &str, read: impl FnOnce(&Remembered) -> R) -> Option<R> {
        self.lock().objects.get(uid).map(read)
    }

    /// The last complete AWS pass of `uid` made for `inputs`, however old.
    pub fn last_verified(&self, uid: &str, inputs: &PassInputs) -> Option<Verified> {
        self.read(uid, |r| r.verified.clone())
            .flatten()
            .filter(|v| v.inputs == *inputs)
    }

    /// Remembers how the controller names `uid`.
    pub fn name(&self, uid: &str, object: AppRef) {
        self.update(uid, |r| r.object = Some(object));
    }

    /// Sets the next timed reconcile of `uid` (replacing any other: the
    /// reconcile that just ended decides when to look again).
    pub fn schedule(&self, uid: &str, at: Instant, wake: Wake) {
        let mut inner = self.lock();
        inner.clear_timer(uid);
        let before = inner.objects.len();
        inner.objects.entry(uid.to_owned()).or_default().timer = Some((at, wake));
        inner.queue(wake).insert((at, uid.to_owned()));
        if inner.objects.len() != before {
            self.metrics.set_remembered(inner.objects.len());
        }
    }

    /// When the earliest timer of `wake` is due, if any.
    pub fn next_due(&self, wake: Wake) -> Option<Instant> {
        self.lock().queue(wake).first().map(|(at, _)| *at)
    }

    /// Takes the earliest timer of `wake` that is due at `now`; a resync
    /// also marks its object to read AWS.
    pub fn take_due(&self, wake: Wake, now: Instant) -> Option<Due> {
        let mut inner = self.lock();
        loop {
            let (at, uid) = inner.queue(wake).first().cloned()?;
            if at > now {
                return None;
            }
            inner.queue(wake).remove(&(at, uid.clone()));
            let Some(entry) = inner.objects.get_mut(&uid) else {
                continue;
            };
            entry.timer = None;
            let Some(object) = entry.object.clone() else {
                continue;
            };
            if wake == Wake::Resync {
                entry.reread = Some(
                    entry
                        .reread
                        .map_or(Reread::Resync, |r| r.merge(Reread::Resync)),
                );
            }
            return Some(Due { object, at });
        }
    }

    /// How many objects wait for a resync (due or not).
    pub fn resyncs_scheduled(&self) -> usize {
        self.lock().resyncs.len()
    }

    /// Marks `uid` to read AWS at its next reconcile; returns how the
    /// controller names it, unless a reread was already asked for (a
    /// reconcile is on its way then: bursts coalesce).
    pub fn reread(&self, uid: &str, why: Reread) -> Option<AppRef> {
        let mut inner = self.lock();
        let entry = inner.objects.get_mut(uid)?;
        let first = entry.reread.is_none();
        entry.reread = Some(entry.reread.map_or(why, |r| r.merge(why)));
        entry.object.clone().filter(|_| first)
    }

    /// A change of `uid` seen by the watch, which its reconcile will serve.
    pub fn changed(&self, uid: &str, object: AppRef) {
        self.update(uid, |r| {
            r.object = Some(object);
            r.changed.get_or_insert_with(Instant::now);
        });
    }

    /// Changes seen by the watch whose reconciles have not started, counting
    /// only those younger than `max_age` (a change whose reconcile never
    /// came must not hold the resyncs back for ever).
    pub fn changes_waiting(&self, max_age: Duration) -> usize {
        self.lock()
            .objects
            .values()
            .filter(|r| r.changed.is_some_and(|at| at.elapsed() < max_age))
            .count()
    }

    /// A reconcile of `uid` starts: the change it serves is no longer
    /// waiting; returns why it must read AWS, if it must.
    pub fn begin(&self, uid: &str) -> Option<Reread> {
        let mut inner = self.lock();
        let entry = inner.objects.get_mut(uid)?;
        entry.changed = None;
        entry.reread.take()
    }

    /// Records the physical names of `uid`'s AWS resources, so that a
    /// change event about one of them finds its MovieApp.
    pub fn index(&self, uid: &str, names: Vec<String>) {
        let mut inner = self.lock();
        let Some(entry) = inner.objects.get_mut(uid) else {
            return;
        };
        if entry.resources == names {
            return;
        }
        let old = std::mem::replace(&mut entry.resources, names.clone());
        for name in old {
            if inner.owners.get(&name).is_some_and(|owner| owner == uid) {
                inner.owners.remove(&name);
            }
        }
        for name in names {
            inner.owners.insert(name, uid.to_owned());
        }
    }

    /// The uid of the MovieApp that manages the AWS resource `name`.
    pub fn owner_of(&self, name: &str) -> Option<String> {
        self.lock().owners.get(name).cloned()
    }

    /// Drops everything about `uid`: its entry, its timers, its resources
    /// in the index, and its metrics.
    pub fn forget(&self, uid: &str) {
        let mut inner = self.lock();
        inner.clear_timer(uid);
        if let Some(entry) = inner.objects.remove(uid) {
            for name in entry.resources {
                if inner.owners.get(&name).is_some_and(|owner| owner == uid) {
                    inner.owners.remove(&name);
                }
            }
            self.metrics.set_remembered(inner.objects.len());
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
            .objects
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
        self.lock().objects.len()
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
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

/// The closure the stream of relevant MovieApp changes calls on each: the
/// change waits for its reconcile, and resyncs wait for it.
pub fn note_changes(memory: Arc<Memory>) -> impl FnMut(&DeserializeGuard<MovieApp>) {
    move |app| {
        if let Some(uid) = app.uid() {
            memory.changed(&uid, ObjectRef::from_obj(app));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ObservedCondition;
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
        metrics.set_conditions(
            uid.to_owned(),
            vec![ObservedCondition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: "Available".into(),
            }],
        );
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
