"""The continuation protocol (the reference's) for any scorer.

For each evaluated playlist: visible tracks -> scores over the whole vocabulary; visible tracks
are masked; ground truth = held-out vocabulary tracks that are not also visible. Playlists with
no visible or no held-out vocabulary track are skipped (and counted).

An external split file (`--test-split FILE`) gives the visible and held-out tracks explicitly, one
JSON object per line: {"pid": str|int, "visible": [track ids], "heldout": [track ids]}; tracks
outside the model's vocabulary are dropped and counted.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from dynplayer.data.json_errors import JSON_ERRORS, json_problem
from dynplayer.errors import DataError
from dynplayer.eval.metrics import (
    coverage,
    exposure_gini,
    ndcg_at_k,
    r_precision,
    recall_at_k,
)
from dynplayer.ids import normalize_track_id
from dynplayer.topk import rows_per_chunk

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
    # Same entries as `visible`, data = 1-based position of the track in the playlist (its last
    # occurrence): what order-aware scorers (the two-stage ranker) read. None = order unknown.
    order: sp.csr_matrix | None = None

    @property
    def n(self) -> int:
        return int(self.visible.shape[0])


def order_matrix(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """CSR whose entry (r, c) is the 1-based position of the last occurrence of c in row r;
    `rows`/`cols` list the occurrences in playlist order."""
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    n = shape[0]
    starts = np.searchsorted(rows, np.arange(n))
    pos = (np.arange(rows.shape[0]) - starts[rows] + 1).astype(np.float32)
    key = rows * shape[1] + cols
    order = np.lexsort((pos, key))
    k = key[order]
    is_last = np.ones(k.shape[0], dtype=bool)
    is_last[:-1] = k[1:] != k[:-1]
    sel = order[is_last]
    last = sp.csr_matrix((pos[sel], (rows[sel], cols[sel])), shape=shape)
    last.sort_indices()
    return last


def make_eval_set(visible: sp.csr_matrix, heldout: sp.csr_matrix,
                  pids: list[str] | None = None,
                  order: sp.csr_matrix | None = None) -> EvalSet:
    """Drop held-out items that are also visible; keep rows with >= 1 visible and >= 1 held out."""
    visible = visible.tocsr().astype(np.float32)
    visible.data[:] = 1.0
    heldout = heldout.tocsr().astype(np.float32)
    heldout.data[:] = 1.0
    heldout = (heldout - heldout.multiply(visible)).tocsr()
    heldout.eliminate_zeros()
    keep = (np.diff(visible.indptr) > 0) & (np.diff(heldout.indptr) > 0)
    rows = np.flatnonzero(keep)
    pid_list = pids if pids is not None else [str(i) for i in range(visible.shape[0])]
    return EvalSet(visible=visible[rows], heldout=heldout[rows],
                   pids=[pid_list[i] for i in rows], skipped=int((~keep).sum()),
                   order=order.tocsr()[rows] if order is not None else None)


def corpus_eval_set(corpus: Any, split: int, vocab: np.ndarray | None = None) -> EvalSet:
    """The eval set of one split of a prepared corpus (validation or test)."""
    playlists = corpus.playlists_in(split)
    vis = corpus.interaction_matrix(playlists, part="visible", vocab=vocab)
    held = corpus.interaction_matrix(playlists, part="heldout", vocab=vocab)
    ip, cols = corpus.sequences(playlists, part="visible", vocab=vocab)
    order = order_matrix(np.repeat(np.arange(playlists.shape[0]), np.diff(ip)), cols, vis.shape)
    return make_eval_set(vis, held, [corpus.pids[p] for p in playlists], order)


def _read_lines(path: Path) -> list[str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read the split file ({exc.strerror})", file=str(path)) from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"corrupt gzip data ({exc})", file=str(path)) from exc
    try:
        return raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                        file=str(path)) from exc


def _id_list(obj: dict[str, Any], key: str, where: dict[str, Any]) -> list[str]:
    if key not in obj:
        raise DataError("missing", **where, field=key)
    val = obj[key]
    if not isinstance(val, list):
        raise DataError(f"must be a list of track ids, got {type(val).__name__}", **where,
                        field=key)
    out = []
    for i, t in enumerate(val):
        if isinstance(t, bool) or not isinstance(t, str | int):
            raise DataError(f"item {i} must be a track id (string), got {type(t).__name__}",
                            **where, field=key)
        out.append(normalize_track_id(str(t)))  # spotify:track:ID and links name ID
    return out



def playlist_record(line: str, where: dict[str, Any]) -> tuple[dict[str, Any], str | int]:
    """One JSON line `{"pid", ...}` of a split or seeds file: the object and its pid, or a
    DataError naming `where` (file, line) and the field."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc.msg} at column {exc.colno})", **where) from exc
    except JSON_ERRORS as exc:  # > 4,300-digit integer, deep nesting
        why = json_problem(exc).removeprefix("malformed JSON: ")
        raise DataError(f"not valid JSON ({why})", **where) from exc
    if not isinstance(obj, dict):
        raise DataError(f"expected a JSON object, got {type(obj).__name__}", **where)
    if "pid" not in obj:
        raise DataError("missing", **where, field="pid")
    pid = obj["pid"]
    if isinstance(pid, bool) or not isinstance(pid, str | int):
        raise DataError(f"must be a string or integer, got {type(pid).__name__}", **where,
                        field="pid")
    return obj, pid


