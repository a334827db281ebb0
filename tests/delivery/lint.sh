#!/usr/bin/env bash
# The delivery linters, for `make lint`: hadolint on the Dockerfile and
# `helm lint --strict` on the chart (default values and every tests/delivery/values/
# file). Tools are pinned and cached by install-tools.sh.
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
echo "hadolint and helm lint: clean"
