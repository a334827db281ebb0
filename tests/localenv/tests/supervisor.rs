//! The supervisor against the failures it exists for, each on a real
//! environment of its own: in a temporary directory, on the block of ports
//! after the checkout's (`LOCALENV_PORT_BASE` + 32), one test at a time.
//!
//! - a port of the block taken by an outgoing connection between the port
//!   check and the component's start (what the kernel did to a block inside
//!   the ephemeral range): the start fails naming the component and its
//!   log, and leaves nothing running;
//! - kube-scheduler dying after "up": `status` names it with its log, a
//!   restart brings it back;
//! - a block in the ephemeral range, a port taken before the start: refused
//!   before anything starts.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use movieapp_localenv::ports::{BLOCK_SIZE, Ephemeral, PortBlock, Slot};
use movieapp_localenv::supervisor::recorded;
use movieapp_localenv::{Component, RealNodeWanted, Request};

/// One environment at a time: they share the block.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A request for an environment in a fresh temporary directory, on the
/// block after the checkout's; stopped and removed when dropped.
struct Scratch {
    request: Request,
}

impl Scratch {
    fn new(name: &str) -> Result<Self> {
        let base = PortBlock::from_env()?.base() + BLOCK_SIZE;
        let state =
            std::env::temp_dir().join(format!("localenv-test-{name}-{}", std::process::id()));
        Ok(Self {
            request: Request {
                root: root(),
                state,
                ports: PortBlock::new(base)?,
                tmdb_api_key: "test-key".to_owned(),
                real_node: RealNodeWanted::No,
            },
        })
    }

    fn state(&self) -> &Path {
        &self.request.state
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(error) = movieapp_localenv::down(&self.request.state) {
            eprintln!("stopping the test environment: {error:#}");
        }
    }
}

/// The error `up` fails with.
async fn refusal(request: &Request) -> Result<String> {
    match movieapp_localenv::up(request).await {
        Ok(_) => anyhow::bail!("up was expected to refuse"),
        Err(error) => Ok(format!("{error:#}")),
    }
}

/// Every component's process that is still recorded as running.
fn running(state: &Path) -> Vec<&'static str> {
    Component::ALL
        .iter()
        .filter(|c| recorded(state, c.name()).is_some())
        .map(|c| c.name())
        .collect()
}

#[tokio::test]
async fn a_port_taken_by_an_outgoing_connection_during_start_up_fails_the_start() -> Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let scratch = Scratch::new("taken")?;
    let ports = scratch.request.ports;
    let up = tokio::spawn({
        let request = scratch.request.clone();
        async move { movieapp_localenv::up(&request).await }
    });

    // Once etcd accepts connections the ports have been checked; its first
    // clients connect. Take kube-scheduler's port the way the kernel gave
    // it to one of them when the block lay in the ephemeral range: as the
    // source port of a connection to etcd.
    let etcd = SocketAddr::from((Ipv4Addr::LOCALHOST, ports.port(Slot::Etcd)));
    let deadline = Instant::now() + Duration::from_secs(120);
    while TcpStream::connect_timeout(&etcd, Duration::from_millis(200)).is_err() {
        ensure!(!up.is_finished(), "up ended before etcd listened");
        ensure!(Instant::now() < deadline, "etcd never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let scheduler = SocketAddr::from((Ipv4Addr::LOCALHOST, ports.port(Slot::KubeScheduler)));
    socket
        .bind(&scheduler.into())
        .context("taking kube-scheduler's port")?;
    socket.connect(&etcd.into())?;

    let error_chain = match up.await? {
        Ok(_) => anyhow::bail!("the start must fail: kube-scheduler cannot listen"),
        Err(error) => format!("{error:#}"),
    };
    ensure!(
        error_chain.contains("kube-scheduler exited during start-up"),
        "{error_chain}"
    );
    ensure!(
        error_chain.contains("address already in use"),
        "the log's end is shown: {error_chain}"
    );
    ensure!(
        running(scratch.state()).is_empty(),
        "still running after a failed start: {:?}",
        running(scratch.state())
    );
    drop(socket);
    Ok(())
}

#[tokio::test]
async fn a_scheduler_that_dies_after_up_is_reported_then_restarted() -> Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let scratch = Scratch::new("dies")?;
    let layout = movieapp_localenv::up(&scratch.request).await?;
    let report = movieapp_localenv::status(scratch.state())
        .await?
        .context("running")?;
    ensure!(report.is_healthy(), "{report}");

    let scheduler = recorded(scratch.state(), "kube-scheduler").context("recorded")?;
    scheduler.kill()?;
    let report = movieapp_localenv::status(scratch.state())
        .await?
        .context("running")?;
    ensure!(!report.is_healthy(), "a dead scheduler went unnoticed");
    let problems = report.problems();
    ensure!(
        problems.starts_with("kube-scheduler has exited; the end of its log, ")
            && problems.contains("kube-scheduler.log"),
        "{problems}"
    );
    let shown = report.to_string();
    ensure!(shown.contains("EXITED"), "{shown}");
    ensure!(
        report
            .entries
            .iter()
            .filter(|e| !e.is_healthy())
            .map(|e| e.name.as_str())
            .eq(["kube-scheduler"]),
        "only the scheduler is down: {shown}"
    );

    movieapp_localenv::restart(scratch.state(), Component::KubeScheduler).await?;
    let report = movieapp_localenv::status(scratch.state())
        .await?
        .context("running")?;
    ensure!(report.is_healthy(), "{report}");

    let everything: Vec<_> = layout
        .components()
        .iter()
        .filter_map(|c| recorded(&layout.state, c.name()))
        .collect();
    ensure!(everything.len() == layout.components().len());
    ensure!(movieapp_localenv::down(scratch.state())?);
    ensure!(
        everything.iter().all(|p| !p.is_alive()),
        "down left processes running"
    );
    ensure!(!scratch.state().exists());
    Ok(())
}

#[tokio::test]
async fn a_block_in_the_ephemeral_range_or_with_a_port_in_use_is_refused_before_anything_starts()
-> Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let ephemeral = Ephemeral::read()?;
    let mut scratch = Scratch::new("refused")?;
    // The old default, if this machine's ephemeral range holds it.
    let inside = PortBlock::new(
        ephemeral
            .range
            .start()
            .saturating_add(100)
            .min(65535 - BLOCK_SIZE),
    )?;
    if inside.check_outside(&ephemeral).is_err() {
        scratch.request.ports = inside;
        let error = refusal(&scratch.request).await?;
        ensure!(error.contains("ephemeral port range"), "{error}");
        ensure!(!scratch.state().exists(), "nothing was started");
    }

    let scratch = Scratch::new("in-use")?;
    let kwok = scratch.request.ports.port(Slot::Kwok);
    let _listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, kwok))?;
    let error = refusal(&scratch.request).await?;
    ensure!(
        error.contains(&format!("port {kwok} (for kwok)")),
        "{error}"
    );
    ensure!(!scratch.state().exists(), "nothing was started");
    Ok(())
}
