"""Evaluation of text search on held-out playlists, from their captions alone.

Queries are the captions of the held-out playlists of one split (validation or test) that have a
caption and at least one vocabulary track.

* keyword -> playlist: the candidate pool is those same held-out playlists, each represented
  only by its tracks (mean of its track vectors); the relevant item is the query's own playlist.
  The text model compares the query with the candidates in the joint space. The peers cannot
  see candidate captions either: they retrieve the top-50 training playlists by caption (BM25,
  or zero-shot encoder cosine), and rank the candidates by cosine between the similarity-weighted
  mean of those playlists' track means and each candidate's track mean.
* keyword -> tracks: every vocabulary track of the held-out playlist is relevant; scores come
  from popularity, from the reference aggregation (top-N training playlists -> sum of
  occurrence x similarity) over BM25, zero-shot caption, joint-space or hybrid retrieval, or
  from direct text -> track cosine in the joint space. Any retrieval can add pseudo-relevance
  feedback (`prf_weight`: the retrieved playlists' tracks re-ranked in the track model's space).
  Ties (tracks no retrieved playlist holds) are broken by training popularity for every method
  alike.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from dynplayer.data.corpus import SPLIT_NAMES, TRAIN
from dynplayer.errors import ConfigError, QueryError
from dynplayer.eval.hubness import top_k_hubness
from dynplayer.eval.metrics import ndcg_at_k, recall_at_k
from dynplayer.run import l2_normalize, load_run
from dynplayer.text.bm25 import BM25
from dynplayer.text.config import project_numpy
from dynplayer.text.hubness import inverted_softmax_bias
from dynplayer.text.search import TextSearcher, aggregate_scores, feedback_scores, top_rows
from dynplayer.text.space import compose_playlist_vectors, hybrid_weights, search_projection
from dynplayer.text.train import TextData, load_text_data

RETRIEVALS = ("bm25", "caption", "joint", "hybrid")


@dataclass
class TextEval:
    """A held-out split's queries and answers, aligned with a trained searcher."""

    searcher: TextSearcher
    data: TextData
    split: int
    rows: np.ndarray  # corpus playlist_idx of the queries
    queries: list[str]  # as search sees them: Korean loanwords bridged (`text.loanwords`)
    relevant: sp.csr_matrix  # (n_queries, V) binary
    typed: list[str] | None = None  # the captions as written, where any query was bridged

    def as_typed(self) -> TextEval:
        """This split with its queries as written (no loanword bridge); itself when none was
        bridged."""
        return self if self.typed is None else replace(self, queries=self.typed, typed=None)

    @property
    def n(self) -> int:
        return len(self.queries)

    @cached_property
    def raw(self) -> np.ndarray:
        return self.searcher.encoder.encode(self.queries)

    @cached_property
    def joint_q(self) -> np.ndarray:
        return project_numpy(self.searcher.weights, "text", self.raw)

    @cached_property
    def bm25(self) -> BM25:
        return BM25(self.searcher.playlist_captions)

    @cached_property
    def popularity(self) -> np.ndarray:
        pop = np.asarray(self.searcher.occ.sum(axis=0)).ravel().astype(np.float32)
        return pop / max(float(pop.max()), 1.0)

    @cached_property
    def train_track_mean(self) -> np.ndarray:
        return self.data.track_mean(self.data.searchable())

    def similarities(self, retrieval: str, caption_weight: float = 0.5,
                     dims: int | None = None) -> np.ndarray:
        """(n_queries, P) query -> training playlist similarity under `retrieval`; hybrid on
        its first `dims` principal directions when 0 < dims < its width (default: the
        searcher's search_dims, as the search does)."""
        s = self.searcher
        dims = s.cfg.search_dims if dims is None else dims
        width = s.joint.shape[1] + s.captions_x.shape[1]
        if retrieval == "hybrid" and 0 < dims < width:
            if s.projection is not None and dims == s.cfg.search_dims and \
                    caption_weight == s.cfg.caption_weight and s.cfg.retrieval == "hybrid":
                # the searcher's own space: its projection is fitted already
                q = np.hstack([np.sqrt(1 - caption_weight) * self.joint_q,
                               np.sqrt(caption_weight) * self.raw]).astype(np.float32)
                same: np.ndarray = s.project(q) @ s.playlist_vectors.T
                return same
            cfg = replace(s.cfg, caption_weight=caption_weight)
            full = compose_playlist_vectors(s.joint, s.captions_x, cfg, s.no_words)
            wq, wc = np.sqrt(1 - caption_weight), np.sqrt(caption_weight)

            def bank(rows: np.ndarray) -> np.ndarray:
                cap = s.captions_x[rows]
                return np.hstack([wq * project_numpy(s.weights, "text", cap), wc * cap])

            proj = search_projection(full, bank, dims, seed=s.cfg.seed)
            q = np.hstack([wq * self.joint_q, wc * self.raw]).astype(np.float32)
            out: np.ndarray = l2_normalize(q @ proj) @ l2_normalize(full @ proj).T
            return out
        if retrieval == "bm25":
            return self.bm25.scores(self.queries)
        if retrieval == "caption":
            return self.raw @ l2_normalize(s.captions_x).T
        if retrieval == "joint":
            return self.joint_q @ s.joint.T
        if retrieval == "hybrid":  # as `compose_playlist_vectors`: wordless captions joint-only
            a, b = hybrid_weights(replace(s.cfg, caption_weight=caption_weight), s.no_words,
                                  s.joint.shape[0])
            return (np.sqrt(1 - caption_weight) * a[None, :] * self.similarities("joint")
                    + np.sqrt(caption_weight) * b[None, :] * self.similarities("caption"))
        raise ConfigError(f"unknown retrieval {retrieval!r} (known: {', '.join(RETRIEVALS)})")

    def bank_bias(self, retrieval: str, beta: float, caption_weight: float = 0.5) -> np.ndarray:
        """QB-Norm bias from the training captions as query bank (own caption left out)."""
        s = self.searcher
        cap = l2_normalize(s.captions_x)
        if retrieval == "caption":
            bank = cap @ cap.T
        else:
            jq = project_numpy(s.weights, "text", s.captions_x)
            bank = jq @ s.joint.T
            if retrieval == "hybrid":
                bank = (1 - caption_weight) * bank + caption_weight * (cap @ cap.T)
        return inverted_softmax_bias(bank, beta, exclude_diagonal=True)


