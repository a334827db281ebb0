#!/usr/bin/env bash
# The Dockerfile's build, without a container engine: builds the release
# binaries with the very `cargo build` line of the Dockerfile's builder stage,
# in a copy of the Docker build context (.dockerignore applied), then checks
# that the binaries fit the distroless runtime stage and behave.
#
# Exit status non-zero on any failure; the last line is "N passed, F failed".
# Uses CARGO_TARGET_DIR (as the Makefile sets it) so dependencies are shared.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
cache_root=${MOVIEAPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/movieapp}
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  CARGO_TARGET_DIR="$cache_root/target-$(rustc -vV | sha256sum | cut -c1-12)"
  export CARGO_TARGET_DIR
fi

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "ok   - $*"; }
fail() { failed=$((failed + 1)); echo "FAIL - $*"; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; }

build_line='cargo build --release --locked -p movieapp-operator -p api-worker'
if grep -qF "RUN $build_line" Dockerfile; then
  pass "the Dockerfile builds with: $build_line"
else
  fail "the Dockerfile no longer runs '$build_line'; update this script and the Dockerfile together"
  finish
fi
if grep -qF "cargo chef cook --release --locked -p movieapp-operator -p api-worker" Dockerfile; then
  pass "the dependency layer (cargo chef cook) builds the same packages and profile"
else
  fail "cargo chef cook and cargo build differ in packages or profile: the dependency layer would not be reused"
fi

context="$cache_root/delivery-docker-context"
python3 tests/delivery/docker_context.py sync "$context"
for must in Cargo.toml Cargo.lock operator/src/main.rs api-worker/src/main.rs; do
  [ -f "$context/$must" ] || fail ".dockerignore leaves out $must"
done
for mustnot in .git .localenv target terraform charts; do
  [ ! -e "$context/$mustnot" ] || fail ".dockerignore lets $mustnot into the build context"
done
pass "the build context holds the workspace and none of .git, .localenv, target, terraform, charts ($(python3 tests/delivery/docker_context.py list | wc -l) files)"

echo ">> $build_line   (in $context)"
started=$SECONDS
if (cd "$context" && $build_line); then
  pass "release build from the Docker context ($((SECONDS - started)) s)"
else
  fail "release build from the Docker context"
  finish
fi

operator="$CARGO_TARGET_DIR/release/movieapp-operator"
worker="$CARGO_TARGET_DIR/release/api-worker"

# distroless/cc-debian12 has glibc 2.36 (libc, libm, libpthread, libdl, librt,
# ld-linux), libgcc_s and libstdc++, and nothing else: no OpenSSL.
allowed='^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libgcc_s\.so\.1|libstdc\+\+\.so\.6|ld-linux-(x86-64|aarch64)\.so\.[12])$'
for bin in "$operator" "$worker"; do
  name=$(basename "$bin")
  needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  extra=$(echo "$needed" | grep -Ev "$allowed" || true)
  if [ -z "$extra" ]; then
    pass "$name links only libraries distroless/cc provides: $(echo "$needed" | tr '\n' ' ')"
  else
    fail "$name needs libraries the runtime image lacks: $extra"
  fi
  glibc=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)
  if [ "$(printf '%s\nGLIBC_2.36\n' "$glibc" | sort -V | tail -n 1)" = "GLIBC_2.36" ]; then
    pass "$name needs at most glibc ${glibc#GLIBC_} (debian12 has 2.36)"
  else
    fail "$name needs $glibc, newer than debian12's 2.36: build it in the Dockerfile's bookworm image"
  fi
done

if "$operator" --version | grep -q '^movieapp-operator '; then
  pass "movieapp-operator --version: $("$operator" --version)"
else
  fail "movieapp-operator --version"
fi
if diff -q <(grep -v '^#' crds/movieapp.io_movieapps.yaml) <("$operator" crd) >/dev/null; then
  pass "the release binary prints the CRD checked into crds/"
else
  fail "movieapp-operator crd differs from crds/movieapp.io_movieapps.yaml"
fi
if "$operator" run --help | grep -q -- '--leader-elect'; then
  pass "movieapp-operator run (the image's CMD) accepts the chart's settings"
else
  fail "movieapp-operator run --help"
fi
help=$("$worker" --help)
if grep -qw serve <<<"$help" && grep -qw worker <<<"$help"; then
  pass "api-worker has the subcommands the operator's Deployment passes: serve, worker"
else
  fail "api-worker --help does not list serve and worker"
fi

finish
