#!/usr/bin/env python3
"""Offline checks of gitops/ and docs/gitops.md:

- the argocd-cm patch and the snippet in docs/gitops.md carry health.lua verbatim;
- every Argo CD Application and Flux object has the expected apiVersion and
  points at paths that exist in this repository, and sources that are defined;
- the Helm values they pass render with the chart (values.schema.json included);
- every Kustomize directory builds with `kubectl kustomize`;
- the MovieApp they deploy carries the fields the docs promise.

Needs $HELM and kubectl. Exit status non-zero on any failure; the last line
is "N passed, F failed".
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
GITOPS = ROOT / "gitops"
HEALTH = GITOPS / "argocd" / "movieapp.io" / "MovieApp" / "health.lua"
HELM = os.environ.get("HELM", "helm")
REPO_URL = "https://github.com/movieapp/movieapp.git"

passed = failed = 0


def check(description: str, condition: bool, detail: str = "") -> None:
    global passed, failed
    if condition:
        passed += 1
        print(f"ok   - {description}")
    else:
        failed += 1
        print(f"FAIL - {description}" + (f": {detail}" if detail else ""))


def docs_in(directory: Path) -> list[tuple[Path, dict]]:
    out = []
    for path in sorted(directory.rglob("*.yaml")):
        if "testdata" in path.parts or path.name == "health_test.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((path, doc))
    return out


def renders(values: dict, release: str, namespace: str) -> tuple[bool, str]:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as handle:
        yaml.safe_dump(values, handle)
        handle.flush()
        result = subprocess.run(
            [HELM, "template", release, str(ROOT / "charts/movieapp-operator"), "-n", namespace, "-f", handle.name],
            capture_output=True,
            text=True,
        )
    return result.returncode == 0, result.stderr.strip()


def kustomize_builds(directory: Path) -> tuple[bool, str]:
    result = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True)
    return result.returncode == 0, result.stderr.strip()


def main() -> int:
    script = HEALTH.read_text()

    cm = yaml.safe_load((GITOPS / "argocd/argocd-cm.yaml").read_text())
    embedded = cm["data"]["resource.customizations.health.movieapp.io_MovieApp"]
    check("gitops/argocd/argocd-cm.yaml carries health.lua verbatim", embedded == script)
    check(
        "the argocd-cm key names group and kind as Argo CD expects (<group>_<Kind>)",
        "resource.customizations.health.movieapp.io_MovieApp" in cm["data"] and cm["metadata"]["name"] == "argocd-cm",
    )
    doc = (ROOT / "docs/gitops.md").read_text() if (ROOT / "docs/gitops.md").exists() else ""
    blocks = re.findall(r"```yaml\n(.*?)```", doc, flags=re.DOTALL)
    snippets = [
        b for b in blocks if "resource.customizations.health.movieapp.io_MovieApp" in b
    ]
    ok = False
    for block in snippets:
        try:
            data = yaml.safe_load(block)
            value = data.get("data", data).get("resource.customizations.health.movieapp.io_MovieApp")
            ok = ok or value == script
        except (yaml.YAMLError, AttributeError):
            pass
    check("docs/gitops.md shows the argocd-cm snippet with health.lua verbatim", ok)

    objects = docs_in(GITOPS)
    repositories = {
        (d["metadata"]["namespace"], d["metadata"]["name"]): d
        for _, d in objects
        if d.get("kind") == "GitRepository"
    }
    kinds = {d.get("kind") for _, d in objects}
    check(
        "gitops/ has Argo CD Applications and Flux GitRepository, Kustomizations and a HelmRelease",
        {"Application", "GitRepository", "Kustomization", "HelmRelease"} <= kinds,
        str(kinds),
    )
    for path, d in objects:
        rel = path.relative_to(ROOT)
        kind = d.get("kind")
        if kind == "Application":
            source = d["spec"]["source"]
            check(f"{rel}: argoproj.io/v1alpha1 Application", d["apiVersion"] == "argoproj.io/v1alpha1")
            check(f"{rel}: source is this repository, path {source['path']} exists", source["repoURL"] == REPO_URL and (ROOT / source["path"]).is_dir())
            if "helm" in source:
                ok, err = renders(source["helm"].get("valuesObject", {}), source["helm"].get("releaseName", "x"), d["spec"]["destination"]["namespace"])
                check(f"{rel}: its Helm values render with the chart", ok, err)
                check(f"{rel}: server-side apply (the CRD is applied by Argo CD)", "ServerSideApply=true" in d["spec"]["syncPolicy"].get("syncOptions", []))
            else:
                ok, err = kustomize_builds(ROOT / source["path"])
                check(f"{rel}: {source['path']} builds with kubectl kustomize", ok, err)
        elif kind == "GitRepository":
            check(f"{rel}: source.toolkit.fluxcd.io/v1 GitRepository of this repository", d["apiVersion"] == "source.toolkit.fluxcd.io/v1" and d["spec"]["url"] == REPO_URL)
        elif kind == "Kustomization" and d["apiVersion"].startswith("kustomize.toolkit.fluxcd.io"):
            ref = d["spec"]["sourceRef"]
            check(f"{rel}: kustomize.toolkit.fluxcd.io/v1 Kustomization", d["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1")
            check(
                f"{rel}: its source {ref['name']} is defined in gitops/flux",
                (ref.get("namespace", d["metadata"]["namespace"]), ref["name"]) in repositories,
            )
            ok, err = kustomize_builds(ROOT / d["spec"]["path"])
            check(f"{rel}: {d['spec']['path']} exists and builds with kubectl kustomize", ok, err)
            check(f"{rel}: wait: true (Flux waits for the objects' health)", d["spec"].get("wait") is True)
            if "gitops/apps" in d["spec"]["path"]:
                exprs = [e for e in d["spec"].get("healthCheckExprs", []) if e.get("kind") == "MovieApp"]
                check(
                    f"{rel}: healthCheckExprs for MovieApp (kstatus calls a MovieApp without status Current)",
                    len(exprs) == 1 and exprs[0]["apiVersion"] == "movieapp.io/v1alpha1" and "Stalled" in exprs[0].get("failed", "") and "Ready" in exprs[0].get("current", ""),
                )
        elif kind == "HelmRelease":
            chart = d["spec"]["chart"]["spec"]
            ref = chart["sourceRef"]
            check(f"{rel}: helm.toolkit.fluxcd.io/v2 HelmRelease", d["apiVersion"] == "helm.toolkit.fluxcd.io/v2")
            check(f"{rel}: chart {chart['chart']} exists in the repository", (ROOT / chart["chart"]).is_dir())
            check(f"{rel}: its source {ref['name']} is defined in gitops/flux", (ref.get("namespace"), ref["name"]) in repositories)
            ok, err = renders(d["spec"].get("values", {}), d["metadata"]["name"], d["metadata"]["namespace"])
            check(f"{rel}: its values render with the chart", ok, err)
            check(f"{rel}: the CRD is created and upgraded (crds: CreateReplace)", d["spec"]["install"]["crds"] == "CreateReplace" and d["spec"]["upgrade"]["crds"] == "CreateReplace")

    apps = [d for _, d in objects if d.get("kind") == "MovieApp"]
    check(
        "the example MovieApp keeps its AWS data if removed from Git (deletionPolicy: Retain)",
        len(apps) == 1 and apps[0]["spec"].get("deletionPolicy") == "Retain",
    )
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
