//! Start, health-check, restart and stop: of the components, and of the
//! processes run beside them (the demo's operator and api-worker).
//!
//! Every process started for an environment is recorded in
//! `.localenv/pids/<name>` (pid, start time, log, probe) before anything
//! else can fail, so `down` stops exactly what was started, whatever broke.
//! Nothing is reported up before every component answers its health check,
//! and `status` checks them all again on demand.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::components::{Component, Layout};
use crate::health::{Health, Http, Probe};
use crate::pki::Client;
use crate::ports::{Ephemeral, PortBlock, Slot};
use crate::process::{Ending, Identity, Spec, log_tail};
use crate::setup;

/// Lines of a log shown when its process failed.
const TAIL_LINES: usize = 20;

/// How long a process gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

fn say(message: impl fmt::Display) {
    eprintln!(">> {message}");
}

/// What `up` starts: where, on which ports.
#[derive(Debug, Clone)]
pub struct Request {
    pub root: PathBuf,
    pub state: PathBuf,
    pub ports: PortBlock,
    pub tmdb_api_key: String,
    pub real_node: RealNodeWanted,
}

/// Whether `up` runs a real node (containerd and a kubelet) beside kwok's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RealNodeWanted {
    No,
    /// When the machine can run it (`real-node.sh check`); said why not
    /// otherwise, and the environment starts without it.
    IfPossible,
    /// `up` fails when the machine cannot run it.
    Required,
}

impl RealNodeWanted {
    /// `LOCALENV_REAL_NODE`: `1` required, `auto` if possible, `0` or
    /// empty none; unset: `default`.
    pub fn from_env(default: Self) -> Result<Self> {
        Self::parse(std::env::var("LOCALENV_REAL_NODE").ok().as_deref(), default)
    }

    fn parse(value: Option<&str>, default: Self) -> Result<Self> {
        match value {
            None => Ok(default),
            Some("" | "0") => Ok(Self::No),
            Some("1") => Ok(Self::Required),
            Some("auto") => Ok(Self::IfPossible),
            Some(other) => bail!("LOCALENV_REAL_NODE={other:?}: use 1, auto or 0"),
        }
    }
}

impl Request {
    /// The checkout's environment: `.localenv/`, the block of
    /// `LOCALENV_PORT_BASE`, the TMDB key of `LOCALENV_TMDB_API_KEY`.
    pub fn for_checkout(root: &Path) -> Result<Self> {
        Ok(Self {
            root: root.to_owned(),
            state: root.join(".localenv"),
            ports: PortBlock::from_env()?,
            tmdb_api_key: std::env::var("LOCALENV_TMDB_API_KEY")
                .ok()
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| "local-tmdb-key".to_owned()),
            real_node: RealNodeWanted::from_env(RealNodeWanted::No)?,
        })
    }
}

const LAYOUT_FILE: &str = "localenv.json";

impl Layout {
    /// The layout of the environment in `state`, if one was started there.
    pub fn load(state: &Path) -> Result<Option<Self>> {
        let path = state.join(LAYOUT_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("reading {}", path.display()))?,
            )),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn save(&self) -> Result<()> {
        write_atomically(
            &self.state.join(LAYOUT_FILE),
            &serde_json::to_string_pretty(self)?,
        )
    }
}

fn write_atomically(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// One process of an environment, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    #[serde(flatten)]
    pub identity: Identity,
    pub log: PathBuf,
    pub probe: Probe,
}

fn record_path(state: &Path, name: &str) -> PathBuf {
    state.join("pids").join(name)
}

fn write_record(state: &Path, name: &str, record: &Record) -> Result<()> {
    let dir = state.join("pids");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    write_atomically(&record_path(state, name), &serde_json::to_string(record)?)
}

/// The record of `name`; a bare pid (written before records held more) is
/// read as that pid with its log in the usual place.
fn read_record(state: &Path, name: &str) -> Option<Record> {
    let text = std::fs::read_to_string(record_path(state, name)).ok()?;
    if let Ok(record) = serde_json::from_str(&text) {
        return Some(record);
    }
    let pid = text.trim().parse().ok()?;
    Some(Record {
        identity: Identity {
            pid,
            start_ticks: None,
        },
        log: state.join("logs").join(format!("{name}.log")),
        probe: Probe::Running,
    })
}

