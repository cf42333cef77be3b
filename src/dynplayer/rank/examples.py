"""Training and validation examples of the second stage: every candidate of a batch of
playlists with its features and label (`featurize`), and unions of such sets (`concat`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from dynplayer.rank import features as F
from dynplayer.rank.candidates import Queries, Sources, retrieve
from dynplayer.rank.stage import StageConfig


@dataclass
class Examples:
    """Candidate rows of many playlists: features (all of `names`), labels, playlist ids."""

    x: np.ndarray
    y: np.ndarray
    rows: np.ndarray
    cols: np.ndarray  # vocabulary row of each candidate
    names: list[str]
    n_rel: np.ndarray  # held-out tracks per playlist (all of them, candidates or not)
    protocol: str = "seed"  # which metrics judge a ranking of these examples (`headline`)

    def columns(self, names: list[str]) -> np.ndarray:
        idx = [self.names.index(f) for f in names]
        return self.x[:, idx]

    @property
    def candidate_recall(self) -> float:
        """Share of held-out tracks that are candidates (the ceiling of any re-ordering)."""
        hits = np.bincount(self.rows, weights=self.y, minlength=self.n_rel.shape[0])
        ok = self.n_rel > 0
        return float((hits[ok] / self.n_rel[ok]).mean()) if ok.any() else 0.0


def featurize(src: Sources, q: Queries, heldout: sp.csr_matrix, names: list[str],
              cfg: StageConfig, n_rel: np.ndarray | None = None) -> Examples:
    """Candidates and features of every playlist in `q`, labelled by `heldout`; `n_rel` is
    each playlist's number of tracks to find (default: its held-out row's)."""
    xs, ys, rs, cs = [], [], [], []
    held = heldout.tocsr()
    for start in range(0, q.n, cfg.batch_size):
        stop = min(q.n, start + cfg.batch_size)
        sub = q.slice(start, stop)
        ret = retrieve(src, sub, cfg.n_embedding, cfg.n_cooc, cfg.n_ease, cfg.n_title,
                       half_life=cfg.recent_half_life)
        xs.append(F.compute(src, sub, ret, names))
        ys.append(np.asarray(held[ret.rows + start, ret.cols]).ravel() > 0)
        rs.append(ret.rows + start)
        cs.append(ret.cols)
    return Examples(x=np.concatenate(xs), y=np.concatenate(ys).astype(np.float32),
                    rows=np.concatenate(rs), cols=np.concatenate(cs), names=list(names),
                    n_rel=np.diff(held.indptr).astype(np.int64) if n_rel is None else n_rel)


def concat(parts: list[Examples], protocol: str) -> Examples:
    """The playlists of every part, one after another (rows renumbered), judged by
    `protocol`'s metrics."""
    offsets = np.cumsum([0] + [p.n_rel.shape[0] for p in parts[:-1]])
    if any(p.names != parts[0].names for p in parts):
        raise ValueError("examples with different features")
    return Examples(x=np.concatenate([p.x for p in parts]),
                    y=np.concatenate([p.y for p in parts]),
                    rows=np.concatenate([p.rows + o for p, o in zip(parts, offsets, strict=True)]),
                    cols=np.concatenate([p.cols for p in parts]), names=list(parts[0].names),
                    n_rel=np.concatenate([p.n_rel for p in parts]), protocol=protocol)


__all__ = ["Examples", "concat", "featurize"]
