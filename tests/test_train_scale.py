"""Training at scale: the sampled set-to-track candidates and their inclusion probabilities,
the automatic choice of softmax, and the epoch budget."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from dynplayer.data.corpus import Corpus
from dynplayer.train.budget import epoch_cap, sampled_softmax
from dynplayer.train.config import TrainConfig
from dynplayer.train.sampling import build_training_data, set_batch, set_candidates


def test_candidates_hold_every_target_and_sorted_distinct(synthetic_corpus: Corpus) -> None:
    data = build_training_data(synthetic_corpus, neighbours=False)
    rng = np.random.default_rng(0)
    batch = set_batch(data, np.arange(64), rng, 0.2, 0.8)
    cand = set_candidates(data, batch, rng, n_negatives=50)
    assert np.all(np.diff(cand.items) > 0)
    pos, found = cand.positions(batch.target_cols)
    assert found.all() and np.array_equal(cand.items[pos], batch.target_cols)
    assert cand.items.shape[0] >= np.unique(batch.target_cols).shape[0]
    assert np.all(cand.logq <= 0) and np.all(np.isfinite(cand.logq))
    # An item that is no candidate is reported as not found.
    missing = np.setdiff1d(np.arange(data.n_items), cand.items)[:5]
    assert not cand.positions(missing)[1].any()


def test_candidates_with_negatives_covering_the_vocabulary_are_the_full_softmax(
        synthetic_corpus: Corpus) -> None:
    data = build_training_data(synthetic_corpus, neighbours=False)
    rng = np.random.default_rng(1)
    batch = set_batch(data, np.arange(32), rng, 0.2, 0.8)
    cand = set_candidates(data, batch, rng, n_negatives=data.n_items + 10)
    assert np.array_equal(cand.items, np.arange(data.n_items))
    assert np.all(cand.logq == 0)


def test_inclusion_probability_matches_the_frequency_over_draws(
        synthetic_corpus: Corpus) -> None:
    """pi_j (what the log-Q correction subtracts) against how often item j is a candidate over
    400 independent batches: close for items of every popularity."""
    data = build_training_data(synthetic_corpus, neighbours=False)
    rng = np.random.default_rng(2)
    hits = np.zeros(data.n_items)
    pi_sum = np.zeros(data.n_items)
    draws = 400
    for _ in range(draws):
        playlists = rng.choice(data.n_playlists, 16, replace=False)
        batch = set_batch(data, playlists, rng, 0.2, 0.8)
        cand = set_candidates(data, batch, rng, n_negatives=40)
        hits[cand.items] += 1
        pi = np.full(data.n_items, np.nan)
        pi[cand.items] = np.exp(cand.logq)
        # pi of a non-candidate is the same formula; recompute it for every item
        t = batch.target_cols.shape[0]
        assert data.item_set_share is not None
        pi_all = 1 - (1 - 40 / data.n_items) * np.exp(-t * data.item_set_share)
        np.testing.assert_allclose(pi[cand.items], pi_all[cand.items], rtol=1e-5)
        pi_sum += pi_all
    freq, expected = hits / draws, pi_sum / draws
    popular = np.argsort(-data.item_set_share)[:20]
    rare = np.argsort(data.item_set_share)[:100]
    assert np.abs(freq[popular] - expected[popular]).max() < 0.15
    assert abs(freq[rare].mean() - expected[rare].mean()) < 0.05
    # Over all items the calibration error is small against the spread of pi.
    assert np.abs(freq - expected).mean() < 0.05 < expected.std() * 3


def test_auto_softmax_and_epoch_budget() -> None:
    cfg = TrainConfig()
    assert cfg.set_softmax == "auto"
    assert not sampled_softmax(cfg, 10_087)  # the MPD slices stay on the full softmax
    assert sampled_softmax(cfg, 113_000)  # MPD at 1M (tracks in 5+ playlists)
    assert sampled_softmax(replace(cfg, set_softmax="sampled"), 100)
    assert not sampled_softmax(replace(cfg, set_softmax="full"), 10**7)
    assert epoch_cap(cfg, 5_303) == cfg.epochs  # MPD slices: unchanged
    assert epoch_cap(cfg, 750_000) == 3  # 1M playlists, 75% training: ceil(2M / 750k)
    assert epoch_cap(cfg, 10**8) == cfg.min_epochs
    assert epoch_cap(replace(cfg, playlist_budget=0), 10**8) == cfg.epochs
