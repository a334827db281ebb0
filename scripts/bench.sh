#!/usr/bin/env bash
# `make bench`: benchmarks on the local environment; writes docs/benchmarks.md
# (command, machine, date, then one section per benchmark).
#   BENCH_OBJECTS=500 (MovieApps applied at once)  BENCH_REPEAT=3 (runs per median)
set -euo pipefail
cd "$(dirname "$0")/.."

started_env=false
# 0: running; 2: running, a process of make demo beside it is not healthy.
if ! bash tests/localenv/localenv.sh status --quiet && [ "${PIPESTATUS[0]}" -ne 2 ]; then
  bash tests/localenv/localenv.sh up
  started_env=true
fi
cleanup() { if $started_env; then bash tests/localenv/localenv.sh down; fi; }
trap cleanup EXIT
# shellcheck source=/dev/null
. .localenv/env.sh

report=docs/benchmarks.md
sections=$(mktemp)
notes=$(mktemp)
trap 'rm -f "$sections" "$notes"; cleanup' EXIT
# The reading of the figures (what a missed target is due to) is written by
# hand between these markers and kept when the figures are measured again.
if [ -f "$report" ]; then
  sed -n '/^<!-- analysis:begin -->$/,/^<!-- analysis:end -->$/p' "$report" >"$notes"
fi

echo "==> operator benchmark (release build)"
kubectl apply -f crds/ >/dev/null
kubectl wait --for=condition=Established crd/movieapps.movieapp.io --timeout=60s >/dev/null
cargo build --release --locked -p movieapp-operator -p movieapp-tests --bin movieapp-operator --bin bench-operator
release="${CARGO_TARGET_DIR:-target}/release"
"$release/bench-operator" "$release/movieapp-operator" --objects "${BENCH_OBJECTS:-500}" --sequential 20 \
  --repeat "${BENCH_REPEAT:-3}" >>"$sections"

echo "==> operator AWS reads per resync and drift-to-repair (release build)"
{
  echo
  echo "### AWS reads per resync, cost per MovieApp-hour, drift-to-repair"
  echo
  "$release/bench-operator" "$release/movieapp-operator" --reads --sequential 20 --repeat "${BENCH_REPEAT:-3}"
} >>"$sections"

echo "==> api-worker benchmark"
BENCH_REPORT="$sections.api-worker" bash api-worker/bench/bench.sh
cat "$sections.api-worker" >>"$sections"
rm -f "$sections.api-worker"

echo "==> api-worker memory under attacker-chosen load"
BENCH_REPORT="$sections.memory" bash api-worker/bench/memory.sh
{ echo; cat "$sections.memory"; } >>"$sections"
rm -f "$sections.memory"

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
memory=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
{
  echo "# Benchmarks"
  echo
  echo "Written by \`make bench\` (BENCH_OBJECTS=${BENCH_OBJECTS:-500} BENCH_REPEAT=${BENCH_REPEAT:-3}; $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD))."
  echo "Machine: $(nproc) cores ($cpu), $memory, $(uname -sr). Everything runs on this one"
  echo "machine, load generator included; on a shared 2-core machine read ratios and"
  echo "medians rather than single times."
  echo
  if [ -s "$notes" ]; then
    cat "$notes"
    echo
  fi
  cat "$sections"
} >"$report"
echo "wrote $report"
