#!/usr/bin/env bash
# The local environment (docs/development.md, "The local environment"), run
# by its supervisor (tests/localenv/src/, the `localenv` binary), built here
# first:
#
#   localenv.sh up        start; returns once every component is healthy
#   localenv.sh down      stop exactly what was started, demo included
#   localenv.sh status    each process and its health (exit 1: a component
#                         is down or unhealthy, 2: only a process of make demo
#                         is, 3: not running)
#   localenv.sh restart NAME
#                         stop one component and start it again
#
# Ports: a block of 32 from LOCALENV_PORT_BASE (default 27300).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache_root=${MOVIEAPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/movieapp}
# A target directory of its own, shared by the checkouts: the workspace's
# holds Cargo's lock for minutes while anything else builds, and `status`
# must answer at once.
target="$cache_root/target-localenv-$(rustc -vV | sha256sum | cut -c1-12)"

# Shared, it holds one `localenv` for every checkout: the binary refuses
# (98) when it was built from another checkout, either because that
# checkout's build replaced it between our build and our run, or because
# Cargo took the other checkout's build as fresh for ours (it names a path
# crate by its path inside the workspace, and our sources may be older).
# Our sources are then touched, so Cargo builds the binary from them.
for _ in 1 2 3; do
  CARGO_TARGET_DIR=$target cargo build --quiet --locked --manifest-path "$root/Cargo.toml" \
    -p movieapp-localenv --bin localenv
  status=0
  "$target/debug/localenv" --checkout "$root" "$@" || status=$?
  [ "$status" -eq 98 ] || exit "$status"
  touch "$root/tests/localenv/src/main.rs"
done
exit 98
