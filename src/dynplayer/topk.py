"""Exact top-k over a score vector, ties by index: the one ordering every answer shares
(serving, text search, the CLI and the Python API)."""

from __future__ import annotations

import numpy as np


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


__all__ = ["top_k"]
