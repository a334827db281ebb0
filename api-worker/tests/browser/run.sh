#!/usr/bin/env bash
# The web page in a real browser (Debian's headless Chromium driven by
# playwright-core): search, open a movie, sign up, add it to the watchlist.
# Screenshots are kept under .localenv/artifacts/. Needs `make env-up` and
# `. .localenv/env.sh`; installs Chromium and playwright-core when missing.
# With APP_URL set, tests the page served there instead of starting an
# api-worker.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../support.sh
. "$here/../support.sh"
aw_require_env

chromium=${CHROMIUM:-$(command -v chromium || true)}
if [ -z "$chromium" ]; then
  aw_log "installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
  chromium=$(command -v chromium) || aw_die "chromium did not install"
fi

# node_modules live in the cache, keyed by the lock file, installed once.
modules="$MOVIEAPP_CACHE/browser-test-$(sha256sum "$here/package-lock.json" | cut -c1-12)"
if [ ! -d "$modules/node_modules/playwright-core" ]; then
  aw_log "installing playwright-core into $modules"
  rm -rf "$modules" && mkdir -p "$modules"
  cp "$here/package.json" "$here/package-lock.json" "$modules/"
  (cd "$modules" && npm ci --no-audit --no-fund --loglevel=error)
fi

# APP_URL: a page already served (the real node's Pods through a
# port-forward, tests/localenv/real-node-test.sh); else an api-worker here.
if [ -n "${APP_URL:-}" ]; then
  mkdir -p "$AW_ARTIFACTS"
  AW_URL=$APP_URL
else
  aw_start debug browser
fi
rm -f "$AW_ARTIFACTS"/browser-*.png
NODE_PATH="$modules/node_modules" CHROMIUM="$chromium" APP_URL="$AW_URL" ARTIFACTS="$AW_ARTIFACTS" \
  node "$here/webpage.test.mjs"
[ -n "${APP_URL:-}" ] || aw_stop
