//! Deterministic names: physical AWS names and Kubernetes child names.
//!
//! A physical name is `movieapp-<namespace>-<name>-<hash>-<component>`, where
//! `<hash>` is the first 8 hex digits of SHA-256 over `<namespace>/<name>`.
//! The hash keeps names unambiguous (`a-b`/`c` and `a`/`b-c` differ) and
//! lets the readable part be shortened to fit each service's limit without
//! ever colliding. The same MovieApp always maps to the same names, so a
//! crash between a create and the status write finds the resource again.

use aws_lc_rs::digest;

/// The prefix of every physical name (IAM policies scope on it).
pub const PREFIX: &str = "movieapp";

/// Length limits of the services' resource names.
pub mod limits {
    pub const DYNAMODB_TABLE: usize = 255;
    pub const SQS_QUEUE: usize = 80;
    pub const SNS_TOPIC: usize = 256;
}

/// Components of the application that own an AWS resource.
pub mod component {
    pub const JOBS_QUEUE: &str = "jobs";
    pub const DEAD_LETTER_QUEUE: &str = "jobs-dlq";
    pub const TOPIC: &str = "notifications";
}

/// Identity of a MovieApp for naming purposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppId<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
}

impl AppId<'_> {
    /// First 8 hex digits of SHA-256 over `namespace/name`.
    pub fn hash(&self) -> String {
        let digest = digest::digest(
            &digest::SHA256,
            format!("{}/{}", self.namespace, self.name).as_bytes(),
        );
        digest.as_ref()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The physical name of `component`, at most `max_len` characters, using
    /// only `[a-z0-9-]` (valid for DynamoDB, SQS and SNS alike).
    pub fn physical_name(&self, component: &str, max_len: usize) -> String {
        let hash = self.hash();
        let fixed = PREFIX.len() + 1 + 1 + hash.len() + 1 + component.len();
        let readable = format!("{}-{}", self.namespace, self.name);
        let room = max_len.saturating_sub(fixed);
        let mut readable: String = readable.chars().take(room).collect();
        while readable.ends_with('-') {
            readable.pop();
        }
        if readable.is_empty() {
            format!("{PREFIX}-{hash}-{component}")
        } else {
            format!("{PREFIX}-{readable}-{hash}-{component}")
        }
    }

    pub fn table_name(&self, component: &str) -> String {
        self.physical_name(component, limits::DYNAMODB_TABLE)
    }

    pub fn queue_name(&self, component: &str) -> String {
        self.physical_name(component, limits::SQS_QUEUE)
    }

    pub fn topic_name(&self) -> String {
        self.physical_name(component::TOPIC, limits::SNS_TOPIC)
    }
}

/// Name of the ConfigMap holding the worker's connection settings.
pub fn config_map_name(app: &str) -> String {
    format!("{app}-config")
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: AppId<'static> = AppId {
        namespace: "movies",
        name: "netflix-clone",
    };

    #[test]
    fn names_are_deterministic_and_readable() {
        assert_eq!(APP.queue_name("jobs"), APP.queue_name("jobs"));
        let name = APP.table_name("users");
        assert!(name.starts_with("movieapp-movies-netflix-clone-"), "{name}");
        assert!(name.ends_with("-users"), "{name}");
        assert_eq!(APP.hash().len(), 8);
    }

    #[test]
    fn ambiguous_pairs_get_different_names() {
        let a = AppId {
            namespace: "a-b",
            name: "c",
        };
        let b = AppId {
            namespace: "a",
            name: "b-c",
        };
        assert_ne!(a.queue_name("jobs"), b.queue_name("jobs"));
    }

    #[test]
    fn long_names_are_shortened_within_limits_and_stay_distinct() {
        let ns = "n".repeat(63);
        let long_a = format!("{}-a", "x".repeat(61));
        let long_b = format!("{}-b", "x".repeat(61));
        let a = AppId {
            namespace: &ns,
            name: &long_a,
        };
        let b = AppId {
            namespace: &ns,
            name: &long_b,
        };
        for (name, limit) in [
            (
                a.queue_name(component::DEAD_LETTER_QUEUE),
                limits::SQS_QUEUE,
            ),
            (a.table_name("watchlists"), limits::DYNAMODB_TABLE),
            (a.topic_name(), limits::SNS_TOPIC),
        ] {
            assert!(name.len() <= limit, "{name} longer than {limit}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            );
            assert!(!name.contains("--"), "{name}");
        }
        assert_ne!(a.queue_name("jobs"), b.queue_name("jobs"));
    }

    #[test]
    fn hash_is_stable_across_releases() {
        // Changing this breaks every existing installation: names are looked up, not stored.
        assert_eq!(
            APP.hash(),
            AppId {
                namespace: "movies",
                name: "netflix-clone"
            }
            .hash()
        );
        assert_eq!(
            AppId {
                namespace: "default",
                name: "demo"
            }
            .hash(),
            "02c8c86b",
            "the naming hash changed"
        );
    }
}
