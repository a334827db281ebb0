#!/usr/bin/env python3
"""Offline checks of the Helm chart charts/movieapp-operator:

- its crds/ is byte-for-byte the top-level crds/;
- `helm lint --strict` with the default values and every file in values/;
- renders with the default and non-default values, asserting what the chart
  promises (least-privilege RBAC with exactly the expected rules, strict
  securityContext, probes, leader election with replicas > 1, PDB, topology
  spread, IRSA annotation, monitoring objects wired to the Service);
- the opt-in Grafana dashboard ConfigMap: off by default, the dashboard JSON
  unchanged, the sidecar's label, namespace, labels and annotations; the
  dashboard passes dashboard-lint, which rejects its negative fixture;
- values.schema.json and the template guards reject bad values, and accept
  `global`, alone and with the chart as a parent chart's dependency;
- every MOVIEAPP_* variable the chart sets is a flag of `movieapp-operator run`;
- the PrometheusRule passes `promtool check rules` and the unit tests in
  alerts_test.yaml;
- the Kustomize base deploy/ yields the same objects as the chart's defaults.

Needs $HELM, $PROMTOOL and $DASHBOARD_LINT (install-tools.sh) and kubectl. Exit status
non-zero on any failure; the last line is "N passed, F failed".
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CHART = ROOT / "charts" / "movieapp-operator"
VALUES = HERE / "values"
HELM = os.environ.get("HELM", "helm")
PROMTOOL = os.environ.get("PROMTOOL", "promtool")
DASHBOARD_LINT = os.environ.get("DASHBOARD_LINT", "dashboard-lint")

# The operator's permissions over MovieApps and children (both modes): what
# operator/src requests, no more. A change here is a security review.
EXPECTED_RULES = [
    (("movieapp.io",), ("movieapps",), ("get", "list", "watch", "patch")),
    (("movieapp.io",), ("movieapps/status",), ("get", "patch")),
    (("movieapp.io",), ("movieapps/finalizers",), ("update",)),
    (("apps",), ("deployments",), ("get", "list", "watch", "create", "patch", "delete")),
    (("",), ("services", "configmaps", "serviceaccounts"), ("get", "list", "watch", "create", "patch", "delete")),
    (("autoscaling",), ("horizontalpodautoscalers",), ("get", "list", "watch", "create", "patch", "delete")),
    (("policy",), ("poddisruptionbudgets",), ("get", "list", "watch", "create", "patch", "delete")),
    (("networking.k8s.io",), ("networkpolicies",), ("get", "list", "watch", "create", "patch", "delete")),
    (("",), ("secrets",), ("get", "list", "watch", "create")),
    (("events.k8s.io",), ("events",), ("create", "patch")),
]
LEASE_RULES = [
    (("coordination.k8s.io",), ("leases",), ("create",), ()),
    (("coordination.k8s.io",), ("leases",), ("get", "update"), ("movieapp-operator-leader",)),
]

passed = 0
failed = 0


def check(description: str, condition: bool, detail: str = "") -> bool:
    global passed, failed
    if condition:
        passed += 1
        print(f"ok   - {description}")
    else:
        failed += 1
        print(f"FAIL - {description}" + (f": {detail}" if detail else ""))
    return condition


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True)


def render(*values: str, release: str = "movieapp-operator", namespace: str = "movieapp-system") -> list[dict]:
    flags: list[str] = []
    for v in values:
        flags += ["-f", str(VALUES / v)] if v.endswith(".yaml") else ["--set", v]
    result = run(HELM, "template", release, str(CHART), "--namespace", namespace, *flags)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip())
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def find(docs: list[dict], kind: str, name: str | None = None, namespace: str | None = None) -> list[dict]:
    return [
        d
        for d in docs
        if d["kind"] == kind
        and (name is None or d["metadata"]["name"] == name)
        and (namespace is None or d["metadata"].get("namespace") == namespace)
    ]


def one(docs: list[dict], kind: str, **kw: str) -> dict:
    found = find(docs, kind, **kw)
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} {kw or ''}, found {len(found)}")
    return found[0]


def rule_tuples(rules: list[dict]) -> list[tuple]:
    return [
        (tuple(r.get("apiGroups", [])), tuple(r.get("resources", [])), tuple(r.get("verbs", [])))
        for r in rules
    ]


def no_wildcards(docs: list[dict]) -> list[str]:
    bad = []
    for d in docs:
        if d["kind"] not in ("Role", "ClusterRole"):
            continue
        for r in d.get("rules", []):
            if "nonResourceURLs" in r:
                bad.append(f"{d['kind']}/{d['metadata']['name']}: nonResourceURLs")
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                if any("*" in v for v in r.get(field, [])):
                    bad.append(f"{d['kind']}/{d['metadata']['name']}: {field} {r[field]}")
    return bad


def env_of(container: dict) -> dict[str, object]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def guarded(description: str, body: Callable[[], None]) -> None:
    try:
        body()
    except (AssertionError, RuntimeError, KeyError, IndexError, TypeError) as error:
        check(description, False, f"{type(error).__name__}: {error}")


# ------------------------------------------------------------------ checks


def crds_identical() -> None:
    top = ROOT / "crds"
    chart = CHART / "crds"
    names = sorted(p.name for p in top.glob("*.yaml"))
    check(
        "the chart's crds/ holds exactly the top-level crds/ files",
        names == sorted(p.name for p in chart.glob("*.yaml")),
        f"{names} vs {sorted(p.name for p in chart.glob('*.yaml'))}",
    )
    for name in names:
        check(
            f"charts/movieapp-operator/crds/{name} is identical to crds/{name}",
            (chart / name).exists() and filecmp.cmp(top / name, chart / name, shallow=False),
            "copy it: cp crds/*.yaml charts/movieapp-operator/crds/",
        )


def lint() -> None:
    for values in [None] + sorted(p.name for p in VALUES.glob("*.yaml")):
        args = [HELM, "lint", "--strict", str(CHART)] + (["-f", str(VALUES / values)] if values else [])
        result = run(*args)
        check(f"helm lint --strict ({values or 'default values'})", result.returncode == 0, result.stdout + result.stderr)


def defaults() -> None:
    docs = render()
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
    check(
        "default render: ServiceAccount, ClusterRole(+Binding), leader-election Role(+Binding), Service, Deployment, PDB, "
        "the MovieApp user roles, the admission policies (+Bindings)",
        kinds
        == sorted(
            [
                "ServiceAccount/movieapp-operator",
                "ClusterRole/movieapp-operator",
                "ClusterRoleBinding/movieapp-operator",
                "ClusterRole/movieapp-operator-movieapp-viewer",
                "ClusterRole/movieapp-operator-movieapp-editor",
                "ClusterRole/movieapp-operator-movieapp-adopter",
                "ValidatingAdmissionPolicy/movieapp-operator-requester-rights",
                "ValidatingAdmissionPolicyBinding/movieapp-operator-requester-rights",
                "ValidatingAdmissionPolicy/movieapp-operator-operator-secrets",
                "ValidatingAdmissionPolicyBinding/movieapp-operator-operator-secrets",
                "ValidatingAdmissionPolicy/movieapp-operator-worker-roles",
                "ValidatingAdmissionPolicyBinding/movieapp-operator-worker-roles",
                "Role/movieapp-operator-leader-election",
                "RoleBinding/movieapp-operator-leader-election",
                "Service/movieapp-operator-metrics",
                "Deployment/movieapp-operator",
                "PodDisruptionBudget/movieapp-operator",
            ]
        ),
        str(kinds),
    )
    check("no wildcard and no nonResourceURLs in any rule", not no_wildcards(docs), str(no_wildcards(docs)))
    check(
        "every namespace mode: the MovieApp admission bindings apply in every namespace",
        all(
            "matchResources" not in one(docs, "ValidatingAdmissionPolicyBinding", name=f"movieapp-operator-{policy}")["spec"]
            for policy in ("requester-rights", "worker-roles")
        ),
    )

    role = one(docs, "ClusterRole", name="movieapp-operator")
    check(
        "the ClusterRole grants exactly the expected rules",
        rule_tuples(role["rules"]) == EXPECTED_RULES,
        f"\n  got  {rule_tuples(role['rules'])}\n  want {EXPECTED_RULES}",
    )
    users = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] != "movieapp-operator"}
    check(
        "the MovieApp user roles grant MovieApps only; adopt is bound explicitly, never aggregated",
        all(r["apiGroups"] == ["movieapp.io"] for d in users.values() for r in d["rules"])
        and rule_tuples(users["movieapp-operator-movieapp-adopter"]["rules"]) == [(("movieapp.io",), ("movieapps",), ("adopt",))]
        and not any(k.startswith("rbac.authorization.k8s.io/aggregate") for k in users["movieapp-operator-movieapp-adopter"]["metadata"]["labels"]),
        str(users),
    )
    policy = one(docs, "ValidatingAdmissionPolicy", name="movieapp-operator-operator-secrets")
    check(
        "the operator-secrets policy matches the chart's ServiceAccount only",
        "system:serviceaccount:movieapp-system:movieapp-operator" in policy["spec"]["matchConditions"][0]["expression"],
        str(policy["spec"]["matchConditions"]),
    )
    binding = one(docs, "ClusterRoleBinding")
    check(
        "the ClusterRoleBinding binds the ClusterRole to the chart's ServiceAccount only",
        binding["roleRef"]["name"] == "movieapp-operator"
        and binding["subjects"]
        == [{"kind": "ServiceAccount", "name": "movieapp-operator", "namespace": "movieapp-system"}],
        str(binding),
    )
    lease = one(docs, "Role", name="movieapp-operator-leader-election")
    check(
        "the leader-election Role: create Leases, get/update only the movieapp-operator-leader Lease, in the release namespace",
        [
            (tuple(r["apiGroups"]), tuple(r["resources"]), tuple(r["verbs"]), tuple(r.get("resourceNames", [])))
            for r in lease["rules"]
        ]
        == LEASE_RULES
        and lease["metadata"]["namespace"] == "movieapp-system",
        str(lease["rules"]),
    )
    lease_name = re.search(r'LEASE_NAME: &str = "([^"]+)"', (ROOT / "operator/src/leader.rs").read_text())
    check(
        "the Lease name in the Role is the operator's (operator/src/leader.rs)",
        bool(lease_name) and lease_name.group(1) == "movieapp-operator-leader",
        lease_name.group(1) if lease_name else "LEASE_NAME not found",
    )
    sa = one(docs, "ServiceAccount")
    check(
        "the ServiceAccount is movieapp-operator in movieapp-system (the identity Terraform's IRSA role trusts)",
        sa["metadata"]["name"] == "movieapp-operator" and sa["metadata"]["namespace"] == "movieapp-system",
    )

    deployment = one(docs, "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    env = env_of(container)
    selector = spec["selector"]["matchLabels"]
    check("two replicas with leader election by default", spec["replicas"] == 2 and env.get("MOVIEAPP_LEADER_ELECT") == "true")
    check(
        "the Pod knows its name and namespace (Lease identity, Event reporter, Lease namespace)",
        env.get("POD_NAME") == {"fieldRef": {"fieldPath": "metadata.name"}}
        and env.get("POD_NAMESPACE") == {"fieldRef": {"fieldPath": "metadata.namespace"}},
    )
    check("the container runs `movieapp-operator run` (the image's entrypoint)", container["args"] == ["run"])
    check("the image defaults to <repository>:<appVersion>", container["image"] == "movieapp-operator:0.1.0", container["image"])
    psc, csc = pod["securityContext"], container["securityContext"]
    check(
        "pod securityContext: non-root UID/GID 65532, seccomp RuntimeDefault",
        psc.get("runAsNonRoot") is True
        and psc.get("runAsUser") == 65532
        and psc.get("runAsGroup") == 65532
        and psc.get("seccompProfile") == {"type": "RuntimeDefault"},
        str(psc),
    )
    check(
        "container securityContext: read-only root, no privilege escalation, all capabilities dropped",
        csc.get("readOnlyRootFilesystem") is True
        and csc.get("allowPrivilegeEscalation") is False
        and csc.get("runAsNonRoot") is True
        and csc.get("capabilities") == {"drop": ["ALL"]},
        str(csc),
    )
    probes = {k: container.get(k, {}).get("httpGet", {}) for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    check(
        "startup and liveness probe /healthz, readiness probe /readyz, on the metrics port",
        probes["startupProbe"].get("path") == "/healthz"
        and probes["livenessProbe"].get("path") == "/healthz"
        and probes["readinessProbe"].get("path") == "/readyz"
        and all(p.get("port") == "http-metrics" for p in probes.values())
        and container["ports"][0]["name"] == "http-metrics"
        and env.get("MOVIEAPP_METRICS_ADDR") == f"0.0.0.0:{container['ports'][0]['containerPort']}",
        str(probes),
    )
    resources = container.get("resources", {})
    check(
        "resource requests (cpu, memory) and a memory limit",
        {"cpu", "memory"} <= set(resources.get("requests", {})) and "memory" in resources.get("limits", {}),
        str(resources),
    )
    spread = pod.get("topologySpreadConstraints", [])
    check(
        "topology spread over zones and nodes, selecting the operator's Pods",
        sorted(c["topologyKey"] for c in spread) == ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
        and all(c["labelSelector"]["matchLabels"] == selector for c in spread),
        str(spread),
    )
    check(
        "the Pod labels carry the selector",
        all(spec["template"]["metadata"]["labels"].get(k) == v for k, v in selector.items()),
    )
    pdb = one(docs, "PodDisruptionBudget")
    check(
        "the PDB keeps all but one replica through voluntary disruptions",
        pdb["spec"]["maxUnavailable"] == 1 and pdb["spec"]["selector"]["matchLabels"] == selector,
    )
    service = one(docs, "Service")
    check(
        "the metrics Service selects the operator's Pods on the http-metrics port",
        service["spec"]["selector"] == selector and service["spec"]["ports"][0]["targetPort"] == "http-metrics",
    )
    check(
        "nothing else is on by default (ServiceMonitor, PodMonitor, PrometheusRule, NetworkPolicy)",
        not find(docs, "ServiceMonitor")
        and not find(docs, "PodMonitor")
        and not find(docs, "PrometheusRule")
        and not find(docs, "NetworkPolicy"),
    )

    check(
        "no AWS change events by default, and the operator's default resync (5m)",
        "MOVIEAPP_EVENTS_QUEUE_URL" not in env and env.get("MOVIEAPP_RESYNC_INTERVAL") == "5m",
        str(env),
    )
    queue = "https://sqs.us-east-1.amazonaws.com/123456789012/movieapp-prod-aws-events"
    events_env = env_of(one(render(f"operator.eventsQueueUrl={queue}"), "Deployment")["spec"]["template"]["spec"]["containers"][0])
    check(
        "operator.eventsQueueUrl sets --events-queue-url and, unless resyncInterval is set, the hourly resync",
        events_env.get("MOVIEAPP_EVENTS_QUEUE_URL") == queue and events_env.get("MOVIEAPP_RESYNC_INTERVAL") == "1h",
        str(events_env),
    )
    oidc = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"
    boundary = "arn:aws:iam::123456789012:policy/movieapp-prod-worker-boundary"
    check(
        "no worker roles by default",
        "MOVIEAPP_WORKER_ROLE_OIDC_PROVIDER_ARN" not in env and "MOVIEAPP_WORKER_ROLE_BOUNDARY_ARN" not in env,
        str(env),
    )
    role_docs = render(f"operator.workerRole.oidcProviderArn={oidc}", f"operator.workerRole.boundaryArn={boundary}")
    role_env = env_of(one(role_docs, "Deployment")["spec"]["template"]["spec"]["containers"][0])
    check(
        "operator.workerRole sets the OIDC provider and the boundary of the worker roles the operator makes",
        role_env.get("MOVIEAPP_WORKER_ROLE_OIDC_PROVIDER_ARN") == oidc
        and role_env.get("MOVIEAPP_WORKER_ROLE_BOUNDARY_ARN") == boundary,
        str(role_env),
    )

    def refuses_any_role(docs: list[dict]) -> bool:
        """The worker-roles policy refuses every role a MovieApp names, the
        allow-list notwithstanding: its operatorMakesRoles variable is true
        and a validation fails on a role whenever it is."""
        spec = one(docs, "ValidatingAdmissionPolicy", name="movieapp-operator-worker-roles")["spec"]
        variables = {v["name"]: v["expression"] for v in spec["variables"]}
        return variables.get("operatorMakesRoles") == "true" and any(
            v["expression"] == "variables.role == '' || !variables.operatorMakesRoles" for v in spec["validations"]
        )

    check(
        "operator.workerRole: the worker-roles admission policy refuses a MovieApp that names a role (the operator makes them)",
        refuses_any_role(role_docs),
    )
    check(
        "without operator.workerRole the worker-roles policy judges a named role by admission.workerRoleArns only",
        not refuses_any_role(docs)
        and {v["name"]: v["expression"] for v in one(docs, "ValidatingAdmissionPolicy", name="movieapp-operator-worker-roles")["spec"]["variables"]}.get("operatorMakesRoles") == "false",
    )

    # Every variable the chart sets for the operator is one of its flags' env mirrors.
    config = (ROOT / "operator/src/config.rs").read_text()
    known = set(re.findall(r'env = "([A-Z0-9_]+)"', config))
    chart_vars = {k for k in env if k.startswith("MOVIEAPP_") or k == "AWS_ENDPOINT_URL"}
    full_vars = {
        k
        for k in env_of(one(render("full.yaml"), "Deployment")["spec"]["template"]["spec"]["containers"][0])
        if k.startswith("MOVIEAPP_") or k == "AWS_ENDPOINT_URL"
    }
    unknown = sorted((chart_vars | full_vars) - known)
    check(
        "every MOVIEAPP_* variable the chart sets is a flag of movieapp-operator run (operator/src/config.rs)",
        not unknown,
        f"unknown: {unknown}",
    )


def namespaced() -> None:
    docs = render("namespaced.yaml")
    check(
        "namespaced mode: no ClusterRole for the operator and no ClusterRoleBinding",
        not find(docs, "ClusterRole", name="movieapp-operator") and not find(docs, "ClusterRoleBinding"),
    )
    for ns in ("team-a", "team-b"):
        role = find(docs, "Role", name="movieapp-operator", namespace=ns)
        binding = find(docs, "RoleBinding", name="movieapp-operator", namespace=ns)
        check(
            f"namespaced mode: a Role with exactly the expected rules and its RoleBinding in {ns}",
            len(role) == 1
            and rule_tuples(role[0]["rules"]) == EXPECTED_RULES
            and len(binding) == 1
            and binding[0]["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "movieapp-operator"}
            and binding[0]["subjects"][0]["namespace"] == "movieapp-system",
        )
    check(
        "namespaced mode: one Role per namespace (duplicates in the list are ignored)",
        len(find(docs, "Role", name="movieapp-operator")) == 2,
    )
    env = env_of(one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0])
    check("namespaced mode: the operator watches exactly those namespaces", env.get("MOVIEAPP_WATCH_NAMESPACES") == "team-a,team-b", str(env.get("MOVIEAPP_WATCH_NAMESPACES")))
    check("namespaced mode: no wildcards", not no_wildcards(docs))
    scope = {"namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]}]}}
    for policy in ("requester-rights", "worker-roles"):
        binding = one(docs, "ValidatingAdmissionPolicyBinding", name=f"movieapp-operator-{policy}")
        check(
            f"namespaced mode: the {policy} binding judges only the watched namespaces' MovieApps (another release's are not its own)",
            binding["spec"].get("matchResources") == scope,
            str(binding["spec"].get("matchResources")),
        )
    monitor = one(render("namespaced.yaml", "workerPodMonitor.enabled=true"), "PodMonitor")
    check(
        "namespaced mode: the workers' PodMonitor looks only in the watched namespaces",
        monitor["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]},
        str(monitor["spec"]["namespaceSelector"]),
    )


def full() -> None:
    docs = render("full.yaml", release="ops", namespace="platform")
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = env_of(container)
    check(
        "image by digest when image.digest is set",
        container["image"].endswith("/movieapp-operator@sha256:0f6a0a8f3a9a4d8e2a1c9b7e5d3c1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"),
        container["image"],
    )
    policy = one(docs, "ValidatingAdmissionPolicy", name="ops-movieapp-operator-worker-roles")
    allow_list = policy["spec"]["variables"][0]
    check(
        "admission.workerRoleArns is the worker-roles policy's first variable, a CEL map literal of the values",
        allow_list["name"] == "workerRoleArns"
        and json.loads(allow_list["expression"])
        == {"team-a": ["arn:aws:iam::123456789012:role/team-a-*", "arn:aws:iam::123456789012:role/shared-reader"]},
        str(allow_list),
    )
    sa = one(docs, "ServiceAccount")
    check(
        "IRSA: the role ARN annotation is on the ServiceAccount the Pod uses",
        sa["metadata"].get("annotations", {}).get("eks.amazonaws.com/role-arn") == "arn:aws:iam::123456789012:role/movieapp-operator"
        and pod["serviceAccountName"] == sa["metadata"]["name"],
    )
    check(
        "operator settings become environment variables",
        env.get("MOVIEAPP_DEFAULT_REGION") == "eu-west-1"
        and env.get("MOVIEAPP_CLUSTER_ID") == "prod-eu-west-1"
        and env.get("MOVIEAPP_RESYNC_INTERVAL") == "2m"
        and env.get("MOVIEAPP_CONCURRENCY") == "4"
        and env.get("MOVIEAPP_AWS_MAX_RPS") == "20"
        and env.get("AWS_ENDPOINT_URL") == "http://localstack.localstack:4566"
        and env.get("MOVIEAPP_WORKER_TMDB_BASE_URL") == "http://tmdb-stub.tmdb:8080"
        and env.get("MOVIEAPP_EVENTS_QUEUE_URL") == "https://sqs.eu-west-1.amazonaws.com/123456789012/movieapp-prod-aws-events"
        and env.get("MOVIEAPP_LOG_FORMAT") == "text"
        and env.get("RUST_LOG") == "debug"
        and env.get("MOVIEAPP_METRICS_ADDR") == "0.0.0.0:9090"
        and env.get("AWS_STS_REGIONAL_ENDPOINTS") == "regional",
        str(env),
    )
    check(
        "leaderElection.namespace moves the Lease and its Role",
        env.get("MOVIEAPP_LEADER_ELECTION_NAMESPACE") == "movieapp-leases"
        and len(find(docs, "Role", name="ops-movieapp-operator-leader-election", namespace="movieapp-leases")) == 1,
    )
    check(
        "custom topology spread constraints get the Pod selector",
        pod["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        and pod["topologySpreadConstraints"][0]["whenUnsatisfiable"] == "DoNotSchedule",
    )
    service = one(docs, "Service")
    monitor = one(docs, "ServiceMonitor")
    check(
        "the ServiceMonitor selects the metrics Service and scrapes its port by name",
        all(service["metadata"]["labels"].get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
        and monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
        and monitor["spec"]["namespaceSelector"]["matchNames"] == ["platform"]
        and monitor["metadata"]["labels"].get("release") == "kube-prometheus-stack",
    )
    worker_monitor = one(docs, "PodMonitor")
    pod_labels, admin_port = worker_pod_labels_and_admin_port()
    endpoint = worker_monitor["spec"]["podMetricsEndpoints"][0]
    check(
        "the workers' PodMonitor selects the labels the operator puts on api-worker Pods and scrapes their admin port",
        all(pod_labels.get(k) == v for k, v in worker_monitor["spec"]["selector"]["matchLabels"].items())
        and worker_monitor["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/name") == "api-worker"
        and endpoint["port"] == admin_port
        and endpoint["path"] == "/metrics"
        and endpoint["interval"] == "15s"
        and worker_monitor["spec"]["namespaceSelector"] == {"any": True}
        and worker_monitor["metadata"]["labels"].get("release") == "kube-prometheus-stack",
        f"{worker_monitor['spec']} vs Pod labels {pod_labels}, admin port {admin_port!r}",
    )
    check(
        "the workers' PodMonitor does not select the operator's own Pods",
        not all(
            deployment["spec"]["template"]["metadata"]["labels"].get(k) == v
            for k, v in worker_monitor["spec"]["selector"]["matchLabels"].items()
        ),
    )
    rule = one(docs, "PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    check(
        "the PrometheusRule has the documented alerts",
        sorted(alerts)
        == sorted(["MovieAppNotReady", "MovieAppStalled", "MovieAppReconcileErrors", "MovieAppAwsThrottling", "MovieAppOperatorNoLeader"]),
        str(sorted(alerts)),
    )
    check(
        "alert expressions select this release's scrape targets; alertLabels and notReadyFor apply",
        all('job="ops-movieapp-operator-metrics",namespace="platform"' in a["expr"] for a in alerts.values())
        and all(a["labels"].get("team") == "platform" for a in alerts.values())
        and alerts["MovieAppNotReady"]["for"] == "30m",
    )
    docs_alerts = (ROOT / "docs/alerts.md").read_text() if (ROOT / "docs/alerts.md").exists() else ""
    check(
        "docs/alerts.md describes every alert",
        all(f"## {name}" in docs_alerts for name in alerts),
        str([n for n in alerts if f"## {n}" not in docs_alerts]),
    )
    policy = one(docs, "NetworkPolicy")
    check(
        "the NetworkPolicy selects the operator's Pods, admits only the metrics port, and limits egress",
        policy["spec"]["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        and policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        and policy["spec"]["ingress"][0]["ports"] == [{"port": "http-metrics", "protocol": "TCP"}]
        and policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
        and {"port": 443, "protocol": "TCP"} in policy["spec"]["egress"][1]["ports"]
        and policy["spec"]["egress"][1]["to"] == [{"ipBlock": {"cidr": "10.0.0.0/8"}}],
        str(policy["spec"]),
    )
    check("PDB maxUnavailable follows the value", one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 2)


def grafana_dashboard() -> None:
    """The opt-in ConfigMap for Grafana's dashboard sidecar: off by default,
    the dashboard JSON unchanged inside, the sidecar's label and the
    namespace, labels and annotations the values ask for."""
    shipped = json.loads((CHART / "dashboards/movieapp-operator.json").read_text())

    def dashboards(docs: list[dict]) -> list[dict]:
        return [d for d in find(docs, "ConfigMap") if "movieapp-operator.json" in d.get("data", {})]

    lint = run(DASHBOARD_LINT, *map(str, sorted((CHART / "dashboards").glob("*.json"))))
    check("dashboard-lint finds nothing wrong in the chart's dashboards", lint.returncode == 0, lint.stdout + lint.stderr)
    negative = run(DASHBOARD_LINT, str(HERE / "fixtures/dashboard-lint-negative.json"))
    rules = run(DASHBOARD_LINT, "-rules").stdout.split()
    missed = [r for r in rules if f": {r}: " not in negative.stdout]
    check(
        f"dashboard-lint rejects fixtures/dashboard-lint-negative.json, each of its {len(rules)} rules",
        negative.returncode == 1 and len(rules) > 10 and not missed,
        f"rc={negative.returncode}, nothing found for {missed}",
    )
    check("no dashboard ConfigMap by default", not dashboards(render()))
    docs = render("grafanaDashboard.enabled=true")
    found = dashboards(docs)
    check("grafanaDashboard.enabled=true renders one dashboard ConfigMap", len(found) == 1, str(len(found)))
    if len(found) != 1:
        return
    cm = found[0]
    check(
        "the ConfigMap is in the release namespace with the sidecar's label grafana_dashboard: \"1\" and the chart's labels",
        cm["metadata"]["namespace"] == "movieapp-system"
        and cm["metadata"]["name"] == "movieapp-operator-dashboard"
        and cm["metadata"]["labels"].get("grafana_dashboard") == "1"
        and cm["metadata"]["labels"].get("app.kubernetes.io/part-of") == "movieapp"
        and "annotations" not in cm["metadata"],
        str(cm["metadata"]),
    )
    check(
        "the ConfigMap carries dashboards/movieapp-operator.json unchanged (Grafana's ${datasource} not templated away)",
        json.loads(cm["data"]["movieapp-operator.json"]) == shipped and "${datasource}" in cm["data"]["movieapp-operator.json"],
    )
    cm = one(render("full.yaml", release="ops", namespace="platform"), "ConfigMap", name="ops-movieapp-operator-dashboard")
    check(
        "grafanaDashboard labels and annotations apply (full.yaml), added to the sidecar's label",
        cm["metadata"]["namespace"] == "platform"
        and cm["metadata"]["labels"].get("grafana_dashboard") == "1"
        and cm["metadata"]["labels"].get("example.com/team") == "platform"
        and cm["metadata"].get("annotations") == {"grafana_folder": "MovieApp"},
        str(cm["metadata"]),
    )
    cm = dashboards(render("grafanaDashboard.enabled=true", "grafanaDashboard.namespace=monitoring"))[0]
    check("grafanaDashboard.namespace moves the ConfigMap (to where the sidecar looks)", cm["metadata"]["namespace"] == "monitoring")
    docs = render("grafanaDashboard.enabled=true", "grafanaDashboard.labels.grafana_dashboard=null", "grafanaDashboard.labels.dashboards=movieapp")
    labels = dashboards(docs)[0]["metadata"]["labels"]
    check(
        "the sidecar's label can be replaced (grafana_dashboard: null drops the default)",
        "grafana_dashboard" not in labels and labels.get("dashboards") == "movieapp",
        str(labels),
    )


def worker_pod_labels_and_admin_port() -> tuple[dict[str, str], str]:
    """The labels the operator sets on api-worker Pods (its children's
    selector and standard labels, less managed-by) and the name of the
    container port of the admin listener, read from the operator's source."""
    children = (ROOT / "operator/src/reconcile/children.rs").read_text()
    pairs = dict(re.findall(r'\(\s*"(app\.kubernetes\.io/[a-z-]+)"\.to_owned\(\),\s*"([a-z-]+)"\.to_owned\(\)', children))
    pairs.pop("app.kubernetes.io/managed-by", None)
    ports = re.findall(r'name: Some\("([a-z-]+)"\.to_owned\(\)\),\s*container_port: i32::from\(http::ADMIN_PORT\)', children)
    return pairs, ports[0] if len(ports) == 1 else ""


