"""Black-box tests for tmdb_stub.py.

The stub is started as a real subprocess, as the local environment starts it,
so the CLI, the start-up line and signal handling are covered too.

Run: python3 -m unittest discover -s tests/tmdb-stub -v
"""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import tempfile
import time
import unicodedata
import unittest
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STUB = HERE / "tmdb_stub.py"
FIXTURES = HERE / "fixtures" / "movies.json"
API_KEY = "test-key-123"
JSON_CONTENT_TYPE = "application/json;charset=utf-8"
STARTUP_TIMEOUT_S = 10  # generous: the machine may be busy compiling

INVALID_KEY_BODY = {
    "success": False,
    "status_code": 7,
    "status_message": "Invalid API key: You must be granted a valid key.",
}
NOT_FOUND_BODY = {
    "success": False,
    "status_code": 34,
    "status_message": "The resource you requested could not be found.",
}
INTERNAL_ERROR_BODY = {
    "success": False,
    "status_code": 11,
    "status_message": "Internal error: Something went wrong, contact TMDB.",
}
RATE_LIMIT_BODY = {
    "success": False,
    "status_code": 25,
    "status_message": "Your request count (#) is over the allowed limit of (40).",
}
EMPTY_SEARCH = {"page": 1, "results": [], "total_pages": 1, "total_results": 0}
LIST_ITEM_KEYS = {
    "adult", "backdrop_path", "genre_ids", "id", "original_language", "original_title", "overview",
    "popularity", "poster_path", "release_date", "title", "video", "vote_average", "vote_count",
}
DETAIL_KEYS = {
    "adult", "backdrop_path", "budget", "genres", "homepage", "id", "imdb_id", "original_language",
    "original_title", "overview", "popularity", "poster_path", "release_date", "revenue", "runtime",
    "status", "tagline", "title", "video", "vote_average", "vote_count",
}


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


