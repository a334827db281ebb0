//! The operator's rendered policy evaluated against the requests it makes,
//! with the request context AWS supplies (`aws:ResourceTag/*`,
//! `aws:RequestTag/*`, `aws:TagKeys`), and against what a stolen credential
//! would try: every request and tag the operator's code would send, built
//! from its declarations and its own tag logic.

use movieapp_model::iam::{Access, Component, Resource};
use serde_json::Value;

use super::Request;

use crate::aws::tags::{self, Owner};
use crate::provision::resource::{Tags, retained_tag, tag_changes};

// ------------------------------------------------------------------ requests

const CLUSTER: &str = "east";
const OTHER_CLUSTER: &str = "west";
const ARN: &str = "us-east-1:123456789012";

fn map(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn owner() -> Owner {
    Owner {
        uid: "6f1c-uid".into(),
        namespace: "movies".into(),
        name: "netflix-clone".into(),
        cluster: CLUSTER.into(),
    }
}

/// The same namespace and name in another cluster sharing the account.
fn other_clusters() -> Tags {
    Owner {
        uid: "9a2e-uid".into(),
        cluster: OTHER_CLUSTER.into(),
        ..owner()
    }
    .tags()
}

/// The kinds of resource the operator tags and changes, with their actions
/// from the declarations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Table,
    Queue,
    Topic,
    /// A worker role (`--worker-role-oidc-provider-arn`).
    Role,
}

/// The worker boundary the rendered policy names (`<prefix>worker-boundary`).
const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/movieapp-worker-boundary";

impl Kind {
    const ALL: [Self; 4] = [Self::Table, Self::Queue, Self::Topic, Self::Role];

    fn resource(self) -> Resource {
        match self {
            Self::Table => Resource::Tables,
            Self::Queue => Resource::Queues,
            Self::Topic => Resource::Topic,
            Self::Role => Resource::WorkerRoles,
        }
    }

    fn arn(self) -> String {
        match self {
            Self::Table => {
                format!("arn:aws:dynamodb:{ARN}:table/movieapp-movies-netflix-clone-users")
            }
            Self::Queue => format!("arn:aws:sqs:{ARN}:movieapp-movies-netflix-clone-jobs"),
            Self::Topic => format!("arn:aws:sns:{ARN}:movieapp-movies-netflix-clone-notifications"),
            Self::Role => {
                "arn:aws:iam::123456789012:role/movieapp-movies-netflix-clone-1a2b3c4d-worker"
                    .into()
            }
        }
    }

    /// The declared actions of this kind with this access.
    fn actions(self, access: Access) -> Vec<&'static str> {
        Component::Operator
            .calls()
            .iter()
            .filter(|c| c.resource == self.resource() && c.access == access)
            .flat_map(|c| c.actions.iter().copied())
            .collect()
    }

    /// The one action of `access` (create, tag, untag).
    fn action(self, access: Access) -> &'static str {
        let actions = self.actions(access);
        assert_eq!(actions.len(), 1, "{self:?} {access:?}: {actions:?}");
        actions[0]
    }

    fn request(self, action: &'static str, resource_tags: &Tags, what: &str) -> Request {
        Request {
            action: action.to_owned(),
            resource: self.arn(),
            resource_tags: resource_tags.clone(),
            request_tags: Tags::new(),
            tag_keys: Vec::new(),
            permissions_boundary: None,
            what: format!("{action} on {what}"),
        }
    }

    /// Creating the resource with `tags` in the create call: the create
    /// action and the tag action AWS authorizes for tags given at creation.
    /// A role is created with the worker boundary, as the operator does.
    fn create(self, tags: &Tags, what: &str) -> Vec<Request> {
        [self.action(Access::Create), self.action(Access::Tag)]
            .into_iter()
            .map(|action| Request {
                permissions_boundary: (self == Self::Role).then(|| BOUNDARY.to_owned()),
                ..self.tag_request(action, &Tags::new(), tags, what)
            })
            .collect()
    }

    fn tag_request(
        self,
        action: &'static str,
        resource_tags: &Tags,
        set: &Tags,
        what: &str,
    ) -> Request {
        Request {
            request_tags: set.clone(),
            tag_keys: set.keys().cloned().collect(),
            ..self.request(action, resource_tags, what)
        }
    }

    fn tag(self, resource_tags: &Tags, set: &Tags, what: &str) -> Request {
        self.tag_request(self.action(Access::Tag), resource_tags, set, what)
    }

    fn untag(self, resource_tags: &Tags, keys: &[&str], what: &str) -> Request {
        Request {
            tag_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            ..self.request(self.action(Access::Untag), resource_tags, what)
        }
    }

    /// What the operator's claim writes to a resource carrying `tags`
    /// (`provision::resource::write_tags`: tag, then untag).
    fn claim(self, tags: &Tags, what: &str) -> Vec<Request> {
        let changes = tag_changes(&owner(), tags);
        let mut requests = Vec::new();
        let mut after = tags.clone();
        if !changes.set.is_empty() {
            requests.push(self.tag(tags, &changes.set, what));
            after.extend(changes.set.clone());
        }
        if !changes.remove.is_empty() {
            let keys: Vec<&str> = changes.remove.iter().map(String::as_str).collect();
            requests.push(self.untag(&after, &keys, what));
        }
        requests
    }
}

