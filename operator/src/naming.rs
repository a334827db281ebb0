//! Deterministic names: physical AWS names and Kubernetes child names.
//!
//! A physical name is `movieapp-<namespace>-<name>-<hash>-<component>`, where
//! `<hash>` is the first 8 hex digits of SHA-256 over `<namespace>/<name>`.
//! The hash keeps names unambiguous (`a-b`/`c` and `a`/`b-c` differ) and
//! lets the readable part be shortened to fit each service's limit without
//! ever colliding. The same MovieApp always maps to the same names, so a
//! crash between a create and the status write finds the resource again.
//!
//! A MovieApp may instead name a resource explicitly (`spec.database.tableNames`,
//! `spec.queue.name`, `spec.queue.deadLetterQueueName`,
//! `spec.notifications.topicName`), to use one another tool created;
//! [`PhysicalNames`] is the one place that decides which name applies, and
//! [`check`] holds each service's naming rules.

use aws_lc_rs::digest;

use crate::crd::MovieAppSpec;

/// The prefix of every physical name (IAM policies scope on it).
pub const PREFIX: &str = "movieapp";

/// Length limits of the services' resource names.
pub mod limits {
    pub const DYNAMODB_TABLE: usize = 255;
    pub const SQS_QUEUE: usize = 80;
    pub const SNS_TOPIC: usize = 256;
    pub const IAM_ROLE: usize = 64;
}

/// Components of the application that own an AWS resource.
pub mod component {
    pub const JOBS_QUEUE: &str = "jobs";
    pub const DEAD_LETTER_QUEUE: &str = "jobs-dlq";
    pub const TOPIC: &str = "notifications";
    /// The worker's IAM role (with `--worker-role-oidc-provider-arn`).
    pub const WORKER_ROLE: &str = "worker";
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

/// The physical name of every AWS resource of one MovieApp: the spec's
/// explicit name where it gives one, else the operator's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhysicalNames {
    /// `(component, name)` in [`movieapp_model::TABLES`] order.
    pub tables: Vec<(&'static str, String)>,
    pub jobs_queue: String,
    pub dead_letter_queue: String,
    pub topic: String,
}

impl PhysicalNames {
    pub fn of(id: AppId<'_>, spec: &MovieAppSpec) -> Self {
        let explicit = spec.database.table_names.as_ref();
        Self {
            tables: movieapp_model::TABLES
                .iter()
                .map(|table| {
                    let name = explicit
                        .and_then(|names| names.get(table.component))
                        .map_or_else(|| id.table_name(table.component), str::to_owned);
                    (table.component, name)
                })
                .collect(),
            jobs_queue: spec
                .queue
                .name
                .clone()
                .unwrap_or_else(|| id.queue_name(component::JOBS_QUEUE)),
            dead_letter_queue: spec
                .queue
                .dead_letter_queue_name
                .clone()
                .unwrap_or_else(|| id.queue_name(component::DEAD_LETTER_QUEUE)),
            topic: spec
                .notifications
                .topic_name
                .clone()
                .unwrap_or_else(|| id.topic_name()),
        }
    }

    /// The table of `component` (`users`, `movies`, `watchlists`).
    pub fn table(&self, component: &str) -> &str {
        self.tables
            .iter()
            .find(|(c, _)| *c == component)
            .map_or("", |(_, name)| name.as_str())
    }

    /// Every name: the tables, the jobs queue, the dead-letter queue, the topic.
    pub fn all(&self) -> Vec<String> {
        self.tables
            .iter()
            .map(|(_, name)| name.clone())
            .chain([
                self.jobs_queue.clone(),
                self.dead_letter_queue.clone(),
                self.topic.clone(),
            ])
            .collect()
    }
}

/// Each service's naming rules, for explicit names (the schema holds the
/// same rules; these also cover objects stored under an older CRD).
pub mod check {
    use super::limits;

    /// One service's rule: a length range and `a-z A-Z 0-9 _ -` plus `extra`.
    struct Rule {
        what: &'static str,
        min: usize,
        max: usize,
        extra: &'static [u8],
        described: &'static str,
    }

    impl Rule {
        fn check(&self, field: &str, name: &str) -> Result<(), String> {
            let charset = name.bytes().all(|b| {
                b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || self.extra.contains(&b)
            });
            if charset && (self.min..=self.max).contains(&name.len()) {
                return Ok(());
            }
            Err(format!(
                "{field} {name:?} is not {}: {}-{} characters of {}",
                self.what, self.min, self.max, self.described
            ))
        }
    }

