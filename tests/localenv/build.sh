#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok) from the upstream Go modules, once, into a cache
# directory outside the checkout keyed by everything that determines the
# binaries. Prints the directory holding the binaries on its last line.
#
#   build.sh --kubelet   instead: the opt-in real node's kubelet (same
#                        k8s.io/kubernetes module and version) and its pause
#                        image, from the module in kubelet/, cached apart
#                        (localenv-node-<version>-<key>/bin: kubelet,
#                        pause, pause.tar); the control plane's key and
#                        build are untouched.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KUBE_VERSION=v1.34.4
KWOK_VERSION=v0.8.0

mode=control-plane
case "${1:-}" in
  "") ;;
  --kubelet) mode=kubelet ;;
  *) echo "build.sh: unknown argument: $1" >&2; exit 2 ;;
esac

# Version stamps so `kubectl version` and clients see a real release.
minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
ver_pkg=k8s.io/component-base/version
ldflags="-s -w -X $ver_pkg.gitVersion=$KUBE_VERSION -X $ver_pkg.gitMajor=1 -X $ver_pkg.gitMinor=$minor"
ldflags="$ldflags -X $ver_pkg.gitTreeState=clean -X $ver_pkg.buildDate=1970-01-01T00:00:00Z"

cache_root=${MOVIEAPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/movieapp}

if [ "$mode" = kubelet ]; then
  node_key=$({ cat "$here/kubelet/go.mod" "$here/kubelet/go.sum" "$here/kubelet/cmd/pause/main.go" \
                   "$here/kubelet/pause-image.py"
               echo "$(go env GOVERSION) $(uname -m) $ldflags"; } | sha256sum | cut -c1-16)
  node_out="$cache_root/localenv-node-$KUBE_VERSION-$node_key"
  if [ -x "$node_out/bin/kubelet" ] && [ -x "$node_out/bin/pause" ] && [ -f "$node_out/bin/pause.tar" ]; then
    echo "$node_out/bin"
    exit 0
  fi
  mkdir -p "$node_out"
  tmp=$(mktemp -d "$node_out/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  echo ">> building the kubelet $KUBE_VERSION and the pause image (first time only; several minutes)" >&2
  (
    cd "$here/kubelet"
    CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/" k8s.io/kubernetes/cmd/kubelet
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/" ./cmd/pause
  ) >&2
  python3 "$here/kubelet/pause-image.py" "$tmp/pause" "$tmp/pause.tar" localhost/movieapp/pause:3.10 >&2
  mkdir -p "$node_out/bin"
  for b in kubelet pause pause.tar; do mv "$tmp/$b" "$node_out/bin/$b"; done
  echo "$node_out/bin"
  exit 0
fi

# The cache key covers everything that determines the binaries.
key=$({ cat "$here/go.mod" "$here/go.sum" "$here/cmd/etcd/main.go"
        echo "$(go env GOVERSION) $KWOK_VERSION $(uname -m) $ldflags"; } | sha256sum | cut -c1-16)
out="$cache_root/localenv-$KUBE_VERSION-$key"

bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
have_all() {
  for b in "${bins[@]}"; do [ -x "$out/bin/$b" ] || return 1; done
  [ -f "$out/bin/kwok-stages.yaml" ]
}

if have_all; then
  echo "$out/bin"
  exit 0
fi

mkdir -p "$out"
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo ">> building the Kubernetes $KUBE_VERSION control plane and etcd from Go modules (first time only; several minutes)" >&2
(
  cd "$here"
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    ./cmd/etcd
) >&2

echo ">> building kwok $KWOK_VERSION" >&2
# kwok's go.mod has no replace directives, so `go install` works as is.
GOBIN="$tmp" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2

# kwok simulates nodes and pods through "stages"; use the upstream "fast"
# stages for both (nodes Ready at once, pods Ready as soon as scheduled) and
# lease-based node heartbeats, taken from the same kwok module.
kwok_dir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
  pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
  echo "---"
  cat "$kwok_dir/kustomize/stage/$f"
done >"$tmp/kwok-stages.yaml"

mkdir -p "$out/bin"
for b in "${bins[@]}" kwok-stages.yaml; do mv "$tmp/$b" "$out/bin/$b"; done
echo "$out/bin"
