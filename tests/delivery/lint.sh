#!/usr/bin/env bash
# The delivery linters, for `make lint`: hadolint on the Dockerfile,
# `helm lint --strict` on the chart (default values and every tests/delivery/values/
# file), and actionlint on .github/workflows (which must also reject
# tests/delivery/fixtures/actionlint-negative.yaml). Tools are pinned and
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
echo "hadolint, helm lint and actionlint: clean"
