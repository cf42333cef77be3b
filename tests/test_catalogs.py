"""Named catalogs (issue 13): one database holds several models side by side, one API process
serves several, and indexing one never takes another's service down. On the real embedded
PostgreSQL, with two planted runs whose track ids do not overlap."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import make_svd_run, make_synthetic
from dynplayer.cli import app as cli
from dynplayer.data.corpus import save_corpus
from dynplayer.errors import ConfigError
from dynplayer.run import load_run, run_version, save_vectors
from dynplayer.serve.app import create_app
from dynplayer.settings import Settings
from dynplayer.store.db import active_version, connect, list_catalogs
from dynplayer.store.indexing import index_run
from dynplayer.store.names import catalog_name_for

pytestmark = pytest.mark.db


def _run(root: Path, name: str, seed: int, prefix: str) -> Path:
    corpus = make_synthetic(seed=seed)
    corpus.track_ids = [f"{prefix}{t}" for t in corpus.track_ids]
    save_corpus(corpus, root / f"corpus_{name}")
    return make_svd_run(root / f"corpus_{name}", root / name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("catalogs")
    return {"mpd": _run(root, "mpd", 0, "en-"), "melon": _run(root, "melon", 1, "ko-"),
            "melon_v2": _run(root, "melon_v2", 2, "ko-")}


@pytest.fixture(scope="module")
def url(new_database: Any, runs: dict[str, Path]) -> str:
    url = new_database("catalogs")
    # The unnamed catalog (public schema, as before catalogs) first: named ones must not touch it.
    index_run(runs["mpd"], Settings(database_url=url), echo=lambda _m: None)
    for name in ("mpd", "melon"):
        index_run(runs[name], Settings(database_url=url, catalog=name), echo=lambda _m: None)
    return str(url)


def _settings(url: str, runs: dict[str, Path], **extra: Any) -> Settings:
    return Settings(database_url=url, backend="pgvector", auto_index=False, version_poll=0,
                    catalogs={"mpd": runs["mpd"], "melon": runs["melon"]}, **extra)


@pytest.fixture
def client(url: str, runs: dict[str, Path]) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(url, runs), searcher_factory=lambda _r: None)) as c:
        yield c


def _similar_ids(client: TestClient, track_id: str, catalog: str | None = None) -> list[str]:
    q = "" if catalog is None else f"&catalog={catalog}"
    r = client.get(f"/v1/tracks/{track_id}/similar?k=5{q}")
    assert r.status_code == 200, r.text
    return [t["track_id"] for t in r.json()["tracks"]]


def test_two_runs_side_by_side_in_one_database(url: str, runs: dict[str, Path]) -> None:
    with connect(url) as conn:
        assert list_catalogs(conn) == ["melon", "mpd"]
        # The unnamed catalog in public is untouched by the named ones' first indexes.
        assert active_version(conn) == run_version(runs["mpd"])
        count = conn.execute("SELECT count(*) FROM public.tracks").fetchone()
        assert count is not None and count[0] == len(load_run(runs["mpd"]).ids)
    for name in ("mpd", "melon"):
        with connect(url, name) as conn:
            assert active_version(conn) == run_version(runs[name])


def test_one_process_serves_both_catalogs(client: TestClient, runs: dict[str, Path]) -> None:
    listed = client.get("/v1/catalogs").json()
    assert listed["default"] == "mpd"
    assert [(c["name"], c["default"], c["ready"]) for c in listed["catalogs"]] == [
        ("mpd", True, True), ("melon", False, True)]
    by_name = {c["name"]: c for c in listed["catalogs"]}
    assert by_name["melon"]["model_version"] == run_version(runs["melon"])
    assert by_name["melon"]["tracks"] == len(load_run(runs["melon"]).ids)
    en, ko = load_run(runs["mpd"]).ids[0], load_run(runs["melon"]).ids[0]
    # No catalog named: the default one, as before catalogs existed.
    assert all(t.startswith("en-") for t in _similar_ids(client, en))
    assert all(t.startswith("ko-") for t in _similar_ids(client, ko, "melon"))
    assert client.get(f"/v1/tracks/{ko}/similar").status_code == 404  # not in the default
    found = client.get("/v1/tracks/search?q=Track&limit=3&catalog=melon").json()["tracks"]
    assert found and all(t["track_id"].startswith("ko-") for t in found)
    r = client.post("/v1/recommend/continue?catalog=melon", json={"track_ids": [ko], "k": 3})
    assert r.status_code == 200 and r.json()["model_version"] == run_version(runs["melon"])
    ready = client.get("/readyz?catalog=melon").json()
    assert ready["ready"] and ready["model_version"] == run_version(runs["melon"])
    r = client.get("/v1/tracks/search?q=Track&catalog=nope")
    assert r.status_code == 404
    assert "unknown catalog 'nope'" in r.json()["message"] and "mpd, melon" in r.json()["message"]


def test_reindexing_one_catalog_leaves_the_other_answering(
        url: str, runs: dict[str, Path]) -> None:
    app = create_app(_settings(url, runs), searcher_factory=lambda _r: None)
    with TestClient(app) as client:
        mpd, melon = app.state.services["mpd"], app.state.services["melon"]
        en = load_run(runs["mpd"]).ids[0]
        before = _similar_ids(client, en)
        # Another process indexes another run as `melon` (as `dynplayer index ... --name melon`).
        index_run(runs["melon_v2"], Settings(database_url=url, catalog="melon"),
                  echo=lambda _m: None)
        assert mpd.follow_database() is None  # its catalog did not change
        assert melon.follow_database() == "stale"  # another run's model is now in its catalog
        assert _similar_ids(client, en) == before
        assert _similar_ids(client, en, "mpd") == before
        r = client.get(f"/v1/tracks/{load_run(runs['melon']).ids[0]}/similar?catalog=melon")
        assert r.status_code == 503 and "catalog melon" in r.json()["message"]
        assert client.get("/readyz").status_code == 200  # the default catalog is fine
        assert client.get("/readyz?catalog=melon").status_code == 503
        listed = {c["name"]: c for c in client.get("/v1/catalogs").json()["catalogs"]}
        assert listed["mpd"]["ready"] and not listed["melon"]["ready"]
        assert "another run" in listed["melon"]["detail"]
    # Put the module's melon back for the other tests.
    index_run(runs["melon"], Settings(database_url=url, catalog="melon"), echo=lambda _m: None)


def test_each_catalog_follows_its_own_model_versions(url: str, runs: dict[str, Path],
                                                     tmp_path: Path) -> None:
    """A retrained run indexed by another process: only its catalog's service reloads."""
    import shutil

    run = tmp_path / "mpd"
    shutil.copytree(runs["mpd"], run)
    settings = Settings(database_url=url, backend="pgvector", auto_index=True, version_poll=0,
                        catalogs={"mine": run, "melon": runs["melon"]})
    app = create_app(settings, searcher_factory=lambda _r: None)
    with TestClient(app) as client:
        mine, melon = app.state.services["mine"], app.state.services["melon"]
        old = mine.recommender.version  # type: ignore[union-attr]
        loaded = load_run(run)
        save_vectors(run, (loaded.vectors * np.float32(-1.0))[:, ::-1].copy(), loaded.ids)
        index_run(run, Settings(database_url=url, catalog="mine"), echo=lambda _m: None)
        assert mine.follow_database() == "reloaded"
        assert mine.recommender.version == run_version(run) != old  # type: ignore[union-attr]
        assert melon.follow_database() is None
        assert client.get("/v1/catalogs?").json()["catalogs"][0]["model_version"] == \
            run_version(run)


