#!/usr/bin/env python3
"""Keeps the operator's reference docs complete as the code grows:

- docs/crd-reference.md names every spec and status field of the generated CRD,
  every condition type (operator/src/conditions.rs) and every reason
  (operator/src/reason.rs);
- docs/troubleshooting.md has a section for every reason that stalls a MovieApp;
- docs/metrics.md lists every metric operator/src/metrics.rs registers;
- relative links between the docs point at files that exist.

Exit status non-zero on any failure; the last line is "N passed, F failed".
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SRC = ROOT / "operator" / "src"
# Types from k8s-openapi, documented as a whole rather than field by field.
OPAQUE = {"spec.worker.resources", "spec.worker.env", "status.conditions", "spec.worker.serviceAccount.annotations"}

passed = failed = 0


def check(description: str, missing: list[str]) -> None:
    global passed, failed
    if not missing:
        passed += 1
        print(f"ok   - {description}")
    else:
        failed += 1
        print(f"FAIL - {description}: missing {', '.join(missing)}")


def fields(node: dict, path: str) -> list[str]:
    out = []
    for name, prop in node.get("properties", {}).items():
        here = f"{path}.{name}"
        out.append(here)
        if here in OPAQUE:
            continue
        if prop.get("type") == "object":
            out += fields(prop, here)
        items = prop.get("items", {})
        if prop.get("type") == "array" and items.get("type") == "object":
            out += fields(items, here + "[]")
    return out


def without_tests(text: str) -> str:
    """The code before the unit tests (`#[cfg(test)]` ends the production part)."""
    return text.split("#[cfg(test)]")[0]


def main() -> int:
    reference = (DOCS / "crd-reference.md").read_text()
    crd = yaml.safe_load((ROOT / "crds/movieapp.io_movieapps.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    spec_fields = fields(schema["spec"], "spec")
    status_fields = fields(schema["status"], "status")
    check(
        f"crd-reference.md documents every spec field ({len(spec_fields)})",
        # An object is documented through its fields.
        [f for f in spec_fields if f"`{f}`" not in reference and f"`{f}." not in reference],
    )
    check(
        f"crd-reference.md documents every status field ({len(status_fields)})",
        [f for f in status_fields if f"`{f}" not in reference and f"`{f.split('.')[-1]}`" not in reference],
    )

    conditions_src = (SRC / "conditions.rs").read_text()
    kinds = re.search(r"pub mod kind \{(.*?)\}", conditions_src, re.DOTALL)
    condition_types = re.findall(r'"([A-Za-z]+)"', kinds.group(1)) if kinds else []
    check(
        f"crd-reference.md documents every condition type ({len(condition_types)})",
        [t for t in condition_types if f"`{t}`" not in reference],
    )
    # Every reason is a variant of `reasons! { .. }` in reason.rs (its string
    # is the variant's name); those that stall are listed in `fn stalls`.
    reason_src = without_tests((SRC / "reason.rs").read_text())
    declared = re.search(r"^reasons! \{(.*?)^\}", reason_src, re.DOTALL | re.MULTILINE)
    reasons = set(re.findall(r"^    ([A-Z][A-Za-z]+),$", declared.group(1), re.MULTILINE)) if declared else set()
    stalls_fn = re.search(r"fn stalls.*?\n    \}", reason_src, re.DOTALL)
    stalled = set(re.findall(r"Reason::([A-Za-z]+)", stalls_fn.group(0) if stalls_fn else ""))
    check(f"reason.rs declares the reasons ({len(reasons)}) and those that stall ({len(stalled)})", [] if reasons and stalled else ["reasons"])
    check(
        f"crd-reference.md names every condition and Event reason the operator writes ({len(reasons)})",
        sorted(r for r in reasons if f"`{r}`" not in reference),
    )
    troubleshooting = (DOCS / "troubleshooting.md").read_text()
    check(
        f"troubleshooting.md has a section for every Stalled reason ({len(stalled)})",
        sorted(r for r in stalled if f"### {r}" not in troubleshooting),
    )

    metrics_src = (SRC / "metrics.rs").read_text()
    names = set(re.findall(r'register\(\s*"([a-z_]+)"', metrics_src))
    names |= set(re.findall(r'encode_descriptor\(\s*"([a-z_]+)"', metrics_src))
    metrics_doc = (DOCS / "metrics.md").read_text()

    def documented(name: str) -> bool:
        return any(f"`{candidate}`" in metrics_doc for candidate in (name, f"{name}_total", f"{name}_info"))

    check(f"metrics.md lists every metric the operator registers ({len(names)})", sorted(n for n in names if not documented(n)))

    broken = []
    for doc in sorted(DOCS.glob("*.md")):
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            if not (doc.parent / target).exists():
                broken.append(f"{doc.name} → {target}")
    check("relative links in docs/ resolve", broken)

    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
