"""What the GitOps and monitoring suites share: reporting, waiting, kubectl,
processes started beside the local environment, a Git repository served on
loopback, the operator run as the chart's ServiceAccount, and what a
MovieApp owns in AWS (moto).

Every suite prints "ok - ..." / "FAIL - ..." lines and ends with
"N passed, F failed"; it stops every process it started and removes every
namespace it made, whatever happens. Processes are started and stopped by
the local environment's supervisor (`localenv.sh start` / `stop`), which
records them beside the components: `make env-status` shows them and
`make env-down` stops them, even after a suite was killed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import boto3
import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "tests" / "gitops"


LOCALENV = ROOT / "tests" / "localenv" / "localenv.sh"


class Supervised:
    """A process the supervisor runs for a suite, under a name unique to the
    suite's run."""

    def __init__(self, name: str, log: Path) -> None:
        self.name = name
        self.log = log

    def poll(self) -> int | None:
        """None while it runs (as `subprocess.Popen.poll`), else 1."""
        running = subprocess.run(["bash", str(LOCALENV), "running", self.name], capture_output=True, check=False)
        return None if running.returncode == 0 else 1


class Suite:
    """Counts checks and owns what the suite starts and creates."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.id = secrets.token_hex(3)
        self.passed = 0
        self.failed = 0
        self.work = Path(tempfile.mkdtemp(prefix=f"mvg-{name}-"))
        self.processes: list[tuple[str, Supervised]] = []
        self.cleanups: list[Callable[[], None]] = []
        self.logs: dict[str, Path] = {}

    def run(self, body: Callable[["Suite"], None]) -> int:
        """Runs the suite's body; whatever happens (a broken step, SIGTERM,
        Ctrl-C) every process it started is stopped and what it made removed."""

        def terminated(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, terminated)
        try:
            body(self)
        except Exception as error:  # a broken step fails the suite
            self.report(False, f"the suite ran to its end: {type(error).__name__}: {error}")
        except KeyboardInterrupt as error:
            self.report(False, f"the suite was interrupted ({error})")
        return self.finish()

    # ------------------------------------------------------------ reporting
    def report(self, ok: bool, description: str, detail: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"ok   - {description}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL - {description}" + (f"\n{detail}" if detail else ""), flush=True)
        return ok

    def eventually(self, timeout: float, description: str, probe: Callable[[], Any], interval: float = 1.0) -> Any:
        """Passes once `probe()` returns something truthy; returns it (None on time-out)."""
        started = time.monotonic()
        last_error = ""
        while True:
            try:
                value = probe()
                if value:
                    self.report(True, f"{description} ({time.monotonic() - started:.0f} s)")
                    return value
            except Exception as error:  # a probe failing is "not yet"
                last_error = f"{type(error).__name__}: {error}"
            if time.monotonic() - started > timeout:
                self.report(False, f"{description} (not within {timeout:.0f} s)", last_error)
                return None
            time.sleep(interval)

    def section(self, title: str) -> None:
        print(f"# {title}", flush=True)

    # ------------------------------------------------------------ processes
    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None, probe: str | None = None) -> Supervised:
        """Starts a process through the supervisor, with this process's
        environment and `env`; returns once `probe` (a URL) answers, or at
        once without one."""
        supervised = f"{self.name}-{self.id}-{name}"
        command = ["bash", str(LOCALENV), "start", supervised]
        if probe:
            command += ["--probe", probe]
        result = subprocess.run(
            [*command, "--", *map(str, argv)],
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            check=False,
        )
        log = ROOT / ".localenv" / "logs" / f"{supervised}.log"
        self.logs[name] = log
        if result.returncode != 0:
            raise RuntimeError(f"starting {name}: {result.stderr.strip()}")
        process = Supervised(supervised, log)
        self.processes.append((name, process))
        return process

    def stop(self, process: Supervised, timeout: float = 15) -> int:
        """SIGTERM to the process's group, SIGKILL after `timeout` seconds;
        0 when it exited on SIGTERM."""
        result = subprocess.run(
            ["bash", str(LOCALENV), "stop", process.name, "--grace", str(max(1, round(timeout)))],
            capture_output=True,
            text=True,
            check=False,
        )
        self.processes = [(n, p) for n, p in self.processes if p is not process]
        return result.returncode

    def finish(self) -> int:
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as error:  # clean-up goes on
                print(f"# clean-up: {error}", file=sys.stderr)
        for _, process in reversed(list(self.processes)):
            self.stop(process, timeout=10)
        if self.failed:
            for name, log in self.logs.items():
                if log.exists():
                    tail = log.read_text(errors="replace").splitlines()[-25:]
                    print(f"--- last lines of {name}'s log ({log})")
                    print("\n".join(tail))
        else:
            shutil.rmtree(self.work, ignore_errors=True)
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status == 200
    except OSError:
        return False


# ---------------------------------------------------------------- kubectl
def kubectl(*args: str, stdin: str | None = None, kubeconfig: str | None = None, check: bool = True) -> str:
    env = dict(os.environ)
    if kubeconfig:
        env["KUBECONFIG"] = kubeconfig
    result = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, env=env, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def get(kind: str, name: str, namespace: str | None = None) -> dict | None:
    args = ["get", kind, name, "-o", "json", "--ignore-not-found"]
    if namespace:
        args += ["-n", namespace]
    out = kubectl(*args)
    return json.loads(out) if out.strip() else None


def apply(documents: list[dict] | dict, server_side: bool = True) -> None:
    if isinstance(documents, dict):
        documents = [documents]
    args = ["apply", "-f", "-"]
    if server_side:
        args += ["--server-side", "--force-conflicts", "--field-manager", "movieapp-gitops-tests"]
    kubectl(*args, stdin=yaml.safe_dump_all(documents))


def condition(obj: dict | None, kind: str) -> dict:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c
    return {}


def is_true(obj: dict | None, kind: str) -> bool:
    return condition(obj, kind).get("status") == "True"


def movieapp_ready(app: dict | None) -> bool:
    """Ready=True for the current generation (what the health script and kstatus require)."""
    return bool(app) and is_true(app, "Ready") and app["status"].get("observedGeneration") == app["metadata"]["generation"]


def request_reconcile(kind: str, name: str, namespace: str) -> None:
    """What `flux reconcile` does: a new requestedAt annotation."""
    kubectl("-n", namespace, "annotate", "--overwrite", kind, name, f"reconcile.fluxcd.io/requestedAt={time.time_ns()}")


def install_crd() -> None:
    """The MovieApp CRD, as `make demo` and the installation guide install it."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds/movieapp.io_movieapps.yaml"))
    kubectl("wait", "--for", "condition=established", "--timeout=60s", "crd/movieapps.movieapp.io")


