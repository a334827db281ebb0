#!/usr/bin/env python3
"""A real Prometheus server scrapes the operator and evaluates the chart's
alert rules; one alert fires for a real reason and resolves again.

- The chart is rendered with its ServiceMonitor and PrometheusRule on (helm
  template). The scrape job is what prometheus-operator makes of that
  ServiceMonitor: job name serviceMonitor/<ns>/<name>/0, the endpoint's path,
  interval and timeout, and the target labels it sets (job = the Service's
  name, namespace, service, endpoint = the port's name), for the Service the
  ServiceMonitor selects. The target address is the operator process (kwok
  runs no containers, so the Pods the chart makes never run it).
- The rule file is the PrometheusRule's spec.groups, unchanged. Durations are
  chart values: prometheusRule.stalledFor=20s and serviceMonitor.interval=2s.
- The trigger: a MovieApp whose TMDB Secret does not exist is Stalled
  (SecretNotFound), so movieapp_resources{condition="Stalled",status="True"}
  is 1 and MovieAppStalled goes pending, then firing; creating the Secret
  clears Stalled and the alert resolves.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.parse

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import kubectl  # noqa: E402

STALLED_FOR = "20s"
SCRAPE_INTERVAL = "2s"


def main() -> int:
    harness.require_localenv()
    return harness.Suite("prometheus").run(run)


def run(suite: harness.Suite) -> None:
    harness.operator_binary()
    tools = {**harness.delivery_tools(), **harness.tools("prometheus")}
    ns_sys, ns_apps = f"mvg-{suite.id}-system", f"mvg-{suite.id}-apps"
    release = f"mvg-{suite.id}"
    repository = f"mvg-{suite.id}/api-worker"
    suite.cleanups.append(lambda: harness.delete_namespaces([ns_apps, ns_sys]))
    suite.cleanups.append(lambda: harness.delete_repository(repository))

    suite.section("the chart's monitoring objects")
    rendered = harness.helm_template(
        tools["HELM"],
        release,
        ns_sys,
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        f"serviceMonitor.interval={SCRAPE_INTERVAL}",
        "--set",
        "serviceMonitor.scrapeTimeout=1s",
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        f"prometheusRule.stalledFor={STALLED_FOR}",
    )
    monitor = next(d for d in rendered if d["kind"] == "ServiceMonitor")
    rule = next(d for d in rendered if d["kind"] == "PrometheusRule")
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [
        d
        for d in rendered
        if d["kind"] == "Service" and all(d["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())
    ]
    suite.report(len(services) == 1, f"the ServiceMonitor selects exactly one Service of the chart ({len(services)})")
    service = services[0]
    endpoint = monitor["spec"]["endpoints"][0]
    suite.report(
        any(p.get("name") == endpoint["port"] for p in service["spec"]["ports"]),
        f"that Service has the ServiceMonitor's port {endpoint['port']}",
    )
    suite.report(
        monitor["spec"]["namespaceSelector"]["matchNames"] == [ns_sys],
        "the ServiceMonitor looks in the release's namespace",
    )

    config_dir = suite.work / "prometheus"
    config_dir.mkdir()
    (config_dir / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    checked = subprocess.run(
        [tools["PROMTOOL"], "check", "rules", str(config_dir / "rules.yaml")], capture_output=True, text=True
    )
    suite.report(checked.returncode == 0, "promtool check rules accepts the PrometheusRule's groups", checked.stdout + checked.stderr)

    suite.section("the operator, scraped")
    harness.install_crd()
    kubectl("create", "namespace", ns_sys)
    kubectl("create", "namespace", ns_apps)
    harness.push_image(repository, "1.0.0")
    operator, metrics = harness.start_operator(suite, watch=ns_apps, lease_namespace=ns_sys)
    suite.eventually(60, "the operator serves /readyz", lambda: harness.http_ok(f"{metrics}/readyz"))

    job = f"serviceMonitor/{ns_sys}/{monitor['metadata']['name']}/0"
    target_labels = {
        "job": service["metadata"]["name"],
        "namespace": ns_sys,
        "service": service["metadata"]["name"],
        "endpoint": endpoint["port"],
    }
    config = {
        "global": {"evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(config_dir / "rules.yaml")],
        "scrape_configs": [
            {
                "job_name": job,
                "honor_labels": False,
                "scrape_interval": endpoint["interval"],
                "scrape_timeout": endpoint["scrapeTimeout"],
                "metrics_path": endpoint["path"],
                "scheme": endpoint.get("scheme", "http"),
                "static_configs": [{"targets": [metrics.removeprefix("http://")], "labels": target_labels}],
            }
        ],
    }
    (config_dir / "prometheus.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = harness.free_port()
    api = f"http://127.0.0.1:{port}/api/v1"
    suite.start(
        "prometheus",
        [
            tools["PROMETHEUS"],
            f"--config.file={config_dir / 'prometheus.yaml'}",
            f"--storage.tsdb.path={config_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
    )
    suite.eventually(60, "Prometheus is ready", lambda: harness.http_ok(f"http://127.0.0.1:{port}/-/ready"))

    def target_up():
        targets = harness.http_json(f"{api}/targets")["data"]["activeTargets"]
        return [t for t in targets if t["scrapePool"] == job and t["health"] == "up"]

    up = suite.eventually(60, f"the scrape target ({job}) is up", target_up)
    if up:
        labels = up[0]["labels"]
        suite.report(
            all(labels.get(k) == v for k, v in target_labels.items()),
            f"the target carries the labels the alert rules select on (job={labels.get('job')}, namespace={labels.get('namespace')})",
        )

    def rules():
        groups = harness.http_json(f"{api}/rules")["data"]["groups"]
        return [r for g in groups for r in g["rules"]]

    loaded = suite.eventually(30, "the PrometheusRule's rules are loaded", lambda: len(rules()) == sum(len(g["rules"]) for g in rule["spec"]["groups"]) and rules())
    if loaded:
        names = sorted(r["name"] for r in loaded)
        suite.report(
            all(r["health"] in ("ok", "unknown") for r in loaded), f"every rule evaluates without error ({', '.join(names)})"
        )

    def query(expr: str) -> list[dict]:
        return harness.http_json(f"{api}/query?query={urllib.parse.quote(expr)}")["data"]["result"]

    selector_expr = f'job="{target_labels["job"]}",namespace="{ns_sys}"'
    suite.eventually(
        60,
        "movieapp_leader is 1 under the alert rules' selector (the operator holds its Lease)",
        lambda: [s for s in query(f"movieapp_leader{{{selector_expr}}}") if s["value"][1] == "1"],
    )
    suite.eventually(
        30,
        "movieapp_build_info is scraped",
        lambda: query(f'movieapp_build_info{{{selector_expr}}}'),
    )

    def alerts(name: str) -> list[dict]:
        return [a for a in harness.http_json(f"{api}/alerts")["data"]["alerts"] if a["labels"].get("alertname") == name]

    suite.report(not alerts("MovieAppStalled"), "MovieAppStalled is inactive while no MovieApp exists")

    suite.section("MovieAppStalled fires for a real Stalled MovieApp")
    app = {
        "apiVersion": "movieapp.io/v1alpha1",
        "kind": "MovieApp",
        "metadata": {"name": "shop", "namespace": ns_apps},
        "spec": {
            "region": os.environ.get("AWS_REGION", "us-east-1"),
            "worker": {
                "image": {"repository": repository, "tag": "1.0.0"},
                "replicas": 1,
                "tmdb": {"apiKeySecretRef": {"name": "tmdb", "key": "api-key"}},
            },
        },
    }
    harness.apply(app)
    suite.eventually(
        60,
        "the MovieApp without its TMDB Secret is Stalled (SecretNotFound)",
        lambda: harness.condition(harness.get("movieapp", "shop", ns_apps), "Stalled").get("reason") == "SecretNotFound",
    )
    suite.eventually(
        30,
        'Prometheus sees movieapp_resources{condition="Stalled",status="True"} 1',
        lambda: [s for s in query(f'movieapp_resources{{{selector_expr},condition="Stalled",status="True"}}') if s["value"][1] == "1"],
    )
    pending = suite.eventually(30, "MovieAppStalled goes pending (its for: has not passed yet)", lambda: [a for a in alerts("MovieAppStalled") if a["state"] == "pending"], 0.5)
    started = time.monotonic()
    firing = suite.eventually(90, f"MovieAppStalled fires after {STALLED_FOR}", lambda: [a for a in alerts("MovieAppStalled") if a["state"] == "firing"])
    if pending and firing:
        suite.report(time.monotonic() - started >= 15, "it fired no sooner than its for: duration allows")
        alert = firing[0]
        suite.report(
            alert["labels"].get("severity") == "warning" and alert["annotations"].get("summary", "").startswith("1 MovieApp(s) stalled"),
            f"the alert carries the rule's severity and summary ({alert['annotations'].get('summary')!r})",
        )
        suite.report(
            bool(query(f'ALERTS{{alertname="MovieAppStalled",alertstate="firing"}}')),
            'the ALERTS series records it (ALERTS{alertname="MovieAppStalled",alertstate="firing"})',
        )
    active = {a["labels"]["alertname"]: a["state"] for a in harness.http_json(f"{api}/alerts")["data"]["alerts"]}
    firing_others = sorted(name for name, state in active.items() if state == "firing" and name != "MovieAppStalled")
    suite.report(not firing_others, f"no other alert fires (MovieAppOperatorNoLeader, MovieAppNotReady, ...): {firing_others or 'none'}")
    suite.report(
        active.get("MovieAppNotReady") == "pending",
        f"MovieAppNotReady is pending: Ready=False, but not for its 15m yet ({active.get('MovieAppNotReady')})",
    )

    suite.section("and resolves once the cause is fixed")
    kubectl("-n", ns_apps, "create", "secret", "generic", "tmdb", f"--from-literal=api-key={os.environ.get('TMDB_API_KEY', 'key')}")
    suite.eventually(
        60,
        "creating the Secret clears Stalled",
        lambda: harness.condition(harness.get("movieapp", "shop", ns_apps), "Stalled").get("status") == "False",
    )
    suite.eventually(60, "MovieAppStalled resolves (no longer active)", lambda: not alerts("MovieAppStalled"))
    suite.eventually(
        60,
        "the MovieApp becomes Ready, and Prometheus counts it Ready",
        lambda: [s for s in query(f'movieapp_resources{{{selector_expr},condition="Ready",status="True"}}') if s["value"][1] == "1"],
    )
    suite.report(operator.poll() is None, "the operator ran throughout")
    kubectl("-n", ns_apps, "delete", "movieapp", "shop", "--wait=false")
    suite.eventually(60, "the MovieApp is deleted with its AWS resources", lambda: harness.get("movieapp", "shop", ns_apps) is None)


if __name__ == "__main__":
    sys.exit(main())
