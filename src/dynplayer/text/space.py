"""The text search space, shared by training (`text.train`, which writes it) and search
(`text.search`, which reads it): how the searchable playlist matrix is composed, and the hash
of the track table it was built from."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from dynplayer.run import Run, l2_normalize
from dynplayer.text.model import TextConfig

_WORD = re.compile(r"\w")


def wordless(captions: Sequence[str]) -> np.ndarray:
    """Captions with no word character at all (empty, or only emoji and symbols: "🍻🍻🍻",
    "🇺🇸"). A text encoder puts them near every out-of-domain query, so they would act as
    hubs of caption retrieval; they are searched on their tracks' side only."""
    return np.array([_WORD.search(c or "") is None for c in captions], dtype=bool)


def hybrid_weights(cfg: TextConfig, no_words: np.ndarray | None, n: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per-playlist weights (a, b) of the joint and caption halves of a hybrid row: sqrt(1-w)
    and sqrt(w), or 1 and 0 for a wordless caption (rows stay unit length)."""
    w = cfg.caption_weight
    a = np.full(n, np.sqrt(1 - w), dtype=np.float32)
    b = np.full(n, np.sqrt(w), dtype=np.float32)
    if no_words is not None:
        a[no_words], b[no_words] = 1.0, 0.0
    return a, b


def compose_playlist_vectors(joint: np.ndarray, captions: np.ndarray, cfg: TextConfig,
                             no_words: np.ndarray | None = None) -> np.ndarray:
    """The search matrix for `cfg.retrieval`, L2-normalised rows.

    hybrid: [sqrt(1-w) joint, sqrt(w) caption], whose cosine with a query built the same way is
    exactly (1-w) cos_joint + w cos_caption, so one cosine index (pgvector) serves it; rows of
    `no_words` playlists (`wordless`) are [joint, 0]: sqrt(1-w) cos_joint.
    """
    if cfg.retrieval == "joint":
        return l2_normalize(joint)
    if cfg.retrieval == "caption":
        return l2_normalize(captions)
    a, b = hybrid_weights(cfg, no_words, joint.shape[0])
    return np.hstack([a[:, None] * l2_normalize(joint),
                      b[:, None] * l2_normalize(captions)]).astype(np.float32)


def vectors_hash(run: Run) -> str:
    h = hashlib.sha256(np.ascontiguousarray(run.vectors).tobytes())
    h.update("\n".join(run.ids).encode())
    return h.hexdigest()[:16]
