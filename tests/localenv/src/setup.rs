//! What must exist before anything starts: the control-plane binaries and
//! the venv holding moto, both built once into the cache outside the
//! checkout and keyed by what built them, so a fresh clone reuses them.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// `$MOVIEAPP_CACHE`, else `$XDG_CACHE_HOME/movieapp`, else `~/.cache/movieapp`.
pub fn cache_root() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("MOVIEAPP_CACHE").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("movieapp"));
    }
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(PathBuf::from(home).join(".cache/movieapp"))
}

/// An exclusive `flock` held until dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Waits for the lock at `path` (created when missing).
    pub fn acquire(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.lock()
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(Self { _file: file })
    }
}

/// The lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The control-plane binaries and moto's venv.
#[derive(Debug, Clone)]
pub struct Installed {
    pub bin: PathBuf,
    pub venv: PathBuf,
}

/// Builds or finds both. Checkouts that start at once share the cache: one
/// builds and installs while the others wait for it, then reuse it (two
/// `pip install`s into one venv broke it).
pub fn install(root: &Path) -> Result<Installed> {
    let cache = cache_root()?;
    let _lock = Lock::acquire(&cache.join(".setup.lock"))?;
    let bin = control_plane(root)?;
    let venv = python_venv(root, &cache)?;
    Ok(Installed { bin, venv })
}

/// `tests/localenv/build.sh`: builds etcd, the Kubernetes components and
/// kwok once; prints the directory holding them on its last line.
fn control_plane(root: &Path) -> Result<PathBuf> {
    let script = root.join("tests/localenv/build.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}): see its output above",
            script.display(),
            output.status
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let dir = stdout
        .lines()
        .last()
        .with_context(|| format!("{} printed no directory", script.display()))?;
    Ok(PathBuf::from(dir))
}

/// moto in a venv keyed by `requirements.txt` and the Python version (the
/// key the shell version of this used, so existing venvs are reused).
fn python_venv(root: &Path, cache: &Path) -> Result<PathBuf> {
    let requirements = root.join("tests/localenv/requirements.txt");
    let version = Command::new("python3")
        .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
        .output()
        .context("running python3 (is it installed?)")?;
    if !version.status.success() {
        bail!("python3 could not report its version");
    }
    let mut keyed = std::fs::read(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    keyed.extend_from_slice(&version.stdout);
    let venv = cache.join(format!("venv-{}", &sha256_hex(&keyed)[..16]));
    // The marker is written last, so an interrupted install is redone whole.
    if venv.join(".complete").is_file() {
        return Ok(venv);
    }
    eprintln!(
        ">> installing moto into {} (first time only)",
        venv.display()
    );
    if venv.exists() {
        std::fs::remove_dir_all(&venv).with_context(|| format!("removing {}", venv.display()))?;
    }
    let run = |program: &Path, args: &[&std::ffi::OsStr]| -> Result<()> {
        let status = Command::new(program)
            .args(args)
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()
            .with_context(|| format!("running {}", program.display()))?;
        if !status.success() {
            bail!("{} {:?} failed ({status})", program.display(), args);
        }
        Ok(())
    };
    let installed = run(
        Path::new("python3"),
        &["-m".as_ref(), "venv".as_ref(), venv.as_os_str()],
    )
    .and_then(|()| {
        run(
            &venv.join("bin/pip"),
            &[
                "install".as_ref(),
                "--quiet".as_ref(),
                "--disable-pip-version-check".as_ref(),
                "-r".as_ref(),
                requirements.as_os_str(),
            ],
        )
    });
    if let Err(error) = installed {
        let _ = std::fs::remove_dir_all(&venv);
        return Err(error.context("pip could not install moto from PyPI (see the output above)"));
    }
    File::create(venv.join(".complete")).context("marking the venv complete")?;
    Ok(venv)
}

/// `tests/localenv/real-node.sh prepare`: the real node's configuration,
/// kubelet and network, or why this machine cannot run it (its exit 3).
pub fn real_node(
    root: &Path,
    state: &Path,
    base: u16,
) -> Result<std::result::Result<crate::components::RealNode, String>> {
    let script = root.join("tests/localenv/real-node.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg("prepare")
        .env("LOCALENV_DIR", state)
        .env("REAL_NODE_BASE", base.to_string())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.code() == Some(3) {
        return Ok(Err(stdout.trim().to_owned()));
    }
    if !output.status.success() {
        bail!(
            "{} prepare failed ({}): see its output above",
            script.display(),
            output.status
        );
    }
    let value = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_owned)
            .with_context(|| format!("{} prepare printed no {key}=", script.display()))
    };
    Ok(Ok(crate::components::RealNode {
        dir: PathBuf::from(value("dir")?),
        bin: PathBuf::from(value("bin")?),
        node_ip: value("node_ip")?,
        gateway: value("gateway")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_venv_key_is_the_one_the_shell_version_computed() {
        // { printf 'moto[server]==5.2.5\n'; echo 3.11.2; } | sha256sum
        let key = sha256_hex(b"moto[server]==5.2.5\n3.11.2\n");
        let shell = Command::new("bash")
            .args([
                "-c",
                "{ printf 'moto[server]==5.2.5\\n'; echo 3.11.2; } | sha256sum | cut -c1-64",
            ])
            .output()
            .expect("bash runs");
        assert_eq!(key, String::from_utf8_lossy(&shell.stdout).trim());
    }
}
