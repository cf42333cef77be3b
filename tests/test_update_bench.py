"""The pieces of `dynplayer bench update`: the release hold-back, and the fold-in rule chosen
on validation (on the planted synthetic corpus; the MPD figures are in docs/experiments.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dynplayer.config import DataConfig
from dynplayer.data.corpus import TRAIN, save_corpus
from dynplayer.data.prepare import derive
from dynplayer.data.synthetic import SyntheticSpec, generate, write_jsonl
from dynplayer.update.bench import _only_new
from dynplayer.update.holdback import hold_back_release, subset
from svd_vectors import svd_run


@pytest.fixture(scope="module")
def corpus() -> Any:
    c = generate(SyntheticSpec(n_playlists=900, n_tracks=400, seed=5))
    derive(c, DataConfig(select="top_share", select_fraction=0.5, seed=5))
    return c


def test_release_hold_back_takes_every_training_playlist_of_a_release(corpus: Any) -> None:
    kept, back, releases = hold_back_release(corpus, 0.2, seed=1, min_playlists=3,
                                             max_playlists=60)
    train = np.flatnonzero(corpus.split == TRAIN)
    assert releases.size and set(back.tolist()) <= set(train.tolist())
    assert back.size >= 0.2 * train.size  # the share is reached (and barely passed)
    assert np.array_equal(np.sort(np.concatenate([kept, back])), np.arange(corpus.n_playlists))
    assert corpus.selected[releases].all()
    # No kept training playlist holds a release: the base has never seen one.
    kept_train = np.isin(corpus.occ_playlist, kept) & (corpus.split[corpus.occ_playlist] == TRAIN)
    assert not np.isin(corpus.occ_track[kept_train], releases).any()
    # Dropped from the base corpus, the releases are tracks only the update brings, and the
    # full corpus' test playlists still hold them as targets.
    base = subset(corpus, kept, drop_tracks=releases)
    assert not set(corpus.track_ids[t] for t in releases) & set(base.track_ids)
    only_new = _only_new(corpus, base, back)
    assert only_new[releases].all()
    again = hold_back_release(corpus, 0.2, seed=1, min_playlists=3, max_playlists=60)
    assert np.array_equal(again[2], releases)  # seeded


def test_choose_rule_updates_a_copy_per_rule_and_picks_the_best_mean(
        corpus: Any, tmp_path: Path) -> None:
    from dynplayer.update.choose import choose_rule
    from dynplayer.update.holdback import hold_back

    kept, back = hold_back(corpus, 0.25, seed=2)
    save_corpus(subset(corpus, kept), tmp_path / "base-corpus")
    save_corpus(corpus, tmp_path / "full-corpus")
    write_jsonl(subset(corpus, back, derive=False), tmp_path / "u.jsonl",
                tmp_path / "u.tracks.jsonl")
    # SVD vectors stand in for the track model: this test is about the rule's mechanics.
    base, full = tmp_path / "base", tmp_path / "retrain"
    svd_run(tmp_path / "base-corpus", base, dim=32)
    svd_run(tmp_path / "full-corpus", full, dim=32)
    from dynplayer.text.model import TextConfig
    from dynplayer.text.train import train_text

    for run in (base, full):
        train_text(run, TextConfig(encoder="ngram", epochs=2, batch_size=64, embed_dim=16,
                                   hidden=32))
    grid = (("any", 3, 1.0), ("selected", 2, 0.75))
    out = choose_rule(corpus, base, full, [tmp_path / "u.jsonl"], tmp_path / "choose",
                      np.zeros(corpus.n_tracks, dtype=bool), grid=grid)
    assert set(out["rules"]) == {"any, N = 3, calibrate 1", "selected, N = 2, calibrate 0.75"}
    for rule in out["rules"].values():
        assert rule["folded"] > 0 and 0 < rule["continuation_ratio"] < 2
    best = max(out["rules"].values(),
               key=lambda r: r["continuation_ratio"] + r["keyword_ratio"])
    assert out["chosen"]["eligible"] == best["eligible"]
    assert "chosen (the highest mean of the two ratios" in out["table"]
    assert all(r["shows_enough"] for r in out["rules"].values())  # the retrain shows none
    # The base run itself is untouched: the rules updated copies.
    assert not (base / "manifest.json").exists() or "updates" not in (base / "manifest.json"
                                                                       ).read_text()
