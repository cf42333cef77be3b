"""Artist variety (`dynplayer.diversity`): the cap on hand-made pools, the bench's metrics worked
out by hand, and the cap on every answer kind of both backends, the API and the CLI, checked
against a naive reference (walk the uncapped pool, keep a track while its artist has room)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from dynplayer.diversity import (
    DEFAULTS,
    POOL_FACTOR,
    artist_codes,
    cap_per_artist,
    check_max_per_artist,
    diversify,
    pool_size,
)
from dynplayer.errors import QueryError
from dynplayer.serve.diversity_bench import cap_metrics, choose_default


def reference(artists: list[str | None], n: int, k: int) -> list[int]:
    """The cap as a reader would do it by hand: a loop over the pool."""
    if n <= 0:
        return list(range(min(k, len(artists))))
    seen: Counter[str] = Counter()
    kept, skipped = [], []
    for i, a in enumerate(artists):
        key = (a or "").strip().casefold() or f"#{i}"
        if seen[key] < n:
            seen[key] += 1
            kept.append(i)
        else:
            skipped.append(i)
    return sorted(kept[:k] + skipped[:max(0, k - len(kept))])


def test_cap_keeps_order_and_fills_from_the_skipped() -> None:
    pool = ["Beatles", "beatles ", "Beatles", "Oasis", "Beatles", "Oasis", None, None, "Blur"]
    assert diversify(pool, 1, 4) == [0, 3, 6, 7]  # unknown artists are not capped together
    assert diversify(pool, 2, 5) == [0, 1, 3, 5, 6]  # case and spaces do not make an artist
    assert diversify(pool, 0, 3) == [0, 1, 2]
    # too few artists for k: the best skipped ones fill it, in pool order
    assert diversify(["A", "A", "A", "B"], 1, 3) == [0, 1, 3]
    assert diversify([], 2, 5) == []
    rng = np.random.default_rng(0)
    for _ in range(200):  # against the loop, on random pools
        m = int(rng.integers(0, 60))
        artists = [None if x == 0 else f"a{x}" for x in rng.integers(0, 8, m)]
        n, k = int(rng.integers(0, 4)), int(rng.integers(1, 30))
        assert diversify(artists, n, k) == reference(artists, n, k)


def test_codes_pool_and_checks() -> None:
    codes = artist_codes(["X", "x", None, "Y", ""])
    assert codes[0] == codes[1] != codes[3] and codes[2] != codes[4] and codes[2] < 0
    assert pool_size(20, 0) == 20 and pool_size(20, 3) == 20 * POOL_FACTOR
    assert pool_size(500, 2, available=1000) == 1000
    assert check_max_per_artist(None, "continue") == DEFAULTS["continue"]
    assert check_max_per_artist(0, "text") == 0
    for bad in (-1, 51, True, 2.5):
        with pytest.raises(QueryError, match="max_per_artist"):
            check_max_per_artist(bad, "similar")  # type: ignore[arg-type]
    assert cap_per_artist(np.zeros(1000, np.int64), 3, 500).tolist() == list(range(500))


def test_bench_metrics_by_hand() -> None:
    # two queries over five items; artists: items 0, 1, 2 by artist 0, items 3, 4 by 1, 2
    codes = np.array([0, 0, 0, 1, 2])
    truth = sp.csr_matrix(np.array([[1, 1, 0, 0, 1], [0, 0, 1, 0, 0]], dtype=np.float32))
    pools = [np.array([0, 1, 2, 3, 4]), np.array([0, 1, 2, 3, 4])]
    rows = cap_metrics(pools, codes, truth, caps=(0, 1), k=2)
    # no cap: top 2 = items 0, 1 -> 2/2 and 0/1 hits; one artist each
    assert rows[0] == {"recall@10": 0.5, "distinct_artists@10": 1.0, "queries": 2}
    # one per artist: items 0, 3 -> 1/2 and 0/1; two artists each
    assert rows[1] == {"recall@10": 0.25, "distinct_artists@10": 2.0, "queries": 2}
    table = {0: {"recall@10": 0.40}, 1: {"recall@10": 0.30}, 2: {"recall@10": 0.395},
             3: {"recall@10": 0.399}}
    assert choose_default(table, tolerance=0.02) == 2  # the tightest within 2%
    assert choose_default(table, tolerance=0.001) == 0


@pytest.fixture(scope="module")
def recs(serve_catalog, text_searcher, indexed_url) -> Iterator[dict[str, object]]:  # type: ignore[no-untyped-def]
    from dynplayer.serve.recommender import ExactRecommender, PgvectorRecommender
    from dynplayer.store.db import open_pool

    pool = open_pool(indexed_url, min_size=1, max_size=2)
    pool.wait()
    yield {"exact": ExactRecommender(serve_catalog, text_searcher, text_playlists=50),
           "pgvector": PgvectorRecommender(pool, serve_catalog.version, text_searcher,
                                           text_playlists=50, exact_playlists_max=0)}
    pool.close()


@pytest.mark.db
@pytest.mark.parametrize("backend", ["exact", "pgvector"])
def test_every_answer_kind_is_capped_like_the_reference(recs, backend: str,  # type: ignore[no-untyped-def]
                                                        serve_catalog) -> None:
    rec = recs[backend]
    c = serve_catalog
    k = 8
    answers = {
        "similar": lambda n, kk: rec.similar(c.track_ids[3], kk, n),
        "continue": lambda n, kk: rec.continue_playlist(c.track_ids[10:13], kk,
                                                         max_per_artist=n).tracks,
        "text": lambda n, kk: rec.text("smooth jazz bebop", kk, n),
    }
    for kind, answer in answers.items():
        full = answer(0, POOL_FACTOR * k)
        capped = answer(1, k)
        want = [full[i].track_id for i in reference([t.artist for t in full], 1, k)]
        assert [t.track_id for t in capped] == want, kind
        assert len({t.artist for t in capped}) == k, kind  # the planted corpus has the artists
        assert [t.track_id for t in answer(0, k)] == [t.track_id for t in full[:k]], kind
        scores = [t.score for t in capped]
        assert scores == sorted(scores, reverse=True), kind


@pytest.mark.db
def test_the_api_takes_a_cap_on_every_answer(serve_run_dir: Path, serve_catalog,  # type: ignore[no-untyped-def]
                                             text_searcher) -> None:
    from fastapi.testclient import TestClient

    from dynplayer.serve.app import create_app
    from dynplayer.settings import Settings

    settings = Settings(run_dir=serve_run_dir, backend="exact", database_url=None)
    app = create_app(settings, searcher_factory=lambda _run: text_searcher)
    c = serve_catalog
    with TestClient(app) as client:
        r = client.post("/v1/recommend/continue",
                        json={"track_ids": c.track_ids[:3], "k": 6, "max_per_artist": 1})
        assert r.status_code == 200, r.text
        assert len({t["artist"] for t in r.json()["tracks"]}) == 6
        r = client.get(f"/v1/tracks/{c.track_ids[3]}/similar",
                       params={"k": 6, "max_per_artist": 1})
        assert r.status_code == 200 and len({t["artist"] for t in r.json()["tracks"]}) == 6
        r = client.post("/v1/recommend/text", json={"text": "metal", "k": 6,
                                                     "max_per_artist": 1})
        assert r.status_code == 200 and len({t["artist"] for t in r.json()["tracks"]}) == 6
        for bad in (-1, 51, "two"):
            r = client.post("/v1/recommend/text", json={"text": "metal", "max_per_artist": bad})
            assert r.status_code == 422 and "max_per_artist" in r.json()["message"]
        r = client.get(f"/v1/tracks/{c.track_ids[3]}/similar", params={"max_per_artist": -2})
        assert r.status_code == 422 and "max_per_artist" in r.json()["message"]


def test_the_cli_takes_a_cap(serve_run_dir: Path, serve_catalog, cli) -> None:  # type: ignore[no-untyped-def]
    c = serve_catalog
    artist = dict(zip(c.track_ids, c.artists, strict=True))
    code, out, _ = cli("similar", str(serve_run_dir), c.track_ids[3], "-k", "6",
                       "--max-per-artist", "1")
    ids = [line.split()[2] for line in out.splitlines()]
    assert code == 0 and len({artist[t] for t in ids}) == 6
    code, out, _ = cli("recommend", str(serve_run_dir), *c.track_ids[:3], "-k", "6", "--jsonl",
                       "--max-per-artist", "1")
    assert code == 0 and len({artist[t] for t in json.loads(out)["tracks"]}) == 6
    code, out, _ = cli("search", str(serve_run_dir), "metal", "-k", "6", "--max-per-artist",
                       "1")
    assert code == 0 and out.count(" (score ") == 6
    code, _, err = cli("search", str(serve_run_dir), "metal", "--max-per-artist", "-3")
    assert code == 2 and "max_per_artist" in err and len(err.strip().splitlines()) == 1


def test_bench_diversity_on_the_planted_run(serve_run_dir: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """The table the defaults come from, on the planted run (embedding continuation, similar,
    text): no cap reproduces the uncapped ranking's recall, a cap of 1 gives the most artists."""
    code, out, _ = cli("bench", "diversity", str(serve_run_dir), "--caps", "1,3", "--json")
    result = json.loads(out)
    assert code == 0 and result["continue_method"] == "embedding"
    for kind in ("continue", "similar", "text"):
        rows = result[kind]
        assert set(rows) == {"0", "1", "3"}  # no cap is always measured
        assert rows["1"]["distinct_artists@10"] >= rows["3"]["distinct_artists@10"] \
            >= rows["0"]["distinct_artists@10"]
        assert rows["1"]["distinct_artists@10"] == 10.0  # enough artists in every pool
        assert 0 < rows["0"]["recall@10"] <= 1 and rows["0"]["queries"] > 0
        assert result["chosen"][kind] in (0, 1, 3)
    code, out, _ = cli("bench", "diversity", str(serve_run_dir), "--caps", "1")
    assert code == 0 and "| continue |" in out and "chosen" in out
    for bad in (("--caps", "one"), ("--caps", "-1"), ("--split", "train")):
        code, _, err = cli("bench", "diversity", str(serve_run_dir), *bad)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
    code, _, err = cli("bench", "serve", str(serve_run_dir), "-k", "0")
    assert code == 2 and "-k must be from 1 to 200" in err
