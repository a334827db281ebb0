#!/usr/bin/env python3
"""terraform/modules/lambda/naming computes the operator's physical names.

The Lambda module finds a MovieApp's tables, queue and topic by the names the
operator gives them (operator/src/naming.rs). This evaluates the Terraform
module with the terraform binary (offline: no provider, local state in a
temporary directory) for a set of MovieApps, and compares the result with
`physical_name` below, a line-by-line port of the Rust function.

Usage: test_naming.py        (needs `terraform` on PATH; exits 0 when equal)
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MODULE = os.path.join(REPO, "terraform", "modules", "lambda", "naming")

PREFIX = "movieapp"
LIMITS = {  # operator/src/naming.rs limits, per component
    "users": 255, "movies": 255, "watchlists": 255,
    "jobs": 80, "jobs-dlq": 80, "notifications": 256,
}


def physical_name(namespace: str, name: str, component: str, max_len: int) -> str:
    """AppId::physical_name of operator/src/naming.rs."""
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:8]
    fixed = len(PREFIX) + 1 + 1 + len(digest) + 1 + len(component)
    room = max(0, max_len - fixed)
    readable = f"{namespace}-{name}"[:room].rstrip("-")
    if not readable:
        return f"{PREFIX}-{digest}-{component}"
    return f"{PREFIX}-{readable}-{digest}-{component}"


APPS = [
    ("movies", "netflix-clone"),
    ("a-b", "c"),
    ("a", "b-c"),
    # Cut for SQS (room 57 for "jobs"): the readable part is shortened.
    ("n" * 63, "x" * 61 + "-a"),
    ("n" * 63, "x" * 61 + "-b"),
    # The cut lands on a hyphen, which is dropped.
    ("team-" + "m" * 51, "api"),
    ("d" * 63, "e" * 200),
]


def main() -> int:
    calls = "\n".join(
        f'module "app{i}" {{\n  source    = "{MODULE}"\n  namespace = "{ns}"\n  name      = "{name}"\n}}\n'
        for i, (ns, name) in enumerate(APPS))
    outputs = "\n".join(
        f'output "app{i}" {{\n  value = module.app{i}.physical_names\n}}\n' for i in range(len(APPS)))
    env = dict(os.environ, TF_CLI_CONFIG_FILE="/dev/null", TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "main.tf"), "w", encoding="utf-8") as f:
            f.write(calls + outputs)
        for args in (["init", "-backend=false", "-input=false", "-no-color"],
                     ["apply", "-auto-approve", "-input=false", "-no-color"]):
            run = subprocess.run(["terraform", f"-chdir={tmp}", *args], env=env, capture_output=True, text=True)
            if run.returncode != 0:
                print(run.stdout + run.stderr)
                print(f"naming: terraform {args[0]} failed")
                return 1
        run = subprocess.run(["terraform", f"-chdir={tmp}", "output", "-json"], env=env,
                             capture_output=True, text=True, check=True)
        got = {k: v["value"] for k, v in json.loads(run.stdout).items()}
    failed = 0
    for i, (ns, name) in enumerate(APPS):
        for component, limit in LIMITS.items():
            want = physical_name(ns, name, component, limit)
            have = got[f"app{i}"].get(component)
            if have != want:
                failed += 1
                print(f"FAIL {ns}/{name} {component}: terraform {have!r}, operator {want!r}")
            elif len(have) > limit:
                failed += 1
                print(f"FAIL {ns}/{name} {component}: {have!r} is longer than {limit}")
    total = len(APPS) * len(LIMITS)
    print(f"naming: {total - failed} of {total} names equal the operator's")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
