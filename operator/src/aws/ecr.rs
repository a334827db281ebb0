//! Resolving the worker image through ECR to an immutable digest.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use aws_sdk_ecr::types::ImageIdentifier;

use super::{AwsClients, AwsError, ErrorKind};
use crate::crd::ImageSpec;

/// An image pinned to its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// `<registry>/<repository>@sha256:...`, what the Deployment runs.
    pub reference: String,
    /// `sha256:...`
    pub digest: String,
}

/// Why an image could not be resolved.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ImageError {
    #[error("ECR repository {repository} does not exist in {region}")]
    RepositoryNotFound { repository: String, region: String },
    #[error("image {repository}:{reference} is not in ECR ({region})")]
    ImageNotFound {
        repository: String,
        reference: String,
        region: String,
    },
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// Resolves images, remembering each repository's URI (which never changes)
/// so that a steady resync costs one `DescribeImages` call.
#[derive(Debug, Default)]
pub struct ImageResolver {
    repository_uris: Mutex<HashMap<(String, String), String>>,
}

impl ImageResolver {
    pub async fn resolve(
        &self,
        aws: &AwsClients,
        image: &ImageSpec,
    ) -> Result<ResolvedImage, ImageError> {
        let repository_uri = self.repository_uri(aws, &image.repository).await?;
        let (id, reference) = match &image.digest {
            Some(digest) => (
                ImageIdentifier::builder().image_digest(digest).build(),
                digest.clone(),
            ),
            None => {
                let tag = image.effective_tag();
                (
                    ImageIdentifier::builder().image_tag(tag).build(),
                    tag.to_owned(),
                )
            }
        };
        let found = aws
            .ecr
            .describe_images()
            .repository_name(&image.repository)
            .image_ids(id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecr", "DescribeImages", e));
        let details = match found {
            Ok(output) => output.image_details.unwrap_or_default(),
            Err(error) if error.kind == ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(error.into()),
        };
        let digest = details
            .into_iter()
            .find_map(|d| d.image_digest)
            .ok_or_else(|| ImageError::ImageNotFound {
                repository: image.repository.clone(),
                reference,
                region: aws.region.clone(),
            })?;
        Ok(ResolvedImage {
            reference: format!("{repository_uri}@{digest}"),
            digest,
        })
    }

    async fn repository_uri(
        &self,
        aws: &AwsClients,
        repository: &str,
    ) -> Result<String, ImageError> {
        let key = (aws.region.clone(), repository.to_owned());
        if let Some(uri) = self
            .repository_uris
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(uri.clone());
        }
        let output = aws
            .ecr
            .describe_repositories()
            .repository_names(repository)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecr", "DescribeRepositories", e));
        let not_found = || ImageError::RepositoryNotFound {
            repository: repository.to_owned(),
            region: aws.region.clone(),
        };
        let uri = match output {
            Ok(output) => output
                .repositories
                .unwrap_or_default()
                .into_iter()
                .find_map(|r| r.repository_uri)
                .ok_or_else(not_found)?,
            Err(error) if error.kind == ErrorKind::NotFound => return Err(not_found()),
            Err(error) => return Err(error.into()),
        };
        self.repository_uris
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, uri.clone());
        Ok(uri)
    }
}
