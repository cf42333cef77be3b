"""The embedding retriever's recency weighting (`StageConfig.recent_half_life`): seeds later
in a playlist count more in the mean the retriever searches from."""

from __future__ import annotations

import numpy as np

from dynplayer.rank.candidates import (
    Queries,
    build_sources,
    recency_weights,
    retrieve,
    seed_mean,
)


def test_recency_weights_halve_every_half_life_seeds_back() -> None:
    ip = np.array([0, 3, 4, 4])  # three seeds, one seed, none
    np.testing.assert_allclose(recency_weights(ip, 1.0), [0.25, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(recency_weights(ip, 2.0), [0.5, 2 ** -0.5, 1.0, 1.0], rtol=1e-6)
    assert recency_weights(ip, 0.0) is None


def test_the_weighted_mean_one_playlist_or_many() -> None:
    rng = np.random.default_rng(0)
    v = rng.standard_normal((30, 5)).astype(np.float32)
    ip = np.array([0, 4, 6, 7, 10, 12, 16])  # more than a served request's few playlists
    cols = rng.choice(30, 16).astype(np.int64)
    for half_life in (0.0, 1.5):
        batch = seed_mean(v, ip, cols, half_life)
        for i in range(ip.shape[0] - 1):
            seeds = cols[ip[i]:ip[i + 1]]
            w = 0.5 ** ((seeds.shape[0] - 1 - np.arange(seeds.shape[0])) / half_life) \
                if half_life else np.ones(seeds.shape[0])
            want = (w[:, None] * v[seeds]).sum(axis=0)
            want /= np.linalg.norm(want)
            np.testing.assert_allclose(batch[i], want, atol=1e-5)
            one = seed_mean(v, ip[i:i + 2] - ip[i], seeds, half_life)
            np.testing.assert_allclose(one[0], batch[i], atol=1e-6)


def test_a_short_half_life_retrieves_near_the_last_seeds() -> None:
    """Two planted clusters: four seeds from the first, then one from the second. The plain
    mean searches near the first cluster; a half-life of half a seed near the second."""
    rng = np.random.default_rng(1)
    a, b = np.eye(8, dtype=np.float32)[0], np.eye(8, dtype=np.float32)[1]
    vectors = np.concatenate([a + 0.05 * rng.standard_normal((10, 8)),
                              b + 0.05 * rng.standard_normal((10, 8))]).astype(np.float32)
    ip = np.array([0, 5])
    seeds = np.array([0, 1, 2, 3, 10])
    src = build_sources(vectors, ip, seeds, [None] * 20, [None] * 20, window=2)
    q = Queries(ip, seeds)
    plain = retrieve(src, q, n_embedding=4, n_cooc=0, n_ease=0, n_title=0)
    recent = retrieve(src, q, n_embedding=4, n_cooc=0, n_ease=0, n_title=0, half_life=0.5)
    assert set(plain.cols.tolist()) <= set(range(4, 10))
    assert set(recent.cols.tolist()) <= set(range(11, 20))
    assert np.isin(seeds, recent.cols).sum() == 0