def single_replica() -> None:
    docs = render("single-replica.yaml")
    env = env_of(one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0])
    check(
        "one replica without leader election: no PDB, no Lease Role, --leader-elect off",
        not find(docs, "PodDisruptionBudget")
        and not find(docs, "Role")
        and env.get("MOVIEAPP_LEADER_ELECT") == "false"
        and "MOVIEAPP_LEADER_ELECTION_NAMESPACE" not in env,
    )
    docs = render("replicaCount=1")
    check("one replica keeps leader election on by default but has no PDB", not find(docs, "PodDisruptionBudget") and len(find(docs, "Role")) == 1)


def rejections() -> None:
    cases = [
        (["replicaCount=2", "leaderElection.enabled=false"], "requires leaderElection.enabled=true"),
        (["operator.logFormat=xml"], "logFormat"),
        (["replicas=2"], "replicas"),
        (["image.digest=latest"], "digest"),
        (["watchNamespaces={Bad_NS}"], "watchNamespaces"),
        (["operator.defaultRegion=mars-1"], "defaultRegion"),
        (["operator.resyncInterval=5 minutes"], "resyncInterval"),
        (["operator.clusterId=prod east"], "clusterId"),
        (["operator.clusterId="], "clusterId"),
        (["serviceAccount.create=false"], "serviceAccount.name is required"),
        (["prometheusRule.reconcileErrorRatio=2"], "reconcileErrorRatio"),
        (["workerPodMonitor.interval=often"], "interval"),
        (["workerPodMonitor.port=metrics"], "port"),
        (["operator.eventsQueueUrl=sqs://movieapp-events"], "eventsQueueUrl"),
        (["operator.eventsQueueUrl=https://sqs.us-east-1.amazonaws.com/movieapp-events"], "eventsQueueUrl"),
        (["grafanaDashboard.namespace=Bad_NS"], "namespace"),
        (["grafanaDashboard.enabled=yes"], "enabled"),
        (["grafanaDashboard.folder=MovieApp"], "folder"),
        (["admission.workerRoleArns.team-a={arn:aws:iam::*:role/x}"], "workerRoleArns"),
        (["operator.workerRole.oidcProviderArn=arn:aws:iam::123456789012:oidc-provider/oidc.example/id/1"], "both oidcProviderArn and boundaryArn"),
        (["operator.workerRole.boundaryArn=arn:aws:iam::123456789012:role/not-a-policy"], "boundaryArn"),
        (["operator.workerRole.oidcProviderArn=oidc.eks.us-east-1.amazonaws.com/id/1"], "oidcProviderArn"),
        (["admission.workerRoleArns.Team_A={arn:aws:iam::123456789012:role/x}"], "invalid propertyName 'Team_A'"),
    ]
    for values, expected in cases:
        flags = [f for v in values for f in ("--set", v)]
        result = run(HELM, "template", "x", str(CHART), *flags)
        check(
            f"rejected: {' '.join(values)}",
            result.returncode != 0 and expected in result.stderr,
            f"rc={result.returncode} stderr={result.stderr.strip()[:300]}",
        )


