#!/usr/bin/env python3
"""Argo CD deploys the operator and a MovieApp from a Git repository, for real.

Argo CD's application controller and repo-server (v3.2, built from the Go
module proxy by build.sh) run as processes beside the local control plane,
with Redis from Debian as their cache. The controller reaches the cluster it
runs beside as Argo CD's in-cluster destination (ARGOCD_FAKE_IN_CLUSTER with
the admin kubeconfig, Argo CD's own switch for running outside a Pod); the
repo-server clones over HTTP from a bare repository on loopback (git_http.py)
and renders with helm and kustomize. The MovieApp health check is installed
as the docs say: gitops/argocd/argocd-cm.yaml is the argocd-cm ConfigMap.
The Applications are gitops/argocd/applications/*.yaml with the test's
repository URL and namespaces. kwok runs no containers, so the operator runs
as a process authenticated as the chart's ServiceAccount.

Scenarios:
  1. the operator's Application (Helm chart from the Git path) is Synced and Healthy
  2. the MovieApp's Application is Progressing with health.lua's message
     before the operator runs, then Synced and Healthy through health.lua
  3. a spec change pushed to Git: synced while the operator is stopped,
     Progressing until it runs again and rolls it out, then Healthy for the
     new generation
  4. a bad spec pushed to Git: Degraded with the MovieApp's Stalled reason
     and message; the fix makes it Healthy again
  5. five minutes with the operator running and Argo CD comparing every
     20 s: Synced throughout, no sync after the last change (no OutOfSync
     loop over defaulted fields, quantities or status)
  6. the app removed from Git: Argo CD prunes the MovieApp; its AWS
     resources are deleted before it is gone
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import kubectl  # noqa: E402

APP = "gitops/apps/netflix-clone"
STEADY_SECONDS = int(os.environ.get("MOVIEAPP_ARGOCD_STEADY_SECONDS", "300"))
APP_RESYNC_SECONDS = 20


def main() -> int:
    harness.require_localenv()
    return harness.Suite("argocd").run(run)


def redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    print(">> installing redis-server (Debian package) for Argo CD's cache", file=sys.stderr)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "redis-server"],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    return shutil.which("redis-server") or "/usr/bin/redis-server"


def run(suite: harness.Suite) -> None:
    harness.operator_binary()
    tools = {**harness.delivery_tools(), **harness.tools("kustomize", "argocd")}
    ident = suite.id
    ns_argo, ns_sys, ns_apps = f"mvg-{ident}-argocd", f"mvg-{ident}-system", f"mvg-{ident}-apps"
    release = f"mvg-{ident}"
    repository = f"mvg-{ident}/api-worker"
    created_crds: list[str] = []
    suite.cleanups.append(lambda: harness.delete_repository(repository))
    suite.cleanups.append(lambda: cleanup_cluster(suite, ns_argo, ns_sys, ns_apps, release, created_crds))

    suite.section("Argo CD, from the Go module proxy, beside the control plane")
    for crd in ("application-crd.yaml", "appproject-crd.yaml"):
        kubectl("apply", "--server-side", "--force-conflicts", "-f", os.path.join(tools["ARGOCD_DIR"], "manifests", "crds", crd))
    # The operator's Application enables the chart's ServiceMonitor and
    # PrometheusRule: their CRDs (prometheus-operator's), when the cluster lacks them.
    for kind in ("servicemonitors", "prometheusrules"):
        if harness.get("crd", f"{kind}.monitoring.coreos.com") is None:
            kubectl("apply", "--server-side", "-f", os.path.join(tools["PROMETHEUS_OPERATOR_CRDS"], f"monitoring.coreos.com_{kind}.yaml"))
            created_crds.append(f"{kind}.monitoring.coreos.com")
    kubectl("wait", "--for", "condition=established", "--timeout=60s", "crd/applications.argoproj.io", "crd/appprojects.argoproj.io",
            *[f"crd/{c}" for c in created_crds])
    kubectl("create", "namespace", ns_argo)
    argocd_cm = harness.yaml.safe_load((harness.ROOT / "gitops/argocd/argocd-cm.yaml").read_text())
    argocd_cm["metadata"]["namespace"] = ns_argo
    part_of = {"app.kubernetes.io/part-of": "argocd"}
    argocd_cm["metadata"]["labels"] = part_of
    harness.apply(
        [
            argocd_cm,
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-rbac-cm", "namespace": ns_argo, "labels": part_of}},
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "argocd-secret", "namespace": ns_argo, "labels": part_of},
                "stringData": {"server.secretkey": os.urandom(16).hex()},
            },
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "AppProject",
                "metadata": {"name": "default", "namespace": ns_argo},
                "spec": {
                    "sourceRepos": ["*"],
                    "destinations": [{"server": "*", "namespace": "*"}],
                    "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
                },
            },
        ]
    )

    redis_port, repo_port = harness.free_port(), harness.free_port()
    suite.start("redis", [redis_server(), "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "", "--appendonly", "no"])
    suite.eventually(30, "Redis (Debian) answers", lambda: harness.port_open(redis_port), 0.2)
    bin_dir = suite.work / "bin"
    bin_dir.mkdir()
    for name in ("argocd", "argocd-application-controller", "argocd-repo-server", "argocd-git-ask-pass"):
        (bin_dir / name).symlink_to(tools["ARGOCD"])
    for name, tool in (("helm", tools["HELM"]), ("kustomize", tools["KUSTOMIZE"])):
        (bin_dir / name).symlink_to(tool)
    tmp = suite.work / "tmp"
    tmp.mkdir()
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "TMPDIR": str(tmp),
        "ARGOCD_GPG_ENABLED": "false",
        "ARGOCD_FAKE_IN_CLUSTER": "true",
    }
    suite.start(
        "argocd-repo-server",
        [str(bin_dir / "argocd-repo-server"), "--address", "127.0.0.1", "--port", str(repo_port), "--metrics-address", "127.0.0.1",
         "--metrics-port", str(harness.free_port()), "--disable-tls", "--redis", f"127.0.0.1:{redis_port}", "--logformat", "text"],
        env=env,
    )
    if not suite.eventually(120, "the repo-server listens", lambda: harness.port_open(repo_port), 0.5):
        raise RuntimeError("the repo-server did not start")
    controller_metrics = harness.free_port()
    suite.start(
        "argocd-application-controller",
        [str(bin_dir / "argocd-application-controller"), "--namespace", ns_argo, "--repo-server", f"127.0.0.1:{repo_port}",
         "--repo-server-plaintext", "--redis", f"127.0.0.1:{redis_port}", "--metrics-port", str(controller_metrics),
         "--app-resync", str(APP_RESYNC_SECONDS), "--status-processors", "4", "--operation-processors", "2",
         "--persist-resource-health", "--logformat", "text"],
        env=env,
    )
    if not suite.eventually(120, "the application controller serves its metrics", lambda: harness.http_ok(f"http://127.0.0.1:{controller_metrics}/metrics")):
        raise RuntimeError("the application controller did not start")

    suite.section("a Git repository on loopback holding charts/ and gitops/")
    git = harness.GitServer(suite)
    repo = git.repository("movieapp")
    for path in ("charts", "gitops"):
        repo.copy(path)
    movieapp = repo.read_yaml(f"{APP}/movieapp.yaml")
    movieapp["metadata"]["namespace"] = ns_apps
    movieapp["spec"]["deletionPolicy"] = "Delete"
    movieapp["spec"]["worker"]["image"] = {"repository": repository, "tag": "1.0.0"}
    repo.write_yaml(f"{APP}/movieapp.yaml", movieapp)
    namespace = repo.read_yaml(f"{APP}/namespace.yaml")
    namespace["metadata"]["name"] = ns_apps
    repo.write_yaml(f"{APP}/namespace.yaml", namespace)
    digest_1 = harness.push_image(repository, "1.0.0")
    repo.commit("charts and gitops, as in the checkout, for the test's namespaces")
    kubectl("create", "namespace", ns_apps)
    kubectl("-n", ns_apps, "create", "secret", "generic", "tmdb", f"--from-literal=api-key={os.environ.get('TMDB_API_KEY', 'key')}")

    applications = {}
    for name in ("movieapp-operator", "netflix-clone"):
        document = harness.yaml.safe_load((harness.ROOT / f"gitops/argocd/applications/{name}.yaml").read_text())
        document["metadata"]["namespace"] = ns_argo
        document["spec"]["source"]["repoURL"] = repo.url
        document["spec"]["destination"]["namespace"] = ns_sys if name == "movieapp-operator" else ns_apps
        applications[name] = document
    applications["movieapp-operator"]["spec"]["source"]["helm"]["releaseName"] = release
    # The worker role the MovieApp names is allowed for the test's namespace
    # (the chart's admission policy refuses it anywhere else).
    admission = applications["movieapp-operator"]["spec"]["source"]["helm"]["valuesObject"]["admission"]
    admission["workerRoleArns"] = {ns_apps: admission["workerRoleArns"]["movies"]}

    def application(name: str) -> dict:
        return harness.get("application", name, ns_argo) or {}

    def synced_healthy(name: str):
        status = application(name).get("status") or {}
        return (status.get("sync") or {}).get("status") == "Synced" and (status.get("health") or {}).get("status") == "Healthy" and status

    def movieapp_health(name: str = "netflix-clone") -> dict:
        for resource in (application(name).get("status") or {}).get("resources") or []:
            if resource.get("kind") == "MovieApp":
                return resource.get("health") or {}
        return {}

    suite.section("1. the operator, from the chart in Git")
    harness.apply(applications["movieapp-operator"])
    suite.eventually(240, "the operator's Application is Synced and Healthy", lambda: synced_healthy("movieapp-operator"), 2)
    fullname = f"{release}-movieapp-operator"
    suite.report(
        harness.get("serviceaccount", fullname, ns_sys) is not None and harness.get("servicemonitor", fullname, ns_sys) is not None,
        f"Argo CD made the release's ServiceAccount and ServiceMonitor ({fullname})",
    )

    suite.section("2. the MovieApp, its health from health.lua")
    harness.apply(applications["netflix-clone"])
    suite.eventually(120, "Argo CD syncs the MovieApp", lambda: harness.get("movieapp", "netflix-clone", ns_apps), 1)
    suite.eventually(
        60,
        "without the operator: Progressing, with health.lua's message",
        lambda: movieapp_health().get("status") == "Progressing"
        and movieapp_health().get("message") == "Waiting for the operator to reconcile the MovieApp"
        and (application("netflix-clone")["status"].get("health") or {}).get("status") == "Progressing",
        1,
    )
    kubeconfig = harness.serviceaccount_kubeconfig(suite, ns_sys, fullname)
    operator, metrics = harness.start_operator(suite, watch=ns_apps, lease_namespace=ns_sys, kubeconfig=kubeconfig)
    suite.eventually(60, "the operator runs as the chart's ServiceAccount", lambda: harness.http_ok(f"{metrics}/readyz"))
    suite.eventually(240, "the Application is Synced and Healthy once the MovieApp is Ready", lambda: synced_healthy("netflix-clone"), 1)
    health = movieapp_health()
    ready = harness.condition(harness.get("movieapp", "netflix-clone", ns_apps), "Ready")
    suite.report(
        health.get("status") == "Healthy" and health.get("message") == f"{ready.get('reason')}: {ready.get('message')}",
        f"the MovieApp's health is health.lua's ({health.get('message')!r})",
    )
    suite.report(
        harness.get("movieapp", "netflix-clone", ns_apps)["status"].get("image", "").endswith(digest_1),
        "the worker runs the first tag's digest",
    )

    suite.section("3. a spec change pushed to Git")
    # The operator stands aside while Argo CD syncs the change, so the
    # Progressing state is seen rather than sampled: on kwok the operator
    # can roll a change out before Argo CD next refreshes the MovieApp's
    # health (seen as Healthy -> Unknown -> Healthy).
    suite.stop(operator)
    digest_2 = harness.push_image(repository, "1.1.0", variant=2)
    seen = HealthWatch(ns_argo, "netflix-clone")
    movieapp["spec"]["worker"]["image"]["tag"] = "1.1.0"
    repo.write_yaml(f"{APP}/movieapp.yaml", movieapp)
    revision = repo.commit("netflix-clone: api-worker 1.1.0")
    refresh(ns_argo, "netflix-clone")
    suite.eventually(
        120,
        "synced while the operator is stopped: Progressing, with health.lua's message for the unreconciled generation",
        lambda: movieapp_health().get("status") == "Progressing"
        and "reconcile generation 2" in (movieapp_health().get("message") or ""),
        1,
    )
    operator, _ = harness.start_operator(
        suite, watch=ns_apps, lease_namespace=ns_sys, kubeconfig=kubeconfig, name="operator-resumed"
    )

    def rolled_out():
        app = harness.get("movieapp", "netflix-clone", ns_apps)
        status = synced_healthy("netflix-clone")
        return (
            status
            and status["sync"].get("revision") == revision
            and app["metadata"]["generation"] == 2
            and harness.movieapp_ready(app)
            and app["status"].get("image", "").endswith(digest_2)
        )

    suite.eventually(180, "Synced to the new revision and Healthy with the new digest", rolled_out, 1)
    seen.stop()
    suite.report(
        "Progressing" in seen.states(),
        f"the Application was Progressing until the operator rolled the change out (health seen: {' -> '.join(seen.states())})",
    )

    suite.section("4. a bad spec pushed to Git")
    movieapp["spec"]["worker"]["tmdb"]["apiKeySecretRef"]["key"] = "no-such-key"
    repo.write_yaml(f"{APP}/movieapp.yaml", movieapp)
    repo.commit("netflix-clone: a TMDB key that does not exist")
    refresh(ns_argo, "netflix-clone")
    degraded = suite.eventually(
        120,
        "the Application is Degraded",
        lambda: (application("netflix-clone").get("status") or {}).get("health", {}).get("status") == "Degraded" and movieapp_health(),
        1,
    )
    stalled = harness.condition(harness.get("movieapp", "netflix-clone", ns_apps), "Stalled")
    if degraded:
        suite.report(
            degraded.get("message") == f"SecretKeyNotFound: {stalled.get('message')}",
            f"with the MovieApp's Stalled reason and message ({degraded.get('message')!r})",
        )
    movieapp["spec"]["worker"]["tmdb"]["apiKeySecretRef"]["key"] = "api-key"
    repo.write_yaml(f"{APP}/movieapp.yaml", movieapp)
    revision = repo.commit("netflix-clone: the TMDB key again")
    refresh(ns_argo, "netflix-clone")
    suite.eventually(
        180,
        "the fix pushed to Git makes it Synced and Healthy again",
        lambda: (s := synced_healthy("netflix-clone")) and s["sync"].get("revision") == revision,
        1,
    )

    suite.section(f"5. {STEADY_SECONDS} s with the operator running: no OutOfSync loop")
    # The window opens once the fix's roll-out has settled: the operator
    # reports the worker's Pods as kwok starts them, for a few seconds after
    # Healthy. A write loop would still show within the window.
    settled = {"version": None, "since": time.monotonic()}

    def quiet_for(seconds: float) -> bool:
        version = harness.get("movieapp", "netflix-clone", ns_apps)["metadata"]["resourceVersion"]
        if version != settled["version"]:
            settled["version"], settled["since"] = version, time.monotonic()
        return time.monotonic() - settled["since"] >= seconds

    suite.eventually(90, "the MovieApp is not written for 10 s after the fix rolled out", lambda: quiet_for(10), 1)
    before = application("netflix-clone")["status"]
    history = len(before.get("history") or [])
    operation = (before.get("operationState") or {}).get("startedAt")
    generation = harness.get("movieapp", "netflix-clone", ns_apps)["metadata"]["generation"]
    resource_version_samples = set()
    samples, out_of_sync, not_healthy = 0, [], []
    reconciled = set()
    deadline = time.monotonic() + STEADY_SECONDS
    while time.monotonic() < deadline:
        status = application("netflix-clone").get("status") or {}
        samples += 1
        if (status.get("sync") or {}).get("status") != "Synced":
            out_of_sync.append((status.get("sync") or {}).get("status"))
        if (status.get("health") or {}).get("status") != "Healthy":
            not_healthy.append((status.get("health") or {}).get("status"))
        reconciled.add(status.get("reconciledAt"))
        resource_version_samples.add(harness.get("movieapp", "netflix-clone", ns_apps)["metadata"]["resourceVersion"])
        time.sleep(5)
    after = application("netflix-clone")["status"]
    suite.report(not out_of_sync, f"Synced in every one of {samples} samples (out of sync: {len(out_of_sync)})")
    suite.report(not not_healthy, f"Healthy in every sample (not Healthy: {not_healthy[:5]})")
    suite.report(
        len(after.get("history") or []) == history and (after.get("operationState") or {}).get("startedAt") == operation,
        f"no sync ran: history stays at {history} entries, the last operation started at {operation}",
    )
    suite.report(
        len(reconciled) >= max(2, STEADY_SECONDS // (APP_RESYNC_SECONDS * 3)),
        f"Argo CD compared the app against Git meanwhile ({len(reconciled)} distinct reconciledAt)",
    )
    suite.report(
        harness.get("movieapp", "netflix-clone", ns_apps)["metadata"]["generation"] == generation and len(resource_version_samples) == 1,
        f"nobody wrote the MovieApp meanwhile (generation {generation}, one resourceVersion)",
    )

    suite.section("6. the app removed from Git")
    owned = harness.owned_in_aws(harness.get("movieapp", "netflix-clone", ns_apps))
    kustomization = repo.read_yaml(f"{APP}/kustomization.yaml")
    kustomization["resources"] = ["namespace.yaml"]
    repo.write_yaml(f"{APP}/kustomization.yaml", kustomization)
    (repo.dir / APP / "movieapp.yaml").unlink()
    # Held by a finalizer of the test's own, the MovieApp stays visible after
    # the operator lets it go, so the order is seen, not sampled.
    harness.hold("movieapp", "netflix-clone", ns_apps)
    repo.commit("netflix-clone: the MovieApp removed")
    refresh(ns_argo, "netflix-clone")
    suite.eventually(
        180,
        "Argo CD prunes the MovieApp, and the operator finishes its cleanup (removes its finalizer)",
        lambda: harness.deletion_finished_by_operator("netflix-clone", ns_apps),
        1,
    )
    left = harness.still_in_aws(owned)
    suite.report(not left, "the AWS resources were deleted while the MovieApp still existed (its finalizer)", f"still in AWS: {left}")
    harness.release("movieapp", "netflix-clone", ns_apps)
    suite.eventually(60, "the MovieApp is gone", lambda: harness.get("movieapp", "netflix-clone", ns_apps) is None, 1)
    suite.eventually(120, "the Application is Synced and Healthy without it", lambda: synced_healthy("netflix-clone"), 2)
    suite.report(operator.poll() is None, "the operator ran throughout (since it was started again in section 3)")


def refresh(namespace: str, name: str) -> None:
    """What `argocd app get --refresh` asks for: a normal refresh now."""
    kubectl("-n", namespace, "annotate", "--overwrite", "application", name, "argocd.argoproj.io/refresh=normal")


class HealthWatch:
    """Every health status the Application passes through (a kubectl watch)."""

    def __init__(self, namespace: str, name: str) -> None:
        self._seen: list[str] = []
        self._process = subprocess.Popen(
            ["kubectl", "-n", namespace, "get", "application", name, "--watch", "--output-watch-events", "-o", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        decoder = json.JSONDecoder()
        buffer = ""
        assert self._process.stdout is not None
        for line in self._process.stdout:
            buffer += line
            try:
                event, end = decoder.raw_decode(buffer.lstrip())
            except ValueError:
                continue
            buffer = buffer.lstrip()[end:]
            health = ((event.get("object") or {}).get("status") or {}).get("health", {}).get("status")
            if health and (not self._seen or self._seen[-1] != health):
                self._seen.append(health)

    def states(self) -> list[str]:
        return list(self._seen)

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait()
        self._thread.join(timeout=5)


def cleanup_cluster(suite: harness.Suite, ns_argo: str, ns_sys: str, ns_apps: str, release: str, created_crds: list[str]) -> None:
    for name, process in list(suite.processes):
        if name.startswith("argocd-"):
            suite.stop(process)
    out = kubectl("-n", ns_argo, "get", "applications", "-o", "name", check=False)
    for name in out.split():
        kubectl("-n", ns_argo, "patch", name, "--type", "merge", "-p", '{"metadata":{"finalizers":null}}', check=False)
    kubectl("delete", "clusterrole,clusterrolebinding,validatingadmissionpolicy,validatingadmissionpolicybinding", "-l", f"app.kubernetes.io/instance={release}", "--ignore-not-found", check=False)
    harness.delete_namespaces([ns_apps, ns_sys, ns_argo])
    for crd in created_crds:
        kubectl("delete", "crd", crd, "--ignore-not-found", "--wait=false", check=False)


if __name__ == "__main__":
    sys.exit(main())