def prepare_eval(searcher: TextSearcher, split: str = "test") -> TextEval:
    if split not in SPLIT_NAMES or SPLIT_NAMES[split] == TRAIN:
        raise ConfigError(f"split must be val or test, not {split!r}")
    data = load_text_data(load_run(searcher.path.parent))
    if [data.corpus.track_ids[t] for t in data.vocab] != searcher.track_ids:
        raise ConfigError(f"{searcher.path}: the text model was trained on other track vectors; "
                          "rerun `dynplayer train-text`")
    rows = data.usable(SPLIT_NAMES[split])
    rel = data.counts[rows].tocsr()
    rel.data[:] = 1.0
    # the queries as search sees them: Korean loanwords bridged (English ones are unchanged)
    typed = [data.captions[p] for p in rows]
    queries = [_bridged(searcher, q) or q for q in typed]
    return TextEval(searcher=searcher, data=data, split=SPLIT_NAMES[split], rows=rows,
                    queries=queries, relevant=rel, typed=typed if queries != typed else None)


def _bridged(searcher: TextSearcher, query: str) -> str | None:
    try:
        return searcher.bridged(query)
    except QueryError:  # an empty or overlong caption is searched as it is
        return None


def ranking_metrics(scores: np.ndarray, relevant: sp.csr_matrix,
                    ks: tuple[int, ...] = (10, 50)) -> dict[str, float]:
    """Recall@K and NDCG@K of each row's top-K (no masking: nothing of the playlist is seen)."""
    top, _ = top_rows(scores, max(ks))
    hits = np.asarray(relevant[np.arange(top.shape[0])[:, None], top].todense()) > 0
    n_rel = np.diff(relevant.indptr).astype(np.int64)
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = float(recall_at_k(hits, n_rel, k).mean())
        out[f"ndcg@{k}"] = float(ndcg_at_k(hits, n_rel, k).mean())
    return out


def track_scores(ev: TextEval, method: str, *, top_playlists: int = 50, sim_power: float = 1.0,
                 caption_weight: float = 0.5, qbnorm_beta: float = 0.0, prf_weight: float = 0.0,
                 sims: np.ndarray | None = None, metadata: bool = False) -> np.ndarray:
    """(n_queries, V) keyword -> track scores of `method` (popularity, direct, or a retrieval);
    the same numbers as `TextSearcher.aggregate`, batched. `metadata`: plus the queries' match
    on the tracks' artists / genres with the searcher's weights (`TextSearcher.with_metadata`;
    the aggregate is scaled as it is there)."""
    if method == "popularity":
        return np.broadcast_to(ev.popularity, (ev.n, ev.popularity.shape[0])).copy()
    if method == "direct":
        return ev.joint_q @ ev.searcher.track_joint.T + 1e-6 * ev.popularity[None, :]
    s = ev.similarities(method, caption_weight) if sims is None else sims
    if qbnorm_beta > 0 and method != "bm25":
        rows, _ = top_rows(s - ev.bank_bias(method, qbnorm_beta, caption_weight)[None, :],
                           top_playlists)
        vals = np.take_along_axis(s, rows, axis=1)
    else:
        rows, vals = top_rows(s, top_playlists)
    scores = aggregate_scores(ev.searcher.occ, rows, vals, sim_power)
    if prf_weight > 0:
        ts = ev.searcher
        if ts.track_vectors is None or ts.playlist_means is None:
            raise ConfigError(f"{ts.path}: pseudo-relevance feedback needs the run's track "
                              "vectors")
        scores = feedback_scores(scores, rows, np.clip(vals, 0.0, None) ** sim_power,
                                 ts.playlist_means, ts.track_vectors, prf_weight)
    if metadata:
        scores = ev.searcher.with_metadata(scores, ev.queries, scaled=prf_weight > 0)
    return scores + 1e-6 * ev.popularity[None, :]