class StubProcess:
    """A running tmdb_stub.py subprocess on a free port."""

    def __init__(self, *extra_args: str, quiet: bool = True) -> None:
        args = [sys.executable, str(STUB), "--port", "0", "--api-key", API_KEY, *extra_args]
        if quiet:
            args.append("--quiet")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        self.startup_s = time.monotonic() - self.started
        match = re.fullmatch(r"tmdb-stub listening on (http://127\.0\.0\.1:\d+)\n", line)
        if not match:
            self.stop(signal.SIGKILL)
            raise RuntimeError(f"unexpected start-up output {line!r}; stderr: {self.stderr}")
        self.base_url = match.group(1)
        self.stderr = ""  # filled in by stop()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the stub, wait for it to exit and collect its stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        _, self.stderr = self.proc.communicate(timeout=5)
        return self.proc.returncode

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        req = urllib.request.Request(self.base_url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return Response(resp.status, dict(resp.headers.items()), resp.read())
        except urllib.error.HTTPError as err:
            with err:
                return Response(err.code, dict(err.headers.items()), err.read())


class StubTestCase(unittest.TestCase):
    """One stub per test class, reset to defaults before every test."""

    stub: StubProcess

    @classmethod
    def setUpClass(cls) -> None:
        cls.stub = StubProcess()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.stub.stop()

    def setUp(self) -> None:
        self.assertEqual(self.stub.request("POST", "/__control/reset").status, 200)

    # helpers

    def tmdb(self, path: str, key: str | None = API_KEY) -> Response:
        """GET a /3 path with the key as a query parameter."""
        if key is not None:
            path += ("&" if "?" in path else "?") + "api_key=" + key
        return self.stub.request("GET", path)

    def put_control(self, settings: Any) -> Response:
        body = settings if isinstance(settings, bytes) else json.dumps(settings).encode()
        return self.stub.request("PUT", "/__control", body, {"Content-Type": "application/json"})

    def control_state(self) -> dict[str, Any]:
        return self.stub.request("GET", "/__control").json()

    def assert_json(self, resp: Response, status: int, body: Any = None) -> Any:
        self.assertEqual(resp.status, status, resp.body)
        self.assertEqual(resp.headers.get("Content-Type"), JSON_CONTENT_TYPE)
        data = resp.json()
        if body is not None:
            self.assertEqual(data, body)
        return data


def fold(text: str) -> str:
    """Case- and accent-insensitive form, as the stub's search uses."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).casefold()


def load_fixtures() -> list[dict[str, Any]]:
    return json.loads(FIXTURES.read_text(encoding="utf-8"))


class FixtureCatalogTest(unittest.TestCase):
    def test_catalog_is_large_and_tmdb_shaped(self) -> None:
        movies = load_fixtures()
        self.assertGreaterEqual(len(movies), 36)
        self.assertEqual(len({m["id"] for m in movies}), len(movies), "ids must be unique")
        for movie in movies:
            with self.subTest(movie=movie.get("title")):
                self.assertEqual(set(movie), DETAIL_KEYS)
                self.assertIs(movie["adult"], False)
                self.assertIs(movie["video"], False)
                self.assertEqual(movie["status"], "Released")
                self.assertRegex(movie["poster_path"], r"^/[A-Za-z0-9]+\.jpg$")
                self.assertRegex(movie["backdrop_path"], r"^/[A-Za-z0-9]+\.jpg$")
                self.assertRegex(movie["release_date"], r"^\d{4}-\d{2}-\d{2}$")
                self.assertRegex(movie["imdb_id"], r"^tt\d{7,8}$")
                self.assertTrue(movie["genres"])
                self.assertTrue(all(set(g) == {"id", "name"} for g in movie["genres"]))
                self.assertGreater(movie["runtime"], 0)


class ProcessTest(unittest.TestCase):
    """CLI behaviour that needs its own process."""

    def test_starts_fast_and_binds_loopback_by_default(self) -> None:
        stub = StubProcess()
        try:
            self.assertTrue(stub.base_url.startswith("http://127.0.0.1:"))
            # "well under a second" on an idle machine; leave room for a busy one.
            self.assertLess(stub.startup_s, 5)
        finally:
            stub.stop()

    def test_exits_cleanly_on_sigterm_and_sigint(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(signal=sig.name):
                stub = StubProcess()
                self.assertEqual(stub.request("GET", "/healthz").status, 200)
                self.assertEqual(stub.stop(sig), 0)
                self.assertEqual(stub.stderr, "")

    def test_request_log_is_one_line_per_request_without_the_key(self) -> None:
        stub = StubProcess(quiet=False)
        stub.request("GET", f"/3/movie/550?api_key={API_KEY}")
        stub.request("GET", "/healthz")
        stub.stop()
        lines = stub.stderr.splitlines()
        self.assertEqual(len(lines), 2, lines)
        self.assertIn("api_key=***", lines[0])
        self.assertNotIn(API_KEY, "\n".join(lines))

    def test_custom_fixture_file(self) -> None:
        movie = load_fixtures()[0]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "one.json"
            path.write_text(json.dumps([movie]), encoding="utf-8")
            stub = StubProcess("--fixtures", str(path))
            try:
                resp = stub.request("GET", f"/3/movie/popular?api_key={API_KEY}")
                data = resp.json()
                self.assertEqual((data["total_results"], data["total_pages"]), (1, 1))
                self.assertEqual(data["results"][0]["id"], movie["id"])
            finally:
                stub.stop()

    def test_invalid_fixture_file_fails_at_startup(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bad.json"
            path.write_text(json.dumps([{"id": 1, "title": "No other fields"}]), encoding="utf-8")
            proc = subprocess.run(
                [sys.executable, str(STUB), "--port", "0", "--api-key", API_KEY, "--fixtures", str(path)],
                capture_output=True, text=True, timeout=STARTUP_TIMEOUT_S,
            )
        self.assertEqual(proc.returncode, 1)
        self.assertIn("lacks", proc.stderr)
        self.assertEqual(proc.stdout, "")


class HealthAndAuthTest(StubTestCase):
    def test_healthz(self) -> None:
        resp = self.stub.request("GET", "/healthz")
        self.assertEqual((resp.status, resp.body), (200, b"ok"))

    def test_key_as_query_parameter(self) -> None:
        self.assert_json(self.tmdb("/3/movie/550"), 200)

    def test_key_as_bearer_token(self) -> None:
        resp = self.stub.request("GET", "/3/movie/550", headers={"Authorization": f"Bearer {API_KEY}"})
        self.assertEqual(self.assert_json(resp, 200)["id"], 550)

    def test_missing_key_is_401(self) -> None:
        self.assert_json(self.tmdb("/3/movie/550", key=None), 401, INVALID_KEY_BODY)

    def test_wrong_query_key_is_401(self) -> None:
        self.assert_json(self.tmdb("/3/movie/popular", key="nope"), 401, INVALID_KEY_BODY)

    def test_wrong_bearer_token_is_401(self) -> None:
        for header in ("Bearer nope", f"Basic {API_KEY}", "Bearer "):
            with self.subTest(header=header):
                resp = self.stub.request("GET", "/3/search/movie?query=x", headers={"Authorization": header})
                self.assert_json(resp, 401, INVALID_KEY_BODY)


class PopularTest(StubTestCase):
    def test_pages_are_ordered_by_popularity_with_totals(self) -> None:
        movies = load_fixtures()
        expected_order = [m["id"] for m in sorted(movies, key=lambda m: (-m["popularity"], m["id"]))]
        total_pages = math.ceil(len(movies) / 20)
        seen: list[int] = []
        for page in range(1, total_pages + 1):
            data = self.assert_json(self.tmdb(f"/3/movie/popular?page={page}"), 200)
            self.assertEqual(data["page"], page)
            self.assertEqual(data["total_results"], len(movies))
            self.assertEqual(data["total_pages"], total_pages)
            self.assertEqual(len(data["results"]), min(20, len(movies) - 20 * (page - 1)))
            seen += [item["id"] for item in data["results"]]
        self.assertEqual(seen, expected_order)

    def test_default_page_is_one(self) -> None:
        data = self.assert_json(self.tmdb("/3/movie/popular"), 200)
        self.assertEqual((data["page"], len(data["results"])), (1, 20))

    def test_list_items_have_genre_ids_not_details(self) -> None:
        movies = {m["id"]: m for m in load_fixtures()}
        for item in self.assert_json(self.tmdb("/3/movie/popular"), 200)["results"]:
            self.assertEqual(set(item), LIST_ITEM_KEYS)
            self.assertEqual(item["genre_ids"], [g["id"] for g in movies[item["id"]]["genres"]])

    def test_page_past_the_end_is_empty_with_totals(self) -> None:
        total = len(load_fixtures())
        for page in (math.ceil(total / 20) + 1, 500):
            with self.subTest(page=page):
                data = self.assert_json(self.tmdb(f"/3/movie/popular?page={page}"), 200)
                self.assertEqual(data, {
                    "page": page, "results": [],
                    "total_pages": math.ceil(total / 20), "total_results": total,
                })

    def test_invalid_page_is_400(self) -> None:
        for page in ("0", "501", "-1", "abc", "1.5"):
            with self.subTest(page=page):
                data = self.assert_json(self.tmdb(f"/3/movie/popular?page={page}"), 400)
                self.assertEqual((data["success"], data["status_code"]), (False, 22))


class SearchTest(StubTestCase):
    def test_case_insensitive_title_substring(self) -> None:
        data = self.assert_json(self.tmdb("/3/search/movie?query=GODFATHER"), 200)
        self.assertEqual({m["id"] for m in data["results"]}, {238, 240})
        self.assertEqual((data["page"], data["total_pages"], data["total_results"]), (1, 1, 2))
        self.assertTrue(all(set(m) == LIST_ITEM_KEYS for m in data["results"]))

    def test_matches_original_title_and_ignores_accents(self) -> None:
        for query, movie_id in (("fabuleux%20destin", 194), ("%EA%B8%B0%EC%83%9D%EC%B6%A9", 496243), ("amelie", 194)):
            with self.subTest(query=query):
                data = self.assert_json(self.tmdb(f"/3/search/movie?query={query}"), 200)
                self.assertEqual([m["id"] for m in data["results"]], [movie_id])

    def test_search_paginates(self) -> None:
        movies = load_fixtures()
        expected = [m for m in movies if "e" in fold(m["title"]) or "e" in fold(m["original_title"])]
        self.assertGreater(len(expected), 20, "fixture should make 'e' span two pages")
        page1 = self.assert_json(self.tmdb("/3/search/movie?query=E&page=1"), 200)
        page2 = self.assert_json(self.tmdb("/3/search/movie?query=E&page=2"), 200)
        self.assertEqual(page1["total_results"], len(expected))
        self.assertEqual(page1["total_pages"], math.ceil(len(expected) / 20))
        self.assertEqual(len(page1["results"]) + len(page2["results"]), len(expected))

    def test_no_match(self) -> None:
        self.assert_json(self.tmdb("/3/search/movie?query=zzzzzz"), 200, EMPTY_SEARCH)

    def test_missing_or_blank_query_is_an_empty_page(self) -> None:
        for path in ("/3/search/movie", "/3/search/movie?query=", "/3/search/movie?query=%20%20"):
            with self.subTest(path=path):
                self.assert_json(self.tmdb(path), 200, EMPTY_SEARCH)

    def test_invalid_page_is_400(self) -> None:
        data = self.assert_json(self.tmdb("/3/search/movie?query=dune&page=0"), 400)
        self.assertEqual(data["status_code"], 22)


class DetailsTest(StubTestCase):
    def test_full_object(self) -> None:
        data = self.assert_json(self.tmdb("/3/movie/550"), 200)
        fixture = next(m for m in load_fixtures() if m["id"] == 550)
        self.assertEqual(data, fixture)
        self.assertEqual(set(data), DETAIL_KEYS)
        self.assertEqual(data["title"], "Fight Club")

    def test_unknown_id_is_404(self) -> None:
        self.assert_json(self.tmdb("/3/movie/999999999"), 404, NOT_FOUND_BODY)

    def test_non_numeric_id_is_404(self) -> None:
        for raw in ("abc", "550abc", "-5"):
            with self.subTest(id=raw):
                self.assert_json(self.tmdb(f"/3/movie/{raw}"), 404, NOT_FOUND_BODY)

    def test_unknown_tmdb_path_is_404(self) -> None:
        self.assert_json(self.tmdb("/3/tv/popular"), 404, NOT_FOUND_BODY)


class FaultInjectionTest(StubTestCase):
    def test_latency_is_added_to_tmdb_requests_only(self) -> None:
        self.assert_json(self.put_control({"latency_ms": 300}), 200)
        started = time.monotonic()
        self.assert_json(self.tmdb("/3/movie/550"), 200)
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        started = time.monotonic()
        self.stub.request("GET", "/healthz")
        self.assertLess(time.monotonic() - started, 0.3)

    def test_fail_status_fails_every_request_kind(self) -> None:
        self.assert_json(self.put_control({"fail_status": 503}), 200)
        for path in ("/3/movie/popular", "/3/search/movie?query=dune", "/3/movie/550", "/3/movie/550"):
            with self.subTest(path=path):
                self.assert_json(self.tmdb(path), 503, INTERNAL_ERROR_BODY)
        counters = self.control_state()["counters"]
        self.assertEqual(counters["faults_injected"], {"total": 4, "error": 4, "rate_limit": 0})

    def test_fail_status_applies_before_auth(self) -> None:
        self.put_control({"fail_status": 500})
        self.assert_json(self.tmdb("/3/movie/550", key=None), 500, INTERNAL_ERROR_BODY)

    def test_fail_count_expires(self) -> None:
        self.assert_json(self.put_control({"fail_status": 500, "fail_count": 2}), 200)
        self.assert_json(self.tmdb("/3/movie/550"), 500, INTERNAL_ERROR_BODY)
        self.assert_json(self.tmdb("/3/movie/550"), 500, INTERNAL_ERROR_BODY)
        self.assert_json(self.tmdb("/3/movie/550"), 200)
        settings = self.control_state()["settings"]
        self.assertIsNone(settings["fail_status"])
        self.assertIsNone(settings["fail_count"])

    def test_rate_limit_with_retry_after(self) -> None:
        self.assert_json(self.put_control({"rate_limit": True, "retry_after_s": 7}), 200)
        for _ in range(2):
            resp = self.tmdb("/3/movie/popular")
            self.assert_json(resp, 429, RATE_LIMIT_BODY)
            self.assertEqual(resp.headers.get("Retry-After"), "7")
        self.assertEqual(self.control_state()["counters"]["faults_injected"]["rate_limit"], 2)

    def test_retry_after_defaults_to_one_second(self) -> None:
        self.put_control({"rate_limit": True})
        self.assertEqual(self.tmdb("/3/movie/550").headers.get("Retry-After"), "1")

    def test_rate_limit_count_expires(self) -> None:
        self.assert_json(self.put_control({"rate_limit": True, "rate_limit_count": 1}), 200)
        self.assert_json(self.tmdb("/3/movie/550"), 429, RATE_LIMIT_BODY)
        self.assert_json(self.tmdb("/3/movie/550"), 200)
        self.assertIs(self.control_state()["settings"]["rate_limit"], False)

    def test_rate_limit_takes_precedence_over_fail_status(self) -> None:
        self.put_control({"rate_limit": True, "rate_limit_count": 1, "fail_status": 503, "fail_count": 1})
        self.assertEqual(self.tmdb("/3/movie/550").status, 429)
        self.assertEqual(self.tmdb("/3/movie/550").status, 503)
        self.assertEqual(self.tmdb("/3/movie/550").status, 200)


class ShapingTest(StubTestCase):
    def test_pad_bytes_enlarges_every_successful_answer_by_a_padding_field(self) -> None:
        plain = {path: self.tmdb(path) for path in ("/3/movie/popular", "/3/search/movie?query=dune", "/3/movie/550")}
        self.assert_json(self.put_control({"pad_bytes": 100_000}), 200)
        for path, before in plain.items():
            with self.subTest(path=path):
                after = self.tmdb(path)
                data = self.assert_json(after, 200)
                self.assertEqual(data.pop("padding"), "x" * 100_000)
                self.assertEqual(data, before.json())
                self.assertGreater(len(after.body), 100_000)
        # Errors are not padded.
        self.assert_json(self.tmdb("/3/movie/1"), 404, NOT_FOUND_BODY)

    def test_overview_pad_bytes_lengthens_every_movie_overview(self) -> None:
        before = self.tmdb("/3/movie/popular").json()["results"]
        self.put_control({"overview_pad_bytes": 500})
        after = self.tmdb("/3/movie/popular").json()["results"]
        self.assertEqual(len(after), len(before))
        for old, new in zip(before, after):
            self.assertEqual(len(new["overview"]), len(old["overview"]) + 500)
            self.assertTrue(new["overview"].startswith(old["overview"]))
        details = self.tmdb("/3/movie/550").json()
        self.assertTrue(details["overview"].endswith("x" * 499))

    def test_search_matches_all_makes_every_query_a_full_page(self) -> None:
        self.assertEqual(self.tmdb("/3/search/movie?query=zzqx-no-such-title").json()["total_results"], 0)
        self.put_control({"search_matches_all": True})
        for query in ("zzqx-no-such-title", "another one"):
            data = self.tmdb(f"/3/search/movie?query={urllib.parse.quote(query)}").json()
            self.assertEqual(len(data["results"]), 20)
            self.assertEqual(data["total_results"], len(load_fixtures()))
        # A blank query is still TMDB's empty page.
        self.assertEqual(self.tmdb("/3/search/movie?query=").json()["results"], [])

    def test_endless_body_streams_until_the_client_hangs_up(self) -> None:
        self.put_control({"endless_body": True})
        req = urllib.request.Request(f"{self.stub.base_url}/3/movie/550?api_key={API_KEY}")
        with urllib.request.urlopen(req, timeout=10) as resp:
            self.assertEqual(resp.status, 200)
            self.assertIsNone(resp.headers.get("Content-Length"))
            self.assertEqual(resp.headers.get("Transfer-Encoding"), "chunked")
            start = resp.read(12)
            self.assertEqual(start, b'{"padding":"')
            # Far more than any answer TMDB sends, and still going.
            read = 0
            while read < 8 * 1024 * 1024:
                read += len(resp.read(65536))
            self.assertEqual(resp.read(16), b"x" * 16)
        # Hanging up ends the answer; the stub serves the next request.
        self.put_control({"endless_body": False})
        self.assertEqual(self.tmdb("/3/movie/550").status, 200)

    def test_bad_shaping_values_are_refused(self) -> None:
        for body in ({"pad_bytes": -1}, {"pad_bytes": 64 * 1024 * 1024 + 1}, {"overview_pad_bytes": "big"},
                     {"search_matches_all": 1}, {"endless_body": "yes"}):
            with self.subTest(body=body):
                self.assert_json(self.put_control(body), 400)
        self.assertEqual(self.control_state()["settings"], ControlApiTest.DEFAULTS)


class ControlApiTest(StubTestCase):
    DEFAULTS = {
        "latency_ms": 0, "fail_status": None, "fail_count": None,
        "rate_limit": False, "rate_limit_count": None, "retry_after_s": 1,
        "pad_bytes": 0, "overview_pad_bytes": 0, "search_matches_all": False, "endless_body": False,
    }

    def test_get_reports_settings_and_counters(self) -> None:
        self.tmdb("/3/movie/popular")
        self.tmdb("/3/search/movie?query=x")
        self.tmdb("/3/movie/550")
        self.tmdb("/3/movie/13", key="wrong")  # rejected requests still count
        self.tmdb("/3/tv/1")
        state = self.control_state()
        self.assertEqual(state["settings"], self.DEFAULTS)
        self.assertEqual(state["counters"], {
            "requests_total": 5,
            "requests_by_kind": {"popular": 1, "search": 1, "details": 2, "other": 1},
            "faults_injected": {"total": 0, "error": 0, "rate_limit": 0},
        })

    def test_control_needs_no_key_and_is_not_counted(self) -> None:
        self.stub.request("GET", "/__control")
        self.stub.request("GET", "/healthz")
        self.assertEqual(self.control_state()["counters"]["requests_total"], 0)

    def test_put_is_a_partial_update_and_returns_the_state(self) -> None:
        state = self.assert_json(self.put_control({"latency_ms": 5}), 200)
        self.assertEqual(state["settings"], {**self.DEFAULTS, "latency_ms": 5})
        state = self.assert_json(self.put_control({"retry_after_s": 3}), 200)
        self.assertEqual(state["settings"], {**self.DEFAULTS, "latency_ms": 5, "retry_after_s": 3})

    def test_reset_restores_defaults_and_zeroes_counters(self) -> None:
        self.put_control({"latency_ms": 1, "fail_status": 500, "rate_limit": True, "retry_after_s": 9})
        self.tmdb("/3/movie/550")
        state = self.assert_json(self.stub.request("POST", "/__control/reset"), 200)
        self.assertEqual(state["settings"], self.DEFAULTS)
        self.assertEqual(state["counters"]["requests_total"], 0)
        self.assertEqual(state["counters"]["faults_injected"]["total"], 0)
        self.assert_json(self.tmdb("/3/movie/550"), 200)

    def test_bad_bodies_are_400_and_change_nothing(self) -> None:
        bad_bodies: list[Any] = [
            b"not json",
            b"",
            [1, 2],
            {"latency": 5},
            {"latency_ms": "fast"},
            {"latency_ms": -1},
            {"latency_ms": True},
            {"fail_status": 200},
            {"fail_status": 503, "fail_count": 0},
            {"rate_limit": "yes"},
            {"rate_limit_count": 1.5},
            {"retry_after_s": None},
            {"latency_ms": 10, "fail_status": "x"},  # valid field must not be applied either
        ]
        for body in bad_bodies:
            with self.subTest(body=body):
                data = self.assert_json(self.put_control(body), 400)
                self.assertIsInstance(data["error"], str)
                self.assertTrue(data["error"])
        self.assertEqual(self.control_state()["settings"], self.DEFAULTS)

    def test_error_messages_name_the_problem(self) -> None:
        self.assertIn("latency_ms", self.put_control({"latency_ms": "fast"}).json()["error"])
        self.assertIn("unknown setting", self.put_control({"latency": 5}).json()["error"])
        self.assertIn("not valid JSON", self.put_control(b"{").json()["error"])

    def test_wrong_methods_are_405(self) -> None:
        self.assertEqual(self.stub.request("DELETE", "/__control").status, 405)
        self.assertEqual(self.stub.request("GET", "/__control/reset").status, 405)
        self.assertEqual(self.stub.request("POST", "/3/movie/popular", b"{}").status, 405)

    def test_unknown_non_tmdb_path_is_404(self) -> None:
        self.assertEqual(self.stub.request("GET", "/nope").status, 404)


if __name__ == "__main__":
    unittest.main()
