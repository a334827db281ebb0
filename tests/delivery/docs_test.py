#!/usr/bin/env python3
"""Keeps the operator's reference docs complete as the code grows:

- docs/crd-reference.md names every spec and status field of the generated CRD,
  every condition type (operator/src/conditions.rs) and every reason
  (operator/src/reason.rs);
- docs/troubleshooting.md has a section for every reason that stalls a MovieApp;
- docs/metrics.md lists every metric operator/src/metrics.rs registers, and
  every reconcile-error category the operator counts;
- relative links in README.md and docs/ point at files that exist, and the
  repository paths the docs, the Makefile and the scripts name in backticks
  or comments exist (the design contract lives outside the repository: no
  file cites it as if it were here).

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
    """The code before the unit tests (their `#[cfg(test)] mod tests {` ends the
    production part; a test-only module declared among the others does not)."""
    return re.split(r"#\[cfg\(test\)\]\s*mod tests\s*\{", text)[0]


# Files that name repository paths for readers to open or run.
REFERRING = ["README.md", "Makefile", "docs/*.md", "terraform/README.md", "scripts/*", "tests/delivery/*.sh", "tests/delivery/*.py"]
# A repository path: a top-level directory of the project, then path parts, a
# file name with an extension.
PATH = re.compile(
    r"(?<![\w/.-])((?:docs|tests|scripts|operator|api-worker|charts|crds|deploy|examples|gitops|terraform|\.github)/[\w./-]*\.[a-z]{1,4})(?![\w/])"
)


def dangling_paths() -> list[str]:
    missing = []
    for pattern in REFERRING:
        for path in sorted(ROOT.glob(pattern)):
            if not path.is_file() or path.suffix in {".pyc"}:
                continue
            text = path.read_text(errors="replace")
            rel = path.relative_to(ROOT)
            # The design contract is not part of the repository.
            for m in re.finditer(r"DESIGN(?:\.md| §)", text):
                missing.append(f"{rel} cites {m.group(0)!r}, which is not in the repository")
            for target in sorted(set(PATH.findall(text))):
                target = target.rstrip(".")
                if "*" in target or "<" in target or not Path(target).suffix:
                    continue
                if not (ROOT / target).exists() and not (path.parent / target).exists():
                    missing.append(f"{rel} → {target}")
    return missing


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
    # Each step of the pipeline (reconcile/*.rs) categorises its own errors;
    # reconcile/mod.rs counts them, and a few failures by name.
    categories = set()
    for step in sorted((SRC / "reconcile").glob("*.rs")):
        code = without_tests(step.read_text())
        for body in re.findall(r"fn category\(.*?\n\}|fn category\(.*?\n    \}", code, re.DOTALL):
            categories |= set(re.findall(r'=> "([a-z_]+)"', body))
        categories |= set(re.findall(r'reconcile_failed\(\s*"([a-z_]+)"', code))
    # A clean-up still waiting on AWS is not counted as a failure: mod.rs
    # requeues it before the count (checked here, so the exemption cannot
    # outlive the code that makes it true).
    reconcile = without_tests((SRC / "reconcile" / "mod.rs").read_text())
    if "cleanup::Error::Pending" in reconcile:
        categories.discard("pending")
    # Likewise a deletion that waits for deletion protection to be lifted.
    if "cleanup::Error::Protected" in reconcile:
        categories.discard("deletion_protected")
    errors_row = next((l for l in metrics_doc.splitlines() if l.startswith("| `movieapp_reconcile_errors_total`")), "")
    check(
        f"metrics.md lists every reconcile-error category ({len(categories)})",
        sorted(c for c in categories if f"`{c}`" not in errors_row) or ([] if categories else ["(no category found in the code)"]),
    )

    broken = []
    for doc in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)} → {target}")
    check("relative links in README.md and docs/ resolve", broken)
    check("the files the docs, Makefile and scripts name exist", dangling_paths())

    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
