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
        queue_url: queue.url.clone(),
        topic_arn: notifications.topic_arn.clone(),
        auth_secret: auth_secret.to_owned(),
        aws_endpoint_url: config.aws_endpoint_url.clone(),
        tmdb_base_url: config.worker_tmdb_base_url.clone(),
    })
}
