//! `movieapp-operator`: reconciles `MovieApp` objects (`movieapp.io/v1alpha1`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use movieapp_operator::config::{LogFormat, RunConfig};
use tracing_subscriber::EnvFilter;

/// Runs the movie-catalogue app on Kubernetes and AWS from `MovieApp` objects.
#[derive(Debug, Parser)]
#[command(name = "movieapp-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controller (in a cluster, or against KUBECONFIG).
    Run(RunConfig),
    /// Print the MovieApp CustomResourceDefinition as YAML.
    Crd,
    /// Write every shipped IAM policy, built from the declared AWS calls
    /// (`make iam-policies`).
    IamPolicies(movieapp_operator::policies::IamPoliciesArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crd => match movieapp_operator::crd::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: could not render the CRD: {error}");
                ExitCode::FAILURE
            }
        },
        Command::IamPolicies(args) => match movieapp_operator::policies::write(&args) {
            Ok(written) => {
                for path in written {
                    println!("wrote {}", path.display());
                }
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Run(config) => {
            init_tracing(config.log_format);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .thread_stack_size(movieapp_operator::controller::WORKER_STACK)
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("error: cannot start the async runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(movieapp_operator::controller::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "movieapp-operator failed");
                    eprintln!("error: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| {
        EnvFilter::new("info,kube=warn,aws_config=warn,aws_smithy_runtime=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
