//! Validate: what the CRD schema cannot express, checked before anything
//! is written. Pure.
//!
//! A spec that breaks a rule stops the pipeline here: the MovieApp is
//! reported `Stalled` (`InvalidSpec`) and nothing is written to AWS or to
//! its children. A TMDB Secret that is missing or lacks its key blocks the
//! worker only: GitOps tools apply a MovieApp and its Secret in any order,
//! and the AWS resources (the slow part) are provisioned meanwhile.

use movieapp_model::{TABLES, env};

use kube::ResourceExt;

use super::children;
use super::dereference::{Dereferenced, effective_region};
use crate::conditions::PartState;
use crate::crd::MovieApp;
use crate::naming::{AppId, PhysicalNames, check};
use crate::reason::Reason;

/// A MovieApp whose spec passed validation.
#[derive(Debug)]
pub struct Validated<'a> {
    pub dereferenced: Dereferenced<'a>,
    /// Why the worker cannot be deployed yet (the TMDB Secret), if so.
    pub worker_blocker: Option<PartState>,
}

/// A MovieApp whose spec breaks a rule: every problem, each a sentence.
#[derive(Debug)]
pub struct Invalid<'a> {
    pub dereferenced: Dereferenced<'a>,
    pub problems: Vec<String>,
}

impl Invalid<'_> {
    /// The category of a reconcile that stopped here (logs).
    pub fn category(&self) -> &'static str {
        "invalid_spec"
    }

    /// The worker's state: blocked, with every problem.
    pub fn state(&self) -> PartState {
        PartState::blocked(Reason::InvalidSpec, self.problems.join("; "))
    }
}

/// The validate step.
pub fn validate(dereferenced: Dereferenced<'_>) -> Result<Validated<'_>, Box<Invalid<'_>>> {
    let object = &dereferenced.object;
    let mut problems = problems(object.app, &object.region);
    if object.worker_roles.is_some() {
        problems.extend(premade_role(object.app));
    }
    if !problems.is_empty() {
        return Err(Box::new(Invalid {
            dereferenced,
            problems,
        }));
    }
    // Someone else's Secret under the auth Secret's name comes first: the
    // worker must never run with it.
    let worker_blocker = dereferenced
        .auth_secret
        .state
        .conflict()
        .or_else(|| dereferenced.tmdb_secret.clone().err());
    Ok(Validated {
        dereferenced,
        worker_blocker,
    })
}

/// The spec's problems alone, before anything is read.
pub fn spec(app: &MovieApp, default_region: &str) -> Result<(), Vec<String>> {
    let problems = problems(app, &effective_region(app, default_region));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// With the operator making the worker's role, a role of the spec's own is
/// refused: two sources for one annotation would leave the worker's rights
/// to whichever was applied last. (Where the platform allows pre-made roles
/// per namespace, run the operator without --worker-role-oidc-provider-arn.)
fn premade_role(app: &MovieApp) -> Option<String> {
    let annotations = &app.spec.worker.service_account.annotations;
    annotations
        .contains_key(children::IRSA_ROLE_ANNOTATION)
        .then(|| {
            format!(
                "spec.worker.serviceAccount.annotations sets {}, but this operator makes the \
             worker's IAM role itself (--worker-role-oidc-provider-arn) and sets the annotation \
             to it; remove the annotation",
                children::IRSA_ROLE_ANNOTATION
            )
        })
}

/// Variables the operator sets on the worker itself; `spec.worker.env` may not override them.
fn managed_variables() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = TABLES.iter().map(|t| t.env_var).collect();
    names.extend([
        env::JOBS_QUEUE_URL,
        env::NOTIFICATIONS_TOPIC_ARN,
        env::AWS_REGION,
        env::AWS_ENDPOINT_URL,
        env::TMDB_BASE_URL,
        env::TMDB_API_KEY,
        env::TOKEN_SIGNING_KEY,
        env::PORT,
    ]);
    names
}

