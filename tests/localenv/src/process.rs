//! Starting, recognising and stopping processes.
//!
//! A process is known by its pid *and* the kernel's start time of it
//! (`/proc/<pid>/stat`), so a pid the kernel has given to another program
//! since is never signalled. Processes meant to outlive their starter (the
//! environment's components, the demo's operator) lead a process group of
//! their own: stopping them stops whatever they started, and a Ctrl-C in the
//! terminal that started them does not reach them. Processes a test starts
//! stay in the test's group and die with it.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// One process, recognisable after its pid is reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub pid: u32,
    /// Clock ticks after boot at which it started; `None` for records
    /// written before start times were kept (then the pid alone is trusted).
    pub start_ticks: Option<u64>,
}

/// The two fields of `/proc/<pid>/stat` needed here.
struct Stat {
    state: char,
    start_ticks: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name (field 2) is in parentheses and may hold anything; the
    // fields after it start with the state (3); the start time is field 22.
    let after_name = text.rsplit_once(')')?.1;
    let mut fields = after_name.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start_ticks = fields.nth(18)?.parse().ok()?;
    Some(Stat { state, start_ticks })
}

impl Identity {
    /// The identity of the live process `pid`.
    pub fn of(pid: u32) -> Option<Self> {
        stat(pid).map(|s| Self {
            pid,
            start_ticks: Some(s.start_ticks),
        })
    }

    /// Whether this very process still runs (a zombie has exited).
    pub fn is_alive(&self) -> bool {
        match stat(self.pid) {
            Some(s) => {
                !matches!(s.state, 'Z' | 'X' | 'x')
                    && self.start_ticks.is_none_or(|t| t == s.start_ticks)
            }
            None => false,
        }
    }

    fn nix_pid(&self) -> Result<Pid> {
        Ok(Pid::from_raw(
            i32::try_from(self.pid).context("pid out of range")?,
        ))
    }

    /// Sends SIGTERM to its process group (or to it alone when it leads
    /// none), waits up to `grace` for it to exit, then SIGKILLs the group.
    /// A process that is no longer this one is left alone.
    pub fn stop(&self, grace: Duration) -> Result<()> {
        self.terminate(grace).map(|_| ())
    }

    /// [`stop`](Self::stop), telling how the process ended.
    pub fn terminate(&self, grace: Duration) -> Result<Ending> {
        if !self.is_alive() {
            return Ok(Ending::NotRunning);
        }
        let pid = self.nix_pid()?;
        let started = Instant::now();
        signal_group(pid, Signal::SIGTERM)?;
        let ending = if wait_until(grace, || !self.is_alive()) {
            // Whatever the leader started and left behind in its group; the
            // group id cannot be reused while any member lives.
            match killpg(pid, Signal::SIGKILL) {
                Ok(()) | Err(Errno::ESRCH | Errno::EPERM) => {}
                Err(error) => return Err(error).context("signalling a process group"),
            }
            Ending::Terminated(started.elapsed())
        } else {
            signal_group(pid, Signal::SIGKILL)?;
            if !wait_until(Duration::from_secs(5), || !self.is_alive()) {
                bail!("process {} survived SIGKILL", self.pid);
            }
            Ending::Killed
        };
        reap();
        Ok(ending)
    }

    /// SIGKILL to this process alone (a test's "the process crashed").
    pub fn kill(&self) -> Result<()> {
        if self.is_alive() {
            match kill(self.nix_pid()?, Signal::SIGKILL) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(error) => return Err(error).context("SIGKILL"),
            }
            wait_until(Duration::from_secs(5), || !self.is_alive());
        }
        reap();
        Ok(())
    }
}

