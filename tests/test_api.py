"""The HTTP API through TestClient on the real embedded PostgreSQL: every route, every bad
input (JSON errors, never a 500), readiness, the admin token, CORS and the OpenAPI spec."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dynplayer.serve.app import create_app
from dynplayer.serve.schemas import TextResponse
from dynplayer.settings import Settings
from dynplayer.store.catalog import Catalog
from dynplayer.text.search import TextSearcher

pytestmark = pytest.mark.db

ALLOWED = "http://pages.example"


def make_settings(url: str, run_dir: Path, **extra: Any) -> Settings:
    return Settings(database_url=url, run_dir=run_dir, backend="pgvector", auto_index=False,
                    **extra)


@pytest.fixture(scope="module")
def app(indexed_url: str, serve_run_dir: Path) -> FastAPI:
    """The served run's own text model, loaded from its run directory as `dynplayer serve`
    does (no searcher_factory), aggregating the model's own number of playlists."""
    settings = make_settings(indexed_url, serve_run_dir, admin_token="s3cret",
                             cors_origins=[ALLOWED])
    return create_app(settings)


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:  # runs the lifespan: loads the run, opens the pool
        yield c


def test_text(client: TestClient, serve_catalog: Catalog, text_searcher: TextSearcher) -> None:
    r = client.post("/v1/recommend/text", json={"text": "smooth jazz bebop", "k": 7})
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers["content-type"] == "application/json"
    TextResponse.model_validate_json(r.content, strict=True)  # the documented response model
    assert body["model_version"] == serve_catalog.version and body["text"] == "smooth jazz bebop"
    assert body["searched_as"] is None  # nothing to bridge in an English query
    assert len(body["tracks"]) == 7
    names = dict(zip(serve_catalog.track_ids, serve_catalog.names, strict=True))
    row_of = {pid: i for i, pid in enumerate(text_searcher.playlist_pids)}
    col = {tid: i for i, tid in enumerate(text_searcher.track_ids)}
    for t in body["tracks"]:
        assert set(t) == {"track_id", "name", "artist", "score", "because"}
        assert t["name"] == names[t["track_id"]] and t["artist"].startswith("Artist ")
        assert t["because"] and all(set(b) == {"pid", "caption", "similarity"}
                                    for b in t["because"])
        assert len(t["because"]) <= 10  # DYNPLAYER_BECAUSE_LIMIT
        # Contributors best first: by what each added to the score, occurrences x
        # similarity^power (the text contract), which is not always the similarity order.
        parts = [text_searcher.occ[row_of[b["pid"]], col[t["track_id"]]]
                 * max(b["similarity"], 0.0) ** text_searcher.cfg.sim_power
                 for b in t["because"]]
        assert parts == sorted(parts, reverse=True)
    assert sum("jazz" in t["name"] for t in body["tracks"]) >= 6
    scores = [t["score"] for t in body["tracks"]]
    assert scores == sorted(scores, reverse=True)


def test_text_korean(client: TestClient) -> None:
    r = client.post("/v1/recommend/text", json={"text": "케이팝 아이돌", "k": 5})
    assert r.status_code == 200, r.text
    tracks = r.json()["tracks"]
    assert len(tracks) == 5 and sum("k-pop" in t["name"] for t in tracks) >= 4
    assert any("케이팝" in b["caption"] or "아이돌" in b["caption"]
               for t in tracks for b in t["because"])


def test_text_says_how_a_korean_loanword_was_searched(client: TestClient) -> None:
    r = client.post("/v1/recommend/text", json={"text": "메탈", "k": 5})
    assert r.status_code == 200, r.text
    TextResponse.model_validate_json(r.content, strict=True)
    body = r.json()
    assert body["text"] == "메탈" and body["searched_as"] == "metal"
    assert sum("metal" in t["name"] for t in body["tracks"]) >= 4


