"""Second-stage features of (playlist, candidate) pairs, in named groups (for the ablation).

Every feature is computed for the flat candidate arrays of a `Retrieval` at once: dense
retriever scores are gathered, per-seed cosines come from one matrix product per chunk of
playlists, and ranks inside each playlist's candidates from one lexsort.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from dynplayer.rank.candidates import (
    LAST,
    Queries,
    Retrieval,
    Sources,
    last_seeds,
)
from dynplayer.rank.sums import SMALL_BATCH, row_sums_at

GROUPS: dict[str, list[str]] = {
    "embedding": ["emb_cos", "emb_rank", "seed_cos_max", "seed_cos_mean"],
    "order": ["last_cos_max", "last_cos_mean", "win_last"],
    "cooc": ["cooc_playlist", "cooc_knn", "cooc_window", "cooc_conditional", "cooc_rank",
             "knn_rank"],
    "popularity": ["popularity", "log_popularity"],
    "metadata": ["artist_overlap", "album_overlap"],
    "artist": ["artist_cooc", "artist_cooc_rank"],
    "length": ["n_seeds"],
    "ease": ["ease_score", "ease_rank"],
    "text": ["caption_cos"],
    "title": ["title_score", "title_rank"],
}
ALL_FEATURES = [f for names in GROUPS.values() for f in names]


def features_without(groups: list[str], drop: list[str]) -> list[str]:
    return [f for g in groups if g not in drop for f in GROUPS[g]]


def group_ranks(rows: np.ndarray, score: np.ndarray) -> np.ndarray:
    """0-based rank of each entry by `score` (descending) among the entries of its row."""
    if rows.shape[0] and bool((rows == rows[0]).all()):  # one playlist (a served request)
        order = np.argsort(-score, kind="stable")  # lexsort's order when every row is equal
        rank = np.empty(rows.shape[0], dtype=np.float32)
        rank[order] = np.arange(rows.shape[0])
        return rank
    order = np.lexsort((-score, rows))
    r = rows[order]
    starts = np.r_[0, np.flatnonzero(r[1:] != r[:-1]) + 1]
    sizes = np.diff(np.r_[starts, r.shape[0]])
    rank = np.empty(rows.shape[0], dtype=np.float32)
    rank[order] = np.arange(r.shape[0]) - np.repeat(starts, sizes)
    return rank


def _reduce_rows(block: np.ndarray, local_ip: np.ndarray, r: np.ndarray, inv: np.ndarray,
                 out_max: np.ndarray, out_mean: np.ndarray, c0: int, c1: int) -> None:
    """Max and mean over each playlist's rows (local_ip) of a seeds x candidates block,
    gathered for the candidates (r: playlist in the chunk, inv: column in the block)."""
    counts = np.diff(local_ip)
    nonempty = counts > 0
    mx = np.zeros((local_ip.shape[0] - 1, block.shape[1]), dtype=np.float32)
    sm = np.zeros_like(mx)
    mx[nonempty] = np.maximum.reduceat(block, local_ip[:-1][nonempty], axis=0)
    sm[nonempty] = np.add.reduceat(block, local_ip[:-1][nonempty], axis=0)
    sm /= np.maximum(counts, 1)[:, None]
    out_max[c0:c1] = mx[r, inv]
    out_mean[c0:c1] = sm[r, inv]


def seed_cosines(vectors: np.ndarray, seed_indptr: np.ndarray, seed_cols: np.ndarray,
                 rows: np.ndarray, cols: np.ndarray, budget: int = 4_000_000,
                 last: int | None = None) -> tuple[np.ndarray, ...]:
    """Max and mean cosine between each candidate (rows, cols) and its playlist's seeds; with
    `last`, also max and mean over each playlist's `last` most recent seeds, from the same
    products (a second product over the last seeds was 0.1 ms of a served request).

    Playlists are taken in chunks whose seeds x distinct candidates block fits `budget` floats.
    """
    n = seed_indptr.shape[0] - 1
    outs = [np.zeros(rows.shape[0], dtype=np.float32) for _ in range(2 if last is None else 4)]
    cand_ip = np.searchsorted(rows, np.arange(n + 1))
    start = 0
    while start < n:
        stop = start + 1
        while stop < n:
            n_s = seed_indptr[stop + 1] - seed_indptr[start]
            n_c = cand_ip[stop + 1] - cand_ip[start]
            if n_s * min(n_c, vectors.shape[0]) > budget:
                break
            stop += 1
        s0, s1 = int(seed_indptr[start]), int(seed_indptr[stop])
        c0, c1 = int(cand_ip[start]), int(cand_ip[stop])
        if c1 > c0 and s1 > s0:
            uniq, inv = np.unique(cols[c0:c1], return_inverse=True)
            block = vectors[seed_cols[s0:s1]] @ vectors[uniq].T  # (seeds, distinct cands)
            local_ip = seed_indptr[start:stop + 1] - s0
            r = rows[c0:c1] - start
            _reduce_rows(block, local_ip, r, inv, outs[0], outs[1], c0, c1)
            if last is not None:
                last_ip, last_rows = last_seeds(local_ip, np.arange(s1 - s0), last)
                _reduce_rows(block[last_rows], last_ip, r, inv, outs[2], outs[3], c0, c1)
        start = stop
    return tuple(outs)


def seed_code_counts(codes: np.ndarray, q: Queries, n_codes: int) -> sp.csr_matrix:
    """(n, n_codes): how many of each playlist's seeds carry each code (artist or album; -1,
    unknown, is not counted)."""
    seed_codes = codes[q.seed_cols]
    seed_rows = np.repeat(np.arange(q.n), q.n_seeds)
    known = seed_codes >= 0
    counts = sp.csr_matrix((np.ones(int(known.sum()), np.float32),
                            (seed_rows[known], seed_codes[known])), shape=(q.n, n_codes))
    counts.sum_duplicates()
    return counts


def overlap(codes: np.ndarray, q: Queries, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Share of the playlist's seeds with the candidate's code (artist or album); 0 if unknown."""
    if q.n <= SMALL_BATCH:  # a served request: no sparse matrix (0.2 ms of it)
        out = np.zeros(rows.shape[0], dtype=np.float32)
        cand_codes = codes[cols]
        for r in range(q.n):
            sc = codes[q.seed_cols[q.seed_indptr[r]:q.seed_indptr[r + 1]]]
            uniq, counts = np.unique(sc[sc >= 0], return_counts=True)
            sel = np.flatnonzero(rows == r)
            if uniq.size == 0 or sel.size == 0:
                continue
            cc = cand_codes[sel]
            pos = np.minimum(np.searchsorted(uniq, cc), uniq.size - 1)
            hit = (uniq[pos] == cc) & (cc >= 0)
            out[sel[hit]] = counts[pos[hit]]
        return out / np.maximum(q.n_seeds[rows], 1).astype(np.float32)
    n_codes = int(codes.max()) + 1 if codes.size and codes.max() >= 0 else 1
    counts = seed_code_counts(codes, q, n_codes)
    cand_codes = codes[cols]
    out = np.zeros(rows.shape[0], dtype=np.float32)
    ok = cand_codes >= 0
    if ok.any():
        out[ok] = np.asarray(counts[rows[ok], cand_codes[ok]]).ravel()
    return out / np.maximum(q.n_seeds[rows], 1).astype(np.float32)


