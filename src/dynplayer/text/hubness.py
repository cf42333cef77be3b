"""Hubness on the text side: how concentrated retrieved playlists are across queries, and the
query-bank normalisation (inverted softmax, QB-Norm) that counters it."""

from __future__ import annotations

from typing import Any

import numpy as np

from dynplayer.eval.metrics import gini


def k_occurrence(top: np.ndarray, n_items: int) -> np.ndarray:
    """N_k(j): how many of the queries' top-k lists (rows of `top`) contain item j."""
    return np.bincount(np.asarray(top).ravel(), minlength=n_items)


def hubness_stats(top: np.ndarray, n_items: int) -> dict[str, Any]:
    """Concentration of k-occurrence: skewness of N_k, Gini, share of all slots taken by the
    1% most retrieved items, and the share of items never retrieved."""
    nk = k_occurrence(top, n_items).astype(np.float64)
    mu, sd = nk.mean(), nk.std()
    skew = float(((nk - mu) ** 3).mean() / sd ** 3) if sd > 0 else 0.0
    n_top = max(1, int(round(0.01 * n_items)))
    top_share = float(np.sort(nk)[::-1][:n_top].sum() / max(nk.sum(), 1))
    return {"k": int(top.shape[1]), "n_queries": int(top.shape[0]), "skewness": skew,
            "gini": gini(nk), "top1pct_share": top_share,
            "never_retrieved": float((nk == 0).mean()), "max_occurrence": int(nk.max())}


def inverted_softmax_bias(bank_sims: np.ndarray, beta: float,
                          exclude_diagonal: bool = False) -> np.ndarray:
    """Per-item bias b_j = log sum_b exp(beta s_bj) / beta over a query bank (rows of bank_sims).

    Ranking by s_qj - b_j is ranking by the inverted softmax exp(beta s_qj) / sum_b exp(beta s_bj):
    items that every bank query likes (hubs) are pushed down. With `exclude_diagonal`, bank query i
    is item i's own caption and is left out of item i's sum.
    """
    z = beta * np.asarray(bank_sims, dtype=np.float64)
    if exclude_diagonal:
        n = min(z.shape)
        z[np.arange(n), np.arange(n)] = -np.inf
    zmax = z.max(axis=0)
    lse = zmax + np.log(np.exp(z - zmax[None, :]).sum(axis=0))
    return (lse / beta).astype(np.float32)
