//! The one resource path, over a kind that lives in memory: ownership
//! plans, then whole passes with every write logged.

use super::*;
use crate::aws::AwsClients;
use crate::crd::{MovieAppSpec, MovieAppStatus};
use crate::naming::AppId;

fn owner() -> Owner {
    Owner {
        uid: "uid-1".into(),
        namespace: "movies".into(),
        name: "app".into(),
        cluster: "east".into(),
    }
}

/// What a [`Target`] borrows.
struct Parts {
    aws: AwsClients,
    owner: Owner,
    spec: MovieAppSpec,
    /// A MovieApp that had converged (Ready=True at generation 1): a
    /// change found now is drift.
    converged: MovieAppStatus,
}

/// A status with Ready at `generation`.
fn status_ready(status: &str, generation: i64) -> MovieAppStatus {
    MovieAppStatus {
        observed_generation: Some(generation),
        conditions: vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: crate::conditions::kind::READY.into(),
            status: status.into(),
            observed_generation: Some(generation),
            reason: "Test".into(),
            message: String::new(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
        }],
        ..MovieAppStatus::default()
    }
}

impl Parts {
    fn new() -> Self {
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        Self {
            aws: AwsClients::from_config("us-east-1", &config),
            owner: owner(),
            spec: serde_json::from_value(serde_json::json!({})).expect("every field has a default"),
            converged: status_ready("True", 1),
        }
    }

    fn target(&self, adopt: bool) -> Target<'_> {
        Target {
            aws: &self.aws,
            owner: &self.owner,
            id: AppId {
                namespace: "movies",
                name: "app",
            },
            spec: &self.spec,
            adopt,
            previous: Some(&self.converged),
            generation: Some(1),
            mode: Mode::Manage,
            tags: None,
            light: None,
            worker_roles: None,
        }
    }

    /// The target of an ObserveOnly MovieApp.
    fn observing(&self, adopt: bool) -> Target<'_> {
        Target {
            mode: Mode::Observe,
            worker_roles: None,
            ..self.target(adopt)
        }
    }
}

