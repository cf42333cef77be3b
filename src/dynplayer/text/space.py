"""The text search space, shared by training (`text.train`, which writes it) and search
(`text.search`, which reads it): how the searchable playlist matrix is composed, and the hash
of the track table it was built from."""

from __future__ import annotations

import hashlib

import numpy as np

from dynplayer.run import Run, l2_normalize
from dynplayer.text.model import TextConfig


def compose_playlist_vectors(joint: np.ndarray, captions: np.ndarray,
                             cfg: TextConfig) -> np.ndarray:
    """The search matrix for `cfg.retrieval`, L2-normalised rows.

    hybrid: [sqrt(1-w) joint, sqrt(w) caption], whose cosine with a query built the same way is
    exactly (1-w) cos_joint + w cos_caption, so one cosine index (pgvector) serves it.
    """
    if cfg.retrieval == "joint":
        return l2_normalize(joint)
    if cfg.retrieval == "caption":
        return l2_normalize(captions)
    w = cfg.caption_weight
    return np.hstack([np.sqrt(1 - w) * l2_normalize(joint),
                      np.sqrt(w) * l2_normalize(captions)]).astype(np.float32)


def vectors_hash(run: Run) -> str:
    h = hashlib.sha256(np.ascontiguousarray(run.vectors).tobytes())
    h.update("\n".join(run.ids).encode())
    return h.hexdigest()[:16]
