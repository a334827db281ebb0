#!/usr/bin/env python3
"""The kubectl plugin's krew manifest (plugin.yaml) as the release makes it:
packages this machine's build of kubectl-movieapp with
scripts/package-plugin.sh (as the release job `plugin` does), renders the
manifest for that archive with scripts/krew-manifest.py (as
`plugin-manifest` does), checks it against krew's rules, and installs it
with krew itself (`kubectl krew install --manifest --archive` into a scratch
KREW_ROOT, offline): kubectl then finds `kubectl movieapp` in krew's bin
directory. The renderer's refusals (a missing archive, a bad version) too.

Needs the debug build of the workspace (make test builds it first) and krew
(tests/delivery/install-tools.sh builds it). Exit status non-zero on any
failure; the last line is "N passed, F failed".
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
passed = failed = 0


def check(ok: bool, description: str, detail: str = "") -> None:
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   - {description}")
    else:
        failed += 1
        print(f"FAIL - {description}" + (f": {detail}" if detail else ""))


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT)


def target_dir() -> Path:
    if os.environ.get("CARGO_TARGET_DIR"):
        return Path(os.environ["CARGO_TARGET_DIR"])
    cache = Path(os.environ.get("MOVIEAPP_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "movieapp")
    key = hashlib.sha256(run("rustc", "-vV").stdout.encode()).hexdigest()[:12]
    return cache / f"target-{key}"


def template_checks() -> None:
    """plugin.yaml as checked in: a template whose only placeholders are
    {{VERSION}} and, in each platform's sha256, {{SHA256 os/arch}} of that
    platform's own selector (the renderer fills in exactly those)."""
    text = (ROOT / "plugin.yaml").read_text()
    manifest = yaml.safe_load(text)
    spec = manifest["spec"]
    check(spec["version"] == "v{{VERSION}}", "the template's version is v{{VERSION}}", spec["version"])
    platforms = [f"{p['selector']['matchLabels']['os']}/{p['selector']['matchLabels']['arch']}" for p in spec["platforms"]]
    check(sorted(platforms) == ["darwin/amd64", "darwin/arm64", "linux/amd64", "linux/arm64"] and len(set(platforms)) == 4,
          "one platform each for Linux and macOS on amd64 and arm64", str(platforms))
    shas = [p["sha256"] for p in spec["platforms"]]
    check(shas == [f"{{{{SHA256 {p}}}}}" for p in platforms],
          "each platform's sha256 is the placeholder of its own os/arch", str(shas))
    body = "".join(line for line in text.splitlines(keepends=True) if not line.lstrip().startswith("#"))
    placeholders = sorted(set(re.findall(r"\{\{[^}]*\}\}", body)))
    check(placeholders == sorted({"{{VERSION}}", *(f"{{{{SHA256 {p}}}}}" for p in platforms)}),
          "no other placeholder in the template (outside its comments)", str(placeholders))
    check(all("{{VERSION}}" in p["uri"] and p["uri"].endswith(f"_{p['selector']['matchLabels']['os']}_{p['selector']['matchLabels']['arch']}.tar.gz")
              for p in spec["platforms"]),
          "each uri names its version and its own platform's archive")


