//! `localenv`: the local environment's command line (run through
//! `tests/localenv/localenv.sh`, which builds it first; `make env-up`,
//! `make env-down` and `make env-status` call that).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use movieapp_localenv::process::Ending;
use movieapp_localenv::{Component, Probe, Request, stress};

/// The local environment: a Kubernetes control plane, moto and the TMDB
/// stub on 127.0.0.1, in the block of ports from LOCALENV_PORT_BASE.
#[derive(Debug, Parser)]
#[command(name = "localenv")]
struct Cli {
    /// The checkout the caller means; refused when this binary was built
    /// from another (a shared Cargo target directory holds one `localenv`
    /// for every checkout, and the last build wins).
    #[arg(long, hide = true)]
    checkout: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start (idempotent): returns once every component is healthy.
    Up,
    /// Stop exactly what was started, demo processes included, and remove
    /// .localenv/.
    Down {
        /// Stop the real node only (its Pods, the kubelet, containerd) and
        /// leave the rest running.
        #[arg(long)]
        real_node: bool,
    },
    /// Each process and its health. Exits 1 when a component is down or
    /// unhealthy, 2 when only a process run beside them (make demo's) is,
    /// 3 when no environment runs.
    Status {
        /// Print nothing; the exit code tells.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Stop one component and start it again with the same settings.
    Restart {
        /// etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
        /// kwok, moto, tmdb-stub; containerd or kubelet with a real node.
        component: String,
    },
    /// Start a process beside the components (a test's operator, a GitOps
    /// controller): recorded, so `status` checks it and `down` stops it,
    /// with its output in .localenv/logs/NAME.log and the caller's
    /// environment; returns once `--probe` answers (at once without one),
    /// or fails with the end of its log.
    Start {
        /// Letters, digits and dashes; not a component's name.
        name: String,
        /// A URL whose GET must answer 2xx.
        #[arg(long)]
        probe: Option<String>,
        /// Seconds to wait for the probe.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// The program and its arguments (after `--`).
        #[arg(required = true, last = true)]
        command: Vec<std::ffi::OsString>,
    },
    /// Stop a process `start` started: SIGTERM to its process group, SIGKILL
    /// after the grace period. Exits 1 when it had to be killed.
    Stop {
        name: String,
        /// Seconds between SIGTERM and SIGKILL.
        #[arg(long, default_value_t = 5)]
        grace: u64,
    },
    /// Exits 0 when the process `start` started as NAME runs, 1 otherwise.
    Running { name: String },
    /// Start and stop the environment many times in a row, each time
    /// waiting for a 2-replica Deployment to become available; exits 1 when
    /// a cycle failed.
    Stress {
        #[arg(long, default_value_t = 20)]
        cycles: u32,
        /// Write the figures into this document, between its
        /// `<!-- env-stress:begin -->` and `<!-- env-stress:end -->` lines.
        #[arg(long)]
        report: Option<PathBuf>,
    },
}

/// The checkout this binary was built from; `None` once that checkout has
/// been removed (the shared binary then belongs to no checkout).
fn built_from() -> Option<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .ok()
}

/// A name `start` may record a process under: it names a file of
/// .localenv/pids and .localenv/logs.
fn check_process_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if !valid {
        anyhow::bail!(
            "process name {name:?}: use 1 to 100 lower-case letters, digits and dashes, \
             not starting with a dash"
        );
    }
    if Component::from_name(name).is_ok() {
        anyhow::bail!("{name} is a component of the environment: use `restart {name}`");
    }
    Ok(())
}

