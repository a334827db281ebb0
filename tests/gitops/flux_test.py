#!/usr/bin/env python3
"""Flux deploys the operator and a MovieApp from a Git repository, for real.

Flux's source-controller, kustomize-controller and helm-controller (built
from the Go module proxy by build.sh) run as processes beside the local
control plane, with its admin kubeconfig, like Flux's own in-cluster
ServiceAccount. A bare Git repository served on loopback (git_http.py, `git
http-backend`) holds this checkout's charts/ and gitops/; the Flux objects
are gitops/flux/*.yaml with the repository URL, namespaces and names of the
test. The chart installs the operator's Deployment, but kwok runs no
containers: the operator itself runs as a process authenticated as the
chart's ServiceAccount (a TokenRequest token), watching the app's namespace.

Scenarios:
  1. the operator Kustomization (namespace + HelmRelease of the chart from
     the Git path) becomes Ready; the release's ServiceAccount exists
  2. the apps Kustomization (wait: true) applies the MovieApp and is not
     Ready while the MovieApp is not, even before the operator has written
     any status (gitops/flux/apps.yaml's healthCheckExprs); once the operator
     runs, the MovieApp becomes Ready and then so does the Kustomization
  3. a spec change pushed to Git (a new image tag) rolls out: new generation,
     the Deployment runs the new digest, the Kustomization is Ready at the
     new revision
  4. a bad spec pushed to Git (a TMDB Secret key that does not exist) makes
     the Kustomization fail fast, naming the Stalled MovieApp (Flux reports
     the object's verdict, not its message); the fix pushed after it makes it
     Ready again
  5. the app removed from Git: Flux prunes the MovieApp (and its namespace);
     the operator removes its AWS resources (deletionPolicy Delete) before
     the MovieApp is gone, while the operator's release is untouched
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import kubectl  # noqa: E402

APP = "gitops/apps/netflix-clone"


def main() -> int:
    harness.require_localenv()
    return harness.Suite("flux").run(run)


def crds(directory: str) -> list[str]:
    base = os.path.join(directory, "config", "crd", "bases")
    return [os.path.join(base, f) for f in sorted(os.listdir(base)) if f.endswith(".yaml")]


def run(suite: harness.Suite) -> None:
    harness.operator_binary()
    tools = {**harness.delivery_tools(), **harness.tools("source-controller", "kustomize-controller", "helm-controller")}
    ident = suite.id
    ns_flux, ns_sys, ns_apps = f"mvg-{ident}-flux", f"mvg-{ident}-system", f"mvg-{ident}-apps"
    release = f"mvg-{ident}"
    repository = f"mvg-{ident}/api-worker"
    suite.cleanups.append(lambda: harness.delete_repository(repository))
    suite.cleanups.append(lambda: cleanup_cluster(suite, ns_flux, ns_sys, ns_apps, release))

    suite.section("Flux, from the Go module proxy, beside the control plane")
    for path in crds(tools["FLUX_SOURCE_CONTROLLER_DIR"]) + crds(tools["FLUX_KUSTOMIZE_CONTROLLER_DIR"]) + crds(tools["FLUX_HELM_CONTROLLER_DIR"]):
        kubectl("apply", "--server-side", "--force-conflicts", "-f", path)
    kubectl("wait", "--for", "condition=established", "--timeout=60s", "crd/gitrepositories.source.toolkit.fluxcd.io",
            "crd/kustomizations.kustomize.toolkit.fluxcd.io", "crd/helmreleases.helm.toolkit.fluxcd.io")
    kubectl("create", "namespace", ns_flux)
    storage_port = harness.free_port()
    (suite.work / "artifacts").mkdir()
    env = {"RUNTIME_NAMESPACE": ns_flux}
    common = ["--enable-leader-election=false", "--log-level=info"]
    controllers = {
        "source-controller": [
            tools["FLUX_SOURCE_CONTROLLER"],
            f"--storage-path={suite.work / 'artifacts'}",
            f"--storage-addr=127.0.0.1:{storage_port}",
            f"--storage-adv-addr=127.0.0.1:{storage_port}",
        ],
        "kustomize-controller": [tools["FLUX_KUSTOMIZE_CONTROLLER"]],
        "helm-controller": [tools["FLUX_HELM_CONTROLLER"]],
    }
    health = {}
    for name, argv in controllers.items():
        metrics, probe = harness.free_port(), harness.free_port()
        health[name] = probe
        suite.start(name, [*argv, *common, f"--metrics-addr=127.0.0.1:{metrics}", f"--health-addr=127.0.0.1:{probe}"], env=env)
    for name, probe in health.items():
        if not suite.eventually(120, f"{name} is ready", lambda probe=probe: harness.http_ok(f"http://127.0.0.1:{probe}/readyz")):
            raise RuntimeError(f"{name} did not start")

    suite.section("a Git repository on loopback holding charts/ and gitops/")
    git = harness.GitServer(suite)
    repo = git.repository("movieapp")
    for path in ("charts", "gitops"):
        repo.copy(path)
    customise_repository(repo, ns_sys, ns_apps, ns_flux, release, repository)
    digest_1 = harness.push_image(repository, "1.0.0")
    revision = repo.commit("charts and gitops, as in the checkout, for the test's namespaces")
    kubectl("create", "namespace", ns_apps)
    kubectl("-n", ns_apps, "create", "secret", "generic", "tmdb", f"--from-literal=api-key={os.environ.get('TMDB_API_KEY', 'key')}")

    flux_objects = []
    for path in ("gitops/flux/source.yaml", "gitops/flux/operator.yaml", "gitops/flux/apps.yaml"):
        document = harness.yaml.safe_load((harness.ROOT / path).read_text())
        document["metadata"]["namespace"] = ns_flux
        flux_objects.append(document)
    source, operator_ks, apps_ks = flux_objects
    source["spec"]["url"] = repo.url
    source["spec"]["interval"] = "1m"
    apps_ks["spec"]["timeout"] = "3m"
    harness.apply([source, operator_ks])

    suite.section("1. the operator, from the chart in Git")
    suite.eventually(
        60,
        f"the GitRepository fetches {revision[:7]} over HTTP",
        lambda: harness.is_true(harness.get("gitrepository", "movieapp", ns_flux), "Ready")
        and harness.get("gitrepository", "movieapp", ns_flux)["status"]["artifact"]["revision"].endswith(revision),
    )
    suite.eventually(
        240,
        "the HelmRelease installs the chart from the Git path (Ready)",
        lambda: harness.is_true(harness.get("helmrelease", "movieapp-operator", ns_sys), "Ready"),
        2,
    )
    suite.eventually(
        120,
        "the operator Kustomization (wait: true) is Ready",
        lambda: harness.is_true(harness.get("kustomization", "movieapp-operator", ns_flux), "Ready"),
        2,
    )
    fullname = f"{release}-movieapp-operator"
    suite.report(
        harness.get("serviceaccount", fullname, ns_sys) is not None
        and harness.get("clusterrole", fullname) is not None
        and harness.get("deployment", fullname, ns_sys) is not None,
        f"the release made the operator's ServiceAccount, ClusterRole and Deployment ({fullname})",
    )

    suite.section("2. the MovieApp, with wait: true")
    harness.apply(apps_ks)
    suite.eventually(60, "Flux applies the MovieApp", lambda: harness.get("movieapp", "netflix-clone", ns_apps), 1)
    time.sleep(10)
    ks = harness.get("kustomization", "movieapps", ns_flux)
    suite.report(
        not harness.is_true(ks, "Ready"),
        "without the operator the MovieApp is not Ready, and neither is the Kustomization "
        f"({harness.condition(ks, 'Ready').get('reason')}: {harness.condition(ks, 'Ready').get('message', '')[:100]})",
    )
    kubeconfig = harness.serviceaccount_kubeconfig(suite, ns_sys, fullname)
    operator, metrics = harness.start_operator(suite, watch=ns_apps, lease_namespace=ns_sys, kubeconfig=kubeconfig)
    suite.eventually(60, "the operator runs as the chart's ServiceAccount", lambda: harness.http_ok(f"{metrics}/readyz"))
    ready_order = []

    def both_ready():
        # The Kustomization first: Ready there, then a MovieApp read after it
        # that is not Ready, would mean Flux did not wait for it.
        ks = harness.get("kustomization", "movieapps", ns_flux)
        app = harness.get("movieapp", "netflix-clone", ns_apps)
        if harness.is_true(ks, "Ready") and not ready_order:
            ready_order.append(harness.movieapp_ready(app))
        return harness.movieapp_ready(app) and harness.is_true(ks, "Ready")

    suite.eventually(240, "the MovieApp becomes Ready, then the Kustomization", both_ready, 1)
    suite.report(ready_order == [True], "the Kustomization turned Ready only with the MovieApp Ready for its generation")
    app = harness.get("movieapp", "netflix-clone", ns_apps)
    owned = harness.owned_in_aws(app)
    suite.report(len(owned) >= 5 and not set(owned) - set(harness.still_in_aws(owned)), f"its AWS resources exist in moto ({', '.join(owned)})")
    suite.report(app["status"].get("image", "").endswith(digest_1), "the worker runs the first tag's digest")

    suite.section("3. a spec change pushed to Git rolls out")
    digest_2 = harness.push_image(repository, "1.1.0", variant=2)
    movieapp = repo.read_yaml(f"{APP}/movieapp.yaml")
    movieapp["spec"]["worker"]["image"]["tag"] = "1.1.0"
    repo.write_yaml(f"{APP}/movieapp.yaml", movieapp)
    revision = repo.commit("netflix-clone: api-worker 1.1.0")
    harness.request_reconcile("gitrepository", "movieapp", ns_flux)
    suite.eventually(
        120,
        "the MovieApp's new generation is Ready with the new digest",
        lambda: (a := harness.get("movieapp", "netflix-clone", ns_apps))["metadata"]["generation"] == 2
        and harness.movieapp_ready(a)
        and a["status"].get("image", "").endswith(digest_2),
    )
    suite.eventually(
        60,
        "the worker Deployment runs the new digest",
        lambda: harness.get("deployment", "netflix-clone", ns_apps)["spec"]["template"]["spec"]["containers"][0]["image"].endswith(digest_2),
    )
    suite.eventually(
        120,
        f"the Kustomization is Ready at the new revision {revision[:7]}",
        lambda: harness.is_true(ks := harness.get("kustomization", "movieapps", ns_flux), "Ready")
        and ks["status"].get("lastAppliedRevision", "").endswith(revision),
    )

    suite.section("4. a bad spec pushed to Git")
    movieapp["spec"]["worker"]["tmdb"]["apiKeySecretRef"]["key"] = "no-such-key"
    repo.write_yaml(f"{APP}/movieapp.yaml", movieapp)
    revision = repo.commit("netflix-clone: a TMDB key that does not exist")
    harness.request_reconcile("gitrepository", "movieapp", ns_flux)
    stalled = suite.eventually(
        60,
        "the MovieApp is Stalled (SecretKeyNotFound)",
        lambda: harness.condition(a := harness.get("movieapp", "netflix-clone", ns_apps), "Stalled").get("reason") == "SecretKeyNotFound"
        and a["status"]["observedGeneration"] == a["metadata"]["generation"]
        and harness.condition(a, "Stalled"),
    )

    def kustomization_failed():
        ks = harness.get("kustomization", "movieapps", ns_flux)
        ready = harness.condition(ks, "Ready")
        return ready.get("status") == "False" and (ks["status"].get("lastAttemptedRevision", "").endswith(revision)) and ready

    failed = suite.eventually(150, "the Kustomization fails its health check (fail-fast on a Stalled MovieApp)", kustomization_failed, 2)
    if stalled and failed:
        # Flux names the failed object and its kstatus verdict, not the
        # object's own message (fluxcd/pkg/ssa's WaitForSet): the Stalled
        # message is on the MovieApp, one `kubectl describe` away.
        suite.report(
            f"MovieApp/{ns_apps}/netflix-clone status: 'Failed'" in failed.get("message", ""),
            "its message names the Stalled MovieApp as Failed",
            f"Kustomization: {failed.get('reason')}: {failed.get('message')}",
        )
        print(f"#   Kustomization: {failed.get('reason')}: {failed.get('message')}")
        print(f"#   MovieApp Stalled: {stalled.get('reason')}: {stalled['message']}")
    movieapp["spec"]["worker"]["tmdb"]["apiKeySecretRef"]["key"] = "api-key"
    repo.write_yaml(f"{APP}/movieapp.yaml", movieapp)
    revision = repo.commit("netflix-clone: the TMDB key again")
    harness.request_reconcile("gitrepository", "movieapp", ns_flux)
    suite.eventually(
        180,
        "the fix pushed to Git makes the Kustomization Ready again",
        lambda: harness.is_true(ks := harness.get("kustomization", "movieapps", ns_flux), "Ready")
        and ks["status"].get("lastAppliedRevision", "").endswith(revision)
        and harness.movieapp_ready(harness.get("movieapp", "netflix-clone", ns_apps)),
        2,
    )

    suite.section("5. the app removed from Git")
    app = harness.get("movieapp", "netflix-clone", ns_apps)
    owned = harness.owned_in_aws(app)
    kustomization = repo.read_yaml(f"{APP}/kustomization.yaml")
    kustomization["resources"] = []
    repo.write_yaml(f"{APP}/kustomization.yaml", kustomization)
    for name in ("movieapp.yaml", "namespace.yaml"):
        (repo.dir / APP / name).unlink()
    # Held by a finalizer of the test's own, the MovieApp stays visible after
    # the operator lets it go, so the order is seen, not sampled.
    harness.hold("movieapp", "netflix-clone", ns_apps)
    revision = repo.commit("netflix-clone: removed")
    harness.request_reconcile("gitrepository", "movieapp", ns_flux)
    suite.eventually(
        180,
        "Flux prunes the MovieApp, and the operator finishes its cleanup (removes its finalizer)",
        lambda: harness.deletion_finished_by_operator("netflix-clone", ns_apps),
        1,
    )
    left = harness.still_in_aws(owned)
    suite.report(
        not left,
        "the AWS resources were deleted while the MovieApp still existed (the finalizer held it until AWS reported them gone)",
        f"still in AWS: {left}",
    )
    harness.release("movieapp", "netflix-clone", ns_apps)
    suite.eventually(60, "the MovieApp is gone", lambda: harness.get("movieapp", "netflix-clone", ns_apps) is None, 1)
    suite.eventually(120, f"its namespace {ns_apps} is pruned after it", lambda: harness.get("namespace", ns_apps) is None, 2)
    suite.report(
        harness.is_true(harness.get("helmrelease", "movieapp-operator", ns_sys), "Ready")
        and harness.get("serviceaccount", fullname, ns_sys) is not None
        and harness.get("crd", "movieapps.movieapp.io") is not None,
        "the operator's release and the CRD are untouched",
    )
    suite.report(operator.poll() is None, "the operator ran throughout")


def customise_repository(repo: harness.Repository, ns_sys: str, ns_apps: str, ns_flux: str, release: str, image: str) -> None:
    """The test's own names in the repository's copy of gitops/ (namespaces,
    release name, image repository) and the Delete policy this test proves."""
    namespace = repo.read_yaml("gitops/flux/operator/namespace.yaml")
    namespace["metadata"]["name"] = ns_sys
    repo.write_yaml("gitops/flux/operator/namespace.yaml", namespace)
    helmrelease = repo.read_yaml("gitops/flux/operator/helmrelease.yaml")
    helmrelease["metadata"]["namespace"] = ns_sys
    helmrelease["spec"]["releaseName"] = release
    helmrelease["spec"]["chart"]["spec"]["sourceRef"]["namespace"] = ns_flux
    # The worker role the MovieApp names is allowed for the test's namespace
    # (the chart's admission policy refuses it anywhere else).
    admission = helmrelease["spec"]["values"]["admission"]
    admission["workerRoleArns"] = {ns_apps: admission["workerRoleArns"]["movies"]}
    repo.write_yaml("gitops/flux/operator/helmrelease.yaml", helmrelease)
    namespace = repo.read_yaml(f"{APP}/namespace.yaml")
    namespace["metadata"]["name"] = ns_apps
    repo.write_yaml(f"{APP}/namespace.yaml", namespace)
    movieapp = repo.read_yaml(f"{APP}/movieapp.yaml")
    movieapp["metadata"]["namespace"] = ns_apps
    movieapp["spec"]["deletionPolicy"] = "Delete"
    movieapp["spec"]["worker"]["image"] = {"repository": image, "tag": "1.0.0"}
    repo.write_yaml(f"{APP}/movieapp.yaml", movieapp)


def cleanup_cluster(suite: harness.Suite, ns_flux: str, ns_sys: str, ns_apps: str, release: str) -> None:
    # Flux first (no more applies), then what it made.
    for name, process in list(suite.processes):
        if name.endswith("-controller"):
            suite.stop(process)
    for kind in ("kustomizations.kustomize.toolkit.fluxcd.io", "helmreleases.helm.toolkit.fluxcd.io", "gitrepositories.source.toolkit.fluxcd.io"):
        for ns in (ns_flux, ns_sys):
            out = kubectl("-n", ns, "get", kind, "-o", "name", check=False)
            for name in out.split():
                kubectl("-n", ns, "patch", name, "--type", "merge", "-p", '{"metadata":{"finalizers":null}}', check=False)
    kubectl("delete", "clusterrole,clusterrolebinding,validatingadmissionpolicy,validatingadmissionpolicybinding", "-l", f"app.kubernetes.io/instance={release}", "--ignore-not-found", check=False)
    harness.delete_namespaces([ns_apps, ns_sys, ns_flux])


if __name__ == "__main__":
    sys.exit(main())
