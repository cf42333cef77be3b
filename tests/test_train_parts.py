"""Shared artist / album parts of the track vectors (model/track.py, RUN_DIR/parts/) and
prefix contexts of the set term (train/sampling.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dynplayer.data.corpus import Corpus
from dynplayer.model.track import TrackEncoder
from dynplayer.run import l2_normalize, load_parts, load_run, save_parts
from dynplayer.train.config import TrainConfig
from dynplayer.train.loop import train_run
from dynplayer.train.sampling import build_training_data, set_batch


def test_a_track_is_its_own_row_plus_its_parts() -> None:
    enc = TrackEncoder(4, 3, parts=[np.array([0, 0, 1, -1])])
    with torch.no_grad():
        enc.embedding.weight.copy_(torch.eye(4, 3))
        enc.parts[0].weight[0] = torch.tensor([0.0, 0.0, 2.0])
        enc.parts[0].weight[1] = torch.tensor([1.0, 1.0, 0.0])
        table = enc.table().numpy()
        rows = enc(torch.tensor([0, 3])).numpy()
    expected = l2_normalize(np.array([[1, 0, 2], [0, 1, 2], [1, 1, 1], [0, 0, 0]],
                                     dtype=np.float32))
    # track 3 has no artist (-1): its own row only (all zeros here)
    np.testing.assert_allclose(table[:3], expected[:3], atol=1e-6)
    np.testing.assert_allclose(rows[0], table[0], atol=1e-6)
    parts = enc.part_table(0).detach().numpy()
    assert parts.shape == (2, 3)  # one row per artist; the unknown row is not part of it
    np.testing.assert_allclose(parts[0], [0, 0, 1], atol=1e-6)
    # the unknown row never learns
    enc.table().sum().backward()
    assert enc.parts[0].weight.grad is not None
    assert float(enc.parts[0].weight.grad[2].abs().sum()) == 0.0


def test_parts_round_trip_and_refuse_a_mismatch(tmp_path: Path) -> None:
    v = np.arange(6, dtype=np.float32).reshape(2, 3) + 1
    save_parts(tmp_path, {"artist": (v, ["A", "B"])})
    back = load_parts(tmp_path)
    np.testing.assert_allclose(back["artist"][0], l2_normalize(v), atol=1e-6)
    assert back["artist"][1] == ["A", "B"]
    assert load_parts(tmp_path / "none") == {}
    with pytest.raises(ValueError):
        save_parts(tmp_path, {"artist": (v, ["A"])})


def test_a_run_with_shared_artists_writes_them_and_they_sit_with_their_tracks(
        tmp_path: Path, synthetic_corpus_dir: Path, synthetic_corpus: Corpus) -> None:
    cfg = TrainConfig(objective="set", init="random", dim=16, batch_size=64, epochs=3,
                      threads=1, seeds=1, shared="artist")
    train_run(synthetic_corpus_dir, tmp_path / "run", cfg, progress=False)
    run = load_run(tmp_path / "run")
    vectors, names = load_parts(tmp_path / "run")["artist"]
    corpus = synthetic_corpus
    artist_of = dict(zip(corpus.track_ids, corpus.artists, strict=True))
    assert set(names) == {artist_of[t] for t in run.ids}
    # each artist's row is nearer its own tracks' centroid than most other artists' rows
    v = l2_normalize(run.vectors)
    ranks = []
    for i, a in enumerate(names):
        own = [r for r, t in enumerate(run.ids) if artist_of[t] == a]
        centroid = l2_normalize(v[own].mean(axis=0, keepdims=True))[0]
        sims = vectors @ centroid
        ranks.append(int((sims > sims[i]).sum()))
    assert np.median(ranks) < 0.1 * len(names), ranks


def test_prefix_contexts_are_a_playlists_first_tracks(synthetic_corpus: Corpus) -> None:
    data = build_training_data(synthetic_corpus)
    rng = np.random.default_rng(0)
    playlists = np.arange(20)
    b = set_batch(data, playlists, rng, 0.3, 0.3, prefix=1.0)
    for i, p in enumerate(playlists):
        seq = data.seq_cols[data.seq_indptr[p]:data.seq_indptr[p + 1]]
        first = list(dict.fromkeys(seq.tolist()))
        ctx = sorted(b.context_cols[b.context_rows == i].tolist())
        assert ctx == sorted(first[:len(ctx)])
    # prefix 0 draws exactly what it drew before the option existed
    a0 = set_batch(data, playlists, np.random.default_rng(1), 0.2, 0.8)
    b0 = set_batch(data, playlists, np.random.default_rng(1), 0.2, 0.8, prefix=0.0)
    assert np.array_equal(a0.context_cols, b0.context_cols)
