#!/usr/bin/env python3
"""Runs the shell commands that README.md and docs/ show, on the local
environment, so that what a newcomer copies works. (docs/installation.md has
its own walkthrough: tests/delivery/docs_walkthrough.py.)

Each ```sh block runs in one `bash -euo pipefail` session from the checkout's
root. Lines that cannot run inside `make test` are not run but accounted for:

- `make test` is this very run;
- `make env-down` is what `make test` does when it finishes;
- `make demo` runs as `DEMO_PORT=<free> OPERATOR_METRICS_PORT=<free> make demo`
  (its own checks include the curl commands it prints); like any demo, it is
  left running, recorded for `make env-down`.

A block right after a `<!-- not run by the tests: REASON -->` line is listed
with its reason instead (real AWS accounts, Argo CD, ...). The documents run
in order, so later ones may use the demo's MovieApp (movies/netflix-clone).
The `web` Deployment the README creates is deleted afterwards.
Prints one line per block and a closing "N passed, F failed".
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [
    "README.md",
    "docs/development.md",
    "docs/crd-reference.md",
    "docs/troubleshooting.md",
    "docs/alerts.md",
    "docs/upgrading.md",
    "docs/gitops.md",
    "docs/lambda.md",
    "docs/terraform.md",
    "docs/reliability.md",
]
MARKER = re.compile(r"<!-- not run by the tests: (.*?) -->")
NOT_RUN = {
    "make test": "this run",
    "make env-down": "run by make test when it finishes",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def blocks(path: Path) -> list[tuple[str, str | None]]:
    """Each ```sh block with the reason it is not run, if marked so."""
    found = []
    for match in re.finditer(r"(?:(<!-- not run by the tests: .*? -->)\n)?```sh\n(.*?)```", path.read_text(), flags=re.S):
        marker = MARKER.match(match.group(1) or "")
        found.append((match.group(2), marker.group(1) if marker else None))
    return found


def prepare(block: str) -> tuple[str, list[str]]:
    """The script to run for a block, and the commands accounted for elsewhere."""
    lines, skipped = [], []
    for line in block.splitlines():
        command = line.split("#", 1)[0].strip()
        if command in NOT_RUN:
            skipped.append(f"{command} ({NOT_RUN[command]})")
            continue
        if command == "make demo":
            line = f"DEMO_PORT={free_port()} OPERATOR_METRICS_PORT={free_port()} make demo"
        lines.append(line)
    return "\n".join(lines), skipped


def cleanup() -> None:
    env_sh = ROOT / ".localenv" / "env.sh"
    script = f"""
        . {env_sh}
        kubectl delete deployment web --ignore-not-found --wait=false >/dev/null
    """
    subprocess.run(["bash", "-c", script], cwd=ROOT, check=False)


def main() -> int:
    passed = failed = 0
    try:
        for document in DOCUMENTS:
            for index, (block, not_run) in enumerate(blocks(ROOT / document), start=1):
                label = f"{document} block {index}"
                if not_run:
                    print(f"ok    {label}: not run ({not_run})")
                    passed += 1
                    continue
                script, skipped = prepare(block)
                if not script.strip():
                    print(f"ok    {label}: only {', '.join(skipped)}")
                    passed += 1
                    continue
                # As a reader who did `make env-up && . .localenv/env.sh`.
                session = f". {ROOT / '.localenv' / 'env.sh'}\n{script}"
                result = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", session],
                    cwd=ROOT,
                    env={**os.environ, "CI": "true"},
                    capture_output=True,
                    text=True,
                    timeout=900,
                )
                if result.returncode == 0:
                    extra = f" (not run here: {', '.join(skipped)})" if skipped else ""
                    print(f"ok    {label}{extra}")
                    passed += 1
                else:
                    print(f"FAIL  {label}: exit {result.returncode}\n--- script\n{script}\n--- output")
                    print((result.stdout + result.stderr)[-4000:])
                    failed += 1
    finally:
        cleanup()
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
