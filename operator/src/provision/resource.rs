//! One path for every kind of AWS resource a MovieApp owns.
//!
//! A kind ([`Kind`]: a DynamoDB table, an SQS queue, an SNS topic) says how
//! to read, create, tag, change and delete one resource of its service. This
//! module is the one place that decides what to do with them, in three
//! stages:
//!
//! - **observe** (reads only): [`Kind::find`] the resource by its
//!   deterministic name, read its ownership [`Kind::tags`], then its settings
//!   ([`Kind::observe`]);
//! - **plan** (pure): whether it may be touched at all ([`ownership`]: ours,
//!   adoptable, or someone else's), which tags to repair, and the next
//!   settings change ([`Kind::plan`]);
//! - **act** (writes): create it with the ownership tags in the same call,
//!   write tags (set before unset, so ownership is never missing in
//!   between), apply a change ([`Kind::act`]), delete it.
//!
//! [`ensure`] is [`claim`] (find, check the owner, create or repair tags)
//! then [`settle`] (observe, plan, act until nothing differs); [`delete`] and
//! [`retain`] touch only what carries this MovieApp's uid.
//!
//! In [`Mode::Observe`] (`managementPolicy: ObserveOnly`) the same two run
//! their observe and plan stages and stop there: what `act` would do is
//! reported as differences (a missing resource, ownership tags, every
//! planned settings change, each predicted by [`Kind::assume`]), and the
//! resource is observed whoever owns it, since reading takes nothing over.

use std::collections::BTreeMap;
use std::future::Future;

use super::common::Halt;
use super::{Mode, Notice, Observed, Target};
use crate::aws::AwsError;
use crate::aws::tagging::Snapshot;
use crate::aws::tags::{self, Owner};
use crate::reason::Reason;

/// The annotation that lets a MovieApp take over existing resources (read by
/// the reconciler into [`Target::adopt`]; named here for messages).
const ADOPT_ANNOTATION: &str = "movieapp.io/adopt";

/// A resource's tags, by key.
pub type Tags = BTreeMap<String, String>;

/// One kind of AWS resource: what the one path of this module needs to know
/// about its service. Implemented once per kind, in the kind's own file.
pub trait Kind: Sync {
    /// What names one resource: its physical name, and what the status
    /// recorded of it (a queue URL saves a lookup).
    type Id: Sync;
    /// Its declared settings.
    type Desired: Sync;
    /// An existing resource: its address (ARN, URL) and what finding it read.
    type Found: Send + Sync;
    /// Its settings as AWS reports them.
    type Actual: Send;
    /// One write that brings the settings closer to the declared ones.
    type Change: Send + Sync;

    /// How many changes one pass applies before leaving the rest to the
    /// next reconcile, so that a pass stays short.
    const MAX_CHANGES_PER_PASS: usize;

    /// The resource for messages, e.g. `SQS queue movieapp-...-jobs`.
    fn what(id: &Self::Id) -> String;

    // ---------------------------------------------------------------- observe

    /// The resource with this name, `None` when there is none. A `Halt`
    /// when it exists but cannot be used yet (no ARN while being created).
    fn find(&self, id: &Self::Id)
    -> impl Future<Output = Result<Option<Self::Found>, Halt>> + Send;

    /// Its tags; `None` when it is gone (for kinds found without a request,
    /// this is the existence check).
    fn tags(
        &self,
        found: &Self::Found,
    ) -> impl Future<Output = Result<Option<Tags>, AwsError>> + Send;

    /// The resource's ARN once [`Kind::find`] proved it exists: a region's
    /// ownership tag snapshot may then stand in for [`Kind::tags`]. `None`
    /// for kinds whose tag read is the existence check.
    fn arn(_found: &Self::Found) -> Option<&str> {
        None
    }

