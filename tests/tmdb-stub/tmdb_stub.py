#!/usr/bin/env python3
"""A TMDB API v3 stub for the local environment and tests.

Serves a fixed catalog (fixtures/movies.json) through the three endpoints the
api-worker uses -- /3/movie/popular, /3/search/movie and /3/movie/{id} -- with
TMDB's response and error shapes, and lets tests inject latency, server
errors and rate limiting at run time through /__control.

Python 3.11 standard library only, so the local environment can start it
without a virtualenv.
"""

from __future__ import annotations

import argparse
import hmac
import json
import math
import re
import signal
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

Movie = dict[str, Any]
JsonObject = dict[str, Any]

DEFAULT_FIXTURES: Final = Path(__file__).resolve().parent / "fixtures" / "movies.json"
JSON_CONTENT_TYPE: Final = "application/json;charset=utf-8"
PAGE_SIZE: Final = 20
MAX_PAGE: Final = 500  # TMDB rejects page numbers above 500 on every list endpoint.
MAX_CONTROL_BODY: Final = 64 * 1024
MAX_PAD_BYTES: Final = 64 * 1024 * 1024
MAX_OVERVIEW_PAD_BYTES: Final = 1024 * 1024
# An endless body stops here if the client never hangs up (1 GiB).
ENDLESS_BODY_LIMIT: Final = 1024 * 1024 * 1024
ENDLESS_CHUNK: Final = b"x" * 65536

# The fields TMDB puts on list results (popular, search). Details-only fields
# such as runtime, budget and tagline are absent there, and genres appear as
# bare ids.
LIST_ITEM_FIELDS: Final = (
    "adult",
    "backdrop_path",
    "genre_ids",
    "id",
    "original_language",
    "original_title",
    "overview",
    "popularity",
    "poster_path",
    "release_date",
    "title",
    "video",
    "vote_average",
    "vote_count",
)

# Every fixture movie must carry these, with these types, so that a typo in the
# catalog fails at start-up instead of as a confusing client error later.
NUMBER = (int, float)
OPTIONAL_STR = (str, type(None))
FIXTURE_FIELDS: Final[Mapping[str, type | tuple[type, ...]]] = {
    "adult": bool,
    "backdrop_path": OPTIONAL_STR,
    "budget": int,
    "genres": list,
    "homepage": str,
    "id": int,
    "imdb_id": OPTIONAL_STR,
    "original_language": str,
    "original_title": str,
    "overview": str,
    "popularity": NUMBER,
    "poster_path": OPTIONAL_STR,
    "release_date": str,
    "revenue": int,
    "runtime": int,
    "status": str,
    "tagline": str,
    "title": str,
    "video": bool,
    "vote_average": NUMBER,
    "vote_count": int,
}

REQUEST_KINDS: Final = ("popular", "search", "details", "other")


# --------------------------------------------------------------------------
# TMDB error bodies
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TmdbError:
    """One of TMDB's documented error responses."""

    http_status: int
    status_code: int
    status_message: str

    def body(self) -> JsonObject:
        return {
            "success": False,
            "status_code": self.status_code,
            "status_message": self.status_message,
        }


INVALID_API_KEY: Final = TmdbError(401, 7, "Invalid API key: You must be granted a valid key.")
NOT_FOUND: Final = TmdbError(404, 34, "The resource you requested could not be found.")
INVALID_PAGE: Final = TmdbError(
    400, 22, "Invalid page: Pages start at 1 and max at 500. They are expected to be an integer."
)
INTERNAL_ERROR_CODE: Final = 11
INTERNAL_ERROR_MESSAGE: Final = "Internal error: Something went wrong, contact TMDB."
# The literal "#" is what TMDB sends; it never fills in the count.
RATE_LIMITED: Final = TmdbError(
    429, 25, "Your request count (#) is over the allowed limit of (40)."
)


# --------------------------------------------------------------------------
# Catalog
# --------------------------------------------------------------------------


class FixtureError(Exception):
    """The fixture file is missing or does not describe a valid catalog."""


def _has_type(value: Any, expected: type | tuple[type, ...]) -> bool:
    allowed = expected if isinstance(expected, tuple) else (expected,)
    # bool is a subclass of int, but a `true` where a number belongs is a typo.
    if isinstance(value, bool):
        return bool in allowed
    return isinstance(value, allowed)