fn with_target<R>(adopt: bool, f: impl FnOnce(&Target<'_>) -> R) -> R {
    f(&Parts::new().target(adopt))
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Every ownership case: the tags found, whether adoption was asked
/// for, and the plan (`Err` = a conflict whose message has this text).
#[test]
fn ownership_plans_follow_the_tags() {
    let o = owner();
    let complete = o.tags();
    let mut retained_here = complete.clone();
    retained_here.insert(tags::UID.into(), "old-uid".into());
    retained_here.insert(tags::RETAINED.into(), "true".into());
    let mut retained_elsewhere = retained_here.clone();
    retained_elsewhere.insert(tags::NAMESPACE.into(), "other".into());
    let mut ours_retained = complete.clone();
    ours_retained.insert(tags::RETAINED.into(), "true".into());
    let partial = tags(&[(tags::UID, "uid-1")]);
    let foreign = tags(&[(tags::UID, "uid-2"), (tags::NAME, "app")]);
    let untagged = tags(&[("team", "data")]);
    // The same namespace and name in another cluster, retained there.
    let mut retained_in_another_cluster = retained_here.clone();
    retained_in_another_cluster.insert(tags::CLUSTER.into(), "west".into());
    // Retained before resources carried the cluster tag.
    let mut retained_before_clusters = retained_here.clone();
    retained_before_clusters.remove(tags::CLUSTER);
    let untagged_of_another_cluster = tags(&[(tags::CLUSTER, "west")]);

    type Expected = Result<Option<Reason>, &'static str>;
    let cases: [(&str, &Tags, bool, Expected); 16] = [
        ("ours", &complete, false, Ok(None)),
        ("ours, adopt", &complete, true, Ok(None)),
        (
            "ours, tags missing",
            &partial,
            false,
            Ok(Some(Reason::DriftRepaired)),
        ),
        (
            "ours, retained marker",
            &ours_retained,
            false,
            Ok(Some(Reason::DriftRepaired)),
        ),
        ("foreign", &foreign, false, Err("uid-2")),
        ("foreign, adopt", &foreign, true, Err("uid-2")),
        (
            "untagged",
            &untagged,
            false,
            Err("movieapp.io/adopt: \"true\""),
        ),
        (
            "untagged, adopt",
            &untagged,
            true,
            Ok(Some(Reason::Adopted)),
        ),
        ("retained here", &retained_here, false, Err("retained")),
        (
            "retained here, adopt",
            &retained_here,
            true,
            Ok(Some(Reason::Adopted)),
        ),
        (
            "retained elsewhere",
            &retained_elsewhere,
            false,
            Err("old-uid"),
        ),
        (
            "retained elsewhere, adopt",
            &retained_elsewhere,
            true,
            Err("old-uid"),
        ),
        (
            "retained here by another cluster, adopt",
            &retained_in_another_cluster,
            true,
            Err("belongs to another cluster (movieapp.io/cluster=west, this operator's is east)"),
        ),
        (
            "retained here before the cluster tag, adopt",
            &retained_before_clusters,
            true,
            Ok(Some(Reason::Adopted)),
        ),
        (
            "no uid, another cluster's tag, adopt",
            &untagged_of_another_cluster,
            true,
            Err("belongs to another cluster"),
        ),
        (
            "ours, made before the cluster tag",
            &tags(&[
                (tags::UID, "uid-1"),
                (tags::NAMESPACE, "movies"),
                (tags::NAME, "app"),
            ]),
            false,
            Ok(Some(Reason::DriftRepaired)),
        ),
    ];
    for (case, found, adopt, expected) in cases {
        with_target(adopt, |t| {
            let plan = ownership(t, "queue q", found);
            match (&plan, expected) {
                (Ok(plan), Ok(reason)) => {
                    assert_eq!(plan.as_ref().map(|(_, n)| n.reason), reason, "{case}");
                }
                (Err(halt), Err(text)) => {
                    assert!(halt.is_conflict(), "{case}: {halt:?}");
                    assert!(halt.message().contains(text), "{case}: {}", halt.message());
                }
                _ => panic!("{case}: {plan:?}"),
            }
        });
    }
}

#[test]
fn tag_changes_add_missing_tags_and_drop_the_retained_marker() {
    let o = owner();
    let complete = o.tags();
    assert!(tag_changes(&o, &complete).is_empty());
    let mut retained = complete.clone();
    retained.insert(tags::RETAINED.into(), "true".into());
    let changes = tag_changes(&o, &retained);
    assert!(changes.set.is_empty());
    assert_eq!(changes.remove, [tags::RETAINED]);
    assert_eq!(tag_changes(&o, &tags(&[("other", "x")])).set, o.tags());
    assert!(is_ours(&o, &complete) && !is_ours(&o, &tags(&[])));
}

/// IAM lets the operator set managed-by or the cluster id on a resource
/// not fully tagged only together (`docs/iam.md`): a repair of one writes
/// both.
#[test]
fn the_managed_by_tag_and_the_cluster_id_are_written_together() {
    let o = owner();
    for key in [tags::MANAGED_BY, tags::CLUSTER] {
        let mut tagged = o.tags();
        tagged.remove(key);
        let set = tag_changes(&o, &tagged).set;
        let keys: Vec<&str> = set.keys().map(String::as_str).collect();
        assert_eq!(keys, [tags::MANAGED_BY, tags::CLUSTER], "without {key}");
        assert_eq!(set[tags::CLUSTER], o.cluster);
    }
    let mut without_name = o.tags();
    without_name.remove(tags::NAME);
    let set = tag_changes(&o, &without_name).set;
    assert_eq!(set.keys().collect::<Vec<_>>(), [tags::NAME]);
}

#[test]
fn retained_tag_is_written_once() {
    assert!(retained_tag(&tags(&[])).is_some());
    assert!(retained_tag(&tags(&[(tags::RETAINED, "true")])).is_none());
}

#[test]
fn notices_tell_spec_changes_from_drift() {
    with_target(false, |t| {
        // Converged at this generation: a change is drift.
        assert_eq!(changed(t, "x".into()).reason, Reason::DriftRepaired);
        // The spec changed since.
        let edited = Target {
            generation: Some(2),
            ..*t
        };
        assert_eq!(changed(&edited, "x".into()).reason, Reason::Updated);
        // A new MovieApp: no status yet, or one that was never Ready (a
        // table's settings, set once it is active, are part of making it).
        let new = Target {
            previous: None,
            ..*t
        };
        assert_eq!(changed(&new, "x".into()).reason, Reason::Updated);
        let making = MovieAppStatus {
            observed_generation: Some(1),
            ..MovieAppStatus::default()
        };
        let first_passes = Target {
            previous: Some(&making),
            ..*t
        };
        assert_eq!(changed(&first_passes, "x".into()).reason, Reason::Updated);
        let not_ready = status_ready("False", 1);
        let progressing = Target {
            previous: Some(&not_ready),
            ..*t
        };
        assert_eq!(changed(&progressing, "x".into()).reason, Reason::Updated);
        let removed = notice(t, Effect::Removed("gone".into()));
        assert_eq!(removed, Notice::new(Reason::Deleted, "gone"));
    });
    assert_eq!(created(false, "t").reason, Reason::Created);
    assert_eq!(created(true, "t").reason, Reason::Recreated);
}

// ------------------------------------------------------------------ the path

/// A kind whose one resource lives in memory: a number that `plan`
/// moves one step at a time towards the declared one (a negative one
/// can never be reached), with every write logged.
#[derive(Debug, Default)]
struct Counter {
    resource: std::sync::Mutex<Option<(Tags, i32)>>,
    writes: std::sync::Mutex<Vec<String>>,
}

impl Counter {
    fn existing(tags: Tags, value: i32) -> Self {
        let counter = Self::default();
        *counter.resource.lock().expect("lock") = Some((tags, value));
        counter
    }

    fn write(&self, what: String, change: impl FnOnce(&mut Option<(Tags, i32)>)) {
        change(&mut self.resource.lock().expect("lock"));
        self.writes.lock().expect("lock").push(what);
    }

    fn writes(&self) -> Vec<String> {
        self.writes.lock().expect("lock").clone()
    }

    fn read(&self) -> Option<(Tags, i32)> {
        self.resource.lock().expect("lock").clone()
    }
}

impl Kind for Counter {
    type Id = &'static str;
    type Desired = i32;
    type Found = ();
    type Actual = i32;
    type Change = i32;
    const MAX_CHANGES_PER_PASS: usize = 2;

    fn what(id: &&'static str) -> String {
        format!("counter {id}")
    }

    async fn find(&self, _: &&'static str) -> Result<Option<()>, Halt> {
        Ok(self.read().map(|_| ()))
    }

    async fn tags(&self, _: &()) -> Result<Option<Tags>, AwsError> {
        Ok(self.read().map(|(tags, _)| tags))
    }

    async fn observe(&self, _: &(), _: &i32) -> Result<i32, Halt> {
        Ok(self.read().map_or(0, |(_, value)| value))
    }

    fn plan(desired: &i32, actual: &i32) -> Result<Option<i32>, Halt> {
        if *desired < 0 {
            return Err(Halt::blocked(
                Reason::IncompatibleTable,
                "cannot go below 0",
            ));
        }
        Ok((actual != desired).then(|| actual + (desired - actual).signum()))
    }

    fn effect(what: &str, change: &i32) -> Effect {
        Effect::Changed(format!("{what}: set to {change}"))
    }

    fn assume(_: &i32, _: &i32, change: &i32) -> Option<i32> {
        Some(*change)
    }

    async fn create(&self, _: &&'static str, desired: &i32, tags: &Tags) -> Result<(), Halt> {
        self.write(format!("create {desired}"), |r| {
            *r = Some((tags.clone(), *desired))
        });
        Ok(())
    }

    async fn tag(&self, _: &(), tags: &Tags) -> Result<(), AwsError> {
        let keys: Vec<&String> = tags.keys().collect();
        self.write(format!("tag {keys:?}"), |r| {
            if let Some((existing, _)) = r {
                existing.extend(tags.clone());
            }
        });
        Ok(())
    }

    async fn untag(&self, _: &(), keys: &[String]) -> Result<(), AwsError> {
        self.write(format!("untag {keys:?}"), |r| {
            if let Some((existing, _)) = r {
                existing.retain(|k, _| !keys.contains(k));
            }
        });
        Ok(())
    }

    async fn act(&self, _: &(), _: &i32, _: i32, change: &i32) -> Result<i32, Halt> {
        self.write(format!("set {change}"), |r| {
            if let Some((_, value)) = r {
                *value = *change;
            }
        });
        Ok(*change)
    }

    async fn delete(&self, _: &()) -> Result<Deletion, AwsError> {
        self.write("delete".to_owned(), |r| *r = None);
        Ok(Deletion::Started)
    }
}

/// The counter `c`, declared at `desired`.
fn declared(desired: &i32, recorded: bool) -> Declared<'_, Counter> {
    Declared {
        id: &"c",
        desired,
        recorded,
    }
}

fn reasons(notices: &[Notice]) -> Vec<Reason> {
    notices.iter().map(|n| n.reason).collect()
}

#[tokio::test]
async fn a_missing_resource_is_created_with_the_ownership_tags() {
    let parts = Parts::new();
    let counter = Counter::default();
    let outcome = ensure(&counter, &parts.target(false), declared(&1, false)).await;
    assert!(outcome.result.is_ok(), "{outcome:?}");
    assert_eq!(reasons(&outcome.notices), [Reason::Created]);
    assert_eq!(counter.writes(), ["create 1"]);
    assert_eq!(counter.read(), Some((parts.owner.tags(), 1)));
    let recreated = ensure(
        &Counter::default(),
        &parts.target(false),
        declared(&1, true),
    )
    .await;
    assert_eq!(reasons(&recreated.notices), [Reason::Recreated]);
}

#[tokio::test]
async fn changes_are_applied_one_at_a_time_up_to_the_bound() {
    let parts = Parts::new();
    let counter = Counter::existing(parts.owner.tags(), 0);
    let outcome = ensure(&counter, &parts.target(false), declared(&3, false)).await;
    let Err(stopped) = outcome.result else {
        panic!("three steps exceed the bound of two: {outcome:?}");
    };
    assert!(stopped.value.is_some(), "the resource is known");
    assert!(stopped.halt.message().contains("more changes follow"));
    assert_eq!(counter.writes(), ["set 1", "set 2"]);
    assert_eq!(
        reasons(&outcome.notices),
        [Reason::DriftRepaired, Reason::DriftRepaired]
    );
    assert_eq!(outcome.notices[1].message, "counter c: set to 2");
    // The next pass finishes; the one after writes nothing.
    let next = ensure(&counter, &parts.target(false), declared(&3, false)).await;
    assert!(next.result.is_ok() && next.notices.len() == 1);
    let steady = ensure(&counter, &parts.target(false), declared(&3, false)).await;
    assert!(steady.result.is_ok() && steady.notices.is_empty());
    assert_eq!(counter.writes().len(), 3);
}

#[tokio::test]
async fn what_can_never_match_is_blocked_with_the_resource_named() {
    let parts = Parts::new();
    let counter = Counter::existing(parts.owner.tags(), 0);
    let outcome = ensure(&counter, &parts.target(false), declared(&-1, false)).await;
    let Err(stopped) = outcome.result else {
        panic!("{outcome:?}");
    };
    assert_eq!(stopped.halt.message(), "counter c: cannot go below 0");
    assert!(counter.writes().is_empty());
}

#[tokio::test]
async fn a_foreign_resource_is_never_written() {
    let parts = Parts::new();
    let foreign = tags(&[(tags::UID, "uid-2")]);
    for adopt in [false, true] {
        let counter = Counter::existing(foreign.clone(), 0);
        let target = parts.target(adopt);
        let outcome = ensure(&counter, &target, declared(&3, false)).await;
        assert!(matches!(&outcome.result, Err(s) if s.halt.is_conflict()));
        assert_eq!(delete(&counter, &target, &"c").await.ok(), Some(None));
        assert!(retain(&counter, &target, &"c").await.is_ok());
        assert!(counter.writes().is_empty(), "{:?}", counter.writes());
    }
}

#[tokio::test]
async fn adoption_tags_before_it_untags_then_settles() {
    let parts = Parts::new();
    let mut retained = parts.owner.tags();
    retained.insert(tags::UID.into(), "old-uid".into());
    retained.insert(tags::RETAINED.into(), "true".into());
    let counter = Counter::existing(retained, 0);
    let outcome = ensure(&counter, &parts.target(true), declared(&1, false)).await;
    assert!(outcome.result.is_ok(), "{outcome:?}");
    assert_eq!(
        reasons(&outcome.notices),
        [Reason::Adopted, Reason::DriftRepaired]
    );
    assert_eq!(
        counter.writes(),
        [
            format!("tag {:?}", [tags::UID]),
            format!("untag {:?}", [tags::RETAINED]),
            "set 1".to_owned()
        ]
    );
    assert_eq!(counter.read(), Some((parts.owner.tags(), 1)));
}

#[tokio::test]
async fn deletion_and_retention_touch_only_what_is_ours() {
    let parts = Parts::new();
    let target = parts.target(false);
    let counter = Counter::existing(parts.owner.tags(), 0);
    assert!(
        retain(&counter, &target, &"c")
            .await
            .is_ok_and(|f| f.is_some())
    );
    assert!(retain(&counter, &target, &"c").await.is_ok());
    let mut retained = parts.owner.tags();
    retained.insert(tags::RETAINED.into(), "true".into());
    assert_eq!(counter.read(), Some((retained, 0)));
    assert_eq!(
        delete(&counter, &target, &"c").await.ok(),
        Some(Some("counter c is being deleted".to_owned()))
    );
    assert_eq!(delete(&counter, &target, &"c").await.ok(), Some(None));
    assert_eq!(
        counter.writes(),
        [format!("tag {:?}", [tags::RETAINED]), "delete".to_owned()]
    );
}

// ------------------------------------------------------------------ observe only

fn messages(notices: &[Notice]) -> Vec<&str> {
    notices.iter().map(|n| n.message.as_str()).collect()
}

#[tokio::test]
async fn observing_a_missing_resource_reports_it_and_creates_nothing() {
    let parts = Parts::new();
    let counter = Counter::default();
    let outcome = ensure(&counter, &parts.observing(false), declared(&1, false)).await;
    let Err(stopped) = &outcome.result else {
        panic!("a missing resource is not ready: {outcome:?}");
    };
    assert_eq!(stopped.halt.message(), "counter c does not exist");
    assert!(stopped.value.is_none());
    assert_eq!(messages(&outcome.notices), ["counter c does not exist"]);
    assert!(outcome.notices.iter().all(Notice::is_difference));
    assert!(counter.writes().is_empty(), "{:?}", counter.writes());
}

/// An untagged resource is observed all the same, and every planned change
/// is listed (the plan moves one step at a time, beyond the per-pass bound
/// of two), not only the first.
#[tokio::test]
async fn observing_an_untagged_resource_lists_ownership_and_every_change() {
    let parts = Parts::new();
    for (adopt, ownership) in [
        (false, "without the movieapp.io ownership tags"),
        (true, "with managementPolicy Full it is adopted"),
    ] {
        let counter = Counter::existing(tags(&[("team", "data")]), 0);
        let outcome = ensure(&counter, &parts.observing(adopt), declared(&3, false)).await;
        assert!(
            outcome.result.is_ok(),
            "it exists and was read: {outcome:?}"
        );
        let listed = messages(&outcome.notices);
        assert_eq!(listed.len(), 4, "{listed:?}");
        assert!(listed[0].contains(ownership), "{listed:?}");
        assert_eq!(
            listed[1..],
            [
                "counter c: set to 1",
                "counter c: set to 2",
                "counter c: set to 3"
            ]
        );
        assert!(counter.writes().is_empty(), "{:?}", counter.writes());
    }
}

#[tokio::test]
async fn observing_reports_foreign_owners_tags_and_what_can_never_match() {
    let parts = Parts::new();
    let foreign = Counter::existing(tags(&[(tags::UID, "uid-2")]), 3);
    let outcome = ensure(&foreign, &parts.observing(true), declared(&3, false)).await;
    assert_eq!(outcome.notices.len(), 1, "{:?}", outcome.notices);
    assert!(
        outcome.notices[0]
            .message
            .contains("belongs to another MovieApp (movieapp.io/uid=uid-2)")
    );

    let partial = Counter::existing(tags(&[(tags::UID, "uid-1")]), 3);
    let outcome = ensure(&partial, &parts.observing(false), declared(&3, false)).await;
    assert_eq!(outcome.notices.len(), 1, "{:?}", outcome.notices);
    assert!(
        outcome.notices[0]
            .message
            .starts_with("counter c: ownership tags to restore: ")
    );

    let ours = Counter::existing(parts.owner.tags(), 0);
    let outcome = ensure(&ours, &parts.observing(false), declared(&-1, false)).await;
    assert_eq!(messages(&outcome.notices), ["counter c: cannot go below 0"]);

    let matching = Counter::existing(parts.owner.tags(), 3);
    let outcome = ensure(&matching, &parts.observing(false), declared(&3, false)).await;
    assert!(
        outcome.result.is_ok() && outcome.notices.is_empty(),
        "{outcome:?}"
    );
    for counter in [foreign, partial, ours, matching] {
        assert!(counter.writes().is_empty(), "{:?}", counter.writes());
    }
}
