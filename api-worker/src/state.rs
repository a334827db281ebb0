//! The one state every handler and job shares.

use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;

use clap::Parser;

use crate::cache::MovieCache;
use crate::client::ClientResolver;
use crate::config::{HttpSettings, Settings};
use crate::metrics::{CountAwsRequests, Metrics};
use crate::notify::Notifier;
use crate::ratelimit::{CLIENT_KEYS, KeyedLimiter, Rate};
use crate::readiness::Readiness;
use crate::tmdb::TmdbClient;

#[derive(Debug)]
pub struct Inner {
    pub settings: Settings,
    pub http: HttpSettings,
    pub client: ClientResolver,
    /// TMDB calls per client (see `--tmdb-client-burst`).
    pub tmdb_clients: KeyedLimiter<IpAddr>,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub tmdb: TmdbClient,
    pub cache: MovieCache,
    pub notifier: Notifier,
    pub metrics: Metrics,
    pub readiness: Readiness,
}

/// Cheap to clone: handlers, jobs and the Lambda adapters share one.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The AWS configuration for `settings`: the SDK's own lookup of credentials
/// and region, with the region and endpoint overridden when given.
pub async fn aws_config(settings: &Settings) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &settings.aws_region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(endpoint) = &settings.aws_endpoint_url {
        loader = loader.endpoint_url(endpoint.as_str().trim_end_matches('/'));
    }
    loader.load().await
}

impl AppState {
    /// Builds the state without any network call, so start-up (and a Lambda
    /// cold start) stays fast; clients connect on first use.
    pub fn new(
        settings: Settings,
        http: HttpSettings,
        aws: &aws_config::SdkConfig,
    ) -> anyhow::Result<Self> {
        let client = ClientResolver::new(http.trusted_proxies.0.clone(), &http.forwarded_header)?;
        let tmdb_clients = KeyedLimiter::new(
            Rate {
                burst: settings.tmdb.tmdb_client_burst,
                refill: settings.tmdb.tmdb_client_refill,
            },
            CLIENT_KEYS,
        );
        let metrics = Metrics::new();
        let dynamo = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(aws)
                .interceptor(CountAwsRequests(metrics.clone()))
                .build(),
        );
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(aws)
                .interceptor(CountAwsRequests(metrics.clone()))
                .build(),
        );
        let sns = aws_sdk_sns::Client::from_conf(
            aws_sdk_sns::config::Builder::from(aws)
                .interceptor(CountAwsRequests(metrics.clone()))
                .build(),
        );
        let tmdb = TmdbClient::new(&settings.tmdb, metrics.clone())?;
        let cache = MovieCache::new(
            dynamo.clone(),
            settings.movies_table.clone(),
            settings.cache.clone(),
        );
        let notifier = Notifier::new(sns, settings.notifications_topic_arn.clone());
        Ok(Self(Arc::new(Inner {
            settings,
            http,
            client,
            tmdb_clients,
            dynamo,
            sqs,
            tmdb,
            cache,
            notifier,
            metrics,
            readiness: Readiness::default(),
        })))
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            http: HttpSettings,
        }
        // Every field has a default.
        Defaults::parse_from(["api-worker"]).http
    }
}
