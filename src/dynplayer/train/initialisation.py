"""Initial embedding tables: the randomized-SVD start (`init = "svd"`)."""

from __future__ import annotations

import numpy as np

from dynplayer.run import l2_normalize
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
    q, _ = np.linalg.qr(x @ rng.standard_normal((data.n_items, width)).astype(np.float32))
    for _ in range(n_iter):
        z, _ = np.linalg.qr(xt @ q)
        q, _ = np.linalg.qr(x @ z)
    _, s, vt = np.linalg.svd((xt @ q).T, full_matrices=False)
    out = rng.normal(0, 1e-3, (data.n_items, dim)).astype(np.float32)
    out[:, :k] = vt[:k].T * np.sqrt(s[:k])[None, :]
    return l2_normalize(out)
