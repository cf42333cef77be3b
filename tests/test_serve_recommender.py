"""The recommender contract, run against both implementations (exact numpy and pgvector HNSW)
on the planted synthetic corpus with the real track and text models, plus their agreement with
each other."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from dynplayer.errors import QueryError
from dynplayer.serve.recommender import (
    ExactRecommender,
    PgvectorRecommender,
    Recommender,
    UnknownTrackError,
    text_playlists_of,
)
from dynplayer.store import params
from dynplayer.store.catalog import Catalog
from dynplayer.store.db import open_pool
from dynplayer.store.params import ef_search_for, ef_search_single
from dynplayer.text.search import TextSearcher

pytestmark = pytest.mark.db


def genre_of(name: str | None) -> str:
    match = re.search(r"\((.+), ", name or "")
    assert match, name
    return match.group(1)


@pytest.fixture(scope="module")
def exact(serve_catalog: Catalog, text_searcher: TextSearcher) -> ExactRecommender:
    return ExactRecommender(serve_catalog, text_searcher,
                            text_playlists=text_playlists_of(text_searcher))


@pytest.fixture(scope="module")
def pgvec(indexed_url: str, serve_catalog: Catalog,
          text_searcher: TextSearcher) -> Iterator[PgvectorRecommender]:
    pool = open_pool(indexed_url, min_size=1, max_size=4)
    pool.wait()
    # exact_playlists_max=0: these tests are about the HNSW path (small catalogs otherwise
    # rank their playlists exactly in memory; see test_track_search.py)
    yield PgvectorRecommender(pool, serve_catalog.version, text_searcher,
                              text_playlists=text_playlists_of(text_searcher),
                              exact_playlists_max=0)
    pool.close()


@pytest.fixture(params=["exact", "pgvector"])
def rec(request: pytest.FixtureRequest) -> Recommender:
    return request.getfixturevalue("exact" if request.param == "exact" else "pgvec")


def test_similar_recovers_planted_genres(rec: Recommender, serve_catalog: Catalog) -> None:
    c = serve_catalog
    same = []
    for i in range(0, len(c.track_ids), 20):
        result = rec.similar(c.track_ids[i], k=10)
        assert len(result) == 10
        assert c.track_ids[i] not in {t.track_id for t in result}
        same += [genre_of(t.name) == genre_of(c.names[i]) for t in result]
    assert np.mean(same) >= 0.9


def test_similar_scores_are_cosines_in_order(rec: Recommender, serve_catalog: Catalog) -> None:
    c = serve_catalog
    row = {t: i for i, t in enumerate(c.track_ids)}
    result = rec.similar(c.track_ids[7], k=25)
    scores = np.array([t.score for t in result])
    assert np.all(np.diff(scores) <= 1e-6)
    expected = c.vectors[[row[t.track_id] for t in result]] @ c.vectors[7]
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert result[0].name == c.names[row[result[0].track_id]]
    assert result[0].artist == c.artists[row[result[0].track_id]]


def test_continue_masks_seeds_and_reports_unknown(rec: Recommender,
                                                  serve_catalog: Catalog) -> None:
    c = serve_catalog
    seeds = [c.track_ids[1], "nope-1", c.track_ids[2], c.track_ids[1], "nope-2"]
    result = rec.continue_playlist(seeds, k=30)
    assert result.seeds == [c.track_ids[1], c.track_ids[2]]
    assert result.unknown == ["nope-1", "nope-2"]
    got = [t.track_id for t in result.tracks]
    assert len(got) == 30 and not set(got) & set(result.seeds)
    # the query is the normalised mean of the known seeds' vectors
    q = c.vectors[[1, 2]].mean(axis=0)
    q /= np.linalg.norm(q)
    scores = c.vectors @ q
    scores[[1, 2]] = -np.inf
    best = set(np.argsort(-scores)[:30])
    assert len(best & {c.track_ids.index(t) for t in got}) >= 29


def test_continue_with_no_known_seed_is_an_error(rec: Recommender) -> None:
    with pytest.raises(UnknownTrackError, match="none of the 2 seed track ids is known"):
        rec.continue_playlist(["x", "y"], k=5)
    with pytest.raises(UnknownTrackError, match="unknown track id 'x'"):
        rec.similar("x", k=5)


def test_a_name_alone_is_answered_by_the_text_model(rec: Recommender,
                                                   serve_catalog: Catalog) -> None:
    """No seed (or none the model knows) and a name: the text model's answer, with the unknown
    seeds reported; k up to 500, the challenge's list length."""
    alone = rec.continue_playlist([], k=10, name="chill jazz")
    assert alone.method == "text" and alone.seeds == []
    assert [t.track_id for t in alone.tracks] == [t.track_id for t in rec.text("chill jazz", 10)]
    unknown = rec.continue_playlist(["nope"], k=10, name="chill jazz")
    assert unknown.method == "text" and unknown.unknown == ["nope"]
    assert [t.track_id for t in unknown.tracks] == [t.track_id for t in alone.tracks]
    # with a known seed the name does not replace the seeds
    seeded = rec.continue_playlist([serve_catalog.track_ids[1]], k=10, name="chill jazz")
    assert seeded.method in ("embedding", "two-stage") and seeded.seeds
    long = rec.similar(serve_catalog.track_ids[1], k=min(500, len(serve_catalog.track_ids) - 1))
    assert len({t.track_id for t in long}) == min(500, len(serve_catalog.track_ids) - 1)


