"""Hubness on the text side: the query-bank normalisation (inverted softmax, QB-Norm) that
counters it. How concentrated the retrieved playlists are is measured by
`dynplayer.eval.hubness.retrieval_hubness`."""

from __future__ import annotations

import numpy as np


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