    /// In a light pass: the resource and its tags as the region's snapshot
    /// lists them, for kinds whose [`Kind::find`] reads only settings a
    /// light pass keeps ([`Kind::LIGHT_KEEPS_SETTINGS`]). `None`: found as usual.
    fn find_listed(&self, _id: &Self::Id, _snapshot: &Snapshot) -> Option<(Self::Found, Tags)> {
        None
    }

    /// Whether the operator is the only writer of its settings, which a
    /// light pass ([`super::Target::light`]) then does not read: AWS change
    /// events report their changes, and a complete pass reads them at
    /// least every `--full-verification-interval`.
    const LIGHT_KEEPS_SETTINGS: bool = false;

    /// Its settings, with whatever further reads that takes.
    fn observe(
        &self,
        found: &Self::Found,
        desired: &Self::Desired,
    ) -> impl Future<Output = Result<Self::Actual, Halt>> + Send;

    /// Whether AWS is already deleting it (deletion then only waits).
    fn being_deleted(_found: &Self::Found) -> bool {
        false
    }

    /// What a person checking on the resource looks at first (a table's
    /// status, a queue's messages), for `kubectl movieapp status`; `None`
    /// when the kind has nothing beyond existing.
    fn live_status(_found: &Self::Found) -> Option<LiveStatus> {
        None
    }

    // ---------------------------------------------------------------- plan

    /// The next change, `None` when the settings are as declared, a `Halt`
    /// when nothing may change now (the resource is busy) or ever (it is
    /// incompatible); its message follows the resource's name. Pure.
    fn plan(desired: &Self::Desired, actual: &Self::Actual) -> Result<Option<Self::Change>, Halt>;

    /// What a change does, for its Event; `what` is [`Kind::what`].
    fn effect(what: &str, change: &Self::Change) -> Effect;

    /// The settings as they would be after `change`, so that [`Mode::Observe`]
    /// can plan on and list every change, not only the first. `None` when
    /// the outcome cannot be predicted: the list then ends at that change.
    /// Pure.
    fn assume(
        desired: &Self::Desired,
        actual: &Self::Actual,
        change: &Self::Change,
    ) -> Option<Self::Actual>;

    // ---------------------------------------------------------------- act

    /// Creates the resource with its declared settings and `tags` in one
    /// request, so that it never exists untagged.
    fn create(
        &self,
        id: &Self::Id,
        desired: &Self::Desired,
        tags: &Tags,
    ) -> impl Future<Output = Result<Self::Found, Halt>> + Send;

    /// Sets these tags.
    fn tag(
        &self,
        found: &Self::Found,
        tags: &Tags,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// Removes these tag keys.
    fn untag(
        &self,
        found: &Self::Found,
        keys: &[String],
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// Applies one change; returns the settings as they are after it.
    fn act(
        &self,
        found: &Self::Found,
        desired: &Self::Desired,
        actual: Self::Actual,
        change: &Self::Change,
    ) -> impl Future<Output = Result<Self::Actual, Halt>> + Send;

    /// Deletes the resource (after whatever must go first). A "not found"
    /// error means it is gone.
    fn delete(
        &self,
        found: &Self::Found,
    ) -> impl Future<Output = Result<Deletion, AwsError>> + Send;
}

/// A resource's state as AWS reports it ([`Kind::live_status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveStatus {
    /// As AWS words it, e.g. `ACTIVE`, `UPDATING`, `3 messages`.
    pub text: String,
    /// Whether the resource is usable as it is (a table being created or
    /// updated is not).
    pub settled: bool,
}

/// What a change does, for its Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A setting written: `Updated` after a spec change, `DriftRepaired`
    /// when the resource was changed outside the operator.
    Changed(String),
    /// Something made (a subscription): `Created`, or `Recreated` when the
    /// status recorded it.
    Created { what: String, recorded: bool },
    /// Something removed that the spec no longer declares (`Deleted`).
    Removed(String),
}

