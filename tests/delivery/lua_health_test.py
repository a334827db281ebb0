#!/usr/bin/env python3
"""Runs the Argo CD health check of MovieApp against its test cases.

    lua_health_test.py                 every case of health_test.yaml, under
                                       lua5.4 and lua5.1 (Argo CD's gopher-lua
                                       speaks Lua 5.1)
    lua_health_test.py eval FILE       the health of one object (YAML or JSON,
                                       e.g. `kubectl get movieapp -o json`):
                                       prints "<status>\\t<message>"

Each object is handed to argocd_health.lua as a Lua table literal, numbers as
floats (gopher-lua has only float64 numbers, which is what Argo CD passes).
Interpreters: $LUA (default lua5.4) and $LUA51 (default lua5.1, skipped with a
note when missing). Exit status non-zero on any failure; the last line is
"N passed, F failed".
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
HEALTH_DIR = ROOT / "gitops" / "argocd" / "movieapp.io" / "MovieApp"
SCRIPT = HEALTH_DIR / "health.lua"
HARNESS = Path(__file__).resolve().parent / "argocd_health.lua"


def lua_literal(value: object) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            raise ValueError("NaN and infinities do not occur in Kubernetes objects")
        return repr(number)
    if isinstance(value, str):
        escaped = "".join(
            c if c.isprintable() and c not in '"\\' else "\\%03d" % ord(c) if ord(c) < 256 else c
            for c in value
        )
        return '"' + escaped + '"'
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        items = ("[" + lua_literal(str(k)) + "] = " + lua_literal(v) for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    # YAML timestamps and the like: Kubernetes JSON carries them as strings.
    return lua_literal(str(value))


def health(lua: str, obj: dict) -> tuple[str, str]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write("return " + lua_literal(obj) + "\n")
        object_file = handle.name
    try:
        run = subprocess.run(
            [lua, str(HARNESS), str(SCRIPT), object_file],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        os.unlink(object_file)
    if run.returncode != 0:
        raise RuntimeError(run.stderr.strip() or f"{lua} exited with {run.returncode}")
    status, _, message = run.stdout.rstrip("\n").partition("\t")
    return status, message


def load_object(path: Path) -> dict:
    # YAML 1.1 would turn unquoted timestamps into datetimes; Kubernetes
    # serves them as strings, and so does BaseLoader's str-only parse for
    # scalars. Use the safe loader and stringify in lua_literal instead.
    with path.open() as handle:
        return yaml.safe_load(handle)


def interpreters() -> tuple[list[str], list[str]]:
    found, notes = [], []
    for variable, default in (("LUA", "lua5.4"), ("LUA51", "lua5.1")):
        candidate = os.environ.get(variable) or shutil.which(default)
        if candidate and shutil.which(candidate):
            found.append(candidate)
        else:
            notes.append(f"{default} not found (set ${variable}); its cases are skipped")
    return found, notes


def run_cases() -> int:
    spec = yaml.safe_load((HEALTH_DIR / "health_test.yaml").read_text())
    cases = spec["tests"]
    luas, notes = interpreters()
    passed = failed = 0
    for note in notes:
        print(f"note - {note}")
    if not any(Path(l).name.startswith("lua5.4") or l.endswith("lua5.4") for l in luas):
        print("FAIL - lua5.4 is required")
        failed += 1

    # Every fixture in testdata/ must be a case, and every status be covered.
    fixtures = {p.name for p in (HEALTH_DIR / "testdata").glob("*.yaml")}
    referenced = {Path(c["inputPath"]).name for c in cases}
    for orphan in sorted(fixtures - referenced):
        print(f"FAIL - testdata/{orphan} is not referenced by health_test.yaml")
        failed += 1
    statuses = {c["healthStatus"]["status"] for c in cases}
    for needed in ("Healthy", "Progressing", "Degraded"):
        if needed not in statuses:
            print(f"FAIL - no case expects {needed}")
            failed += 1

    for lua in luas:
        version = subprocess.run([lua, "-v"], capture_output=True, text=True)
        name = (version.stdout or version.stderr).split("Copyright")[0].strip()
        for case in cases:
            expected = case["healthStatus"]
            obj = load_object(HEALTH_DIR / case["inputPath"])
            label = f"[{name}] {case['inputPath']}"
            try:
                status, message = health(lua, obj)
            except RuntimeError as error:
                print(f"FAIL - {label}: {error}")
                failed += 1
                continue
            want = (expected["status"], expected.get("message", message))
            if (status, message) == want:
                print(f"ok   - {label}: {status}")
                passed += 1
            else:
                print(f"FAIL - {label}: got {status!r} {message!r}, want {want[0]!r} {want[1]!r}")
                failed += 1
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "eval":
        obj = load_object(Path(argv[2]))
        lua = os.environ.get("LUA") or "lua5.4"
        status, message = health(lua, obj)
        print(f"{status}\t{message}")
        return 0
    if len(argv) == 1:
        return run_cases()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
