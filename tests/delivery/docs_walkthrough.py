#!/usr/bin/env python3
"""Runs the commands of docs/installation.md, so the docs stay true:

- every ```sh block after a `<!-- walkthrough -->` marker, in order, in one
  bash session (`set -euo pipefail`), on the local environment;
- "Install on EKS": every ```sh block after `<!-- eks-walkthrough -->`, in
  order, in one bash session, with what the blocks marked
  `<!-- eks-walkthrough aws-only: REASON -->` (listed, not run) would have set
  pointing at local stand-ins: the chart repository at a real OCI registry on
  127.0.0.1 (tests/delivery/oci-registry.sh; helm's registry commands get
  --plain-http), the worker image in moto's ECR. After the install step the
  operator process runs with the release's ServiceAccount token (the local
  node is simulated), and the MovieApp must become Ready;
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


def run_steps(script: Path, steps: list[tuple[str, str]], label: str) -> subprocess.CompletedProcess:
    """Runs a generated script whose steps print `@@ok N`; reports each step,
    up to the first that did not finish (with the output's last lines)."""
    result = subprocess.run(["timeout", "900", "bash", str(script)], cwd=ROOT, capture_output=True, text=True)
    done = {int(l.split()[1]) for l in result.stdout.splitlines() if l.startswith("@@ok ")}
    for index, (_, body) in enumerate(steps, 1):
        lines = body.strip().splitlines()
        description = f"{label.format(index=index)}: {lines[0]}{' …' if len(lines) > 1 else ''}"
        if index in done:
            report(True, description)
        else:
            report(False, description, "\n".join((result.stdout + result.stderr).splitlines()[-25:]))
            break
    return result


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
    result = run_steps(work / "walkthrough.sh", steps, "walkthrough step {index}")
    report("@@status" in result.stdout.splitlines(), "the operator wrote the example MovieApp's status within 30 s of its creation")
    if result.returncode == 0:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"# the generated script and logs are in {work}")


# The operator-made worker roles of the EKS walkthrough, as Terraform's
# operator_helm_values gives them (the chart's operator.workerRole; the
# process run here gets the same as flags).
OIDC_PROVIDER = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/WALKTHROUGH"
BOUNDARY = "arn:aws:iam::123456789012:policy/movieapp-worker-boundary"