def _validate_movie(movie: Any, position: int) -> None:
    if not isinstance(movie, dict):
        raise FixtureError(f"entry {position} is not an object")
    for name, expected in FIXTURE_FIELDS.items():
        if name not in movie:
            raise FixtureError(f"entry {position} (id {movie.get('id')}) lacks {name!r}")
        if not _has_type(movie[name], expected):
            raise FixtureError(f"entry {position} (id {movie.get('id')}): {name!r} has the wrong type")
    for genre in movie["genres"]:
        if not (isinstance(genre, dict) and _has_type(genre.get("id"), int) and isinstance(genre.get("name"), str)):
            raise FixtureError(f"movie {movie['id']}: genres must be [{{id, name}}]")


def fold_for_search(text: str) -> str:
    """Case- and accent-insensitive form, so "amelie" finds "Amélie" as on TMDB."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def list_item(movie: Movie) -> JsonObject:
    """The shape a movie takes inside a paged list result."""
    genre_ids = [genre["id"] for genre in movie["genres"]]
    return {name: genre_ids if name == "genre_ids" else movie[name] for name in LIST_ITEM_FIELDS}


class Catalog:
    """The fixture movies, indexed for the three endpoints."""

    def __init__(self, movies: Sequence[Movie]) -> None:
        self._by_id: dict[int, Movie] = {movie["id"]: movie for movie in movies}
        # Ties broken by id so paging is deterministic.
        self._by_popularity: list[Movie] = sorted(movies, key=lambda m: (-m["popularity"], m["id"]))
        self._search_keys: dict[int, tuple[str, str]] = {
            movie["id"]: (fold_for_search(movie["title"]), fold_for_search(movie["original_title"]))
            for movie in movies
        }

    @classmethod
    def load(cls, path: Path) -> Catalog:
        try:
            movies = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise FixtureError(f"cannot read {path}: {err}") from err
        if not isinstance(movies, list):
            raise FixtureError(f"{path}: expected a JSON array of movies")
        for position, movie in enumerate(movies):
            _validate_movie(movie, position)
        ids = [movie["id"] for movie in movies]
        if len(ids) != len(set(ids)):
            raise FixtureError(f"{path}: movie ids must be unique")
        return cls(movies)

    def get(self, movie_id: int) -> Movie | None:
        return self._by_id.get(movie_id)

    def popular(self) -> list[Movie]:
        return self._by_popularity

    def search(self, query: str) -> list[Movie]:
        """Substring match on title and original title.

        TMDB ranks by relevance; popularity order is a stable stand-in that
        puts the obvious hit first for the queries tests use.
        """
        needle = fold_for_search(query)
        return [movie for movie in self._by_popularity if any(needle in key for key in self._search_keys[movie["id"]])]


def parse_page(raw: str | None) -> int | None:
    """The requested page, 1 when absent, None when TMDB would reject it."""
    if raw is None:
        return 1
    if not (raw.isascii() and raw.isdigit()):
        return None
    page = int(raw)
    return page if 1 <= page <= MAX_PAGE else None


def paginate(movies: Sequence[Movie], page: int) -> JsonObject:
    # Like TMDB, a page past the end is an empty page with the real totals,
    # and an empty result set still reports one page.
    start = (page - 1) * PAGE_SIZE
    return {
        "page": page,
        "results": [list_item(movie) for movie in movies[start : start + PAGE_SIZE]],
        "total_pages": max(1, math.ceil(len(movies) / PAGE_SIZE)),
        "total_results": len(movies),
    }


def shape(payload: JsonObject, shaping: Shaping) -> JsonObject:
    """`payload` with every movie's overview lengthened and a padding field.

    TMDB clients ignore fields they do not know, so `padding` makes a body
    as large as asked without changing what it says; a longer overview
    changes what a client keeps.
    """
    if shaping.overview_pad_bytes:
        extra = " " + "x" * (shaping.overview_pad_bytes - 1)

        def longer(movie: JsonObject) -> JsonObject:
            return {**movie, "overview": movie["overview"] + extra}

        if "results" in payload:
            payload = {**payload, "results": [longer(movie) for movie in payload["results"]]}
        elif "overview" in payload:
            payload = longer(payload)
    if shaping.pad_bytes:
        payload = {**payload, "padding": "x" * shaping.pad_bytes}
    return payload


# --------------------------------------------------------------------------
# Fault injection
# --------------------------------------------------------------------------


class ControlError(Exception):
    """A /__control request body the stub cannot apply."""


@dataclass
class FaultSettings:
    latency_ms: int = 0
    fail_status: int | None = None
    fail_count: int | None = None  # remaining failures; None = every request
    rate_limit: bool = False
    rate_limit_count: int | None = None  # remaining 429s; None = every request
    retry_after_s: int = 1
    # Shaping of successful answers (not faults): bodies as large as a test
    # needs, one that never ends, and searches that always find a full page.
    pad_bytes: int = 0
    overview_pad_bytes: int = 0
    search_matches_all: bool = False
    endless_body: bool = False


@dataclass(frozen=True)
class Shaping:
    """How successful /3 answers are enlarged, as set through /__control."""

    pad_bytes: int = 0
    overview_pad_bytes: int = 0
    search_matches_all: bool = False
    endless_body: bool = False


def _zero_by_kind() -> dict[str, int]:
    return {kind: 0 for kind in REQUEST_KINDS}


@dataclass
class Counters:
    requests_total: int = 0
    requests_by_kind: dict[str, int] = field(default_factory=_zero_by_kind)
    faults_error: int = 0
    faults_rate_limit: int = 0

    def to_json(self) -> JsonObject:
        return {
            "requests_total": self.requests_total,
            "requests_by_kind": dict(self.requests_by_kind),
            "faults_injected": {
                "total": self.faults_error + self.faults_rate_limit,
                "error": self.faults_error,
                "rate_limit": self.faults_rate_limit,
            },
        }


@dataclass(frozen=True)
class InjectedFault:
    http_status: int
    body: JsonObject
    headers: Mapping[str, str]


Validator = Callable[[str, Any], Any]


def _int_setting(low: int, high: int, *, nullable: bool = False) -> Validator:
    def validate(name: str, value: Any) -> Any:
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            allowed = f"an integer from {low} to {high}" + (" or null" if nullable else "")
            raise ControlError(f"{name} must be {allowed}, got {json.dumps(value)}")
        return value

    return validate


def _bool_setting(name: str, value: Any) -> Any:
    if not isinstance(value, bool):
        raise ControlError(f"{name} must be true or false, got {json.dumps(value)}")
    return value


SETTING_VALIDATORS: Final[Mapping[str, Validator]] = {
    "latency_ms": _int_setting(0, 120_000),
    "fail_status": _int_setting(400, 599, nullable=True),
    "fail_count": _int_setting(1, 1_000_000, nullable=True),
    "rate_limit": _bool_setting,
    "rate_limit_count": _int_setting(1, 1_000_000, nullable=True),
    "retry_after_s": _int_setting(0, 3600),
    "pad_bytes": _int_setting(0, MAX_PAD_BYTES),
    "overview_pad_bytes": _int_setting(0, MAX_OVERVIEW_PAD_BYTES),
    "search_matches_all": _bool_setting,
    "endless_body": _bool_setting,
}


def parse_settings_patch(body: bytes) -> JsonObject:
    """Validate a PUT /__control body completely before anything is applied."""
    try:
        patch = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise ControlError(f"body is not valid JSON: {err}") from err
    if not isinstance(patch, dict):
        raise ControlError("body must be a JSON object, e.g. {\"fail_status\": 503}")
    unknown = sorted(set(patch) - set(SETTING_VALIDATORS))
    if unknown:
        raise ControlError(f"unknown setting(s) {unknown}; known: {sorted(SETTING_VALIDATORS)}")
    return {name: SETTING_VALIDATORS[name](name, value) for name, value in patch.items()}


class FaultControl:
    """Shared, lock-protected fault settings and request counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settings = FaultSettings()
        self._counters = Counters()

    def snapshot(self) -> JsonObject:
        with self._lock:
            return {"settings": asdict(self._settings), "counters": self._counters.to_json()}

    def update(self, patch: Mapping[str, Any]) -> JsonObject:
        with self._lock:
            self._settings = replace(self._settings, **patch)
        return self.snapshot()

    def reset(self) -> JsonObject:
        with self._lock:
            self._settings = FaultSettings()
            self._counters = Counters()
        return self.snapshot()

    def shaping(self) -> Shaping:
        with self._lock:
            settings = self._settings
            return Shaping(settings.pad_bytes, settings.overview_pad_bytes, settings.search_matches_all,
                           settings.endless_body)

    def admit(self, kind: str) -> tuple[float, InjectedFault | None]:
        """Count one /3 request; return its added delay (s) and fault, if any.

        Counting and consuming a limited fault happen under one lock so that
        concurrent requests never fail more times than fail_count says.
        """
        with self._lock:
            self._counters.requests_total += 1
            self._counters.requests_by_kind[kind] += 1
            return self._settings.latency_ms / 1000, self._take_fault()

    def _take_fault(self) -> InjectedFault | None:
        settings = self._settings
        # Rate limiting wins over errors: at TMDB it happens at the edge,
        # before a request reaches anything that could fail.
        if settings.rate_limit:
            if settings.rate_limit_count is not None:
                settings.rate_limit_count -= 1
                if settings.rate_limit_count == 0:
                    settings.rate_limit, settings.rate_limit_count = False, None
            self._counters.faults_rate_limit += 1
            return InjectedFault(
                RATE_LIMITED.http_status,
                RATE_LIMITED.body(),
                {"Retry-After": str(settings.retry_after_s)},
            )
        if settings.fail_status is not None:
            status = settings.fail_status
            if settings.fail_count is not None:
                settings.fail_count -= 1
                if settings.fail_count == 0:
                    # Disarm completely so GET /__control shows the outage is over.
                    settings.fail_status, settings.fail_count = None, None
            self._counters.faults_error += 1
            return InjectedFault(status, TmdbError(status, INTERNAL_ERROR_CODE, INTERNAL_ERROR_MESSAGE).body(), {})
        return None


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------