fn without(tags: &Tags, key: &str) -> Tags {
    let mut tags = tags.clone();
    tags.remove(key);
    tags
}

/// Every request the operator makes in a MovieApp's lifecycle — create,
/// Ready, drift repair, adoption, retention, deletion — with the tags it
/// really sends, for every call it declares.
fn lifecycle() -> Vec<Request> {
    let ours = owner().tags();
    let mut requests = Vec::new();
    for kind in Kind::ALL {
        // Reads: on any name under the prefix, whoever holds it.
        for action in kind.actions(Access::Read) {
            for (tags, what) in [
                (Tags::new(), "a name nobody holds, or an untagged resource"),
                (ours.clone(), "our resource"),
                (
                    other_clusters(),
                    "another cluster's resource (NameConflict)",
                ),
            ] {
                requests.push(kind.request(action, &tags, what));
            }
        }
        // Create, with the ownership tags in the create call.
        requests.extend(kind.create(&ours, "a new resource"));
        // Ready and drift repair: settings of our resource.
        for action in kind.actions(Access::ChangeOwned) {
            requests.push(kind.request(action, &ours, "our resource"));
        }
        // A worker role's boundary removed or swapped: put back.
        for action in kind.actions(Access::CreateBounded) {
            requests.push(Request {
                permissions_boundary: Some(BOUNDARY.to_owned()),
                ..kind.request(action, &ours, "our role, its boundary restored")
            });
        }
        // Restoring ownership tags someone removed, and a resource made
        // before the cluster tag existed.
        for key in [
            tags::NAME,
            tags::UID,
            tags::CLUSTER,
            tags::MANAGED_BY,
            tags::NAMESPACE,
        ] {
            let what = format!("our resource without {key}");
            requests.extend(kind.claim(&without(&ours, key), &what));
        }
        // Adoption: an untagged resource, one another tool tagged, one
        // retained by a deleted MovieApp of the same name in this cluster.
        requests.extend(kind.claim(&Tags::new(), "an untagged resource (adopt)"));
        requests.extend(kind.claim(
            &map(&[(tags::MANAGED_BY, "terraform"), ("team", "movies")]),
            "a resource another tool made (adopt)",
        ));
        let mut retained = Owner {
            uid: "0b7d-uid".into(),
            ..owner()
        }
        .tags();
        retained.insert(tags::RETAINED.into(), "true".into());
        requests.extend(kind.claim(&retained, "a retained resource (adopt)"));
        // Deletion with Retain marks it; with Delete it goes.
        let (key, value) = retained_tag(&ours).expect("not marked yet");
        requests.push(kind.tag(&ours, &map(&[(&key, &value)]), "our resource (Retain)"));
    }
    let subscription =
        format!("arn:aws:sns:{ARN}:movieapp-movies-netflix-clone-notifications:5e8b");
    let events = format!("arn:aws:sqs:{ARN}:movieapp-aws-events");
    let repository = format!("arn:aws:ecr:{ARN}:repository/movieapp-api-worker");
    // tag:GetResources names no resource: IAM evaluates it against `*`.
    let everything = "*".to_owned();
    for call in Component::Operator.calls() {
        let resource = match call.resource {
            Resource::Subscriptions => &subscription,
            Resource::EventsQueue => &events,
            Resource::ImageRepositories => &repository,
            Resource::TaggedResources => &everything,
            _ => continue,
        };
        for action in call.actions {
            requests.push(Request {
                action: (*action).to_owned(),
                resource: resource.clone(),
                resource_tags: Tags::new(),
                request_tags: Tags::new(),
                tag_keys: Vec::new(),
                permissions_boundary: None,
                what: format!("{action} on {resource}"),
            });
        }
    }
    requests
}