def main() -> int:
    binary = target_dir() / "debug" / "kubectl-movieapp"
    if not binary.is_file():
        check(False, f"{binary} is built", "build the workspace first (cargo build --workspace)")
        print(f"{passed} passed, {failed} failed")
        return 1
    version = re.search(r'^version = "(\S+)"', (ROOT / "Cargo.toml").read_text(), re.M).group(1)
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
    os_name = platform.system().lower()

    template_checks()

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        dist = scratch / "dist"
        packaged = run("bash", "scripts/package-plugin.sh", version, f"{os_name}_{arch}", str(binary), str(dist))
        archive = dist / f"kubectl-movieapp_v{version}_{os_name}_{arch}.tar.gz"
        check(packaged.returncode == 0 and archive.is_file(), f"package-plugin.sh makes {archive.name}", packaged.stderr)
        with tarfile.open(archive) as tar:
            members = {m.name: m for m in tar.getmembers()}
        check(sorted(members) == ["LICENSE", "kubectl-movieapp"], "the archive holds the binary and LICENSE at its top", str(sorted(members)))
        check(members.get("kubectl-movieapp") is not None and members["kubectl-movieapp"].mode & 0o111 == 0o111,
              "the binary in the archive is executable")

        refused = run("bash", "scripts/package-plugin.sh", version, "windows_amd64", str(binary), str(dist))
        check(refused.returncode == 2 and "OS_ARCH must be one of plugin.yaml's platforms" in refused.stderr,
              "package-plugin.sh refuses a platform plugin.yaml does not have", refused.stderr)

        manifest_path = scratch / "plugin.yaml"
        rendered = run("python3", "scripts/krew-manifest.py", "--version", version, "--dist", str(dist),
                       "--platforms", f"{os_name}/{arch}", "--out", str(manifest_path))
        check(rendered.returncode == 0, "krew-manifest.py renders plugin.yaml for this platform's archive", rendered.stderr)
        manifest = yaml.safe_load(manifest_path.read_text())
        spec = manifest["spec"]
        check(manifest["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2" and manifest["kind"] == "Plugin",
              "krew's apiVersion and kind")
        check(manifest["metadata"]["name"] == "movieapp" and spec["version"] == f"v{version}",
              f"plugin movieapp, version v{version} (the workspace's)", f"{manifest['metadata']} {spec['version']}")
        check(0 < len(spec["shortDescription"]) <= 50, "a short description of at most 50 characters (krew-index's rule)")
        [entry] = spec["platforms"]
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        check(entry["sha256"] == digest, "the manifest's sha256 is the archive's", entry["sha256"])
        check(entry["uri"].endswith("/" + archive.name) and entry["uri"].startswith("https://"),
              "the uri names the archive, over https", entry["uri"])
        check(entry["selector"]["matchLabels"] == {"os": os_name, "arch": arch}, "the selector is this platform's")
        check(entry["bin"] == "kubectl-movieapp" and all(f["from"] in members for f in entry["files"]),
              "bin and every files entry are in the archive", str(entry["files"]))

        missing = run("python3", "scripts/krew-manifest.py", "--version", version, "--dist", str(dist))
        check(missing.returncode == 1 and "is missing" in missing.stderr,
              "without --platforms every platform's archive is needed (a release never publishes a partial manifest)",
              missing.stderr)
        bad = run("python3", "scripts/krew-manifest.py", "--version", "1.2", "--dist", str(dist))
        check(bad.returncode == 1 and "--version must be X.Y.Z" in bad.stderr, "a bad version is refused", bad.stderr)
        mismatched = scratch / "mismatched.yaml"
        mismatched.write_text((ROOT / "plugin.yaml").read_text().replace(
            f"{{{{SHA256 {os_name}/{arch}}}}}", "{{SHA256 windows/amd64}}"))
        left = run("python3", "scripts/krew-manifest.py", "--version", version, "--dist", str(dist),
                   "--platforms", f"{os_name}/{arch}", "--template", str(mismatched))
        check(left.returncode == 1 and "placeholders left" in left.stderr and left.stdout == "",
              "a sha256 placeholder naming another platform is refused, not published", left.stderr)

        krew = os.environ.get("KREW")
        if not krew:
            check(False, "krew is available", "KREW is not set: run through tests/delivery/test.sh (install-tools.sh builds it)")
        else:
            env = dict(os.environ, KREW_ROOT=str(scratch / "krew"), HOME=str(scratch))
            installed = run(krew, "install", f"--manifest={manifest_path}", f"--archive={archive}", env=env)
            check(installed.returncode == 0, "krew installs the plugin from the manifest and the archive",
                  installed.stdout + installed.stderr)
            env["PATH"] = f"{scratch / 'krew' / 'bin'}:{env['PATH']}"
            shown = run("kubectl", "movieapp", "--version", env=env)
            check(shown.returncode == 0 and shown.stdout.strip() == f"kubectl movieapp {version}",
                  "kubectl runs the krew-installed plugin: kubectl movieapp --version", shown.stdout + shown.stderr)
            listed = run("kubectl", "plugin", "list", env=env)
            check(str(scratch / "krew" / "bin" / "kubectl-movieapp") in listed.stdout,
                  "kubectl plugin list finds it in krew's bin directory", listed.stdout + listed.stderr)
            tampered = scratch / "tampered.yaml"
            tampered.write_text(manifest_path.read_text().replace(digest, "0" * 64))
            env["KREW_ROOT"] = str(scratch / "krew-2")
            refused = run(krew, "install", f"--manifest={tampered}", f"--archive={archive}", env=env)
            check(refused.returncode != 0, "krew refuses the archive when the manifest's sha256 differs",
                  refused.stdout + refused.stderr)

    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
