"""The skeleton: the CLI answers, a synthetic corpus round-trips through Parquet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from dynplayer.data.corpus import Corpus, load_corpus


def test_cli_help() -> None:
    out = subprocess.run([sys.executable, "-m", "dynplayer.cli", "--help"], capture_output=True,
                         text=True, check=True)
    assert "prepare" in out.stdout and "stats" in out.stdout


def test_corpus_round_trip(synthetic_corpus: Corpus, synthetic_corpus_dir: Path) -> None:
    loaded = load_corpus(synthetic_corpus_dir)
    assert loaded.pids == synthetic_corpus.pids
    assert np.array_equal(loaded.occ_track, synthetic_corpus.occ_track)
    assert loaded.split is not None and synthetic_corpus.split is not None
    assert np.array_equal(loaded.split, synthetic_corpus.split)
    assert loaded.heldout is not None and synthetic_corpus.heldout is not None
    assert np.array_equal(loaded.heldout, synthetic_corpus.heldout)
    assert loaded.caption(0) == synthetic_corpus.caption(0)
