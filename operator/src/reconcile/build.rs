//! Build: the children of a MovieApp, when every input is there. Pure: the
//! children themselves are built by [`children::build`] (golden files in
//! `operator/tests/fixtures/children/`).
//!
//! When an input is missing (the image, an AWS part, the TMDB Secret), no
//! children are built and the running ones stay exactly as they are.

use std::collections::BTreeMap;

use kube::Resource;

use super::children::{self, Children, Inputs};
use super::provision::WithAws;
use crate::aws::ecr::ResolvedImage;
use crate::config::RunConfig;
use crate::provision::Provisioned;

/// Why the children could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the MovieApp has no {0}")]
    Malformed(&'static str),
}

impl Error {
    pub fn category(&self) -> &'static str {
        match self {
            Error::Malformed(_) => "malformed_object",
        }
    }
}

/// A MovieApp with its AWS side and, when every input is there, its children.
#[derive(Debug)]
pub struct Built<'a> {
    pub with_aws: WithAws<'a>,
    pub children: Option<Children>,
}

pub fn build<'a>(with_aws: WithAws<'a>, config: &RunConfig) -> Result<Built<'a>, Error> {
    let inputs = match (&with_aws.image, &with_aws.worker_blocker) {
        (Ok(image), None) => inputs(
            config,
            image,
            &with_aws.object.region,
            &with_aws.provisioned,
            &with_aws.auth_secret,
        ),
        _ => None,
    };
    let children = match inputs {
        Some(inputs) => {
            let app = with_aws.object.app;
            let owner = app
                .controller_owner_ref(&())
                .ok_or(Error::Malformed("metadata for an owner reference"))?;
            Some(children::build(app, &owner, &inputs))
        }
        None => None,
    };
    Ok(Built { with_aws, children })
}

/// What the children need from the image and the AWS side, when all of it is there.
fn inputs(
    config: &RunConfig,
    image: &ResolvedImage,
    region: &str,
    provisioned: &Provisioned,
    auth_secret: &str,
) -> Option<Inputs> {
    let tables = provisioned.tables.value.as_ref()?;
    let queue = provisioned.queue.value.as_ref()?;
    let notifications = provisioned.notifications.value.as_ref()?;
    // A role the operator makes must be there (and ours) before the
    // worker's ServiceAccount names it.
    let worker_role_arn = match &provisioned.role {
        Some(role) => Some(role.value.as_ref()?.arn.clone()),
        None => None,
    };
    let table_arns: BTreeMap<String, String> = tables
        .iter()
        .map(|t| (t.component.clone(), t.arn.clone()))
        .collect();
    let tables: BTreeMap<String, String> = tables
        .iter()
        .map(|t| (t.component.clone(), t.name.clone()))
        .collect();
    if movieapp_model::TABLES
        .iter()
        .any(|t| !tables.contains_key(t.component))
    {
        return None;
    }
    Some(Inputs {
        image: image.reference.clone(),
        region: region.to_owned(),
        tables,
        table_arns,
        queue_url: queue.url.clone(),
        queue_arn: queue.arn.clone(),
        dead_letter_url: queue.dead_letter_url.clone(),
        dead_letter_arn: queue.dead_letter_arn.clone(),
        topic_arn: notifications.topic_arn.clone(),
        auth_secret: auth_secret.to_owned(),
        aws_endpoint_url: config
            .worker_aws_endpoint_url
            .clone()
            .or_else(|| config.aws_endpoint_url.clone()),
        tmdb_base_url: config.worker_tmdb_base_url.clone(),
        dedicated_nodes: config.worker_dedicated_nodes.clone(),
        worker_role_arn,
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::crd::{NotificationsStatus, QueueStatus, TableStatus};
    use crate::provision::Observed;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunConfig,
    }

    fn provisioned(tables: &[&str]) -> Provisioned {
        let tables = tables
            .iter()
            .map(|component| TableStatus {
                component: (*component).to_owned(),
                name: format!("t-{component}"),
                arn: format!("arn:aws:dynamodb:eu-west-1:1:table/t-{component}"),
            })
            .collect();
        Provisioned {
            tables: Observed::ready(tables, Vec::new()),
            queue: Observed::ready(
                QueueStatus {
                    url: "https://sqs/1/jobs".into(),
                    arn: "arn:aws:sqs:eu-west-1:1:jobs".into(),
                    dead_letter_url: "https://sqs/1/dlq".into(),
                    dead_letter_arn: "arn:aws:sqs:eu-west-1:1:dlq".into(),
                },
                Vec::new(),
            ),
            notifications: Observed::ready(
                NotificationsStatus {
                    topic_arn: "arn:aws:sns:eu-west-1:1:topic".into(),
                    subscriptions: Vec::new(),
                },
                Vec::new(),
            ),
            role: None,
        }
    }

    fn image() -> ResolvedImage {
        ResolvedImage {
            reference: "r/api-worker@sha256:1".into(),
            digest: "sha256:1".into(),
        }
    }

    #[test]
    fn inputs_carry_every_name_and_arn_the_exports_publish() {
        let config = Cli::parse_from(["movieapp-operator"]).run;
        let all: Vec<&str> = movieapp_model::TABLES.iter().map(|t| t.component).collect();
        let inputs = inputs(&config, &image(), "eu-west-1", &provisioned(&all), "a-auth")
            .expect("every input is there");
        for component in &all {
            assert_eq!(inputs.tables[*component], format!("t-{component}"));
            assert_eq!(
                inputs.table_arns[*component],
                format!("arn:aws:dynamodb:eu-west-1:1:table/t-{component}")
            );
        }
        assert_eq!(inputs.queue_url, "https://sqs/1/jobs");
        assert_eq!(inputs.queue_arn, "arn:aws:sqs:eu-west-1:1:jobs");
        assert_eq!(inputs.dead_letter_url, "https://sqs/1/dlq");
        assert_eq!(inputs.dead_letter_arn, "arn:aws:sqs:eu-west-1:1:dlq");
        assert_eq!(inputs.topic_arn, "arn:aws:sns:eu-west-1:1:topic");
        assert_eq!(inputs.region, "eu-west-1");
    }

    #[test]
    fn no_inputs_while_a_table_is_missing() {
        let config = Cli::parse_from(["movieapp-operator"]).run;
        let some: Vec<&str> = movieapp_model::TABLES
            .iter()
            .skip(1)
            .map(|t| t.component)
            .collect();
        assert!(
            inputs(
                &config,
                &image(),
                "eu-west-1",
                &provisioned(&some),
                "a-auth"
            )
            .is_none()
        );
    }
}
