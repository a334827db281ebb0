//! The IAM actions provisioning calls: the operator's role needs exactly
//! these (plus ECR's, for image resolution). `docs/aws-resources.md` lists
//! them and the Terraform role grants them; tests keep the three in step, and
//! the integration suite checks that every call it observes is listed here.

/// `service:Operation` for every AWS call in [`crate::provision`].
pub const ACTIONS: &[&str] = &[
    // DynamoDB (database/)
    "dynamodb:CreateTable",
    "dynamodb:DeleteTable",
    "dynamodb:DescribeContinuousBackups",
    "dynamodb:DescribeTable",
    "dynamodb:DescribeTimeToLive",
    "dynamodb:ListTagsOfResource",
    "dynamodb:TagResource",
    "dynamodb:UntagResource",
    "dynamodb:UpdateContinuousBackups",
    "dynamodb:UpdateTable",
    "dynamodb:UpdateTimeToLive",
    // SQS (sqs.rs)
    "sqs:CreateQueue",
    "sqs:DeleteQueue",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ListQueueTags",
    "sqs:SetQueueAttributes",
    "sqs:TagQueue",
    "sqs:UntagQueue",
    // SNS (sns.rs)
    "sns:CreateTopic",
    "sns:DeleteTopic",
    "sns:GetSubscriptionAttributes",
    "sns:ListSubscriptionsByTopic",
    "sns:ListTagsForResource",
    "sns:SetSubscriptionAttributes",
    "sns:Subscribe",
    "sns:TagResource",
    "sns:Unsubscribe",
    "sns:UntagResource",
];

/// Whether a call counted as `movieapp_aws_requests_total{service, operation}`
/// is one of [`ACTIONS`].
pub fn is_listed(service: &str, operation: &str) -> bool {
    ACTIONS.contains(&format!("{service}:{operation}").as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository_file(path: &str) -> String {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
    }

    /// Every `service:Action` token of a text for our three services.
    fn actions_in(text: &str) -> std::collections::BTreeSet<String> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
            .filter(|token| {
                ["dynamodb:", "sqs:", "sns:"].iter().any(|p| {
                    token.starts_with(p)
                        && token[p.len()..].starts_with(|c: char| c.is_ascii_uppercase())
                })
            })
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn actions_are_sorted_per_service_and_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for action in ACTIONS {
            assert!(seen.insert(*action), "{action} listed twice");
        }
        assert!(is_listed("sqs", "GetQueueUrl"));
        assert!(!is_listed("sqs", "PurgeQueue"));
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
        let listed: std::collections::BTreeSet<String> =
            ACTIONS.iter().map(|a| (*a).to_owned()).collect();
        assert_eq!(
            documented, listed,
            "docs/aws-resources.md and iam::ACTIONS differ"
        );
    }

    #[test]
    fn the_terraform_role_grants_every_action() {
        let granted = actions_in(&repository_file("terraform/modules/iam/main.tf"));
        let missing: Vec<&&str> = ACTIONS.iter().filter(|a| !granted.contains(**a)).collect();
        assert!(
            missing.is_empty(),
            "terraform/modules/iam/main.tf does not grant {missing:?}"
        );
    }
}
