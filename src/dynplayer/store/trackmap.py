"""The map of the track space: a 2-D picture of the most popular tracks' vectors.

Computed once per model (at index time for the store, at load time for the exact backend) and
served by `GET /v1/map`. Two steps, both plain numpy, deterministic and seeded:
PCA gives the start (the two directions along which the vectors vary most); then a neighbour
layout, the cheap core of LargeVis/UMAP without their dependencies: each track is pulled towards
its 10 nearest neighbours (cosine) and pushed away from a few random tracks. PCA alone cannot
show more than two or three clusters apart (on the planted corpus, 5 of the 8 genres landed on
one spot); the layout separates all 32 planted genre x mood cells in about a second for 3,000
tracks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from dynplayer.data.corpus import Corpus

MAP_TRACKS = 5000  # tracks on the map by default (the most popular)
MAP_TRACKS_MAX = 20000
NEIGHBOURS = 10
EPOCHS = 200
NEGATIVES = 5


@dataclass(frozen=True)
class TrackMap:
    """`rows` index the catalog's tracks (most popular first); `xy` (n, 2) lies in [0, 1]
    with one scale for both axes (distances keep their proportions); `explained` is the share
    of the variance the two axes hold."""

    rows: np.ndarray  # int64 (n,)
    xy: np.ndarray  # float32 (n, 2)
    explained: float
    seconds: float = 0.0


def project_tracks(vectors: np.ndarray, popularity: np.ndarray, limit: int = MAP_TRACKS,
                   *, layout: bool = True, seed: int = 0) -> TrackMap:
    """The `limit` most popular tracks' L2-normalised vectors on two axes: PCA, then (with
    `layout`) the neighbour layout started from it.

    The PCA axes' signs are fixed (the largest-magnitude loading positive), so the same
    vectors always give the same picture. Coordinates are centred and scaled by the range of
    the wider axis into [0, 1] (the same scale for both). `explained` is PCA's share of the
    variance; `seconds` the time it took.
    """
    t0 = time.perf_counter()
    n = vectors.shape[0]
    order = np.lexsort((np.arange(n), -np.asarray(popularity, dtype=np.int64)))
    rows = order[: max(0, min(limit, n))].astype(np.int64)
    if rows.shape[0] < 3 or vectors.shape[1] < 2:
        return TrackMap(rows, np.full((rows.shape[0], 2), 0.5, np.float32), 0.0,
                        time.perf_counter() - t0)
    x = np.asarray(vectors[rows], dtype=np.float64)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    x -= x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    axes = vt[:2]
    signs = np.sign(axes[np.arange(2), np.abs(axes).argmax(axis=1)])
    axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
    xy = x @ axes.T
    if layout and rows.shape[0] > NEIGHBOURS + 1:
        xy = neighbour_layout(x, xy, seed=seed)
        # Turn the picture so its longer extent runs left to right (screens are wide).
        xy = xy - xy.mean(axis=0)
        _, _, turn = np.linalg.svd(xy, full_matrices=False)
        turn *= np.where(turn[np.arange(2), np.abs(turn).argmax(axis=1)] < 0, -1.0, 1.0)[:, None]
        xy = xy @ turn.T
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = float(max((hi - lo).max(), 1e-12))
    centre = (lo + hi) / 2
    xy = np.clip((xy - centre) / span + 0.5, 0.0, 1.0)
    total = float((s ** 2).sum())
    explained = float((s[:2] ** 2).sum() / total) if total > 0 else 0.0
    return TrackMap(rows, xy.astype(np.float32), explained, time.perf_counter() - t0)


def nearest_neighbours(x: np.ndarray, k: int, block: int = 1024) -> np.ndarray:
    """(n, k) rows of each row's k highest inner products, itself excluded (any order)."""
    n = x.shape[0]
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, block):
        sim = x[start:start + block] @ x.T
        sim[np.arange(sim.shape[0]), np.arange(start, start + sim.shape[0])] = -np.inf
        out[start:start + block] = np.argpartition(-sim, k, axis=1)[:, :k]
    return out


def neighbour_layout(x: np.ndarray, init: np.ndarray, *, k: int = NEIGHBOURS,
                     epochs: int = EPOCHS, negatives: int = NEGATIVES,
                     seed: int = 0) -> np.ndarray:
    """Move 2-D points (`init`) so that each row of `x` sits near its k nearest neighbours.

    Full-batch gradient steps on UMAP's cross-entropy with a = b = 1: an attraction
    -2 d / (1 + |d|^2) along every neighbour edge, a repulsion 2 d / ((0.001 + |d|^2)(1 + |d|^2))
    from `negatives` random rows per track, weighted by k so that it balances the k edges' pull
    as UMAP's `negatives` per edge would (a tenth of the distance computations), each clipped to
    4, with a step falling linearly to 0.
    """
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    src = np.repeat(np.arange(n), k)
    dst = nearest_neighbours(x, k).ravel()
    y = (init - init.mean(axis=0)) / max(float(init.std()), 1e-12) * 3.0
    neg_src = np.repeat(np.arange(n), negatives)

    def add(into: np.ndarray, at: np.ndarray, force: np.ndarray) -> None:
        for axis in range(2):
            into[:, axis] += np.bincount(at, weights=force[:, axis], minlength=n)

    for epoch in range(epochs):
        step = (1.0 - epoch / epochs) / (2 * k)
        grad = np.zeros_like(y)
        d = y[src] - y[dst]
        pull = np.clip(-2.0 / (1.0 + (d * d).sum(axis=1, keepdims=True)) * d, -4.0, 4.0)
        add(grad, src, pull)
        add(grad, dst, -pull)
        neg_dst = rng.integers(0, n, neg_src.shape[0])
        d = y[neg_src] - y[neg_dst]
        d2 = (d * d).sum(axis=1, keepdims=True)
        push = np.clip(2.0 / ((0.001 + d2) * (1.0 + d2)) * d, -4.0, 4.0)
        add(grad, neg_src, k * push)
        y += step * grad
    return np.asarray(y, dtype=np.float64)


def track_genres(corpus: Corpus, corpus_rows: np.ndarray) -> list[str | None]:
    """One genre name per track for the map's colours: the track's genre class when the
    corpus has them (`prepare --artist-genres`, the synthetic corpus), else its first genre
    string, else None. `corpus_rows` maps each catalog track to its corpus row (-1: none)."""
    classes = corpus.genre_classes
    labels = corpus.genre_label
    out: list[str | None] = []
    for r in np.asarray(corpus_rows, dtype=np.int64).tolist():
        if r < 0:
            out.append(None)
        elif labels is not None and classes and 0 <= int(labels[r]) < len(classes):
            out.append(classes[int(labels[r])])
        else:
            genres = corpus.track_genres[r]
            out.append(genres[0] if genres else None)
    return out
