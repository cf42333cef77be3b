"""Initial embedding tables: the randomized-SVD start (`init = "svd"`)."""

from __future__ import annotations

import numpy as np
from scipy.linalg import qr, svd

from dynplayer.train.sampling import TrainingData


def svd_init(data: TrainingData, dim: int, seed: int, n_iter: int = 4) -> np.ndarray:
    """Item factors V_k S_k^(1/2) of the playlist x item matrix with columns scaled by
    popularity^(-1/2) (so dot products of the rows approximate item-item cosine similarity),
    rows L2-normalised. A randomized SVD (Halko et al., `n_iter` power iterations) in float32:
    ARPACK took minutes on the MPD corpus, this takes seconds."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):
        return _svd_init(data, dim, seed, n_iter)


def _svd_init(data: TrainingData, dim: int, seed: int, n_iter: int) -> np.ndarray:
    import scipy.sparse as sp

    rows = np.repeat(np.arange(data.n_playlists), np.diff(data.set_indptr))
    pop = np.bincount(data.set_cols, minlength=data.n_items).astype(np.float32)
    vals = (1.0 / np.sqrt(np.maximum(pop, 1.0)))[data.set_cols].astype(np.float32)
    x = sp.csr_matrix((vals, (rows, data.set_cols)), shape=(data.n_playlists, data.n_items))
    xt = x.T.tocsr()
    rng = np.random.default_rng(seed)
    k = min(dim, min(x.shape))
    width = min(k + 10, min(x.shape))
    q = _orthonormal(x @ _normal_rows(rng, data.n_items, width, 1.0))
    for _ in range(n_iter):
        z = _orthonormal(xt @ q)
        q = _orthonormal(x @ z)
    # x's top right singular vectors from the small problem: xt @ q = Q R, R = U S W^T,
    # so x's item factors are Q U S^(1/2) (a full SVD of the width x items matrix took two
    # float64 copies of it and as much workspace)
    qb, r = qr(xt @ q, mode="economic", overwrite_a=True, check_finite=False)
    u, s, _ = svd(r.astype(np.float64), full_matrices=False)
    out = _normal_rows(rng, data.n_items, dim, 1e-3)
    out[:, :k] = qb @ (u[:, :k] * np.sqrt(s[:k])[None, :]).astype(np.float32)
    del qb
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)  # in place
    return out


def _normal_rows(rng: np.random.Generator, n: int, width: int, scale: float) -> np.ndarray:
    """rng.normal(0, scale, (n, width)) as float32, drawn a block of rows at a time (the
    same values; no float64 copy of the whole table)."""
    out = np.empty((n, width), dtype=np.float32)
    block = max(1, (1 << 22) // max(width, 1))
    for start in range(0, n, block):
        out[start:start + block] = rng.normal(0, scale, (min(block, n - start), width))
    return out


def _orthonormal(a: np.ndarray) -> np.ndarray:
    """An orthonormal basis of `a`'s columns (economic QR's Q) in float32, in place of `a`.

    numpy's QR computes in float64 whatever the input: two float64 copies of a tall matrix
    (1.3 GB at 494k tracks x 138 columns), the training stage's peak at scale."""
    q, _ = qr(a, mode="economic", overwrite_a=True, check_finite=False)
    return q
