#!/usr/bin/env bash
# Builds the GitOps and monitoring tools the tests run for real, from the Go
# module proxy, once, into a cache outside the checkout keyed by what built
# each one (its wrapper module under tools/, the Go version, the platform):
#
#   source-controller, kustomize-controller, helm-controller   Flux
#   argocd (application controller, repo-server)               Argo CD v3.2
#   kustomize                                                  the CLI Argo CD's repo-server runs
#   prometheus                                                 the server
#
# A wrapper module requires the upstream command and mirrors the replace
# lines of the upstream go.mod (`go install` refuses a module with replace
# lines, and a dependency's replace lines do not apply to the main module).
# The cold build time of each tool is written beside it (build-seconds).
#
# Usage: eval "$(tests/gitops/build.sh [TOOL...])"   (default: every tool)
# exports FLUX_SOURCE_CONTROLLER FLUX_KUSTOMIZE_CONTROLLER FLUX_HELM_CONTROLLER
# ARGOCD KUSTOMIZE PROMETHEUS for the tools asked for, and the directories
# their CRDs and configuration come from (FLUX_*_DIR, ARGOCD_DIR).
# Progress goes to stderr; stdout is only `export` lines.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${MOVIEAPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/movieapp}
# Prometheus 3's Go module; its go.mod has no replace lines (as for promtool).
PROMETHEUS_MODULE_VERSION=v0.316.0
# The kustomize Argo CD v3.2 ships (hack/tool-versions.sh); no replace lines.
KUSTOMIZE_VERSION=v5.7.0

log() { echo ">> $*" >&2; }
go_version=$(go env GOVERSION)
platform="$(go env GOOS)-$(go env GOARCH)"

# tool_dir NAME KEY-INPUT...: the cache directory for NAME, keyed by the inputs.
tool_dir() {
  local name=$1; shift
  local key
  key=$({ cat "$@"; echo "$go_version $platform"; } | sha256sum | cut -c1-16)
  echo "$cache_root/gitops-$name-$key"
}

# build NAME OUT-DIR COMMAND...: runs COMMAND (which writes OUT-DIR/.build/NAME)
# once, under a lock, and records how long it took.
build() {
  local name=$1 out=$2; shift 2
  mkdir -p "$out"
  exec {lock}>"$out/.lock"
  flock "$lock"
  if [ ! -x "$out/$name" ]; then
    log "building $name with $go_version (first time only; several minutes)"
    rm -rf "$out/.build"; mkdir -p "$out/.build"
    local started=$SECONDS
    if ! nice -n 10 "$@" >&2; then
      log "building $name failed"
      exit 1
    fi
    echo "$((SECONDS - started))" >"$out/build-seconds"
    mv "$out/.build/$name" "$out/$name"
    rm -rf "$out/.build"
    log "built $name in $(cat "$out/build-seconds") s"
  fi
  exec {lock}>&-
}

# A wrapper module under tools/: `go build` of the upstream main package.
wrapped() { # NAME PACKAGE
  local name=$1 pkg=$2 dir="$here/tools/$1"
  local out
  out=$(tool_dir "$name" "$dir/go.mod" "$dir/go.sum" $(ls "$dir"/*.go 2>/dev/null))
  build "$name" "$out" bash -c "cd '$dir' && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o '$out/.build/$name' '$pkg'"
  echo "$out/$name"
}

# An upstream command without replace lines: `go install PACKAGE@VERSION`.
installed() { # NAME PACKAGE VERSION
  local name=$1 pkg=$2 version=$3 out
  out=$(tool_dir "$name" <(echo "$pkg@$version"))
  build "$name" "$out" env CGO_ENABLED=0 GOBIN="$out/.build" go install -trimpath -ldflags '-s -w' "$pkg@$version"
  echo "$out/$name"
}

# module_dir DIR-OF-WRAPPER MODULE: where the Go module cache holds the
# version of MODULE the wrapper builds (its CRDs and manifests are read there).
module_dir() {
  (cd "$1" && go list -m -f '{{.Dir}}' "$2")
}

shopt -s inherit_errexit
tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=(prometheus source-controller kustomize-controller helm-controller kustomize argocd)
for tool in "${tools[@]}"; do
  case $tool in
    prometheus)
      path=$(installed prometheus github.com/prometheus/prometheus/cmd/prometheus "$PROMETHEUS_MODULE_VERSION")
      echo "export PROMETHEUS=$path" ;;
    source-controller | kustomize-controller | helm-controller)
      var=$(echo "FLUX_${tool%-controller}_CONTROLLER" | tr a-z- A-Z_)
      path=$(wrapped "$tool" "github.com/fluxcd/$tool")
      dir=$(module_dir "$here/tools/$tool" "github.com/fluxcd/$tool")
      echo "export $var=$path"
      echo "export ${var}_DIR=$dir" ;;
    kustomize)
      path=$(installed kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION")
      echo "export KUSTOMIZE=$path" ;;
    argocd)
      path=$(wrapped argocd .)
      dir=$(module_dir "$here/tools/argocd" github.com/argoproj/argo-cd/v3)
      echo "export ARGOCD=$path"
      echo "export ARGOCD_DIR=$dir" ;;
    *) echo "build.sh: unknown tool $tool" >&2; exit 2 ;;
  esac
done
