#!/usr/bin/env python3
"""Serves the bare Git repositories under a directory over smart HTTP on
loopback, read-only, through Git's own server side (`git http-backend`, the
CGI program Debian's git ships). Flux's source-controller (go-git) and Argo
CD's repo-server (the git CLI) clone and fetch from it like from any Git host.

    git_http.py --root DIR --port PORT      serves http://127.0.0.1:PORT/<repo>.git

Pushes are refused (`http.receivepack` stays off): the tests commit to the
bare repository on disk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

CGI_VARIABLES = ("REQUEST_METHOD", "QUERY_STRING", "CONTENT_TYPE", "REMOTE_ADDR", "SERVER_PROTOCOL")


def application(root: str):
    git = shutil.which("git")
    if git is None:
        sys.exit("git_http.py: git is not installed")

    def app(environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": environ.get("PATH_INFO", "/"),
            "CONTENT_LENGTH": str(len(body)),
            "GATEWAY_INTERFACE": "CGI/1.1",
        }
        for name in CGI_VARIABLES:
            env[name] = environ.get(name, "")
        for name, value in environ.items():
            if name.startswith("HTTP_"):
                env[name] = value
        result = subprocess.run([git, "http-backend"], input=body, env=env, capture_output=True, check=False)
        head, _, payload = result.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = result.stdout.partition(b"\n\n")
        status = "200 OK"
        headers = []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = value.strip()
            elif name:
                headers.append((name, value.strip()))
        if result.returncode != 0 and not head:
            status, headers, payload = "500 Internal Server Error", [("Content-Type", "text/plain")], result.stderr
        start_response(status, headers)
        return [payload]

    return app


class ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        sys.stderr.write("git_http: " + (format % args) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="directory holding <name>.git bare repositories")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = make_server(
        "127.0.0.1", args.port, application(os.path.abspath(args.root)), ThreadingServer, QuietHandler
    )
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
