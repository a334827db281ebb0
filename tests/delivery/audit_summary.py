#!/usr/bin/env python3
"""Summarises the Kubernetes audit events (JSON lines on stdin) of one user,
$AUDIT_USER, counting only requests made with that identity's own
credentials (not impersonated ones).

    audit_summary.py --report          one line per distinct request kind with
                                       its response codes; exit 1 if any was
                                       denied (403)
    audit_summary.py --expect "VERB GROUP/RESOURCE[/SUBRESOURCE]"
                                       exit 0 if such a request was made
                                       (GROUP is "core" for the core API group)
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict


def requests(user: str):
    seen = set()
    # Read everything first: stopping early would cut the writer's pipe.
    for line in sys.stdin.read().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by the log's tail, or being written
        if event.get("user", {}).get("username") != user or event.get("impersonatedUser"):
            continue
        if event.get("auditID") in seen:
            continue
        ref = event.get("objectRef")
        if not ref:
            continue
        seen.add(event.get("auditID"))
        kind = f"{ref.get('apiGroup') or 'core'}/{ref.get('resource')}"
        if ref.get("subresource"):
            kind += f"/{ref['subresource']}"
        code = event.get("responseStatus", {}).get("code", 0)
        yield f"{event.get('verb')} {kind}", code, event


def main(argv: list[str]) -> int:
    user = os.environ["AUDIT_USER"]
    if len(argv) == 3 and argv[1] == "--expect":
        return 0 if any(request == argv[2] for request, _, _ in requests(user)) else 1
    if len(argv) == 2 and argv[1] == "--report":
        codes: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        denied = []
        total = 0
        for request, code, event in requests(user):
            total += 1
            codes[request][code] += 1
            if code == 403:
                ref = event["objectRef"]
                denied.append(f"{request} namespace={ref.get('namespace')} name={ref.get('name')}")
        print(f"{total} requests of {len(codes)} kinds")
        for request in sorted(codes):
            summary = ", ".join(f"{code}×{count}" for code, count in sorted(codes[request].items()))
            print(f"{request:48} {summary}")
        for line in denied:
            print(f"DENIED {line}")
        return 1 if denied else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