def test_cli_names_catalogs_after_their_run(url: str, runs: dict[str, Path]) -> None:
    assert catalog_name_for(Path("/x/runs/MPD-2024 v2")) == "mpd_2024_v2"
    assert catalog_name_for(Path("/x/--")) == "default"
    res = CliRunner().invoke(cli, ["index", str(runs["melon_v2"]), "--database-url", url])
    assert res.exit_code == 0, res.output
    assert "(catalog melon_v2)" in res.output
    assert "track map: 400 tracks placed in" in res.output
    with connect(url) as conn:
        assert "melon_v2" in list_catalogs(conn)
    bad = subprocess.run([sys.executable, "-m", "dynplayer.cli", "index", str(runs["mpd"]),
                          "--database-url", url, "--name", "My Catalog"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "catalog name 'My Catalog'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    res = CliRunner().invoke(cli, ["serve", str(runs["mpd"]), str(runs["melon"]),
                                   "--name", "a", "--database-url", url])
    assert isinstance(res.exception, ConfigError)
    assert "--name is given 1 times for 2 run" in str(res.exception)
    res = CliRunner().invoke(cli, ["serve", str(runs["mpd"]), str(runs["mpd"]),
                                   "--database-url", url])
    assert isinstance(res.exception, ConfigError) and "same catalog" in str(res.exception)


