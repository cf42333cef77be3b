"""The text search space, shared by training (`text.train`, which writes it) and search
(`text.search`, which reads it): how the searchable playlist matrix is composed, its
search_dims projection (fitted and stored by `train-text` and `update`, read by search), and
the hash of the track table it was built from."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dynplayer.run import Run, atomic_write_bytes, l2_normalize
from dynplayer.text.config import TextConfig, project_numpy

PROJECTION_FILE = "projection.npz"

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


def search_projection(playlists: np.ndarray, bank: Callable[[np.ndarray], np.ndarray],
                      dims: int, *, sample: int = 100_000, seed: int = 0) -> np.ndarray:
    """(D, dims) the first `dims` principal directions (uncentred: dot products are what the
    search keeps) of both sides of the search: the playlist rows and the query-side vectors of
    their own captions (`bank(rows)`, the query bank). Fitted on the playlists alone, the
    directions that only queries use are lost (MPD validation keyword -> tracks Recall@50 at
    256 dims: 0.978x of the full space against 1.000x with both sides). A seeded sample of at
    most `sample` playlists; signs fixed (largest entry of each direction positive), so the
    projection is deterministic."""
    n = playlists.shape[0]
    pick = np.arange(n) if n <= sample else np.sort(
        np.random.default_rng(seed).choice(n, sample, replace=False))
    gram = np.zeros((playlists.shape[1], playlists.shape[1]), dtype=np.float64)
    for part in (playlists[pick], bank(pick)):
        r = np.asarray(part, dtype=np.float64)
        gram += r.T @ r
    w, v = np.linalg.eigh(gram)
    top = v[:, np.argsort(-w)[:dims]]
    signs = np.sign(top[np.abs(top).argmax(axis=0), np.arange(top.shape[1])])
    out: np.ndarray = (top * np.where(signs == 0, 1.0, signs)[None, :]).astype(np.float32)
    return out


def query_side(weights: dict[str, Any], raw: np.ndarray, mode: str,
               caption_weight: float) -> np.ndarray:
    """Encoded queries (n, d_text) as rows of the `mode` search space (before projection)."""
    if mode == "caption":
        return raw
    joint = project_numpy(weights, "text", raw)
    if mode == "joint":
        return joint
    w = caption_weight
    return np.hstack([np.sqrt(1 - w) * joint, np.sqrt(w) * raw]).astype(np.float32)


def _projection_key(vectors: np.ndarray, weights: dict[str, Any], cfg: TextConfig) -> str:
    h = hashlib.sha256(f"{cfg.search_dims} {cfg.seed} {cfg.retrieval} "
                       f"{cfg.caption_weight}".encode())
    h.update(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    for name in sorted(weights):
        h.update(name.encode() + np.ascontiguousarray(weights[name]).tobytes())
    return h.hexdigest()[:24]


def _fit_projection(vectors: np.ndarray, weights: dict[str, Any], captions_x: np.ndarray,
                    cfg: TextConfig) -> np.ndarray:
    return search_projection(
        vectors, lambda rows: query_side(weights, captions_x[rows], cfg.retrieval,
                                         cfg.caption_weight), cfg.search_dims, seed=cfg.seed)


def stored_projection(text_dir: Path, vectors: np.ndarray, weights: dict[str, Any],
                      captions_x: np.ndarray, cfg: TextConfig) -> np.ndarray | None:
    """The search_dims projection of the space `vectors` (None: the full space): the one
    stored in TEXT_DIR/projection.npz when it was fitted on exactly these rows, weights and
    settings, else fitted now (an eigendecomposition: seconds on a busy machine)."""
    if not 0 < cfg.search_dims < vectors.shape[1]:
        return None
    key = _projection_key(vectors, weights, cfg)
    try:
        with np.load(Path(text_dir) / PROJECTION_FILE, allow_pickle=False) as z:
            if str(z["key"]) == key:
                return np.asarray(z["projection"], dtype=np.float32)
    except (OSError, KeyError, ValueError):
        pass
    return _fit_projection(vectors, weights, captions_x, cfg)


def store_projection(text_dir: Path, vectors: np.ndarray, weights: dict[str, Any],
                     captions_x: np.ndarray, cfg: TextConfig) -> None:
    """Fit the search_dims projection of `vectors` and store it for `stored_projection`."""
    if not 0 < cfg.search_dims < vectors.shape[1]:
        return
    buf = io.BytesIO()
    np.savez(buf, projection=_fit_projection(vectors, weights, captions_x, cfg),
             key=np.array(_projection_key(vectors, weights, cfg)))
    atomic_write_bytes(Path(text_dir) / PROJECTION_FILE, buf.getvalue())


def vectors_hash(run: Run) -> str:
    h = hashlib.sha256(np.ascontiguousarray(run.vectors).tobytes())
    h.update("\n".join(run.ids).encode())
    return h.hexdigest()[:16]


def stored_vectors_hash(run: Run) -> str:
    """`vectors_hash(run)`, remembered in the data directory's cache under the run's files'
    paths, sizes and times (hashing 170 MB of a whole-catalogue run took 0.25 s of every
    one-shot `search`); a run loaded from elsewhere than its files is hashed."""
    from dynplayer.cache import file_stamp, key_of, remembered

    try:
        parts = ["vectors-hash-1", *file_stamp([Path(run.path) / "vectors.npy",
                                                Path(run.path) / "ids.txt"])]
    except OSError:
        return vectors_hash(run)
    return remembered("vectors-hash", key_of(parts), lambda: vectors_hash(run),
                      lambda v: v.encode(), lambda b: b.decode("ascii"))