def subchart() -> None:
    """`global` is accepted, alone and as a dependency of a parent chart (Helm hands every subchart `global`)."""
    result = run(HELM, "lint", "--strict", str(CHART), "--set", "global.imageRegistry=registry.example")
    check("helm lint --strict with a global value", result.returncode == 0, result.stdout + result.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        parent = Path(tmp, "parent")
        (parent / "charts").mkdir(parents=True)
        (parent / "Chart.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v2",
                    "name": "parent",
                    "version": "1.0.0",
                    "dependencies": [{"name": "movieapp-operator", "version": ">=0.0.0", "repository": f"file://{CHART}"}],
                }
            )
        )
        (parent / "values.yaml").write_text(
            yaml.safe_dump({"global": {"imageRegistry": "registry.example"}, "movieapp-operator": {"replicaCount": 2}})
        )
        shutil.copytree(CHART, parent / "charts" / "movieapp-operator")
        result = run(HELM, "lint", "--strict", str(parent))
        check("helm lint --strict of a parent chart with global values", result.returncode == 0, result.stdout + result.stderr)
        result = run(HELM, "template", "x", str(parent), "--namespace", "movieapp-system")
        deployments = [d for d in yaml.safe_load_all(result.stdout) if d and d.get("kind") == "Deployment"] if result.returncode == 0 else []
        check(
            "a parent chart with global values renders the operator's Deployment with the subchart's values",
            len(deployments) == 1 and deployments[0]["spec"]["replicas"] == 2,
            result.stderr.strip()[:300],
        )