def test_text_recovers_planted_genre_with_because(rec: Recommender) -> None:
    # "케이팝" is one of the planted k-pop caption words (dynplayer.data.synthetic.GENRES), so
    # the Korean query must find k-pop as the English one does.
    for word, korean in (("jazz", None), ("rock", None), ("k-pop", "케이팝")):
        for query in filter(None, (word, korean)):
            result = rec.text(query, k=10)
            assert len(result) == 10, query
            share = np.mean([genre_of(t.name) == word for t in result])
            assert share >= 0.8, (query, share)
            for t in result:
                assert t.because, t
                assert all(-1.0 <= b.similarity <= 1.0 for b in t.because)
                assert all(b.caption for b in t.because)


def test_text_matches_searcher_end_to_end(rec: Recommender, text_searcher: TextSearcher) -> None:
    expected = text_searcher.search("chill jazz", k=15)
    got = rec.text("chill jazz", k=15)
    assert [t.track_id for t in got] == [t.track_id for t in expected.tracks]
    np.testing.assert_allclose([t.score for t in got], [t.score for t in expected.tracks],
                               rtol=1e-5)
    # playlists searched in memory: whole requests batched by the thread that encodes them;
    # in the database: only the encoding batched, the searches run side by side there
    in_memory = isinstance(rec, ExactRecommender)
    assert ("_texts" in vars(rec), "_encoder" in vars(rec)) == (in_memory, not in_memory)


def test_text_bridges_korean_loanwords_on_both_paths(rec: Recommender,
                                                    text_searcher: TextSearcher) -> None:
    """"메탈" (metal) is not a caption word of the planted corpus: both paths search it as
    "metal", say so, and answer as the exact searcher does."""
    answer = rec.text_answer("메탈", k=10)
    assert answer.searched_as == "metal"
    expected = text_searcher.search("metal", k=10)
    assert [t.track_id for t in answer.tracks] == [t.track_id for t in expected.tracks]
    assert np.mean([genre_of(t.name) == "metal" for t in answer.tracks]) >= 0.8
    assert rec.text_answer("heavy metal", k=5).searched_as is None


