"""Shared fixtures: a small planted synthetic corpus, and the real data directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynplayer.config import DataConfig
from dynplayer.data.corpus import Corpus, save_corpus
from dynplayer.data.prepare import derive
from dynplayer.data.synthetic import SyntheticSpec, generate

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data`; tests that need it skip with a clear reason when it is absent."""
    if not (SHARED_DATA / "mpd").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


def make_synthetic(n_playlists: int = 600, n_tracks: int = 400, seed: int = 0,
                   **data_overrides: object) -> Corpus:
    corpus = generate(SyntheticSpec(n_playlists=n_playlists, n_tracks=n_tracks, seed=seed))
    cfg = DataConfig(select_fraction=1.0, seed=seed)
    for k, v in data_overrides.items():
        cfg = cfg.__class__(**{**cfg.__dict__, k: v})
    derive(corpus, cfg)
    return corpus


@pytest.fixture(scope="session")
def synthetic_corpus() -> Corpus:
    """600 planted playlists over 400 tracks (8 genres x 4 moods), all tracks selected."""
    return make_synthetic()


@pytest.fixture(scope="session")
def synthetic_corpus_dir(tmp_path_factory: pytest.TempPathFactory,
                         synthetic_corpus: Corpus) -> Path:
    out = tmp_path_factory.mktemp("corpus") / "synthetic"
    save_corpus(synthetic_corpus, out)
    return out
