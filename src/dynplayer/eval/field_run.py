"""Methods under the field's protocol (`eval.field`): a method is a *lister*, cases -> (n, 500)
corpus track_idx. Adapters turn a dense scorer over some vocabulary (the peers, Dynplayer's
embedding) into a lister; the popularity and BM25-title listers answer seedless cases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from dynplayer.data.corpus import TRAIN
from dynplayer.eval.field import N_RECS, FieldCases, field_metrics, summarize

Lister = Callable[[FieldCases], np.ndarray]


def artist_codes(corpus: Any) -> np.ndarray:
    """(T,) an integer per distinct artist name, -1 where the artist is unknown."""
    index: dict[str, int] = {}
    return np.array([-1 if not a else index.setdefault(a, len(index)) for a in corpus.artists],
                    dtype=np.int64)


def catalogue(corpus: Any, playlists: np.ndarray | None = None) -> np.ndarray:
    """Corpus track_idx of every track in at least one of `playlists` (default: the training
    playlists): what any method may recommend. A track seen only in evaluated playlists is not
    in it (its very presence in the corpus would leak the answer)."""
    pl = corpus.playlists_in(TRAIN) if playlists is None else playlists
    mask = np.zeros(corpus.n_playlists, dtype=bool)
    mask[pl] = True
    return np.unique(corpus.occ_track[mask[corpus.occ_playlist]]).astype(np.int64)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k best scores per row, best first (-inf entries last)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _pad(recs: list[np.ndarray], k: int) -> np.ndarray:
    out = np.full((len(recs), k), -1, dtype=np.int64)
    for i, r in enumerate(recs):
        out[i, :min(k, r.shape[0])] = r[:k]
    return out


def ranked_lister(scores_over: np.ndarray, cols: np.ndarray, k: int = N_RECS) -> Lister:
    """Every case gets the same ranking (`scores_over` over vocabulary `cols`), seeds removed."""
    order = cols[np.argsort(-scores_over, kind="stable")][: k + 200]

    def lister(cases: FieldCases) -> np.ndarray:
        recs = []
        for i in range(cases.n):
            seeds = cases.seeds(i)
            recs.append(order[~np.isin(order, seeds)][:k])
        return _pad(recs, k)

    return lister


def popularity_lister(corpus: Any, cat: np.ndarray, k: int = N_RECS) -> Lister:
    """The most frequent training tracks (in the most training playlists)."""
    train = corpus.playlists_in(TRAIN)
    mask = np.zeros(corpus.n_playlists, dtype=bool)
    mask[train] = True
    sel = mask[corpus.occ_playlist]
    key = np.unique(corpus.occ_playlist[sel].astype(np.int64) * corpus.n_tracks
                    + corpus.occ_track[sel])
    counts = np.bincount(key % corpus.n_tracks, minlength=corpus.n_tracks)[cat]
    return ranked_lister(counts.astype(np.float64), cat, k)


def title_lister(corpus: Any, fallback: Lister, k: int = N_RECS,
                 top_playlists: int = 50) -> Lister:
    """BM25 over the training playlists' names: a case's name finds the best `top_playlists`
    training playlists, whose tracks score the sum of their playlists' BM25 scores (the
    lexical peer of the text model); cases without a name or without a match get `fallback`."""
    from dynplayer.eval.bm25 import BM25

    train = corpus.playlists_in(TRAIN)
    bm = BM25([corpus.names[p] or "" for p in train])
    indptr = corpus.playlist_indptr

    def lister(cases: FieldCases) -> np.ndarray:
        out = fallback(cases)
        named = [i for i in range(cases.n) if cases.names[i]]
        if not named:
            return out
        scores = bm.scores([cases.names[i] or "" for i in named])
        for row, i in enumerate(named):
            s = scores[row]
            top = np.argsort(-s, kind="stable")[:top_playlists]
            top = top[s[top] > 0]
            if top.size == 0:
                continue
            tr: list[np.ndarray] = []
            w: list[np.ndarray] = []
            for j in top:
                p = train[j]
                t = np.unique(corpus.occ_track[indptr[p]:indptr[p + 1]])
                tr.append(t)
                w.append(np.full(t.shape[0], s[j]))
            tracks, inv = np.unique(np.concatenate(tr), return_inverse=True)
            total = np.bincount(inv, weights=np.concatenate(w))
            seeds = cases.seeds(i)
            total[np.isin(tracks, seeds)] = -np.inf
            order = np.argsort(-total, kind="stable")
            ranked = tracks[order[np.isfinite(total[order])]]
            merged = np.concatenate([ranked, out[i][out[i] >= 0]])
            _, first = np.unique(merged, return_index=True)
            out[i] = _pad([merged[np.sort(first)]], k)[0]
        return out

    return lister


def dense_lister(score: Callable[..., np.ndarray], cols: np.ndarray, n_tracks: int,
                 seedless: Lister, *, k: int = N_RECS, batch: int = 256) -> Lister:
    """A dense scorer over vocabulary `cols` (corpus track_idx of each column) as a lister.

    `score(visible)` (or `score(visible, order)` when it has `ordered = True`) gets the seeds
    the vocabulary holds; cases with none (title only, or unknown seeds) get `seedless`.
    """
    col_of = np.full(n_tracks, -1, dtype=np.int64)
    col_of[cols] = np.arange(cols.shape[0])
    v = cols.shape[0]

    def lister(cases: FieldCases) -> np.ndarray:
        out = np.full((cases.n, k), -1, dtype=np.int64)
        mapped = col_of[cases.seed_tracks]
        rows = np.repeat(np.arange(cases.n), np.diff(cases.seed_indptr))
        pos = np.arange(mapped.shape[0]) - cases.seed_indptr[rows] + 1
        ok = mapped >= 0
        known = np.bincount(rows[ok], minlength=cases.n)
        with_seeds = np.flatnonzero(known > 0)
        without = np.flatnonzero(known == 0)
        if without.size:
            out[without] = seedless(cases.subset(without))
        for a in range(0, with_seeds.shape[0], batch):
            part = with_seeds[a:a + batch]
            local = np.full(cases.n, -1, dtype=np.int64)
            local[part] = np.arange(part.shape[0])
            sel = ok & (local[rows] >= 0)
            r, c = local[rows[sel]], mapped[sel]
            vis = sp.csr_matrix((np.ones(r.shape[0], np.float32), (r, c)),
                                shape=(part.shape[0], v))
            vis.sum_duplicates()
            vis.data[:] = 1.0
            if getattr(score, "ordered", False):
                order = sp.csr_matrix((pos[sel].astype(np.float32), (r, c)),
                                      shape=(part.shape[0], v))
                s = np.array(score(vis, order), dtype=np.float32, copy=True)
            else:
                s = np.array(score(vis), dtype=np.float32, copy=True)
            s[r, c] = -np.inf
            top = top_k(s, k)
            block = cols[top]
            block[~np.isfinite(np.take_along_axis(s, top, axis=1))] = -1
            out[part, :top.shape[1]] = block
        return out

    return lister


def evaluate_lister(lister: Lister, cases: FieldCases, artist: np.ndarray,
                    head: np.ndarray | None, n_catalogue: int,
                    per_case: bool = False) -> dict[str, Any]:
    """The protocol's summary of one method (and its per-case arrays with `per_case`)."""
    recs = lister(cases)
    pc = field_metrics(recs, cases, artist, head)
    out = summarize(pc, recs, cases, n_catalogue)
    if per_case:
        out["per_case"] = pc
    return out
