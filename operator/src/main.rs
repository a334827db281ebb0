//! `movieapp-operator`: reconciles `MovieApp` objects (`movieapp.io/v1alpha1`).

use clap::Parser;

/// Runs the movie-catalog app on Kubernetes and AWS from `MovieApp` objects.
#[derive(Debug, Parser)]
#[command(name = "movieapp-operator", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