/// Exit code for "built from another checkout": the wrapper rebuilds.
const OTHER_CHECKOUT: u8 = 98;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("localenv: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let built = built_from();
    if let Some(checkout) = &cli.checkout {
        let checkout = checkout
            .canonicalize()
            .with_context(|| format!("{}", checkout.display()))?;
        if built.as_ref() != Some(&checkout) {
            let of = built.map_or_else(
                || "a removed checkout".to_owned(),
                |root| root.display().to_string(),
            );
            eprintln!(
                "localenv: this build is of {of}, not {}",
                checkout.display()
            );
            return Ok(ExitCode::from(OTHER_CHECKOUT));
        }
    }
    let root = built.context("the checkout this binary was built from is gone")?;
    let state = root.join(".localenv");
    match cli.command {
        Command::Up => {
            movieapp_localenv::up(&Request::for_checkout(&root)?).await?;
        }
        Command::Down { real_node: true } => {
            if movieapp_localenv::remove_real_node(&state)? {
                eprintln!(">> the real node is stopped");
            } else {
                eprintln!(">> the environment runs no real node");
            }
        }
        Command::Down { real_node: false } => {
            if movieapp_localenv::down(&state)? {
                eprintln!(">> the local environment is stopped");
            } else {
                eprintln!(">> no local environment to stop");
            }
        }
        Command::Status { quiet } => {
            return Ok(match movieapp_localenv::status(&state).await? {
                None => {
                    if !quiet {
                        println!("no local environment runs in {}", state.display());
                        if state.join("pids").is_dir() {
                            println!(
                                "(processes an earlier version or an interrupted start recorded \
                                 may run: `make env-down` stops them)"
                            );
                        }
                    }
                    ExitCode::from(3)
                }
                Some(report) => {
                    if !quiet {
                        print!("{report}");
                    }
                    if report.is_healthy() {
                        ExitCode::SUCCESS
                    } else if report.components_healthy() {
                        ExitCode::from(2)
                    } else {
                        ExitCode::FAILURE
                    }
                }
            });
        }
        Command::Start {
            name,
            probe,
            timeout,
            command,
        } => {
            check_process_name(&name)?;
            let layout = movieapp_localenv::running(&state)?;
            let (program, args) = command.split_first().context("no program to start")?;
            let spec = movieapp_localenv::process::Spec::new(&name, program).args(args.to_vec());
            let probe = probe.map_or(Probe::Running, Probe::get);
            let identity = movieapp_localenv::start_process(
                &layout,
                spec,
                probe,
                std::time::Duration::from_secs(timeout),
            )
            .await?;
            println!(
                "{name}: pid {}, log {}",
                identity.pid,
                layout.log(&name).display()
            );
        }
        Command::Stop { name, grace } => {
            check_process_name(&name)?;
            let layout = movieapp_localenv::running(&state)?;
            let ending = movieapp_localenv::stop_process_within(
                &layout,
                &name,
                std::time::Duration::from_secs(grace),
            )?;
            println!("{name}: {ending}");
            if ending == Ending::Killed {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Running { name } => {
            check_process_name(&name)?;
            return Ok(if movieapp_localenv::recorded(&state, &name).is_some() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Restart { component } => {
            movieapp_localenv::restart(&state, Component::from_name(&component)?).await?;
        }
        Command::Stress { cycles, report } => {
            let request = Request::for_checkout(&root)?;
            let started = std::time::Instant::now();
            let results = stress::run(&request, cycles).await?;
            let text = stress::markdown(
                &results,
                &format!("make env-stress (CYCLES={cycles})"),
                &machine(&root, request.ports.base()),
                started.elapsed(),
            );
            println!("{text}");
            if let Some(document) = report {
                stress::write_report(&root.join(document), &text)?;
            }
            if !results.iter().all(stress::Cycle::passed) {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// "on 2026-12-02 (commit abc1234), 2 cores (CPU), Linux 6.1, ports from 27300".
fn machine(root: &Path, base: u16) -> String {
    let output = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "?".to_owned())
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "?".to_owned());
    format!(
        "on {} (commit {}), {} cores ({cpu}), {} {}, ports from {base}",
        output("date", &["-u", "+%Y-%m-%d"]),
        output("git", &["rev-parse", "--short", "HEAD"]),
        std::thread::available_parallelism().map_or(0, usize::from),
        output("uname", &["-s"]),
        output("uname", &["-r"]),
    )
}

#[cfg(test)]
mod tests {
    use super::check_process_name;

    #[test]
    fn start_refuses_names_that_are_no_file_name_or_a_component() {
        for good in ["rbac-e2e-1a2b3c-operator", "oci-registry", "a"] {
            assert!(check_process_name(good).is_ok(), "{good}");
        }
        let long = "a".repeat(101);
        for bad in [
            "",
            "Bad",
            "a/b",
            "../x",
            "-x",
            "a b",
            long.as_str(),
            "moto",
            "kube-apiserver",
        ] {
            assert!(check_process_name(bad).is_err(), "{bad:?}");
        }
    }
}
