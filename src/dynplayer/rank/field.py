"""The second stage under the field's protocol (`eval.field`): training queries shaped like the
challenge's categories, examples from field cases, and the field's metrics over candidates.

A continuation is asked with 1 to 100 seeds, the first ones or drawn at random, and everything
else of the playlist is to be found; the ranker learns from carved-out training playlists split
the same ways (and half at random, the seed protocol's split), so what it sees in training is
what it is scored on.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp

from dynplayer.eval.field import FieldCases
from dynplayer.rank.candidates import Queries

# (kind, n): "first" n seeds, n "random" seeds, or "half" of the playlist at random
TRAIN_SPLITS: tuple[tuple[str, int], ...] = (
    ("first", 1), ("first", 5), ("first", 10), ("first", 25), ("first", 100),
    ("random", 25), ("random", 100), ("half", 0),
)


def first_distinct(indptr: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's distinct values in order of first appearance (vectorised)."""
    n = indptr.shape[0] - 1
    rows = np.repeat(np.arange(n), np.diff(indptr))
    pos = np.arange(cols.shape[0])
    order = np.lexsort((pos, cols, rows))
    r, c = rows[order], cols[order]
    first = np.ones(r.shape[0], dtype=bool)
    first[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
    keep = np.sort(order[first])
    new_ip = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows[keep], minlength=n), out=new_ip[1:])
    return new_ip, cols[keep].astype(np.int64)


def min_length(kind: str, n: int) -> int:
    """Distinct tracks a playlist needs for a split: as `eval.field.Category.min_tracks`."""
    if kind == "half":
        return 2
    return n + max(5, math.ceil(n / 4))


def category_queries(seq_indptr: np.ndarray, seq_cols: np.ndarray, n_items: int,
                     seed: int, splits: tuple[tuple[str, int], ...] = TRAIN_SPLITS
                     ) -> tuple[Queries, sp.csr_matrix, np.ndarray]:
    """Seeds and held-out tracks of whole playlists, each split one of `splits` ways (drawn
    at random among those its length allows; a playlist too short for all is split in half).
    Returns the queries (seeds in playlist order), the held-out (n, V) matrix and the split
    index of each playlist."""
    rng = np.random.default_rng(seed)
    ip, cols = first_distinct(seq_indptr, seq_cols)
    n = ip.shape[0] - 1
    lengths = np.diff(ip)
    ok = np.stack([lengths >= min_length(k, m) for k, m in splits], axis=1)
    ok[~ok.any(axis=1), [k for k, _ in splits].index("half")] = True
    choice = np.array([rng.choice(np.flatnonzero(row)) for row in ok], dtype=np.int64)
    seed_parts: list[np.ndarray] = []
    held_rows: list[np.ndarray] = []
    held_cols: list[np.ndarray] = []
    for i in range(n):
        row = cols[ip[i]:ip[i + 1]]
        kind, m = splits[int(choice[i])]
        if kind == "first":
            is_seed = np.arange(row.shape[0]) < m
        else:
            m = max(1, int(round(row.shape[0] / 2))) if kind == "half" else m
            m = min(m, row.shape[0] - 1)
            is_seed = np.zeros(row.shape[0], dtype=bool)
            is_seed[rng.choice(row.shape[0], m, replace=False)] = True
        seed_parts.append(row[is_seed])
        held_rows.append(np.full(int((~is_seed).sum()), i, dtype=np.int64))
        held_cols.append(row[~is_seed])
    s_ip = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([p.shape[0] for p in seed_parts], out=s_ip[1:])
    seeds = np.concatenate(seed_parts) if seed_parts else np.zeros(0, np.int64)
    hr = np.concatenate(held_rows) if held_rows else np.zeros(0, np.int64)
    hc = np.concatenate(held_cols) if held_cols else np.zeros(0, np.int64)
    held = sp.csr_matrix((np.ones(hr.shape[0], np.float32), (hr, hc)), shape=(n, n_items))
    return Queries(s_ip, seeds), held, choice


def case_queries(cases: FieldCases, col_of: np.ndarray, n_items: int
                 ) -> tuple[np.ndarray, Queries, sp.csr_matrix, np.ndarray]:
    """The cases with at least one seed the vocabulary holds: (their indices, queries over
    vocabulary rows, held-out (n, V) of the truth tracks the vocabulary holds, |G| of each:
    every truth track, known or not)."""
    s_rows = np.repeat(np.arange(cases.n), np.diff(cases.seed_indptr))
    s_cols = col_of[cases.seed_tracks]
    known = np.bincount(s_rows[s_cols >= 0], minlength=cases.n)
    keep = np.flatnonzero(known > 0)
    pos = np.full(cases.n, -1, dtype=np.int64)
    pos[keep] = np.arange(keep.shape[0])
    sel = (s_cols >= 0) & (pos[s_rows] >= 0)
    s_ip = np.zeros(keep.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(pos[s_rows[sel]], minlength=keep.shape[0]), out=s_ip[1:])
    t_rows = np.repeat(np.arange(cases.n), np.diff(cases.truth_indptr))
    t_cols = col_of[cases.truth_tracks]
    tsel = (t_cols >= 0) & (pos[t_rows] >= 0)
    held = sp.csr_matrix((np.ones(int(tsel.sum()), np.float32),
                          (pos[t_rows[tsel]], t_cols[tsel])), shape=(keep.shape[0], n_items))
    n_rel = np.diff(cases.truth_indptr)[keep].astype(np.int64)
    return keep, Queries(s_ip, s_cols[sel]), held, n_rel


def field_candidate_metrics(rows: np.ndarray, y: np.ndarray, n_rel: np.ndarray,
                            scores: np.ndarray, tiebreak: np.ndarray | None = None,
                            k: int = 500) -> dict[str, Any]:
    """The field's R-precision (tracks only), NDCG over `k` and Recall@10 of ranking each
    playlist's candidates by `scores` (a truth track that is no candidate is a miss)."""
    n = n_rel.shape[0]
    tb = np.zeros_like(scores) if tiebreak is None else tiebreak
    order = np.lexsort((-tb, -scores, rows))
    r, hit = rows[order], y[order] > 0
    starts = np.searchsorted(r, np.arange(n))
    rank = np.arange(r.shape[0]) - starts[r]
    keep = rank < k
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = np.bincount(r[keep & hit], weights=disc[rank[keep & hit]], minlength=n)
    idcg = np.r_[0.0, np.cumsum(disc)][np.minimum(n_rel, k)]
    in_r = hit & (rank < n_rel[r])
    rp = np.bincount(r[in_r], minlength=n) / np.maximum(n_rel, 1)
    top10 = np.bincount(r[hit & (rank < 10)], minlength=n) / np.maximum(np.minimum(n_rel, 10), 1)
    ndcg = np.divide(dcg, idcg, out=np.zeros(n), where=idcg > 0)
    return {"r_precision": float(rp.mean()) if n else 0.0,
            "ndcg": float(ndcg.mean()) if n else 0.0,
            "recall@10": float(top10.mean()) if n else 0.0}
