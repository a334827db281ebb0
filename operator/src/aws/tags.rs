//! Ownership tags on every AWS resource the operator creates.
//!
//! A resource carrying another MovieApp's uid is never modified or deleted;
//! an untagged one is adopted only when the MovieApp asks for it.

use std::collections::BTreeMap;

/// The uid of the owning MovieApp.
pub const UID: &str = "movieapp.io/uid";
/// The owning MovieApp's namespace.
pub const NAMESPACE: &str = "movieapp.io/namespace";
/// The owning MovieApp's name.
pub const NAME: &str = "movieapp.io/name";
/// The cluster of the owning MovieApp (the operator's `--cluster-id`): a
/// resource of another cluster is never adopted, retained or not.
pub const CLUSTER: &str = "movieapp.io/cluster";
/// The cluster id of an operator (and of the plugin) not given one.
pub const DEFAULT_CLUSTER: &str = "default";
/// Set to `true` when the owner was deleted with `deletionPolicy: Retain`.
pub const RETAINED: &str = "movieapp.io/retained";
/// The standard managed-by label, as a tag.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Our value of [`MANAGED_BY`].
pub const MANAGER: &str = "movieapp-operator";

/// The MovieApp that owns a set of AWS resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// The operator's cluster id.
    pub cluster: String,
}

impl Owner {
    /// The tags every owned resource carries.
    pub fn tags(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (UID.to_owned(), self.uid.clone()),
            (NAMESPACE.to_owned(), self.namespace.clone()),
            (NAME.to_owned(), self.name.clone()),
            (CLUSTER.to_owned(), self.cluster.clone()),
            (MANAGED_BY.to_owned(), MANAGER.to_owned()),
        ])
    }

    /// Who owns a resource with these tags, from this MovieApp's point of view.
    pub fn ownership<'a, I>(&self, tags: I) -> Ownership
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        match tags.into_iter().find(|(key, _)| *key == UID) {
            Some((_, uid)) if uid == self.uid => Ownership::Ours,
            Some((_, uid)) => Ownership::Foreign {
                uid: uid.to_owned(),
            },
            None => Ownership::Untagged,
        }
    }

    /// The other cluster a resource is tagged for, if it is tagged for one
    /// (resources made before the cluster tag carry none).
    pub fn other_cluster<'a, I>(&self, tags: I) -> Option<String>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        tags.into_iter()
            .find(|(key, _)| *key == CLUSTER)
            .filter(|(_, cluster)| *cluster != self.cluster)
            .map(|(_, cluster)| cluster.to_owned())
    }

    /// The tags of ours that are missing or different on a resource.
    pub fn missing_tags<'a, I>(&self, tags: I) -> BTreeMap<String, String>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let present: BTreeMap<&str, &str> = tags.into_iter().collect();
        self.tags()
            .into_iter()
            .filter(|(key, value)| present.get(key.as_str()) != Some(&value.as_str()))
            .collect()
    }
}

/// Who owns an existing resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// Tagged with this MovieApp's uid.
    Ours,
    /// Tagged with another uid: never touch it.
    Foreign { uid: String },
    /// No uid tag: adopt only on request.
    Untagged,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner {
        Owner {
            uid: "u-1".into(),
            namespace: "movies".into(),
            name: "app".into(),
            cluster: "east".into(),
        }
    }

    #[test]
    fn ownership_is_decided_by_the_uid_tag() {
        let o = owner();
        assert_eq!(o.ownership([(UID, "u-1")]), Ownership::Ours);
        assert_eq!(
            o.ownership([(UID, "u-2"), (NAME, "app")]),
            Ownership::Foreign { uid: "u-2".into() }
        );
        assert_eq!(o.ownership([(NAME, "app")]), Ownership::Untagged);
        assert_eq!(o.ownership([]), Ownership::Untagged);
    }

    #[test]
    fn missing_tags_are_those_absent_or_different() {
        let o = owner();
        let missing = o.missing_tags([(UID, "u-1"), (NAME, "old"), ("other", "x")]);
        assert_eq!(
            missing.keys().map(String::as_str).collect::<Vec<_>>(),
            [MANAGED_BY, CLUSTER, NAME, NAMESPACE]
        );
        let all: Vec<(String, String)> = o.tags().into_iter().collect();
        assert!(
            o.missing_tags(all.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .is_empty()
        );
    }

    #[test]
    fn another_cluster_is_the_cluster_tag_when_it_differs() {
        let o = owner();
        assert_eq!(o.other_cluster([(CLUSTER, "west")]), Some("west".into()));
        assert_eq!(o.other_cluster([(CLUSTER, "east")]), None);
        // Made before the cluster tag: no other cluster known.
        assert_eq!(o.other_cluster([(UID, "u-9")]), None);
    }
}
