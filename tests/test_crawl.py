"""`dynplayer crawl` against recorded Spotify Web API responses served by a real local server.

The responses in tests/fixtures/spotify/ have the shape of the Web API's answers (search pages
with `next` links and null entries, playlist item pages with episodes, local files and removed
tracks). The server below is a real HTTP server on 127.0.0.1; nothing in the crawler is patched.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from dynplayer.data.crawl import CrawlConfig, CrawlError, crawl, tracks_path_for
from dynplayer.data.sources import read_corpus

FIXTURES = Path(__file__).parent / "fixtures" / "spotify"
CLIENT_ID, CLIENT_SECRET = "test-client", "test-secret"
TOKEN = json.loads((FIXTURES / "token.json").read_text())["access_token"]
P1, P2, P3, P4 = ("37i9dQZF1DX4WYpdgoIcn6", "1a2B3c4D5e6F7g8H9i0J1k", "0vvXsWCC9xrXsKd4FyS8kM",
                  "6ZQGZAD1nS4F9BBgZpLKQq")
P5 = "37i9dQZF1DXcBWIGoYBM5M"


def tid(i: int) -> str:
    return f"AAAAAAAAAA{i:012d}"


# What a complete crawl of ["chill", "workout"] must write (see the fixture files):
# P1 has a removed (null) track and a repeat, P2 a local file, P4 only an episode and a local
# file (so it is skipped), "workout" finds P1 again (so it is not written twice), and P5 is an
# editorial playlist the API answers 404 for (skipped, the crawl goes on).
EXPECTED = [
    (P1, "Chill Hits", [tid(1), tid(2), tid(4), tid(5), tid(1)]),
    (P2, "piano & rain", [tid(3), tid(2)]),
    (P3, "Beast Mode", [tid(6), tid(7), tid(8)]),
]


class RecordedSpotify(ThreadingHTTPServer):
    """Serves the fixture files; can answer 429 once per route or fail with 503 from a point."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.log: list[tuple[float, str, int]] = []  # (time, route, status)
        self.rate_limit_once: dict[str, int] = {}  # route -> Retry-After seconds
        self.fail_playlists_after: int | None = None  # 503 after this many item pages
        self.item_pages_served = 0
        self.tokens_issued = 0
        self.valid_token: str | None = None  # the last token handed out; None = all revoked
        self.revoke_after_item_pages: int | None = None  # expire the token at this point
        self.lock = threading.Lock()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: RecordedSpotify

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output quiet
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _answer(self, route: str, status: int, body: Any,
                headers: dict[str, str] | None = None) -> None:
        with self.server.lock:
            self.server.log.append((time.monotonic(), route, status))
        self._send(status, body, headers)

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length", 0))
        form = parse_qs(self.rfile.read(length).decode())
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if self.path != "/api/token" or form.get("grant_type") != ["client_credentials"]:
            self._answer("token", 400, {"error": "unsupported_grant_type"})
        elif self.headers.get("Authorization") != expected:
            self._answer("token", 400, {"error": "invalid_client",
                                        "error_description": "Invalid client"})
        else:
            body = json.loads((FIXTURES / "token.json").read_text())
            with self.server.lock:
                self.server.tokens_issued += 1
                body["access_token"] = f"{TOKEN}-{self.server.tokens_issued}"
                self.server.valid_token = body["access_token"]
            self._answer("token", 200, body)

    def do_GET(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        offset = q.get("offset", "0")
        if url.path == "/v1/search" and q.get("type") == "playlist":
            route, name = f"search/{q.get('q')}/{offset}", f"search.{q.get('q')}.{offset}.json"
        elif url.path.startswith("/v1/playlists/") and url.path.endswith("/tracks"):
            pid = url.path.split("/")[3]
            route, name = f"playlist/{pid}/{offset}", f"playlist.{pid}.{offset}.json"
        else:
            self._answer(url.path, 404, {"error": {"status": 404, "message": "Not found"}})
            return
        with self.server.lock:
            if self.server.revoke_after_item_pages == self.server.item_pages_served:
                self.server.revoke_after_item_pages = None
                self.server.valid_token = None  # the token expires now
            valid = self.server.valid_token
        if valid is None or self.headers.get("Authorization") != f"Bearer {valid}":
            self._answer(route, 401, {"error": {"status": 401,
                                                "message": "The access token expired"}})
            return
        with self.server.lock:
            retry = self.server.rate_limit_once.pop(route, None)
        if retry is not None:
            self._answer(route, 429, {"error": {"status": 429, "message": "API rate limit"}},
                         {"Retry-After": str(retry)})
            return
        if route.startswith("playlist/"):
            with self.server.lock:
                limit = self.server.fail_playlists_after
                failing = limit is not None and self.server.item_pages_served >= limit
                if not failing:
                    self.server.item_pages_served += 1
            if failing:
                self._answer(route, 503, {"error": {"status": 503, "message": "unavailable"}})
                return
        path = FIXTURES / name
        if not path.exists():
            self._answer(route, 404, {"error": {"status": 404, "message": "no recording"}})
            return
        self._answer(route, 200, json.loads(path.read_text()))


@pytest.fixture()
def server() -> Iterator[RecordedSpotify]:
    srv = RecordedSpotify()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def config(srv: RecordedSpotify, **kw: Any) -> CrawlConfig:
    base: dict[str, Any] = dict(client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                api_base=f"{srv.base}/v1", auth_url=f"{srv.base}/api/token",
                                backoff_s=0.01, max_retries=3)
    base.update(kw)
    return CrawlConfig(**base)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DYNPLAYER_SPOTIFY")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "dynplayer.cli", "crawl", *args],
                          capture_output=True, text=True, env=full_env, timeout=60)