def artist_affinity(src: Sources, q: Queries, rows: np.ndarray,
                    cols: np.ndarray) -> np.ndarray:
    """Mean over the playlist's seeds of the artist co-occurrence (`Sources.artist_cooc`)
    between the candidate's artist and the seed's: how often the artists share playlists,
    which reaches tracks that never shared one with a seed; 0 when an artist is unknown."""
    out = np.zeros(rows.shape[0], dtype=np.float32)
    c = src.artist_cooc
    if c is None or rows.size == 0:
        return out
    cand = src.artist[cols]
    ok = cand >= 0
    if ok.any():
        # each playlist's summed co-occurrence with the candidates' artists
        if q.n <= SMALL_BATCH:  # a served request: looked up in the seeds' artists' rows
            for r in range(q.n):  # (thousands of entries each; sorted by `Sources`)
                codes = src.artist[q.seed_cols[q.seed_indptr[r]:q.seed_indptr[r + 1]]]
                sel = ok & (rows == r)
                # each artist's row once, times its seeds (playlists repeat artists)
                distinct, times = np.unique(codes[codes >= 0], return_counts=True)
                out[sel] = row_sums_at(c, distinct, cand[sel], times)
        else:
            s = seed_code_counts(src.artist, q, c.shape[0]) @ c
            out[ok] = np.asarray(s.tocsr()[rows[ok], cand[ok]]).ravel()
    return out / np.maximum(q.n_seeds[rows], 1).astype(np.float32)


