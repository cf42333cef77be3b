"""The learned second stage: a planted signal is learned, features are not leaky, the ranker
directory round-trips, and `recommend` keeps its JSON-lines contract and rejects bad input."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from dynplayer.cli import app
from dynplayer.data.corpus import VAL, load_corpus
from dynplayer.eval.peers import ItemKNN, TrainData
from dynplayer.eval.protocol import corpus_eval_set, order_matrix
from dynplayer.eval.runner import run_vocab
from dynplayer.rank import features as F
from dynplayer.rank.candidates import (
    Queries,
    build_sources,
    last_seeds,
    ordered_distinct,
    retrieve,
    split_queries,
)
from dynplayer.rank.model import Ranker, RankerParams
from dynplayer.rank.stage import StageConfig, cascade_predict, load_stage, queries_from_order
from dynplayer.rank.sums import SMALL_BATCH
from dynplayer.rank.train import (
    TrainRankerConfig,
    candidate_metrics,
    field_examples,
    train_ranker,
)
from dynplayer.run import load_run
from dynplayer.train.config import TrainConfig
from dynplayer.train.loop import train_run

TINY = TrainConfig(objective="set", init="random", dim=16, batch_size=64, epochs=3, threads=1,
                   seed=0, seeds=1)
FAST = TrainRankerConfig(n_train=150, grid=[{"num_leaves": 15, "min_child_samples": 20}])


@pytest.fixture(scope="module")
def ranked_run(synthetic_corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory
               ) -> tuple[Path, dict[str, object]]:
    out = tmp_path_factory.mktemp("rank") / "run"
    train_run(synthetic_corpus_dir, out, TINY, progress=False)
    cfg = replace(FAST, params=replace(FAST.params, threads=1))
    return out, train_ranker(out, cfg)


def test_ranker_learns_a_planted_signal() -> None:
    """Groups of 40 candidates; the relevant ones are exactly those whose feature 2 exceeds
    0.8; features 0 and 1 are noise. The fitted ranker must put them first."""
    rng = np.random.default_rng(0)
    n_groups, size = 200, 40
    x = rng.random((n_groups * size, 3)).astype(np.float32)
    y = (x[:, 2] > 0.8).astype(np.float32)
    rows = np.repeat(np.arange(n_groups), size)
    params = RankerParams(num_leaves=7, rounds=50, min_child_samples=5, threads=1)
    r = Ranker.fit(params, ["a", "b", "signal"], x[:6000], y[:6000], rows[:6000],
                   x[6000:], y[6000:], rows[6000:] - 150)
    scores = r.predict(x[6000:])
    top = np.lexsort((-scores, rows[6000:]))
    first = top.reshape(-1, size)[:, 0]
    assert y[6000:][first].mean() > 0.95  # the best-scored candidate is relevant
    assert r.importance()["signal"] > 0.9


def test_the_cascade_scores_the_best_candidates_with_every_round() -> None:
    """Boosting rounds add up; the cascade's first rounds pick each playlist's best `keep`,
    which get every round's score and rank above the rest, who keep their partial order."""
    rng = np.random.default_rng(1)
    size = 40
    x = rng.random((100 * size, 3))
    y = (x[:, 2] + 0.3 * x[:, 0] > 0.9).astype(np.float32)
    rows = np.repeat(np.arange(100), size)
    r = Ranker.fit(RankerParams(num_leaves=7, rounds=40, min_child_samples=5, threads=1),
                   ["a", "b", "c"], x[:3000], y[:3000], rows[:3000], x[3000:], y[3000:],
                   rows[3000:] - 75)
    assert r.n_trees > 10
    full = r.predict(x)
    np.testing.assert_allclose(r.predict(x, 0, 10) + r.predict(x, 10), full, atol=1e-4)
    np.testing.assert_array_equal(cascade_predict(r, rows, x, 0, 5), full)  # off
    np.testing.assert_array_equal(cascade_predict(r, rows, x, 10, size), full)  # keeps all
    out = cascade_predict(r, rows, x, 10, 5)
    part = r.predict(x, 0, 10)
    for g in range(100):
        sel = rows == g
        kept = np.argsort(-part[sel], kind="stable")[:5]
        mask = np.zeros(size, bool)
        mask[kept] = True
        np.testing.assert_allclose(out[sel][mask], full[sel][mask], atol=1e-4)
        assert out[sel][mask].min() > out[sel][~mask].max()
        rest = np.argsort(-out[sel][~mask], kind="stable")
        np.testing.assert_array_equal(rest, np.argsort(-part[sel][~mask], kind="stable"))


