#!/usr/bin/env bash
# The Lambda functions as a user runs them locally: `cargo lambda watch`
# (cargo-lambda's emulator of the Lambda Runtime API, running the
# api-worker-lambda binary) and `cargo lambda invoke` with the API Gateway and
# SQS event fixtures of api-worker/tests/fixtures/lambda/, against moto and
# the TMDB stub of the local environment (. .localenv/env.sh).
#
#   bash api-worker/lambda/cargo-lambda-invoke.sh [--require]
#
# cargo-lambda is not needed by anything else and takes long to build, so
# without it this prints how to install it and exits 0; --require makes that
# a failure. Install (about 40 minutes on 2 cores, once):
#   CARGO_INSTALL_ROOT=$MOVIEAPP_CACHE/cargo-lambda cargo install cargo-lambda@1.9.2 --locked
# The last line is `cargo lambda: N passed, M failed` (or `... skipped`).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/../tests/support.sh
. "$here/../tests/support.sh"
cd "$aw_root"

require=false
[ "${1:-}" = --require ] && require=true

PATH=$MOVIEAPP_CACHE/cargo-lambda/bin:$PATH
if ! command -v cargo-lambda >/dev/null 2>&1; then
  echo "cargo-lambda is not installed; install it with:"
  echo "  CARGO_INSTALL_ROOT=$MOVIEAPP_CACHE/cargo-lambda cargo install cargo-lambda@1.9.2 --locked"
  $require && { echo "cargo lambda: 0 passed, 1 failed"; exit 1; }
  echo "cargo lambda: skipped"
  exit 0
fi
aw_require_env
cargo lambda --version

fixtures=api-worker/tests/fixtures/lambda
state=$(mktemp -d)
watch_pid=
cleanup() {
  local rc=$?
  if [ -n "$watch_pid" ] && kill -0 "$watch_pid" 2>/dev/null; then
    kill "$watch_pid" 2>/dev/null || true
    wait "$watch_pid" 2>/dev/null || true
  fi
  if [ -f "$state/resources.json" ]; then
    "$CARGO_TARGET_DIR/debug/examples/local_resources" delete "$state/resources.json" || true
  fi
  rm -rf "$state"
  return $rc
}
trap cleanup EXIT

aw_log "creating the functions' tables, queue and topic in moto"
cargo build -q -p api-worker --example local_resources
"$CARGO_TARGET_DIR/debug/examples/local_resources" create cargo-lambda "$state/resources.json" >"$state/exports.sh"
mkdir -p "$AW_ARTIFACTS"

# watch HANDLER: `cargo lambda watch` with the function's environment, as
# Lambda would give it (_HANDLER is the function's handler setting).
watch() {
  local handler=$1 port
  port=$(aw_free_port)
  {
    sed "s/^export //; s/'//g" "$state/exports.sh"
    echo "_HANDLER=$handler"
    echo "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL"
    echo "TMDB_BASE_URL=$TMDB_BASE_URL"
    echo "TMDB_API_KEY=$TMDB_API_KEY"
    # Hex: cargo-lambda's env-file parser refuses base64 padding.
    echo "MOVIEAPP_TOKEN_SIGNING_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    echo "LOG_FORMAT=text"
  } >"$state/$handler.env"
  cargo lambda watch -p api-worker --features lambda --bin api-worker-lambda \
    --env-file "$state/$handler.env" -A 127.0.0.1 -P "$port" --ignore-changes \
    >"$AW_ARTIFACTS/cargo-lambda-$handler.log" 2>&1 &
  watch_pid=$!
  WATCH_PORT=$port
  local _
  for _ in $(seq 1 100); do
    grep -q 'starting Runtime server' "$AW_ARTIFACTS/cargo-lambda-$handler.log" && return 0
    kill -0 "$watch_pid" 2>/dev/null || break
    sleep 0.2
  done
  cat "$AW_ARTIFACTS/cargo-lambda-$handler.log" >&2
  aw_die "cargo lambda watch did not start"
}

unwatch() {
  kill "$watch_pid" 2>/dev/null || true
  wait "$watch_pid" 2>/dev/null || true
  watch_pid=
}

passed=0
failed=0
# invoke NAME EVENT_FILE PYTHON_CHECK: the check reads the response as `r`.
invoke() {
  local name=$1 event=$2 check=$3 out
  if out=$(cargo lambda invoke api-worker-lambda -A 127.0.0.1 -P "$WATCH_PORT" --data-file "$event" -o json 2>&1) &&
    python3 -c "import json, sys; r = json.loads(sys.argv[1]); assert $check, r" "$out" 2>/dev/null; then
    passed=$((passed + 1))
    echo "PASS $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name"
    printf '%s\n' "$out" | head -n 20 | sed 's/^/    /'
  fi
}

aw_log "HTTP function (_HANDLER=http)"
watch http
invoke "GET /api/v1/movies/550 (API Gateway v2 event) answers 200 with the movie" \
  "$fixtures/get-movie-details.json" \
  'r["statusCode"] == 200 and json.loads(r["body"])["title"] == "Fight Club"'
invoke "POST /api/v1/auth/signup with a base64 body answers 201 with a token" \
  "$fixtures/post-signup-base64.json" \
  'r["statusCode"] == 201 and json.loads(r["body"])["tokenType"] == "Bearer"'
invoke "GET / answers the web page as text" \
  "$fixtures/get-web-page.json" \
  'r["statusCode"] == 200 and r["headers"]["content-type"].startswith("text/html") and not r["isBase64Encoded"]'
unwatch

aw_log "jobs function (_HANDLER=jobs)"
python3 - "$fixtures/sqs-event.json" "$state/sqs-batch.json" <<'EOF'
import json, sys
event = json.load(open(sys.argv[1]))
good, poison = event["Records"]
good["body"] = '{"type":"warm-popular","pages":1}'
poison["body"] = "this is not a job"
json.dump(event, open(sys.argv[2], "w"))
EOF
watch jobs
invoke "SQS batch: only the poison message is in batchItemFailures" \
  "$state/sqs-batch.json" \
  'r == {"batchItemFailures": [{"itemIdentifier": "2e1424d4-f796-459a-8184-9c92662be6da"}]}'
unwatch

echo "cargo lambda: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