def load_split_file(path: Path, ids: list[str]) -> EvalSet:
    """Read an external split file against a vocabulary of track ids (row r = ids[r]).

    Tracks not in `ids` are dropped from `visible` and `heldout` and counted in
    `dropped_unknown` (occurrence counts per field, plus `playlists` dropped as unusable).
    A malformed line is a DataError naming file:line and the field.
    """
    path = Path(path)
    index = {t: i for i, t in enumerate(ids)}
    rows_v: list[int] = []
    cols_v: list[int] = []
    rows_h: list[int] = []
    cols_h: list[int] = []
    pids: list[str] = []
    seen: dict[str, int] = {}
    unknown = {"visible": 0, "heldout": 0}
    for line_no, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        where: dict[str, Any] = {"file": str(path), "line": line_no}
        obj, raw_pid = playlist_record(line, where)
        pid = str(raw_pid)
        if pid in seen:
            raise DataError(f"duplicate pid {pid!r} (first on line {seen[pid]})", **where,
                            field="pid")
        seen[pid] = line_no
        row = len(pids)
        pids.append(pid)
        for key, rows, cols in (("visible", rows_v, cols_v), ("heldout", rows_h, cols_h)):
            for t in _id_list(obj, key, where):
                col = index.get(t)
                if col is None:
                    unknown[key] += 1
                else:
                    rows.append(row)
                    cols.append(col)
    if not pids:
        raise DataError("no playlists in the split file", file=str(path))
    shape = (len(pids), len(ids))

    def csr(rows: list[int], cols: list[int]) -> sp.csr_matrix:
        m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
        m.sum_duplicates()
        return m

    es = make_eval_set(csr(rows_v, cols_v), csr(rows_h, cols_h), pids,
                       order_matrix(np.asarray(rows_v), np.asarray(cols_v), shape))
    es.dropped_unknown = {"visible": unknown["visible"], "heldout": unknown["heldout"],
                          "playlists": es.skipped}
    return es


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
    # at most SCORE_CHUNK scores a batch: 1,024 playlists x 494k tracks (validation during
    # training at 250k playlists) held 2 GiB of scores, their masked copy, its negation and
    # 4 GiB of argpartition indices at once (12 GiB peak)
    batch_size = rows_per_chunk(n_items, batch_size)
    for start in range(0, es.n, batch_size):
        vis = es.visible[start:start + batch_size]
        held = es.heldout[start:start + batch_size]
        if getattr(scorer, "ordered", False) and es.order is not None:
            scores = scorer(vis, es.order[start:start + batch_size])  # type: ignore[call-arg]
        else:
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
    if es.dropped_unknown:
        out["dropped_unknown"] = dict(es.dropped_unknown)
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