def prometheus_rules() -> None:
    docs = render("prometheusRule.enabled=true")
    rule = one(docs, "PrometheusRule")
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
        shutil.copy(HERE / "alerts_test.yaml", Path(tmp, "alerts_test.yaml"))
        result = run(PROMTOOL, "check", "rules", str(Path(tmp, "rules.yaml")))
        check("promtool check rules", result.returncode == 0, result.stdout + result.stderr)
        result = run(PROMTOOL, "test", "rules", str(Path(tmp, "alerts_test.yaml")))
        check("promtool test rules (alerts_test.yaml: each alert fires when it should, and only then)", result.returncode == 0, result.stdout + result.stderr)


def kustomize() -> None:
    result = run(sys.executable, str(HERE / "kustomize_sync.py"), "--check")
    check("deploy/ (kubectl apply -k) yields the chart's default objects", result.returncode == 0, result.stdout + result.stderr)


def main() -> int:
    for name, body in [
        ("crds", crds_identical),
        ("lint", lint),
        ("defaults", defaults),
        ("namespaced", namespaced),
        ("full", full),
        ("grafana dashboard", grafana_dashboard),
        ("single replica", single_replica),
        ("rejections", rejections),
        ("subchart", subchart),
        ("prometheus rules", prometheus_rules),
        ("kustomize", kustomize),
    ]:
        guarded(name, body)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
