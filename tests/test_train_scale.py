"""Training at scale: the sampled set-to-track candidates and their inclusion probabilities,
the automatic choice of softmax, and the epoch budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dynplayer.config import to_dict
from dynplayer.data.corpus import Corpus
from dynplayer.data.synthetic import planted_groups
from dynplayer.train.config import TrainConfig
from dynplayer.train.loop import train_run
from dynplayer.train.objectives import sampled_softmax
from dynplayer.train.sampling import build_training_data, set_batch, set_candidates
from dynplayer.train.schedule import epoch_cap, members


def test_candidates_hold_every_target_and_sorted_distinct(synthetic_corpus: Corpus) -> None:
    data = build_training_data(synthetic_corpus, neighbours=False)
    rng = np.random.default_rng(0)
    batch = set_batch(data, np.arange(64), rng, 0.2, 0.8)
    cand = set_candidates(data, batch, rng, n_negatives=50)
    assert np.all(np.diff(cand.items) > 0)
    pos, found = cand.positions(batch.target_cols)
    assert found.all() and np.array_equal(cand.items[pos], batch.target_cols)
    assert cand.items.shape[0] >= np.unique(batch.target_cols).shape[0]
    assert np.all(cand.logq <= 0) and np.all(np.isfinite(cand.logq))
    # An item that is no candidate is reported as not found.
    missing = np.setdiff1d(np.arange(data.n_items), cand.items)[:5]
    assert not cand.positions(missing)[1].any()


def test_candidates_with_negatives_covering_the_vocabulary_are_the_full_softmax(
        synthetic_corpus: Corpus) -> None:
    data = build_training_data(synthetic_corpus, neighbours=False)
    rng = np.random.default_rng(1)
    batch = set_batch(data, np.arange(32), rng, 0.2, 0.8)
    cand = set_candidates(data, batch, rng, n_negatives=data.n_items + 10)
    assert np.array_equal(cand.items, np.arange(data.n_items))
    assert np.all(cand.logq == 0)


def test_inclusion_probability_matches_the_frequency_over_draws(
        synthetic_corpus: Corpus) -> None:
    """pi_j (what the log-Q correction subtracts) against how often item j is a candidate over
    400 independent batches: close for items of every popularity."""
    data = build_training_data(synthetic_corpus, neighbours=False)
    rng = np.random.default_rng(2)
    hits = np.zeros(data.n_items)
    pi_sum = np.zeros(data.n_items)
    draws = 400
    for _ in range(draws):
        playlists = rng.choice(data.n_playlists, 16, replace=False)
        batch = set_batch(data, playlists, rng, 0.2, 0.8)
        cand = set_candidates(data, batch, rng, n_negatives=40)
        hits[cand.items] += 1
        pi = np.full(data.n_items, np.nan)
        pi[cand.items] = np.exp(cand.logq)
        # pi of a non-candidate is the same formula; recompute it for every item
        t = batch.target_cols.shape[0]
        assert data.item_set_share is not None
        pi_all = 1 - (1 - 40 / data.n_items) * np.exp(-t * data.item_set_share)
        np.testing.assert_allclose(pi[cand.items], pi_all[cand.items], rtol=1e-5)
        pi_sum += pi_all
    freq, expected = hits / draws, pi_sum / draws
    popular = np.argsort(-data.item_set_share)[:20]
    rare = np.argsort(data.item_set_share)[:100]
    assert np.abs(freq[popular] - expected[popular]).max() < 0.15
    assert abs(freq[rare].mean() - expected[rare].mean()) < 0.05
    # Over all items the calibration error is small against the spread of pi.
    assert np.abs(freq - expected).mean() < 0.05 < expected.std() * 3


def test_auto_softmax_and_epoch_budget() -> None:
    cfg = TrainConfig()
    assert cfg.set_softmax == "auto"
    assert not sampled_softmax(cfg, 10_087)  # the MPD slices stay on the full softmax
    assert sampled_softmax(cfg, 28_000)  # MPD-shaped 250k (5% of 565k catalogue tracks)
    assert sampled_softmax(replace(cfg, set_softmax="sampled"), 100)
    assert not sampled_softmax(replace(cfg, set_softmax="full"), 10**7)
    assert epoch_cap(cfg, 5_303) == cfg.epochs  # MPD slices: unchanged
    assert epoch_cap(cfg, 187_500) == 5  # 250k playlists, 75% training: floor(1M / 187.5k)
    assert epoch_cap(cfg, 750_000) == 1  # 1M playlists: one epoch
    assert epoch_cap(cfg, 10**8) == cfg.min_epochs == 1
    assert epoch_cap(replace(cfg, min_epochs=2), 750_000) == 2
    assert epoch_cap(replace(cfg, playlist_budget=0), 10**8) == cfg.epochs
    # the ensemble: two members on the slices, one from `ensemble_below` training playlists
    assert members(cfg, 5_303) == cfg.seeds == 2
    assert members(cfg, 99_999) == 2
    assert members(cfg, 100_000) == members(cfg, 750_000) == 1
    assert members(replace(cfg, ensemble_below=0), 750_000) == 2
    assert members(replace(cfg, seeds=3, ensemble_below=10**6), 750_000) == 3


def _centroid_precision(vectors: np.ndarray, labels: np.ndarray) -> float:
    """Mean over groups of the share of the 10 tracks nearest the group's mean in the group."""
    out = []
    for g in np.unique(labels):
        q = vectors[labels == g].mean(0)
        top = np.argsort(-(vectors @ q), kind="stable")[:10]
        out.append((labels[top] == g).mean())
    return float(np.mean(out))