def delete_namespaces(names: list[str]) -> None:
    """Removes test namespaces; without an operator, MovieApp finalizers would hold them."""
    for ns in names:
        out = kubectl("-n", ns, "get", "movieapps", "-o", "name", check=False)
        for name in out.split():
            kubectl("-n", ns, "patch", name, "--type", "merge", "-p", '{"metadata":{"finalizers":null}}', check=False)
    if names:
        kubectl("delete", "namespace", *names, "--ignore-not-found", "--wait=false", check=False)


# ---------------------------------------------------------------- tools
def tools(*names: str) -> dict[str, str]:
    """Builds (first time) or finds the cached tools; returns their exports."""
    out = subprocess.run(
        ["bash", str(HERE / "build.sh"), *names], capture_output=False, stdout=subprocess.PIPE, text=True, check=True
    ).stdout
    return _exports(out)


def delivery_tools() -> dict[str, str]:
    out = subprocess.run(
        ["bash", str(ROOT / "tests/delivery/install-tools.sh")], stdout=subprocess.PIPE, text=True, check=True
    ).stdout
    return _exports(out)


def _exports(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            name, _, value = line[len("export ") :].partition("=")
            found[name] = value
    return found


def operator_binary() -> str:
    """The operator binary (MOVIEAPP_OPERATOR_BIN, or a debug build). Suites
    call it before they start anything timed: a build waiting for Cargo's
    lock must not eat a controller's timeout."""
    if not os.environ.get("MOVIEAPP_OPERATOR_BIN"):
        subprocess.run(["cargo", "build", "--quiet", "--locked", "-p", "movieapp-operator"], cwd=ROOT, check=True)
        target = os.environ.get("CARGO_TARGET_DIR") or str(ROOT / "target")
        os.environ["MOVIEAPP_OPERATOR_BIN"] = str(Path(target) / "debug" / "movieapp-operator")
    return os.environ["MOVIEAPP_OPERATOR_BIN"]


def helm_template(helm: str, release: str, namespace: str, *args: str) -> list[dict]:
    out = subprocess.run(
        [helm, "template", release, str(ROOT / "charts/movieapp-operator"), "-n", namespace, *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


# ---------------------------------------------------------------- the operator
def serviceaccount_kubeconfig(suite: Suite, namespace: str, serviceaccount: str) -> str:
    """A kubeconfig holding a TokenRequest token of the ServiceAccount."""
    admin = yaml.safe_load(kubectl("config", "view", "--raw", "--minify", "-o", "yaml"))
    cluster = admin["clusters"][0]["cluster"]
    token = kubectl("-n", namespace, "create", "token", serviceaccount, "--duration", "2h").strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": serviceaccount, "user": {"token": token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": serviceaccount}}],
        "current-context": "local",
    }
    path = suite.work / f"{serviceaccount}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def start_operator(
    suite: Suite,
    watch: str,
    lease_namespace: str,
    kubeconfig: str | None = None,
    name: str = "operator",
    resync: str = "15s",
) -> tuple[Supervised, str]:
    """The real operator as a process beside the cluster (kwok runs no
    containers, so the Pods the chart makes never execute it)."""
    port = free_port()
    env = {"POD_NAME": f"{name}-{suite.id}", "POD_NAMESPACE": lease_namespace}
    if kubeconfig:
        env["KUBECONFIG"] = kubeconfig
    if os.environ.get("MOVIEAPP_OPERATOR_LOG"):
        env.pop("MOVIEAPP_OPERATOR_LOG", None)
    return suite.start(
        name,
        [
            operator_binary(),
            "run",
            "--namespaces",
            watch,
            "--leader-elect",
            "--metrics-addr",
            f"127.0.0.1:{port}",
            "--resync-interval",
            resync,
            "--default-region",
            os.environ.get("AWS_REGION", "us-east-1"),
            "--aws-endpoint-url",
            os.environ["AWS_ENDPOINT_URL"],
            "--log-format",
            "json",
        ],
        env=env,
        probe=f"http://127.0.0.1:{port}/readyz",
    ), f"http://127.0.0.1:{port}"


