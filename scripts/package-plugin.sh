#!/usr/bin/env bash
# Packages a built kubectl-movieapp binary as the archive the krew manifest
# (plugin.yaml) points at: kubectl-movieapp_v<VERSION>_<os>_<arch>.tar.gz
# holding the binary and LICENSE at its top level (plugin.yaml's `files`).
#
# Usage: scripts/package-plugin.sh VERSION OS_ARCH BINARY OUTDIR
#   e.g. scripts/package-plugin.sh 0.1.0 linux_amd64 target/release/kubectl-movieapp dist
# The release (.github/workflows/release.yaml, job plugin) runs it for every
# platform of plugin.yaml; tests/delivery/plugin_test.py for this machine's.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

[ $# -eq 4 ] || { echo "usage: $0 VERSION OS_ARCH BINARY OUTDIR" >&2; exit 2; }
version=$1 platform=$2 binary=$3 out=$4
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "$0: VERSION must be X.Y.Z, not '$version'" >&2; exit 2; }
[[ "$platform" =~ ^(linux|darwin)_(amd64|arm64)$ ]] || { echo "$0: OS_ARCH must be one of plugin.yaml's platforms (linux|darwin)_(amd64|arm64), not '$platform'" >&2; exit 2; }
[ -x "$binary" ] || { echo "$0: $binary is not an executable file (build it first: cargo build --release --locked -p kubectl-movieapp)" >&2; exit 2; }

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
install -m 0755 "$binary" "$staging/kubectl-movieapp"
install -m 0644 "$root/LICENSE" "$staging/LICENSE"
mkdir -p "$out"
archive="$out/kubectl-movieapp_v${version}_${platform}.tar.gz"
tar -C "$staging" -czf "$archive" kubectl-movieapp LICENSE
echo "$archive"
