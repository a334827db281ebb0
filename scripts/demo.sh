#!/usr/bin/env bash
# `make demo`: the main job on a fresh machine. Checks the tools, builds the
# operator, the api-worker and the demo (tests/src/bin/demo.rs) from this
# checkout, and runs the demo: the local environment, the operator, the
# example MovieApp until Ready, and an api-worker wired to what was made.
# Everything keeps running; `make env-down` stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

fail() { printf '\nmake demo failed: %s\n%s\n' "$1" "$2" >&2; exit 1; }

for tool in cargo go python3 kubectl curl; do
  command -v "$tool" >/dev/null || fail "'$tool' is not installed" \
    "Install it (Rust from rustup.rs, Go from go.dev, the rest from your package manager), then run make demo again."
done

printf '\n==> building movieapp-operator, api-worker and the demo from this checkout\n'
bin="${CARGO_TARGET_DIR:-$root/target}/debug"
# The target directory may be shared by several checkouts: the demo refuses
# (98) when another checkout's build replaced it before it ran.
for _ in 1 2 3; do
  cargo build --locked -p movieapp-operator -p api-worker -p movieapp-tests \
    --bin movieapp-operator --bin api-worker --bin demo 2>&1 |
    grep -E '^\s*(Compiling|Finished|error|warning: unused)' ||
    fail "the build failed" "Run 'cargo build -p movieapp-operator -p api-worker -p movieapp-tests --bin demo' to see the errors."
  status=0
  "$bin/demo" --checkout "$root" --operator "$bin/movieapp-operator" --api-worker "$bin/api-worker" || status=$?
  [ "$status" -eq 98 ] || exit "$status"
done
exit 98