def test_catalogs_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                               runs: dict[str, Path]) -> None:
    monkeypatch.setenv("DYNPLAYER_CATALOGS", json.dumps({"b": str(runs["melon"]),
                                                        "a": str(runs["mpd"])}))
    assert [n for n, _ in Settings().served_catalogs()] == ["b", "a"]  # order kept
    monkeypatch.setenv("DYNPLAYER_CATALOG", "Not OK")
    with pytest.raises(Exception, match="catalog name 'Not OK'"):
        Settings()


def test_track_map_route_on_both_backends(url: str, runs: dict[str, Path],
                                          client: TestClient) -> None:
    r = client.get("/v1/map?limit=50&catalog=melon")
    assert r.status_code == 200
    body = r.json()
    assert body["model_version"] == run_version(runs["melon"])
    points = body["points"]
    assert len(points) == 50 and all(p["track_id"].startswith("ko-") for p in points)
    assert all(0 <= p["x"] <= 1 and 0 <= p["y"] <= 1 for p in points)
    assert {p["genre"] for p in points} >= {"rock", "jazz"}
    assert client.get("/v1/map?limit=0").status_code == 422
    exact = Settings(backend="exact", run_dir=runs["melon"], catalog="melon")
    with TestClient(create_app(exact, searcher_factory=lambda _r: None)) as ex:
        same = ex.get("/v1/map?limit=50").json()["points"]
    assert [p["track_id"] for p in same] == [p["track_id"] for p in points]
    assert np.allclose([[p["x"], p["y"]] for p in same], [[p["x"], p["y"]] for p in points],
                       atol=1e-6)


def test_a_catalog_not_indexed_yet_says_how_to_index_it(url: str, runs: dict[str, Path]) -> None:
    from dynplayer.errors import StoreError
    from dynplayer.serve.service import Service

    service = Service(Settings(database_url=url, run_dir=runs["mpd"], catalog="fresh",
                               auto_index=False, version_poll=0))
    with pytest.raises(StoreError, match=r"holds model None in catalog fresh, not .*"
                                         r"dynplayer index .*mpd --name fresh"):
        service.build()
    with connect(url) as conn:
        assert "fresh" not in list_catalogs(conn)  # nothing half-made


def test_a_served_catalog_reads_its_names_before_the_first_request(
        url: str, runs: dict[str, Path]) -> None:
    """At millions of tracks the names take seconds to read: the service reads them as it
    loads the model (in chunks, `store.db.read_track_rows`), not in a user's first request;
    and its HNSW indexes into the buffers (`store.db.prewarm_indexes`)."""
    from dynplayer.serve.recommender import PgvectorRecommender
    from dynplayer.serve.service import Service

    service = Service(Settings(database_url=url, run_dir=runs["melon"], catalog="melon",
                               auto_index=False, version_poll=0))
    detail = service.build()
    try:
        warm = detail["prewarm"]
        assert "skipped" not in warm and warm["seconds"] >= 0 and warm["index_mb"] > 0
        with connect(url, "melon") as conn:  # both indexes' pages are in the buffers
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_buffercache SCHEMA public")
            for table in ("tracks", "playlists"):
                row = conn.execute(
                    "SELECT min(pg_relation_size(i.indexrelid) / 8192 - coalesce(("
                    "SELECT count(*) FROM public.pg_buffercache b WHERE b.relfilenode = "
                    "pg_relation_filenode(i.indexrelid) AND b.reldatabase = (SELECT oid FROM "
                    "pg_database WHERE datname = current_database())), 0)) FROM pg_index i "
                    "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
                    "WHERE a.amname = 'hnsw' AND i.indrelid = to_regclass(%s)",
                    [table]).fetchone()
                # (pages not in the buffers; no row: the table has no HNSW index)
                assert row is not None and row[0] in ((0, None) if table == "playlists" else (0,))
        rec = service.recommender
        assert isinstance(rec, PgvectorRecommender) and rec._names is not None
        ids = load_run(runs["melon"]).ids
        assert set(rec._names) == set(ids)
        # the autocomplete's matcher is built as the model loads, before it answers
        deadline = time.monotonic() + 60
        while rec._matcher is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rec._matcher is not None
        assert rec.track_info(ids[:3])[ids[0]].track_id == ids[0]
    finally:
        service.close()
