"""The Python API (`from dynplayer import Dynplayer`): typed results, to_pandas, names and
Spotify links as track ids; and the CLI, the Python API and the service (both backends) giving
the same tracks with the same scores for one query."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dynplayer import Dynplayer, Results, Track
from dynplayer.errors import DynplayerError, QueryError
from dynplayer.text.model import TextConfig
from dynplayer.text.train import train_text
from svd_vectors import svd_run


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory, synthetic_corpus_dir: Path) -> Path:
    run = tmp_path_factory.mktemp("pyapi") / "run"
    svd_run(synthetic_corpus_dir, run, dim=32)
    train_text(run, TextConfig(encoder="use", epochs=5, batch_size=64, embed_dim=64, hidden=128))
    return run


@pytest.fixture(scope="module")
def model(text_run: Path) -> Dynplayer:
    return Dynplayer.load(text_run)


def genre(t: Track) -> str:
    return (t.name or "").split("(")[1].split(",")[0]


def test_search_recommend_similar_are_typed(model: Dynplayer) -> None:
    r = model.search("smooth jazz", k=10)
    assert isinstance(r, Results) and len(r) == 10 and r.kind == "search"
    assert all(isinstance(t, Track) for t in r) and [t.rank for t in r] == list(range(1, 11))
    assert sum(genre(t) == "jazz" for t in r) >= 8  # the planted genre
    assert [t.score for t in r] == sorted((t.score for t in r), reverse=True)
    assert r[0].because and r.playlists and r.model_version == model.model_version

    seeds = r.track_ids[:3]
    rec = model.recommend([*seeds, "spotify:track:nope"], k=5)
    assert len(rec) == 5 and rec.unknown == ("nope",) and not set(seeds) & set(rec.track_ids)

    sim = model.similar(seeds[0], k=5)
    assert len(sim) == 5 and seeds[0] not in sim.track_ids and sim.query == seeds[0]
    # the same answer for a URI, a link and the track's name
    name = model.track(seeds[0]).name
    assert name is not None
    for spelled in (f"spotify:track:{seeds[0]}", f"https://open.spotify.com/track/{seeds[0]}"
                    "?si=0123abcd", name.upper()):
        assert model.similar(spelled, k=5).tracks == sim.tracks, spelled
    with pytest.raises(QueryError, match="no track with the id or name"):
        model.similar("no-such-id")


def test_find_tracks_and_to_pandas(model: Dynplayer) -> None:
    found = model.find_tracks("ARTIST 7", limit=5)
    assert len(found) == 5 and all("Artist 7" in (t.artist or "") for t in found)
    assert all(t.score is None for t in found)
    df = model.search("heavy metal", k=4).to_pandas()
    assert list(df.columns) == ["track_id", "name", "artist", "score", "because"]
    assert list(df.index) == [1, 2, 3, 4] and df["score"].is_monotonic_decreasing


def test_to_pandas_without_pandas_is_a_clear_error(model: Dynplayer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas -> ImportError
    r = model.search("jazz", k=2)
    with pytest.raises(DynplayerError, match=r"needs pandas.*pip install pandas"):
        r.to_pandas()
    assert r.to_records()[0]["track_id"] == r[0].track_id


def test_a_run_without_text_model(text_run: Path, tmp_path: Path) -> None:
    m = Dynplayer.load(text_run, text=False)
    assert not m.has_text and len(m.similar(m.track_ids[0], 3)) == 3
    with pytest.raises(DynplayerError, match="no text model"):
        m.search("jazz")


# ---- one query, every path: the same tracks, the same scores --------------------------------

QUERIES = ["smooth jazz", "신나는 k-pop", "rainy day chill", "heavy metal workout"]


def _cli_jsonl(run: Path, capsys: pytest.CaptureFixture[str],
               monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    from dynplayer.cli import main

    queries = tmp_path / "q.txt"
    queries.write_text("\n".join(QUERIES) + "\n", encoding="utf-8")
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["dynplayer", "search", str(run), "--queries",
                                      str(queries), "-k", "20", "--jsonl"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code in (0, None)
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.mark.db
def test_cli_python_api_and_service_score_alike(
        text_run: Path, model: Dynplayer, new_database: Any, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI used TextSearcher.search and the pgvector service HNSW over the playlists: on MPD
    "rainy day jazz" scored 4.006 by one and 4.001 by the other, two ranks swapped. A poor HNSW
    graph (m=2) here makes the approximate path miss playlists as that one did; the service
    must still answer as the CLI does (small catalogs rank playlists exactly in memory)."""
    from dynplayer.serve.app import create_app
    from dynplayer.settings import Settings
    from dynplayer.store.indexing import index_run

    cli = _cli_jsonl(text_run, capsys, monkeypatch, tmp_path)
    assert [c["query"] for c in cli] == QUERIES
    url = new_database("score_alike")
    base = Settings(database_url=url, run_dir=text_run, version_poll=0, hnsw_m=2, hnsw_track_m=2,
                    hnsw_ef_construction=4, ef_search_min=1, ef_search_factor=1.0)
    index_run(text_run, replace_settings(base, backend="pgvector"), echo=lambda _m: None)
    answers: dict[str, list[tuple[list[str], list[float]]]] = {}
    for backend in ("exact", "pgvector"):
        with TestClient(create_app(replace_settings(base, backend=backend))) as client:
            got = []
            for q in QUERIES:
                body = client.post("/v1/recommend/text", json={"text": q, "k": 20}).json()
                got.append(([t["track_id"] for t in body["tracks"]],
                            [round(t["score"], 6) for t in body["tracks"]]))
            answers[backend] = got
    for i, q in enumerate(QUERIES):
        py = model.search(q, k=20)
        expected = (cli[i]["tracks"], cli[i]["scores"])
        assert (py.track_ids, [round(t.score or 0, 6) for t in py]) == expected, q
        # The API process runs one BLAS thread (DYNPLAYER_BLAS_THREADS), the CLI numpy's
        # default: sums in another order differ in the last float32 digit, never in the order.
        for backend in ("exact", "pgvector"):
            ids, scores = answers[backend][i]
            assert ids == expected[0], (backend, q)
            assert scores == pytest.approx(expected[1], abs=2e-6), (backend, q)


def replace_settings(s: Any, **changes: Any) -> Any:
    return s.model_copy(update=changes)


