"""Item-kNN over a whole catalogue: the cosine of track columns of the playlist x track matrix,
kept sparse (a dense V x V matrix does not fit once V is the whole catalogue)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from dynplayer.eval.peers import Peer, TrainData, _binary


def top_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep each row's k largest entries (ties broken by column)."""
    m = m.tocsr()
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    order = np.lexsort((m.indices, -m.data, rows))
    starts = m.indptr[:-1]
    rank = np.empty(order.shape[0], dtype=np.int64)
    rank[order] = np.arange(order.shape[0]) - np.repeat(starts, np.diff(m.indptr))
    keep = rank < k
    out = sp.csr_matrix((m.data[keep], m.indices[keep], np.r_[0, np.cumsum(
        np.bincount(rows[keep], minlength=m.shape[0]))]), shape=m.shape)
    return out


class SparseItemKNN(Peer):
    """score(p, j) = sum over visible i of sim(i, j), sim(i, j) = |i and j| / (sqrt(|i| |j|) +
    shrinkage), each track keeping its `neighbours` most similar (None = all): `ItemKNN` with
    a sparse similarity matrix."""

    name = "itemknn"

    def __init__(self, neighbours: int | None = None, shrinkage: float = 0.0) -> None:
        super().__init__(neighbours=neighbours, shrinkage=shrinkage)

    def fit(self, data: TrainData) -> SparseItemKNN:
        x = _binary(data.matrix)
        pop = np.asarray(x.sum(axis=0)).ravel().astype(np.float32)
        c = (x.T @ x).tocsr().astype(np.float32)
        c.setdiag(0.0)
        c.eliminate_zeros()
        rows = np.repeat(np.arange(c.shape[0]), np.diff(c.indptr))
        denom = np.sqrt(pop[rows] * pop[c.indices]) + float(self.params["shrinkage"])
        c.data /= np.maximum(denom, 1e-12)
        k = self.params["neighbours"]
        self.sim = top_per_row(c, int(k)) if k is not None else c
        return self

    def score(self, visible: sp.csr_matrix) -> np.ndarray:
        return np.asarray((_binary(visible) @ self.sim).todense(), dtype=np.float32)