/// What a stolen operator credential, or a MovieApp that means harm, would
/// try: each must be refused by IAM itself.
fn attacks() -> Vec<Request> {
    let ours = owner().tags();
    let foreign = other_clusters();
    let untagged = Tags::new();
    let mut requests = Vec::new();
    for kind in Kind::ALL {
        // Another cluster's resource: retag it as ours, change, delete it.
        requests.push(kind.tag(
            &foreign,
            &ours,
            "another cluster's resource, retagged as ours",
        ));
        requests.push(kind.tag(
            &foreign,
            &map(&[(tags::RETAINED, "true")]),
            "another cluster's resource",
        ));
        requests.push(kind.untag(&foreign, &[tags::CLUSTER], "another cluster's resource"));
        requests.push(kind.untag(&foreign, &[tags::RETAINED], "another cluster's resource"));
        for action in kind.actions(Access::ChangeOwned) {
            requests.push(kind.request(action, &foreign, "another cluster's resource"));
            // An untagged resource under the prefix, not adopted first.
            requests.push(kind.request(action, &untagged, "an untagged resource"));
            // One another tool made, with its own managed-by.
            requests.push(kind.request(
                action,
                &map(&[(tags::MANAGED_BY, "terraform")]),
                "a resource another tool manages",
            ));
        }
        // Tag writes to an untagged resource that do not claim it for this
        // cluster.
        requests.push(kind.tag(&untagged, &map(&[("team", "x")]), "an untagged resource"));
        requests.push(kind.tag(
            &untagged,
            &without(&ours, tags::CLUSTER),
            "an untagged resource, without the cluster tag",
        ));
        requests.push(kind.untag(&untagged, &[tags::RETAINED], "an untagged resource"));
        // Create without the ownership tags, or for another cluster.
        requests.extend(kind.create(&Tags::new(), "a resource without tags"));
        requests.extend(kind.create(&without(&ours, tags::MANAGED_BY), "no managed-by tag"));
        requests.extend(kind.create(&without(&ours, tags::CLUSTER), "no cluster tag"));
        requests.extend(kind.create(&foreign, "another cluster's tags"));
        // Our own resource handed to another cluster, or stripped of its
        // ownership.
        requests.push(kind.tag(
            &ours,
            &map(&[(tags::CLUSTER, OTHER_CLUSTER)]),
            "our resource, moved to another cluster",
        ));
        requests.push(kind.tag(
            &ours,
            &map(&[(tags::MANAGED_BY, "someone-else")]),
            "our resource, handed to another manager",
        ));
        for key in [tags::CLUSTER, tags::MANAGED_BY, tags::UID] {
            requests.push(kind.untag(&ours, &[key], &format!("our resource, removing {key}")));
        }
        requests.push(kind.untag(
            &ours,
            &[tags::RETAINED, tags::CLUSTER],
            "our resource, removing the cluster tag along with the retained marker",
        ));
    }
    requests.extend(role_attacks(&ours, &foreign));
    requests
}