def test_sampled_set_objective_recovers_planted_groups_like_the_full_one(
        tmp_path: Path, synthetic_corpus_dir: Path, synthetic_corpus: Corpus) -> None:
    """Forced on a 400-track vocabulary with 60 negatives (far fewer candidates than items),
    the sampled objective finds the planted (genre, mood) cells and validation recall near the
    full softmax's."""
    base = TrainConfig(objective="set", init="random", dim=32, batch_size=32, epochs=12,
                       threads=1, seeds=1, seed=3, set_negatives=60)
    train_run(synthetic_corpus_dir, tmp_path / "full", replace(base, set_softmax="full"),
              progress=False)
    sampled = train_run(synthetic_corpus_dir, tmp_path / "sampled",
                        replace(base, set_softmax="sampled"), progress=False)
    cell = planted_groups(synthetic_corpus)[synthetic_corpus.vocab()]
    assert _centroid_precision(sampled.vectors, cell) >= 0.9
    m_full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    m_s = json.loads((tmp_path / "sampled" / "metrics.json").read_text())
    assert m_s["set_softmax"] == "sampled" and m_full["set_softmax"] == "full"
    assert m_s["val_recall@10"] >= 0.9 * m_full["val_recall@10"]


SCRIPT = """
import json, sys
from pathlib import Path
from dynplayer.config import from_dict
from dynplayer.train.config import TrainConfig
from dynplayer.train.loop import train_run
cfg = from_dict(TrainConfig, json.loads(sys.argv[3]))
train_run(Path(sys.argv[1]), Path(sys.argv[2]), cfg, progress=False)
"""


@pytest.mark.timeout(300)
def test_two_processes_follow_one_with_the_sampled_objective(
        tmp_path: Path, synthetic_corpus_dir: Path) -> None:
    """torchrun, 2 CPU processes (gloo): the candidates are drawn from the whole batch before
    the ranks split it, so the losses per epoch match the single process."""
    cfg = TrainConfig(objective="mix", init="svd", dim=32, batch_size=64, epochs=3, threads=1,
                      seed=5, pairwise_batch=256, seeds=1, device="cpu",
                      set_softmax="sampled", set_negatives=100)
    single = train_run(synthetic_corpus_dir, tmp_path / "one", cfg, progress=False)
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(synthetic_corpus_dir), str(tmp_path / "two"),
           json.dumps(to_dict(cfg))]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=280)
    assert out.returncode == 0, out.stderr[-2000:]
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two["world_size"] == 2 and two["set_softmax"] == "sampled"
    loss_one = np.array([h["loss"] for h in one["history"]])
    loss_two = np.array([h["loss"] for h in two["history"]])
    assert loss_one.shape == loss_two.shape == (3,)
    np.testing.assert_allclose(loss_two, loss_one, rtol=1e-3)
    cos = (np.load(tmp_path / "two" / "vectors.npy") * single.vectors).sum(1)
    assert np.median(cos) > 0.99
