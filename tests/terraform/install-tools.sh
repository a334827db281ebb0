#!/usr/bin/env bash
# Installs the pinned tools that check terraform/ into a cache outside the
# checkout, keyed by what determines each tool, so a fresh clone on a fresh
# machine installs everything and a warm machine reuses it:
#
#   ${MOVIEAPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/movieapp}/terraform-tools/
#     tflint-<ver>-<goversion>/tflint           go install (no replace lines)
#     hclfmt-<ver>-<goversion>/hclfmt           go install (no replace lines)
#     tflint-plugins-<hash>/tflint-ruleset-movieapp   built from ./tflint-ruleset-movieapp
#     checkov-<ver>-py<ver>-<hash>/venv         pip, every dependency pinned
#     hcl2-<ver>-py<ver>-<hash>/venv            pip (python-hcl2 for test_invariants.py)
#
# Usage: install-tools.sh            install what is missing, print the env
#        install-tools.sh --env      same; stdout is only `export` lines
# Progress goes to stderr; stdout is shell code check.sh evaluates.
#
# Why not the upstream AWS ruleset: github.com/terraform-linters/tflint-ruleset-aws
# is refused by the Go module proxy here (403 "not available") and tflint's
# own plugin download needs GitHub. The project ships its own AWS ruleset
# (./tflint-ruleset-movieapp, built against tflint-plugin-sdk) instead. Set
# TFLINT_AWS_RULESET_VERSION to also build the upstream one where the proxy
# serves it (untested here, since the proxy refuses it; declare plugin "aws"
# in .tflint.hcl to use it).
#
# Why no terraform binary: github.com/hashicorp/terraform's go.mod has
# `replace` lines pointing at nested modules that are not published, so it
# cannot be built from the module proxy at all. hclfmt (hashicorp/hcl, the
# formatter terraform fmt is built on) is installed instead; check.sh also
# runs `terraform fmt` when a terraform binary is on PATH.
set -euo pipefail

TFLINT_VERSION=v0.64.0
TFLINT_PLUGIN_SDK_VERSION=v0.25.0 # pinned in tflint-ruleset-movieapp/go.mod
HCL_VERSION=v2.25.0
CHECKOV_VERSION=3.3.30
PYTHON_HCL2_VERSION=8.1.4
PARLIAMENT_VERSION=1.6.4
TFLINT_AWS_RULESET_VERSION=${TFLINT_AWS_RULESET_VERSION:-}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${MOVIEAPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/movieapp}
root="$cache_root/terraform-tools"
mkdir -p "$root"

log() { echo ">> $*" >&2; }
hash_of() { cat "$@" | sha256sum | cut -c1-12; }

# One installer at a time (make lint and make test may run together).
exec 9>"$root/.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
# Leftovers of an interrupted build (safe: we hold the lock).
rm -rf "$root"/.build.*

command -v go >/dev/null || { echo "install-tools.sh: go is required" >&2; exit 1; }
PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null || { echo "install-tools.sh: python3 is required" >&2; exit 1; }

go_version=$(go env GOVERSION)
py_version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
export CGO_ENABLED=0

# go_install DIR BINARY PACKAGE@VERSION: go install into DIR unless there.
go_install() {
  local dir=$1 bin=$2 pkg=$3
  [ -x "$dir/$bin" ] && return 0
  log "building $pkg (first time only)"
  local tmp
  tmp=$(mktemp -d "$root/.build.XXXXXX")
  GOBIN="$tmp" go install -trimpath -ldflags "-s -w" "$pkg" >&2
  mkdir -p "$dir"
  mv "$tmp/$bin" "$dir/$bin"
  rm -rf "$tmp"
}

# go.mod of tflint and hashicorp/hcl have no replace lines (checked with
# curl -s https://proxy.golang.org/<module>/@v/<ver>.mod), so go install works.
tflint_dir="$root/tflint-$TFLINT_VERSION-$go_version"
go_install "$tflint_dir" tflint "github.com/terraform-linters/tflint@$TFLINT_VERSION"