/// Names with a record: the components in start order, then the others.
fn recorded_names(state: &Path) -> Vec<String> {
    let mut others: Vec<String> = std::fs::read_dir(state.join("pids"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| !name.ends_with(".tmp") && Component::from_name(name).is_err())
        .collect();
    others.sort();
    Component::ALL
        .iter()
        .map(|c| c.name().to_owned())
        .filter(|name| record_path(state, name).is_file())
        .chain(others)
        .collect()
}

/// The process recorded as `name` in `state`, if it runs.
pub fn recorded(state: &Path, name: &str) -> Option<Identity> {
    read_record(state, name)
        .map(|r| r.identity)
        .filter(Identity::is_alive)
}

/// One environment at a time in a state directory: `up`, `down` and
/// `restart` take this lock (kept in the cache, not in the checkout).
fn lock(state: &Path) -> Result<setup::Lock> {
    let key = setup::sha256_hex(state.as_os_str().as_encoded_bytes());
    setup::Lock::acquire(
        &setup::cache_root()?
            .join("locks")
            .join(format!("localenv-{}.lock", &key[..16])),
    )
}

/// Starts the environment `request` describes, or finds it running and
/// healthy. Anything left of an earlier one that is not healthy is stopped
/// first. Returns once every component answers its health check; on a
/// failure, stops what it started (logs stay) and names the component with
/// the end of its log.
pub async fn up(request: &Request) -> Result<Layout> {
    let _lock = lock(&request.state)?;
    if let Some(layout) = Layout::load(&request.state)? {
        let report = Report::collect_components(&layout).await?;
        if report.components_healthy() && layout.state.join("env.sh").is_file() {
            if layout.real_node.is_none() && request.real_node != RealNodeWanted::No {
                return add_real_node(layout, request).await;
            }
            if layout.ports != request.ports {
                say(format!(
                    "the local environment already runs on ports {} (LOCALENV_PORT_BASE={}); \
                     `make env-down` first to move it",
                    layout.ports,
                    layout.ports.base()
                ));
            }
            say("the local environment is already running; source .localenv/env.sh to use it");
            return Ok(layout);
        }
        say(format!(
            "the local environment in {} is not healthy ({}); starting it again",
            layout.state.display(),
            report.summary()
        ));
    }
    if request.state.exists() {
        say(format!(
            "cleaning up {} from an earlier run",
            request.state.display()
        ));
        stop_everything(&request.state)?;
        std::fs::remove_dir_all(&request.state)
            .with_context(|| format!("removing {}", request.state.display()))?;
    }
    request.ports.check_outside(&Ephemeral::read()?)?;

    let installed = setup::install(&request.root)?;
    let mut layout = Layout {
        root: request.root.clone(),
        state: request.state.clone(),
        ports: request.ports,
        bin: installed.bin,
        venv: installed.venv,
        tmdb_api_key: request.tmdb_api_key.clone(),
        real_node: None,
        no_real_node: None,
    };
    choose_real_node(&mut layout, request.real_node)?;
    let slots: Vec<(Slot, &str)> = layout
        .components()
        .into_iter()
        .flat_map(|c| c.slots().iter().map(move |s| (*s, c.name())))
        .collect();
    request.ports.check_free(&slots)?;
    prepare_state(&layout)?;
    if let Err(error) = start(&layout, &layout.components()).await {
        stop_all(&layout.state)?;
        return Err(error.context(format!(
            "the local environment did not start; everything it started is stopped again, \
             the logs are in {}",
            layout.state.join("logs").display()
        )));
    }
    write_env(&layout)?;
    say(format!(
        "the local environment is up (ports {}): source .localenv/env.sh, then use kubectl; \
         `make env-status` checks it",
        layout.ports
    ));
    Ok(layout)
}

/// Prepares the real node when `wanted` and the machine can run it
/// (`real-node.sh prepare`), recording it, or why not, in the layout.
fn choose_real_node(layout: &mut Layout, wanted: RealNodeWanted) -> Result<()> {
    if wanted == RealNodeWanted::No {
        return Ok(());
    }
    say("preparing the real node (containerd, kubelet; real-node.sh prepare)");
    // With `auto`, a failed preparation (apt-get, the kubelet's build) is
    // one more reason to go without the node, said like the others.
    let prepared = setup::real_node(&layout.root, &layout.state, layout.ports.base())
        .unwrap_or_else(|error| Err(format!("{error:#}")));
    match prepared {
        Ok(node) => layout.real_node = Some(node),
        Err(why) if wanted == RealNodeWanted::Required => {
            bail!("LOCALENV_REAL_NODE=1, but this machine cannot run the real node: {why}")
        }
        Err(why) => {
            say(format!(
                "no real node: {why}; Pods run on kwok's simulated node only"
            ));
            layout.no_real_node = Some(why);
        }
    }
    Ok(())
}

/// Adds the real node to a running environment (`make real-node-up`, or
/// `make demo` after a plain `make env-up`).
async fn add_real_node(mut layout: Layout, request: &Request) -> Result<Layout> {
    choose_real_node(&mut layout, request.real_node)?;
    if layout.real_node.is_none() {
        layout.save()?;
        return Ok(layout);
    }
    let node: Vec<Component> = layout
        .components()
        .into_iter()
        .filter(|c| c.is_real_node())
        .collect();
    let slots: Vec<(Slot, &str)> = node
        .iter()
        .flat_map(|c| c.slots().iter().map(|s| (*s, c.name())))
        .collect();
    layout.ports.check_free(&slots)?;
    layout.save()?;
    if let Err(error) = start(&layout, &node).await {
        stop_real_node(&layout)?;
        layout.real_node = None;
        layout.save()?;
        return Err(error.context("the real node did not start; it is stopped again"));
    }
    say(format!(
        "the real node {} is Ready beside kwok's",
        crate::components::REAL_NODE
    ));
    Ok(layout)
}

/// `.localenv/` before the first start: certificates, kubeconfigs, the
/// audit policy, and the layout itself (so `down` works from here on).
fn prepare_state(layout: &Layout) -> Result<()> {
    for dir in [layout.state.join("logs"), layout.pids()] {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    layout.save()?;
    let pki = layout.pki();
    pki.generate()?;
    for client in Client::ALL {
        crate::pki::write(
            &layout.kubeconfig(client),
            &pki.kubeconfig(client, &layout.apiserver_url()),
            true,
        )?;
    }
    let policy = layout.root.join("tests/localenv/audit-policy.yaml");
    std::fs::copy(&policy, layout.state.join("audit-policy.yaml"))
        .with_context(|| format!("copying {}", policy.display()))?;
    Ok(())
}

/// A process between its start and its first healthy answer.
struct Starting {
    name: String,
    identity: Identity,
    probe: Probe,
    log: PathBuf,
    since: Instant,
    timeout: Duration,
}

impl Starting {
    /// Ok(true) once healthy; an error when it exited or ran out of time.
    async fn poll(&self, http: &Http) -> Result<bool> {
        let health = http.check(&self.probe).await;
        if !self.identity.is_alive() {
            bail!(
                "{} exited during start-up; the end of its log, {}:\n{}",
                self.name,
                self.log.display(),
                log_tail(&self.log, TAIL_LINES)
            );
        }
        match health {
            Health::Healthy => Ok(true),
            Health::Unhealthy(reason) if self.since.elapsed() >= self.timeout => bail!(
                "{} did not become healthy within {} s ({reason}); the end of its log, {}:\n{}",
                self.name,
                self.timeout.as_secs(),
                self.log.display(),
                log_tail(&self.log, TAIL_LINES)
            ),
            Health::Unhealthy(_) => Ok(false),
        }
    }

    async fn wait(&self, http: &Http) -> Result<()> {
        while !self.poll(http).await? {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }
}

/// Starts `which` (the others are taken to be running), each once what it
/// needs is healthy, and waits until every one is. Then checks the whole
/// environment once more: a component that died meanwhile fails the start.
async fn start(layout: &Layout, which: &[Component]) -> Result<()> {
    let http = layout.http()?;
    let mut pending: Vec<Component> = which.to_vec();
    let mut healthy: Vec<Component> = layout
        .components()
        .into_iter()
        .filter(|c| !which.contains(c))
        .collect();
    let mut starting: Vec<(Component, Starting)> = Vec::new();
    while !pending.is_empty() || !starting.is_empty() {
        let ready: Vec<Component> = pending
            .iter()
            .copied()
            .filter(|c| c.needs().iter().all(|n| healthy.contains(n)))
            .collect();
        for component in ready {
            component
                .prepare(layout, &http)
                .await
                .with_context(|| format!("preparing {}", component.name()))?;
            say(format!("starting {}", component.name()));
            let identity = spawn_recorded(layout, component.spec(layout), component.probe(layout))?;
            starting.push((
                component,
                Starting {
                    name: component.name().to_owned(),
                    identity,
                    probe: component.probe(layout),
                    log: layout.log(component.name()),
                    since: Instant::now(),
                    timeout: component.start_timeout(),
                },
            ));
            pending.retain(|c| *c != component);
        }
        if starting.is_empty() {
            bail!(
                "nothing can start: {} wait for components that are not running",
                pending
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let polls = futures::future::join_all(starting.iter().map(|(_, s)| s.poll(&http))).await;
        let mut still = Vec::new();
        for ((component, process), poll) in starting.into_iter().zip(polls) {
            if poll? {
                say(format!(
                    "{} is healthy ({:.1} s)",
                    component.name(),
                    process.since.elapsed().as_secs_f64()
                ));
                healthy.push(component);
            } else {
                still.push((component, process));
            }
        }
        starting = still;
        if !starting.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    if let Some(problems) = Report::collect_components(layout)
        .await?
        .component_problems()
    {
        bail!("{problems}");
    }
    Ok(())
}

/// Starts a detached process logging to `.localenv/logs/<name>.log` and
/// records it before anything else can fail.
fn spawn_recorded(layout: &Layout, spec: Spec, probe: Probe) -> Result<Identity> {
    let log = layout.log(&spec.name);
    let started = spec.clone().log(&log).detached().spawn()?;
    write_record(
        &layout.state,
        &spec.name,
        &Record {
            identity: started.identity,
            log,
            probe,
        },
    )?;
    Ok(started.identity)
}

/// Stops every recorded process: those recorded beside the components
/// first, then the components, clients before their servers.
/// Everything recorded, the real node's Pods first and what its shims
/// still run after.
fn stop_everything(state: &Path) -> Result<()> {
    let layout = Layout::load(state).ok().flatten();
    if let Some(layout) = layout.as_ref().filter(|l| l.real_node.is_some()) {
        real_node_script(layout, "drain")?;
    }
    stop_all(state)?;
    if let Some(layout) = layout.as_ref().filter(|l| l.real_node.is_some()) {
        real_node_script(layout, "cleanup")?;
    }
    Ok(())
}

/// Stops the real node of the environment in `state` and leaves the rest
/// running (`make real-node-down`). Returns whether there was one.
pub fn remove_real_node(state: &Path) -> Result<bool> {
    let _lock = lock(state)?;
    let mut layout = running(state)?;
    if layout.real_node.is_none() {
        return Ok(false);
    }
    stop_real_node(&layout)?;
    layout.real_node = None;
    layout.save()?;
    Ok(true)
}

/// Stops the real node alone: its Pods, the kubelet, containerd, the rest.
fn stop_real_node(layout: &Layout) -> Result<()> {
    real_node_script(layout, "drain")?;
    stop_recorded(&layout.state, Component::Kubelet.name())?;
    stop_recorded(&layout.state, Component::Containerd.name())?;
    real_node_script(layout, "cleanup")
}

fn real_node_script(layout: &Layout, command: &str) -> Result<()> {
    let Some(node) = &layout.real_node else {
        return Ok(());
    };
    let script = layout.root.join("tests/localenv/real-node.sh");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .arg(command)
        .env("LOCALENV_DIR", &layout.state)
        .env("REAL_NODE_BASE", layout.ports.base().to_string())
        .env("REAL_NODE_DIR", &node.dir)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    if !status.success() {
        bail!("{} {command} failed ({status})", script.display());
    }
    Ok(())
}

fn stop_all(state: &Path) -> Result<()> {
    let names = recorded_names(state);
    let (components, others): (Vec<&String>, Vec<&String>) = names
        .iter()
        .partition(|name| Component::from_name(name).is_ok());
    for name in others.into_iter().chain(components.into_iter().rev()) {
        stop_recorded(state, name)?;
    }
    Ok(())
}

fn stop_recorded(state: &Path, name: &str) -> Result<()> {
    stop_recorded_within(state, name, GRACE).map(|_| ())
}

fn stop_recorded_within(state: &Path, name: &str, grace: Duration) -> Result<Ending> {
    let ending = match read_record(state, name) {
        Some(record) => record
            .identity
            .terminate(grace)
            .with_context(|| format!("stopping {name}"))?,
        None => Ending::NotRunning,
    };
    match std::fs::remove_file(record_path(state, name)) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("removing the record of {name}"))
        }
        _ => Ok(ending),
    }
}

/// Stops everything recorded in `state` and removes it. False when there
/// was nothing to stop.
pub fn down(state: &Path) -> Result<bool> {
    if !state.exists() {
        return Ok(false);
    }
    let _lock = lock(state)?;
    stop_everything(state)?;
    std::fs::remove_dir_all(state).with_context(|| format!("removing {}", state.display()))?;
    Ok(true)
}

/// Stops one component and starts it again with the same settings, ports
/// and state (moto keeps its state in memory, so it comes back empty).
pub async fn restart(state: &Path, component: Component) -> Result<()> {
    let _lock = lock(state)?;
    let layout = running(state)?;
    say(format!("restarting {}", component.name()));
    stop_recorded(state, component.name())?;
    // A server that just exited may hold its port a moment longer.
    let deadline = Instant::now() + Duration::from_secs(10);
    while component
        .slots()
        .iter()
        .any(|s| !crate::ports::port_free(layout.port(*s)))
    {
        if Instant::now() >= deadline {
            bail!(
                "the ports of {} are still taken 10 s after it stopped",
                component.name()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start(&layout, &[component]).await?;
    say(format!("{} is running again", component.name()));
    Ok(())
}

/// The layout of the environment running in `state`, or an error saying
/// how to start one.
pub fn running(state: &Path) -> Result<Layout> {
    Layout::load(state)?.with_context(|| {
        format!(
            "no local environment runs in {}: run `make env-up` first",
            state.display()
        )
    })
}

/// Starts a process beside the components (stopping an earlier one of the
/// same name), records it so `status` checks it and `down` stops it, and
/// waits until `probe` answers; stops it again when it does not.
pub async fn start_process(
    layout: &Layout,
    spec: Spec,
    probe: Probe,
    timeout: Duration,
) -> Result<Identity> {
    if Component::from_name(&spec.name).is_ok() {
        bail!("{} is a component: restart it instead", spec.name);
    }
    stop_recorded(&layout.state, &spec.name)?;
    let name = spec.name.clone();
    let identity = spawn_recorded(layout, spec, probe.clone())?;
    let started = Starting {
        log: layout.log(&name),
        name: name.clone(),
        identity,
        probe,
        since: Instant::now(),
        timeout,
    }
    .wait(&layout.http()?)
    .await;
    if let Err(error) = started {
        // Not left running unhealthy: its log stays for the error's reader.
        stop_recorded(&layout.state, &name)?;
        return Err(error);
    }
    Ok(identity)
}

/// Stops a process `start_process` started, if it runs.
pub fn stop_process(layout: &Layout, name: &str) -> Result<()> {
    stop_recorded(&layout.state, name)
}

/// [`stop_process`] with its own grace period between SIGTERM and
/// SIGKILL, telling how the process ended.
pub fn stop_process_within(layout: &Layout, name: &str, grace: Duration) -> Result<Ending> {
    stop_recorded_within(&layout.state, name, grace)
}

/// Waits until an attached process (a test's) answers `probe`, failing
/// with the end of its log when it exits or `timeout` passes.
pub async fn wait_healthy(
    name: &str,
    identity: Identity,
    probe: Probe,
    log: &Path,
    timeout: Duration,
) -> Result<()> {
    Starting {
        name: name.to_owned(),
        identity,
        probe,
        log: log.to_owned(),
        since: Instant::now(),
        timeout,
    }
    .wait(&Http::plain()?)
    .await
}

fn write_env(layout: &Layout) -> Result<()> {
    let region = "us-east-1";
    let env = format!(
        "# Written by `make env-up`: source it to use the local environment.
export KUBECONFIG={kubeconfig}
export AWS_ENDPOINT_URL=http://127.0.0.1:{moto}
export AWS_REGION={region}
export AWS_DEFAULT_REGION={region}
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export TMDB_BASE_URL=http://127.0.0.1:{tmdb}
export TMDB_API_KEY={key}
export LOCALENV_DIR={state}
export LOCALENV_PORT_BASE={base}
export LOCALENV_BIN={bin}
export LOCALENV_VENV={venv}
",
        kubeconfig = layout.kubeconfig(Client::Admin).display(),
        moto = layout.port(Slot::Moto),
        tmdb = layout.port(Slot::TmdbStub),
        key = layout.tmdb_api_key,
        state = layout.state.display(),
        base = layout.ports.base(),
        bin = layout.bin.display(),
        venv = layout.venv.display(),
    );
    write_atomically(&layout.state.join("env.sh"), &env)
}

/// Whether a recorded process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    Running,
    Exited,
    NotStarted,
}

/// One line of `status`.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    /// One of the environment's components (not a process run beside them).
    pub component: bool,
    pub pid: Option<u32>,
    pub process: Process,
    /// Checked only for a running process.
    pub health: Option<Health>,
    /// False for a process with nothing to ask (running is all it shows).
    pub checked: bool,
    pub log: PathBuf,
}

impl Entry {
    pub fn is_healthy(&self) -> bool {
        self.process == Process::Running && self.health.as_ref().is_some_and(Health::is_healthy)
    }

    fn describe(&self) -> String {
        match (&self.process, &self.health) {
            (Process::NotStarted, _) => "was never started".to_owned(),
            (Process::Exited, _) => "has exited".to_owned(),
            (Process::Running, Some(Health::Unhealthy(reason))) => {
                format!("runs but is unhealthy: {reason}")
            }
            (Process::Running, _) => "runs".to_owned(),
        }
    }
}

/// How many times a running process is asked, a pause apart, before it is
/// reported unhealthy: one answer can miss its time-out on a loaded machine,
/// and a false "unhealthy" fails a suite or has `up` start everything again.
const STATUS_ATTEMPTS: u32 = 3;
const STATUS_PAUSE: Duration = Duration::from_secs(1);

/// Every process of an environment, checked now.
#[derive(Debug, Clone)]
pub struct Report {
    pub state: PathBuf,
    pub ports: PortBlock,
    pub entries: Vec<Entry>,
}

impl Report {
    /// Checks every component and every process recorded beside them.
    pub async fn collect(layout: &Layout) -> Result<Self> {
        Self::check(layout, true).await
    }

    /// Checks the components only.
    pub async fn collect_components(layout: &Layout) -> Result<Self> {
        Self::check(layout, false).await
    }

    async fn check(layout: &Layout, beside: bool) -> Result<Self> {
        let http = layout.http()?;
        let mut names: Vec<String> = layout
            .components()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        if beside {
            let others: Vec<String> = recorded_names(&layout.state)
                .into_iter()
                .filter(|n| !names.contains(n))
                .collect();
            names.extend(others);
        }
        let entries = futures::future::join_all(names.into_iter().map(|name| {
            let http = &http;
            async move {
                let component = Component::from_name(&name).is_ok();
                let record = read_record(&layout.state, &name);
                let log = record
                    .as_ref()
                    .map_or_else(|| layout.log(&name), |r| r.log.clone());
                let Some(record) = record else {
                    return Entry {
                        name,
                        component,
                        pid: None,
                        process: Process::NotStarted,
                        health: None,
                        checked: false,
                        log,
                    };
                };
                let probe = Component::from_name(&name)
                    .map_or_else(|_| record.probe.clone(), |c| c.probe(layout));
                let identity = record.identity;
                let health = if identity.is_alive() {
                    http.check_settled(&probe, STATUS_ATTEMPTS, STATUS_PAUSE, || {
                        identity.is_alive()
                    })
                    .await
                } else {
                    None
                };
                let process = if health.is_some() {
                    Process::Running
                } else {
                    Process::Exited
                };
                Entry {
                    name,
                    component,
                    pid: Some(record.identity.pid),
                    process,
                    health,
                    checked: probe != Probe::Running,
                    log,
                }
            }
        }))
        .await;
        Ok(Self {
            state: layout.state.clone(),
            ports: layout.ports,
            entries,
        })
    }

    /// Every process, the components and those beside them, is healthy.
    pub fn is_healthy(&self) -> bool {
        self.entries.iter().all(Entry::is_healthy)
    }

    /// Every component is healthy: the environment can be used, whatever
    /// became of the processes run beside it (an api-worker of `make demo`
    /// is unhealthy once moto has restarted empty, and that is no reason to
    /// start the environment again or to fail a test).
    pub fn components_healthy(&self) -> bool {
        self.entries
            .iter()
            .filter(|e| e.component)
            .all(Entry::is_healthy)
    }

    /// [`Report::problems`] of the components only; `None` when they are healthy.
    pub fn component_problems(&self) -> Option<String> {
        let broken: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.component && !e.is_healthy())
            .collect();
        (!broken.is_empty()).then(|| describe_problems(&broken))
    }

    /// "kube-scheduler exited, moto unhealthy": one line.
    pub fn summary(&self) -> String {
        let bad: Vec<String> = self
            .entries
            .iter()
            .filter(|e| !e.is_healthy())
            .map(|e| format!("{} {}", e.name, e.describe()))
            .collect();
        if bad.is_empty() {
            "everything healthy".to_owned()
        } else {
            bad.join("; ")
        }
    }

    /// Each process that is not healthy, with the end of its log.
    pub fn problems(&self) -> String {
        let broken: Vec<&Entry> = self.entries.iter().filter(|e| !e.is_healthy()).collect();
        describe_problems(&broken)
    }
}

fn describe_problems(entries: &[&Entry]) -> String {
    entries
        .iter()
        .map(|e| {
            format!(
                "{} {}; the end of its log, {}:\n{}",
                e.name,
                e.describe(),
                e.log.display(),
                log_tail(&e.log, TAIL_LINES)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "local environment {} (ports {}):",
            self.state.display(),
            self.ports
        )?;
        writeln!(f, "  {:<24} {:>8}  {:<8} health", "process", "pid", "state")?;
        for entry in &self.entries {
            let pid = entry.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
            let (state, health) = match (&entry.process, &entry.health) {
                (Process::Running, Some(Health::Healthy)) if !entry.checked => {
                    ("running", "(no health check)".to_owned())
                }
                (Process::Running, Some(Health::Healthy)) => ("running", "healthy".to_owned()),
                (Process::Running, Some(Health::Unhealthy(reason))) => {
                    ("running", format!("UNHEALTHY: {reason}"))
                }
                (Process::Running, None) => ("running", "-".to_owned()),
                (Process::Exited, _) => ("EXITED", "-".to_owned()),
                (Process::NotStarted, _) => ("MISSING", "-".to_owned()),
            };
            writeln!(f, "  {:<24} {pid:>8}  {state:<8} {health}", entry.name)?;
        }
        if !self.is_healthy() {
            writeln!(f, "\n{}", self.problems())?;
        }
        Ok(())
    }
}

/// The report of the environment in `state`; `None` when none was started.
pub async fn status(state: &Path) -> Result<Option<Report>> {
    match Layout::load(state)? {
        Some(layout) => Ok(Some(Report::collect(&layout).await?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod real_node_tests {
    use super::RealNodeWanted;

    #[test]
    fn localenv_real_node_is_1_auto_or_0() {
        use RealNodeWanted::{IfPossible, No, Required};
        for (value, default, wanted) in [
            (None, No, No),
            (None, IfPossible, IfPossible),
            (Some(""), IfPossible, No),
            (Some("0"), IfPossible, No),
            (Some("1"), No, Required),
            (Some("auto"), No, IfPossible),
        ] {
            assert_eq!(
                RealNodeWanted::parse(value, default).ok(),
                Some(wanted),
                "{value:?}"
            );
        }
        let error = RealNodeWanted::parse(Some("yes"), No)
            .expect_err("refused")
            .to_string();
        assert!(error.contains("use 1, auto or 0"), "{error}");
    }
}
