#!/usr/bin/env bash
set -euo pipefail
echo "make demo is not available yet: it arrives with the operator and api-worker." >&2
echo "Meanwhile: make env-up && . .localenv/env.sh && kubectl get nodes" >&2
exit 1
