//! `api-worker-lambda`: the api-worker on AWS Lambda, packaged as
//! `bootstrap` for the `provided.al2023` runtime (see `api_worker::lambda`).

use clap::ValueEnum;

use api_worker::config::LogFormat;

/// One thread: Lambda hands a function instance one event at a time, and
/// password hashing runs on tokio's blocking pool either way.
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let format = std::env::var("LOG_FORMAT")
        .ok()
        .and_then(|value| LogFormat::from_str(&value, true).ok())
        .unwrap_or(LogFormat::Json);
    api_worker::server::init_tracing(format);
    match api_worker::lambda::run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // Before the first event this is an init error: Lambda reports
            // the exit and these lines are in the function's log group.
            tracing::error!(error = %error, "api-worker Lambda function failed");
            eprintln!("api-worker-lambda: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