def test_the_ease_lambda_is_the_ease_peers_choice_on_validation(
        ranked_run: tuple[Path, dict]) -> None:
    """The ease features use the lambda the EASE peer picks on validation (the grid the peer
    is tuned over), fitted on the run's training playlists; the stage serves with it."""
    from dynplayer.data.corpus import TRAIN
    from dynplayer.eval.peers import GRIDS, tune_peer
    from dynplayer.eval.protocol import evaluate_scorer

    run_dir, manifest = ranked_run
    run = load_run(run_dir)
    corpus = load_corpus(run.corpus_dir)
    vocab = run_vocab(run, corpus)
    val = corpus_eval_set(corpus, VAL, vocab)
    peer = tune_peer("ease", TrainData(corpus.interaction_matrix(
        corpus.playlists_in(TRAIN), vocab=vocab)), lambda p: float(evaluate_scorer(
            p.score, val, ks=(10,))["recall@10"]), GRIDS["ease"])
    assert manifest["config"]["ease_grid"] == [p["lam"] for p in GRIDS["ease"]]
    stage = load_stage(run, corpus, vocab)
    assert stage.cfg.ease_lam == peer.params["lam"]
    fixed = TrainRankerConfig(ease_grid=None)
    assert fixed.stage.ease_lam == 100.0  # without a grid: the stage's own setting


def test_two_stage_beats_the_weak_embedding_on_validation(ranked_run: tuple[Path, dict]) -> None:
    """The default ("mixed") learns from each carved-out playlist split both as a challenge case
    and in random halves, and chooses on the sum of the validation split's field cases
    (NDCG over 500 and R-precision) and its seed-protocol halves (Recall@10 and NDCG@10)."""
    run_dir, manifest = ranked_run
    v = manifest["validation"]
    assert manifest["config"]["protocol"] == "mixed"
    assert manifest["n_train_playlists"] == 2 * FAST.n_train  # each playlist split two ways
    vs = manifest["validation_seed"]
    assert set(vs["two_stage"]) >= {"recall@10", "ndcg@10"} and vs["n_playlists"] > 0
    assert all({"val_seed_recall@10", "val_seed_ndcg@10"} <= set(row)
               for row in v["grid"])
    assert manifest["beats_embedding"] is True
    assert v["two_stage"]["ndcg"] > v["embedding"]["ndcg"]
    assert v["two_stage"]["r_precision"] > v["embedding"]["r_precision"]
    assert (run_dir / "ranker" / "model.txt").exists()
    assert not (run_dir / "ranker-rejected").exists()


def test_training_features_are_not_leaky(ranked_run: tuple[Path, dict]) -> None:
    """Examples come from playlists the shadow sources never saw: their candidates hold the
    held-out tracks about as often as the validation playlists' candidates do."""
    _, manifest = ranked_run
    gap = manifest["train_candidate_recall"] - manifest["validation"]["candidate_recall"]
    assert abs(gap) < 0.15, manifest


def test_saved_ranker_reloads_to_the_same_scores(ranked_run: tuple[Path, dict]) -> None:
    run_dir, manifest = ranked_run
    run = load_run(run_dir)
    corpus = load_corpus(run.corpus_dir)
    vocab = run_vocab(run, corpus)
    stage = load_stage(run, corpus, vocab)
    assert stage.ranker.features == manifest_features(run_dir)
    ex = field_examples(stage.sources, corpus, vocab, stage.ranker.features, stage.cfg)
    m = candidate_metrics(ex, cascade_predict(stage.ranker, ex.rows, ex.x,
                                              stage.cfg.cascade_rounds, stage.cfg.cascade_keep))
    # the figures written at training time come back from the files alone
    assert m["ndcg"] == pytest.approx(manifest["validation"]["two_stage"]["ndcg"], abs=1e-4)
    es = corpus_eval_set(corpus, VAL, vocab)
    ranked = stage.rank(queries_from_order(es.order[:3]), 10)
    seeds = es.visible[:3].tolil().rows
    for (cols, scores), s in zip(ranked, seeds, strict=True):
        assert len(cols) == 10 and not set(cols.tolist()) & set(s)
        assert np.all(np.diff(scores) <= 0)


def manifest_features(run_dir: Path) -> list[str]:
    return json.loads((run_dir / "ranker" / "manifest.json").read_text())["features"]


def test_a_ranker_that_loses_is_not_the_default(ranked_run: tuple[Path, dict],
                                                tmp_path: Path) -> None:
    src, _ = ranked_run
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for f in ("vectors.npy", "ids.txt", "config.json"):
        shutil.copy(src / f, run_dir / f)
    shutil.copytree(src / "ranker-cache", run_dir / "ranker-cache")  # reuse the shadow
    cfg = replace(FAST, groups=["length"], params=replace(FAST.params, threads=1))
    manifest = train_ranker(run_dir, cfg)  # the playlist's length alone cannot rank tracks
    assert manifest["beats_embedding"] is False
    assert (run_dir / "ranker-rejected" / "manifest.json").exists()
    assert not (run_dir / "ranker").exists()
    res = CliRunner().invoke(app, ["recommend", str(run_dir), _ids(run_dir)[0], "-k", "3"])
    assert res.exit_code == 0, res.output
    assert "(embedding)" in res.stdout


