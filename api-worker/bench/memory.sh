#!/usr/bin/env bash
# api-worker memory under attacker-chosen load (part of `make bench`): one
# release `api-worker serve` against moto and its own TMDB stub, whose
# catalogue has 600 movies with long overviews and whose every search
# answers a full page (about 15 KB, as TMDB's do). It serves MEMORY_SEARCHES
# (20,000) distinct searches, each a cache miss that is kept, then one user
# fills a watchlist to the cap (500) and is refused the next movie, and the
# whole list is read in pages. The worker's VmRSS must stay under
# MEMORY_BOUND_MIB (192, under the Pod limit of 256 MiB): the byte-bounded memory cache (64 MiB) plus the
# process's own. Prints a Markdown section; writes it to $BENCH_REPORT
# (default .localenv/artifacts/api-worker-memory.md); exits 1 over the bound.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../tests/support.sh
. "$here/../tests/support.sh"
aw_require_env

searches=${MEMORY_SEARCHES:-20000}
bound_mib=${MEMORY_BOUND_MIB:-192}
cap=500
first_id=100000
report=${BENCH_REPORT:-$AW_ARTIFACTS/api-worker-memory.md}
mkdir -p "$AW_ARTIFACTS"

# The stub of the local environment is shared; this one is ours.
stub_dir=$(mktemp -d)
python3 - "$aw_root/tests/tmdb-stub/fixtures/movies.json" "$stub_dir/movies.json" "$first_id" "$cap" <<'PY'
import json, sys
source, target, first, cap = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
base = json.load(open(source))
movies = []
for n in range(cap + 100):
    movie = dict(base[n % len(base)])
    movie["id"] = first + n
    movie["title"] = f"{movie['title']} ({n})"
    movies.append(movie)
json.dump(movies, open(target, "w"))
PY
stub_port=$(aw_free_port)
python3 "$aw_root/tests/tmdb-stub/tmdb_stub.py" --port "$stub_port" --api-key "$TMDB_API_KEY" \
  --fixtures "$stub_dir/movies.json" --quiet 2>"$AW_ARTIFACTS/memory-stub.log" &
stub_pid=$!
stop_stub() { kill "$stub_pid" 2>/dev/null || true; wait "$stub_pid" 2>/dev/null || true; rm -rf "$stub_dir"; }
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$stub_port/healthz" >/dev/null && break; sleep 0.2; done
curl -sf -X PUT -H 'content-type: application/json' "http://127.0.0.1:$stub_port/__control" \
  -d '{"search_matches_all": true, "overview_pad_bytes": 400}' >/dev/null
export TMDB_BASE_URL="http://127.0.0.1:$stub_port"

# Lift the TMDB pacing (the point is what is kept, not how fast it comes);
# the sign-up and login limits stay as they are.
aw_start release memory --tmdb-requests-per-second=1000 --tmdb-client-burst=100000000 \
  --watchlist-max-entries="$cap"
trap 'aw_cleanup; stop_stub' EXIT
page_bytes=$(curl -s "$AW_URL/api/v1/movies/search?query=size-probe" | wc -c)

started=$SECONDS
result=$(python3 "$here/memory.py" "$AW_URL" "$AW_PID" "$searches" "$cap" "$first_id")
elapsed=$((SECONDS - started))
aw_stop

field() { python3 -c 'import json, sys; v = json.loads(sys.argv[1]); [v := v[k] for k in sys.argv[2:]]; print(v)' "$result" "$@"; }
mib() { echo $(( $1 / 1024 )); }
before=$(field rss_before_kib); after_searches=$(field rss_after_searches_kib)
after=$(field rss_after_kib); peak=$(field peak_kib)
verdict=met
[ "$peak" -le $((bound_mib * 1024)) ] || verdict=MISSED
searched=$(field search_statuses)
added=$(field watchlist_add_statuses)
listed=$(field watchlist_listed)

cat >"$report" <<MD
### Memory under attacker-chosen load

\`api-worker/bench/memory.sh\`: one release build against moto and its own TMDB stub
($(nproc) cores, $(date -u +%Y-%m-%d), ${elapsed}s). $searches distinct searches (each a
${page_bytes}-byte answer the worker keeps), then one user adds $((cap + 1)) movies to a
watchlist capped at $cap and reads it in pages of 100.

| | VmRSS |
|---|---:|
| at start | $(mib "$before") MiB |
| after $searches distinct searches | $(mib "$after_searches") MiB |
| after the watchlist at the cap | $(mib "$after") MiB |
| peak (VmHWM) | $(mib "$peak") MiB |
| bound | $bound_mib MiB ($verdict) |

Search answers by status: \`$searched\`; watchlist adds by status: \`$added\`
($cap created, the one past the cap refused with 409); $listed entries listed.
The cache holds at most \`--cache-memory-mib\` (64) of answers, so the
searches past that evict older ones instead of growing the process.
MD
cat "$report"
if [ "$verdict" != met ]; then
  aw_die "VmRSS peaked at $(mib "$peak") MiB, over the bound of $bound_mib MiB"
fi
python3 - "$result" "$cap" <<'PY' || aw_die "the watchlist was not held at its cap"
import json, sys
r, cap = json.loads(sys.argv[1]), int(sys.argv[2])
adds = r["watchlist_add_statuses"]
sys.exit(0 if adds.get("201") == cap and adds.get("409") == 1 and r["watchlist_listed"] == cap else 1)
PY