def test_crawl_writes_interchange_format_and_honours_retry_after(
    server: RecordedSpotify, tmp_path: Path
) -> None:
    server.rate_limit_once["search/chill/0"] = 1
    out = tmp_path / "spotify.jsonl"
    summary = crawl(["chill", "workout"], out, config(server))

    rows = lines(out)
    assert [(r["pid"], r["name"], r["tracks"]) for r in rows] == EXPECTED
    assert rows[0]["description"] == "Kick back to the best new and recent chill hits."
    assert rows[1]["description"] is None and rows[0]["tags"] == []
    tracks = lines(tracks_path_for(out))
    assert [t["track_id"] for t in tracks] == [tid(i) for i in (1, 2, 4, 5, 3, 6, 7, 8)]
    assert tracks[1] == {"track_id": tid(2), "track_name": "Song 2", "artist": "Ólafur Arnalds",
                         "album": "Album 2", "genres": None}
    assert summary.playlists_written == 3 and summary.playlists_skipped == 2
    assert [s for _, r, s in server.log if r == f"playlist/{P5}/0"] == [404]
    assert summary.rate_limited == 1

    # The 429 said Retry-After: 1; the retry came no sooner.
    hits = [(t, s) for t, r, s in server.log if r == "search/chill/0"]
    assert [s for _, s in hits] == [429, 200]
    assert hits[1][0] - hits[0][0] >= 0.95

    # The second page of P1 was followed; P1 was fetched once although two keywords found it.
    routes = [r for _, r, s in server.log if s == 200]
    assert routes.count(f"playlist/{P1}/0") == 1 and routes.count(f"playlist/{P1}/3") == 1

    # The output is the interchange format: prepare's reader takes it with its track file.
    corpus = read_corpus([out], tracks=[tracks_path_for(out)])
    assert corpus.pids == [P1, P2, P3]
    assert corpus.n_occurrences == 10 and corpus.n_tracks == 8
    assert corpus.artists[corpus.track_ids.index(tid(4))] == "Bonobo"


def test_crawl_refreshes_an_expired_token(server: RecordedSpotify, tmp_path: Path) -> None:
    server.revoke_after_item_pages = 1  # expires after P1's first page
    out = tmp_path / "spotify.jsonl"
    crawl(["chill", "workout"], out, config(server))
    assert [(r["pid"], r["name"], r["tracks"]) for r in lines(out)] == EXPECTED
    assert server.tokens_issued == 2
    assert [s for _, r, s in server.log if r == f"playlist/{P1}/3"] == [401, 200]


