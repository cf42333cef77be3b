"""Exact top-k over a score vector, and the one exact playlist search of a text query that
every exact path shares (the exact backend, small pgvector catalogs, the CLI, the Python API)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dynplayer.topk import top_k


def top_playlists_exact(vectors: np.ndarray, qvec: np.ndarray, n: int,
                        bias: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the n playlists most similar to `qvec` (cosine; chosen by cosine - `bias` with
    query-bank normalisation) and their cosines, best first, ties by row: the one exact
    playlist search every exact path (exact backend, small pgvector catalogs, CLI) shares."""
    sims = vectors @ qvec
    rows = top_k(sims if bias is None else sims - bias, n)
    return rows, sims[rows]


def qb_bias(searcher: Any) -> np.ndarray | None:
    """The searcher's query-bank normalisation bias when it uses one (TextSearcher's
    `qbnorm_beta` > 0), so exact paths choose playlists as `TextSearcher.search` does."""
    beta = getattr(getattr(searcher, "cfg", None), "qbnorm_beta", 0.0)
    return getattr(searcher, "qb_bias", None) if beta and beta > 0 else None


__all__ = ["qb_bias", "top_k", "top_playlists_exact"]
