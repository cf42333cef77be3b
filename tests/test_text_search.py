"""Text search end to end on the planted synthetic corpus (its captions name the genre and mood,
some in Korean), offline encoders, the CLI, and the real Melon data (Korean)."""

from __future__ import annotations

import json
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dynplayer.data.corpus import TEST, Corpus, load_corpus
from dynplayer.errors import ArtifactError, ConfigError, QueryError
from dynplayer.text.bench import MATCH_WEIGHTS
from dynplayer.text.evaluate import playlist_retrieval, prepare_eval, ranking_metrics, track_scores
from dynplayer.text.metadata import FieldIndex, MetadataMatch, fold_words
from dynplayer.text.model import TextConfig
from dynplayer.text.search import TextSearcher, feedback_scores
from dynplayer.text.train import train_text
from svd_vectors import svd_run

GENRE_OF_QUERY = {"smooth jazz for a rainy day": "jazz", "신나는 케이팝": "k-pop",
                  "heavy metal gym": "metal", "잔잔한 piano": "classical"}


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """HF_HUB_OFFLINE=1 and every socket connection refused."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield


def _track_genres(corpus: Corpus, searcher: TextSearcher, track_ids: list[str]) -> list[str]:
    genre_of = dict(zip(corpus.track_ids, (g[0] for g in corpus.track_genres), strict=True))
    return [genre_of[t] for t in track_ids]


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory, track_run_dir: Path,
                  copy_run: Any) -> Path:
    """The session's trained track model (a copy) with this module's own text model."""
    run = copy_run(track_run_dir, tmp_path_factory.mktemp("textrun") / "run")
    train_text(run, TextConfig(encoder="use", epochs=15, batch_size=64, embed_dim=64,
                               hidden=128))
    return run


@pytest.mark.parametrize("encoder", ["use", "minilm", "ngram"])
def test_encoders_load_and_encode_offline(no_network: None, encoder: str,
                                          synthetic_corpus: Corpus) -> None:
    from dynplayer.text.encoders import make_encoder

    enc = make_encoder(encoder, fit_texts=synthetic_corpus.captions())
    texts = ["rainy day jazz", "jazz for a rainy day", "heavy metal workout", "신나는 여름 노래"]
    v = enc.encode(texts)
    assert v.shape == (4, enc.dim) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2]  # paraphrase nearer than another genre


def test_ngram_encoder_handles_korean(synthetic_corpus: Corpus, tmp_path: Path) -> None:
    from dynplayer.text.encoders import NgramEncoder

    enc = NgramEncoder(dim=32).fit(synthetic_corpus.captions())
    enc.save(tmp_path / "ngram.npz")
    again = NgramEncoder.load(tmp_path / "ngram.npz")
    v = again.encode(["케이팝 아이돌", "k-pop 케이팝 party", "heavy metal gym"])
    assert np.allclose(v, enc.encode(["케이팝 아이돌", "k-pop 케이팝 party", "heavy metal gym"]),
                       atol=1e-6)
    assert v[0] @ v[1] > v[0] @ v[2]
    with pytest.raises(ConfigError):
        NgramEncoder().fit(["only one"])


def test_planted_genres_are_retrieved_from_captions(synthetic_run: Path,
                                                    synthetic_corpus: Corpus) -> None:
    searcher = TextSearcher.load(synthetic_run)
    for query, genre in GENRE_OF_QUERY.items():
        result = searcher.search(query, k=20)
        genres = _track_genres(synthetic_corpus, searcher, [t.track_id for t in result.tracks])
        assert len(genres) == 20
        assert genres.count(genre) >= 18, (query, genres)
        # Captions end with the planted tags, so the best playlists must name the genre.
        assert all(genre in p.caption for p in result.playlists[:5]), result.playlists[:5]
    # Held-out playlists: their own caption finds tracks of their planted genre.
    ev = prepare_eval(searcher, "test")
    genre_ids = np.array([synthetic_corpus.track_genres[t][0] for t in ev.data.vocab])
    wanted = np.array([synthetic_corpus.tags[p][0] for p in ev.rows])
    assert searcher.cfg.prf_weight > 0  # the default re-ranks with pseudo-relevance feedback
    for prf in (0.0, searcher.cfg.prf_weight):
        top = np.argsort(-track_scores(ev, searcher.cfg.retrieval,
                                       top_playlists=searcher.cfg.top_playlists,
                                       sim_power=searcher.cfg.sim_power, prf_weight=prf),
                         axis=1)[:, :10]
        assert (genre_ids[top] == wanted[:, None]).mean() >= 0.95, prf
    # And the model beats popularity on the track task, and chance on the playlist task.
    pop = ranking_metrics(track_scores(ev, "popularity"), ev.relevant)["recall@50"]
    for prf in (0.0, searcher.cfg.prf_weight):
        ours = ranking_metrics(track_scores(ev, "hybrid", prf_weight=prf),
                               ev.relevant)["recall@50"]
        assert ours > 2 * pop, prf
    pl = playlist_retrieval(ev)["text model (joint space)"]
    assert pl["recall@10"] > 5 * playlist_retrieval(ev)["random"]["recall@10"]


def test_feedback_reranks_by_the_pseudo_playlist_hand_computed(tmp_path: Path) -> None:
    """Two retrieved playlists (similarity 1 and 0.5, power 1): p0 = {t0 x2, t2},
    p1 = {t1 x2, t4}; p2 = {t3} is not retrieved. Track vectors in 2-d:
    t0 (1, 0), t1 (0, 1), t2 (1, 1)/sqrt 2, t3 (-1, 0), t4 (0.6, 0.8).
    Aggregated s = (2, 1, 1, 0, 0.5); s / max(s) = (1, 0.5, 0.5, 0, 0.25).
    Playlist means m0 = (0.853553, 0.353553), m1 = (0.3, 0.9); q = m0 + 0.5 m1 = (1.003553,
    0.803553), normalised (0.780599, 0.625032); cos(q, t) = (0.780599, 0.625032, 0.993931, -,
    0.968385).
    With prf_weight 1: t0 1.780599, t2 1.493931, t4 1.218385, t1 1.125032 (t4 overtakes t1)."""
    import scipy.sparse as sp

    r = 1 / np.sqrt(2)
    vectors = np.array([[1, 0], [0, 1], [r, r], [-1, 0], [0.6, 0.8]], dtype=np.float32)
    occ = sp.csr_matrix(np.array([[2, 0, 1, 0, 0], [0, 2, 0, 0, 1], [0, 0, 0, 1, 0]],
                                 dtype=np.float32))
    tracks = {"track_id": [f"t{i}" for i in range(5)], "name": [None] * 5, "artist": [None] * 5}

    def searcher(prf: float) -> TextSearcher:
        cfg = TextConfig(retrieval="joint", sim_power=1.0, prf_weight=prf)
        return TextSearcher(tmp_path, cfg, {}, np.eye(3, dtype=np.float32),
                            np.eye(3, dtype=np.float32), occ, ["p0", "p1", "p2"],
                            ["zero", "one", "two"], tracks, track_vectors=vectors)

    rows, sims = np.array([0, 1]), np.array([1.0, 0.5])
    got = searcher(1.0).aggregate(rows, sims, k=10)
    assert [t.track_id for t in got.tracks] == ["t0", "t2", "t4", "t1"]  # t3: not retrieved
    assert [t.score for t in got.tracks] == pytest.approx([1.780599, 1.493931, 1.218385,
                                                            1.125032], abs=1e-5)
    assert [[b.pid for b in t.because] for t in got.tracks] == [["p0"], ["p0"], ["p1"], ["p1"]]
    plain = searcher(0.0).aggregate(rows, sims, k=10)
    assert [t.track_id for t in plain.tracks][-1] == "t4"
    assert [t.score for t in plain.tracks] == pytest.approx([2.0, 1.0, 1.0, 0.5])
    s = searcher(1.0)
    assert s.playlist_means is not None and s.track_vectors is not None
    assert s.playlist_means[:2] == pytest.approx(np.array([[0.853553, 0.353553], [0.3, 0.9]]),
                                                 abs=1e-5)
    batch = feedback_scores(np.array([[2.0, 1.0, 1.0, 0.0, 0.5]], dtype=np.float32),
                            rows[None, :], sims[None, :], s.playlist_means, s.track_vectors, 1.0)
    assert batch[0] == pytest.approx([1.780599, 1.125032, 1.493931, 0.0, 1.218385], abs=1e-5)
    with pytest.raises(ArtifactError, match="track vectors"):
        TextSearcher(tmp_path, TextConfig(prf_weight=1.0), {}, np.eye(3, dtype=np.float32),
                     np.eye(3, dtype=np.float32), occ, ["p0", "p1", "p2"], ["a", "b", "c"],
                     tracks)


@pytest.mark.parametrize("dims", [0, 48])
def test_aggregate_matches_the_batch_evaluation_and_a_naive_feedback(synthetic_run: Path,
                                                                     dims: int) -> None:
    """The serving path (`aggregate`) and the benchmark (`track_scores`) give the same scores,
    and every score is s / max(s) + prf_weight * max(cos(pseudo-playlist, track), 0); in the
    full space and on its first 48 principal directions (`search_dims`)."""
    # without the metadata match (its own test below): the aggregation and feedback alone
    searcher = TextSearcher.load(synthetic_run, search_dims=dims, artist_weight=0.0,
                                 genre_weight=0.0)
    lam, p = searcher.cfg.prf_weight, searcher.cfg.sim_power
    assert searcher.track_vectors is not None and searcher.playlist_means is not None
    ev = prepare_eval(searcher, "test")
    batch = track_scores(ev, searcher.cfg.retrieval, top_playlists=searcher.cfg.top_playlists,
                         sim_power=p, prf_weight=lam) - 1e-6 * ev.popularity[None, :]
    col = {t: i for i, t in enumerate(searcher.track_ids)}
    row_of = {pid: i for i, pid in enumerate(searcher.playlist_pids)}
    for i, query in enumerate(ev.queries[:5]):
        result = searcher.search(query, k=20)
        ids = [col[t.track_id] for t in result.tracks]
        assert [t.score for t in result.tracks] == pytest.approx(batch[i, ids], abs=1e-4)
        # Naive reference: loops over the playlists.
        w = [max(h.similarity, 0) ** p for h in result.playlists]
        q = sum(wj * searcher.playlist_means[row_of[h.pid]]
                for wj, h in zip(w, result.playlists, strict=True))
        q = q / np.linalg.norm(q)
        agg = {t: sum(wj * searcher.occ[row_of[h.pid], t]
                      for wj, h in zip(w, result.playlists, strict=True)) for t in ids}
        top = max(agg.values())
        for t, hit in zip(ids, result.tracks, strict=True):
            cos = max(float(searcher.track_vectors[t] @ q), 0.0)
            assert hit.score == pytest.approx(agg[t] / top + lam * cos, abs=1e-4)
            assert hit.because  # re-ranking keeps every track explained by its playlists


def test_search_dims_projects_both_sides_and_keeps_the_planted_structure(
        synthetic_run: Path) -> None:
    full = TextSearcher.load(synthetic_run, search_dims=0)
    small = TextSearcher.load(synthetic_run, search_dims=48)
    width = full.playlist_vectors.shape[1]
    assert width > 48 and small.playlist_vectors.shape == (full.playlist_vectors.shape[0], 48)
    assert np.allclose(np.linalg.norm(small.playlist_vectors, axis=1), 1.0, atol=1e-5)
    q = small.encode_query("rock")
    assert q.shape == (48,) and abs(float(np.linalg.norm(q)) - 1.0) < 1e-5
    # Deterministic (the same projection on every load), and what the index stores.
    again = TextSearcher.load(synthetic_run, search_dims=48)
    assert np.array_equal(again.playlist_vectors, small.playlist_vectors)
    # search_dims >= the width is the full space; a negative one is a one-line error.
    assert TextSearcher.load(synthetic_run, search_dims=width).projection is None
    with pytest.raises(ConfigError, match="search_dims must be >= 0"):
        TextSearcher.load(synthetic_run, search_dims=-1)
    with pytest.raises(ConfigError, match="genre_weight must be >= 0"):
        TextSearcher.load(synthetic_run, genre_weight=-1.0)
    with pytest.raises(ConfigError, match="match_power must be > 0"):
        TextSearcher.load(synthetic_run, match_power=0.0)
    # Keyword -> tracks on the planted corpus keeps >= 0.9x of the full space's Recall@50.
    r = {}
    for name, s in (("full", full), ("small", small)):
        ev = prepare_eval(s, "test")
        r[name] = ranking_metrics(track_scores(ev, s.cfg.retrieval,
                                               top_playlists=s.cfg.top_playlists,
                                               sim_power=s.cfg.sim_power,
                                               prf_weight=s.cfg.prf_weight),
                                  ev.relevant)["recall@50"]
    assert r["small"] >= 0.9 * r["full"], r


def test_the_search_projection_is_stored_at_training_time(
        synthetic_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`train-text` stores the search space's projection (an eigendecomposition a one-shot
    `dynplayer search` paid on every load: 2.5-13 s on a busy 2-core machine); loading reads
    it, and it is the projection a load would fit; other settings fit their own."""
    from dynplayer.text import space

    assert (synthetic_run / "text" / space.PROJECTION_FILE).exists()

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("the projection was fitted again")

    with monkeypatch.context() as m:
        m.setattr(space, "search_projection", refuse)
        m.setattr("dynplayer.text.search.search_projection", refuse, raising=False)
        stored = TextSearcher.load(synthetic_run)
        with pytest.raises(AssertionError, match="fitted again"):
            TextSearcher.load(synthetic_run, search_dims=32)
    assert stored.projection is not None
    rows = space.compose_playlist_vectors(stored.joint, stored.captions_x, stored.cfg,
                                          stored.no_words)
    fitted = space.search_projection(
        rows, lambda r: stored._query_side(stored.captions_x[r], stored.cfg.retrieval),
        stored.cfg.search_dims, seed=stored.cfg.seed)
    np.testing.assert_allclose(stored.projection, fitted, atol=1e-6)


