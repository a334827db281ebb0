//! Creates (or deletes) one set of the worker's AWS resources in the local
//! environment, from the `movieapp-model` definitions, for the scripts that
//! run a real `api-worker serve` (browser test, schemathesis, benchmark).
//!
//!   cargo run -p api-worker --example local_resources -- create PREFIX STATE_FILE
//!       prints `export MOVIEAPP_...=...` lines; STATE_FILE remembers the names
//!   cargo run -p api-worker --example local_resources -- delete STATE_FILE

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::ExitCode;

use common::{Env, Fixture, Resources};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["create", prefix, state_file] => {
            let fixture = Fixture::new(prefix).await;
            let state = serde_json::to_string(&fixture.resources()).unwrap_or_default();
            if let Err(error) = std::fs::write(state_file, state) {
                eprintln!("writing {state_file}: {error}");
                return ExitCode::FAILURE;
            }
            print!("{}", fixture.exports());
            fixture.keep();
            ExitCode::SUCCESS
        }
        ["delete", state_file] => {
            let resources: Resources =
                match std::fs::read_to_string(state_file).map(|s| serde_json::from_str(&s)) {
                    Ok(Ok(resources)) => resources,
                    _ => {
                        eprintln!("{state_file} does not name resources to delete");
                        return ExitCode::FAILURE;
                    }
                };
            resources.delete(&Env::get().aws().await).await;
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: local_resources create PREFIX STATE_FILE | delete STATE_FILE");
            ExitCode::from(2)
        }
    }
}
