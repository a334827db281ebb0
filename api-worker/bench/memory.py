#!/usr/bin/env python3
"""Memory an attacker controls: drives a running api-worker with distinct
searches and one user's watchlist at the cap, then reports its VmRSS.

Usage: memory.py URL PID SEARCHES WATCHLIST_CAP FIRST_MOVIE_ID
Prints one line of JSON: RSS before and after, peak (VmHWM), statuses.
"""
from __future__ import annotations

import http.client
import json
import sys
import threading
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


class Client:
    """One keep-alive connection per thread."""

    local = threading.local()

    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port = parsed.hostname, parsed.port

    def request(self, method: str, path: str, body: dict | None = None, token: str | None = None) -> tuple[int, bytes]:
        headers = {"content-type": "application/json"} if body is not None else {}
        if token:
            headers["authorization"] = f"Bearer {token}"
        for attempt in (1, 2):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                conn.request(method, path, json.dumps(body) if body is not None else None, headers)
                answer = conn.getresponse()
                return answer.status, answer.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def main() -> int:
    url, pid, searches, cap, first_id = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    client = Client(url)
    before = rss_kib(pid)

    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def search(i: int) -> None:
        status, _ = client.request("GET", f"/api/v1/movies/search?query=distinct-{i:06d}")
        with lock:
            statuses[status] += 1

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(search, range(searches)))
    after_searches = rss_kib(pid)

    email = "memory-bench@example.com"
    password = "memory bench passphrase 7"
    status, body = client.request("POST", "/api/v1/auth/signup", {"email": email, "password": password})
    if status != 202:
        raise SystemExit(f"sign-up answered {status}: {body[:300]!r}")
    status, body = client.request("POST", "/api/v1/auth/login", {"email": email, "password": password})
    if status != 200:
        raise SystemExit(f"login answered {status}: {body[:300]!r}")
    token = json.loads(body)["token"]

    adds: Counter[int] = Counter()

    def add(movie_id: int) -> None:
        status, _ = client.request("PUT", f"/api/v1/me/watchlist/{movie_id}", token=token)
        with lock:
            adds[status] += 1

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(add, range(first_id, first_id + cap + 1)))

    listed, cursor = 0, None
    while True:
        query = "?limit=100" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
        status, body = client.request("GET", f"/api/v1/me/watchlist{query}", token=token)
        if status != 200:
            raise SystemExit(f"watchlist page answered {status}: {body[:300]!r}")
        page = json.loads(body)
        listed += len(page["items"])
        cursor = page.get("nextCursor")
        if not cursor:
            break

    print(json.dumps({
        "rss_before_kib": before,
        "rss_after_searches_kib": after_searches,
        "rss_after_kib": rss_kib(pid),
        "peak_kib": rss_kib(pid, "VmHWM"),
        "search_statuses": {str(k): v for k, v in sorted(statuses.items())},
        "watchlist_add_statuses": {str(k): v for k, v in sorted(adds.items())},
        "watchlist_listed": listed,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
