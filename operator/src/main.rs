//! `movieapp-operator`: reconciles `MovieApp` objects (`movieapp.io/v1alpha1`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Runs the movie-catalogue app on Kubernetes and AWS from `MovieApp` objects.
#[derive(Debug, Parser)]
#[command(name = "movieapp-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the MovieApp CustomResourceDefinition as YAML.
    Crd,
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
    }
}