def compute(src: Sources, q: Queries, ret: Retrieval, names: list[str],
            caption_cos: np.ndarray | None = None) -> np.ndarray:
    """(m, len(names)) float32 feature matrix for the candidates of `ret`.

    caption_cos: (n, V) cosine of each playlist's caption with every track in the text model's
    joint space, or None (the feature is then NaN: "no caption", which the ranker handles).
    """
    rows, cols = ret.rows, ret.cols
    d = ret.dense
    n_seeds = np.maximum(q.n_seeds, 1).astype(np.float32)
    need = set(names)
    feats: dict[str, np.ndarray] = {}

    gather = ret.gather

    if need & {"emb_cos", "emb_rank"}:
        feats["emb_cos"] = gather("emb")
        feats["emb_rank"] = group_ranks(rows, feats["emb_cos"])
    want_all = bool(need & {"seed_cos_max", "seed_cos_mean"})
    want_last = bool(need & {"last_cos_max", "last_cos_mean"})
    if want_all:
        cos = seed_cosines(src.vectors, q.seed_indptr, q.seed_cols, rows, cols,
                           last=LAST if want_last else None)
        feats["seed_cos_max"], feats["seed_cos_mean"] = cos[0], cos[1]
        if want_last:
            feats["last_cos_max"], feats["last_cos_mean"] = cos[2], cos[3]
    elif want_last:
        ip, sc = last_seeds(q.seed_indptr, q.seed_cols, LAST)
        feats["last_cos_max"], feats["last_cos_mean"] = seed_cosines(src.vectors, ip, sc,
                                                                     rows, cols)
    # Counts are divided by the sources' playlists, so the features keep their scale between
    # the shadow sources the ranker is trained on and the full ones it serves with.
    n_pl = max(float(src.n_playlists), 1.0)
    if "win_last" in need:
        feats["win_last"] = gather("win_last") / (np.minimum(n_seeds, LAST)[rows] * n_pl)
    pop = src.popularity[cols]
    if need & {"cooc_playlist", "cooc_rank", "cooc_conditional"}:
        pl = gather("pl")
        feats["cooc_playlist"] = pl / (n_seeds[rows] * n_pl)
        feats["cooc_conditional"] = pl / (n_seeds[rows] * np.maximum(pop, 1.0))
        feats["cooc_rank"] = group_ranks(rows, pl)
    if need & {"cooc_knn", "knn_rank"}:
        knn = gather("knn")
        feats["cooc_knn"] = knn / n_seeds[rows]
        feats["knn_rank"] = group_ranks(rows, knn)
    if "cooc_window" in need:
        feats["cooc_window"] = gather("win") / (n_seeds[rows] * n_pl)
    feats["popularity"] = pop / n_pl
    feats["log_popularity"] = np.log((pop + 1.0) / n_pl)
    if "artist_overlap" in need:
        feats["artist_overlap"] = overlap(src.artist, q, rows, cols)
    if "album_overlap" in need:
        feats["album_overlap"] = overlap(src.album, q, rows, cols)
    if need & {"artist_cooc", "artist_cooc_rank"}:
        feats["artist_cooc"] = artist_affinity(src, q, rows, cols)
        feats["artist_cooc_rank"] = group_ranks(rows, feats["artist_cooc"])
    feats["n_seeds"] = n_seeds[rows]
    if need & {"ease_score", "ease_rank"}:
        if "ease" not in d and "ease" not in ret.at:
            raise ValueError("the ease features need Sources.ease")
        feats["ease_score"] = gather("ease")  # NaN: not among the EASE tracks
        known = ~np.isnan(feats["ease_score"])
        feats["ease_rank"] = np.where(known, group_ranks(rows, np.nan_to_num(
            feats["ease_score"], nan=-np.inf)), np.nan).astype(np.float32)
    if need & {"title_score", "title_rank"}:
        if "title" in d:
            ts = gather("title")  # NaN: the playlist has no name
            feats["title_score"] = ts
            feats["title_rank"] = np.where(np.isnan(ts), np.nan, group_ranks(
                rows, np.nan_to_num(ts, nan=-1.0))).astype(np.float32)
        else:
            feats["title_score"] = feats["title_rank"] = np.full(rows.shape[0], np.nan,
                                                                 np.float32)
    if "caption_cos" in need:
        feats["caption_cos"] = (caption_cos[rows, cols].astype(np.float32)
                                if caption_cos is not None
                                else np.full(rows.shape[0], np.nan, np.float32))
    return np.stack([feats[f].astype(np.float32) for f in names], axis=1)
