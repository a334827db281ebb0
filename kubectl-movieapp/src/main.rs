//! `kubectl-movieapp`: found by kubectl on the PATH, run as `kubectl movieapp`.

use std::process::ExitCode;

use clap::Parser;
use kubectl_movieapp::cli::{self, Cli};

fn main() -> ExitCode {
    // clap exits with 2 on a bad flag and 0 for --help and --version.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(cli::EXIT_ERROR);
        }
    };
    ExitCode::from(runtime.block_on(cli::run(cli)))
}
