#!/usr/bin/env bash
# A real OCI registry on 127.0.0.1: distribution (the CNCF registry,
# github.com/distribution/distribution/v3, Apache-2.0), built from the Go
# module proxy and cached outside the checkout, keyed by what built it:
#
#   ${MOVIEAPP_CACHE:-~/.cache/movieapp}/delivery-tools/registry-<ver>-<goversion>/registry
#
# It serves what users pull from a published registry: the operator's Helm
# chart (`helm push` / `helm install oci://...`) today, the project's images
# later. Plain HTTP on the loopback interface, filesystem storage.
#
#   oci-registry.sh path            build if missing; print the binary's path
#   oci-registry.sh start [--port N]  start it unless it runs (idempotent); print
#                                   `export OCI_REGISTRY=127.0.0.1:<port>`
#   oci-registry.sh stop            stop it
#   oci-registry.sh status          "oci-registry: running on ..." or "stopped"
#
# Port: --port, else OCI_REGISTRY_PORT, else LOCALENV_PORT_BASE + 20 (the
# local environment's block; 27300 when unset). State: .localenv/oci-registry/
# (config.yml, data/), log .localenv/logs/oci-registry.log. Run by the local
# environment's supervisor (`localenv.sh start oci-registry`, so it needs a
# running environment): `make env-status` checks it (GET /v2/) and
# `make env-down` stops it with the rest of the environment.
set -euo pipefail

# v3.1.2: go.mod has no replace lines, go >= 1.26.0 (checked on the module proxy).
REGISTRY_VERSION=v3.1.2

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
state_root=${LOCALENV_DIR:-$root/.localenv}
state=$state_root/oci-registry
logs=$state_root/logs
localenv() { bash "$root/tests/localenv/localenv.sh" "$@"; }
cache_root=${MOVIEAPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/movieapp}

log() { echo ">> $*" >&2; }
die() { echo "oci-registry.sh: $*" >&2; exit 1; }

binary() {
  command -v go >/dev/null || die "go is required (to build the registry)"
  local dir tmp
  dir="$cache_root/delivery-tools/registry-$REGISTRY_VERSION-$(go env GOVERSION)"
  if [ ! -x "$dir/registry" ]; then
    mkdir -p "$cache_root/delivery-tools"
    exec 8>"$cache_root/delivery-tools/.registry.lock"
    flock 8
    if [ ! -x "$dir/registry" ]; then
      log "building the OCI registry (distribution $REGISTRY_VERSION) with $(go env GOVERSION) (first time only)"
      tmp=$(mktemp -d "$cache_root/delivery-tools/.registry-build.XXXXXX")
      CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath -ldflags "-s -w" \
        "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION" >&2 \
        || { rm -rf "$tmp"; die "go install of the registry failed"; }
      mkdir -p "$dir"
      mv "$tmp/registry" "$dir/registry"
      rm -rf "$tmp"
    fi
    exec 8>&-
  fi
  echo "$dir/registry"
}

port_from_args() {
  local port=${OCI_REGISTRY_PORT:-}
  while [ $# -gt 0 ]; do
    case "$1" in
      --port) port=$2; shift 2 ;;
      *) die "unknown argument: $1" ;;
    esac
  done
  if [ -z "$port" ]; then
    local base=${LOCALENV_PORT_BASE:-}
    if [ -z "$base" ] && [ -f "$state_root/env.sh" ]; then
      base=$(sed -n 's/^export LOCALENV_PORT_BASE=//p' "$state_root/env.sh")
    fi
    port=$(( ${base:-27300} + 20 ))
  fi
  [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -gt 0 ] && [ "$port" -lt 65536 ] || die "not a port: $port"
  echo "$port"
}

running() { localenv running oci-registry >/dev/null 2>&1; }

serves() { curl -fsS --max-time 2 "http://$1/v2/" >/dev/null 2>&1; }

start() {
  local port addr
  port=$(port_from_args "$@")
  addr="127.0.0.1:$port"
  if running; then
    addr=$(cat "$state/addr")
    serves "$addr" || die "the registry does not answer on $addr; see $logs/oci-registry.log"
    echo "export OCI_REGISTRY=$addr"
    return 0
  fi
  local bin
  bin=$(binary)
  if serves "$addr"; then die "something else already serves a registry on $addr (OCI_REGISTRY_PORT or --port picks another)"; fi
  mkdir -p "$state/data" "$logs"
  cat >"$state/config.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $state/data
  delete:
    enabled: true
http:
  addr: $addr
EOF
  echo "$addr" >"$state/addr"
  # No tracing exporter: nothing to send traces to.
  OTEL_TRACES_EXPORTER=none localenv start oci-registry --probe "http://$addr/v2/" --timeout 10 -- \
    "$bin" serve "$state/config.yml" >&2 || die "the registry did not start on $addr"
  log "OCI registry on http://$addr (distribution $REGISTRY_VERSION; data in $state/data)"
  echo "export OCI_REGISTRY=$addr"
}

stop() { localenv stop oci-registry >/dev/null; }

case "${1:-}" in
  path) binary ;;
  start) shift; start "$@" ;;
  stop) stop ;;
  status)
    if running; then echo "oci-registry: running on $(cat "$state/addr")"; else echo "oci-registry: stopped"; fi ;;
  *) die "usage: oci-registry.sh path | start [--port N] | stop | status" ;;
esac
