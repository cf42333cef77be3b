"""Keeping what was found: one playlist writer (M3U, CSV, JSON with Spotify URIs) behind
`--save FILE` on the CLI and `POST /v1/playlists/export`, which give the same bytes; and the API
process's one BLAS thread (the cost that grew with k in text serving)."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest

from dynplayer.errors import QueryError
from dynplayer.playlist_file import Entry, format_of, render, spotify_uri, write_playlist

SPOTIFY = "3n3Ppam7vgaVa1iaRUc9Lp"
ENTRIES = [Entry(SPOTIFY, "Mr. Brightside", "The Killers"),
           Entry(f"spotify:track:{'7' * 22}", "Song, with a comma", None),
           Entry("12345", None, "멜론 아티스트")]


def test_spotify_uris() -> None:
    assert spotify_uri(SPOTIFY) == f"spotify:track:{SPOTIFY}"
    assert spotify_uri(f"https://open.spotify.com/track/{SPOTIFY}?si=x") == \
        f"spotify:track:{SPOTIFY}"
    assert spotify_uri("12345") is None and spotify_uri("t0000001") is None


def test_the_three_formats_by_hand() -> None:
    m3u = render("Road  trip", ENTRIES, "m3u")
    assert m3u == ("#EXTM3U\n#PLAYLIST:Road trip\n"
                   "#EXTINF:-1,The Killers - Mr. Brightside\n"
                   f"https://open.spotify.com/track/{SPOTIFY}\n"
                   "#EXTINF:-1,unknown artist - Song, with a comma\n"
                   f"https://open.spotify.com/track/{'7' * 22}\n"
                   "#EXTINF:-1,멜론 아티스트 - 12345\n12345\n")
    rows = list(csv.reader(io.StringIO(render("x", ENTRIES, "csv"))))
    assert rows[0] == ["position", "track_id", "spotify_uri", "name", "artist"]
    assert rows[1] == ["1", SPOTIFY, f"spotify:track:{SPOTIFY}", "Mr. Brightside", "The Killers"]
    assert rows[2][3] == "Song, with a comma" and rows[3] == ["3", "12345", "", "", "멜론 아티스트"]
    doc = json.loads(render("Road trip", ENTRIES, "json"))
    assert doc["name"] == "Road trip" and [t["position"] for t in doc["tracks"]] == [1, 2, 3]
    assert doc["tracks"][0] == {"position": 1, "track_id": SPOTIFY,
                                "spotify_uri": f"spotify:track:{SPOTIFY}",
                                "name": "Mr. Brightside", "artist": "The Killers"}
    assert doc["tracks"][2]["spotify_uri"] is None
    with pytest.raises(QueryError, match="unknown playlist format"):
        render("x", ENTRIES, "xspf")


def test_file_names_choose_the_format(tmp_path: Path) -> None:
    assert [format_of(Path(f"a{s}")) for s in (".m3u", ".M3U8", ".csv", ".json")] == \
        ["m3u", "m3u", "csv", "json"]
    with pytest.raises(QueryError, match=r"\.m3u, \.m3u8, \.csv, \.json"):
        format_of(Path("list.txt"))
    out = write_playlist(tmp_path / "sub" / "mix.json", "mix", ENTRIES)
    assert json.loads(out.read_text(encoding="utf-8"))["tracks"][1]["name"] == \
        "Song, with a comma"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp left


@pytest.mark.db
def test_the_api_exports_what_the_cli_saves(serve_run_dir: Path, serve_catalog, text_searcher,  # type: ignore[no-untyped-def]
                                            tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from dynplayer.cli import main
    from dynplayer.serve.app import create_app
    from dynplayer.settings import Settings

    def cli(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["dynplayer", *args])
        with pytest.raises(SystemExit) as info:
            main()
        return int(info.value.code or 0), capsys.readouterr().err

    c = serve_catalog
    saved = tmp_path / "more.csv"
    code, err = cli("similar", str(serve_run_dir), c.track_ids[4], "-k", "5", "--save",
                    str(saved))
    assert code == 0 and f"saved 6 tracks to {saved}" in err
    rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
    ids = [r["track_id"] for r in rows]
    assert ids[0] == c.track_ids[4] and len(ids) == 6  # the track, then its neighbours
    app = create_app(Settings(run_dir=serve_run_dir, backend="exact", database_url=None),
                     searcher_factory=lambda _run: text_searcher)
    with TestClient(app) as client:
        r = client.post("/v1/playlists/export", json={"name": f"More like {rows[0]['name']} - "
                                                      f"{rows[0]['artist']}",
                                                      "track_ids": ids, "format": "csv"})
        assert r.status_code == 200, r.text
        assert r.content == saved.read_bytes()  # the same bytes
        assert r.headers["content-type"].startswith("text/csv")
        assert r.headers["content-disposition"].startswith('attachment; filename="More-like-')
        r = client.post("/v1/playlists/export",
                        json={"name": "mine", "track_ids": [ids[0], "nope"], "format": "m3u"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("audio/x-mpegurl")
        assert r.text.splitlines()[-2:] == ["#EXTINF:-1,unknown artist - nope", "nope"]
        # what the page reads back when it reopens a search from its URL
        r = client.get("/v1/tracks/lookup", params={"ids": f"{ids[1]},nope,spotify:track:x,"
                                                           f"{ids[0]},{ids[1]}"})
        assert r.status_code == 200
        assert [t["track_id"] for t in r.json()["tracks"]] == [ids[1], ids[0]]
        assert r.json()["tracks"][1]["name"] == rows[0]["name"]
        r = client.get("/v1/tracks/lookup", params={"ids": ",".join(["a"] * 501)})
        assert r.status_code == 422 and "1 to 500" in r.json()["message"]
        for body in ({"track_ids": []}, {"track_ids": ["a"], "format": "xspf"},
                     {"track_ids": ["a"], "name": " "}, {"track_ids": ["a"], "extra": 1}):
            r = client.post("/v1/playlists/export", json=body)
            assert r.status_code == 422 and r.json()["error"] == "invalid_request", body
    code, err = cli("search", str(serve_run_dir), "jazz", "-k", "4", "--save",
                    str(tmp_path / "jazz.m3u"))
    assert code == 0 and (tmp_path / "jazz.m3u").read_text(encoding="utf-8").count(
        "#EXTINF") == 4
    code, err = cli("recommend", str(serve_run_dir), *c.track_ids[:2], "-k", "3", "--save",
                    str(tmp_path / "next.json"))
    doc = json.loads((tmp_path / "next.json").read_text(encoding="utf-8"))
    assert code == 0 and [t["track_id"] for t in doc["tracks"][:2]] == c.track_ids[:2]
    assert len(doc["tracks"]) == 5
    # a bad file name is refused before anything is loaded, in one line
    code, err = cli("search", str(serve_run_dir), "jazz", "--save", str(tmp_path / "x.txt"))
    assert code == 2 and "x.txt" in err and len(err.strip().splitlines()) == 1


@pytest.mark.db
def test_the_api_runs_one_blas_thread(serve_run_dir: Path, text_searcher) -> None:  # type: ignore[no-untyped-def]
    """Requests run side by side in threads; BLAS threads of their own only spin (they doubled
    the CPU per text request at k=50): building the app sets one BLAS thread."""
    from fastapi.testclient import TestClient
    from threadpoolctl import ThreadpoolController, threadpool_limits

    from dynplayer.serve.app import create_app
    from dynplayer.settings import Settings

    def blas() -> set[int]:
        return {i["num_threads"] for i in ThreadpoolController().info()
                if i["user_api"] == "blas"}

    with threadpool_limits(limits=2, user_api="blas"):  # restored when the test ends
        assert blas() == {2}
        app = create_app(Settings(run_dir=serve_run_dir, backend="exact", database_url=None),
                         searcher_factory=lambda _run: text_searcher)
        with TestClient(app) as client:
            assert client.get("/readyz").status_code == 200
            assert blas() == {1}
    with threadpool_limits(limits=2, user_api="blas"):  # DYNPLAYER_BLAS_THREADS=0: numpy's
        create_app(Settings(run_dir=serve_run_dir, backend="exact", database_url=None,
                            blas_threads=0), searcher_factory=lambda _run: text_searcher)
        assert blas() == {2}