def eks_walkthrough(text: str) -> None:
    section = text.split("## Install on EKS", 1)[-1].split("\n## ", 1)[0]
    steps = blocks(section, "eks-walkthrough", "sh")
    unmarked = len(re.findall(r"^```sh$", section, re.M)) - len(steps)
    aws_only = [(m, b) for m, b in steps if "aws-only:" in m]
    runnable = [(m, b) for m, b in steps if "aws-only:" not in m]
    report(
        unmarked == 0 and len(aws_only) >= 2 and len(runnable) >= 3,
        f"Install on EKS: every block is marked runnable or AWS-only ({len(runnable)} runnable, {len(aws_only)} AWS only, {unmarked} unmarked)",
    )
    for marker, body in aws_only:
        first = body.strip().splitlines()[0]
        report(True, f"Install on EKS, not run here ({marker.split('aws-only:', 1)[1].strip()}): {first} …")
    if not runnable:
        return

    ident = secrets.token_hex(3)
    ns, sys_ns, prefix = f"mvd-eks-{ident}", f"mvd-eks-{ident}-system", f"mvd-eks-{ident}"
    work = Path(tempfile.mkdtemp(prefix="mvd-eks-"))
    port = free_port()
    # The operator process, run by the local environment's supervisor.
    operator_process = f"docs-eks-{ident}-operator"

    def substitute(body: str) -> str:
        body = body.replace("movieapp-system", sys_ns)
        body = re.sub(r"(?<![\w/.-])movies(?![\w-])", ns, body)
        body = body.replace("dist/", f"{work}/dist/")
        body = body.replace("-f operator-values.json", f"-f {work}/operator-values.json")
        return body

    # What the AWS-only blocks set, pointing at the local stand-ins.
    prelude = f"""set -euo pipefail
. .localenv/env.sh
eval "$(bash tests/delivery/install-tools.sh)"
eval "$(bash tests/delivery/oci-registry.sh start)"
# The local registry speaks plain HTTP; ECR speaks HTTPS.
helm() {{ case "$1" in push|install|upgrade|pull|show) "$HELM" "$@" --plain-http ;; *) "$HELM" "$@" ;; esac; }}
VERSION=0.1.0
REGISTRY=$OCI_REGISTRY
OPERATOR_IMAGE=$OCI_REGISTRY/{prefix}/movieapp-operator
API_WORKER_REPOSITORY={prefix}/api-worker
CHART_REPOSITORY=oci://$OCI_REGISTRY/{prefix}/charts
"$LOCALENV_VENV/bin/python" tests/localenv/push-image.py --repository "$API_WORKER_REPOSITORY" --tag latest >/dev/null
cat >{work}/operator-values.json <<JSON
{{"image": {{"repository": "$OPERATOR_IMAGE"}}, "operator": {{"clusterId": "movieapp-prod", "workerRole": {{"oidcProviderArn": "{OIDC_PROVIDER}", "boundaryArn": "{BOUNDARY}"}}}}, "serviceAccount": {{"annotations": {{"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/movieapp-prod-operator"}}}}}}
JSON
cleanup() {{
  set +e
  if [ -n "${{OPERATOR_PROCESS:-}}" ]; then bash tests/localenv/localenv.sh stop "$OPERATOR_PROCESS" >/dev/null 2>&1; fi
  for o in $(kubectl -n {ns} get movieapps -o name 2>/dev/null); do kubectl -n {ns} patch "$o" --type merge -p '{{"metadata":{{"finalizers":null}}}}' >/dev/null 2>&1; done
  "$HELM" uninstall movieapp-operator -n {sys_ns} >/dev/null 2>&1
  kubectl delete namespace {ns} {sys_ns} --ignore-not-found --wait=false >/dev/null 2>&1
  AWS_REPOSITORY="$API_WORKER_REPOSITORY" "$LOCALENV_VENV/bin/python" -c 'import os, boto3; boto3.client("ecr").delete_repository(repositoryName=os.environ["AWS_REPOSITORY"], force=True)' >/dev/null 2>&1
}}
trap cleanup EXIT
"""
    # The operator's Pods do not run on the simulated node: run the process
    # from this checkout as the release's ServiceAccount.
    start_operator = f"""cargo build --quiet --locked -p movieapp-operator
kubectl config --kubeconfig {work}/operator.kubeconfig set-cluster local \
  --server "$(kubectl config view --minify -o jsonpath='{{.clusters[0].cluster.server}}')" \
  --certificate-authority .localenv/pki/ca.crt --embed-certs >/dev/null
kubectl config --kubeconfig {work}/operator.kubeconfig set-credentials operator \
  --token "$(kubectl -n {sys_ns} create token movieapp-operator --duration 1h)" >/dev/null
kubectl config --kubeconfig {work}/operator.kubeconfig set-context local --cluster local --user operator >/dev/null
kubectl config --kubeconfig {work}/operator.kubeconfig use-context local >/dev/null
OPERATOR_PROCESS={operator_process}
KUBECONFIG={work}/operator.kubeconfig POD_NAMESPACE={sys_ns} \
  bash tests/localenv/localenv.sh start "$OPERATOR_PROCESS" --probe http://127.0.0.1:{port}/readyz -- \
  "${{CARGO_TARGET_DIR:-target}}/debug/movieapp-operator" run --namespaces {ns} --leader-elect \
  --metrics-addr 127.0.0.1:{port} --aws-endpoint-url "$AWS_ENDPOINT_URL" --worker-tmdb-base-url "$TMDB_BASE_URL" \
  --cluster-id movieapp-prod --worker-role-oidc-provider-arn {OIDC_PROVIDER} --worker-role-boundary-arn {BOUNDARY} >/dev/null
"""
    script = [prelude]
    for index, (_, body) in enumerate(runnable, 1):
        script.append(f'echo "@@run {index}"\n{substitute(body)}\nprintf "\\n@@ok {index}\\n"')
        if "helm install" in body:
            script.append(start_operator)
    (work / "eks.sh").write_text("\n".join(script) + "\n")
    result = run_steps(work / "eks.sh", runnable, "Install on EKS, step {index} run here")
    if result.returncode == 0:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"# the generated script and logs are in {work}")


def main() -> int:
    text = DOC.read_text()
    overlay(text)
    walkthrough(text)
    eks_walkthrough(text)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