    /// DynamoDB: 3–255 characters of `a-z A-Z 0-9 _ - .`.
    pub fn table(field: &str, name: &str) -> Result<(), String> {
        Rule {
            what: "a DynamoDB table name",
            min: 3,
            max: limits::DYNAMODB_TABLE,
            extra: b".",
            described: "a-z, A-Z, 0-9, '_', '-' and '.'",
        }
        .check(field, name)
    }

    /// SQS: 1–80 characters of `a-z A-Z 0-9 _ -`; `.fifo` names FIFO
    /// queues, which the operator does not make.
    pub fn queue(field: &str, name: &str) -> Result<(), String> {
        no_fifo(field, name, "queue")?;
        Rule {
            what: "an SQS queue name",
            min: 1,
            max: limits::SQS_QUEUE,
            extra: b"",
            described: "a-z, A-Z, 0-9, '_' and '-'",
        }
        .check(field, name)
    }

    /// SNS: 1–256 characters of `a-z A-Z 0-9 _ -`; `.fifo` names FIFO
    /// topics, which the operator does not make.
    pub fn topic(field: &str, name: &str) -> Result<(), String> {
        no_fifo(field, name, "topic")?;
        Rule {
            what: "an SNS topic name",
            min: 1,
            max: limits::SNS_TOPIC,
            extra: b"",
            described: "a-z, A-Z, 0-9, '_' and '-'",
        }
        .check(field, name)
    }

    fn no_fifo(field: &str, name: &str, kind: &str) -> Result<(), String> {
        if name.ends_with(".fifo") {
            return Err(format!(
                "{field} {name:?} names a FIFO {kind}; the jobs queue and the topic are standard \
                 (SNS fan-out to a standard queue), so use a name without .fifo"
            ));
        }
        Ok(())
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

    fn spec(yaml: &str) -> MovieAppSpec {
        serde_saphyr::from_str(yaml).expect("spec")
    }

    #[test]
    fn explicit_names_replace_only_the_names_they_give() {
        let derived = PhysicalNames::of(APP, &spec("{}"));
        assert_eq!(derived.table("users"), APP.table_name("users"));
        assert_eq!(derived.jobs_queue, APP.queue_name(component::JOBS_QUEUE));
        assert_eq!(derived.topic, APP.topic_name());
        let names = PhysicalNames::of(
            APP,
            &spec(
                "{ database: { tableNames: { movies: legacy.Movies } }, queue: { name: legacy-jobs }, notifications: { topicName: legacy_topic } }",
            ),
        );
        assert_eq!(names.table("movies"), "legacy.Movies");
        assert_eq!(names.table("users"), derived.table("users"));
        assert_eq!(names.table("watchlists"), derived.table("watchlists"));
        assert_eq!(names.jobs_queue, "legacy-jobs");
        // The dead-letter queue keeps the operator's name unless named too.
        assert_eq!(names.dead_letter_queue, derived.dead_letter_queue);
        assert_eq!(names.topic, "legacy_topic");
        assert_eq!(names.all().len(), 6);
        assert!(names.all().contains(&"legacy.Movies".to_owned()));
    }

    #[test]
    fn each_service_s_naming_rules_hold() {
        let long: Vec<String> = (0..=257).map(|n| "a".repeat(n)).collect();
        for ok in ["abc", "Legacy.Users_1-x", long[255].as_str()] {
            assert_eq!(check::table("t", ok), Ok(()), "{ok}");
        }
        for bad in [
            "ab",
            "has space",
            "slash/name",
            "star*",
            long[256].as_str(),
            "",
        ] {
            let error = check::table("spec.database.tableNames.users", bad).expect_err(bad);
            assert!(error.contains("spec.database.tableNames.users"), "{error}");
            assert!(error.contains("3-255"), "{error}");
        }
        for ok in ["q", "Jobs_1-x", long[80].as_str()] {
            assert_eq!(check::queue("q", ok), Ok(()), "{ok}");
        }
        for bad in ["", "dot.name", "has space", long[81].as_str()] {
            assert!(
                check::queue("q", bad).expect_err(bad).contains("1-80"),
                "{bad}"
            );
        }
        assert!(
            check::queue("q", "jobs.fifo")
                .expect_err("fifo")
                .contains("FIFO queue")
        );
        for ok in ["t", "Topic_1-x", long[256].as_str()] {
            assert_eq!(check::topic("t", ok), Ok(()), "{ok}");
        }
        for bad in ["", "dot.name", "colon:name", long[257].as_str()] {
            assert!(
                check::topic("t", bad).expect_err(bad).contains("1-256"),
                "{bad}"
            );
        }
        assert!(
            check::topic("t", "n.fifo")
                .expect_err("fifo")
                .contains("FIFO topic")
        );
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