def _ids(run_dir: Path) -> list[str]:
    return (run_dir / "ids.txt").read_text().split()


def test_recommend_jsonl_contract(ranked_run: tuple[Path, dict], tmp_path: Path) -> None:
    run_dir, _ = ranked_run
    ids = _ids(run_dir)
    lines = [{"pid": 7, "visible": ids[:4] + ["no-such-track"], "name": "chill jazz",
              "extra": "ignored"},
             {"pid": "b", "visible": ["unknown-1", "unknown-2"]},
             {"pid": "c", "visible": ids[20:22]}]
    seeds = tmp_path / "seeds.jsonl.gz"
    seeds.write_bytes(gzip.compress("".join(json.dumps(x) + "\n" for x in lines).encode()))
    res = CliRunner().invoke(app, ["recommend", str(run_dir), "--seeds", str(seeds), "-k", "7",
                                   "--jsonl"])
    assert res.exit_code == 0, res.output
    out = [json.loads(x) for x in res.stdout.splitlines()]
    assert [o["pid"] for o in out] == [7, "b", "c"]  # same order, same types
    for o, given in zip(out, lines, strict=True):
        assert set(o) == {"pid", "tracks", "scores", "method"}
        assert len(o["tracks"]) == 7 == len(set(o["tracks"])) == len(o["scores"])
        assert not set(o["tracks"]) & set(given["visible"])
        assert o["scores"] == sorted(o["scores"], reverse=True)
    assert "3 unknown track ids" in res.stderr and "1 playlist with no known track" in res.stderr
    assert "two-stage" in res.stderr


def test_recommend_names_table(ranked_run: tuple[Path, dict]) -> None:
    run_dir, _ = ranked_run
    corpus = load_corpus(load_run(run_dir).corpus_dir)
    name = corpus.track_names[corpus.track_ids.index(_ids(run_dir)[0])]
    res = CliRunner().invoke(app, ["recommend", str(run_dir), name.upper(), "-k", "5"])
    assert res.exit_code == 0, res.output
    assert res.stdout.count("\n") >= 7 and "(two-stage ranker)" in res.stdout