hclfmt_dir="$root/hclfmt-$HCL_VERSION-$go_version"
go_install "$hclfmt_dir" hclfmt "github.com/hashicorp/hcl/v2/cmd/hclfmt@$HCL_VERSION"

# The project's AWS ruleset plugin, keyed by its sources.
plugin_src="$here/tflint-ruleset-movieapp"
plugin_key=$(cd "$plugin_src" && hash_of go.mod go.sum $(find . -name '*.go' | LC_ALL=C sort) <(echo "$go_version $TFLINT_AWS_RULESET_VERSION"))
plugin_dir="$root/tflint-plugins-$plugin_key"
if [ ! -x "$plugin_dir/tflint-ruleset-movieapp" ]; then
  log "building the tflint AWS ruleset plugin (tflint-ruleset-movieapp)"
  tmp=$(mktemp -d "$root/.build.XXXXXX")
  (cd "$plugin_src" && go build -buildvcs=false -trimpath -ldflags "-s -w" -o "$tmp/tflint-ruleset-movieapp" .) >&2
  if [ -n "$TFLINT_AWS_RULESET_VERSION" ]; then
    GOBIN="$tmp" go install -trimpath "github.com/terraform-linters/tflint-ruleset-aws@$TFLINT_AWS_RULESET_VERSION" >&2
  fi
  rm -rf "$plugin_dir"
  mv "$tmp" "$plugin_dir"
fi

# venv_install NAME REQUIREMENTS_FILE: a venv per pinned requirement set.
venv_install() {
  local dir=$1 req=$2
  [ -f "$dir/.complete" ] && return 0
  log "installing $(basename "$dir") from PyPI (first time only)"
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir/venv"
  "$dir/venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$req" >&2
  touch "$dir/.complete"
}

checkov_req="$here/requirements-checkov.txt"
checkov_dir="$root/checkov-$CHECKOV_VERSION-py$py_version-$(hash_of "$checkov_req")"
grep -qx "checkov==$CHECKOV_VERSION" "$checkov_req" || { echo "install-tools.sh: $checkov_req does not pin checkov==$CHECKOV_VERSION" >&2; exit 1; }
venv_install "$checkov_dir" "$checkov_req"

# python-hcl2 gets its own venv: checkov depends on bc-python-hcl2, a fork
# that installs the same `hcl2` package, so the two cannot share one venv.
hcl2_req="$here/requirements-invariants.txt"
hcl2_dir="$root/hcl2-$PYTHON_HCL2_VERSION-py$py_version-$(hash_of "$hcl2_req")"
grep -qx "python-hcl2==$PYTHON_HCL2_VERSION" "$hcl2_req" || { echo "install-tools.sh: $hcl2_req does not pin python-hcl2==$PYTHON_HCL2_VERSION" >&2; exit 1; }
venv_install "$hcl2_dir" "$hcl2_req"

# parliament lints the rendered IAM policies (make iam-policies).
parliament_req="$here/requirements-parliament.txt"
parliament_dir="$root/parliament-$PARLIAMENT_VERSION-py$py_version-$(hash_of "$parliament_req")"
grep -qx "parliament==$PARLIAMENT_VERSION" "$parliament_req" || { echo "install-tools.sh: $parliament_req does not pin parliament==$PARLIAMENT_VERSION" >&2; exit 1; }
venv_install "$parliament_dir" "$parliament_req"

cat <<EOF
export TFLINT='$tflint_dir/tflint'
export TFLINT_PLUGIN_DIR='$plugin_dir'
export HCLFMT='$hclfmt_dir/hclfmt'
export CHECKOV='$checkov_dir/venv/bin/checkov'
export INVARIANTS_PYTHON='$hcl2_dir/venv/bin/python'
export PARLIAMENT='$parliament_dir/venv/bin/parliament'
export TF_TOOLS_VERSIONS='tflint $TFLINT_VERSION (plugin sdk $TFLINT_PLUGIN_SDK_VERSION), hclfmt $HCL_VERSION, checkov $CHECKOV_VERSION, python-hcl2 $PYTHON_HCL2_VERSION, parliament $PARLIAMENT_VERSION'
EOF