def playlist_retrieval(ev: TextEval, top_playlists: int = 50) -> dict[str, dict[str, Any]]:
    """Keyword -> playlist Recall@10/@20 over the held-out pool, for the model and its peers."""
    pool = ev.n
    cand = ev.data.track_mean(ev.rows)
    out: dict[str, dict[str, Any]] = {}

    def recall(sims: np.ndarray) -> dict[str, Any]:
        return {"recall@10": own_recall(sims, 10), "recall@20": own_recall(sims, 20),
                "pool": pool}

    joint_c = project_numpy(ev.searcher.weights, "playlist", cand)
    joint = ev.joint_q @ joint_c.T
    out["text model (joint space)"] = recall(joint)
    cand_n = l2_normalize(cand)

    def pseudo_playlist(method: str, power: float = 1.0) -> np.ndarray:
        rows, vals = top_rows(ev.similarities(method), top_playlists)
        w = np.clip(vals, 0.0, None) ** power
        pseudo = np.einsum("qm,qmd->qd", w, ev.train_track_mean[rows])
        return np.asarray(l2_normalize(pseudo) @ cand_n.T)

    bm25 = pseudo_playlist("bm25")
    out["BM25 -> training playlists' tracks"] = recall(bm25)
    out["zero-shot caption -> training playlists' tracks"] = recall(pseudo_playlist("caption"))
    hybrid = pseudo_playlist("hybrid", ev.searcher.cfg.sim_power)
    out["hybrid retrieval (search default) -> training playlists' tracks"] = recall(hybrid)
    # Lexical and learned retrieval fused by reciprocal rank (k = 60, no weight to tune).
    out["fusion: joint space + hybrid + BM25 (reciprocal rank)"] = recall(
        reciprocal_rank_fusion([joint, hybrid, bm25]))
    out["random"] = {"recall@10": min(10, pool) / pool, "recall@20": min(20, pool) / pool,
                     "pool": pool}
    return out


def own_recall(sims: np.ndarray, k: int) -> float:
    """Mean over rows i of P(candidate i is in row i's top k), ties broken at random: with g
    candidates scoring higher and e others tied with it, (k - g) / (e + 1) clipped to [0, 1].
    Counting only the higher ones made a row of equal scores (a BM25 query matching no
    caption) a certain hit: 93 of 660 MPD validation queries, +0.14 Recall@10 for BM25."""
    n = sims.shape[0]
    own = sims[np.arange(n), np.arange(n)][:, None]
    higher = (sims > own).sum(axis=1)
    tied = (sims == own).sum(axis=1) - 1
    return float(np.clip((k - higher) / (tied + 1), 0.0, 1.0).mean())


def reciprocal_rank_fusion(scores: list[np.ndarray], k: float = 60.0) -> np.ndarray:
    """sum over rankings of 1 / (k + rank), rank 1-based within each row (Cormack et al. 2009)."""
    out = np.zeros_like(scores[0], dtype=np.float64)
    for s in scores:
        rank = np.empty(s.shape, dtype=np.float64)
        order = np.argsort(-s, axis=1, kind="stable")
        np.put_along_axis(rank, order, np.arange(1, s.shape[1] + 1, dtype=np.float64)[None, :]
                          .repeat(s.shape[0], axis=0), axis=1)
        out += 1.0 / (k + rank)
    return out


def retrieval_hubness(ev: TextEval, method: str, top_playlists: int = 50,
                      qbnorm_beta: float = 0.0, caption_weight: float = 0.5) -> dict[str, Any]:
    s = ev.similarities(method, caption_weight)
    if qbnorm_beta > 0:
        s = s - ev.bank_bias(method, qbnorm_beta, caption_weight)[None, :]
    rows, _ = top_rows(s, top_playlists)
    return top_k_hubness(rows, s.shape[1])
