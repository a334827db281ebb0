#!/usr/bin/env python3
"""The pipeline as code (.github/workflows) does what docs/installation.md
says a release is (actionlint, in `make lint`, checks the syntax and the
expressions; this checks the content):

- ci.yaml runs `make lint` and `make test`, nothing else, on pushes to main
  and on pull requests, with read-only permissions;
- release.yaml builds both image targets of the Dockerfile for linux/amd64
  and linux/arm64 with buildx, attaches an SBOM and max-mode provenance,
  signs each image by digest with cosign, packages the chart with the
  release's version, pushes it as an OCI artifact and signs it; the Helm it
  installs is the version the tests use (tests/delivery/install-tools.sh);
- the kubectl plugin is built for every platform of the krew manifest
  (plugin.yaml), packaged by scripts/package-plugin.sh under the names the
  manifest's uris give, and published with the rendered manifest as the
  assets of the tag's GitHub release, where those uris point;
- only the release jobs that need it get `id-token: write`, and only the one
  that publishes the release gets `contents: write`;
- each CI job's cache key hashes every file its cached tools are keyed by
  (and ci.yaml, which pins the Go version they are keyed by too): with a key
  that misses one, a change to it rebuilds the tool in every run (actions/cache
  saves nothing on an exact key hit), up to half an hour each for Flux's and
  Argo CD's controllers.

Exit status non-zero on any failure; the last line is "N passed, F failed".
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
passed = failed = 0


def check(ok: bool, description: str, detail: str = "") -> None:
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   - {description}")
    else:
        failed += 1
        print(f"FAIL - {description}" + (f": {detail}" if detail else ""))


def load(name: str) -> dict:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job.get("steps", []))


def uses(job: dict, action: str) -> list[dict]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).split("@")[0] == action]


def plugin_checks(jobs: dict) -> None:
    manifest = yaml.safe_load((ROOT / "plugin.yaml").read_text())
    platforms = sorted(
        f"{p['selector']['matchLabels']['os']}_{p['selector']['matchLabels']['arch']}"
        for p in manifest["spec"]["platforms"]
    )
    plugin = jobs.get("plugin", {})
    built = sorted(entry.get("platform", "") for entry in plugin.get("strategy", {}).get("matrix", {}).get("include", []))
    check(built == platforms, "the release builds the plugin for every platform of plugin.yaml", f"{built} != {platforms}")
    script = runs(plugin)
    check("cargo build --release --locked -p kubectl-movieapp --target \"$TARGET\"" in script
          and 'bash scripts/package-plugin.sh "$version" "$PLATFORM" "target/$TARGET/release/kubectl-movieapp" dist' in script,
          "each platform's release binary is packaged by scripts/package-plugin.sh")
    package = (ROOT / "scripts/package-plugin.sh").read_text()
    named = re.search(r'archive="\$out/(kubectl-movieapp_v\$\{version\}_\$\{platform\}\.tar\.gz)"', package)
    repository = re.search(r'^repository = "(\S+)"', (ROOT / "Cargo.toml").read_text(), re.M)
    uris = [p["uri"] for p in manifest["spec"]["platforms"]]
    expected = [
        f"{repository.group(1) if repository else '?'}/releases/download/v{{{{VERSION}}}}/kubectl-movieapp_v{{{{VERSION}}}}_{p['selector']['matchLabels']['os']}_{p['selector']['matchLabels']['arch']}.tar.gz"
        for p in manifest["spec"]["platforms"]
    ]
    check(named is not None and uris == expected,
          "plugin.yaml's uris are the archives package-plugin.sh makes, on the repository's releases", str(uris))
    publish = jobs.get("plugin-manifest", {})
    script = runs(publish)
    check(publish.get("needs") == "plugin"
          and 'python3 scripts/krew-manifest.py --version "$version" --dist dist --out dist/plugin.yaml' in script
          and re.search(r'gh release create "\$GITHUB_REF_NAME" dist/\*', script) is not None,
          "plugin-manifest renders plugin.yaml from the archives and publishes both on the tag's release")
    check(any(s.get("with", {}).get("pattern") == "plugin-*" for s in uses(publish, "actions/download-artifact"))
          and any(s.get("with", {}).get("name") == "plugin-${{ matrix.platform }}" for s in uses(plugin, "actions/upload-artifact")),
          "the archives travel from plugin to plugin-manifest as artifacts")
    writers = sorted(name for name, job in jobs.items() if job.get("permissions", {}).get("contents") == "write")
    check(writers == ["plugin-manifest"], "contents: write only on the job that publishes the release", str(writers))


# What the tools each CI job caches under ~/.cache/movieapp are keyed by
# (the scripts that build them hold their versions); the job's cache key must
# hash all of it.
CACHED_TOOL_INPUTS = {
    "both": [
        "Cargo.lock",
        ".github/workflows/ci.yaml",  # the Go version, part of every Go tool's key
        "tests/terraform/install-tools.sh", "tests/terraform/requirements-*.txt",
        "tests/terraform/tflint-ruleset-movieapp/**",
        "tests/delivery/install-tools.sh", "tests/delivery/requirements.txt", "tests/delivery/tools/**",
    ],
    "test": [
        "tests/localenv/build.sh", "tests/localenv/go.mod", "tests/localenv/go.sum", "tests/localenv/cmd/**",
        "tests/localenv/requirements.txt",
        "tests/delivery/oci-registry.sh",
        "tests/kstatus/**",
        "tests/gitops/build.sh", "tests/gitops/tools/**",
        "api-worker/tests/browser/package-lock.json", "api-worker/tests/schemathesis.sh",
    ],
}


def files(pattern: str) -> set[str]:
    """The checkout's files a hashFiles() pattern matches (`dir/**`: every
    file below dir)."""
    if pattern.endswith("/**"):
        found = (ROOT / pattern[:-3]).rglob("*")
    else:
        found = ROOT.glob(pattern)
    return {str(f.relative_to(ROOT)) for f in found if f.is_file()}


def cache_key_checks(jobs: dict) -> None:
    for name in ("lint", "test"):
        caches = uses(jobs.get(name, {}), "actions/cache")
        key = str(caches[0].get("with", {}).get("key", "")) if caches else ""
        hashed: set[str] = set()
        for call in re.findall(r"hashFiles\(([^)]*)\)", key):
            for pattern in re.findall(r"'([^']+)'", call):
                hashed |= files(pattern)
        needed: set[str] = set()
        for pattern in CACHED_TOOL_INPUTS["both"] + (CACHED_TOOL_INPUTS["test"] if name == "test" else []):
            matched = files(pattern)
            check(bool(matched), f"{pattern} names files of the checkout (the list above is current)")
            needed |= matched
        check(bool(caches) and needed <= hashed,
              f"ci.yaml's {name} job's cache key hashes every file its cached tools are keyed by",
              ", ".join(sorted(needed - hashed)))


def main() -> int:
    ci = load("ci.yaml")
    check(set(ci["on"]) == {"push", "pull_request"} and ci["on"]["push"]["branches"] == ["main"],
          "ci.yaml runs on pushes to main and on pull requests")
    check(ci.get("permissions") == {"contents": "read"}, "ci.yaml has read-only permissions")
    commands = sorted(re.findall(r"^make (\w+)$", "\n".join(runs(j) for j in ci["jobs"].values()), re.M))
    check(commands == ["lint", "test"], "ci.yaml runs make lint and make test", str(commands))
    cache_key_checks(ci["jobs"])

    release = load("release.yaml")
    jobs = release["jobs"]
    tags = release["on"]["push"]["tags"]
    check(tags == ["v*.*.*"], "release.yaml runs on version tags", str(tags))
    images = jobs.get("images", {})
    targets = images.get("strategy", {}).get("matrix", {}).get("target", [])
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\S+)", dockerfile, re.M))
    check(sorted(targets) == ["api-worker", "movieapp-operator"] and set(targets) <= stages,
          "the release builds both image targets of the Dockerfile", str(targets))
    builds = uses(images, "docker/build-push-action")
    build = builds[0].get("with", {}) if builds else {}
    platforms = {p.strip() for p in str(build.get("platforms", "")).split(",")}
    check({"linux/amd64", "linux/arm64"} <= platforms, "images are multi-arch (linux/amd64, linux/arm64)", str(platforms))
    check(build.get("push") is True and build.get("sbom") is True and build.get("provenance") == "mode=max",
          "images are pushed with an SBOM and max-mode provenance attestations", str(build))
    check(bool(uses(images, "docker/setup-buildx-action")) and bool(uses(images, "docker/setup-qemu-action")),
          "buildx (with QEMU for the other architecture) builds them")
    check(re.search(r'cosign sign --yes "\$IMAGE"', runs(images)) is not None
          and "@${{ steps.build.outputs.digest }}" in str(images),
          "each image is signed with cosign by digest")

    chart = jobs.get("chart", {})
    script = runs(chart)
    check("helm package charts/movieapp-operator --version \"$VERSION\" --app-version \"$VERSION\"" in script,
          "the chart is packaged with the release's version")
    check(re.search(r'helm push \S+ "oci://\$REGISTRY/\$PREFIX/charts"', script) is not None,
          "the chart is pushed as an OCI artifact to <registry>/<prefix>/charts")
    check("cosign sign --yes \"$REGISTRY/$PREFIX/charts/movieapp-operator@$digest\"" in script,
          "the chart is signed by digest")
    helm_pin = re.search(r"^HELM_VERSION=(\S+)", (ROOT / "tests/delivery/install-tools.sh").read_text(), re.M)
    setup_helm = uses(chart, "azure/setup-helm")
    check(bool(setup_helm) and helm_pin is not None and setup_helm[0].get("with", {}).get("version") == helm_pin.group(1),
          "the release's Helm is the version the tests use")
    check(chart.get("needs") == "images", "the chart is published after the images")

    plugin_checks(jobs)

    writers = sorted(name for name, job in jobs.items() if job.get("permissions", {}).get("id-token") == "write")
    check(release.get("permissions") == {"contents": "read"} and writers == ["chart", "images", "promote"],
          "id-token: write only on the jobs that sign or assume the AWS role", str(writers))
    promote = runs(jobs.get("promote", {}))
    check("--image-tag latest" in promote and "batch-get-image" in promote,
          "promotion re-tags an existing version as latest (the channel tag), building nothing")

    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
