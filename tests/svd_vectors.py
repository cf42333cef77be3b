"""Test helper: quick track vectors (truncated SVD of the training playlist x track matrix) in the
RUN_DIR layout, so text-stage tests need not train a track model first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from dynplayer.data.corpus import TRAIN, load_corpus
from dynplayer.run import atomic_write_json, save_vectors


def svd_run(corpus_dir: Path, run_dir: Path, dim: int = 128, seed: int = 0) -> None:
    """Track vectors = right singular vectors scaled by sqrt(singular value), cosine-ready."""
    corpus = load_corpus(corpus_dir)
    vocab = corpus.vocab()
    x = corpus.interaction_matrix(corpus.playlists_in(TRAIN), vocab=vocab)
    # Down-weight long playlists so a few huge ones do not own the leading components.
    lengths = np.maximum(np.asarray(x.sum(axis=1)).ravel(), 1.0)
    x = sp.csr_matrix(sp.diags(1.0 / np.sqrt(lengths)) @ x)
    k = int(min(dim, min(x.shape) - 1))
    v0 = np.random.default_rng(seed).standard_normal(min(x.shape))
    _, s, vt = svds(x.astype(np.float64), k=k, v0=v0)
    vectors = (vt.T * np.sqrt(s)[None, :]).astype(np.float32)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    save_vectors(Path(run_dir), vectors, [corpus.track_ids[t] for t in vocab])
    atomic_write_json(Path(run_dir) / "config.json", {
        "model": "standin-svd", "dim": k, "corpus_dir": str(Path(corpus_dir).resolve()),
        "corpus_hash": corpus.manifest.get("content_hash")})