/// How a delete request went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletion {
    /// AWS accepted it; the resource goes (at once or in a while).
    Started,
    /// Not possible yet; the message says what it waits for.
    NotYet(String),
}

/// What one pass over a resource came to, and what is worth an Event.
#[derive(Debug)]
pub struct Outcome<T> {
    pub result: Result<T, Stopped<T>>,
    pub notices: Vec<Notice>,
}

/// A pass that stopped short of ready.
#[derive(Debug)]
pub struct Stopped<T> {
    pub halt: Halt,
    /// The resource, when it exists and is ours (a table being created has
    /// its ARN already).
    pub value: Option<T>,
}

impl<T> Outcome<T> {
    fn done(value: T, notices: Vec<Notice>) -> Self {
        Self {
            result: Ok(value),
            notices,
        }
    }

    fn stopped(halt: impl Into<Halt>, value: Option<T>, notices: Vec<Notice>) -> Self {
        Self {
            result: Err(Stopped {
                halt: halt.into(),
                value,
            }),
            notices,
        }
    }

    /// The part as it stands, with `status` made from the resource.
    pub fn observed<U>(self, status: impl FnOnce(T) -> U) -> Observed<U> {
        match self.result {
            Ok(value) => Observed::ready(status(value), self.notices),
            Err(Stopped { halt, value }) => halt.observed(value.map(status), self.notices),
        }
    }
}

/// One resource as the MovieApp declares it.
pub struct Declared<'a, K: Kind> {
    pub id: &'a K::Id,
    pub desired: &'a K::Desired,
    /// The status knew this resource: a missing one is then `Recreated`,
    /// not `Created`.
    pub recorded: bool,
}

// Not derived: a derive would ask `K` itself to be `Clone` and `Copy`.
impl<K: Kind> Clone for Declared<'_, K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K: Kind> Copy for Declared<'_, K> {}

// Not derived: a kind's ids and settings need not be `Debug`.
impl<K: Kind> std::fmt::Debug for Declared<'_, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Declared")
            .field("recorded", &self.recorded)
            .finish_non_exhaustive()
    }
}

/// Makes the resource exist, be ours and carry the declared settings:
/// [`claim`], then [`settle`].
pub async fn ensure<K: Kind>(
    kind: &K,
    target: &Target<'_>,
    declared: Declared<'_, K>,
) -> Outcome<K::Found> {
    let claimed = claim(kind, target, declared).await;
    let mut notices = claimed.notices;
    let found = match claimed.result {
        Ok(found) => found,
        Err(stopped) => return Outcome::stopped(stopped.halt, stopped.value, notices),
    };
    if target.light.is_some() && K::LIGHT_KEEPS_SETTINGS {
        return Outcome::done(found, notices);
    }
    let settled = settle(kind, target, declared.id, &found, declared.desired).await;
    notices.extend(settled.notices);
    match settled.result {
        Ok(_) => Outcome::done(found, notices),
        Err(stopped) => Outcome::stopped(stopped.halt, Some(found), notices),
    }
}

/// Makes the resource exist and be ours: finds it, checks its owner and
/// repairs its tags (or adopts it, when asked), or creates it.
pub async fn claim<K: Kind>(
    kind: &K,
    target: &Target<'_>,
    declared: Declared<'_, K>,
) -> Outcome<K::Found> {
    let what = K::what(declared.id);
    let existing = match find_with_tags_for(kind, target, declared.id).await {
        Ok(existing) => existing,
        Err(halt) => return Outcome::stopped(halt, None, Vec::new()),
    };
    let Some((found, tags)) = existing else {
        if target.mode == Mode::Observe {
            let missing = format!("{what} does not exist");
            let halt = Halt::progressing(Reason::Drifted, missing.clone());
            return Outcome::stopped(halt, None, vec![Notice::difference(missing)]);
        }
        let tags = target.owner.tags();
        return match kind.create(declared.id, declared.desired, &tags).await {
            Ok(found) => Outcome::done(found, vec![created(declared.recorded, &what)]),
            Err(halt) => Outcome::stopped(halt, None, Vec::new()),
        };
    };
    if target.mode == Mode::Observe {
        let difference = ownership_difference(target, &what, &tags);
        return Outcome::done(found, difference.into_iter().collect());
    }
    match ownership(target, &what, &tags) {
        Err(halt) => Outcome::stopped(halt, None, Vec::new()),
        Ok(None) => Outcome::done(found, Vec::new()),
        Ok(Some((changes, notice))) => match write_tags(kind, &found, &changes).await {
            Ok(()) => Outcome::done(found, vec![notice]),
            Err(error) => Outcome::stopped(error, None, Vec::new()),
        },
    }
}

