"""Fold-in: vectors for tracks the trained table lacks, from the playlists they occur in.

A track without a vector that occurs in at least `min_playlists` playlists gets one computed from
its playlists' contexts: each playlist's context is the normalised mean of the vectors of its
tracks that have one (how a playlist is scored at inference), and the trained table is never
changed. Methods (chosen by `dynplayer bench foldin` on validation, docs/fragments/i15.md):

  context  v = normalise(sum over the track's playlists of the normalised context): every
           playlist counts once, whatever its length.
  cooc     v = normalise(sum over the track's playlists of the unnormalised context sum): the
           co-occurrence-weighted mean of the co-occurring tracks' vectors (long playlists weigh
           more).
  pmi      as cooc with each co-occurring track's vector divided by its popularity^0.5 (a
           PMI-like discount of the hubs).
  steps    `context`, then a few Adam steps of the set objective (softmax over the frozen table
           plus the new rows, context -> the new track), the trained rows frozen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from dynplayer.errors import ConfigError
from dynplayer.run import l2_normalize

METHODS = ("context", "cooc", "pmi", "steps")
DEFAULT_METHOD = "context"
DEFAULT_MIN_PLAYLISTS = 2


@dataclass
class FoldIn:
    """Vectors folded in for `track_idx` (ascending), with the playlists that support each."""

    track_idx: np.ndarray  # int64 (n,), rows of the corpus' track table
    vectors: np.ndarray  # float32 (n, d), L2-normalised
    n_playlists: np.ndarray  # int64 (n,), playlists with a context that hold the track
    method: str
    min_playlists: int


def check_method(method: str, min_playlists: int) -> None:
    if method not in METHODS:
        raise ConfigError(f"fold-in method must be one of {', '.join(METHODS)} (got {method!r})")
    if min_playlists < 1:
        raise ConfigError(f"fold-in min_playlists must be >= 1 (got {min_playlists})")


def incidence(occ_playlist: np.ndarray, occ_track: np.ndarray, playlists: np.ndarray,
              n_playlists: int, n_tracks: int) -> sp.csr_matrix:
    """Binary (len(playlists), n_tracks) playlist x track matrix, rows in `playlists` order."""
    row_of = np.full(n_playlists, -1, dtype=np.int64)
    playlists = np.asarray(playlists, dtype=np.int64)
    row_of[playlists] = np.arange(playlists.shape[0])
    rows = row_of[occ_playlist]
    keep = rows >= 0
    mat = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (rows[keep], occ_track[keep])),
                        shape=(playlists.shape[0], n_tracks))
    mat.sum_duplicates()
    mat.data[:] = 1.0
    return mat


def fold_in(x: sp.csr_matrix, table: np.ndarray, table_col: np.ndarray, *,
            min_playlists: int = DEFAULT_MIN_PLAYLISTS, method: str = DEFAULT_METHOD,
            candidates: np.ndarray | None = None, temperature: float = 0.07, steps: int = 30,
            seed: int = 0) -> FoldIn:
    """Fold in vectors for the tracks (columns of `x`) that have no vector.

    x: binary (P, T) playlist x track incidence of the playlists to learn from.
    table: (V, d) the trained vectors (L2-normalised); table_col: (T,) row of each track in
    `table`, or -1 for a track without a vector.
    candidates: restrict to these track columns (default: every track without a vector).
    Only tracks in >= `min_playlists` playlists that have a context (>= 1 vectored track) get a
    vector. Vectorised: a few sparse products, no loop over occurrences.
    """
    check_method(method, min_playlists)
    x = x.tocsr().astype(np.float32)
    n_p, n_t = x.shape
    table = l2_normalize(table)
    has = table_col >= 0
    cols_v = np.flatnonzero(has)
    # Playlist contexts: (P, d) sums of the playlist's vectored tracks.
    xv = x[:, cols_v]
    weights = np.ones(cols_v.shape[0], np.float32)
    if method == "pmi":
        pop = np.asarray(xv.sum(axis=0)).ravel()
        weights = 1.0 / np.sqrt(np.maximum(pop, 1.0))
    ctx_sum = np.asarray(xv @ (table[table_col[cols_v]] * weights[:, None]), dtype=np.float32)
    has_ctx = np.diff(xv.indptr) > 0
    ctx = l2_normalize(ctx_sum) * has_ctx[:, None]

    want = np.zeros(n_t, dtype=bool)
    if candidates is None:
        want[~has] = True
    else:
        want[np.asarray(candidates, dtype=np.int64)] = True
        want &= ~has
    xc = x[has_ctx][:, np.flatnonzero(want)].tocsc()
    support = np.diff(xc.indptr)
    cand = np.flatnonzero(want)
    ok = support >= min_playlists
    cand, xc, support = cand[ok], xc[:, np.flatnonzero(ok)], support[ok]
    xt = xc.T.tocsr()  # (n, P_ctx)
    if method in ("cooc", "pmi"):
        vec = np.asarray(xt @ ctx_sum[has_ctx], dtype=np.float32)
    else:
        vec = np.asarray(xt @ ctx[has_ctx], dtype=np.float32)
    vec = l2_normalize(vec)
    if method == "steps" and cand.shape[0]:
        vec = _objective_steps(xt, ctx[has_ctx], table, vec, temperature=temperature,
                               steps=steps, seed=seed)
    return FoldIn(track_idx=cand.astype(np.int64), vectors=vec.astype(np.float32),
                  n_playlists=support.astype(np.int64), method=method,
                  min_playlists=min_playlists)


def _objective_steps(xt: sp.csr_matrix, ctx: np.ndarray, table: np.ndarray, init: np.ndarray, *,
                     temperature: float, steps: int, seed: int, batch: int = 2048,
                     negatives: int = 4096, lr: float = 0.01) -> np.ndarray:
    """Adam steps on the new rows only: for each (new track, its playlist) pair, softmax of
    scale x context . [sampled trained rows (log-correction for the sample); all new rows]
    with the new track as target. The trained table gets no gradient."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    coo = xt.tocoo()
    tgt, pl = coo.row.astype(np.int64), coo.col.astype(np.int64)
    new = torch.nn.Parameter(torch.from_numpy(init.copy()))
    old = torch.from_numpy(table)
    anchors = torch.from_numpy(ctx)
    opt = torch.optim.Adam([new], lr=lr)
    scale = 1.0 / temperature
    n_neg = min(negatives, table.shape[0])
    correction = float(np.log(table.shape[0] / max(n_neg, 1)))
    for _ in range(steps):
        pick = rng.choice(tgt.shape[0], min(batch, tgt.shape[0]), replace=False)
        a = anchors[torch.from_numpy(pl[pick])]
        neg = old[torch.from_numpy(rng.choice(table.shape[0], n_neg, replace=False))]
        nv = F.normalize(new, dim=-1)
        logits = torch.cat([scale * a @ neg.T + correction, scale * a @ nv.T], dim=1)
        loss = F.cross_entropy(logits, torch.from_numpy(tgt[pick] + n_neg))
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    with torch.no_grad():
        out: np.ndarray = F.normalize(new, dim=-1).numpy().astype(np.float32)
    return out
