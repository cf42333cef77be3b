"""The continuation protocol (the reference's) for any scorer.

For each evaluated playlist: visible tracks -> scores over the whole vocabulary; visible tracks
are masked; ground truth = held-out vocabulary tracks that are not also visible. Playlists with
no visible or no held-out vocabulary track are skipped (and counted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from dynplayer.eval.metrics import (
    coverage,
    exposure_gini,
    ndcg_at_k,
    r_precision,
    recall_at_k,
)

# A scorer maps a batch of visible rows (CSR, n x V, binary) to dense scores (n x V).
Scorer = Callable[[sp.csr_matrix], np.ndarray]
KS = (10, 20, 50)


@dataclass
class EvalSet:
    """Visible and held-out rows over one vocabulary, aligned with `pids`."""

    visible: sp.csr_matrix
    heldout: sp.csr_matrix
    pids: list[str] = field(default_factory=list)
    skipped: int = 0
    dropped_unknown: dict[str, int] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.visible.shape[0])


def make_eval_set(visible: sp.csr_matrix, heldout: sp.csr_matrix,
                  pids: list[str] | None = None) -> EvalSet:
    """Drop held-out items that are also visible; keep rows with >= 1 visible and >= 1 held out."""
    visible = visible.tocsr().astype(np.float32)
    visible.data[:] = 1.0
    heldout = heldout.tocsr().astype(np.float32)
    heldout.data[:] = 1.0
    heldout = (heldout - heldout.multiply(visible)).tocsr()
    heldout.eliminate_zeros()
    keep = (np.diff(visible.indptr) > 0) & (np.diff(heldout.indptr) > 0)
    rows = np.flatnonzero(keep)
    pid_list = pids or [str(i) for i in range(visible.shape[0])]
    return EvalSet(visible=visible[rows], heldout=heldout[rows],
                   pids=[pid_list[i] for i in rows], skipped=int((~keep).sum()))


def corpus_eval_set(corpus: Any, split: int, vocab: np.ndarray | None = None) -> EvalSet:
    """The eval set of one split of a prepared corpus (validation or test)."""
    playlists = corpus.playlists_in(split)
    vis = corpus.interaction_matrix(playlists, part="visible", vocab=vocab)
    held = corpus.interaction_matrix(playlists, part="heldout", vocab=vocab)
    return make_eval_set(vis, held, [corpus.pids[p] for p in playlists])


def top_k_masked(scores: np.ndarray, visible: sp.csr_matrix, k: int) -> np.ndarray:
    """Indices of the top-k items per row, best first, with visible items excluded."""
    scores = np.array(scores, dtype=np.float32, copy=True)
    rows = np.repeat(np.arange(visible.shape[0]), np.diff(visible.indptr))
    scores[rows, visible.indices] = -np.inf
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def evaluate_scorer(
    scorer: Scorer,
    es: EvalSet,
    *,
    ks: tuple[int, ...] = KS,
    batch_size: int = 1024,
    per_playlist: bool = False,
) -> dict[str, Any]:
    """Recall@K, NDCG@K (K in ks), R-precision, coverage@10 and Gini of top-10 exposure."""
    n_items = es.visible.shape[1]
    kmax = max(ks)
    n_rel_all = np.diff(es.heldout.indptr).astype(np.int64)
    r_max = int(n_rel_all.max()) if es.n else 0
    depth = min(n_items, max(kmax, r_max))
    per: dict[str, list[np.ndarray]] = {f"recall@{k}": [] for k in ks}
    per.update({f"ndcg@{k}": [] for k in ks})
    per["r_precision"] = []
    tops10: list[np.ndarray] = []
    for start in range(0, es.n, batch_size):
        vis = es.visible[start:start + batch_size]
        held = es.heldout[start:start + batch_size]
        scores = scorer(vis)
        top = top_k_masked(scores, vis, depth)
        # hits[i, r] = is top[i, r] held out for playlist i (sparse lookup, vectorised).
        hits = np.asarray(held[np.arange(top.shape[0])[:, None], top].todense()) > 0
        n_rel = np.diff(held.indptr).astype(np.int64)
        for k in ks:
            per[f"recall@{k}"].append(recall_at_k(hits, n_rel, k))
            per[f"ndcg@{k}"].append(ndcg_at_k(hits, n_rel, k))
        ranks = np.arange(hits.shape[1])[None, :]
        per["r_precision"].append(r_precision((hits & (ranks < n_rel[:, None])).sum(1), n_rel))
        tops10.append(top[:, :10])
    out: dict[str, Any] = {}
    for key, parts in per.items():
        vals = np.concatenate(parts) if parts else np.zeros(0)
        out[key] = float(vals.mean()) if vals.shape[0] else 0.0
        if per_playlist:
            out[f"per_playlist/{key}"] = vals
    top10 = np.concatenate(tops10) if tops10 else np.zeros((0, 10), dtype=np.int64)
    out["coverage@10"] = coverage(top10, n_items)
    out["gini@10"] = exposure_gini(top10, n_items)
    out["n_playlists"] = es.n
    out["n_skipped"] = es.skipped
    out["n_items"] = n_items
    return out


def embedding_scorer(vectors: np.ndarray) -> Scorer:
    """Playlist vector = normalised mean of its visible tracks' vectors; cosine to every track."""
    v = np.asarray(vectors, dtype=np.float32)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    def score(visible: sp.csr_matrix) -> np.ndarray:
        counts = np.maximum(np.diff(visible.indptr), 1).astype(np.float32)
        mean = np.asarray(visible @ v) / counts[:, None]
        mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
        return np.asarray(mean @ v.T)

    return score