/// Brings the settings of a resource that is ours to the declared ones, one
/// planned change at a time; returns the settings as they end up.
pub async fn settle<K: Kind>(
    kind: &K,
    target: &Target<'_>,
    id: &K::Id,
    found: &K::Found,
    desired: &K::Desired,
) -> Outcome<K::Actual> {
    let what = K::what(id);
    let mut notices = Vec::new();
    let mut actual = match kind.observe(found, desired).await {
        Ok(actual) => actual,
        Err(halt) => return Outcome::stopped(halt, None, notices),
    };
    if target.mode == Mode::Observe {
        let differences = planned::<K>(&what, desired, &actual);
        return Outcome::done(actual, differences);
    }
    let mut applied = 0;
    loop {
        let change = match K::plan(desired, &actual) {
            Ok(None) => return Outcome::done(actual, notices),
            Ok(Some(_)) if applied == K::MAX_CHANGES_PER_PASS => {
                let more = Halt::progressing(
                    Reason::Updating,
                    format!("{what}: more changes follow at the next reconcile"),
                );
                return Outcome::stopped(more, None, notices);
            }
            Ok(Some(change)) => change,
            Err(halt) => return Outcome::stopped(halt.about(&what), None, notices),
        };
        actual = match kind.act(found, desired, actual, &change).await {
            Ok(actual) => actual,
            Err(halt) => return Outcome::stopped(halt, None, notices),
        };
        applied += 1;
        notices.push(notice(target, K::effect(&what, &change)));
    }
}

/// How many planned changes [`planned`] lists for one resource at most.
const MAX_LISTED_CHANGES: usize = 32;

/// Every change the plan holds for `actual`, as differences: the plan's next
/// change, then the next one on the settings [`Kind::assume`] predicts, until
/// nothing differs. A plan that cannot go on (the resource is busy, or can
/// never match) ends the list with why. Pure.
pub fn planned<K: Kind>(what: &str, desired: &K::Desired, actual: &K::Actual) -> Vec<Notice> {
    let mut differences = Vec::new();
    let mut predicted: Option<K::Actual> = None;
    for _ in 0..MAX_LISTED_CHANGES {
        let current = predicted.as_ref().unwrap_or(actual);
        match K::plan(desired, current) {
            Ok(None) => break,
            Ok(Some(change)) => {
                differences.push(Notice::difference(match K::effect(what, &change) {
                    Effect::Changed(message) | Effect::Removed(message) => message,
                    Effect::Created { what, .. } => format!("{what} is missing"),
                }));
                match K::assume(desired, current, &change) {
                    Some(next) => predicted = Some(next),
                    None => break,
                }
            }
            Err(halt) => {
                differences.push(Notice::difference(halt.about(what).message()));
                break;
            }
        }
    }
    differences
}

