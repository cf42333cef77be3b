"""`/v1/library/...` through the app (exact backend) on a copy of the served run with a library
of the planted synthetic corpus: listing, mix, search, continue, discover, autocomplete, the
errors, and the admin token on the route that writes to a server."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dynplayer.data.corpus import load_corpus
from dynplayer.library.importer import import_library
from dynplayer.library.records import LibraryPlaylist
from dynplayer.library.store import load_library, save_library
from dynplayer.serve.app import create_app
from dynplayer.settings import Settings


@pytest.fixture(scope="module")
def library_client(tmp_path_factory: pytest.TempPathFactory, serve_run_dir: Path,
                   copy_run: Any, synthetic_corpus_dir: Path,
                   text_searcher: Any) -> Iterator[tuple[TestClient, Any]]:
    run_dir = copy_run(serve_run_dir, tmp_path_factory.mktemp("libapi") / "run")
    corpus = load_corpus(synthetic_corpus_dir)
    src = run_dir.parent / "lib.csv"
    with src.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "artist", "title", "album"])
        for t in range(0, 400, 2):
            w.writerow([f"lib{t}", corpus.artists[t], corpus.track_names[t], f"Album {t % 7}"])
    import_library(run_dir, str(src))
    lib = load_library(run_dir)  # a playlist of the listener's, as a server import reads one
    lib.playlists = [LibraryPlaylist("p1", "Evening", ["lib10", "lib12", "lib14"])]
    save_library(run_dir, lib, {})
    settings = Settings(run_dir=run_dir, backend="exact", database_url=None,
                        admin_token="tok")
    app = create_app(settings, searcher_factory=lambda _run: text_searcher)
    with TestClient(app) as client:
        yield client, corpus


def test_list_mix_search_continue_discover(library_client: tuple[TestClient, Any]) -> None:
    client, corpus = library_client
    listed = client.get("/v1/library").json()["libraries"]
    assert [x["name"] for x in listed] == ["default"] and listed[0]["tracks"] == 200
    assert listed[0]["playlists"] == [{"id": "p1", "name": "Evening", "tracks": 3}]
    r = client.post("/v1/library/mix", json={"seeds": ["lib10"], "k": 10, "per_artist": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["tracks"]) == 10 and "lib10" not in body["tracks"]
    assert [i["id"] for i in body["items"]] == body["tracks"]
    assert len({i["artist"] for i in body["items"]}) == 10
    assert all(b["why"] for b in body["because"])
    r = client.post("/v1/library/search", json={"text": "jazz", "k": 8})
    assert r.status_code == 200, r.text
    genres = [corpus.track_genres[int(t[3:])][0] for t in r.json()["tracks"]]
    assert genres.count("jazz") >= 6
    r = client.post("/v1/library/continue", json={"playlist": "evening", "k": 5})
    assert r.status_code == 200 and r.json()["seeds"] == ["lib10", "lib12", "lib14"]
    r = client.post("/v1/library/discover", json={"seeds": ["lib10"], "k": 5})
    owned = {corpus.track_ids[t] for t in range(0, 400, 2)}
    assert r.status_code == 200 and not owned & set(r.json()["tracks"])
    found = client.get("/v1/library/default/tracks", params={"q": "track 10 ("}).json()
    assert found and found[0]["id"] == "lib10"


def test_errors_and_admin(library_client: tuple[TestClient, Any]) -> None:
    client, _ = library_client
    r = client.post("/v1/library/mix", json={"library": "nope", "seeds": ["lib10"]})
    assert r.status_code == 404 and "no library named 'nope'" in r.json()["message"]
    r = client.post("/v1/library/mix", json={"seeds": ["not in the library at all"]})
    assert r.status_code == 422 and r.json()["error"] == "invalid_query"
    r = client.post("/v1/library/mix", json={"seeds": []})
    assert r.status_code == 422
    body = {"name": "Mix", "tracks": ["lib10"], "dry_run": True}
    assert client.post("/v1/library/playlist", json=body).status_code == 401
    r = client.post("/v1/library/playlist", json=body, headers={"Authorization": "Bearer tok"})
    assert r.status_code == 422 and "not imported from a Subsonic server" in r.json()["message"]