def push_image(repository: str, tag: str, variant: int = 1) -> str:
    """An image in moto's ECR (tests/localenv/push-image.py); returns its digest."""
    out = subprocess.run(
        [
            os.path.join(os.environ["LOCALENV_VENV"], "bin", "python"),
            str(ROOT / "tests/localenv/push-image.py"),
            "--repository",
            repository,
            "--tag",
            tag,
            "--variant",
            str(variant),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def delete_repository(repository: str) -> None:
    try:
        boto3.client("ecr").delete_repository(repositoryName=repository, force=True)
    except Exception:  # already gone
        pass


# ---------------------------------------------------------------- AWS (moto)
def owned_in_aws(app: dict) -> dict[str, str]:
    """The AWS resources a MovieApp's status names: {description: identifier}."""
    status = app.get("status") or {}
    found = {}
    for table in status.get("tables") or []:
        found[f"table {table['name']}"] = table["name"]
    queue = status.get("queue") or {}
    for key in ("url", "deadLetterUrl"):
        if queue.get(key):
            found[f"queue {queue[key].rsplit('/', 1)[-1]}"] = queue[key]
    topic = (status.get("notifications") or {}).get("topicArn")
    if topic:
        found[f"topic {topic.rsplit(':', 1)[-1]}"] = topic
    return found


def still_in_aws(owned: dict[str, str]) -> list[str]:
    """Which of `owned` AWS still has (every page: moto may hold other tests' resources)."""
    dynamodb, sqs, sns = boto3.client("dynamodb"), boto3.client("sqs"), boto3.client("sns")
    tables = {t for page in dynamodb.get_paginator("list_tables").paginate() for t in page.get("TableNames", [])}
    names = {ident.rsplit("/", 1)[-1] for description, ident in owned.items() if description.startswith("queue")}
    queues = {
        q.rsplit("/", 1)[-1]
        for name in names
        for page in sqs.get_paginator("list_queues").paginate(QueueNamePrefix=name)
        for q in page.get("QueueUrls", [])
    }
    topics = {t["TopicArn"] for page in sns.get_paginator("list_topics").paginate() for t in page.get("Topics", [])}
    left = []
    for description, ident in owned.items():
        if description.startswith("table") and ident in tables:
            left.append(description)
        elif description.startswith("queue") and ident.rsplit("/", 1)[-1] in queues:
            left.append(description)
        elif description.startswith("topic") and ident in topics:
            left.append(description)
    return left


# The operator's finalizer, and one of the tests' own: a test that must see a
# MovieApp after the operator let it go holds it with HOLD (the API server
# keeps an object until its last finalizer is removed), looks, and releases it.
OPERATOR_FINALIZER = "movieapp.io/cleanup"
HOLD = "tests.movieapp.io/hold"


def hold(kind: str, name: str, namespace: str) -> None:
    patch = [{"op": "add", "path": "/metadata/finalizers/-", "value": HOLD}]
    kubectl("-n", namespace, "patch", kind, name, "--type", "json", "-p", json.dumps(patch))


def release(kind: str, name: str, namespace: str) -> None:
    obj = get(kind, name, namespace)
    if obj is None:
        return
    rest = [f for f in obj["metadata"].get("finalizers") or [] if f != HOLD]
    kubectl("-n", namespace, "patch", kind, name, "--type", "merge", "-p", json.dumps({"metadata": {"finalizers": rest or None}}), check=False)


def deletion_finished_by_operator(name: str, namespace: str) -> dict | None:
    """The held MovieApp once it is being deleted and the operator removed its
    finalizer (its cleanup is over), else None."""
    app = get("movieapp", name, namespace)
    if not app or not app["metadata"].get("deletionTimestamp"):
        return None
    return None if OPERATOR_FINALIZER in (app["metadata"].get("finalizers") or []) else app


# ---------------------------------------------------------------- Git
class GitServer:
    """Bare repositories under one directory, served read-only over smart HTTP
    on loopback by `git http-backend` (git_http.py)."""

    def __init__(self, suite: Suite) -> None:
        self.suite = suite
        self.root = suite.work / "git"
        self.root.mkdir()
        self.port = free_port()
        suite.start("git-http", [sys.executable, str(HERE / "git_http.py"), "--root", str(self.root), "--port", str(self.port)])
        if not suite.eventually(30, "the Git server answers on loopback", lambda: _port_open(self.port), 0.2):
            raise RuntimeError("git server did not start")

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}.git"

    def repository(self, name: str) -> "Repository":
        return Repository(self, name)


class Repository:
    """A working copy whose commits go straight to the served bare repository."""

    def __init__(self, server: GitServer, name: str) -> None:
        self.bare = server.root / f"{name}.git"
        self.dir = server.suite.work / f"{name}-work"
        self.url = server.url(name)
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.bare)], check=True)
        subprocess.run(["git", "init", "-q", "-b", "main", str(self.dir)], check=True)
        self.git("remote", "add", "origin", str(self.bare))

    def git(self, *args: str) -> str:
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "movieapp tests",
            "GIT_AUTHOR_EMAIL": "tests@movieapp.invalid",
            "GIT_COMMITTER_NAME": "movieapp tests",
            "GIT_COMMITTER_EMAIL": "tests@movieapp.invalid",
        }
        return subprocess.run(["git", "-C", str(self.dir), *args], capture_output=True, text=True, env=env, check=True).stdout

    def copy(self, path: str) -> None:
        """Copies a file or directory of the checkout into the working copy."""
        source, target = ROOT / path, self.dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)

    def read_yaml(self, path: str) -> dict:
        return yaml.safe_load((self.dir / path).read_text())

    def write_yaml(self, path: str, document: dict) -> None:
        target = self.dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(document, sort_keys=False))

    def commit(self, message: str) -> str:
        """Commits everything and pushes; returns the new revision."""
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        self.git("push", "-q", "origin", "main")
        return self.git("rev-parse", "HEAD").strip()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def port_open(port: int) -> bool:
    return _port_open(port)


def require_localenv() -> None:
    """Fails the suite at once, with the component's log, when the local
    environment is not running or one of its components is not healthy
    (`localenv.sh status`: 0 healthy, 2 only a process of make demo beside
    the components is not), rather than leaving the tests to time out."""
    if "AWS_ENDPOINT_URL" not in os.environ or "KUBECONFIG" not in os.environ:
        print("FAIL - the local environment is not running: make env-up, then . .localenv/env.sh")
        print("0 passed, 1 failed")
        sys.exit(1)
    status = subprocess.run(
        ["bash", str(ROOT / "tests/localenv/localenv.sh"), "status"],
        capture_output=True,
        text=True,
        check=False,
    )
    if status.returncode not in (0, 2):
        print("FAIL - the local environment is not healthy (make env-status):")
        print(status.stdout + status.stderr)
        print("0 passed, 1 failed")
        sys.exit(1)