/// Deletes the resource if it is ours. `Ok(None)`: gone (or never ours to
/// delete); `Ok(Some(message))`: deletion under way, look again.
pub async fn delete<K: Kind>(
    kind: &K,
    target: &Target<'_>,
    id: &K::Id,
) -> Result<Option<String>, AwsError> {
    let what = K::what(id);
    let found = match kind.find(id).await {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(None),
        Err(Halt::State(state)) => return Ok(Some(state.message().to_owned())),
        Err(Halt::Aws(error)) => return Err(error),
    };
    if K::being_deleted(&found) {
        return Ok(Some(format!("{what} is being deleted")));
    }
    let Some(tags) = kind.tags(&found).await? else {
        return Ok(None);
    };
    if !is_ours(target.owner, &tags) {
        return Ok(None);
    }
    match kind.delete(&found).await {
        Ok(Deletion::Started) => Ok(Some(format!("{what} is being deleted"))),
        Ok(Deletion::NotYet(message)) => Ok(Some(message)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error),
    }
}

/// Tags the resource `movieapp.io/retained=true` if it is ours; returns it
/// when it exists.
pub async fn retain<K: Kind>(
    kind: &K,
    target: &Target<'_>,
    id: &K::Id,
) -> Result<Option<K::Found>, AwsError> {
    let found = match kind.find(id).await {
        Ok(Some(found)) => found,
        Ok(None) | Err(Halt::State(_)) => return Ok(None),
        Err(Halt::Aws(error)) => return Err(error),
    };
    let Some(tags) = kind.tags(&found).await? else {
        return Ok(None);
    };
    if is_ours(target.owner, &tags)
        && let Some((key, value)) = retained_tag(&tags)
    {
        kind.tag(&found, &Tags::from([(key, value)])).await?;
    }
    Ok(Some(found))
}

/// The resource and its tags, when it exists: the reads every pass starts
/// with, and all that `kubectl movieapp status` reads of it.
pub async fn find_with_tags<K: Kind>(
    kind: &K,
    id: &K::Id,
) -> Result<Option<(K::Found, Tags)>, Halt> {
    let Some(found) = kind.find(id).await? else {
        return Ok(None);
    };
    // Gone between the two reads: as if never found.
    Ok(kind.tags(&found).await?.map(|tags| (found, tags)))
}

/// As [`find_with_tags`], with the tags from the region's snapshot where
/// `target` has one that lists the resource (a light pass also finds there
/// what it does not read settings of).
async fn find_with_tags_for<K: Kind>(
    kind: &K,
    target: &Target<'_>,
    id: &K::Id,
) -> Result<Option<(K::Found, Tags)>, Halt> {
    if target.light.is_some()
        && let Some(listed) = target.tags.and_then(|s| kind.find_listed(id, s))
    {
        return Ok(Some(listed));
    }
    let Some(found) = kind.find(id).await? else {
        return Ok(None);
    };
    let listed = target
        .tags
        .and_then(|snapshot| K::arn(&found).and_then(|arn| snapshot.tags(arn)));
    if let Some(tags) = listed {
        let tags = tags.clone();
        return Ok(Some((found, tags)));
    }
    // Gone between the two reads: as if never found.
    Ok(kind.tags(&found).await?.map(|tags| (found, tags)))
}

/// Tag before untag: ownership is never missing in between.
async fn write_tags<K: Kind>(
    kind: &K,
    found: &K::Found,
    changes: &TagChanges,
) -> Result<(), AwsError> {
    if !changes.set.is_empty() {
        kind.tag(found, &changes.set).await?;
    }
    if !changes.remove.is_empty() {
        kind.untag(found, &changes.remove).await?;
    }
    Ok(())
}

// ------------------------------------------------------------------ ownership

/// What may be done with an existing resource that has our physical name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Tagged with our uid.
    Ours,
    /// Not ours yet, but the MovieApp asked to adopt it: tag it, then manage it.
    Adopt,
    /// Someone else's, or untagged without the adopt annotation: never touched.
    Conflict(String),
}

