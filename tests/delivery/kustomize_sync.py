#!/usr/bin/env python3
"""Keeps the Kustomize base (deploy/) equal to the Helm chart's defaults.

    kustomize_sync.py --write    render the chart (release movieapp-operator,
                                 namespace movieapp-system, default values)
                                 into deploy/<template>.yaml
    kustomize_sync.py --check    fail unless `kubectl kustomize deploy/`
                                 yields the same objects as `helm template`

The files are the chart's templates rendered as text, comments kept, with two
label changes: `helm.sh/chart` is dropped and `app.kubernetes.io/managed-by`
says `kustomize`. deploy/namespace.yaml and deploy/kustomization.yaml are
written by hand; the Namespace is the one object the chart does not render
(`helm install --create-namespace` makes it), so --check allows exactly it.

Needs $HELM (tests/delivery/install-tools.sh) and kubectl.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "movieapp-operator"
DEPLOY = ROOT / "deploy"
RELEASE = "movieapp-operator"
NAMESPACE = "movieapp-system"
HAND_WRITTEN = {"kustomization.yaml", "namespace.yaml"}
HEADER = (
    "# Generated from charts/movieapp-operator ({template}) with the chart's default\n"
    "# values by `python3 tests/delivery/kustomize_sync.py --write`; do not edit.\n"
)


def helm() -> str:
    return os.environ.get("HELM", "helm")


def render_chart() -> str:
    return subprocess.run(
        [helm(), "template", RELEASE, str(CHART), "--namespace", NAMESPACE],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def split_by_template(rendered: str) -> dict[str, list[str]]:
    """Documents of `helm template` output, grouped by their `# Source:` template."""
    groups: dict[str, list[str]] = {}
    for doc in re.split(r"^---\s*$", rendered, flags=re.MULTILINE):
        match = re.search(r"^# Source: [^/]+/templates/(.+)$", doc, flags=re.MULTILINE)
        if not match:
            continue
        body = doc[match.end() :].strip("\n")
        groups.setdefault(match.group(1), []).append(body)
    return groups


def to_kustomize_text(body: str) -> str:
    lines = []
    for line in body.splitlines():
        if re.match(r"^\s*helm\.sh/chart:", line):
            continue
        line = re.sub(r"(app\.kubernetes\.io/managed-by:\s*)Helm\b", r"\1kustomize", line)
        lines.append(line)
    return "\n".join(lines)


def write() -> int:
    groups = split_by_template(render_chart())
    wanted = set()
    for template, bodies in sorted(groups.items()):
        name = Path(template).name
        wanted.add(name)
        text = HEADER.format(template=f"templates/{template}")
        text += "\n---\n".join(to_kustomize_text(b) for b in bodies) + "\n"
        (DEPLOY / name).write_text(text)
        print(f"wrote deploy/{name}")
    for stale in DEPLOY.glob("*.yaml"):
        if stale.name not in wanted | HAND_WRITTEN:
            stale.unlink()
            print(f"removed deploy/{stale.name}")
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    listed = set(kustomization.get("resources", []))
    missing = (wanted | {"namespace.yaml"}) - listed
    if missing:
        print(f"add to deploy/kustomization.yaml resources: {sorted(missing)}", file=sys.stderr)
        return 1
    return 0


# Cluster-scoped kinds newer than kustomize's built-in list: its `namespace:`
# transformer sets a namespace on them, which kubectl drops when it applies
# a cluster-scoped object.
CLUSTER_SCOPED_UNKNOWN_TO_KUSTOMIZE = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


def normalise(obj: dict) -> dict:
    obj = copy.deepcopy(obj)
    if obj.get("kind") in CLUSTER_SCOPED_UNKNOWN_TO_KUSTOMIZE:
        obj.get("metadata", {}).pop("namespace", None)
    labels = obj.get("metadata", {}).get("labels")
    if labels is not None:
        labels.pop("helm.sh/chart", None)
        labels.pop("app.kubernetes.io/managed-by", None)
    return obj


def key(obj: dict) -> str:
    meta = obj.get("metadata", {})
    return f"{obj.get('apiVersion')}/{obj.get('kind')} {meta.get('namespace', '')}/{meta.get('name')}"


def objects(text: str) -> dict[str, dict]:
    normalised = [normalise(o) for o in yaml.safe_load_all(text) if o]
    return {key(o): o for o in normalised}


def check() -> int:
    from_helm = objects(render_chart())
    from_kustomize = objects(
        subprocess.run(
            ["kubectl", "kustomize", str(DEPLOY)], check=True, capture_output=True, text=True
        ).stdout
    )
    failures = []
    extra = set(from_kustomize) - set(from_helm)
    namespace_key = f"v1/Namespace /{NAMESPACE}"
    if namespace_key not in extra:
        failures.append(f"deploy/ should create the Namespace {NAMESPACE}")
    for k in sorted(extra - {namespace_key}):
        failures.append(f"only in deploy/: {k}")
    for k in sorted(set(from_helm) - set(from_kustomize)):
        failures.append(f"only in the chart: {k}")
    for k in sorted(set(from_helm) & set(from_kustomize)):
        if from_helm[k] != from_kustomize[k]:
            a = json.dumps(from_helm[k], indent=1, sort_keys=True).splitlines()
            b = json.dumps(from_kustomize[k], indent=1, sort_keys=True).splitlines()
            diff = "\n".join(difflib.unified_diff(a, b, "chart", "deploy", lineterm="", n=2))
            failures.append(f"{k} differs:\n{diff}")
    for failure in failures:
        print(failure, file=sys.stderr)
    if failures:
        print("deploy/ is stale: python3 tests/delivery/kustomize_sync.py --write", file=sys.stderr)
        return 1
    print(f"deploy/ yields the chart's {len(from_helm)} default objects (plus the Namespace)")
    return 0


def main(argv: list[str]) -> int:
    if argv[1:] == ["--write"]:
        return write()
    if argv[1:] == ["--check"]:
        return check()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
