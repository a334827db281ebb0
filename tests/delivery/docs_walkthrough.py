#!/usr/bin/env python3
"""Runs the commands of docs/installation.md, so the docs stay true:

- every ```sh block after a `<!-- walkthrough -->` marker, in order, in one
  bash session (`set -euo pipefail`), on the local environment;
- the Kustomize overlay after `<!-- overlay-example -->`, built against deploy/.

The walkthrough's names are replaced by unique ones (namespaces, the metrics
port, the kubeconfig and log paths, the example MovieApp's namespace), so it
never collides with `make demo` or other tests on the same environment.
Exit status non-zero on any failure; the last line is "N passed, F failed".
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "installation.md"

passed = failed = 0


def report(ok: bool, description: str, detail: str = "") -> None:
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   - {description}")
    else:
        failed += 1
        print(f"FAIL - {description}" + (f"\n{detail}" if detail else ""))


def blocks(text: str, marker: str, language: str) -> list[tuple[str, str]]:
    """(marker text, body) of every fenced block right after a marker comment."""
    pattern = re.compile(r"<!-- (" + marker + r"[^>]*?) -->\s*\n```" + language + r"\n(.*?)```", re.DOTALL)
    return [(m.group(1).strip(), m.group(2)) for m in pattern.finditer(text)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def overlay(text: str) -> None:
    found = blocks(text, "overlay-example", "yaml")
    if len(found) != 1:
        report(False, "docs/installation.md has one overlay example")
        return
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
        directory = Path(tmp) / "overlays" / "prod"
        directory.mkdir(parents=True)
        body = found[0][1].replace("../../deploy", os.path.relpath(ROOT / "deploy", directory))
        (directory / "kustomization.yaml").write_text(body)
        result = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True)
    if result.returncode != 0:
        report(False, "the overlay example builds with kubectl kustomize", result.stderr)
        return
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(result.stdout) if d}
    deployment = docs[("Deployment", "movieapp-operator")]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    sa = docs[("ServiceAccount", "movieapp-operator")]
    report(
        container["image"] == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/movieapp-operator:0.1.0"
        and env.get("MOVIEAPP_DEFAULT_REGION") == "eu-west-1"
        and "POD_NAME" in env
        and sa["metadata"].get("annotations", {}).get("eks.amazonaws.com/role-arn", "").endswith(":role/movieapp-operator"),
        "the overlay example sets the image, the region and the IRSA annotation, keeping the rest",
        result.stdout[:2000],
    )


def walkthrough(text: str) -> None:
    steps = blocks(text, "walkthrough", "sh")
    if len(steps) < 4:
        report(False, f"docs/installation.md has its walkthrough blocks (found {len(steps)})")
        return
    ident = secrets.token_hex(3)
    ns, sys_ns = f"mvd-doc-{ident}", f"mvd-doc-{ident}-system"
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="mvd-doc-"))
    example = yaml.safe_load((ROOT / "examples/movieapp.yaml").read_text())
    example["metadata"]["namespace"] = ns
    (work / "movieapp.yaml").write_text(yaml.safe_dump(example))

    def substitute(body: str) -> str:
        body = body.replace("movieapp-system", sys_ns)
        body = re.sub(r"(?<![\w/.-])movies(?![\w-])", ns, body)
        body = body.replace("examples/movieapp.yaml", str(work / "movieapp.yaml"))
        body = body.replace("127.0.0.1:8081", f"127.0.0.1:{port}")
        body = body.replace(".localenv/movieapp-operator.", f"{work}/movieapp-operator.")
        return body

    script = [
        "set -euo pipefail",
        # On any exit: stop the operator this script started, and remove what it made.
        f"""cleanup() {{
  set +e
  if [ -n "${{OPERATOR_PID:-}}" ]; then kill -TERM "$OPERATOR_PID" 2>/dev/null; fi
  for o in $(kubectl -n {ns} get movieapps -o name 2>/dev/null); do kubectl -n {ns} patch "$o" --type merge -p '{{"metadata":{{"finalizers":null}}}}' >/dev/null 2>&1; done
  "${{HELM:-helm}}" uninstall movieapp-operator -n {sys_ns} >/dev/null 2>&1
  kubectl delete namespace {ns} {sys_ns} --ignore-not-found --wait=false >/dev/null 2>&1
}}
trap cleanup EXIT""",
    ]
    for index, (_, body) in enumerate(steps, 1):
        body = substitute(body)
        script.append(f'echo "@@run {index}"\n{body}\nprintf "\\n@@ok {index}\\n"')
        if "kubectl apply -f" in body and "movieapp.yaml" in body:
            # The docs say the operator answers within seconds: hold them to it.
            script.append(
                f"""for _ in $(seq 1 30); do
  [ "$(kubectl -n {ns} get movieapp netflix-clone -o jsonpath='{{.status.observedGeneration}}')" = 1 ] && break; sleep 1
done
[ "$(kubectl -n {ns} get movieapp netflix-clone -o jsonpath='{{.status.observedGeneration}}')" = 1 ] && echo "@@status"
"""
            )
    (work / "walkthrough.sh").write_text("\n".join(script) + "\n")
    env = dict(os.environ)
    result = subprocess.run(
        ["timeout", "900", "bash", str(work / "walkthrough.sh")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    lines = result.stdout.splitlines()
    done = {int(l.split()[1]) for l in lines if l.startswith("@@ok ")}
    for index, (_, body) in enumerate(steps, 1):
        first = body.strip().splitlines()[0]
        label = f"walkthrough step {index}: {first}{' …' if len(body.strip().splitlines()) > 1 else ''}"
        if index in done:
            report(True, label)
        else:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-25:])
            report(False, label, tail)
            break
    report("@@status" in lines, "the operator wrote the example MovieApp's status within 30 s of its creation")
    if result.returncode == 0:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"# the generated script and logs are in {work}")


def main() -> int:
    text = DOC.read_text()
    overlay(text)
    walkthrough(text)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