/// Decides whether `target` may manage the resource `what` (e.g. `DynamoDB
/// table movieapp-...-users`) that carries `tags`.
///
/// Besides untagged resources, adoption also takes over a resource retained
/// by a deleted MovieApp of the same namespace and name (`retained=true`):
/// re-creating a MovieApp after `deletionPolicy: Retain` is the usual way to
/// get its data back. A live foreign owner's resource is never adopted, nor
/// is one tagged for another cluster (`movieapp.io/cluster`): the same
/// namespace and name in another cluster is another application.
pub fn claim_of(target: &Target<'_>, what: &str, tags: &Tags) -> Claim {
    let owner = target.owner;
    let ownership = owner.ownership(borrowed(tags));
    if ownership != tags::Ownership::Ours
        && let Some(cluster) = owner.other_cluster(borrowed(tags))
    {
        return Claim::Conflict(format!(
            "{what} belongs to another cluster ({}={cluster}, this operator's is {}); \
             it is never adopted, modified or deleted",
            tags::CLUSTER,
            owner.cluster
        ));
    }
    match ownership {
        tags::Ownership::Ours => Claim::Ours,
        tags::Ownership::Untagged if target.adopt => Claim::Adopt,
        tags::Ownership::Untagged => Claim::Conflict(format!(
            "{what} already exists without the movieapp.io ownership tags, so it is left untouched; \
             to let this MovieApp take it over, annotate the MovieApp with {ADOPT_ANNOTATION}: \"true\""
        )),
        tags::Ownership::Foreign { uid } => {
            let retained_here = tags.get(tags::RETAINED).is_some_and(|v| v == "true")
                && tags.get(tags::NAMESPACE) == Some(&owner.namespace)
                && tags.get(tags::NAME) == Some(&owner.name);
            if retained_here && target.adopt {
                Claim::Adopt
            } else if retained_here {
                Claim::Conflict(format!(
                    "{what} was retained by a deleted MovieApp of the same name ({}={uid}), so it is left untouched; \
                     to take it over, annotate this MovieApp with {ADOPT_ANNOTATION}: \"true\"",
                    tags::UID
                ))
            } else {
                Claim::Conflict(format!(
                    "{what} belongs to another MovieApp ({}={uid}); it is never modified or deleted",
                    tags::UID
                ))
            }
        }
    }
}

/// The ownership plan for an existing resource: nothing to do, the tag
/// writes to make (with their Event: adopted, or tags restored), or a
/// `NameConflict` that leaves it untouched. Pure.
pub fn ownership(
    target: &Target<'_>,
    what: &str,
    tags: &Tags,
) -> Result<Option<(TagChanges, Notice)>, Halt> {
    let changes = tag_changes(target.owner, tags);
    match claim_of(target, what, tags) {
        Claim::Conflict(message) => Err(Halt::blocked(Reason::NameConflict, message)),
        Claim::Adopt => Ok(Some((changes, adopted(what)))),
        Claim::Ours if changes.is_empty() => Ok(None),
        Claim::Ours => {
            let notice = changed(
                target,
                format!("{what}: restored tags {}", changes.describe()),
            );
            Ok(Some((changes, notice)))
        }
    }
}

/// How the ownership of an existing resource differs from what [`claim`]
/// would make of it, as a difference ([`Mode::Observe`]); `None` when it is
/// ours and fully tagged. Pure.
pub fn ownership_difference(target: &Target<'_>, what: &str, tags: &Tags) -> Option<Notice> {
    let message = match claim_of(target, what, tags) {
        Claim::Ours => {
            let changes = tag_changes(target.owner, tags);
            if changes.is_empty() {
                return None;
            }
            format!("{what}: ownership tags to restore: {}", changes.describe())
        }
        Claim::Adopt => format!(
            "{what} is not tagged as this MovieApp's; with managementPolicy Full it is adopted \
             ({ADOPT_ANNOTATION} is \"true\")"
        ),
        Claim::Conflict(message) => message,
    };
    Some(Notice::difference(message))
}

