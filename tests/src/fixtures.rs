//! Objects the end-to-end tests create: namespaces, the TMDB Secret, images
//! in ECR, and the fresh [`Stage`] most tests start from.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use movieapp_operator::crd::MovieApp;
use serde_json::json;

use crate::{LocalEnv, unique_name};

/// A fresh stage: the MovieApp CRD installed, a new namespace (with the TMDB
/// Secret a MovieApp refers to by default, unless asked otherwise), and an
/// image `<repository>:1.0.0` in ECR.
#[allow(missing_debug_implementations)] // kube::Client has no Debug
pub struct Stage {
    pub env: LocalEnv,
    pub client: kube::Client,
    pub aws: aws_config::SdkConfig,
    pub ecr: aws_sdk_ecr::Client,
    /// The namespace, named after the prefix given.
    pub ns: String,
    pub repository: String,
    /// The digest of `<repository>:1.0.0`.
    pub digest: String,
    /// MovieApps in the namespace.
    pub api: Api<MovieApp>,
}

impl Stage {
    /// A stage with the TMDB Secret.
    pub async fn new(prefix: &str) -> Result<Self> {
        Self::build(prefix, true).await
    }

    /// A stage whose namespace has no TMDB Secret yet.
    pub async fn without_tmdb_secret(prefix: &str) -> Result<Self> {
        Self::build(prefix, false).await
    }

    async fn build(prefix: &str, tmdb_secret: bool) -> Result<Self> {
        let env = LocalEnv::get();
        let client = env.kube().await?;
        install_crd(&client).await?;
        let ns = unique_name(prefix);
        namespace(&client, &ns).await?;
        if tmdb_secret {
            self::tmdb_secret(&client, &ns, &env.tmdb_api_key).await?;
        }
        let aws = env.aws().await;
        let ecr = aws_sdk_ecr::Client::new(&aws);
        let repository = unique_name("img");
        let digest = push_image(&ecr, &repository, "1.0.0", 1).await?;
        let api = Api::namespaced(client.clone(), &ns);
        Ok(Self {
            env,
            client,
            aws,
            ecr,
            ns,
            repository,
            digest,
            api,
        })
    }
}

/// Waits until `check` holds for the MovieApp `name`, returning it; fails
/// after `timeout` naming `what` was awaited.
pub async fn wait_for_movieapp(
    api: &Api<MovieApp>,
    name: &str,
    what: &str,
    timeout: std::time::Duration,
    check: impl Fn(&MovieApp) -> bool,
) -> Result<MovieApp> {
    crate::eventually(what, timeout, || async {
        let app = api.get(name).await?;
        Ok(check(&app).then_some(app))
    })
    .await
}

/// Creates a namespace.
pub async fn namespace(client: &kube::Client, name: &str) -> Result<()> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .context("creating a namespace")?;
    Ok(())
}

/// Deletes a namespace (and so everything in it).
pub async fn delete_namespace(client: &kube::Client, name: &str) -> Result<()> {
    Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await
        .context("deleting a namespace")?;
    Ok(())
}

/// Creates the TMDB Secret a MovieApp refers to by default (`tmdb`/`api-key`).
pub async fn tmdb_secret(client: &kube::Client, namespace: &str, key: &str) -> Result<()> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("tmdb".to_owned()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            "api-key".to_owned(),
            ByteString(key.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .context("creating the TMDB Secret")?;
    Ok(())
}

/// Records an image manifest under `repository:tag` in ECR (creating the
/// repository when missing) and returns its digest. A different `variant`
/// gives a different digest for the same tag: that is how a tag moves.
pub async fn push_image(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
    tag: &str,
    variant: u32,
) -> Result<String> {
    match ecr
        .create_repository()
        .repository_name(repository)
        .send()
        .await
    {
        Ok(_) => {}
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_repository_already_exists_exception()) => {}
        Err(error) => return Err(error).context("creating the ECR repository"),
    }
    // moto derives the image digest from the layers: vary them with the variant.
    let layer_digest = format!(
        "sha256:{:064x}",
        u128::from(variant) * 104_729 + tag.len() as u128
    );
    let config_digest = format!(
        "sha256:{:064x}",
        u128::from(variant) * 7919 + tag.len() as u128
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1469 + variant,
            "digest": config_digest,
        },
        "layers": [{
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": 2_811_478,
            "digest": layer_digest,
        }]
    });
    let output = ecr
        .put_image()
        .repository_name(repository)
        .image_tag(tag)
        .image_manifest(manifest.to_string())
        .image_manifest_media_type("application/vnd.docker.distribution.manifest.v2+json")
        .send()
        .await
        .context("PutImage")?;
    output
        .image
        .and_then(|i| i.image_id)
        .and_then(|id| id.image_digest)
        .context("PutImage returned no digest")
}

/// Creates an ECR repository as `terraform/modules/registry` makes it: every
/// tag immutable but the one channel tag.
pub async fn release_repository(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
    channel_tag: &str,
) -> Result<()> {
    use aws_sdk_ecr::types::{
        ImageTagMutability, ImageTagMutabilityExclusionFilter,
        ImageTagMutabilityExclusionFilterType,
    };
    let channel = ImageTagMutabilityExclusionFilter::builder()
        .filter(channel_tag)
        .filter_type(ImageTagMutabilityExclusionFilterType::Wildcard)
        .build()
        .context("an exclusion filter")?;
    ecr.create_repository()
        .repository_name(repository)
        .image_tag_mutability(ImageTagMutability::ImmutableWithExclusion)
        .image_tag_mutability_exclusion_filters(channel)
        .send()
        .await
        .context("creating the ECR repository (IMMUTABLE_WITH_EXCLUSION)")?;
    Ok(())
}

/// Installs (server-side applies) the MovieApp CRD from the operator's types
/// and waits until the API server serves it.
pub async fn install_crd(client: &kube::Client) -> Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Patch, PatchParams};
    let crd = <movieapp_operator::crd::MovieApp as kube::CustomResourceExt>::crd();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.patch(
        "movieapps.movieapp.io",
        &PatchParams::apply("movieapp-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .context("installing the MovieApp CRD")?;
    crate::eventually(
        "the MovieApp CRD to be established",
        std::time::Duration::from_secs(60),
        || async {
            let crd = api.get("movieapps.movieapp.io").await?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            Ok(established.then_some(()))
        },
    )
    .await
}

/// Creates the SQS queue `name` (no attributes); its URL and ARN.
pub async fn sqs_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<(String, String)> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .with_context(|| format!("creating the queue {name}"))?
        .queue_url
        .with_context(|| format!("CreateQueue returned no URL for {name}"))?;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .with_context(|| format!("reading the ARN of {name}"))?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .with_context(|| format!("the queue {name} has no ARN"))?;
    Ok((url, arn))
}

/// A CloudTrail management event as an EventBridge rule delivers it to an
/// SQS target. moto records no CloudTrail events for the calls made to it,
/// so the test writes what AWS would deliver for the change it just made.
pub fn cloudtrail_event(source: &str, event_name: &str, parameters: serde_json::Value) -> String {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    json!({
        "version": "0",
        "id": unique_name("event"),
        "detail-type": "AWS API Call via CloudTrail",
        "source": source,
        "account": "123456789012",
        "time": now,
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "eventVersion": "1.09",
            "eventTime": now,
            "eventSource": format!("{}.amazonaws.com", source.trim_start_matches("aws.")),
            "eventName": event_name,
            "awsRegion": "us-east-1",
            "requestParameters": parameters,
        }
    })
    .to_string()
}