def test_crawl_resumes_after_server_failure_without_duplicates(
    server: RecordedSpotify, tmp_path: Path
) -> None:
    out = tmp_path / "spotify.jsonl"
    server.fail_playlists_after = 2  # P1's two pages succeed, P2 then fails with 503
    with pytest.raises(CrawlError, match="server error 503, gave up after 2 retries"):
        crawl(["chill", "workout"], out, config(server, max_retries=2))
    assert [r["pid"] for r in lines(out)] == [P1]
    failed = [r for _, r, s in server.log if s == 503]
    assert failed == [f"playlist/{P2}/0"] * 3  # first try + 2 bounded retries

    state_file = out.with_name(out.name + ".state.json")
    state = json.loads(state_file.read_text())
    assert state["keywords_done"] == ["chill"] and [p["id"] for p in state["pending"]] == [P2]
    # Simulate a crash between appending P1 and saving the state (P1 still pending) that also
    # left a torn half line at the end of the output: neither may cause a duplicate.
    state["pending"].insert(0, {"id": P1, "name": "Chill Hits", "description": None,
                                "keyword": "chill"})
    state_file.write_text(json.dumps(state))
    with open(out, "a") as fh:
        fh.write('{"pid": "torn')
    server.fail_playlists_after = None
    server.log.clear()
    summary = crawl(["chill", "workout"], out, config(server))
    rows = lines(out)
    assert [(r["pid"], r["name"], r["tracks"]) for r in rows] == EXPECTED
    assert summary.playlists_written == 2
    fetched = [r for _, r, _ in server.log]
    assert not any(r.startswith(f"playlist/{P1}/") for r in fetched)  # not fetched again
    assert "search/chill/0" not in fetched  # the finished keyword was not searched again
    tracks = [t["track_id"] for t in lines(tracks_path_for(out))]
    assert len(tracks) == len(set(tracks)) == 8

    # A third run has nothing left to do.
    server.log.clear()
    again = crawl(["chill", "workout"], out, config(server))
    assert again.playlists_written == 0 and len(lines(out)) == 3
    assert [r for _, r, _ in server.log if r != "token"] == []


def test_crawl_cli_end_to_end_and_interrupted_rerun(server: RecordedSpotify,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "c.jsonl"
    kw = tmp_path / "keywords.txt"
    kw.write_text("# moods\nchill\n\nworkout\n")
    args = ["--out", str(out), "--keywords-file", str(kw), "--api-base", f"{server.base}/v1",
            "--auth-url", f"{server.base}/api/token", "--backoff", "0.01", "--max-retries", "1"]
    env = {"DYNPLAYER_SPOTIFY_CLIENT_ID": CLIENT_ID,
           "DYNPLAYER_SPOTIFY_CLIENT_SECRET": CLIENT_SECRET}
    server.fail_playlists_after = 3
    res = run_cli(*args, env=env)
    assert res.returncode == 2
    err_lines = res.stderr.strip().splitlines()
    assert "Traceback" not in res.stderr
    assert err_lines[-1].startswith("dynplayer: error: ") and "rerun to resume" in err_lines[-1]
    server.fail_playlists_after = None
    res = run_cli(*args, env=env)
    assert res.returncode == 0, res.stderr
    assert [(r["pid"], r["name"], r["tracks"]) for r in lines(out)] == EXPECTED


def test_crawl_errors_are_one_line(server: RecordedSpotify, tmp_path: Path) -> None:
    out = tmp_path / "c.jsonl"
    base = ["--out", str(out), "-k", "chill", "--api-base", f"{server.base}/v1",
            "--auth-url", f"{server.base}/api/token"]
    res = run_cli(*base)
    assert res.returncode == 2 and "DYNPLAYER_SPOTIFY_CLIENT_ID" in res.stderr
    res = run_cli(*base, "--client-id", CLIENT_ID, "--client-secret", "wrong")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == ("dynplayer: error: Spotify refused the client credentials "
                                  "(400: Invalid client)")
    assert not out.exists()
    # A Retry-After longer than --max-wait stops with a clear message instead of hanging.
    server.rate_limit_once["search/chill/0"] = 3600
    res = run_cli(*base, "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET,
                  "--max-wait", "5")
    assert res.returncode == 2
    assert "rate limited" in res.stderr and "3600 s" in res.stderr