/// How [`Identity::terminate`] ended a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It was not running.
    NotRunning,
    /// It exited on SIGTERM, after this long.
    Terminated(Duration),
    /// It outlived the grace period and was killed.
    Killed,
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotRunning => f.write_str("was not running"),
            Self::Terminated(after) => {
                write!(f, "exited on SIGTERM after {:.1} s", after.as_secs_f64())
            }
            Self::Killed => f.write_str("outlived the grace period and was killed"),
        }
    }
}

fn signal_group(pid: Pid, signal: Signal) -> Result<()> {
    match killpg(pid, signal) {
        Ok(()) => Ok(()),
        // Not a group leader (an older record, or a process that left its group).
        Err(Errno::ESRCH) => match kill(pid, signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(error) => Err(error).with_context(|| format!("sending {signal} to {pid}")),
        },
        Err(error) => Err(error).with_context(|| format!("sending {signal} to group {pid}")),
    }
}

/// Polls `done` every 50 ms until it holds or `timeout` passes.
fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        reap();
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Children this process started to outlive it. Kept so that the ones that
/// exit while it still runs (a long stress run starts and stops hundreds) are
/// reaped instead of lingering as zombies.
static DETACHED: Mutex<Vec<std::process::Child>> = Mutex::new(Vec::new());

fn reap() {
    if let Ok(mut children) = DETACHED.lock() {
        children.retain_mut(|child| matches!(child.try_wait(), Ok(None)));
    }
}

/// How to start one process.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    /// Where stdout and stderr go (appended); `None` discards them.
    pub log: Option<PathBuf>,
    /// Leads its own process group and outlives the starter.
    pub detached: bool,
}

