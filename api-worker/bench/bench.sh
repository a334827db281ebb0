#!/usr/bin/env bash
# api-worker benchmark (issue: cached GET /api/v1/movies/{id} at 64
# connections vs. a plain route of the same server as the ceiling vs. an
# uncached request that goes to the TMDB stub; idle memory).
#
# Needs `make env-up` and `. .localenv/env.sh`. Installs wrk (Debian) if
# missing, builds the release binary and runs it against moto and the stub.
# Prints a Markdown report and writes it to $BENCH_REPORT (default
# .localenv/artifacts/api-worker-bench.md).
#   BENCH_DURATION=10s  BENCH_CONNECTIONS=64  BENCH_RUNS=3 (each figure is the
#   median of that many runs)  BENCH_STRICT=1 (exit 1 on a missed target)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../tests/support.sh
. "$here/../tests/support.sh"
aw_require_env

duration=${BENCH_DURATION:-10s}
runs=${BENCH_RUNS:-3}
connections=${BENCH_CONNECTIONS:-64}
report=${BENCH_REPORT:-$AW_ARTIFACTS/api-worker-bench.md}

if ! command -v wrk >/dev/null; then
  aw_log "installing wrk"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
fi

# The client-side TMDB limits (35/s by default, under TMDB's, and a share
# per client address) would make the uncached run measure our own pacing;
# lift them so it measures the path.
# Access logs of successful requests are at debug level, so not written.
aw_start release bench --tmdb-requests-per-second=1000 --tmdb-client-burst=100000000

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$AW_PID/status"; }
sleep 1
idle_start_kib=$(rss_kib)

curl -sf "$AW_URL/api/v1/movies/550" >/dev/null   # fill the cache
threads=$(( $(nproc) > 1 ? 2 : 1 ))

# once NAME URL [wrk args...] → "rps p50_ms p99_ms non2xx" of one wrk run
once() {
  local name=$1 url=$2; shift 2
  local out
  out=$(wrk -t"$threads" -c"$connections" -d"$duration" --latency "$@" "$url")
  printf '%s\n' "$out" >>"$AW_ARTIFACTS/bench-$name.txt"
  awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec:/ { rps = $2 }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /Non-2xx or 3xx responses:/ { bad = $NF }
    END { printf "%.0f %.2f %.2f %d\n", rps, p50, p99, bad + 0 }' <<<"$out"
}

# run NAME URL [wrk args...] → the median of each column over $runs runs
run() {
  local name=$1; shift
  rm -f "$AW_ARTIFACTS/bench-$name.txt"
  local i
  for i in $(seq 1 "$runs"); do once "$name" "$@"; done | awk -v n="$runs" '
    { for (c = 1; c <= 4; c++) v[c, NR] = $c }
    END {
      for (c = 1; c <= 4; c++) {
        for (i = 1; i <= n; i++) col[i] = v[c, i]
        # insertion sort, then the middle value
        for (i = 2; i <= n; i++) { x = col[i]; j = i - 1; while (j > 0 && col[j] > x) { col[j + 1] = col[j]; j-- } col[j + 1] = x }
        m[c] = (n % 2) ? col[(n + 1) / 2] : (col[n / 2] + col[n / 2 + 1]) / 2
      }
      printf "%.0f %.2f %.2f %d\n", m[1], m[2], m[3], m[4]
    }'
}

aw_log "ceiling: GET /healthz"
read -r ceil_rps ceil_p50 ceil_p99 ceil_bad < <(run ceiling "$AW_URL/healthz")
aw_log "cached: GET /api/v1/movies/550"
read -r hit_rps hit_p50 hit_p99 hit_bad < <(run cached "$AW_URL/api/v1/movies/550")
aw_log "uncached: GET /api/v1/movies/search?query=<new each time> (TMDB stub)"
read -r miss_rps miss_p50 miss_p99 miss_bad < <(run uncached "$AW_URL" -s "$here/uncached.lua")
sleep 2
idle_after_kib=$(rss_kib)
aw_stop

ratio=$(awk -v a="$hit_rps" -v b="$ceil_rps" 'BEGIN { printf "%.0f", (b > 0 ? 100 * a / b : 0) }')
verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo MISSED; fi; }
ratio_ok=$(verdict "$ratio >= 70")
p99_ok=$(verdict "$hit_p99 <= 5")
mem_ok=$(verdict "$idle_start_kib <= 32768")

mkdir -p "$(dirname "$report")"
cat >"$report" <<MD
## api-worker

\`api-worker/bench/bench.sh\`: wrk, $connections connections, $threads threads, $duration per run, each figure
the median of $runs runs; one release build against moto and the TMDB stub, on $(nproc) cores ($(uname -m), $(date -u +%Y-%m-%d)).
The load generator shares the machine's cores with the server.

| request | requests/s | p50 ms | p99 ms | non-2xx |
|---|---:|---:|---:|---:|
| ceiling: \`GET /healthz\` | $ceil_rps | $ceil_p50 | $ceil_p99 | $ceil_bad |
| cached: \`GET /api/v1/movies/550\` | $hit_rps | $hit_p50 | $hit_p99 | $hit_bad |
| uncached: \`GET /api/v1/movies/search?query=<new>\` (→ TMDB stub) | $miss_rps | $miss_p50 | $miss_p99 | $miss_bad |

| target | measured | |
|---|---|---|
| cached ≥ 70 % of the ceiling | $ratio % | $ratio_ok |
| cached p99 ≤ 5 ms | $hit_p99 ms | $p99_ok |
| idle memory ≤ 32 MiB | $((idle_start_kib / 1024)) MiB at start, $((idle_after_kib / 1024)) MiB idle after the runs | $mem_ok |

The uncached row is bound by the single-threaded Python stub, not by the
worker; it runs with the client-side TMDB rate limit lifted
(\`--tmdb-requests-per-second=1000\`).
MD
cat "$report"
aw_log "report written to $report; raw wrk output in $AW_ARTIFACTS/bench-*.txt"
if [ "${BENCH_STRICT:-0}" = 1 ] && grep -q MISSED "$report"; then
  aw_die "a benchmark target was missed"
fi