def test_many_queries_are_ranked_in_chunks(synthetic_run: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """`top_playlists` over many queries (train-text's calibration: 25,000 captions) scores
    them a chunk at a time, to the same rows and similarities as one product."""
    from dynplayer import topk

    searcher = TextSearcher.load(synthetic_run)
    q = searcher.encode_queries(["chill jazz", "rainy day", "workout", "party", "sad songs",
                                 "road trip", "sleep"])
    whole = searcher.top_playlists(q, m=10)
    n = searcher.playlist_vectors.shape[0]
    monkeypatch.setattr(topk, "SCORE_CHUNK", 2 * n)  # two queries per product
    chunked = searcher.top_playlists(q, m=10)
    np.testing.assert_array_equal(chunked[0], whole[0])
    # the same products up to float32 rounding (BLAS blocks another shape differently)
    np.testing.assert_allclose(chunked[1], whole[1], rtol=1e-5, atol=1e-6)


def _random_head(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A text head "p" (8 -> 32 hidden -> 6, with its skip projection) of random weights."""
    return {"p.fc1.weight": rng.standard_normal((32, 8)).astype(np.float32),
            "p.fc1.bias": rng.standard_normal(32).astype(np.float32),
            "p.fc2.weight": rng.standard_normal((6, 32)).astype(np.float32),
            "p.fc2.bias": rng.standard_normal(6).astype(np.float32),
            "p.skip.weight": rng.standard_normal((6, 8)).astype(np.float32)}


def test_projection_of_many_rows_goes_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A head applied to the whole catalogue (train-text's track_joint) runs a block of rows at
    a time, to the same rows as one pass (float32 rounding aside)."""
    from dynplayer import topk
    from dynplayer.text import config as text_config

    rng = np.random.default_rng(0)
    w = _random_head(rng)
    x = rng.standard_normal((101, 8)).astype(np.float32)
    whole = text_config.project_numpy(w, "p", x)
    monkeypatch.setattr(topk, "SCORE_CHUNK", 32 * 10)  # 10 rows of 32 hidden units a block
    blocks = text_config.project_numpy(w, "p", x)
    assert blocks.shape == (101, 6) and blocks.dtype == np.float32
    np.testing.assert_allclose(blocks, whole, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(blocks, axis=1), 1.0, atol=1e-5)


def test_blocks_written_to_disk_make_the_same_npy(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    """train-text writes the tracks' projection block by block (`atomic_save_npy_blocks` of
    `project_blocks`): the same bytes as saving the whole projection; blocks that leave a gap
    or stop short are refused and leave no file."""
    from dynplayer import topk
    from dynplayer.run import atomic_save_npy, atomic_save_npy_blocks
    from dynplayer.text import config as text_config

    rng = np.random.default_rng(1)
    w = _random_head(rng)
    x = rng.standard_normal((57, 8)).astype(np.float32)
    monkeypatch.setattr(topk, "SCORE_CHUNK", 32 * 10)
    assert len(list(text_config.project_blocks(w, "p", x))) == 6
    whole = text_config.project_numpy(w, "p", x)
    atomic_save_npy(tmp_path / "whole.npy", whole)
    atomic_save_npy_blocks(tmp_path / "blocks.npy", (57, text_config.projected_dim(w, "p")),
                           np.float32, text_config.project_blocks(w, "p", x))
    assert (tmp_path / "blocks.npy").read_bytes() == (tmp_path / "whole.npy").read_bytes()
    short = ((0, whole[:10]), (20, whole[20:]))
    with pytest.raises(ValueError, match="row 20"):
        atomic_save_npy_blocks(tmp_path / "gap.npy", (57, 6), np.float32, iter(short))
    with pytest.raises(ValueError, match="10 of 57"):
        atomic_save_npy_blocks(tmp_path / "short.npy", (57, 6), np.float32,
                               iter([(0, whole[:10])]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocks.npy", "whole.npy"]


def test_aggregate_explains_every_track_score(synthetic_run: Path) -> None:
    searcher = TextSearcher.load(synthetic_run, prf_weight=0.0, artist_weight=0.0,
                                 genre_weight=0.0)  # the aggregation alone
    q = searcher.encode_query("chill jazz")
    assert q.shape == (searcher.playlist_vectors.shape[1],)
    assert np.linalg.norm(q) == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(np.linalg.norm(searcher.playlist_vectors, axis=1), 1.0, atol=1e-5)
    rows, sims = searcher.top_playlists(q[None, :], m=10)
    result = searcher.aggregate(rows[0], sims[0], k=15, query="chill jazz")
    assert [p.pid for p in result.playlists] == [searcher.playlist_pids[r] for r in rows[0]]
    p = searcher.cfg.sim_power
    col = {t: i for i, t in enumerate(searcher.track_ids)}
    row_of = {pid: i for i, pid in enumerate(searcher.playlist_pids)}
    scores = [t.score for t in result.tracks]
    assert scores == sorted(scores, reverse=True)
    for hit in result.tracks:
        parts = [searcher.occ[row_of[b.pid], col[hit.track_id]] * max(b.similarity, 0) ** p
                 for b in hit.because]
        assert hit.score == pytest.approx(sum(parts), rel=1e-4)
        assert parts == sorted(parts, reverse=True)  # contributors best first
    # search() is exactly encode -> top playlists (the configured number) -> aggregate.
    rows, sims = searcher.top_playlists(q[None, :], m=searcher.cfg.top_playlists)
    expected = searcher.aggregate(rows[0], sims[0], k=15, query="chill jazz")
    direct = searcher.search("chill jazz", k=15)
    assert [p.pid for p in direct.playlists] == [p.pid for p in expected.playlists]
    assert [t.track_id for t in direct.tracks] == [t.track_id for t in expected.tracks]
    assert [t.score for t in direct.tracks] == pytest.approx([t.score for t in expected.tracks])
    with pytest.raises(QueryError):
        searcher.search("   ")
    with pytest.raises(QueryError):
        searcher.search("jazz", k=0)


def _cli(args: list[str], capsys: pytest.CaptureFixture[str],
         monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """Run `dynplayer ARGS` in this process (the model stays loaded); (exit code, out, err)."""
    from dynplayer.cli import main

    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["dynplayer", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


def test_korean_query_round_trip_through_the_cli(synthetic_run: Path, tmp_path: Path,
                                                  synthetic_corpus: Corpus,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    queries = tmp_path / "queries.txt"
    # (a blank line is an error naming it: tests/test_cli_arguments.py)
    queries.write_text("신나는 케이팝\nheavy metal gym\n", encoding="utf-8")
    code, out, _ = _cli(["search", str(synthetic_run), "--queries", str(queries), "-k", "12",
                         "--jsonl"], capsys, monkeypatch)
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [x["query"] for x in lines] == ["신나는 케이팝", "heavy metal gym"]
    assert "신나는" in out  # written as UTF-8, not \u escapes
    assert all(list(x) == ["query", "tracks", "scores", "searched_as", "confidence", "match"]
               for x in lines)
    # 신나는 and 케이팝 are caption words of this corpus: searched as typed (no loanword bridge)
    assert [x["searched_as"] for x in lines] == [None, None]
    assert all(len(x["tracks"]) == 12 == len(x["scores"]) for x in lines)
    assert lines[0]["scores"] == sorted(lines[0]["scores"], reverse=True)
    searcher = TextSearcher.load(synthetic_run)
    assert _track_genres(synthetic_corpus, searcher, lines[0]["tracks"]).count("k-pop") >= 11
    assert _track_genres(synthetic_corpus, searcher, lines[1]["tracks"]).count("metal") >= 11
    code, out, _ = _cli(["search", str(synthetic_run), "잔잔한 케이팝", "-k", "3"], capsys,
                        monkeypatch)
    assert code == 0 and "tracks (top 3)" in out and 'from "' in out
    assert "케이팝" in out.split("tracks (top 3)")[0]  # contributing playlists are printed
    code, out, _ = _cli(["search", str(synthetic_run), "메탈", "-k", "3"], capsys, monkeypatch)
    assert code == 0 and "searched as: metal (Korean loanwords bridged" in out
    code, out, _ = _cli(["search", str(synthetic_run), "메탈", "-k", "3", "--set",
                         "loanwords=false"], capsys, monkeypatch)
    assert code == 0 and "searched as" not in out and "tracks (top 3)" in out
    code, _, err = _cli(["search", str(synthetic_run), "메탈", "--set", "loanwords=maybe"],
                        capsys, monkeypatch)
    assert code != 0 and "loanwords" in err and len(err.strip().splitlines()) == 1
    queries.write_text("jazz\n" + "y" * 600 + "\n", encoding="utf-8")
    code, out, err = _cli(["search", str(synthetic_run), "--queries", str(queries), "--jsonl"],
                          capsys, monkeypatch)
    assert code == 2 and out == "" and f"{queries}:2: query is 600 characters" in err
    for bad, why in (("x" * 10_000, "limit is 500"), (" \t ", "empty")):
        code, _, err = _cli(["search", str(synthetic_run), bad], capsys, monkeypatch)
        assert code == 2 and err.count("\n") == 1 and why in err, err
    # the metadata match is a search setting: `--set` turns it off (the same as the searcher)
    queries.write_text("smooth jazz\n", encoding="utf-8")
    off = TextSearcher.load(synthetic_run, artist_weight=0.0, genre_weight=0.0)
    code, out, _ = _cli(["search", str(synthetic_run), "--queries", str(queries), "-k", "10",
                         "--jsonl", "--set", "artist_weight=0", "--set", "genre_weight=0"],
                        capsys, monkeypatch)
    assert code == 0
    got = json.loads(out.splitlines()[0])
    assert got["tracks"] == [t.track_id for t in off.search("smooth jazz", k=10).tracks]
    assert got["scores"] != [t.score for t in searcher.search("smooth jazz", k=10).tracks]


def test_bench_text_reports_the_default_beside_peers_and_the_prf_ablation(
        synthetic_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    out_file = tmp_path / "text.md"
    code, out, _ = _cli(["bench", "text", str(synthetic_run), "--split", "test",
                         "--latency-queries", "5", "--out", str(out_file)], capsys, monkeypatch)
    assert code == 0 and out_file.read_text(encoding="utf-8") == out
    cells = {c[0].lstrip("| "): c for c in (line.split(" | ") for line in out.splitlines()
                                            if line.startswith("| "))}
    searcher = TextSearcher.load(synthetic_run)
    c = searcher.cfg
    ev = prepare_eval(searcher, "test")
    default = next(v for k, v in cells.items() if k.startswith("**default**"))
    assert f"PRF weight {c.prf_weight:g}" in default[0]
    want = ranking_metrics(track_scores(ev, c.retrieval, top_playlists=c.top_playlists,
                                        sim_power=c.sim_power, prf_weight=c.prf_weight,
                                        metadata=True), ev.relevant)
    assert float(default[4]) == pytest.approx(want["recall@50"], abs=1e-4)
    assert "+ artist / genre match" in default[0] and any(
        k.endswith("no metadata match") for k in cells)
    ablation = [v for v in cells.values() if v[1] == "ablation: peer + our PRF"]
    assert len(ablation) == 2  # BM25 and zero-shot retrieval with the same feedback
    best_peer = max(float(v[4]) for v in cells.values() if v[1] == "yes")
    assert default[6] == f"{float(default[4]) / best_peer:.2f}x |"
    assert "without PRF: CPU p50" in out and "the best ablation row" in out
    assert "without the metadata match: CPU p50" in out
    code, out, _ = _cli(["bench", "text", str(synthetic_run), "--split", "val", "--tune"],
                        capsys, monkeypatch)
    assert code == 0 and "best hybrid with PRF by Recall@50" in out
    section = out.split("Validation grid: the metadata match")[1]
    grid = [line for line in section.splitlines() if line.startswith("| ")]
    assert len(grid) == 2 + 3 * (len(MATCH_WEIGHTS) ** 2 - 1) + 1  # header, rule, points
    assert out.count("chooses artist") == 2
    code, _, err = _cli(["bench", "text", str(synthetic_run), "--split", "test", "--tune"],
                        capsys, monkeypatch)
    assert code == 2 and "validation split only" in err


def test_failed_retrain_leaves_the_text_model_in_place(synthetic_run: Path) -> None:
    before = (synthetic_run / "text" / "config.json").read_bytes()
    with pytest.raises(ConfigError):
        train_text(synthetic_run, TextConfig(encoder="nonsense"))
    with pytest.raises(ConfigError):
        train_text(synthetic_run, TextConfig(retrieval="nonsense"))
    assert (synthetic_run / "text" / "config.json").read_bytes() == before
    assert not [p for p in synthetic_run.iterdir() if p.name.startswith(".text.tmp")]


@pytest.mark.realdata
def test_korean_melon_end_to_end(shared_data: Path, tmp_path: Path) -> None:
    """Prepare the Melon split, stand-in track vectors, the USE text model, a Korean query.

    The track vectors are an SVD stand-in on purpose: this test is about the Korean text path
    on real captions, and a trained Melon track model would add 25 s."""
    from dynplayer.config import DataConfig
    from dynplayer.data.prepare import prepare

    prepare([shared_data / "melon" / "val.json.gz"], tmp_path / "melon",
            DataConfig(select="top_share", select_fraction=0.2))
    corpus = load_corpus(tmp_path / "melon")
    assert corpus.playlists_in(TEST).shape[0] > 100
    svd_run(tmp_path / "melon", tmp_path / "run", dim=32)
    train_text(tmp_path / "run", TextConfig(encoder="use", epochs=5))
    searcher = TextSearcher.load(tmp_path / "run")
    result = searcher.search("신나는 여름 노래", k=10)
    assert len(result.tracks) == 10
    assert any(w in p.caption for p in result.playlists[:10] for w in ("여름", "신나는"))


def test_stale_damaged_or_misconfigured_model_is_a_clear_error(synthetic_run: Path,
                                                               tmp_path: Path) -> None:
    import shutil

    from dynplayer.run import load_run, save_vectors

    copy = tmp_path / "run"
    shutil.copytree(synthetic_run, copy)
    with pytest.raises(ConfigError, match="retrieval"):
        TextSearcher.load(copy, retrieval="nope")
    with pytest.raises(ConfigError, match="caption_weight"):
        TextSearcher.load(copy, caption_weight=1.5)
    with pytest.raises(ConfigError, match="prf_weight"):
        TextSearcher.load(copy, prf_weight=-1.0)
    (copy / "vectors.npy").rename(copy / "moved.npy")
    with pytest.raises(ArtifactError, match="prf_weight > 0 needs the run's track vectors"):
        TextSearcher.load(copy)
    assert len(TextSearcher.load(copy, prf_weight=0.0).search("jazz", k=5).tracks) == 5
    (copy / "moved.npy").rename(copy / "vectors.npy")
    run = load_run(copy)
    save_vectors(copy, run.vectors[::-1].copy(), run.ids)  # the track model was retrained
    with pytest.raises(ArtifactError, match="other track vectors"):
        TextSearcher.load(copy)
    (copy / "text" / "config.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="unreadable"):
        TextSearcher.load(copy)
    shutil.rmtree(copy / "text")
    with pytest.raises(ArtifactError, match="train-text"):
        TextSearcher.load(copy)


def test_wordless_captions_are_no_hubs_of_hybrid_retrieval() -> None:
    """A playlist whose caption has no word ("🍻🍻🍻") but encodes exactly like the query must
    not win on its caption: it is searched on its tracks' side only, at unit row length."""
    from dynplayer.text.model import TextConfig
    from dynplayer.text.space import compose_playlist_vectors, wordless

    captions = ["summer rock", "🍻🍻🍻"]
    no_words = wordless(captions + ["", "🇺🇸", "2017"])
    assert no_words.tolist() == [False, True, True, True, False]
    joint = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)  # the hub's tracks: elsewhere
    cap = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)  # the hub's caption = query's
    cfg = TextConfig(retrieval="hybrid", caption_weight=0.5)
    q = np.sqrt(0.5) * np.array([1.0, 0.0, 1.0, 0.0], dtype=np.float32)
    before = compose_playlist_vectors(joint, cap, cfg) @ q
    assert before.tolist() == pytest.approx([0.5, 0.5])  # the hub ties the real match
    rows = compose_playlist_vectors(joint, cap, cfg, no_words[:2])
    assert np.linalg.norm(rows, axis=1).tolist() == pytest.approx([1.0, 1.0])
    assert (rows @ q).tolist() == pytest.approx([0.5, 0.0])


def test_reciprocal_rank_fusion_by_hand() -> None:
    from dynplayer.text.evaluate import reciprocal_rank_fusion

    a = np.array([[3.0, 2.0, 1.0]])  # ranks 1, 2, 3
    b = np.array([[1.0, 3.0, 2.0]])  # ranks 3, 1, 2
    got = reciprocal_rank_fusion([a, b], k=1.0)[0]
    assert got.tolist() == pytest.approx([1 / 2 + 1 / 4, 1 / 3 + 1 / 2, 1 / 4 + 1 / 3])
    assert int(np.argmax(got)) == 1  # second in one list, first in the other


def test_keyword_to_playlist_recall_breaks_ties_at_random() -> None:
    """A row of equal scores (BM25 on a query no caption matches) is k / pool, not a hit."""
    from dynplayer.text.evaluate import own_recall

    flat = np.zeros((40, 40))
    assert own_recall(flat, 10) == pytest.approx(10 / 40)
    exact = np.eye(40)
    assert own_recall(exact, 10) == 1.0
    worst = -np.eye(40)
    assert own_recall(worst, 10) == 0.0
    # One higher, three tied with the own candidate: (2 - 1) / 4 at k = 2.
    row = np.array([[0.5, 0.9, 0.5, 0.5, 0.5, 0.1]])
    sims = np.vstack([row, np.eye(6)[1:]])
    assert own_recall(sims[:1, :], 2) == pytest.approx(0.25)


def test_fold_words_drops_accents_and_symbols_but_keeps_hangul() -> None:
    assert fold_words("Beyoncé — Déjà Vu!") == ["beyonce", "deja", "vu"]
    assert fold_words("잔잔한 발라드") == ["잔잔한", "발라드"]
    assert fold_words("🍻🍻🍻 🇺🇸") == []


def test_field_match_is_the_idf_share_of_the_query_words_found() -> None:
    index = FieldIndex(["Bryson Tiller", "Tiller Band", "Someone Else", ""])
    share = index.match(fold_words("bryson tiller"))
    idf = {w: float(index.idf[index.vocab[w]]) for w in ("bryson", "tiller")}
    assert share[0] == pytest.approx(1.0)
    assert share[1] == pytest.approx(idf["tiller"] / (idf["bryson"] + idf["tiller"]))
    assert share[2:].tolist() == [0.0, 0.0]
    # a word no track has counts against every match, with the highest idf
    share2 = index.match(fold_words("bryson tiller unheardof"))
    assert share2[0] == pytest.approx(sum(idf.values()) / (sum(idf.values())
                                                          + index.unknown_idf))
    assert not index.match(["nothing"]).any()
    m = MetadataMatch(["Bryson Tiller", None], [["r&b", "trap soul"], []])
    s = m.scores("trap soul", {"artist": 4.0, "genre": 2.0}, 2.0)
    assert s.tolist() == pytest.approx([2.0, 0.0])
    assert not m.scores("trap soul", {"artist": 4.0, "genre": 0.0}, 2.0).any()


def test_sparse_metadata_and_candidates_equal_the_dense_computation() -> None:
    """Search touches only the candidate tracks (`match_sparse`, `sparse_sum`, `merge_metadata`);
    on random data, large and small, each equals the dense computation over every track, and
    the top k of the candidates holds the top k values of the dense scores."""
    from dynplayer.text.aggregate import distinct, merge_metadata
    from dynplayer.text.metadata import sparse_sum
    from dynplayer.topk import top_k

    rng = np.random.default_rng(0)
    words = ["pop", "rock", "jazz", "soul", "indie"]
    docs = [" ".join(rng.choice(words, size=rng.integers(0, 3), replace=False))
            for _ in range(500)]
    index = FieldIndex(docs)
    for query in (["pop"], ["rock", "jazz"], ["soul", "nowhere"], ["nowhere"], []):
        tracks, share = index.match_sparse(query)
        dense = index.match(query)
        assert np.all(np.diff(tracks) > 0)
        assert np.array_equal(tracks, np.flatnonzero(dense))
        assert share == pytest.approx(dense[tracks])
    for values in (rng.integers(0, 50, 300), np.array([7]), np.zeros(0, np.int64)):
        held, inverse = distinct(values)
        want_held, want_inverse = np.unique(values, return_inverse=True)
        assert np.array_equal(held, want_held) and np.array_equal(inverse, want_inverse)
    n = 1000
    for size in (5, 400):  # the sorted path and the dense one
        parts = [(np.sort(rng.choice(n, size, replace=False)), rng.random(size, np.float32))
                 for _ in range(3)]
        dense = np.zeros(n, np.float32)
        for t, v in parts:
            dense[t] += v
        held, values = sparse_sum(parts, n)
        assert np.array_equal(held, np.flatnonzero(dense))
        assert values == pytest.approx(dense[held])
    for n_meta, k in ((20, 50), (600, 10), (600, 600)):
        held = np.sort(rng.choice(n, 80, replace=False))
        scores = rng.random(80).astype(np.float32)
        slot = rng.integers(0, 80, 200)
        meta = np.sort(rng.choice(n, n_meta, replace=False))
        extra = rng.choice([1.0, 2.0, 4.0], n_meta).astype(np.float32)  # many ties
        dense = np.zeros(n, np.float32)
        dense[held] = scores
        dense[meta] += extra
        cand, total, slot2 = merge_metadata(held, scores, slot, meta, extra, k)
        assert np.all(np.diff(cand) > 0)
        assert total == pytest.approx(dense[cand])
        assert np.array_equal(cand[slot2], held[slot])
        top = top_k(total, k)
        assert total[top] == pytest.approx(np.sort(dense)[::-1][:top.shape[0]])
        assert top.shape[0] == min(k, cand.shape[0])


def test_metadata_match_serves_what_the_benchmark_measures(synthetic_run: Path,
                                                          synthetic_corpus: Corpus,
                                                          tmp_path: Path) -> None:
    """A query naming an artist reaches that artist's tracks; search (what the API and
    `search --queries` use) and `track_scores(metadata=True)` (what `bench text` reports) give
    the same scores; a text model from before genres were stored still loads."""
    searcher = TextSearcher.load(synthetic_run)
    assert searcher.cfg.artist_weight > 0 and searcher.cfg.genre_weight > 0
    ev = prepare_eval(searcher, "test")
    c = searcher.cfg
    batch = track_scores(ev, c.retrieval, top_playlists=c.top_playlists, sim_power=c.sim_power,
                         prf_weight=c.prf_weight, metadata=True) - 1e-6 * ev.popularity[None, :]
    col = {t: i for i, t in enumerate(searcher.track_ids)}
    for i, query in enumerate(ev.queries[:5]):
        result = searcher.search(query, k=20)
        ids = [col[t.track_id] for t in result.tracks]
        assert [t.score for t in result.tracks] == pytest.approx(batch[i, ids], abs=1e-4)
    # the most common artist, ties by name (a set's order changes with the hash seed)
    artist = max(sorted({a for a in searcher.track_artists if a}),
                 key=searcher.track_artists.count)
    assert artist is not None
    n = min(10, searcher.track_artists.count(artist))
    def by_artist(s: TextSearcher) -> list[str]:
        return [t.track_id for t in s.search(artist.lower(), k=n).tracks]

    # the planted clusters are tight, so the feedback's cosines reach 6 (1 + prf_weight) here;
    # a weight above that puts a full match first whether or not a retrieved playlist holds it
    strong = TextSearcher.load(synthetic_run, artist_weight=7.0)
    hits = by_artist(strong)
    assert {strong.track_artists[col[t]] for t in hits} == {artist}
    # without the match, retrieval alone finds few of them (a caption never names an artist,
    # but this artist's genre playlists can still hold some of its tracks)
    off = by_artist(TextSearcher.load(synthetic_run, artist_weight=0.0))
    assert sum(strong.track_artists[col[t]] == artist for t in off) <= n // 2
    # a text model written before tracks.json held genres: the artist match still works
    old = tmp_path / "run"
    shutil.copytree(synthetic_run, old)
    tj = old / "text" / "tracks.json"
    tracks = json.loads(tj.read_text())
    del tracks["genres"]
    tj.write_text(json.dumps(tracks))
    legacy = TextSearcher.load(old, artist_weight=7.0)
    assert legacy.metadata.fields["genre"].vocab == {}
    assert by_artist(legacy) == hits


def test_bench_text_pairs_probe(synthetic_run: Path, tmp_path: Path) -> None:
    """`bench text --pairs`: a query paired with itself overlaps fully, the file ships, and a
    bad line is a one-line error naming the line."""
    from dynplayer.text.bench import read_pairs, run_bench

    shipped = read_pairs(Path(__file__).resolve().parents[1] / "docs" / "probes" / "ko-en.jsonl")
    assert len(shipped) == 20 and ("잔잔한 발라드", "gentle ballads") in shipped
    f = tmp_path / "pairs.jsonl"
    holdout = Path(__file__).resolve().parents[1] / "docs" / "probes" / "ko-en-holdout.jsonl"
    assert len(read_pairs(holdout)) == 24
    f.write_text('{"query": "smooth jazz", "reference": "smooth jazz"}\n\n'
                 '{"query": "신나는 케이팝", "reference": "upbeat k-pop", "note": "x"}\n'
                 '{"query": "메탈", "reference": "metal"}\n', encoding="utf-8")
    report = run_bench(synthetic_run, pairs=f)
    assert "| smooth jazz | (as typed) | smooth jazz | 1.00 | 1.00 |" in report
    # the loanword is searched as its English source: the reference's own tracks
    assert "| 메탈 | metal | metal | 1.00 |" in report
    assert "Pairs (3)" in report and "mean **" in report and "without the loanword" in report
    for bad, why in (('{"query": "x"}', "expected"), ("{oops", "malformed JSON"),
                     ('{"query": " ", "reference": "y"}', "empty")):
        f.write_text('{"query": "a", "reference": "b"}\n' + bad + "\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=f"pairs.jsonl:2: .*{why}"):
            read_pairs(f)
