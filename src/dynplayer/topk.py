"""Exact top-k over a score vector, ties by index: the one ordering every answer shares
(serving, text search, the CLI and the Python API)."""

from __future__ import annotations

import numpy as np

# Scores one dense product may hold (128 MiB of float32): callers that score many rows
# against a whole catalogue (evaluation, text search) go in chunks of at most this many.
SCORE_CHUNK = 1 << 25


def rows_per_chunk(width: int, cap: int | None = None) -> int:
    """Rows of `width` scores that fit in SCORE_CHUNK (at least 1, at most `cap`)."""
    rows = max(1, SCORE_CHUNK // max(width, 1))
    return rows if cap is None else max(1, min(cap, rows))


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, best first; ties by index, so the order is stable."""
    k = min(k, scores.shape[0])
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    kth = np.partition(scores, scores.shape[0] - k)[scores.shape[0] - k]
    above = np.flatnonzero(scores > kth)
    ties = np.flatnonzero(scores == kth)[: k - above.shape[0]]
    picked = np.concatenate([above, ties])
    return picked[np.lexsort((picked, -scores[picked]))]


__all__ = ["SCORE_CHUNK", "rows_per_chunk", "top_k"]
