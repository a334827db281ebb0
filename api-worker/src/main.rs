//! `api-worker`: the movie service (see the library for everything).

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = api_worker::config::Cli::parse();
    api_worker::server::init_tracing(cli.log_format);
    match api_worker::server::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "api-worker failed");
            eprintln!("api-worker: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
