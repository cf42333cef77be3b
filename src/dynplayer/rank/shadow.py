"""The shadow embedding of `train-ranker`: the run's track model trained again without the
carved-out playlists the ranker learns from, so their features are computed as a validation or
test playlist's are, by a model that never saw them."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from dynplayer.data.corpus import VAL, Corpus
from dynplayer.errors import ConfigError
from dynplayer.rank.stage import source_playlists
from dynplayer.run import Run

CACHE_DIR = "ranker-cache"


def shadow_vectors(run: Run, corpus: Corpus, vocab: np.ndarray, carve: np.ndarray,
                   say: Callable[[str], None]) -> np.ndarray:
    """Track vectors (run row order) trained like the run, without the `carve` playlists.

    A copy of the corpus with the carve-out (and any playlist the run did not learn from)
    marked as test is trained with the run's own config; cached in RUN_DIR/ranker-cache/ under
    a key of the run's vectors and the carve-out.
    """
    from dynplayer.data.corpus import TEST, TRAIN, save_corpus
    from dynplayer.run import load_run as load
    from dynplayer.text.space import vectors_hash
    from dynplayer.train.loop import config_of_run, train_run

    if not isinstance(run.config.get("train"), dict):
        raise ConfigError(f"{run.path}: the run has no training config (not made by `dynplayer "
                          "train`), so train-ranker cannot train the shadow embedding it needs")
    key = hashlib.sha256((vectors_hash(run) + ",".join(map(str, carve.tolist()))).encode())
    out = run.path / CACHE_DIR / f"shadow-{key.hexdigest()[:12]}"
    if not (out / "vectors.npy").exists():
        assert corpus.split is not None
        split = np.where(corpus.split == VAL, VAL, TEST).astype(np.int8)
        split[source_playlists(corpus, run)] = TRAIN
        split[carve] = TEST
        say(f"training the shadow embedding without the {carve.shape[0]:,} example playlists "
            f"(cached in {out})")
        corpus_copy = out.parent / f".{out.name}-corpus"
        save_corpus(replace(corpus, split=split), corpus_copy)
        try:
            train_run(corpus_copy, out, config_of_run(run), full=False, progress=False)
        finally:
            shutil.rmtree(corpus_copy, ignore_errors=True)
        (out / "checkpoint.pt").unlink(missing_ok=True)
    shadow = load(out)
    row_of = shadow.index_of()
    return shadow.vectors[np.array([row_of[t] for t in run.ids], dtype=np.int64)]
