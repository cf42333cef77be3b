"""Genre probe: near 100% on separable vectors, near chance on random ones."""

from __future__ import annotations

import numpy as np

from dynplayer.eval.probe import linear_probe, random_vectors, stratified_split


def _clusters(n_classes: int = 8, per: int = 60, dim: int = 16, noise: float = 0.3,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, dim))
    labels = np.repeat(np.arange(n_classes), per)
    return centres[labels] + noise * rng.standard_normal((labels.shape[0], dim)), labels


def test_probe_separable_is_near_perfect() -> None:
    x, y = _clusters()
    y[:5] = -1  # unlabelled tracks are ignored
    r = linear_probe(x, y)
    assert r["top1"] >= 0.97
    assert r["top5"] == 1.0
    assert r["n_classes"] == 8
    assert r["n_train"] + r["n_test"] == y.shape[0] - 5


def test_probe_random_is_near_chance() -> None:
    _, y = _clusters(n_classes=10, per=80)
    r = linear_probe(random_vectors(y.shape[0], 16, seed=3), y)
    assert r["top1"] < 0.2  # chance is 0.1
    assert 0.3 < r["top5"] < 0.7  # chance is 0.5


def test_stratified_split_keeps_class_shares() -> None:
    y = np.repeat(np.arange(3), [50, 20, 1])
    tr, te = stratified_split(y, 0.2, seed=0)
    assert np.intersect1d(tr, te).size == 0 and tr.size + te.size == y.size
    assert np.bincount(y[te], minlength=3).tolist() == [10, 4, 0]  # a singleton stays in train