_API_KEY_IN_URL = re.compile(r"(api_key=)[^&\s]*")


def redact(text: str) -> str:
    """Keep API keys out of request logs."""
    return _API_KEY_IN_URL.sub(r"\1***", text)


def classify(path: str) -> str:
    if path == "/3/movie/popular":
        return "popular"
    if path == "/3/search/movie":
        return "search"
    if re.fullmatch(r"/3/movie/[^/]+", path):
        return "details"
    return "other"


def first_value(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


class StubServer(ThreadingHTTPServer):
    # In-flight requests (possibly sleeping for latency_ms) must not hold up exit.
    daemon_threads = True

    def __init__(self, address: tuple[str, int], catalog: Catalog, api_key: str, quiet: bool) -> None:
        super().__init__(address, StubHandler)
        self.catalog = catalog
        self.api_key = api_key
        self.quiet = quiet
        self.control = FaultControl()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class StubHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive, as pooled clients (reqwest) expect;
    # every response therefore carries a Content-Length.
    protocol_version = "HTTP/1.1"
    server_version = "tmdb-stub"
    sys_version = ""
    server: StubServer

    # ---- dispatch -------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        body = self._read_body()
        if body is None:
            return
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = parse_qs(url.query)
        if path == "/__control":
            self._control(method, body)
            return
        allowed = {"/healthz": "GET", "/__control/reset": "POST"}.get(path)
        if allowed is None and (path == "/3" or path.startswith("/3/")):
            allowed = "GET"
        if allowed is None:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {path}"})
        elif method != allowed:
            self._method_not_allowed(method, allowed)
        elif path == "/healthz":
            self._send(HTTPStatus.OK, b"ok", "text/plain;charset=utf-8")
        elif path == "/__control/reset":
            self._send_json(HTTPStatus.OK, self.server.control.reset())
        else:
            self._tmdb(path, query)

    def _method_not_allowed(self, method: str, allowed: str) -> None:
        self._send_json(
            HTTPStatus.METHOD_NOT_ALLOWED,
            {"error": f"{method} is not allowed here; use {allowed}"},
            {"Allow": allowed},
        )

    # ---- /__control -----------------------------------------------------

    def _control(self, method: str, body: bytes) -> None:
        control = self.server.control
        if method == "GET":
            self._send_json(HTTPStatus.OK, control.snapshot())
        elif method == "PUT":
            try:
                patch = parse_settings_patch(body)
            except ControlError as err:
                self._send_json(HTTPStatus.BAD_REQUEST, {"error": str(err)})
                return
            self._send_json(HTTPStatus.OK, control.update(patch))
        else:
            self._method_not_allowed(method, "GET, PUT")

    # ---- /3 -------------------------------------------------------------

    def _tmdb(self, path: str, query: Mapping[str, list[str]]) -> None:
        kind = classify(path)
        delay_s, fault = self.server.control.admit(kind)
        if delay_s:
            time.sleep(delay_s)
        # Faults come before the key check: a real outage or rate limiter
        # answers before TMDB ever looks at credentials.
        if fault is not None:
            self._send_json(fault.http_status, fault.body, fault.headers)
            return
        if not self._authorized(query):
            self._send_tmdb_error(INVALID_API_KEY)
            return
        shaping = self.server.control.shaping()
        match kind:
            case "popular":
                self._popular(query, shaping)
            case "search":
                self._search(query, shaping)
            case "details":
                self._details(path, shaping)
            case _:
                self._send_tmdb_error(NOT_FOUND)

    def _authorized(self, query: Mapping[str, list[str]]) -> bool:
        """TMDB accepts the key as ?api_key= or as a Bearer token."""
        presented = []
        if (key := first_value(query, "api_key")) is not None:
            presented.append(key)
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            presented.append(token.strip())
        expected = self.server.api_key.encode()
        return any(hmac.compare_digest(key.encode(), expected) for key in presented)

    def _popular(self, query: Mapping[str, list[str]], shaping: Shaping) -> None:
        page = parse_page(first_value(query, "page"))
        if page is None:
            self._send_tmdb_error(INVALID_PAGE)
            return
        self._send_shaped(paginate(self.server.catalog.popular(), page), shaping)

    def _search(self, query: Mapping[str, list[str]], shaping: Shaping) -> None:
        page = parse_page(first_value(query, "page"))
        if page is None:
            self._send_tmdb_error(INVALID_PAGE)
            return
        text = (first_value(query, "query") or "").strip()
        if not text:
            # TMDB answers a missing or blank query with an empty first page, not an error.
            self._send_shaped({"page": 1, "results": [], "total_pages": 1, "total_results": 0}, shaping)
            return
        catalog = self.server.catalog
        found = catalog.popular() if shaping.search_matches_all else catalog.search(text)
        self._send_shaped(paginate(found, page), shaping)

    def _details(self, path: str, shaping: Shaping) -> None:
        raw_id = path.rsplit("/", 1)[-1]
        movie = self.server.catalog.get(int(raw_id)) if raw_id.isascii() and raw_id.isdigit() else None
        if movie is None:
            self._send_tmdb_error(NOT_FOUND)
        else:
            self._send_shaped(movie, shaping)

    def _send_shaped(self, payload: JsonObject, shaping: Shaping) -> None:
        """Send a successful answer, enlarged as the control settings say."""
        if shaping.endless_body:
            self._send_endless()
        else:
            self._send_json(HTTPStatus.OK, shape(payload, shaping))

    def _send_endless(self) -> None:
        """A 200 whose chunked body never ends: a JSON string that goes on
        until the client hangs up (or ENDLESS_BODY_LIMIT is sent)."""
        self.close_connection = True
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", JSON_CONTENT_TYPE)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"%x\r\n%s\r\n" % (len(ENDLESS_CHUNK), ENDLESS_CHUNK)
        try:
            self.wfile.write(b'%x\r\n{"padding":"\r\n' % len(b'{"padding":"'))
            for _ in range(ENDLESS_BODY_LIMIT // len(ENDLESS_CHUNK)):
                self.wfile.write(chunk)
            self.wfile.write(b'2\r\n"}\r\n0\r\n\r\n')
        except OSError:
            pass  # the client hung up: what this mode is for

    # ---- I/O helpers ----------------------------------------------------

    def _read_body(self) -> bytes | None:
        """Read the request body, or answer 400/413 and return None.

        Reading it even when unused keeps a kept-alive connection in sync.
        """
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._send_json(HTTPStatus.BAD_REQUEST, {"error": "send the body with Content-Length, not chunked"})
            return None
        raw_length = self.headers.get("Content-Length", "0")
        if not raw_length.isdigit():
            self.close_connection = True
            self._send_json(HTTPStatus.BAD_REQUEST, {"error": "invalid Content-Length"})
            return None
        length = int(raw_length)
        if length > MAX_CONTROL_BODY:
            self.close_connection = True
            self._send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body over {MAX_CONTROL_BODY} bytes"})
            return None
        return self.rfile.read(length)

    def _send_tmdb_error(self, error: TmdbError) -> None:
        self._send_json(error.http_status, error.body())

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self._send(status, body, JSON_CONTENT_TYPE, headers)

    def _send(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    # ---- logging --------------------------------------------------------

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.log_message('"%s" %s', self.requestline, getattr(code, "value", code))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (name fixed by the base class)
        if not self.server.quiet:
            sys.stderr.write(f"tmdb-stub: {redact(format % args)}\n")


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="TMDB API v3 stub with fault injection.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="port to bind; 0 picks a free one")
    parser.add_argument("--api-key", required=True, help="the only API key / bearer token accepted")
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES, help="movie catalog JSON")
    parser.add_argument("--quiet", action="store_true", help="no per-request log lines on stderr")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.api_key:
        print("tmdb-stub: --api-key must not be empty", file=sys.stderr)
        return 2
    try:
        catalog = Catalog.load(args.fixtures)
        server = StubServer((args.host, args.port), catalog, args.api_key, args.quiet)
    except (FixtureError, OSError) as err:
        print(f"tmdb-stub: {err}", file=sys.stderr)
        return 1

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    # serve_forever runs on a worker thread because server.shutdown() blocks
    # until the loop exits and so cannot be called from the loop's thread.
    worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    worker.start()
    # The socket is already listening (bound in the constructor), so callers
    # may connect as soon as they read this line.
    print(f"tmdb-stub listening on {server.url}", flush=True)
    while not stop.wait(0.2):
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