@pytest.mark.parametrize("content, expect", [
    ('{"pid": 1, "visible": ["a"]}\n{"pid": 2, "visible": [\n',
     "seeds.jsonl:2: not valid JSON"),
    ('{"pid": 1, "visible": []}\n', "seeds.jsonl:1, field 'visible': no tracks and no name"),
    ('{"pid": 1, "name": " "}\n', "seeds.jsonl:1, field 'name': empty"),
    ('{"pid": 1, "name": 3}\n', "seeds.jsonl:1, field 'name': must be a string"),
    ('{"pid": 1, "name": "' + "x" * 501 + '"}\n', "field 'name': 501 characters"),
    ('{"visible": ["a"]}\n', "seeds.jsonl:1, field 'pid': missing"),
    ('{"pid": 1, "visible": "a"}\n', "field 'visible'"),
    ("", "no playlists"),
])
def test_recommend_bad_input_is_one_line(ranked_run: tuple[Path, dict], tmp_path: Path,
                                         content: str, expect: str) -> None:
    run_dir, _ = ranked_run
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(content)
    p = subprocess.run([sys.executable, "-c", "from dynplayer.cli import main; main()",
                        "recommend", str(run_dir), "--seeds", str(seeds), "--jsonl"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert p.stdout == ""
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and expect in err[0] and "Traceback" not in p.stderr


def test_evaluate_shows_the_two_stage_row(ranked_run: tuple[Path, dict]) -> None:
    run_dir, _ = ranked_run
    res = CliRunner().invoke(app, ["evaluate", str(run_dir), "--peers", "popularity", "--json",
                                   "--no-probe", "--no-hubness", "--split", "val",
                                   "--protocol", "seed"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    m = out["methods"]
    assert {"dynplayer", "dynplayer two-stage", "popularity"} == set(m)
    assert m["dynplayer two-stage"]["ndcg@10"] > m["dynplayer"]["ndcg@10"]
    assert out["verdict"]["peers"] == 1  # the two-stage row is not counted as a peer


# ---- small pieces, against values worked out by hand ----------------------------------------


def test_order_matrix_keeps_the_last_position() -> None:
    m = order_matrix(np.array([0, 0, 0, 1]), np.array([3, 1, 3, 2]), (2, 4))
    assert m.toarray().tolist() == [[0, 2, 0, 3], [0, 0, 1, 0]]


def test_ordered_distinct_and_last_seeds() -> None:
    ip, cols = ordered_distinct(np.array([0, 4, 6]), np.array([5, 1, 5, 2, 7, 7]))
    assert ip.tolist() == [0, 3, 4] and cols.tolist() == [1, 5, 2, 7]
    lip, lcols = last_seeds(ip, cols, 2)
    assert lip.tolist() == [0, 2, 3] and lcols.tolist() == [5, 2, 7]


def test_split_queries_and_candidates_exclude_seeds() -> None:
    ip = np.array([0, 6, 10])
    cols = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    q, held = split_queries(ip, cols, 10, 0.5, seed=0)
    assert q.n_seeds.tolist() == [3, 2] and np.diff(held.indptr).tolist() == [3, 2]
    assert not (q.seed_matrix(10).multiply(held)).nnz
    vectors = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    src = build_sources(vectors, ip, cols, [None] * 10, [None] * 10, window=2, ease_lam=1.0)
    # window pairs counted by hand: track 0 and 1 are 1 apart once, 0 and 2 two apart once
    assert src.cooc_window[0, 1] == 1 and src.cooc_window[0, 2] == 1
    assert src.cooc_window[0, 3] == 0 and src.cooc_playlist[0, 5] == 1
    ret = retrieve(src, q, n_embedding=4, n_cooc=4, n_ease=2)
    seeds = set(zip(np.repeat([0, 1], q.n_seeds).tolist(), q.seed_cols.tolist(), strict=True))
    assert not seeds & set(zip(ret.rows.tolist(), ret.cols.tolist(), strict=True))


def test_candidates_are_each_retrievers_top_k_over_every_track() -> None:
    """`retrieve` picks its candidates without (n, V) masks (the co-occurrence top among the
    tracks that co-occur at all, the EASE top among the EASE tracks); with scores free of
    ties they are exactly each retriever's top k over the whole vocabulary, computed here the
    plain way: embedding top k, co-occurrence top k of those > 0, EASE top k (NaN outside its
    tracks), minus the seeds and the banned tracks, in the batch and one at a time."""
    from dynplayer.rank.candidates import ease_scores

    rng = np.random.default_rng(3)
    v, n_pl = 60, 40
    ip = np.arange(0, 8 * n_pl + 1, 8)
    cols = np.concatenate([rng.choice(v, 8, replace=False) for _ in range(n_pl)])
    vectors = rng.standard_normal((v, 6)).astype(np.float32)
    src = build_sources(vectors, ip, cols, [None] * v, [None] * v, window=3, ease_lam=5.0,
                        ease_items=25)
    # counts tie; a tiny jitter keeps each playlist-pair count's order and breaks the ties
    jitter = sp.csr_matrix(src.cooc_playlist.multiply(1 + rng.random((v, v)) * 1e-3))
    src = replace(src, cooc_playlist=jitter.astype(np.float32))
    q_ip = np.array([0, 2, 5, 6])
    q_cols = np.array([1, 7, 3, 9, 30, 44])
    q = Queries(q_ip, q_cols)
    allowed = rng.random(v) < 0.7

    def plain(i: int, banned: np.ndarray | None) -> set[int]:
        seeds = q_cols[q_ip[i]:q_ip[i + 1]]
        off = np.zeros(v, bool)
        off[seeds] = True
        if banned is not None:
            off |= banned
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        emb = unit @ unit[seeds].sum(axis=0)  # the mean's direction: the same order
        pick = set(np.argsort(-np.where(off, -np.inf, emb))[:5].tolist())
        pl = np.asarray(src.cooc_playlist[seeds].sum(axis=0)).ravel()
        pl[off] = -np.inf
        pick |= {c for c in np.argsort(-pl)[:4].tolist() if pl[c] > 0}
        e = np.nan_to_num(ease_scores(src, q_ip[i:i + 2] - q_ip[i], seeds)[0], nan=-np.inf)
        e[off] = -np.inf
        pick |= set(np.argsort(-e)[:3].tolist())
        return {c for c in pick if not off[c]}

    for banned in (None, ~allowed):
        al = None if banned is None else allowed
        ret = retrieve(src, q, n_embedding=5, n_cooc=4, n_ease=3, n_title=0, allowed=al)
        assert np.all(np.diff(ret.rows) >= 0)
        for i in range(q.n):
            got = ret.cols[ret.rows == i]
            assert np.all(np.diff(got) > 0) and set(got.tolist()) == plain(i, banned)
            one = retrieve(src, q.slice(i, i + 1), n_embedding=5, n_cooc=4, n_ease=3,
                           n_title=0, allowed=al)
            assert one.cols.tolist() == got.tolist()


def test_itemknn_shrinkage_matches_the_formula() -> None:
    x = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 1], [1, 0, 1]], dtype=np.float32))
    knn = ItemKNN(shrinkage=2.0).fit(TrainData(x))
    # |0 and 1| = 2, |0| = 3, |1| = 2: 2 / (sqrt(6) + 2)
    assert knn.sim[0, 1] == pytest.approx(2 / (np.sqrt(6) + 2), rel=1e-6)
    assert knn.sim[0, 0] == 0.0
    q = Queries(np.array([0, 1]), np.array([0]))
    assert q.seed_matrix(3).toarray().tolist() == [[1.0, 0.0, 0.0]]