impl Spec {
    pub fn new(name: &str, program: impl Into<PathBuf>) -> Self {
        Self {
            name: name.to_owned(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            log: None,
            detached: false,
        }
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn log(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }

    pub fn detached(mut self) -> Self {
        self.detached = true;
        self
    }

    /// Starts it. A detached process is handed to the reaper; an attached
    /// one comes back as a [`Child`] that kills it when dropped.
    pub fn spawn(&self) -> Result<Started> {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        match &self.log {
            Some(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                // Restarts append: the line tells one run from the next.
                writeln!(
                    file,
                    "==> localenv: starting {} ({})",
                    self.name,
                    self.program.display()
                )?;
                command
                    .stdout(file.try_clone().context("duplicating the log's handle")?)
                    .stderr(file);
            }
            None => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        if self.detached {
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {} ({})", self.name, self.program.display()))?;
        let pid = child.id();
        // The child exists until it is reaped, so its start time is readable
        // even if it has exited already.
        let identity = Identity::of(pid).unwrap_or(Identity {
            pid,
            start_ticks: None,
        });
        let log = self.log.clone();
        if self.detached {
            if let Ok(mut children) = DETACHED.lock() {
                children.push(child);
            }
            Ok(Started {
                identity,
                log,
                child: None,
            })
        } else {
            Ok(Started {
                identity,
                log,
                child: Some(Child(child)),
            })
        }
    }
}

/// A started process.
#[derive(Debug)]
pub struct Started {
    pub identity: Identity,
    pub log: Option<PathBuf>,
    /// The handle of an attached process.
    pub child: Option<Child>,
}

/// An attached child: SIGKILLed and reaped when dropped.
#[derive(Debug)]
pub struct Child(std::process::Child);

impl Child {
    /// Whether it has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) -> Result<()> {
        if self.is_running() {
            let pid = Pid::from_raw(i32::try_from(self.0.id()).context("pid out of range")?);
            match kill(pid, Signal::SIGTERM) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(error) => return Err(error).context("SIGTERM"),
            }
            if !wait_until(grace, || !self.is_running()) {
                self.kill();
            }
        }
        Ok(())
    }

    /// SIGKILL, and wait for it.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `lines` lines of a log, each indented, for an error message.
pub fn log_tail(path: &Path, lines: usize) -> String {
    const WINDOW: u64 = 64 * 1024;
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(WINDOW)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            let tail = &all[all.len().saturating_sub(lines)..];
            if tail.is_empty() {
                "    (the log is empty)".to_owned()
            } else {
                tail.iter()
                    .map(|l| format!("    {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
        Err(error) => format!("    (cannot read {}: {error})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(detached: bool) -> Started {
        let mut spec = Spec::new("sleeper", "sleep").args(["30"]);
        spec.detached = detached;
        spec.spawn().expect("sleep starts")
    }

    #[test]
    fn a_stopped_process_is_no_longer_alive_and_a_reused_pid_is_not_ours() {
        let started = sleeper(true);
        let identity = started.identity;
        assert!(identity.is_alive());
        assert!(identity.start_ticks.is_some());
        // The same pid with another start time is another process.
        let other = Identity {
            pid: identity.pid,
            start_ticks: identity.start_ticks.map(|t| t + 1),
        };
        assert!(!other.is_alive());
        other.stop(Duration::from_secs(1)).expect("a no-op");
        assert!(
            identity.is_alive(),
            "stopping another process left ours alone"
        );
        identity.stop(Duration::from_secs(5)).expect("stops");
        assert!(!identity.is_alive());
    }

    #[test]
    fn terminate_tells_an_orderly_exit_from_a_kill() {
        let orderly = sleeper(true).identity;
        assert!(matches!(
            orderly.terminate(Duration::from_secs(5)).expect("stops"),
            Ending::Terminated(_)
        ));
        assert_eq!(
            orderly.terminate(Duration::from_secs(1)).expect("a no-op"),
            Ending::NotRunning
        );
        let deaf = Spec::new("deaf", "bash")
            .args(["-c", "trap '' TERM; while :; do sleep 0.1; done"])
            .detached()
            .spawn()
            .expect("starts")
            .identity;
        // Time for bash to set its trap.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            deaf.terminate(Duration::from_millis(500)).expect("killed"),
            Ending::Killed
        );
        assert!(!deaf.is_alive());
    }

    #[test]
    fn stopping_a_group_leader_stops_what_it_started() {
        let dir = std::env::temp_dir().join(format!("localenv-group-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let pidfile = dir.join("grandchild");
        let started = Spec::new("shell", "bash")
            .args([
                "-c",
                &format!("sleep 60 & echo $! > {}; wait", pidfile.display()),
            ])
            .detached()
            .spawn()
            .expect("starts");
        assert!(wait_until(Duration::from_secs(5), || pidfile.exists()));
        std::thread::sleep(Duration::from_millis(100));
        let grandchild: u32 = std::fs::read_to_string(&pidfile)
            .expect("pid")
            .trim()
            .parse()
            .expect("a pid");
        let grandchild = Identity::of(grandchild).expect("running");
        started
            .identity
            .stop(Duration::from_secs(5))
            .expect("stops");
        assert!(wait_until(Duration::from_secs(5), || !grandchild.is_alive()));
        std::fs::remove_dir_all(&dir).expect("removed");
    }

    #[test]
    fn an_attached_child_dies_with_its_handle_and_logs_are_appended() {
        let dir = std::env::temp_dir().join(format!("localenv-log-{}", std::process::id()));
        let log = dir.join("echo.log");
        for word in ["first", "second"] {
            let mut started = Spec::new("echo", "echo")
                .args([word])
                .log(&log)
                .spawn()
                .expect("starts");
            let child = started.child.as_mut().expect("attached");
            assert!(wait_until(Duration::from_secs(5), || !child.is_running()));
        }
        let tail = log_tail(&log, 3);
        assert!(tail.contains("first") && tail.contains("second"), "{tail}");
        assert_eq!(log_tail(&log, 1), "    second");

        let started = sleeper(false);
        let identity = started.identity;
        drop(started);
        assert!(!identity.is_alive());
        assert!(log_tail(&dir.join("missing.log"), 5).contains("cannot read"));
        std::fs::remove_dir_all(&dir).expect("removed");
    }
}
