#!/usr/bin/env bash
# `make chaos`: the chaos scenarios of docs/reliability.md on the local
# environment (started here when it is not running, and stopped again), then
# the measured figures written into docs/reliability.md.
#   CHAOS_APPS=50 CHAOS_ROUNDS=10 CHAOS_SEED=<n>   sizes and the random choices
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --workspace --all-targets --locked

started_env=false
# 0: running; 2: running, a process of make demo beside it is not healthy.
if ! bash tests/localenv/localenv.sh status --quiet && [ "${PIPESTATUS[0]}" -ne 2 ]; then
  bash tests/localenv/localenv.sh up
  started_env=true
fi
figures=$(mktemp)
cleanup() {
  rm -f "$figures"
  if $started_env; then bash tests/localenv/localenv.sh down; fi
}
trap cleanup EXIT
# shellcheck source=/dev/null
. .localenv/env.sh

export CHAOS_REPORT=$figures
started=$SECONDS
echo "==> chaos: operator scenarios (SIGKILL rounds, AWS faults, kube-apiserver restart, moto state lost, leader kill)"
cargo test -p movieapp-tests --test chaos --locked -- --test-threads=1
echo "==> chaos: TMDB outage under api-worker load"
cargo test -p api-worker --test tmdb_outage --locked
elapsed=$((SECONDS - started))

python3 scripts/chaos_report.py "$figures" docs/reliability.md \
  --command "make chaos (CHAOS_APPS=${CHAOS_APPS:-50} CHAOS_ROUNDS=${CHAOS_ROUNDS:-10})" \
  --elapsed "$elapsed"
echo "wrote the figures into docs/reliability.md (${elapsed} s of scenarios)"