/// Every problem found, each a sentence for the `Stalled` message; empty when valid.
pub fn problems(app: &MovieApp, region: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let managed = managed_variables();
    for var in &app.spec.worker.env {
        if managed.contains(&var.name.as_str()) {
            problems.push(format!(
                "spec.worker.env sets {}, which the operator manages; remove it",
                var.name
            ));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for var in &app.spec.worker.env {
        if !seen.insert(var.name.as_str()) {
            problems.push(format!("spec.worker.env sets {} more than once", var.name));
        }
    }
    if let Some(recorded) = app.status.as_ref().and_then(|s| s.region.as_deref())
        && recorded != region
    {
        problems.push(format!(
            "the resources live in {recorded} but the MovieApp now resolves to {region}; \
             regions cannot change: recreate the MovieApp to move it"
        ));
    }
    if let Some(autoscaling) = &app.spec.worker.autoscaling
        && autoscaling.min_replicas > autoscaling.max_replicas
    {
        problems.push("spec.worker.autoscaling.minReplicas exceeds maxReplicas".to_owned());
    }
    if let Some(exports) = &app.spec.exports {
        let own = crate::naming::config_map_name(&app.name_any());
        if exports.config_map_name == own {
            problems.push(format!(
                "spec.exports.configMapName {own} is the name of the worker's own ConfigMap; \
                 choose another name"
            ));
        }
    }
    problems.extend(name_problems(app));
    problems
}

/// Explicit physical names that break their service's rules, or that name
/// one resource twice.
fn name_problems(app: &MovieApp) -> Vec<String> {
    let spec = &app.spec;
    let mut problems = Vec::new();
    if let Some(tables) = &spec.database.table_names {
        for table in TABLES {
            if let Some(name) = tables.get(table.component) {
                let field = format!("spec.database.tableNames.{}", table.component);
                problems.extend(check::table(&field, name).err());
            }
        }
    }
    if let Some(name) = &spec.queue.name {
        problems.extend(check::queue("spec.queue.name", name).err());
    }
    if let Some(name) = &spec.queue.dead_letter_queue_name {
        problems.extend(check::queue("spec.queue.deadLetterQueueName", name).err());
    }
    if let Some(name) = &spec.notifications.topic_name {
        problems.extend(check::topic("spec.notifications.topicName", name).err());
    }
    let namespace = app.metadata.namespace.as_deref().unwrap_or_default();
    let name = app.metadata.name.as_deref().unwrap_or_default();
    let names = PhysicalNames::of(AppId { namespace, name }, spec);
    let mut tables: Vec<&(&str, String)> = names.tables.iter().collect();
    tables.sort_by(|a, b| a.1.cmp(&b.1));
    for pair in tables.windows(2) {
        if pair[0].1 == pair[1].1 {
            problems.push(format!(
                "the {} and {} tables would both be {:?}; each table needs its own name",
                pair[0].0, pair[1].0, pair[0].1
            ));
        }
    }
    if names.jobs_queue == names.dead_letter_queue {
        problems.push(format!(
            "the jobs queue and the dead-letter queue would both be {:?}; \
             set spec.queue.deadLetterQueueName to another name",
            names.jobs_queue
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{MovieAppSpec, MovieAppStatus};

    fn app(spec: &str) -> MovieApp {
        let spec: MovieAppSpec = serde_saphyr::from_str(spec).expect("spec");
        MovieApp::new("a", spec)
    }

    #[test]
    fn a_default_spec_is_valid() {
        assert!(problems(&app("{}"), "us-east-1").is_empty());
    }

    #[test]
    fn managed_and_duplicate_variables_are_rejected() {
        let problems = problems(
            &app(
                "worker: { env: [{ name: TMDB_API_KEY, value: x }, { name: A, value: '1' }, { name: A, value: '2' }] }",
            ),
            "us-east-1",
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("TMDB_API_KEY"));
        assert!(problems[1].contains("more than once"));
    }

    #[test]
    fn explicit_names_are_checked_against_each_service_s_rules() {
        assert!(
            problems(
                &app(
                    "{ database: { tableNames: { users: legacy.users, movies: legacy.movies } }, queue: { name: legacy-jobs, deadLetterQueueName: legacy-dlq }, notifications: { topicName: legacy_topic } }"
                ),
                "us-east-1"
            )
            .is_empty()
        );
        let problems = problems(
            &app(
                "{ database: { tableNames: { users: ab, watchlists: 'a/b' } }, queue: { name: jobs.fifo, deadLetterQueueName: 'dead letter' }, notifications: { topicName: topic.fifo } }",
            ),
            "us-east-1",
        );
        let expected = [
            "spec.database.tableNames.users \"ab\" is not a DynamoDB table name",
            "spec.database.tableNames.watchlists \"a/b\" is not a DynamoDB table name",
            "spec.queue.name \"jobs.fifo\" names a FIFO queue",
            "spec.queue.deadLetterQueueName \"dead letter\" is not an SQS queue name",
            "spec.notifications.topicName \"topic.fifo\" names a FIFO topic",
        ];
        assert_eq!(problems.len(), expected.len(), "{problems:?}");
        for (problem, expected) in problems.iter().zip(expected) {
            assert!(problem.starts_with(expected), "{problem}");
        }
    }

    #[test]
    fn one_name_for_two_resources_is_rejected() {
        let problems = problems(
            &app(
                "{ database: { tableNames: { users: shared, movies: shared } }, queue: { name: same, deadLetterQueueName: same } }",
            ),
            "us-east-1",
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("the users and movies tables would both be \"shared\""));
        assert!(problems[1].contains("jobs queue and the dead-letter queue"));
    }

    #[test]
    fn a_premade_role_is_refused_only_when_the_operator_makes_roles() {
        let with = app(
            "worker: { serviceAccount: { annotations: { eks.amazonaws.com/role-arn: 'arn:aws:iam::1:role/x' } } }",
        );
        assert!(problems(&with, "us-east-1").is_empty());
        let problem = premade_role(&with).expect("refused");
        assert!(
            problem.contains("eks.amazonaws.com/role-arn") && problem.contains("remove"),
            "{problem}"
        );
        assert_eq!(premade_role(&app("{}")), None);
        let other = app("worker: { serviceAccount: { annotations: { team: data } } }");
        assert_eq!(premade_role(&other), None);
    }

    #[test]
    fn a_region_change_is_rejected() {
        let mut app = app("{}");
        app.status = Some(MovieAppStatus {
            region: Some("eu-west-1".into()),
            ..MovieAppStatus::default()
        });
        assert!(problems(&app, "eu-west-1").is_empty());
        assert_eq!(problems(&app, "us-east-1").len(), 1);
    }

    #[test]
    fn exports_may_not_take_the_worker_configmap_name() {
        let problems = problems(&app("exports: { configMapName: a-config }"), "us-east-1");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("spec.exports.configMapName a-config")
                && problems[0].contains("worker's own ConfigMap"),
            "{problems:?}"
        );
        assert!(problems_of("exports: { configMapName: a-exports }").is_empty());
    }

    fn problems_of(spec: &str) -> Vec<String> {
        problems(&app(spec), "us-east-1")
    }
}
