"""Tracks placed by their artist: a new track too rare for a fold-in (below the update's N)
gets its artist's row of the run's shared parts (`RUN_DIR/parts/artist.npy`, trained with
`train --set shared=artist`) as its vector, calibrated like a fold-in so that it scores with
its playlists at the level trained tracks as rare as it score with theirs."""

from __future__ import annotations

import numpy as np

from dynplayer.data.corpus import Corpus
from dynplayer.run import Run, l2_normalize, load_parts
from dynplayer.update.foldin import FoldIn, calibrate_scores, incidence, trained_level
from dynplayer.update.merge import learning_playlists, table_columns


def place_by_artist(corpus: Corpus, run: Run, candidates: np.ndarray, *,
                    calibrate: float = 0.9, seed: int = 0) -> FoldIn:
    """Vectors for the `candidates` (corpus track_idx without a vector) whose artist has a
    row in the run's artist part; none when the run was trained without one."""
    empty = FoldIn(track_idx=np.zeros(0, np.int64),
                   vectors=np.zeros((0, run.vectors.shape[1]), np.float32),
                   n_playlists=np.zeros(0, np.int64), method="artist", min_playlists=0)
    part = load_parts(run.path).get("artist")
    if part is None or candidates.size == 0:
        return empty
    vectors, names = part
    if vectors.shape[1] != run.vectors.shape[1]:
        return empty
    row = {n: i for i, n in enumerate(names)}
    rows = np.array([row.get(corpus.artists[t] or "", -1) for t in candidates.tolist()],
                    dtype=np.int64)
    cand = np.asarray(candidates, dtype=np.int64)[rows >= 0]
    if cand.size == 0:
        return empty
    vec = l2_normalize(vectors[rows[rows >= 0]])
    x = incidence(corpus.occ_playlist, corpus.occ_track, learning_playlists(corpus, run),
                  corpus.n_playlists, corpus.n_tracks)
    col = table_columns(corpus, run.ids)
    has = np.flatnonzero(col >= 0)
    xv = x[:, has]
    table = l2_normalize(run.vectors)
    ctx_sum = np.asarray(xv @ table[col[has]], dtype=np.float32)
    ctx = l2_normalize(ctx_sum) * (np.diff(xv.indptr) > 0)[:, None]
    xc = x[:, cand].tocsc()
    support = np.diff(xc.indptr).astype(np.int64)
    own = np.asarray((xc.T @ ctx) * vec).sum(axis=1) / np.maximum(support, 1)
    # a track no learning playlist holds keeps its artist's direction at the level of one
    own = np.where(support > 0, own, np.maximum(own, 1e-3))
    level = trained_level(xv, ctx_sum, table[col[has]], seed=seed)
    target = level(np.maximum(support, 1)) * calibrate
    out = calibrate_scores(vec, np.where(support > 0, own, target), target, seeds=cand + seed)
    return FoldIn(track_idx=cand, vectors=out.astype(np.float32), n_playlists=support,
                  method="artist", min_playlists=0)
