#!/usr/bin/env bash
# `make test`: every test. Starts the local environment when it is not already
# running (and stops it again afterwards), then runs the suites.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each section says when it started (seconds into the run), so a CI log shows
# where the time goes.
section() { printf '\n==> [%4d s] %s\n' "$SECONDS" "$*"; }

section "building the workspace"
cargo build --workspace --all-targets --locked

section "generated manifests are up to date"
bash scripts/manifests.sh --check

section "Terraform checks (offline)"
bash tests/terraform/check.sh

section "api-worker Lambda package"
bash api-worker/lambda/package.sh

section "delivery checks (chart, Argo CD health, GitOps, docs, release build)"
bash tests/delivery/test.sh offline

started_env=false
# 0: running; 2: running, a process of make demo beside it is not healthy.
if ! bash tests/localenv/localenv.sh status --quiet && [ "${PIPESTATUS[0]}" -ne 2 ]; then
  section "starting the local environment"
  bash tests/localenv/localenv.sh up
  started_env=true
fi
gitops_pid=""
cleanup() {
  # A background GitOps run still going (an earlier section failed): its
  # suites clean up on SIGTERM before the environment stops under them.
  if [ -n "$gitops_pid" ] && kill -0 "$gitops_pid" 2>/dev/null; then
    kill -TERM -- "-$gitops_pid" 2>/dev/null || true
    wait "$gitops_pid" 2>/dev/null || true
  fi
  if $started_env; then bash tests/localenv/localenv.sh down; fi
}
trap cleanup EXIT
# shellcheck source=/dev/null
. .localenv/env.sh

section "TMDB stub tests"
python3 -m unittest discover -s tests/tmdb-stub -t tests/tmdb-stub

section "Rust tests (unit, integration, end-to-end)"
cargo test --workspace --locked --no-fail-fast

section "api-worker on Lambda (feature lambda)"
cargo test -p api-worker --features lambda --locked --no-fail-fast --lib --test lambda
bash api-worker/lambda/cargo-lambda-invoke.sh

section "delivery end to end (RBAC as the chart's ServiceAccount, docs walkthrough, images built and run)"
bash tests/delivery/test.sh live

# Real Pods: the images above, by digest, on a kubelet beside kwok's node
# (containerd, runc, the CNI bridge; root). Stopped again before the README's
# make demo below, which runs its own (one real node per machine).
section "real Pods on a real node (make test-real-node), where this machine can run one"
if why=$(bash tests/localenv/real-node.sh check); then
  bash tests/localenv/real-node-test.sh
  bash tests/localenv/real-node.sh down
else
  echo "   skipped: this machine cannot run the real node: $why"
fi

# The GitOps suites spend most of their time waiting on controllers (Argo CD's
# five-minute steady window above all), so they run in the background, in a
# process group of their own, beside the sections that follow; none of those
# touches what they use (cluster-scoped objects, the operator's CRD).
section "GitOps and monitoring with the real tools (tests/gitops: Prometheus, Flux, Argo CD), in the background"
gitops_log=$(mktemp)
setsid bash tests/delivery/test.sh gitops >"$gitops_log" 2>&1 </dev/null &
gitops_pid=$!
echo "   running (pid $gitops_pid); its output follows the last section"

section "api-worker web page in headless Chromium"
bash api-worker/tests/browser/run.sh

section "api-worker API against its OpenAPI document (schemathesis)"
bash api-worker/tests/schemathesis.sh

section "the shell commands of README.md and docs/development.md (make demo included)"
python3 tests/docs/shell_blocks_test.py

section "GitOps and monitoring with the real tools: the background run"
gitops_status=0
wait "$gitops_pid" || gitops_status=$?
gitops_pid=""
cat "$gitops_log"
rm -f "$gitops_log"
[ "$gitops_status" -eq 0 ]

section "every test passed"
