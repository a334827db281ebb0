"""An HTTP proxy in front of moto that injects AWS faults, for reliability
tests: throttling and 5xx answers at a given ratio, and AccessDenied for
chosen operations, each in the error shape of the service's protocol.

    aws_fault_proxy.py --port N --upstream http://127.0.0.1:42306

Control (not forwarded): `PUT /__faults` with a JSON object of any of
`throttle_ratio`, `error_ratio` (0..1) and `deny` (operation names, e.g.
["CreateTable"]); `GET /__faults` returns the settings and counters.
Listens on 127.0.0.1 only; prints one line once it accepts connections.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import signal
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Faults:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.throttle_ratio = 0.0
        self.error_ratio = 0.0
        self.deny: set[str] = set()
        self.counters = {"forwarded": 0, "throttled": 0, "server_error": 0, "denied": 0}

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "throttle_ratio": self.throttle_ratio,
                "error_ratio": self.error_ratio,
                "deny": sorted(self.deny),
                "counters": dict(self.counters),
            }

    def update(self, body: dict) -> None:
        with self.lock:
            for key in ("throttle_ratio", "error_ratio"):
                if key in body:
                    value = body[key]
                    if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                        raise ValueError(f"{key} must be a number from 0 to 1")
                    setattr(self, key, float(value))
            if "deny" in body:
                if not isinstance(body["deny"], list) or not all(isinstance(o, str) for o in body["deny"]):
                    raise ValueError("deny must be a list of operation names")
                self.deny = set(body["deny"])
            unknown = set(body) - {"throttle_ratio", "error_ratio", "deny"}
            if unknown:
                raise ValueError(f"unknown settings: {sorted(unknown)}")

    def decide(self, operation: str) -> str | None:
        with self.lock:
            if operation in self.deny:
                self.counters["denied"] += 1
                return "denied"
            roll = random.random()
            if roll < self.throttle_ratio:
                self.counters["throttled"] += 1
                return "throttled"
            if roll < self.throttle_ratio + self.error_ratio:
                self.counters["server_error"] += 1
                return "server_error"
            self.counters["forwarded"] += 1
            return None


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
