"""Fold-in: vectors for tracks the trained table lacks, from the playlists they occur in.

A track without a vector that occurs in at least `min_playlists` playlists gets one computed from
its playlists' contexts: each playlist's context is the normalised mean of the vectors of its
tracks that have one (how a playlist is scored at inference), and the trained table is never
changed. Methods (chosen by `dynplayer bench foldin` on validation, docs/experiments.md):

  context  v = normalise(sum over the track's playlists of the normalised context): every
           playlist counts once, whatever its length.
  cooc     v = normalise(sum over the track's playlists of the unnormalised context sum): the
           co-occurrence-weighted mean of the co-occurring tracks' vectors (long playlists weigh
           more).
  pmi      as cooc with each co-occurring track's vector divided by its popularity^0.5 (a
           PMI-like discount of the hubs).
Each method's vector is then calibrated (`calibrate_scores`): a mean of contexts is closer to
every nearby playlist than any trained track is, so uncalibrated folded tracks crowd the top 10.
  steps    `context`, then a few Adam steps of the set objective (softmax over the frozen table
           plus the new rows, context -> the new track), the trained rows frozen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from dynplayer.errors import ConfigError
from dynplayer.run import l2_normalize

METHODS = ("context", "cooc", "pmi", "steps")
DEFAULT_METHOD = "steps"
DEFAULT_MIN_PLAYLISTS = 10  # bench foldin on MPD validation (docs/experiments.md)
DEFAULT_CALIBRATE = 1.0
# Which tracks without a vector an update folds in: `selected`, the tracks the corpus'
# selection rule (top select_fraction by neighbour count, as `prepare`) keeps on the updated
# data, i.e. the tracks a retrain on it would train; `any`, every track in >= N playlists.
ELIGIBLE = ("selected", "any")
# The update's defaults, chosen by `dynplayer bench update --choose` on MPD validation
# (docs/experiments.md): `selected` with `--hold random` (0.75 there: recall alone);
# calibrate 0.9 with `--hold release`, the rule that keeps the recall among those that
# recommend new releases about as often as a retrain (0.75 shows them 2 times in the top 10
# where the retrain does 23). `any` keeps the long tail's N = 10.
DEFAULT_ELIGIBLE = "selected"
DEFAULT_UPDATE_MIN_PLAYLISTS = {"selected": 2, "any": DEFAULT_MIN_PLAYLISTS}
DEFAULT_UPDATE_CALIBRATE = 0.9


def check_eligible(eligible: str, calibrate: float) -> None:
    """One-line errors for an unknown eligibility rule or a calibration outside [0, 1]."""
    if eligible not in ELIGIBLE:
        raise ConfigError(f"eligible: expected one of {', '.join(ELIGIBLE)}, got {eligible!r}")
    if not 0.0 <= calibrate <= 1.0:
        raise ConfigError(f"calibrate: expected a number in [0, 1], got {calibrate}")


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
            calibrate: float = DEFAULT_CALIBRATE, seed: int = 0) -> FoldIn:
    """Fold in vectors for the tracks (columns of `x`) that have no vector.

    x: binary (P, T) playlist x track incidence of the playlists to learn from.
    table: (V, d) the trained vectors (L2-normalised); table_col: (T,) row of each track in
    `table`, or -1 for a track without a vector.
    candidates: restrict to these track columns (default: every track without a vector).
    Only tracks in >= `min_playlists` playlists that have a context (>= 1 vectored track) get a
    vector. Vectorised: a few sparse products, no loop over occurrences.

    calibrate (> 0): scale each folded vector's cosine with its own contexts down to
    `calibrate` x the level trained tracks of the same support have with theirs (see
    `calibrate_scores`); 0 keeps the raw direction.
    """
    check_method(method, min_playlists)
    x = x.tocsr().astype(np.float32)
    n_p, n_t = x.shape
    table = l2_normalize(table)
    has = table_col >= 0
    cols_v = np.flatnonzero(has)
    # Playlist contexts: (P, d) sums of the playlist's vectored tracks.
    xv = x[:, cols_v]
    rows_v = table[table_col[cols_v]]
    ctx_sum = np.asarray(xv @ rows_v, dtype=np.float32)
    has_ctx = np.diff(xv.indptr) > 0
    ctx = l2_normalize(ctx_sum) * has_ctx[:, None]  # what a playlist query looks like
    if method == "pmi":
        pop = np.asarray(xv.sum(axis=0)).ravel()
        weighted = np.asarray(xv @ (rows_v / np.sqrt(np.maximum(pop, 1.0))[:, None]),
                              dtype=np.float32)

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
    if method == "pmi":
        vec = np.asarray(xt @ weighted[has_ctx], dtype=np.float32)
    elif method == "cooc":
        vec = np.asarray(xt @ ctx_sum[has_ctx], dtype=np.float32)
    else:
        vec = np.asarray(xt @ ctx[has_ctx], dtype=np.float32)
    vec = l2_normalize(vec)
    if method == "steps" and cand.shape[0]:
        vec = _objective_steps(xt, ctx[has_ctx], xv[has_ctx], ctx_sum[has_ctx], rows_v, vec,
                               temperature=temperature, steps=steps, seed=seed)
    if calibrate > 0 and cand.shape[0]:
        own = np.asarray((xt @ ctx[has_ctx]) * vec).sum(axis=1) / np.maximum(support, 1)
        level = trained_level(xv, ctx_sum, rows_v, seed=seed)
        vec = calibrate_scores(vec, own, level(support) * calibrate, seeds=cand + seed)
    return FoldIn(track_idx=cand.astype(np.int64), vectors=vec.astype(np.float32),
                  n_playlists=support.astype(np.int64), method=method,
                  min_playlists=min_playlists)


def trained_level(xv: sp.csr_matrix, ctx_sum: np.ndarray, vectors: np.ndarray, *,
                  seed: int = 0, sample: int = 200_000) -> Callable[[np.ndarray], np.ndarray]:
    """support -> the cosine a trained track with that support (playlists it occurs in) has
    with its playlists' contexts (each context without the track itself, as a new track is
    never in its own context): a line in log2(support) through the medians of log2 bins."""
    coo = xv.tocoo()
    if coo.nnz == 0:
        return lambda support: np.full(np.shape(support), 0.5)
    rng = np.random.default_rng(seed)
    pick = rng.choice(coo.nnz, min(sample, coo.nnz), replace=False)
    p, j = coo.row[pick], coo.col[pick]
    rest = ctx_sum[p] - vectors[j]
    norm = np.linalg.norm(rest, axis=1)
    ok = norm > 1e-6
    cos = np.sum(rest[ok] * vectors[j[ok]], axis=1) / norm[ok]
    sup = np.asarray(xv.sum(axis=0)).ravel()
    logs = np.log2(np.maximum(sup[j[ok]], 1)).astype(np.float64)
    # Median per log2 bin, then a line through the bins: rarer tracks sit lower (a folded track
    # usually has fewer playlists than any trained one, so the line is extrapolated down).
    bins = np.floor(logs).astype(np.int64)
    pts = [(float(b) + 0.5, float(np.median(cos[bins == b]))) for b in np.unique(bins)
           if (bins == b).sum() >= 20]
    if len(pts) >= 2:
        slope, icept = np.polyfit([p_[0] for p_ in pts], [p_[1] for p_ in pts], 1)
    else:
        slope, icept = 0.0, float(np.median(cos))
    top = max(p_[1] for p_ in pts) if pts else float(np.median(cos))

    def level(support: np.ndarray) -> np.ndarray:
        x_ = np.log2(np.maximum(np.asarray(support, dtype=np.float64), 1.0))
        return np.clip(icept + slope * x_, 0.05, top).astype(np.float32)

    return level


def calibrate_scores(vec: np.ndarray, own: np.ndarray, target: np.ndarray,
                     seeds: np.ndarray) -> np.ndarray:
    """v' = a v + sqrt(1 - a^2) u with a = min(1, target / own) and u a unit vector orthogonal
    to v, random per track (seeded by `seeds`): the cosine of v' with any query is a times v's
    (plus noise of order 1/sqrt(d)), so a folded track scores with its own contexts at the level
    trained tracks do instead of far above it (a mean of contexts is closer to every nearby
    playlist than any trained track: without this, a few folded tracks fill every top 10)."""
    a = np.clip(target / np.maximum(own, 1e-6), 0.0, 1.0).astype(np.float32)
    out = np.empty_like(vec)
    for i, s in enumerate(seeds.tolist()):
        rng = np.random.default_rng([int(s), 15])
        while True:  # a draw parallel to v (probability ~0) would leave no orthogonal part
            u = np.asarray(rng.standard_normal(vec.shape[1]), dtype=np.float32)
            u -= float(u @ vec[i]) * vec[i]
            norm = float(np.linalg.norm(u))
            if norm > 1e-3:
                break
        u /= norm
        out[i] = a[i] * vec[i] + np.sqrt(1.0 - a[i] ** 2) * u
    return l2_normalize(out)


def _objective_steps(xt: sp.csr_matrix, ctx: np.ndarray, xv: sp.csr_matrix,
                     ctx_sum: np.ndarray, rows_v: np.ndarray, init: np.ndarray, *,
                     temperature: float, steps: int, seed: int, batch: int = 1024,
                     negatives: int = 2048, lr: float = 0.01) -> np.ndarray:
    """Adam steps of the set objective on the new rows only, the trained rows frozen.

    Two kinds of (context, target) pairs per step, scored by scale x cosine against the target,
    a uniform sample of trained rows (log-corrected for the sample) and every new row:
      own pairs: a playlist's context -> a new track it holds (pulls the row to its contexts;
        the new rows in the softmax are the batch's targets);
      trained pairs: a playlist's context without one of its trained tracks -> that track
        (pushes new rows out of the contexts where they do not belong, as the full softmax of
        training pushes every row).
    xt: (n_new, P) new-track incidence; ctx: (P, d) normalised contexts; xv: (P, V) trained
    incidence with ctx_sum (P, d) its context sums and rows_v (V, d) the trained rows."""
    import torch

    threads = torch.get_num_threads()
    # One thread: the steps are small, and on a shared 2-core machine two threads ran the
    # training loop 2-8x slower (see TrainConfig.threads).
    torch.set_num_threads(1)
    try:
        return _steps(xt, ctx, xv, ctx_sum, rows_v, init, temperature=temperature, steps=steps,
                      seed=seed, batch=batch, negatives=negatives, lr=lr)
    finally:
        torch.set_num_threads(threads)


def _steps(xt: sp.csr_matrix, ctx: np.ndarray, xv: sp.csr_matrix, ctx_sum: np.ndarray,
           rows_v: np.ndarray, init: np.ndarray, *, temperature: float, steps: int, seed: int,
           batch: int, negatives: int, lr: float) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    coo = xt.tocoo()
    tgt, pl = coo.row.astype(np.int64), coo.col.astype(np.int64)
    tv = xv.tocoo()
    old_p, old_j = tv.row.astype(np.int64), tv.col.astype(np.int64)
    new = torch.nn.Parameter(torch.from_numpy(init.copy()))
    old = torch.from_numpy(np.ascontiguousarray(rows_v, dtype=np.float32))
    anchors = torch.from_numpy(np.ascontiguousarray(ctx, dtype=np.float32))
    sums = torch.from_numpy(np.ascontiguousarray(ctx_sum, dtype=np.float32))
    opt = torch.optim.Adam([new], lr=lr)
    scale = 1.0 / temperature
    n_neg = min(negatives, old.shape[0])
    correction = float(np.log(old.shape[0] / max(n_neg, 1)))
    for _ in range(steps):
        pick = rng.choice(tgt.shape[0], min(batch, tgt.shape[0]), replace=False)
        # The new rows in the softmax: this batch's targets (in-batch), so a step costs the
        # same however many tracks are folded in.
        rows_new, target = np.unique(tgt[pick], return_inverse=True)
        nv = F.normalize(new[torch.from_numpy(rows_new)], dim=-1)
        neg = old[torch.from_numpy(rng.choice(old.shape[0], n_neg, replace=False))]
        a = anchors[torch.from_numpy(pl[pick])]
        logits = torch.cat([scale * a @ neg.T + correction, scale * a @ nv.T], dim=1)
        loss = F.cross_entropy(logits, torch.from_numpy(target.astype(np.int64)) + n_neg)
        if old_p.shape[0]:
            q = torch.from_numpy(rng.choice(old_p.shape[0], min(batch, old_p.shape[0]),
                                            replace=False))
            j = torch.from_numpy(old_j)[q]
            b = F.normalize(sums[torch.from_numpy(old_p)[q]] - old[j], dim=-1)
            own = scale * (b * old[j]).sum(dim=1, keepdim=True)
            logits_b = torch.cat([own, scale * b @ neg.T + correction, scale * b @ nv.T], dim=1)
            loss = loss + F.cross_entropy(logits_b, torch.zeros(b.shape[0], dtype=torch.long))
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    with torch.no_grad():
        out: np.ndarray = F.normalize(new, dim=-1).numpy().astype(np.float32)
    return out
