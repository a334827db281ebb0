//! The IAM actions provisioning calls, from the declarations in
//! [`movieapp_model::iam`]: `docs/aws-resources.md` lists them and the
//! Terraform role grants them; tests keep the three in step, and the
//! integration suites check that every call they observe is declared.

use std::collections::BTreeSet;

use movieapp_model::iam::{Component, Resource};

/// `service:Action` for every AWS call in [`crate::provision`]: the
/// operator's calls on a MovieApp's tables, queues, topic and worker role.
pub fn provisioning_actions() -> BTreeSet<&'static str> {
    Component::Operator
        .calls()
        .iter()
        .filter(|c| {
            matches!(
                c.resource,
                Resource::Tables
                    | Resource::Queues
                    | Resource::Topic
                    | Resource::Subscriptions
                    | Resource::WorkerRoles
            )
        })
        .flat_map(|c| c.actions.iter().copied())
        .collect()
}

/// Whether a call counted as `movieapp_aws_requests_total{service, operation}`
/// is one the operator declares.
pub fn is_listed(service: &str, operation: &str) -> bool {
    Component::Operator.declares(service, operation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository_file(path: &str) -> String {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
    }

    /// Every `service:Action` token of a text for our four services.
    fn actions_in(text: &str) -> BTreeSet<String> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
            .filter(|token| {
                ["dynamodb:", "sqs:", "sns:", "iam:"].iter().any(|p| {
                    token.starts_with(p)
                        && token[p.len()..].starts_with(|c: char| c.is_ascii_uppercase())
                })
            })
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn listed_calls_are_the_declared_ones() {
        assert!(is_listed("sqs", "GetQueueUrl"));
        assert!(!is_listed("sqs", "PurgeQueue"));
        assert!(provisioning_actions().contains("dynamodb:UpdateTimeToLive"));
    }

    #[test]
    fn the_documentation_lists_exactly_these_actions() {
        let doc = repository_file("docs/aws-resources.md");
        let section = doc
            .split("\n## IAM permissions")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("docs/aws-resources.md has an \"## IAM permissions\" section");
        let documented = actions_in(section);
        let listed: BTreeSet<String> = provisioning_actions()
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(
            documented, listed,
            "docs/aws-resources.md and the operator's declared calls differ"
        );
    }

    /// The Terraform module reads its policies from the templates `make
    /// iam-policies` writes.
    fn terraform_policy(file: &str) -> String {
        let module = repository_file("terraform/modules/iam/main.tf");
        assert!(
            module.contains(&format!(
                "templatefile(\"${{path.module}}/policies/{file}\""
            )),
            "terraform/modules/iam/main.tf does not read policies/{file}"
        );
        repository_file(&format!("terraform/modules/iam/policies/{file}"))
    }

    #[test]
    fn the_terraform_role_grants_every_action() {
        let granted = actions_in(&terraform_policy("operator.json.tftpl"));
        let missing: Vec<&str> = provisioning_actions()
            .into_iter()
            .filter(|a| !granted.contains(*a))
            .collect();
        assert!(
            missing.is_empty(),
            "the operator's Terraform policy does not grant {missing:?}"
        );
    }

    /// The api-worker's role in Terraform grants every action its
    /// components call (`/readyz`'s describe calls included: without them
    /// the worker Pods never become Ready on AWS).
    #[test]
    fn the_terraform_worker_role_grants_what_the_api_worker_calls() {
        let granted = actions_in(&terraform_policy("worker.json.tftpl"));
        for component in Component::API_WORKER {
            let missing: Vec<&str> = component
                .actions()
                .into_iter()
                .filter(|a| !granted.contains(*a))
                .collect();
            assert!(
                missing.is_empty(),
                "the api-worker's Terraform role does not grant what {} calls: {missing:?}",
                component.name()
            );
        }
    }
}