@pytest.mark.db
@pytest.mark.parametrize("backend", ["exact", "pgvector"])
def test_serving_continuations_come_from_the_ranker(ranked_run: tuple[Path, dict], backend: str,
                                                    request: pytest.FixtureRequest) -> None:
    from dynplayer.rank.serving import continuation_cpu_ms, load_serving_ranker
    from dynplayer.serve.recommender import ExactRecommender, PgvectorRecommender, Recommender
    from dynplayer.store.db import open_pool

    run_dir, _ = ranked_run
    ranker = load_serving_ranker(run_dir)
    assert ranker is not None
    catalog = request.getfixturevalue("serve_catalog")
    pool = None
    if backend == "exact":
        rec: Recommender = ExactRecommender(catalog)
    else:
        pool = open_pool(request.getfixturevalue("indexed_url"), min_size=1, max_size=2)
        rec = PgvectorRecommender(pool, catalog.version)
    try:
        seeds = _ids(run_dir)[30:34]
        plain = rec.continue_playlist(seeds + ["no-such-id"], k=10)
        rec.reranker = ranker
        got = rec.continue_playlist(seeds + ["no-such-id"], k=10)
        assert [t.track_id for t in got.tracks] == [t for t, _ in ranker.rank(seeds, 10)]
        assert got.unknown == ["no-such-id"] and got.seeds == seeds
        assert not set(seeds) & {t.track_id for t in got.tracks}
        assert all(t.name for t in got.tracks)  # names from the backend's catalog
        assert [t.track_id for t in got.tracks] != [t.track_id for t in plain.tracks]
        if backend == "exact":  # what `bench serve` reports as the ranker's added CPU
            cpu = continuation_cpu_ms(rec, ranker, [seeds, seeds[:2]] * 3, k=10)
            assert cpu["two_stage_ms"] > 0 and cpu["requests"] == 6
            assert cpu["added_ms"] == pytest.approx(cpu["two_stage_ms"] - cpu["embedding_ms"])
            assert rec.reranker is ranker  # put back as it was
    finally:
        if pool is not None:
            pool.close()


def test_the_python_api_continues_as_the_service_does(ranked_run: tuple[Path, dict]) -> None:
    """`Dynplayer.recommend` answers with the run's second stage, as the API does (it used the
    embedding alone): same tracks, same scores; `ranker=False` is the embedding ranking."""
    from fastapi.testclient import TestClient

    from dynplayer import Dynplayer
    from dynplayer.serve.app import create_app
    from dynplayer.settings import Settings

    run_dir, _ = ranked_run
    seeds = _ids(run_dir)[30:34]
    py = Dynplayer.load(run_dir).recommend([*seeds, "no-such-id"], k=10)
    with TestClient(create_app(Settings(run_dir=run_dir, backend="exact"))) as client:
        done = client.post("/v1/recommend/continue",
                           json={"track_ids": [*seeds, "no-such-id"], "k": 10})
    assert done.status_code == 200, done.text
    body = done.json()
    assert py.track_ids == [t["track_id"] for t in body["tracks"]]
    assert [t.score for t in py] == pytest.approx([t["score"] for t in body["tracks"]], abs=1e-6)
    assert list(py.unknown) == body["unknown_track_ids"] == ["no-such-id"]
    plain = Dynplayer.load(run_dir, ranker=False).recommend(seeds, k=10)
    assert plain.track_ids != py.track_ids


