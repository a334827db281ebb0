//! `api-worker`: the movie service.

use clap::Parser;

/// The movie service: HTTP API, web page and background jobs.
#[derive(Debug, Parser)]
#[command(name = "api-worker", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
