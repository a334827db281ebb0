#!/usr/bin/env bash
# Builds the kstatus helper once into a cache directory keyed by its sources
# and the Go version; prints the binary's path on its last line.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
key=$({ cat "$here/go.mod" "$here/go.sum" "$here/main.go"; go env GOVERSION; } | sha256sum | cut -c1-16)
out="${MOVIEAPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/movieapp}/kstatus-$key"
if [ ! -x "$out/kstatus" ]; then
  echo ">> building the kstatus helper (first time only)" >&2
  mkdir -p "$out"
  (cd "$here" && CGO_ENABLED=0 go build -trimpath -o "$out/kstatus.tmp" .) >&2
  mv "$out/kstatus.tmp" "$out/kstatus"
fi
echo "$out/kstatus"
