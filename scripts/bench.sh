#!/usr/bin/env bash
set -euo pipefail
echo "make bench: nothing is registered yet (it arrives with the operator issues)."
