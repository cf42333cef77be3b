"""The candidate pool grows with a long answer (`StageConfig.pool`): a list of 500 is ordered
by the ranker over a pool at least that large, the base pool's candidates first; a short
answer keeps the base pool."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from dynplayer.rank import features as F
from dynplayer.rank.candidates import Queries, build_sources, retrieve
from dynplayer.rank.model import Ranker, RankerParams
from dynplayer.rank.stage import StageConfig, TwoStage


def test_the_pool_grows_in_proportion_past_the_base() -> None:
    cfg = StageConfig(n_embedding=300, n_cooc=200)
    assert cfg.pool() == (300, 200)
    assert cfg.pool(20) == cfg.pool(300) == (300, 200)
    assert cfg.pool(500) == (500, 334)  # 200 x 500 / 300, rounded up
    assert cfg.pool(600) == (600, 400)
    assert replace(cfg, grow_pool=False).pool(500) == (300, 200)


def _stage(grow: bool) -> tuple[TwoStage, Queries]:
    rng = np.random.default_rng(0)
    v = rng.standard_normal((120, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    lengths = rng.integers(5, 15, size=60)
    ip = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    cols = rng.integers(0, 120, size=int(ip[-1])).astype(np.int64)
    src = build_sources(v, ip, cols, [f"a{i % 9}" for i in range(120)], [None] * 120, window=3)
    names = F.features_without(["embedding", "cooc", "popularity"], [])
    q = Queries(np.array([0, 3]), np.array([1, 2, 3]))
    # a ranker fitted on the candidates' own features (labels: the embedding's top ten)
    ret = retrieve(src, q, n_embedding=60, n_cooc=20, n_ease=0, n_title=0)
    x = F.compute(src, q, ret, names)
    cos = ret.dense["emb"][ret.rows, ret.cols]
    y = (cos >= np.sort(cos)[-10]).astype(np.float32)
    rows = np.zeros(x.shape[0], dtype=np.int64)
    ranker = Ranker.fit(RankerParams(num_leaves=4, rounds=5, min_child_samples=2, threads=1),
                        names, x, y, rows)
    cfg = StageConfig(n_embedding=10, n_cooc=5, n_ease=0, n_title=0, ease_lam=None,
                      cascade_rounds=0, recent_half_life=0.0, grow_pool=grow)
    return TwoStage(src, ranker, cfg), q


def test_a_long_answer_is_ranked_over_a_larger_pool() -> None:
    grown, q = _stage(True)
    fixed, _ = _stage(False)
    (short_a, _), = grown.rank(q, 8)
    (short_b, _), = fixed.rank(q, 8)
    np.testing.assert_array_equal(short_a, short_b)  # a short answer: the same pool
    (long_a, scores_a), = grown.rank(q, 40)
    (long_b, scores_b), = fixed.rank(q, 40)
    assert long_b.shape[0] < 40  # the base pool holds fewer than 40 candidates
    assert long_a.shape[0] == 40  # the grown one: 40 embedding picks at least, all ranked
    assert len(set(long_a.tolist())) == 40 and not set(long_a.tolist()) & {1, 2, 3}
    assert np.all(np.diff(scores_a) <= 1e-9)  # in the ranker's order
    rows, cols, _, _ = grown.candidate_scores(q, keep=40)
    assert cols.shape[0] >= 40 and set(long_a.tolist()) <= set(cols.tolist())
    # the base pool's candidates first, in the order and with the scores the base pool alone
    # gives them; the grown pool's others after
    n = long_b.shape[0]
    np.testing.assert_array_equal(long_a[:n], long_b)
    np.testing.assert_allclose(scores_a[:n], scores_b, rtol=1e-6)
    assert scores_a[n] < scores_a[n - 1]
