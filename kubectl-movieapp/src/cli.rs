//! The command line, and what each exit code means.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::collect::{self, AwsOptions};
use crate::{render, status};

/// Exit code when the MovieApp is `Ready`.
pub const EXIT_READY: u8 = 0;
/// Exit code when it is not (`NotReady` or `Paused`).
pub const EXIT_NOT_READY: u8 = 1;
/// Exit code of an error: a bad flag, no cluster, an unknown MovieApp.
pub const EXIT_ERROR: u8 = 2;

/// Shows MovieApps as the operator and AWS see them.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl movieapp",
    bin_name = "kubectl movieapp",
    version,
    about
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The MovieApp, its conditions, each AWS resource as AWS reports it
    /// and each Kubernetes child, marking what is not ready and why.
    ///
    /// Exit codes: 0 Ready; 1 not Ready (or paused); 2 error (bad flag,
    /// no cluster, unknown MovieApp). AWS that cannot be reached is shown as
    /// unknown, not an error.
    Status(StatusArgs),
}

/// `kubectl movieapp status NAME`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The MovieApp's name.
    pub name: String,

    /// Its namespace; defaults to the kubeconfig context's.
    #[arg(short, long)]
    pub namespace: Option<String>,

    /// `text` (a tree) or `json` (for scripts; see docs/troubleshooting.md).
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,

    /// The kubeconfig file; defaults to KUBECONFIG, then ~/.kube/config.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context; defaults to the current one.
    #[arg(long)]
    pub context: Option<String>,

    /// An AWS endpoint instead of AWS's own (moto, LocalStack), as the
    /// operator's --aws-endpoint-url.
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub aws_endpoint_url: Option<String>,

    /// The AWS region when neither the MovieApp's spec nor its status
    /// names one.
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,

    /// The operator's cluster id (its --cluster-id): a resource tagged for
    /// another cluster is shown as that cluster's.
    #[arg(long, env = "MOVIEAPP_CLUSTER_ID", default_value = movieapp_operator::aws::tags::DEFAULT_CLUSTER)]
    pub cluster_id: String,

    /// How long to wait for the API server and, separately, for AWS
    /// (`10s`, `1m`).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Runs `cli`; returns the exit code.
pub async fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Status(args) => match status_command(&args).await {
            Ok(code) => code,
            Err(error) => {
                eprintln!("error: {error}");
                EXIT_ERROR
            }
        },
    }
}

async fn status_command(args: &StatusArgs) -> anyhow::Result<u8> {
    let (client, default_namespace, url) = collect::connect(
        args.kubeconfig.as_deref(),
        args.context.as_deref(),
        args.timeout,
    )
    .await?;
    let namespace = args.namespace.clone().unwrap_or(default_namespace);
    let app = collect::movieapp(&client, &url, &namespace, &args.name).await?;
    let aws = AwsOptions {
        endpoint: args.aws_endpoint_url.clone().filter(|e| !e.is_empty()),
        region: args.region.clone().filter(|r| !r.is_empty()),
        cluster_id: args.cluster_id.clone(),
        timeout: args.timeout,
    };
    let report = status::status(&client, &app, &aws).await;
    match args.output {
        Output::Text => print!("{}", render::text(&report)),
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(report.verdict.exit_code())
}
