# Shared by the scripts that run a real `api-worker serve` against the local
# environment (browser test, schemathesis, benchmark). Source it, then
# `aw_start debug|release NAME`; everything started is stopped on exit.
# shellcheck shell=bash

aw_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MOVIEAPP_CACHE=${MOVIEAPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/movieapp}
export MOVIEAPP_CACHE
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$MOVIEAPP_CACHE/target-$(rustc -vV | sha256sum | cut -c1-12)}
AW_ARTIFACTS="$aw_root/.localenv/artifacts"

aw_log() { printf '>> %s\n' "$*" >&2; }
aw_die() { printf 'api-worker tests: %s\n' "$*" >&2; exit 1; }

aw_require_env() {
  local v
  for v in AWS_ENDPOINT_URL AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY TMDB_BASE_URL TMDB_API_KEY; do
    [ -n "${!v:-}" ] || aw_die "$v is not set: run \`make env-up && . .localenv/env.sh\` first (or \`make test\`)"
  done
  # A dead component fails here with its log, not later as a time-out
  # (0: healthy; 2: only a process of make demo beside the components is not).
  local report rc=0
  report=$(bash "$aw_root/tests/localenv/localenv.sh" status 2>&1) || rc=$?
  [ "$rc" -eq 0 ] || [ "$rc" -eq 2 ] || aw_die "the local environment is not healthy (make env-status):
$report"
}

aw_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

AW_PID=
AW_STATE_DIR=
aw_cleanup() {
  local rc=$?
  if [ -n "$AW_PID" ] && kill -0 "$AW_PID" 2>/dev/null; then
    kill -TERM "$AW_PID" 2>/dev/null || true
    wait "$AW_PID" 2>/dev/null || true
  fi
  if [ -n "$AW_STATE_DIR" ] && [ -f "$AW_STATE_DIR/resources.json" ]; then
    "$AW_EXAMPLE" delete "$AW_STATE_DIR/resources.json" || true
  fi
  [ -n "$AW_STATE_DIR" ] && rm -rf "$AW_STATE_DIR"
  return $rc
}

# aw_start PROFILE NAME [extra serve flags...]: builds, creates this run's
# tables, queue and topic, starts `api-worker serve` on a free port and waits
# for /readyz. Sets AW_URL, AW_ADMIN_URL (/metrics) and AW_PID; logs go to $AW_ARTIFACTS/NAME-server.log.
aw_start() {
  local profile=$1 name=$2; shift 2
  aw_require_env
  mkdir -p "$AW_ARTIFACTS"
  local flag=()
  [ "$profile" = release ] && flag=(--release)
  aw_log "building api-worker ($profile)"
  (cd "$aw_root" && cargo build -q -p api-worker --bin api-worker "${flag[@]}" && cargo build -q -p api-worker --example local_resources)
  AW_BIN="$CARGO_TARGET_DIR/$profile/api-worker"
  AW_EXAMPLE="$CARGO_TARGET_DIR/debug/examples/local_resources"
  AW_STATE_DIR=$(mktemp -d)
  trap aw_cleanup EXIT
  aw_log "creating the worker's tables, queue and topic in moto"
  "$AW_EXAMPLE" create "$name" "$AW_STATE_DIR/resources.json" >"$AW_STATE_DIR/env.sh"
  # shellcheck source=/dev/null
  . "$AW_STATE_DIR/env.sh"
  local port; port=$(aw_free_port)
  export PORT=$port LISTEN_ADDR=127.0.0.1 LOG_FORMAT=json
  AW_ADMIN_URL="http://127.0.0.1:$(aw_free_port)"
  export ADMIN_ADDR=${AW_ADMIN_URL#http://}
  MOVIEAPP_TOKEN_SIGNING_KEY=$(head -c 32 /dev/urandom | base64)
  export MOVIEAPP_TOKEN_SIGNING_KEY
  # Posters cannot load offline; the page falls back to a titled placeholder.
  "$AW_BIN" serve "$@" >"$AW_ARTIFACTS/$name-server.log" 2>&1 &
  AW_PID=$!
  AW_URL="http://127.0.0.1:$port"
  local i
  for i in $(seq 1 100); do
    if curl -sf --max-time 2 "$AW_URL/readyz" >/dev/null; then
      aw_log "api-worker serving at $AW_URL (pid $AW_PID)"
      return 0
    fi
    kill -0 "$AW_PID" 2>/dev/null || { cat "$AW_ARTIFACTS/$name-server.log" >&2; aw_die "api-worker exited at start-up"; }
    sleep 0.2
  done
  aw_die "api-worker did not become ready at $AW_URL"
}

# aw_stop: SIGTERM and a clean exit within the grace period, which checks
# the graceful shutdown as a side effect.
aw_stop() {
  [ -n "$AW_PID" ] || return 0
  kill -TERM "$AW_PID"
  local rc=0
  wait "$AW_PID" || rc=$?
  AW_PID=
  [ "$rc" = 0 ] || aw_die "api-worker exited with status $rc after SIGTERM"
  aw_log "api-worker stopped cleanly on SIGTERM"
}
