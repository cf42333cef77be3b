"""The text stage at scale: distinct captions encoded once, and validation Recall@10 scored in
chunks (bounded memory) equal to the whole-matrix reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dynplayer.data.corpus import Corpus
from dynplayer.text.encoders import NgramEncoder, encode_cached, encode_distinct


class CountingEncoder:
    """The n-gram encoder, counting the texts it is asked to encode."""

    name = "counting"

    def __init__(self, inner: NgramEncoder) -> None:
        self.inner, self.dim, self.seen = inner, inner.dim, 0

    def encode(self, texts: list[str]) -> np.ndarray:
        self.seen += len(texts)
        return self.inner.encode(texts)

    def fingerprint(self) -> str:
        return "counting-" + self.inner.fingerprint()


def test_distinct_captions_are_encoded_once(synthetic_corpus: Corpus, tmp_path: object) -> None:
    captions = synthetic_corpus.captions()
    enc = CountingEncoder(NgramEncoder(dim=32).fit(captions))
    direct = enc.inner.encode(captions)
    out = encode_distinct(enc, captions)  # type: ignore[arg-type]
    assert enc.seen == len(set(captions)) < len(captions)
    np.testing.assert_allclose(out, direct, atol=1e-6)
    cached = encode_cached(enc, captions, tmp_path)  # type: ignore[arg-type]
    np.testing.assert_allclose(cached, direct, atol=1e-6)


def test_chunked_validation_recall_matches_the_whole_matrix() -> None:
    import dynplayer.text.train as tt

    g = torch.Generator().manual_seed(0)
    t = torch.nn.functional.normalize(torch.randn(300, 8, generator=g), dim=1)
    p = torch.nn.functional.normalize(t + 0.8 * torch.randn(300, 8, generator=g), dim=1)
    sims = t @ p.T
    reference = float(((sims > sims.diagonal()[:, None]).sum(1) < 10).float().mean())

    class Fixed:
        def eval(self) -> None: ...
        def encode_text(self, x: torch.Tensor) -> torch.Tensor: return t
        def encode_playlist(self, x: torch.Tensor) -> torch.Tensor: return p

    class Data:
        def track_mean(self, rows: np.ndarray) -> np.ndarray: return np.zeros((300, 1), np.float32)

    got = tt._val_recall(Fixed(), Data(), np.zeros((300, 1), np.float32),  # type: ignore[arg-type]
                         np.arange(300), chunk=64)
    assert 0.05 < reference < 0.95
    assert got == pytest.approx(reference, abs=1e-6)


def test_text_epochs_follow_the_playlist_budget() -> None:
    """The fit's epochs are capped by `playlist_budget` as the track model's are: the MPD
    slices keep `epochs`, 1M playlists get one; a bad value is a one-line config error."""
    from dataclasses import replace

    from dynplayer.errors import ConfigError
    from dynplayer.text.config import TextConfig, text_epochs

    cfg = TextConfig()
    assert text_epochs(cfg, 5_303) == cfg.epochs == 10
    assert text_epochs(cfg, 187_500) == 5
    assert text_epochs(cfg, 750_000) == text_epochs(cfg, 10**8) == 1
    assert text_epochs(replace(cfg, playlist_budget=0), 10**8) == 10
    with pytest.raises(ConfigError, match="'playlist_budget': must be >= 0"):
        text_epochs(replace(cfg, playlist_budget=-1), 10)
    with pytest.raises(ConfigError, match="'epochs': must be >= 1"):
        text_epochs(replace(cfg, epochs=0), 10)


def test_fit_trains_the_budgeted_epochs(track_run_dir: object) -> None:
    """A budget below the training playlists gives a one-epoch fit (its history says so)."""
    from dataclasses import replace

    from dynplayer.data.corpus import TRAIN
    from dynplayer.run import load_run
    from dynplayer.text.config import TextConfig
    from dynplayer.text.train import fit_model, load_text_data

    data = load_text_data(load_run(track_run_dir))  # type: ignore[arg-type]
    rows = data.usable(TRAIN)
    captions = [data.captions[p] for p in rows]
    x = NgramEncoder(dim=32).fit(captions).encode(captions)
    cfg = replace(TextConfig(), hidden=32, embed_dim=16, epochs=3)
    _, whole = fit_model(data, x, cfg)
    _, budgeted = fit_model(data, x, replace(cfg, playlist_budget=rows.shape[0] - 1))
    assert [h["epoch"] for h in whole["history"]] == [1, 2, 3]
    assert [h["epoch"] for h in budgeted["history"]] == [1]


def test_train_text_refuses_a_bad_budget_in_one_line(track_run_dir: object,
                                                     tmp_path: object) -> None:
    """`train-text --set playlist_budget=-1` is a one-line error before anything is loaded."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "dynplayer.cli", "train-text",
                          str(track_run_dir), "--set", "playlist_budget=-1"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().count("\n") == 0
    assert "'playlist_budget': must be >= 0" in out.stderr
