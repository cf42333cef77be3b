"""Ranking metrics as small pure numpy functions over a whole batch (no loop over candidates).

Inputs are `hits`, a boolean matrix (n_playlists, K) saying whether the item at rank r of each
list is relevant, and `n_relevant`, the number of relevant (held-out) items per playlist.
"""

from __future__ import annotations

import numpy as np


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Recall@K = hits in the top K / min(K, |relevant|) (the reference's normalisation)."""
    denom = np.minimum(k, n_relevant).astype(np.float64)
    got = hits[:, :k].sum(axis=1)
    return np.divide(got, denom, out=np.zeros_like(denom), where=denom > 0)


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """NDCG@K, binary relevance: sum_r hit_r / log2(r + 1) over ideal DCG of min(K, |rel|) hits."""
    disc = _discounts(k)
    dcg = (hits[:, :k] * disc[: hits[:, :k].shape[1]]).sum(axis=1)
    cum = np.r_[0.0, np.cumsum(disc)]
    idcg = cum[np.minimum(k, n_relevant)]
    return np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)


def r_precision(hits_at_r: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """R-precision = hits in the top |relevant| / |relevant|; `hits_at_r` counts those hits."""
    n = n_relevant.astype(np.float64)
    return np.divide(hits_at_r, n, out=np.zeros_like(n), where=n > 0)


def coverage(top: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one list."""
    if n_items == 0:
        return 0.0
    return float(np.unique(top).shape[0] / n_items)


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of an exposure distribution (0 = every item equally shown, 1 = one item).

    G = sum_i (2i - n - 1) x_(i) / (n sum x), x sorted ascending, i = 1..n.
    """
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n = x.shape[0]
    total = x.sum()
    if n == 0 or total == 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def exposure_gini(top: np.ndarray, n_items: int) -> float:
    """Gini of how often each catalogue item appears across the top lists."""
    return gini(np.bincount(top.ravel(), minlength=n_items))
