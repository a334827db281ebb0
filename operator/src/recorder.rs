//! Kubernetes Events (`events.k8s.io/v1`) about MovieApps, with a small
//! memory of what was published so that a repeat becomes a count.
//!
//! In place of kube-runtime's `Recorder`, whose cache kept a key and a whole
//! Event for every Event published in the last 6 minutes (about 1.4 KB per
//! slot of a table that doubles as it grows, plus the strings), under a key
//! that includes the object's `resourceVersion`: every status write started
//! new keys, so the six Events of each of 500 MovieApps converging at once
//! all stayed, about 6 MiB of the operator's peak (heaptrack, 12 KB per
//! MovieApp). It also took a second Event of the same reason on the same
//! version for a repeat of the first and kept only the first note
//! ("QueueReady is True" was lost behind "DatabaseReady is True", both
//! `Provisioned`).
//!
//! Here an Event repeats another only when it is the same: same object
//! (uid), type, action, reason and note, within [`REPEAT_WINDOW`]; it then
//! raises the `series` count of the Event already published, as
//! kube-runtime did. Anything else is a new Event, so no message is lost.
//! What is remembered per Event is a hash of that identity, the Event's name
//! and its count: about 100 bytes, dropped after the window.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use serde_json::json;

/// How long a published Event can be counted again instead of published
/// anew (kube-runtime's value).
pub const REPEAT_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// Publishes Events; clones share the memory of recent Events.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    recent: std::sync::Arc<Mutex<Recent>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("reporter", &self.reporter)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            recent: std::sync::Arc::default(),
        }
    }

    /// Publishes `event` about `regarding`: a new Event, or one more count
    /// of the same Event published within [`REPEAT_WINDOW`].
    pub async fn publish(&self, event: &Event, regarding: &ObjectReference) -> kube::Result<()> {
        let now = Timestamp::now();
        let key = identity(event, regarding);
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let repeat = self.lock().repeat(key, now);
        if let Some(repeat) = repeat {
            let patch = json!({
                "series": EventSeries { count: repeat.count, last_observed_time: MicroTime(now) }
            });
            match events
                .patch(&repeat.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                // Gone (the API server's own Event TTL, or deleted): publish
                // it anew below.
                Err(kube::Error::Api(response)) if response.code == 404 => {}
                Err(error) => {
                    self.lock().forget(key);
                    return Err(error);
                }
            }
        }
        let created = self.generate(event, regarding, now);
        let name = created.metadata.name.clone().unwrap_or_default();
        events.create(&PostParams::default(), &created).await?;
        self.lock().published(key, name, now);
        Ok(())
    }

    /// The Event as kube-runtime's `Recorder` wrote it.
    fn generate(&self, event: &Event, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
        K8sEvent {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            note: event.note.clone(),
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!(
                    "{}.{:x}",
                    regarding
                        .name
                        .as_deref()
                        .unwrap_or(&self.reporter.controller),
                    now.as_nanosecond()
                )),
                ..ObjectMeta::default()
            },
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            related: event.secondary.clone(),
            ..K8sEvent::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What makes two Events the same: the object (by uid, not by
/// `resourceVersion`, which every status write changes), the reporter's
/// fields of the Event and its note.
fn identity(event: &Event, regarding: &ObjectReference) -> u64 {
    let mut hasher = DefaultHasher::new();
    match &regarding.uid {
        Some(uid) => uid.hash(&mut hasher),
        None => (&regarding.kind, &regarding.namespace, &regarding.name).hash(&mut hasher),
    }
    event.type_.hash(&mut hasher);
    event.action.hash(&mut hasher);
    event.reason.hash(&mut hasher);
    event.note.hash(&mut hasher);
    event
        .secondary
        .as_ref()
        .map(|s| (&s.kind, &s.namespace, &s.name, &s.uid))
        .hash(&mut hasher);
    hasher.finish()
}

/// One Event published within the window.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Published {
    name: String,
    count: i32,
    last: Timestamp,
}

/// The Events published within [`REPEAT_WINDOW`], by identity.
#[derive(Debug, Default)]
struct Recent {
    entries: HashMap<u64, Published>,
}

/// A repeat to count on the Event `name`.
#[derive(Debug, PartialEq, Eq)]
struct Repeat {
    name: String,
    count: i32,
}

