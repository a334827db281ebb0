#!/usr/bin/env python3
"""Keeps the operator's reference docs complete as the code grows:

- docs/crd-reference.md names every spec and status field of the generated CRD,
  every condition type (operator/src/conditions.rs) and every reason
  (operator/src/reason.rs);
- docs/troubleshooting.md has a section for every reason that stalls a MovieApp;
- docs/metrics.md lists every metric operator/src/metrics.rs registers, and
  every reconcile-error category the operator counts; every metric it names
  is one the operator or the api-worker registers;
- every metric the chart's Grafana dashboard queries is in docs/metrics.md
  (and so exists): the check also runs on a fixture that queries a metric
  nobody serves, and must find it;
- relative links in README.md and docs/ point at files that exist, and the
  repository paths the docs, the Makefile, the scripts and the sources'
  comments name exist (the design contract lives outside the repository: no
  file cites it as if it were here).

Exit status non-zero on any failure; the last line is "N passed, F failed".
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SRC = ROOT / "operator" / "src"
# Types from k8s-openapi, documented as a whole rather than field by field.
OPAQUE = {
    "spec.worker.resources",
    "spec.worker.env",
    "status.conditions",
    "spec.worker.serviceAccount.annotations",
    "spec.worker.networkPolicy.ingressFrom",
}

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


# Files that name repository paths for readers to open or run: the docs, the
# entry points, and the sources whose comments send readers elsewhere.
REFERRING = [
    "README.md", "Makefile", "docs/*.md", "terraform/README.md", "scripts/*",
    "tests/*/*.sh", "tests/*/*.py", "tests/src/**/*.rs", "tests/suites/*.rs", "tests/*/src/**/*.rs",
    "operator/src/**/*.rs", "api-worker/src/**/*.rs", "api-worker/**/*.sh", "model/src/**/*.rs",
    "kubectl-movieapp/src/**/*.rs", "terraform/**/*.tf", ".github/workflows/*.yaml",
]
# A repository path: a top-level directory of the project, then path parts, a
# file name with an extension.
PATH = re.compile(
    r"(?<![\w/.-])((?:docs|tests|scripts|operator|api-worker|charts|crds|deploy|examples|gitops|terraform|\.github)/[\w./-]*\.[a-z]{1,4})(?![\w/])"
)


# Words of PromQL that are not metric names: keywords, set operators,
# aggregations (a function call is recognised by its parenthesis).
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
    "offset", "atan2", "start", "end", "inf", "nan", "sum", "min", "max", "avg", "count", "stddev",
    "stdvar", "topk", "bottomk", "quantile", "count_values", "group", "limitk", "limit_ratio",
}


def promql_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: its identifiers less
    functions (followed by a parenthesis), keywords, label names (inside
    {...} and in the label lists of by/without/on/ignoring/group_*), strings,
    durations and numbers."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for m in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", text):
        if m.group(0).lower() in PROMQL_WORDS or text[m.end():].lstrip().startswith("("):
            continue
        names.add(m.group(0))
    return names


def dashboard_metrics(path: Path) -> set[str]:
    """Every metric a Grafana dashboard's queries and query variables select."""
    dashboard = json.loads(path.read_text())
    names: set[str] = set()
    panels = list(dashboard.get("panels", []))
    for panel in list(panels):
        panels += panel.get("panels", [])
    for panel in panels:
        for target in panel.get("targets", []):
            names |= promql_metrics(target.get("expr", ""))
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        query = query.get("query", "") if isinstance(query, dict) else query or ""
        selector = re.match(r"\s*label_values\((.*),\s*\w+\)\s*$", query)
        if variable.get("type") == "query":
            names |= promql_metrics(selector.group(1) if selector else query)
    return names


def undocumented(names: set[str], metrics_doc: str) -> list[str]:
    """Names docs/metrics.md does not list (a histogram's _bucket, _sum and
    _count series are documented under the histogram's name)."""
    return sorted(
        n for n in names if not any(f"`{c}`" in metrics_doc for c in (n, re.sub(r"_(bucket|sum|count)$", "", n)))
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
    # Gauges computed at scrape time (movieapp_resources and the like).
    names |= set(re.findall(r'encode_gauges\(\s*&mut encoder,\s*"([a-z_]+)"', metrics_src))
    metrics_doc = (DOCS / "metrics.md").read_text()

    def documented(name: str) -> bool:
        return any(f"`{candidate}`" in metrics_doc for candidate in (name, f"{name}_total", f"{name}_info"))

    check(f"metrics.md lists every metric the operator registers ({len(names)})", sorted(n for n in names if not documented(n)))
    worker_src = (ROOT / "api-worker" / "src" / "metrics.rs").read_text()
    worker = {f"movieapp_{n}" for n in re.findall(r'register\(\s*"([a-z_]+)"', worker_src)}
    check(f"metrics.md lists every metric the api-worker registers ({len(worker)})", sorted(n for n in worker if not documented(n)))
    served = {f"{n}{suffix}" for n in names | worker for suffix in ("", "_total", "_info", "_bucket", "_sum", "_count")}
    named = set(re.findall(r"\bmovieapp_[a-z0-9_]*[a-z0-9]", metrics_doc))
    check(
        f"every metric metrics.md names is registered by the operator or the api-worker ({len(named)})",
        sorted(named - served) if names and worker else ["(no registered metric found in the code)"],
    )
    # The Grafana dashboard (charts/.../dashboards) queries only documented
    # metrics; the fixture proves the check finds one that is not.
    fixture = dashboard_metrics(ROOT / "tests/delivery/fixtures/dashboard-unknown-metric.json")
    check(
        "the dashboard metric check finds the metric nobody serves in tests/delivery/fixtures/dashboard-unknown-metric.json",
        [] if undocumented(fixture, metrics_doc) == ["movieapp_reconcile_seconds_bucket"] else [f"found {undocumented(fixture, metrics_doc)}"],
    )
    for dashboard in sorted((ROOT / "charts").glob("*/dashboards/*.json")):
        queried = dashboard_metrics(dashboard)
        check(
            f"metrics.md lists every metric {dashboard.relative_to(ROOT)} queries ({len(queried)})",
            undocumented(queried, metrics_doc) if len(queried) >= 10 else [f"only {len(queried)} metrics found: the extraction broke"],
        )
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
    check("the files the docs, Makefile, scripts and sources name exist", dangling_paths())

    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
