//! The reasons of conditions and Events.
//!
//! Each reason is a variant here and becomes a string only at the edge (the
//! status, an Event). The strings are a public contract: the Argo CD health
//! check, `docs/troubleshooting.md`, alerts and users' scripts read them, so
//! a reason is added, never renamed.

/// Declares [`Reason`] with one variant per reason, whose string is the
/// variant's name, and [`Reason::ALL`].
macro_rules! reasons {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {
        /// Why a condition stands as it does, or why an Event was published.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[doc = $doc])* $name,)*
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &[Reason] = &[$(Reason::$name,)*];

            /// The string written to the status or the Event.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$name => stringify!($name),)*
                }
            }
        }
    };
}

reasons! {
    // The summary conditions (Ready, Reconciling, Stalled).
    /// Ready: every part is ready; WorkerAvailable: the replicas are available.
    Available,
    /// Reconciling: nothing is in progress.
    Reconciled,
    /// Stalled: nothing blocks.
    NoBlockers,
    /// Reconciling: work is in progress; WorkerAvailable: a rollout is under way.
    Progressing,
    /// Ready and Reconciling while the MovieApp is being deleted.
    Deleting,
    /// Paused: `movieapp.io/paused` is `"true"` (also Ready's reason on a
    /// MovieApp paused before its first reconcile).
    Paused,
    /// Paused: the operator manages the MovieApp.
    Active,
    /// Drifted: what exists differs from the spec (`managementPolicy:
    /// ObserveOnly`); also Ready's reason then, and a part's that exists
    /// but differs or is missing.
    Drifted,
    /// Drifted: what exists matches the spec (`managementPolicy: ObserveOnly`).
    InSync,
    /// Drifted: `managementPolicy: Full`, the operator repairs differences itself.
    Managed,
    /// Reconciling: `managementPolicy: ObserveOnly`, the operator changes nothing.
    Observing,

    // The parts.
    /// ImageResolved: the tag or digest exists in ECR.
    Resolved,
    /// An AWS part is in place with its declared settings.
    Provisioned,
    /// An AWS resource is being created.
    Creating,
    /// An AWS resource (a table, an index, time to live) is being changed.
    Updating,
    /// NotificationsReady: the topic waits for the jobs queue.
    WaitingForQueue,
    /// WorkerAvailable: the image or an AWS part is not ready yet.
    WaitingForDependencies,
    /// WorkerAvailable: the Deployment is being created.
    Deploying,
    /// ImageResolved: a transient ECR error, retried.
    EcrError,
    /// An AWS part: a transient AWS error (throttling, a 5xx, a time-out), retried.
    AwsError,
    /// WorkerAvailable: the TMDB Secret could not be read, retried.
    SecretUnreadable,
    /// WorkerAvailable: a child could not be applied (API server busy, failing, a conflict), retried.
    ApplyFailed,

    // Stalled: a human must act.
    /// The spec breaks a rule the schema cannot express.
    InvalidSpec,
    /// The TMDB Secret does not exist.
    SecretNotFound,
    /// The TMDB Secret has no such non-empty key.
    SecretKeyNotFound,
    /// The ECR repository does not exist.
    RepositoryNotFound,
    /// The tag or digest is not in ECR.
    ImageNotFound,
    /// AWS refused a request for lack of permission.
    AccessDenied,
    /// AWS rejected a request as invalid.
    AwsValidationError,
    /// A resource with our physical name belongs to someone else.
    NameConflict,
    /// A table's key schema cannot be changed to the one the application needs.
    IncompatibleTable,
    /// The API server refused a child (400, 403 or 422).
    ChildRejected,
    /// Deletion waits: `deletionPolicy: Delete` with the tables' deletion
    /// protection on (`spec.database.deletionProtection`).
    DeletionProtected,

    // Events only.
    /// An AWS resource was created.
    Created,
    /// An existing AWS resource was taken over (`movieapp.io/adopt`).
    Adopted,
    /// An AWS resource that had disappeared was created again.
    Recreated,
    /// An AWS resource was changed after a spec change, or while the
    /// MovieApp is being made.
    Updated,
    /// An AWS resource changed outside the operator was restored (the
    /// MovieApp was Ready on its current spec).
    DriftRepaired,
    /// An AWS resource or subscription was deleted.
    Deleted,
    /// The AWS resources were kept at deletion (`deletionPolicy: Retain`).
    Retained,
    /// An ObserveOnly MovieApp was deleted: its AWS resources were left
    /// exactly as they were, nothing deleted or tagged.
    Released,
    /// A periodic resync could not re-read AWS; the last complete pass stands.
    ResyncFailed,
    /// The stored object does not match the MovieApp schema.
    InvalidObject,
}