impl Recent {
    /// Drops what is older than the window; the repeat to publish when the
    /// same Event was published within it (its count raised here).
    fn repeat(&mut self, key: u64, now: Timestamp) -> Option<Repeat> {
        self.entries.retain(|_, p| p.last + REPEAT_WINDOW > now);
        // Hundreds of Events at once grew the table; give the room back
        // once they have expired.
        if self.entries.capacity() > 64 && self.entries.len() < self.entries.capacity() / 4 {
            self.entries.shrink_to_fit();
        }
        let published = self.entries.get_mut(&key)?;
        published.count += 1;
        published.last = now;
        Some(Repeat {
            name: published.name.clone(),
            count: published.count,
        })
    }

    fn published(&mut self, key: u64, name: String, now: Timestamp) {
        self.entries.insert(
            key,
            Published {
                name,
                count: 1,
                last: now,
            },
        );
    }

    fn forget(&mut self, key: u64) {
        self.entries.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(reason: &str, note: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: reason.to_owned(),
            note: Some(note.to_owned()),
            action: "Reconcile".to_owned(),
            secondary: None,
        }
    }

    fn shop(resource_version: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("movieapp.io/v1alpha1".to_owned()),
            kind: Some("MovieApp".to_owned()),
            name: Some("shop".to_owned()),
            namespace: Some("team-a".to_owned()),
            uid: Some("7c1d6a0e-0000-4000-8000-000000000001".to_owned()),
            resource_version: Some(resource_version.to_owned()),
            ..ObjectReference::default()
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("a time in range")
    }

    /// Publishes as `Recorder::publish` decides: a repeat or a new entry.
    fn publish(recent: &mut Recent, event: &Event, regarding: &ObjectReference, now: Timestamp) {
        let key = identity(event, regarding);
        if recent.repeat(key, now).is_none() {
            recent.published(key, format!("shop.{}", now.as_second()), now);
        }
    }

    #[test]
    fn a_status_write_between_two_same_events_makes_a_repeat_not_an_entry() {
        let mut recent = Recent::default();
        let stalled = event("AwsError", "Stalled is True: AccessDenied");
        let key = identity(&stalled, &shop("1"));
        publish(&mut recent, &stalled, &shop("1"), at(0));
        // The status write changed the resourceVersion.
        assert_eq!(identity(&stalled, &shop("2")), key);
        assert_eq!(
            recent.repeat(key, at(30)),
            Some(Repeat {
                name: "shop.1800000000".to_owned(),
                count: 2
            })
        );
        assert_eq!(recent.entries.len(), 1);
    }

    #[test]
    fn a_new_note_under_the_same_reason_is_a_new_event() {
        let mut recent = Recent::default();
        let database = event("Provisioned", "DatabaseReady is True: 3 tables provisioned");
        let queue = event("Provisioned", "QueueReady is True: queue provisioned");
        publish(&mut recent, &database, &shop("1"), at(0));
        assert_eq!(recent.repeat(identity(&queue, &shop("1")), at(1)), None);
        let mut warning = database;
        warning.type_ = EventType::Warning;
        assert_ne!(identity(&warning, &shop("1")), identity(&queue, &shop("1")));
        let mut other = shop("1");
        other.uid = Some("7c1d6a0e-0000-4000-8000-000000000002".to_owned());
        assert_ne!(identity(&queue, &other), identity(&queue, &shop("1")));
    }

    #[test]
    fn events_are_forgotten_after_the_window_and_the_table_shrinks() {
        let mut recent = Recent::default();
        // 500 MovieApps converging at once, six Events each.
        for i in 0..500 {
            let mut app = shop("1");
            app.uid = Some(format!("uid-{i}"));
            for reason in [
                "NoBlockers",
                "Resolved",
                "Provisioned",
                "Created",
                "DriftRepaired",
                "Available",
            ] {
                publish(&mut recent, &event(reason, "note"), &app, at(0));
            }
        }
        assert_eq!(recent.entries.len(), 3000);
        let late = at(REPEAT_WINDOW.as_secs() + 1);
        assert_eq!(
            recent.repeat(identity(&event("Available", "note"), &shop("1")), late),
            None
        );
        assert!(recent.entries.is_empty());
        assert!(
            recent.entries.capacity() <= 64,
            "{}",
            recent.entries.capacity()
        );
    }

    #[test]
    fn a_remembered_event_is_small() {
        // The whole of an entry lives in the table but the Event's name:
        // the reason why thousands of them cost little.
        assert!(std::mem::size_of::<(u64, Published)>() <= 64);
    }
}
