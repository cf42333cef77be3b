"""The arithmetic of keyword -> tracks, on arrays only (`TextSearcher` holds the model): track
scores aggregated from the retrieved playlists, the pseudo-relevance feedback, and the merge
with the metadata match. The batch forms (`aggregate_scores`, `feedback_scores`) are what the
benchmark uses over many queries; serving works on the candidate tracks alone (`distinct`,
`merge_metadata`)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from dynplayer.run import l2_normalize


def aggregate_scores(occ: sp.csr_matrix, rows: np.ndarray, sims: np.ndarray,
                     power: float = 1.0) -> np.ndarray:
    """Track scores for a batch of queries: sum over each query's playlists of occ x sim^power.

    rows, sims: (n_queries, m) playlist rows and their similarities; negative similarities
    contribute nothing. Returns dense (n_queries, V).
    """
    rows = np.atleast_2d(rows)
    w = np.clip(np.atleast_2d(sims).astype(np.float32), 0.0, None) ** power
    n, m = rows.shape
    weights = sp.csr_matrix((w.ravel(), rows.ravel(), np.arange(0, n * m + 1, m)),
                            shape=(n, occ.shape[0]))
    return np.asarray((weights @ occ).todense(), dtype=np.float32)


def playlist_track_means(occ: sp.csr_matrix, track_vectors: np.ndarray) -> np.ndarray:
    """(P, d) mean of each playlist's distinct tracks' (L2-normalised) vectors."""
    binary = occ.copy()
    binary.data[:] = 1.0
    n = np.maximum(np.diff(binary.indptr), 1).astype(np.float32)
    return np.asarray(binary @ track_vectors, dtype=np.float32) / n[:, None]


def feedback_scores(scores: np.ndarray, rows: np.ndarray, weights: np.ndarray,
                    playlist_means: np.ndarray, track_vectors: np.ndarray,
                    prf_weight: float) -> np.ndarray:
    """Pseudo-relevance feedback for a batch of queries (n, V): the aggregated `scores` of the
    tracks they hold, re-ranked in the track model's space.

    q = L2-normalised sum over the query's playlists `rows` of weight x the playlist's mean track
    vector (a pseudo-playlist, scored the way the track model continues a playlist);
    result = scores / max(scores) + prf_weight * max(cos(q, track), 0) where scores > 0, else 0,
    so only tracks of the retrieved playlists are ranked and each keeps its contributors.
    """
    rows, weights = np.atleast_2d(rows), np.atleast_2d(weights)
    q = l2_normalize(np.einsum("qm,qmd->qd", weights.astype(np.float32), playlist_means[rows]))
    top = np.maximum(scores.max(axis=1, keepdims=True), 1e-30)
    # Only the tracks of the retrieved playlists get a score: their cosines alone are computed
    # (a few thousand rows, not the whole catalogue's 166k x d product per query).
    out = np.zeros(scores.shape, np.float32)
    for i in range(scores.shape[0]):
        held = np.flatnonzero(scores[i] > 0)
        if held.size:
            cos = np.clip(track_vectors[held] @ q[i], 0.0, None)
            out[i, held] = scores[i, held] / top[i, 0] + prf_weight * cos
    return out


def distinct(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(values, return_inverse=True)` for a 1-d integer array (its dtype kept), by
    one stable sort (about half the time of numpy's at a search's few thousand occurrences)."""
    order = np.argsort(values, kind="stable")
    ranked = values[order]
    first = np.empty(ranked.shape[0], bool)
    first[:1] = True
    np.not_equal(ranked[1:], ranked[:-1], out=first[1:])
    group = np.cumsum(first) - 1
    inverse = np.empty(values.shape[0], np.int64)
    inverse[order] = group
    return ranked[first], inverse


def merge_metadata(held: np.ndarray, scores: np.ndarray, slot: np.ndarray, meta: np.ndarray,
                extra: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidates `held` (sorted track indices) with their `scores`, plus the metadata
    match `extra` of the tracks `meta` (sorted): (candidates, scores, `slot` mapped to them).
    Of the tracks only the metadata names (a common genre's tens of thousands), only the k
    best can enter a top k: the rest are never touched again."""
    at = np.searchsorted(meta, held)
    found = at < meta.shape[0]
    found[found] = meta[at[found]] == held[found]
    scores = scores.copy()
    scores[found] += extra[at[found]]
    only = np.ones(meta.shape[0], bool)
    only[at[found]] = False
    rest = np.flatnonzero(only)
    if rest.shape[0] > k:  # the k best (ties: lowest index, as everywhere)
        kth = np.partition(extra[rest], rest.shape[0] - k)[rest.shape[0] - k]
        above = rest[extra[rest] > kth]
        rest = np.concatenate([above, rest[extra[rest] == kth][:k - above.shape[0]]])
        rest.sort()
    if rest.shape[0] == 0:
        return held, scores, slot
    cand = np.concatenate([held, meta[rest]])
    order = np.argsort(cand, kind="stable")
    where = np.empty_like(order)
    where[order] = np.arange(order.shape[0])
    return cand[order], np.concatenate([scores, extra[rest]])[order], where[slot]


def top_rows(sims: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The m best columns per row of `sims`, best first, with their values."""
    m = min(m, sims.shape[1])
    part = np.argpartition(-sims, m - 1, axis=1)[:, :m]
    vals = np.take_along_axis(sims, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)


__all__ = ["aggregate_scores", "distinct", "feedback_scores", "merge_metadata",
           "playlist_track_means", "top_rows"]