def test_search_tracks_by_name_or_artist(rec: Recommender, serve_catalog: Catalog) -> None:
    found = rec.search_tracks("ARTIST 1", limit=50)
    assert found and all("artist 1" in (t.artist or "").lower() or
                         "artist 1" in (t.name or "").lower() for t in found)
    pops = dict(zip(serve_catalog.track_ids, serve_catalog.popularity, strict=True))
    assert [pops[t.track_id] for t in found] == sorted((pops[t.track_id] for t in found),
                                                       reverse=True)
    assert len(rec.search_tracks("jazz", limit=3)) == 3
    assert rec.search_tracks("%", limit=5) == []  # LIKE wildcards are matched literally
    assert rec.search_tracks("_", limit=5) == []


@pytest.mark.parametrize("call", [
    lambda r: r.similar("t", k=0), lambda r: r.similar("t", k=501),
    lambda r: r.continue_playlist(["a"], k=5, name="   "),
    lambda r: r.continue_playlist(["a"], k=5, name="x" * 501),
    lambda r: r.text("   ", k=5), lambda r: r.text("x" * 501, k=5),
    lambda r: r.continue_playlist([], k=5), lambda r: r.continue_playlist(["a"] * 501, k=5),
    lambda r: r.search_tracks(" ", limit=5), lambda r: r.search_tracks("a", limit=0),
])
def test_bad_input_is_a_query_error(rec: Recommender, call: object) -> None:
    with pytest.raises(QueryError):
        call(rec)  # type: ignore[operator]


def test_hnsw_agrees_with_exact(exact: ExactRecommender, pgvec: PgvectorRecommender,
                                serve_catalog: Catalog) -> None:
    overlaps = []
    for t in serve_catalog.track_ids[::4]:
        a = {x.track_id for x in exact.similar(t, k=50)}
        b = {x.track_id for x in pgvec.similar(t, k=50)}
        overlaps.append(len(a & b) / 50)
    assert np.mean(overlaps) >= 0.99
    for q in ("jazz", "party rock", "sad"):
        assert [t.track_id for t in exact.text(q, k=50)] == \
            [t.track_id for t in pgvec.text(q, k=50)]


def test_ef_search_follows_k() -> None:
    assert ef_search_for(10) == 100  # the floor (chosen on validation captions)
    assert ef_search_for(50) == 125  # a text query's 50 playlists
    assert ef_search_for(100) == 250  # 2.5 x rows
    assert ef_search_for(200) == 500
    assert ef_search_for(700) == 1000  # pgvector's maximum
    assert ef_search_for(60, minimum=40, factor=1.5) == 90
    # one track's neighbours: one ef_search per TRACKS_PER_SINGLE_EF tracks of the table
    assert ef_search_single(20, 0) == ef_search_for(20) == 100
    assert ef_search_single(20, 166_363) == 100  # the usual rule below 200k tracks
    assert ef_search_single(21, 500_000) == 250
    assert ef_search_single(21, 1_976_343) == 989
    assert ef_search_single(21, 10_000_000) == 1000  # pgvector's maximum
    assert ef_search_single(300, 500_000) == 750  # never below the usual rule


def test_one_track_is_searched_with_an_ef_search_for_its_table(
        indexed_url: str, serve_catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    """A single track's query reads the table's size and sets ef_search from it; a query of
    several seeds keeps the rule of its rows."""
    monkeypatch.setattr(params, "TRACKS_PER_SINGLE_EF", 1)  # every track one ef_search
    n = len(serve_catalog.track_ids)
    assert n > ef_search_for(21)
    pool = open_pool(indexed_url, min_size=1, max_size=1)  # one connection: SHOW sees it
    pool.wait()
    try:
        rec = PgvectorRecommender(pool, serve_catalog.version)

        def ef_after(call: Callable[[], object]) -> int:
            call()
            with pool.connection() as conn:
                row = conn.execute("SHOW hnsw.ef_search").fetchone()
                assert row is not None
                return int(row[0])

        t = serve_catalog.track_ids
        assert ef_after(lambda: rec.similar(t[0], k=20, max_per_artist=0)) == min(n, 1000)
        assert ef_after(lambda: rec.continue_playlist(t[:3], k=20, max_per_artist=0)) == \
            ef_search_for(23)
    finally:
        pool.close()