/// Whether the resource carries `owner`'s uid: the only resources that
/// deletion and retention touch.
pub fn is_ours(owner: &Owner, tags: &Tags) -> bool {
    owner.ownership(borrowed(tags)) == tags::Ownership::Ours
}

fn borrowed(tags: &Tags) -> impl Iterator<Item = (&str, &str)> {
    tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

/// The tag writes that make a resource carry exactly our ownership tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagChanges {
    /// Tags to set (missing or with another value).
    pub set: Tags,
    /// Tag keys to remove: a retained marker left by a previous owner.
    pub remove: Vec<String>,
}

impl TagChanges {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }

    /// The keys touched, for an Event message.
    pub fn describe(&self) -> String {
        let mut keys: Vec<&str> = self.set.keys().map(String::as_str).collect();
        keys.extend(self.remove.iter().map(String::as_str));
        keys.join(", ")
    }
}

/// What to write so that `tags` carry `owner`'s ownership tags.
///
/// The managed-by tag and the cluster id are written together or not at
/// all: the operator's IAM policy lets it set either on a resource that does
/// not carry both already only in a request that sets both (`docs/iam.md`).
pub fn tag_changes(owner: &Owner, tags: &Tags) -> TagChanges {
    let mut set = owner.missing_tags(borrowed(tags));
    if set.contains_key(tags::MANAGED_BY) || set.contains_key(tags::CLUSTER) {
        let ours = owner.tags();
        for key in [tags::MANAGED_BY, tags::CLUSTER] {
            set.insert(key.to_owned(), ours[key].clone());
        }
    }
    let remove = tags
        .contains_key(tags::RETAINED)
        .then(|| tags::RETAINED.to_owned())
        .into_iter()
        .collect();
    TagChanges { set, remove }
}

/// The tag that marks a resource kept after its MovieApp was deleted, when
/// `tags` do not carry it yet.
pub fn retained_tag(tags: &Tags) -> Option<(String, String)> {
    (tags.get(tags::RETAINED).map(String::as_str) != Some("true"))
        .then(|| (tags::RETAINED.to_owned(), "true".to_owned()))
}

// ------------------------------------------------------------------ notices

/// The Event of a change.
fn notice(target: &Target<'_>, effect: Effect) -> Notice {
    match effect {
        Effect::Changed(message) => changed(target, message),
        Effect::Created { what, recorded } => created(recorded, &what),
        Effect::Removed(message) => Notice::new(Reason::Deleted, message),
    }
}

/// `Recreated` when the status recorded this resource (so it vanished out of
/// band), `Created` otherwise.
pub fn created(recorded: bool, what: &str) -> Notice {
    if recorded {
        Notice::new(
            Reason::Recreated,
            format!("{what} had disappeared and was created again"),
        )
    } else {
        Notice::new(Reason::Created, format!("created {what}"))
    }
}

/// `DriftRepaired` when the MovieApp had converged on its current spec
/// (`Ready=True` at this generation) and the resource was changed outside
/// the operator since; `Updated` otherwise: the change is part of making
/// the MovieApp (a new table's point-in-time recovery, once it is active)
/// or of following a spec change.
pub fn changed(target: &Target<'_>, message: String) -> Notice {
    if converged(target) {
        Notice::new(Reason::DriftRepaired, message)
    } else {
        Notice::new(Reason::Updated, message)
    }
}

/// Whether the last status written says `Ready=True` for this generation.
fn converged(target: &Target<'_>) -> bool {
    let (Some(previous), Some(generation)) = (target.previous, target.generation) else {
        return false;
    };
    previous.conditions.iter().any(|c| {
        c.type_ == crate::conditions::kind::READY
            && c.status == "True"
            && c.observed_generation == Some(generation)
    })
}

fn adopted(what: &str) -> Notice {
    Notice::new(
        Reason::Adopted,
        format!("adopted {what} and tagged it with this MovieApp's ownership tags"),
    )
}

#[cfg(test)]
mod tests;
