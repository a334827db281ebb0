#!/usr/bin/env bash
# Every delivery test, for `make test`:
#
#   offline  chart_test.py        chart renders, schema, RBAC rules, promtool alert tests, Kustomize parity
#            lua_health_test.py   the Argo CD health check under lua5.4 and lua5.1
#            gitops_test.py       Argo CD and Flux examples
#            docs_test.py         the reference docs cover the CRD, reasons and metrics;
#                                 no dangling file references
#            workflows_test.py    the release pipeline (.github/workflows) builds, attests,
#                                 signs and publishes what the docs say
#            build-release.sh     the Dockerfile's release build, from the Docker context
#            plugin_test.py       the kubectl plugin's krew manifest: the release's packaging
#                                 and rendering, installed with krew
#   live     rbac-e2e.sh          the chart pushed to a local OCI registry and installed from
#                                 oci://127.0.0.1:<port>; its RBAC on the local control plane,
#                                 the operator as its ServiceAccount
#            docs_walkthrough.py  the commands of docs/installation.md
#            tests/images/test.sh both images built here from the Dockerfile (buildah,
#                                 a Debian base for distroless, the release binaries),
#                                 run under the Pods' security context (podman + runc),
#                                 /healthz; pushed to the local OCI registry and
#                                 recorded in moto's ECR with the same digest
#   gitops   tests/gitops/        the real tools, built once from the Go module proxy
#                                 (tests/gitops/build.sh): Prometheus scraping the
#                                 operator and firing the chart's alert, Flux and
#                                 Argo CD syncing from a Git repository on loopback
#
# `test.sh offline`, `test.sh live` or `test.sh gitops` runs one group; the live
# and gitops groups need the local environment (make env-up). Each suite prints "N passed, F failed";
# this script sums them and fails if any suite failed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
eval "$(bash tests/delivery/install-tools.sh)"
group=${1:-all}

total_passed=0 total_failed=0 failed_suites=() failed_checks=()
suite() {
  local name=$1; shift
  local log started=$SECONDS
  log=$(mktemp)
  printf '\n--- %s\n' "$name"
  set +e
  "$@" 2>&1 | tee "$log"
  local status=${PIPESTATUS[0]}
  set -e
  local summary
  summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
  # Each failed check again at the end, where a CI log's tail shows it.
  local check
  while IFS= read -r check; do failed_checks+=("$name: $check"); done < <(grep -E '^(FAIL|not ok)\b' "$log" || true)
  rm -f "$log"
  if [ -n "$summary" ]; then
    total_passed=$((total_passed + ${summary%% passed*}))
    local f=${summary#*, }; total_failed=$((total_failed + ${f%% failed}))
  fi
  if [ "$status" -ne 0 ]; then
    failed_suites+=("$name")
    [ -n "$summary" ] && [ "${summary#*, }" != "0 failed" ] || total_failed=$((total_failed + 1))
  fi
  echo "--- $name: ${summary:-no summary} ($((SECONDS - started)) s)"
}

if [ "$group" = all ] || [ "$group" = offline ]; then
  suite chart "$DELIVERY_PYTHON" tests/delivery/chart_test.py
  suite argocd-health "$DELIVERY_PYTHON" tests/delivery/lua_health_test.py
  suite gitops "$DELIVERY_PYTHON" tests/delivery/gitops_test.py
  suite docs "$DELIVERY_PYTHON" tests/delivery/docs_test.py
  suite workflows "$DELIVERY_PYTHON" tests/delivery/workflows_test.py
  suite release-build bash tests/delivery/build-release.sh
  suite kubectl-plugin "$DELIVERY_PYTHON" tests/delivery/plugin_test.py
fi
if [ "$group" = all ] || [ "$group" = live ]; then
  suite rbac-e2e bash tests/delivery/rbac-e2e.sh
  suite docs-walkthrough "$DELIVERY_PYTHON" tests/delivery/docs_walkthrough.py
  suite images bash tests/images/test.sh
fi
if [ "$group" = all ] || [ "$group" = gitops ]; then
  # The local environment's venv: boto3 (moto) and PyYAML.
  # shellcheck source=/dev/null
  . .localenv/env.sh
  suite prometheus "$LOCALENV_VENV/bin/python" tests/gitops/prometheus_test.py
  suite flux "$LOCALENV_VENV/bin/python" tests/gitops/flux_test.py
  suite argocd "$LOCALENV_VENV/bin/python" tests/gitops/argocd_test.py
fi

echo
if [ ${#failed_suites[@]} -gt 0 ]; then
  echo "delivery: failed suites: ${failed_suites[*]}"
  [ ${#failed_checks[@]} -eq 0 ] || printf '  %s\n' "${failed_checks[@]}"
fi
echo "$total_passed passed, $total_failed failed"
[ ${#failed_suites[@]} -eq 0 ]
