#!/usr/bin/env bash
# `make lint`: every linter the project has.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt"
cargo fmt --all --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p api-worker --all-targets --features lambda --locked -- -D warnings
echo "==> Terraform: fmt, tflint, checkov, invariants"
bash tests/terraform/check.sh
echo "==> Dockerfile and Helm chart: hadolint, helm lint"
bash tests/delivery/lint.sh