/// A role made without the worker boundary, or with a wider one, or
/// outside the prefix; a boundary swapped; a role passed to a service.
fn role_attacks(ours: &Tags, foreign: &Tags) -> Vec<Request> {
    let role = Kind::Role;
    let wider = "arn:aws:iam::123456789012:policy/AdministratorAccess";
    let mut requests = Vec::new();
    for (boundary, what) in [
        (None, "a role without a boundary"),
        (Some(wider), "a role with a wider boundary"),
    ] {
        // The CreateRole itself (its tags alone are no attack).
        requests.extend(
            role.create(ours, what)
                .into_iter()
                .take(1)
                .map(|r| Request {
                    permissions_boundary: boundary.map(str::to_owned),
                    ..r
                }),
        );
    }
    let outside = Request {
        resource: "arn:aws:iam::123456789012:role/admin".into(),
        ..role.create(ours, "a role outside the prefix").remove(0)
    };
    requests.push(outside);
    for (resource_tags, boundary, what) in [
        (ours, Some(wider), "our role, given a wider boundary"),
        (ours, None, "our role, its boundary removed"),
        (
            foreign,
            Some(BOUNDARY),
            "another cluster's role, its boundary set",
        ),
    ] {
        requests.push(Request {
            permissions_boundary: boundary.map(str::to_owned),
            ..role.request("iam:PutRolePermissionsBoundary", resource_tags, what)
        });
    }
    for resource in [
        role.arn(),
        "arn:aws:iam::123456789012:role/admin".to_owned(),
    ] {
        requests.push(Request {
            resource,
            ..role.request("iam:PassRole", ours, "a role passed to a service")
        });
    }
    requests
}

fn allowed(policy: &Value, request: &Request) -> bool {
    super::allowed(policy, request).expect("the evaluator reads the rendered policy")
}

fn rendered() -> Value {
    let target = crate::policies::Target {
        cluster: CLUSTER.into(),
        ..crate::policies::tests::target()
    };
    let text = crate::policies::operator()
        .render(&target, None, &crate::policies::tests::lists())
        .expect("operator");
    serde_json::from_str(&text).expect("JSON")
}

#[test]
fn every_request_of_the_operators_lifecycle_is_allowed() {
    let policy = rendered();
    let requests = lifecycle();
    let denied: Vec<String> = requests
        .iter()
        .filter(|r| !allowed(&policy, r))
        .map(|r| format!("{} ({:?} → {:?})", r.what, r.resource_tags, r.request_tags))
        .collect();
    assert!(denied.is_empty(), "denied:\n{}", denied.join("\n"));
    // Every declared action is exercised.
    for action in Component::Operator.actions() {
        assert!(
            requests.iter().any(|r| r.action == action),
            "{action}: no lifecycle request"
        );
    }
    eprintln!("{} lifecycle requests allowed", requests.len());
}

#[test]
fn what_a_stolen_credential_tries_on_resources_it_does_not_own_is_denied() {
    let policy = rendered();
    let requests = attacks();
    let allowed_attacks: Vec<String> = requests
        .iter()
        .filter(|r| allowed(&policy, r))
        .map(|r| {
            format!(
                "{} ({:?}, sets {:?}, keys {:?})",
                r.what, r.resource_tags, r.request_tags, r.tag_keys
            )
        })
        .collect();
    assert!(
        allowed_attacks.is_empty(),
        "allowed:\n{}",
        allowed_attacks.join("\n")
    );
    eprintln!("{} attacks denied", requests.len());
}

/// Without `require_ownership_tags` (accounts without tag-based
/// authorization) the same documents carry no condition at all.
#[test]
fn the_ownership_conditions_are_what_require_ownership_tags_switches() {
    let template = crate::policies::operator().template();
    let conditions = template.matches("\"Condition\"").count();
    let guarded = template.matches("%{ if require_ownership_tags }").count();
    assert!(conditions > 0 && conditions == guarded, "{template}");
    assert!(template.contains("${cluster}"), "{template}");
}