def test_continue_reports_unknown_and_masks_seeds(client: TestClient,
                                                  serve_catalog: Catalog) -> None:
    seeds = serve_catalog.track_ids[:3]
    r = client.post("/v1/recommend/continue", json={"track_ids": [*seeds, "nope"], "k": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["seeds"] == seeds and body["unknown_track_ids"] == ["nope"]
    got = [t["track_id"] for t in body["tracks"]]
    assert len(got) == 10 and not set(got) & set(seeds)


def test_continue_with_a_name(client: TestClient, serve_catalog: Catalog) -> None:
    """A name alone is answered by the text model (`method` says so); k up to 500."""
    r = client.post("/v1/recommend/continue", json={"name": "chill jazz", "k": 12})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["method"] == "text" and body["seeds"] == [] and len(body["tracks"]) == 12
    text = client.post("/v1/recommend/text", json={"text": "chill jazz", "k": 12}).json()
    assert [t["track_id"] for t in body["tracks"]] == [t["track_id"] for t in text["tracks"]]
    seeds = serve_catalog.track_ids[:2]
    r = client.post("/v1/recommend/continue", json={"track_ids": seeds, "name": "chill jazz",
                                                    "k": 500})
    assert r.status_code == 200 and r.json()["method"] in ("embedding", "two-stage")
    assert len(r.json()["tracks"]) == min(500, len(serve_catalog.track_ids) - 2)


def test_similar_and_search(client: TestClient, serve_catalog: Catalog) -> None:
    tid = serve_catalog.track_ids[5]
    r = client.get(f"/v1/tracks/{tid}/similar", params={"k": 4})
    assert r.status_code == 200 and r.json()["track_id"] == tid
    assert len(r.json()["tracks"]) == 4 and tid not in [t["track_id"] for t in r.json()["tracks"]]
    r = client.get("/v1/tracks/search", params={"q": "artist 2", "limit": 5})
    assert r.status_code == 200
    found = r.json()["tracks"]
    assert len(found) == 5 and all("artist 2" in t["artist"].lower() for t in found)


def test_health_and_ready(client: TestClient, serve_catalog: Catalog) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"ready": True, "model_loaded": True, "database": "ok",
                        "model_version": serve_catalog.version, "backend": "pgvector",
                        "text_model": True, "detail": None}


LONG = "x" * 501
BAD_INPUTS = [
    ("post", "/v1/recommend/text", {"json": {"k": 5}}, 422, "text"),
    ("post", "/v1/recommend/text", {"json": {"text": "", "k": 5}}, 422, "text"),
    ("post", "/v1/recommend/text", {"json": {"text": "   ", "k": 5}}, 422, "whitespace"),
    ("post", "/v1/recommend/text", {"json": {"text": LONG, "k": 5}}, 422, "500 characters"),
    ("post", "/v1/recommend/text", {"json": {"text": 12, "k": 5}}, 422, "text"),
    ("post", "/v1/recommend/text", {"json": {"text": "jazz", "k": 0}}, 422, "k"),
    ("post", "/v1/recommend/text", {"json": {"text": "jazz", "k": 501}}, 422, "500"),
    ("post", "/v1/recommend/text", {"json": {"text": "jazz", "k": "ten"}}, 422, "k"),
    ("post", "/v1/recommend/text", {"json": {"text": "jazz", "k": 2.5}}, 422, "k"),
    ("post", "/v1/recommend/text", {"json": {"text": "jazz", "extra": 1}}, 422, "extra"),
    ("post", "/v1/recommend/text", {"json": {"text": "ja\u0000zz"}}, 422, "NUL"),
    ("post", "/v1/recommend/text", {"json": ["jazz"]}, 422, "body: expected a JSON object, "
     "got an array"),
    ("post", "/v1/recommend/text", {"content": b"{not json",
                                    "headers": {"content-type": "application/json"}}, 422,
     "JSON"),
    # each names the problem and the field: it said "15: JSON decode error", "Field required"
    # (which field?), 422 for a text/plain body and a 400 http_error for invalid UTF-8
    ("post", "/v1/recommend/text", {"content": b'{"text": "jazz",',
                                    "headers": {"content-type": "application/json"}}, 422,
     "body: malformed JSON at character 16: Expecting property name"),
    ("post", "/v1/recommend/text", {"content": b'{"text": "jazz"}',
                                    "headers": {"content-type": "text/plain"}}, 415,
     "Content-Type: application/json"),
    ("post", "/v1/recommend/text", {"content": b'{"text": "jazz"}',
                                    "headers": {"content-type":
                                                "application/x-www-form-urlencoded"}}, 415,
     "-H 'Content-Type: application/json'"),
    ("post", "/v1/recommend/text", {"content": b"",
                                    "headers": {"content-type": "application/json"}}, 422,
     "body: missing; send a JSON object with the field(s) 'text'"),
    ("post", "/v1/recommend/text", {"content": b'{"text": "\xff\xfe"}',
                                    "headers": {"content-type": "application/json"}}, 422,
     "body: malformed JSON: not valid UTF-8"),
    ("post", "/v1/recommend/text", {"json": {"k": 5}}, 422, "field 'text': Field required"),
    ("post", "/v1/recommend/text", {"json": {"text": 5}}, 422, "field 'text'"),
    ("post", "/v1/recommend/text", {"content": b'{"text": "\\ud800"}',
                                    "headers": {"content-type": "application/json"}}, 422,
     ""),
    ("post", "/v1/recommend/continue", {"json": {"track_ids": []}}, 422,
     "give track_ids, a name, or both"),
    ("post", "/v1/recommend/continue", {"json": {"name": "  "}}, 422, "name"),
    ("post", "/v1/recommend/continue", {"json": {"name": "x" * 501}}, 422, "500"),
    ("post", "/v1/recommend/continue", {"json": {"name": 5}}, 422, "name"),
    ("post", "/v1/recommend/continue", {"json": {"track_ids": ["a"] * 501}}, 422, "500"),
    ("post", "/v1/recommend/continue", {"json": {"track_ids": "abc"}}, 422, "list"),
    ("post", "/v1/recommend/continue", {"json": {"track_ids": [""]}}, 422, "track_ids"),
    ("post", "/v1/recommend/continue", {"json": {"track_ids": ["a\u0000"]}}, 422, "NUL"),
    ("post", "/v1/recommend/continue", {"json": {"track_ids": ["x" * 201]}}, 422, "200"),
    ("post", "/v1/recommend/continue", {"json": {"track_ids": ["a"], "k": -1}}, 422, "k"),
    ("post", "/v1/recommend/continue", {"json": {"track_ids": ["nope", "nada"]}}, 404,
     "none of the 2 seed track ids is known"),
    ("get", "/v1/tracks/nope/similar", {}, 404, "unknown track id 'nope'"),
    ("get", "/v1/tracks/nope/similar?k=0", {}, 422, "k"),
    ("get", "/v1/tracks/nope/similar?k=abc", {}, 422, "k"),
    ("get", "/v1/tracks/a%00b/similar", {}, 422, "NUL"),
    ("get", "/v1/tracks/search", {}, 422, "q"),
    ("get", "/v1/tracks/search?q=", {}, 422, "q"),
    ("get", "/v1/tracks/search?q=%20%20", {}, 422, "whitespace"),
    ("get", f"/v1/tracks/search?q={'y' * 201}", {}, 422, "200"),
    ("get", "/v1/tracks/search?q=a&limit=0", {}, 422, "limit"),
    ("get", "/v1/recommend/text", {}, 405, "Method Not Allowed"),
    ("get", "/v1/no/such/route", {}, 404, "Not Found"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "needle"), BAD_INPUTS)
def test_bad_input_gets_a_clear_json_error(client: TestClient, method: str, path: str,
                                           kwargs: dict[str, Any], status: int,
                                           needle: str) -> None:
    r = client.request(method.upper(), path, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "message"} and body["message"]
    assert needle.lower() in body["message"].lower(), body


def test_admin_needs_the_token(client: TestClient, serve_catalog: Catalog) -> None:
    assert client.post("/v1/admin/reload").status_code == 401
    r = client.post("/v1/admin/reload", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    r = client.post("/v1/admin/reload", headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200 and r.json()["model_version"] == serve_catalog.version


def test_admin_is_off_without_a_configured_token(indexed_url: str, serve_run_dir: Path,
                                                 text_searcher: object) -> None:
    app = create_app(make_settings(indexed_url, serve_run_dir),
                     searcher_factory=lambda _run: text_searcher)  # type: ignore[arg-type,return-value]
    with TestClient(app) as c:
        r = c.post("/v1/admin/reindex", headers={"Authorization": "Bearer anything"})
        assert r.status_code == 403 and "DYNPLAYER_ADMIN_TOKEN" in r.json()["message"]


def test_cors_only_for_configured_origins(client: TestClient) -> None:
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}
    ok = client.options("/v1/recommend/text", headers={"Origin": ALLOWED, **preflight})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == ALLOWED
    bad = client.options("/v1/recommend/text",
                         headers={"Origin": "http://evil.example", **preflight})
    assert "access-control-allow-origin" not in bad.headers
    r = client.get("/healthz", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_openapi_docs_and_page(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/v1/recommend/text", "/v1/recommend/continue", "/v1/tracks/{track_id}/similar",
            "/v1/tracks/search", "/healthz", "/readyz"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "<title>Dynplayer</title>" in page.text
    assert client.get("/ui/app.js").status_code == 200
    assert "text/css" in client.get("/ui/style.css").headers["content-type"]


def test_exact_backend_needs_no_database(serve_run_dir: Path, serve_catalog: Catalog,
                                         text_searcher: object) -> None:
    settings = Settings(run_dir=serve_run_dir, backend="exact", database_url=None)
    app = create_app(settings, searcher_factory=lambda _run: text_searcher)  # type: ignore[arg-type,return-value]
    with TestClient(app) as c:
        ready = c.get("/readyz").json()
        assert ready["ready"] and ready["database"] == "not used"
        assert ready["model_version"] == serve_catalog.version
        r = c.post("/v1/recommend/text", json={"text": "metal", "k": 3})
        assert r.status_code == 200 and len(r.json()["tracks"]) == 3


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DYNPLAYER_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("DYNPLAYER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DYNPLAYER_POOL_TIMEOUT", "0.5")
    monkeypatch.delenv("DYNPLAYER_DATABASE_URL", raising=False)
    s = Settings()
    assert s.cors_origins == ["https://a.example", "https://b.example"]
    assert s.resolved_data_dir() == tmp_path and s.pool_timeout == 0.5
    assert s.database_url is None and s.backend == "pgvector"
    monkeypatch.setenv("DYNPLAYER_BACKEND", "sqlite")
    with pytest.raises(ValueError, match="backend"):
        Settings()


def test_spotify_uris_and_links_are_track_ids(client: TestClient, serve_catalog: Catalog) -> None:
    """`spotify:track:ID` and `https://open.spotify.com/track/ID?si=...` name the track ID
    wherever a track id is accepted (they were 'unknown track id')."""
    from urllib.parse import quote

    tid = serve_catalog.track_ids[3]
    plain = client.get(f"/v1/tracks/{tid}/similar", params={"k": 5}).json()
    for spelled in (f"spotify:track:{tid}", f"https://open.spotify.com/track/{tid}?si=a1b2c3"):
        r = client.get(f"/v1/tracks/{quote(spelled, safe='')}/similar", params={"k": 5})
        assert r.status_code == 200, (spelled, r.text)
        assert r.json() == plain  # the bare id is echoed
    r = client.post("/v1/recommend/continue", json={"track_ids": [
        f"spotify:track:{tid}", f"https://open.spotify.com/track/{serve_catalog.track_ids[4]}",
        "spotify:track:nope"], "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["seeds"] == [tid, serve_catalog.track_ids[4]]
    assert body["unknown_track_ids"] == ["nope"]


def test_docs_and_redoc_work_offline(client: TestClient) -> None:
    """/docs and /redoc load Swagger UI / ReDoc from the installed package (they came from a
    CDN: blank pages without internet); every asset they name is served here; a favicon."""
    import re

    for page in ("/docs", "/redoc"):
        r = client.get(page)
        assert r.status_code == 200, page
        urls = re.findall(r'(?:src|href)="([^"]+)"', r.text)  # scripts, styles, favicon
        assert urls and not [u for u in urls if u.startswith(("http:", "https:", "//"))], urls
        for u in urls:
            asset = client.get(u)
            assert asset.status_code == 200 and len(asset.content) > 100, (page, u)
    assert client.get("/openapi.json").status_code == 200
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/png"
    assert icon.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_route_dependencies_run_on_the_event_loop() -> None:
    # A plain `def` dependency runs in FastAPI's thread pool: one thread hop per dependency
    # per request (5% of the text route's CPU under 8 clients). These only read attributes.
    import inspect

    from dynplayer.serve import routes

    assert inspect.iscoroutinefunction(routes.get_service)
    assert inspect.iscoroutinefunction(routes.get_recommender)
