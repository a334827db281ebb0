"""An HTTP proxy in front of moto that injects AWS faults, for reliability
tests: throttling and 5xx answers, requests that hang past the client's
time-out, and connections reset mid-request, each at a given ratio; and
AccessDenied for chosen operations, each error in the shape of the service's
protocol. Every request is counted by operation, so tests can tell how much
work reached AWS.

    aws_fault_proxy.py --port N --upstream http://127.0.0.1:27306

Control (not forwarded): `PUT /__faults` with a JSON object of any of
`throttle_ratio`, `error_ratio`, `hang_ratio`, `reset_ratio` (0..1, adding up
to at most 1), `hang_seconds` (how long a hung request is held before the
connection is closed unanswered) and `deny` (operation names, e.g.
["CreateTable"]); `GET /__faults` returns the settings and counters.
Listens on 127.0.0.1 only; prints one line once it accepts connections.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Faults:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ratios = {kind: 0.0 for kind in RATIOS}
        self.hang_seconds = 15.0
        self.deny: set[str] = set()
        self.counters: dict = {kind: 0 for kind in ("forwarded", "denied", *RATIOS.values())}
        self.counters["operations"] = {}
        self.counters["succeeded"] = {}

    def snapshot(self) -> dict:
        with self.lock:
            counters = {k: dict(v) if isinstance(v, dict) else v for k, v in self.counters.items()}
            return {**self.ratios, "hang_seconds": self.hang_seconds, "deny": sorted(self.deny), "counters": counters}

    def update(self, body: dict) -> None:
        unknown = set(body) - {*RATIOS, "hang_seconds", "deny"}
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        ratios = dict(self.ratios)
        for key in RATIOS:
            if key in body:
                value = body[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                    raise ValueError(f"{key} must be a number from 0 to 1")
                ratios[key] = float(value)
        if sum(ratios.values()) > 1:
            raise ValueError("the fault ratios add up to more than 1")
        hang_seconds = body.get("hang_seconds", self.hang_seconds)
        if isinstance(hang_seconds, bool) or not isinstance(hang_seconds, (int, float)) or not 0 < hang_seconds <= 300:
            raise ValueError("hang_seconds must be a number of seconds from 0 to 300")
        deny = body.get("deny", sorted(self.deny))
        if not isinstance(deny, list) or not all(isinstance(o, str) for o in deny):
            raise ValueError("deny must be a list of operation names")
        with self.lock:
            self.ratios = ratios
            self.hang_seconds = float(hang_seconds)
            self.deny = set(deny)

    def decide(self, operation: str) -> str | None:
        with self.lock:
            operations = self.counters["operations"]
            operations[operation] = operations.get(operation, 0) + 1
            if operation in self.deny:
                self.counters["denied"] += 1
                return "denied"
            roll = random.random()
            for key, kind in RATIOS.items():
                if roll < self.ratios[key]:
                    self.counters[kind] += 1
                    return kind
                roll -= self.ratios[key]
            self.counters["forwarded"] += 1
            return None

    def answered(self, operation: str, status: int) -> None:
        if 200 <= status < 300:
            with self.lock:
                succeeded = self.counters["succeeded"]
                succeeded[operation] = succeeded.get(operation, 0) + 1


# Setting → the counter of the fault it injects.
RATIOS = {"throttle_ratio": "throttled", "error_ratio": "server_error", "hang_ratio": "hung", "reset_ratio": "reset"}


FAULTS = Faults()
UPSTREAM: urllib.parse.SplitResult


def operation_of(headers, body: bytes) -> tuple[str, str]:
    """(protocol, operation): JSON protocols name it in X-Amz-Target, the
    query protocol (SNS) in the form body's Action."""
    target = headers.get("X-Amz-Target")
    if target:
        return "json", target.rsplit(".", 1)[-1]
    action = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
    return "query", action


def fault_response(protocol: str, kind: str) -> tuple[int, dict[str, str], bytes]:
    code, status, message = {
        "throttled": ("ThrottlingException", 400, "Rate exceeded"),
        "server_error": ("ServiceUnavailable", 503, "Service unavailable (injected)"),
        "denied": ("AccessDeniedException", 400, "User is not authorized to perform this action (injected)"),
    }[kind]
    if protocol == "json":
        body = json.dumps({"__type": code, "message": message}).encode()
        return status, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": code}, body
    query_code = {"throttled": "Throttling", "server_error": "ServiceUnavailable", "denied": "AuthorizationError"}[kind]
    body = (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{query_code}</Code>"
        f"<Message>{message}</Message></Error><RequestId>injected</RequestId></ErrorResponse>"
    ).encode()
    return status, {"Content-Type": "text/xml"}, body


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # quiet
        pass

    def reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def control(self, body: bytes) -> None:
        if self.command == "PUT":
            try:
                settings = json.loads(body or b"{}")
                if not isinstance(settings, dict):
                    raise ValueError("the body must be a JSON object")
                FAULTS.update(settings)
            except (ValueError, json.JSONDecodeError) as error:
                self.reply(400, {"Content-Type": "application/json"}, json.dumps({"error": str(error)}).encode())
                return
        self.reply(200, {"Content-Type": "application/json"}, json.dumps(FAULTS.snapshot()).encode())

    def forward(self) -> None:
        body = self.body()
        if self.path.startswith("/__faults"):
            self.control(body)
            return
        protocol, operation = operation_of(self.headers, body)
        fault = FAULTS.decide(operation)
        if fault == "hung":
            # Never answer: the client's attempt time-out has to end it.
            time.sleep(FAULTS.hang_seconds)
            self.close_connection = True
            return
        if fault == "reset":
            # An RST instead of an answer (SO_LINGER with a zero time-out).
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if fault:
            self.reply(*fault_response(protocol, fault))
            return
        connection = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
        connection.request(self.command, self.path, body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        passthrough = {
            k: v for k, v in response.getheaders() if k.lower() not in ("transfer-encoding", "connection", "content-length")
        }
        connection.close()
        FAULTS.answered(operation, response.status)
        self.reply(response.status, passthrough, payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward


def main() -> int:
    global UPSTREAM
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    UPSTREAM = urllib.parse.urlsplit(args.upstream)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"aws-fault-proxy listening on http://127.0.0.1:{args.port} -> {args.upstream}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
