#!/usr/bin/env bash
# Installs the system packages the build and the local environment need, when
# they are missing. The toolchains (Rust, Go, Python) come with the machine;
# everything else is built or installed by the scripts that use it.
set -euo pipefail

need=()
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
command -v setsid >/dev/null || need+=(util-linux)
command -v cmake >/dev/null || need+=(cmake)
command -v cc >/dev/null || need+=(build-essential)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)

for tool in cargo go python3 kubectl; do
  command -v "$tool" >/dev/null || { echo "install-prereqs: '$tool' is required but not installed" >&2; exit 1; }
done

if [ ${#need[@]} -gt 0 ]; then
  echo ">> installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
