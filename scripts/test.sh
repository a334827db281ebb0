#!/usr/bin/env bash
# `make test`: every test. Starts the local environment when it is not already
# running (and stops it again afterwards), then runs the suites.
set -euo pipefail
cd "$(dirname "$0")/.."

section() { printf '\n==> %s\n' "$*"; }

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
# (Captured first: grep -q closing the pipe early would fail it under pipefail.)
env_status=$(bash tests/localenv/localenv.sh status 2>/dev/null || true)
if ! grep -q 'kube-apiserver: running' <<<"$env_status"; then
  section "starting the local environment"
  bash tests/localenv/localenv.sh up
  started_env=true
fi
cleanup() { if $started_env; then bash tests/localenv/localenv.sh down; fi; }
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

section "delivery end to end (RBAC as the chart's ServiceAccount, docs walkthrough)"
bash tests/delivery/test.sh live

section "GitOps and monitoring with the real tools (tests/gitops: Prometheus, Flux, Argo CD)"
bash tests/delivery/test.sh gitops

section "api-worker web page in headless Chromium"
bash api-worker/tests/browser/run.sh

section "api-worker API against its OpenAPI document (schemathesis)"
bash api-worker/tests/schemathesis.sh

section "the shell commands of README.md and docs/development.md (make demo included)"
python3 tests/docs/shell_blocks_test.py