impl Reason {
    /// Whether a part with this reason needs a human (`Stalled=True`).
    pub const fn stalls(self) -> bool {
        matches!(
            self,
            Reason::InvalidSpec
                | Reason::SecretNotFound
                | Reason::SecretKeyNotFound
                | Reason::RepositoryNotFound
                | Reason::ImageNotFound
                | Reason::AccessDenied
                | Reason::AwsValidationError
                | Reason::NameConflict
                | Reason::IncompatibleTable
                | Reason::ChildRejected
                | Reason::DeletionProtected
        )
    }

    /// The reason written as `text`, if it is one.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.as_str() == text)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn repository_file(path: &str) -> String {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
    }

    #[test]
    fn strings_are_unique_and_parse_back() {
        let strings: BTreeSet<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(strings.len(), Reason::ALL.len());
        for reason in Reason::ALL {
            assert_eq!(Reason::parse(reason.as_str()), Some(*reason));
        }
        assert_eq!(Reason::parse("NotAReason"), None);
    }

    /// The strings are a public contract: these are never renamed.
    #[test]
    fn published_strings_stay() {
        for (reason, text) in [
            (Reason::NameConflict, "NameConflict"),
            (Reason::AwsError, "AwsError"),
            (Reason::Available, "Available"),
            (Reason::ResyncFailed, "ResyncFailed"),
            (Reason::DriftRepaired, "DriftRepaired"),
            (Reason::Paused, "Paused"),
            (Reason::Drifted, "Drifted"),
        ] {
            assert_eq!(reason.as_str(), text);
        }
    }

    #[test]
    fn every_reason_is_documented() {
        let troubleshooting = repository_file("docs/troubleshooting.md");
        let reference = repository_file("docs/crd-reference.md");
        for reason in Reason::ALL {
            let named = format!("`{reason}`");
            assert!(
                reference.contains(&named),
                "docs/crd-reference.md does not name {named}"
            );
            if reason.stalls() {
                assert!(
                    troubleshooting.contains(&format!("\n### {reason}\n")),
                    "docs/troubleshooting.md has no section ### {reason}"
                );
            } else {
                assert!(
                    troubleshooting.contains(&named),
                    "docs/troubleshooting.md does not name {named}"
                );
            }
        }
    }

    /// The Argo CD health check reads `Stalled` (Degraded) and `Ready`
    /// (Healthy); its fixtures must use reasons the operator writes, and a
    /// Degraded fixture a reason that stalls.
    #[test]
    fn the_health_check_fixtures_use_real_reasons() {
        let dir = "gitops/argocd/movieapp.io/MovieApp";
        let cases = repository_file(&format!("{dir}/health_test.yaml"));
        let mut checked = 0;
        let mut expected: Option<(String, String)> = None;
        for line in cases.lines().map(str::trim) {
            if let Some(status) = line.strip_prefix("status: ") {
                expected = Some((status.to_owned(), String::new()));
            } else if let Some(message) = line.strip_prefix("message: ") {
                if let Some((_, m)) = expected.as_mut() {
                    *m = message.trim_matches('"').to_owned();
                }
            } else if let Some(path) = line.strip_prefix("inputPath: ") {
                let (status, message) = expected.take().expect("a case before its inputPath");
                let fixture = repository_file(&format!("{dir}/{path}"));
                for reason in fixture
                    .lines()
                    .filter_map(|l| l.trim().strip_prefix("reason: "))
                {
                    assert!(
                        Reason::parse(reason.trim_matches('"')).is_some(),
                        "{path} uses reason {reason}, which the operator never writes"
                    );
                }
                // The health message starts with the reason of the condition it describes.
                if let Some((prefix, _)) = message.split_once(": ")
                    && prefix.chars().all(|c| c.is_ascii_alphabetic())
                    && let Some(reason) = Reason::parse(prefix)
                {
                    assert_eq!(
                        status == "Degraded",
                        reason.stalls(),
                        "{path}: {status} with reason {reason}"
                    );
                }
                checked += 1;
            }
        }
        assert!(checked >= 10, "read only {checked} cases");
    }
}
