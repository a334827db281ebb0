#!/usr/bin/env bash
# The local environment of DESIGN §6, run by its supervisor
# (tests/localenv/src/, the `localenv` binary), built here first:
#
#   localenv.sh up        start; returns once every component is healthy
#   localenv.sh down      stop exactly what was started, demo included
#   localenv.sh status    each process and its health (exit 1: unhealthy,
#                         3: not running)
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
# (98) when another checkout's build replaced it between our build and our
# run, and is built again.
for _ in 1 2 3; do
  CARGO_TARGET_DIR=$target cargo build --quiet --locked --manifest-path "$root/Cargo.toml" \
    -p movieapp-localenv --bin localenv
  status=0
  "$target/debug/localenv" --checkout "$root" "$@" || status=$?
  [ "$status" -eq 98 ] || exit "$status"
done
exit 98
