#!/usr/bin/env bash
# The delivery linters, for `make lint`: hadolint on the Dockerfile,
# `helm lint --strict` on the chart (default values and every tests/delivery/values/
# file), and actionlint on .github/workflows (which must also reject
# tests/delivery/fixtures/actionlint-negative.yaml), and dashboard-lint on the
# chart's Grafana dashboards (which must find every one of its rules broken in
# tests/delivery/fixtures/dashboard-lint-negative.json). Tools are pinned and
# cached by install-tools.sh.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
eval "$(bash tests/delivery/install-tools.sh)"

echo ">> hadolint Dockerfile ($("$HADOLINT" --version))"
"$HADOLINT" Dockerfile

echo ">> helm lint --strict charts/movieapp-operator ($("$HELM" version --short))"
"$HELM" lint --strict charts/movieapp-operator >/dev/null
for values in tests/delivery/values/*.yaml; do
  "$HELM" lint --strict charts/movieapp-operator -f "$values" >/dev/null
done
echo ">> actionlint .github/workflows ($("$ACTIONLINT" -version | head -n1))"
"$ACTIONLINT" .github/workflows/*.yaml
if "$ACTIONLINT" tests/delivery/fixtures/actionlint-negative.yaml >/dev/null 2>&1; then
  echo "actionlint found nothing wrong in tests/delivery/fixtures/actionlint-negative.yaml: it no longer checks" >&2
  exit 1
fi
echo ">> dashboard-lint charts/movieapp-operator/dashboards (Grafana's schema, PromQL, dashboard-linter's rules)"
"$DASHBOARD_LINT" charts/movieapp-operator/dashboards/*.json
status=0
negative=$("$DASHBOARD_LINT" tests/delivery/fixtures/dashboard-lint-negative.json 2>&1) || status=$?
if [ "$status" -ne 1 ]; then
  echo "dashboard-lint did not reject tests/delivery/fixtures/dashboard-lint-negative.json (exit $status): it no longer checks" >&2
  echo "$negative" >&2
  exit 1
fi
missed=()
for rule in $("$DASHBOARD_LINT" -rules); do
  grep -q ": $rule: " <<<"$negative" || missed+=("$rule")
done
if [ ${#missed[@]} -gt 0 ]; then
  echo "dashboard-lint found nothing wrong for ${missed[*]} in tests/delivery/fixtures/dashboard-lint-negative.json" >&2
  exit 1
fi
echo "hadolint, helm lint, actionlint and dashboard-lint: clean"
