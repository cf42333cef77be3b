"""Hubness diagnostics on vectors whose hubs and anti-hubs are planted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dynplayer.eval.hubness import (
    hubness_stats,
    k_occurrence,
    knn_indices,
    plot_hubness,
    public,
    skewness,
    spearman,
)


def test_knn_and_k_occurrence_hand_computed() -> None:
    # Angles 0, 10, 20, 90, 95 degrees: 1-NN of each is the nearest angle, never itself.
    ang = np.deg2rad([0, 10, 20, 90, 95])
    v = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    assert knn_indices(v, 1).ravel().tolist() == [1, 0, 1, 4, 3]
    assert k_occurrence(v, 1).tolist() == [1, 2, 0, 1, 1]


def test_planted_hub_and_anti_hubs() -> None:
    # 200 points scattered around one axis, plus the axis itself: closer to each point than
    # the points are to each other, so it is in nearly every top-5 list.
    rng = np.random.default_rng(0)
    axis = np.eye(200)[:1]
    v = np.vstack([axis + 0.1 * rng.standard_normal((200, 200)), axis])
    pop = np.r_[np.arange(200), 1000]  # the hub is also the most popular track
    st = hubness_stats(v, pop, k=5, n_sample=100)
    nk = st["_arrays"]["k_occurrence"]
    assert nk.argmax() == 200 and nk[200] == 200  # in every top-5 list
    assert nk.sum() == 201 * 5
    assert st["k_occurrence_max"] == nk[200]
    assert st["anti_hub_share"] == pytest.approx((nk == 0).mean())
    assert st["k_occurrence_skewness"] > 3  # one huge outlier
    assert st["k_occurrence_histogram"][0] == (nk == 0).sum()
    # exact mean cosine to the rest vs brute force
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    s = u @ u.T
    brute = (s.sum(axis=1) - 1) / 200
    assert st["_arrays"]["to_rest"] == pytest.approx(brute, abs=1e-5)
    assert st["mean_cosine_by_popularity_decile"][9] == pytest.approx(
        brute[np.argsort(pop)[-20:]].mean(), abs=1e-5)  # ranks 181..200 of 201
    assert "_arrays" not in public(st)


def test_skewness_and_spearman_hand_computed() -> None:
    assert skewness(np.array([1.0, 2.0, 3.0])) == pytest.approx(0.0)
    # x = [0, 0, 3]: mean 1, deviations -1 -1 2, m2 = 2, m3 = 2, skew = 2 / 2^1.5
    assert skewness(np.array([0.0, 0.0, 3.0])) == pytest.approx(2 / 2**1.5)
    assert spearman(np.array([1, 2, 3, 4]), np.array([10, 20, 30, 40])) == pytest.approx(1.0)
    assert spearman(np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1])) == pytest.approx(-1.0)
    # ties share their mean rank: a = [1, 1, 2] -> ranks [0.5, 0.5, 2]
    assert spearman(np.array([1, 1, 2]), np.array([1, 2, 3])) == pytest.approx(
        np.corrcoef([0.5, 0.5, 2], [0, 1, 2])[0, 1])


def test_plots_are_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    v = rng.standard_normal((60, 4))
    st = {"a": hubness_stats(v, rng.integers(1, 50, 60), k=3, n_sample=30)}
    files = plot_hubness(st, tmp_path)
    assert len(files) == 4
    for f in files.values():
        assert (tmp_path / f).read_bytes()[:4] == b"\x89PNG"
