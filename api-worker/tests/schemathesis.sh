#!/usr/bin/env bash
# Property-based API test: schemathesis generates requests from /openapi.json
# of a running `api-worker serve` (against moto and the TMDB stub) and fails
# on any 5xx or any response the document does not describe (status, content
# type, headers, body schema). Needs `make env-up` and `. .localenv/env.sh`;
# installs schemathesis into a cached venv. Reports in .localenv/artifacts/.
#   MAX_EXAMPLES=N   test cases per operation (default 100)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=support.sh
. "$here/support.sh"
aw_require_env

version=4.32.5
venv="$MOVIEAPP_CACHE/schemathesis-$version"
if [ ! -x "$venv/bin/schemathesis" ]; then
  aw_log "installing schemathesis $version into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$version"
fi

# OWASP's cheapest argon2id setting (7 MiB, 5 iterations; lower is refused)
# keeps hundreds of generated sign-ups fast; the code path is the same.
# The per-client limits are lifted so generated requests reach the handlers
# (their 429 answers are documented and checked all the same).
aw_start debug schemathesis --argon2-memory-kib=7168 --argon2-iterations=5 --login-address-burst=1000 \
  --signup-address-burst=100000 --tmdb-client-burst=100000

# Authenticated operations run as a real user (one with a watchlist entry).
credentials='{"email":"fuzz@example.com","password":"fuzzing password 1"}'
curl -sf -X POST "$AW_URL/api/v1/auth/signup" -H 'content-type: application/json' -d "$credentials" >/dev/null
token=$(curl -sf -X POST "$AW_URL/api/v1/auth/login" -H 'content-type: application/json' -d "$credentials" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
curl -sf -X PUT "$AW_URL/api/v1/me/watchlist/550" -H "authorization: Bearer $token" >/dev/null

report="$AW_ARTIFACTS/schemathesis"
rm -rf "$report"
status=0
# schemathesis keeps its example database in the working directory.
mkdir -p "$report" && cd "$report"
"$venv/bin/schemathesis" run "$AW_URL/openapi.json" \
  --url "$AW_URL" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "${MAX_EXAMPLES:-100}" \
  --header "Authorization: Bearer $token" \
  --request-timeout 15 \
  --seed 42 \
  --report junit --report-dir "$report" \
  --no-color || status=$?
aw_stop
[ "$status" = 0 ] || aw_die "schemathesis found problems (exit $status); see above and $report"
aw_log "schemathesis: no server errors, every response matches /openapi.json"