def test_recommend_by_names_is_recommend_by_ids(ranked_run: tuple[Path, dict]) -> None:
    """The CLI and the Python API take seeds by name through one resolver, and both answer
    as for the ids (the CLI found a track only by its exact full title)."""
    from dynplayer import Dynplayer

    run_dir, _ = ranked_run
    model = Dynplayer.load(run_dir)
    seeds = _ids(run_dir)[40:43]
    names = [(model.track(t).name or "").lower() for t in seeds]
    by_id, by_name = model.recommend(seeds, k=8), model.recommend(names, k=8)
    assert by_name.track_ids == by_id.track_ids and by_name.query == tuple(seeds)
    res = CliRunner().invoke(app, ["recommend", str(run_dir), *names, "-k", "8", "--jsonl"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["tracks"] == by_id.track_ids


def test_recommend_reads_the_stored_sources(ranked_run: tuple[Path, dict],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """`train-ranker` stores the sources serving needs (RUN_DIR/ranker/sources/): loading the
    stage neither reads the corpus nor fits EASE again, and ranks as the rebuilt sources do;
    stale sources (another key) are rebuilt."""
    import dynplayer.data.corpus as corpus_module
    import dynplayer.eval.peers as peers
    import dynplayer.rank.stage as stage_module
    from dynplayer.rank.saved import load_sources, sources_key

    run_dir, _ = ranked_run
    run = load_run(run_dir)
    corpus = load_corpus(run.corpus_dir)
    vocab = run_vocab(run, corpus)
    assert (run_dir / "ranker" / "sources" / "key.json").exists()
    q = queries_from_order(corpus_eval_set(corpus, VAL, vocab).order[:20])

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("the stored sources were not used")

    with monkeypatch.context() as m:
        m.setattr(peers, "ease_weights", refuse)
        m.setattr(stage_module, "load_corpus", refuse)
        m.setattr(corpus_module, "load_corpus", refuse)
        stored = load_stage(load_run(run_dir))
    assert stored.sources.ease is not None
    fresh = stage_module.sources_for(run, corpus, vocab, stored.cfg)
    assert fresh.ease is not None
    np.testing.assert_array_equal(np.asarray(stored.sources.ease), fresh.ease)
    assert (stored.sources.cooc_playlist != fresh.cooc_playlist).nnz == 0
    rebuilt = stage_module.TwoStage(fresh, stored.ranker, stored.cfg)
    for (c1, s1), (c2, s2) in zip(stored.rank(q, 10), rebuilt.rank(q, 10), strict=True):
        np.testing.assert_array_equal(c1, c2)
        np.testing.assert_allclose(s1, s2, rtol=1e-6)
    key = sources_key(run, corpus.manifest.get("content_hash"), stored.cfg.window,
                      stored.cfg.ease_lam)
    assert load_sources(run_dir / "ranker", run, key) is not None
    assert load_sources(run_dir / "ranker", run, {**key, "window": key["window"] + 1}) is None
    assert load_sources(run_dir / "ranker", run, {**key, "corpus_hash": "other"}) is None


def test_seed_file_with_deep_nesting_is_a_one_line_error() -> None:
    """A seeds line nested past Python's recursion limit is a DataError naming the line (it was
    a RecursionError traceback: the seeds parser lacked the split parser's guard)."""
    from dynplayer.errors import DataError
    from dynplayer.rank.recommend import parse_seed_lines

    deep = '{"pid": 1, "visible": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(DataError, match=r"seeds.jsonl:2: not valid JSON \(nested too deeply\)"):
        # (line 1 needs a track or a name since seeds lines may carry a name)
        parse_seed_lines(['{"pid": 0, "visible": ["x"]}', deep], {}, "seeds.jsonl")


def test_a_single_request_gets_the_batch_path_figures(ranked_run: tuple[Path, dict]) -> None:
    # A served request (one playlist) sums the seeds' rows directly instead of through scipy's
    # products; its candidates and every feature must be those of the batch path.
    run_dir, _ = ranked_run
    run = load_run(run_dir)
    corpus = load_corpus(run.corpus_dir)
    vocab = run_vocab(run, corpus)
    stage = load_stage(run, corpus, vocab)
    q = queries_from_order(corpus_eval_set(corpus, VAL, vocab).order[:12])
    assert q.n > SMALL_BATCH
    hl = stage.cfg.recent_half_life  # the embedding retriever's recency weighting
    assert hl > 0
    batch = retrieve(stage.sources, q, half_life=hl)
    x_batch = F.compute(stage.sources, q, batch, F.ALL_FEATURES[:-1])  # all but caption_cos
    for i in range(q.n):
        one_q = q.slice(i, i + 1)
        one = retrieve(stage.sources, one_q, half_life=hl)
        sel = batch.rows == i
        np.testing.assert_array_equal(one.cols, batch.cols[sel])
        for key, dense in one.dense.items():
            np.testing.assert_allclose(dense[0], batch.dense[key][i], rtol=1e-5, atol=1e-6)
        # the scores only features read are summed at the candidates alone
        assert set(one.at) == {"pl", "knn", "win", "win_last", "ease"} - set(one.dense)
        for key, at in one.at.items():
            np.testing.assert_allclose(at, batch.dense[key][i, one.cols], rtol=1e-5, atol=1e-6)
        x_one = F.compute(stage.sources, one_q, one, F.ALL_FEATURES[:-1])
        np.testing.assert_allclose(x_one, x_batch[sel], rtol=1e-5, atol=1e-6)
    # the last-seed cosines reuse the all-seed products: same as computing them on their own
    ip, sc = last_seeds(q.seed_indptr, q.seed_cols, 5)
    alone = F.seed_cosines(stage.sources.vectors, ip, sc, batch.rows, batch.cols)
    both = F.seed_cosines(stage.sources.vectors, q.seed_indptr, q.seed_cols, batch.rows,
                          batch.cols, last=5)
    np.testing.assert_allclose(both[2], alone[0], atol=1e-6)
    np.testing.assert_allclose(both[3], alone[1], atol=1e-6)


def test_bench_ranker_reports_the_served_cascade(ranked_run: tuple[Path, dict]) -> None:
    from dynplayer.rank.bench import run_bench

    run_dir, _ = ranked_run
    report = run_bench(run_dir, ["popularity"], ablation=False, threads=1)
    assert "| **two-stage** (as served: the cascade) | 0." in report
    assert "| two-stage, every round on every candidate | 0." in report
    assert "**Seed protocol** (held-out head tracks ranked over the head" in report
    assert "| popularity () | 0." in report
    assert "the ranker adds" in report


def test_a_damaged_cascade_setting_is_a_one_line_error(ranked_run: tuple[Path, dict],
                                                       tmp_path: Path) -> None:
    from dynplayer.errors import ArtifactError

    src, _ = ranked_run
    run = load_run(src)
    corpus = load_corpus(run.corpus_dir)
    d = tmp_path / "ranker"
    shutil.copytree(src / "ranker", d)
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["stage"]["cascade_keep"] = 0
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="cascade_keep >= 1, got 30 / 0") as err:
        load_stage(run, corpus, run_vocab(run, corpus), directory=d)
    assert "\n" not in str(err.value)
    manifest["stage"]["cascade_keep"] = 100
    for bad in (-1.0, "soon"):
        manifest["stage"]["recent_half_life"] = bad
        (d / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(ArtifactError, match="recent_half_life must be a number >= 0") as err:
            load_stage(run, corpus, run_vocab(run, corpus), directory=d)
        assert "\n" not in str(err.value)
    manifest["stage"]["recent_half_life"] = 30.0
    manifest["stage"]["grow_pool"] = "yes"
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="grow_pool must be true or false, got 'yes'") as err:
        load_stage(run, corpus, run_vocab(run, corpus), directory=d)
    assert "\n" not in str(err.value)


def test_a_ranker_saved_before_the_recency_weighting_loads_without_it(
        ranked_run: tuple[Path, dict], tmp_path: Path) -> None:
    run_dir, _ = ranked_run
    saved = json.loads((run_dir / "ranker" / "manifest.json").read_text())
    assert saved["stage"]["recent_half_life"] == StageConfig().recent_half_life
    run = load_run(run_dir)
    corpus = load_corpus(run.corpus_dir)
    vocab = run_vocab(run, corpus)
    d = tmp_path / "ranker"
    shutil.copytree(run_dir / "ranker", d)
    q = queries_from_order(corpus_eval_set(corpus, VAL, vocab).order[:6])
    for value in (None, 3.0):
        if value is None:
            saved["stage"].pop("recent_half_life")
        else:
            saved["stage"]["recent_half_life"] = value
        (d / "manifest.json").write_text(json.dumps(saved))
        stage = load_stage(run, corpus, vocab, directory=d)
        assert stage.cfg.recent_half_life == (value or 0.0)
        ranked = stage.rank(q, 10)
        assert len(ranked) == q.n and all(len(top) == 10 for top, _ in ranked)


def test_artist_cooccurrence_and_its_feature_by_hand() -> None:
    """Three playlists over 5 tracks of artists a (tracks 0, 1), b (2), c (3), unknown (4):
    a and b share playlists 0 and 1, c is only in playlist 1 (with a and b), so cooc(a, b) =
    2 / sqrt(2 * 2) = 1 and cooc(a, c) = cooc(b, c) = 1 / sqrt(2 * 1)."""
    from dynplayer.rank.candidates import Queries
    from dynplayer.rank.features import artist_affinity

    ip = np.array([0, 2, 5, 6])
    cols = np.array([0, 2, 1, 2, 3, 4])
    vectors = np.eye(5, dtype=np.float32)
    src = build_sources(vectors, ip, cols, ["a", "a", "b", "c", None], [None] * 5)
    assert src.artist_cooc is not None
    c = src.artist_cooc.toarray()
    a, b, cc = src.artist[0], src.artist[2], src.artist[3]
    assert c[a, b] == pytest.approx(1.0) and c[b, cc] == pytest.approx(1 / np.sqrt(2))
    assert c[a, cc] == pytest.approx(1 / np.sqrt(2)) and np.all(np.diag(c) == 0.0)
    # one playlist seeded with track 0 (artist a) and track 3 (artist c); candidates 2, 1, 4
    q = Queries(np.array([0, 2]), np.array([0, 3]))
    rows, cand = np.array([0, 0, 0]), np.array([2, 1, 4])
    got = artist_affinity(src, q, rows, cand)
    # track 2 (b): (cooc(a, b) + cooc(c, b)) / 2 seeds; track 1 (a): (cooc(a, a) = 0 +
    # cooc(c, a)) / 2; track 4: no artist
    r2 = 1 / np.sqrt(2)
    assert got.tolist() == pytest.approx([(1.0 + r2) / 2, r2 / 2, 0.0])
    # the batched path (sparse indexing) gives the same numbers
    many = Queries(np.arange(0, 2 * 2001, 2), np.tile([0, 3], 2000))
    big_rows = np.repeat(np.arange(2000), 3)
    big = artist_affinity(src, many, big_rows, np.tile(cand, 2000))
    np.testing.assert_allclose(big.reshape(2000, 3), np.tile(got, (2000, 1)), rtol=1e-6)
    none = build_sources(vectors, ip, cols, [None] * 5, [None] * 5)
    assert none.artist_cooc is None and not artist_affinity(none, q, rows, cand).any()


def test_a_grid_point_within_the_tie_of_the_best_is_kept_when_cheaper() -> None:
    from dynplayer.rank.train import TIE, choose_point

    # the re-split's grid: 0.6587 / 0.6621 / 0.6625 with 39 / 72 / 131 rounds
    assert choose_point([0.6587, 0.6621, 0.6625], [39, 72, 131]) == 1
    assert choose_point([0.6992, 0.6846, 0.6907], [82, 100, 99]) == 0  # a clear best stays
    assert choose_point([0.5, 0.5 - TIE / 2], [50, 50]) == 0  # equal rounds: the first
    assert choose_point([0.5, 0.5 - 2 * TIE], [90, 10]) == 0  # outside the tie: the best


def test_the_seed_protocol_is_kept_as_a_setting(ranked_run: tuple[Path, dict],
                                                tmp_path: Path) -> None:
    """`protocol = "seed"`: playlists split in half at random and settings chosen on the seed
    protocol's Recall@10 + NDCG@10 (the shadow embedding of the default's run is reused)."""
    import shutil

    src, _ = ranked_run
    run_dir = tmp_path / "run"
    shutil.copytree(src, run_dir, ignore=shutil.ignore_patterns("ranker", "ranker-rejected"))
    cfg = replace(FAST, protocol="seed", params=replace(FAST.params, threads=1))
    manifest = train_ranker(run_dir, cfg)
    v = manifest["validation"]
    assert manifest["config"]["protocol"] == "seed"
    assert {"recall@10", "ndcg@10"} <= set(v["two_stage"]) and "r_precision" not in v["two_stage"]
    assert v["two_stage"]["recall@10"] > v["embedding"]["recall@10"]


def test_a_name_is_evidence_without_leaking_its_own_playlist(serve_run_dir: Path) -> None:
    """The text model's scores for a name, over run rows: NaN rows without a name; a training
    playlist's own row left out of the search changes what its name finds."""
    from dynplayer.rank.title import TitleEvidence

    run = load_run(serve_run_dir)
    title = TitleEvidence.load(serve_run_dir, run.ids)
    assert title is not None
    corpus = load_corpus(run.corpus_dir)
    p = int(corpus.playlists_in(0)[0])
    name, pid = corpus.names[p], corpus.pids[p]
    dense = title.dense([name, None, ""], [pid, None, None])
    assert dense.shape == (3, len(run.ids))
    assert np.isnan(dense[1]).all() and np.isnan(dense[2]).all()
    assert np.nanmax(dense[0]) == pytest.approx(1.0) and (dense[0] >= 0).all()
    own = title.dense([name])[0]
    assert not np.allclose(own, dense[0])  # its own tracks weigh less once it is left out
    assert title.dense(["   "])[0].tolist() == [] or np.isnan(title.dense(["   "])[0]).all()


def test_recommend_a_name_alone_goes_to_the_text_model(serve_run_dir: Path,
                                                        tmp_path: Path) -> None:
    """`--name` alone (and a seeds line with a name and no known track) is answered by the text
    model, exactly as `search` answers it; the line says how it was answered."""
    from dynplayer.text.search import TextSearcher

    expected = [h.track_id for h in TextSearcher.load(serve_run_dir).search("chill jazz", 6)
                .tracks]
    res = CliRunner().invoke(app, ["recommend", str(serve_run_dir), "--name", "chill jazz",
                                   "-k", "6", "--jsonl"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["method"] == "text" and out["tracks"] == expected
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"pid": 1, "name": "chill jazz"}) + "\n"
                     + json.dumps({"pid": 2, "visible": ["nope"], "name": "chill jazz"}) + "\n"
                     + json.dumps({"pid": 3, "visible": ["nope"]}) + "\n")
    res = CliRunner().invoke(app, ["recommend", str(serve_run_dir), "--seeds", str(seeds),
                                   "-k", "6", "--jsonl"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert [o["method"] for o in lines] == ["text", "text", "popularity"]
    assert lines[0]["tracks"] == expected == lines[1]["tracks"]
    bad = CliRunner().invoke(app, ["recommend", str(serve_run_dir)])
    assert "give TRACK..., --name NAME or --seeds FILE" in str(bad.exception)
