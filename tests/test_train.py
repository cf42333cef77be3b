"""Training: planted structure is recovered, resume is exact, the run and export layouts hold,
and user mistakes give one clear error."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from dynplayer.data.corpus import Corpus, load_corpus, save_corpus
from dynplayer.data.synthetic import SyntheticSpec, generate, planted_groups
from dynplayer.errors import ArtifactError, ConfigError, QueryError
from dynplayer.run import load_run
from dynplayer.train.artifacts import export_run, similar_tracks
from dynplayer.train.config import TrainConfig, load_train_config
from dynplayer.train.loop import train_run
from dynplayer.train.sampling import build_training_data, pair_batch, set_batch
from dynplayer.train.schedule import lr_at

TINY = TrainConfig(objective="set", init="random", dim=32, batch_size=64, epochs=4, threads=1,
                   seeds=1, seed=3)


@pytest.fixture(scope="module")
def set_run(tmp_path_factory: pytest.TempPathFactory, synthetic_corpus_dir: Path) -> Path:
    """About 300 steps of the default (set-to-track) objective on the planted corpus."""
    out = tmp_path_factory.mktemp("runs") / "set"
    train_run(synthetic_corpus_dir, out, replace(TINY, epochs=40), progress=False)
    return out


def _centroid_precision(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per group: share of the 10 tracks nearest to the group's mean vector in the group."""
    out = []
    for g in np.unique(labels):
        q = vectors[labels == g].mean(0)
        top = np.argsort(-(vectors @ q), kind="stable")[:10]
        out.append((labels[top] == g).mean())
    return np.asarray(out)


def test_set_objective_recovers_planted_groups(set_run: Path,
                                               synthetic_corpus: Corpus) -> None:
    run = load_run(set_run)
    vocab = synthetic_corpus.vocab()
    cell = planted_groups(synthetic_corpus)[vocab]
    genre = np.asarray(synthetic_corpus.manifest["synthetic"]["track_genre"])[vocab]
    # Recall@10 of each planted (genre, mood) group from its centroid: near 1 (chance 1/32).
    assert _centroid_precision(run.vectors, cell).mean() >= 0.95
    assert _centroid_precision(run.vectors, genre).min() == 1.0
    # Nearest neighbours of the frequent tracks share their genre (chance 1/8).
    s = run.vectors @ run.vectors.T
    np.fill_diagonal(s, -np.inf)
    top = np.argsort(-s, axis=1)[:, :10]
    occ = synthetic_corpus.occurrence_count[vocab]
    frequent = occ >= np.median(occ)
    assert (genre[top] == genre[:, None])[frequent].mean() >= 0.8
    metrics = json.loads((set_run / "metrics.json").read_text())
    assert metrics["val_recall@10"] > 0.5
    assert metrics["history"][-1]["loss"] < metrics["history"][0]["loss"] - 1.0


def test_pairwise_objective_recovers_planted_genres(tmp_path: Path, synthetic_corpus_dir: Path,
                                                    synthetic_corpus: Corpus) -> None:
    cfg = replace(TINY, objective="pairwise", batch_size=512, epochs=4, uniformity=0.5,
                  temperature=0.1)
    run = train_run(synthetic_corpus_dir, tmp_path / "pw", cfg, progress=False)
    genre = np.asarray(synthetic_corpus.manifest["synthetic"]["track_genre"])[
        synthetic_corpus.vocab()]
    assert _centroid_precision(run.vectors, genre).min() == 1.0
    hist = json.loads((tmp_path / "pw" / "metrics.json").read_text())["history"]
    assert {"info_nce", "uniformity", "loss"} <= set(hist[0])


def test_mix_objective_from_svd_init_recovers_planted_groups(
        tmp_path: Path, synthetic_corpus_dir: Path, synthetic_corpus: Corpus) -> None:
    cfg = replace(TINY, objective="mix", init="svd", epochs=6, pairwise_batch=256)
    run = train_run(synthetic_corpus_dir, tmp_path / "mix", cfg, progress=False)
    vocab = synthetic_corpus.vocab()
    cell = planted_groups(synthetic_corpus)[vocab]
    assert _centroid_precision(run.vectors, cell).mean() >= 0.95
    hist = json.loads((tmp_path / "mix" / "metrics.json").read_text())["history"]
    assert {"set_nce", "info_nce", "loss"} <= set(hist[0])
    assert hist[0]["loss"] == pytest.approx(hist[0]["set_nce"] + 0.5 * hist[0]["info_nce"],
                                            rel=1e-6)


def test_svd_init_is_normalised_and_already_clusters(synthetic_corpus: Corpus) -> None:
    from dynplayer.train.initialisation import svd_init

    data = build_training_data(synthetic_corpus, neighbours=False)
    v = svd_init(data, 32, seed=0)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    genre = np.asarray(synthetic_corpus.manifest["synthetic"]["track_genre"])[
        synthetic_corpus.vocab()]
    assert _centroid_precision(v, genre).mean() >= 0.9
    np.testing.assert_array_equal(v, svd_init(data, 32, seed=0))


def test_svd_init_matches_the_textbook_randomized_svd(synthetic_corpus: Corpus) -> None:
    """The lean float32 form (QR of the small side, no full SVD of width x items) gives the
    item geometry of the textbook randomized SVD on the same random start: the same item x
    item cosines (factors equal up to the signs of their columns)."""
    from dynplayer.train.initialisation import svd_init

    data = build_training_data(synthetic_corpus, neighbours=False)
    rows = np.repeat(np.arange(data.n_playlists), np.diff(data.set_indptr))
    pop = np.bincount(data.set_cols, minlength=data.n_items).astype(np.float64)
    x = sp.csr_matrix(((1 / np.sqrt(np.maximum(pop, 1)))[data.set_cols], (rows, data.set_cols)),
                      shape=(data.n_playlists, data.n_items))
    rng = np.random.default_rng(0)
    k, width = 32, 42
    q, _ = np.linalg.qr(x @ rng.standard_normal((data.n_items, width)))
    for _ in range(4):
        q, _ = np.linalg.qr(x @ np.linalg.qr(x.T @ q)[0])
    _, s, vt = np.linalg.svd((x.T @ q).T, full_matrices=False)
    want = vt[:k].T * np.sqrt(s[:k])
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    got = svd_init(data, k, seed=0)
    np.testing.assert_allclose(got @ got.T, want @ want.T, atol=2e-4)


def test_run_directory_contract(set_run: Path, synthetic_corpus_dir: Path,
                                synthetic_corpus: Corpus) -> None:
    run = load_run(set_run)
    assert run.vectors.dtype == np.float32
    assert run.vectors.shape == (len(synthetic_corpus.vocab()), 32)
    np.testing.assert_allclose(np.linalg.norm(run.vectors, axis=1), 1.0, atol=1e-5)
    assert run.ids == [synthetic_corpus.track_ids[t] for t in synthetic_corpus.vocab()]
    assert run.corpus_dir == synthetic_corpus_dir.resolve()
    assert run.config["corpus_hash"] == load_corpus(synthetic_corpus_dir).manifest["content_hash"]
    assert run.config["full"] is False
    assert run.config["train"]["objective"] == "set" and run.config["train"]["dim"] == 32
    metrics = json.loads((set_run / "metrics.json").read_text())
    best = max(h["val_recall@10"] for h in metrics["history"])
    assert metrics["val_recall@10"] == pytest.approx(best)  # the best epoch is the one kept
    assert (set_run / "checkpoint.pt").exists()


def test_export_layout(set_run: Path, tmp_path: Path) -> None:
    run = load_run(set_run)
    export_run(set_run, tmp_path / "plain")
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == ["ids.txt", "vectors.npy"]
    vec = np.load(tmp_path / "plain" / "vectors.npy", allow_pickle=False)
    assert vec.dtype == np.float32 and vec.shape == run.vectors.shape
    ids = (tmp_path / "plain" / "ids.txt").read_text().splitlines()
    assert ids == run.ids
    export_run(set_run, tmp_path / "proj", projector=True)
    names = sorted(p.name for p in (tmp_path / "proj").iterdir())
    assert names == ["ids.txt", "metadata.tsv", "vectors.npy", "vectors.tsv"]
    tsv = (tmp_path / "proj" / "vectors.tsv").read_text().splitlines()
    assert len(tsv) == len(ids) and len(tsv[0].split("\t")) == 32
    meta = (tmp_path / "proj" / "metadata.tsv").read_text().splitlines()
    assert meta[0] == "name\tartist" and len(meta) == len(ids) + 1
    assert meta[1].startswith("Track ") and meta[1].split("\t")[1].startswith("Artist ")


def test_similar_tracks_share_genre(set_run: Path, synthetic_corpus: Corpus) -> None:
    run = load_run(set_run)
    occ = synthetic_corpus.occurrence_count[synthetic_corpus.vocab()]
    query = run.ids[int(np.argmax(occ))]  # the most frequent track
    got = similar_tracks(run, query, k=10)
    assert len(got) == 10 and query not in [n.track_id for n in got]
    assert all(a.score >= b.score for a, b in zip(got, got[1:], strict=False))
    genre = synthetic_corpus.track_genres[synthetic_corpus.track_ids.index(query)][0]
    assert sum(n.name is not None and f"({genre}," in n.name for n in got) >= 8
    with pytest.raises(QueryError, match="unknown track id 'nope'"):
        similar_tracks(run, "nope")


def test_resume_gives_the_uninterrupted_result(tmp_path: Path,
                                               synthetic_corpus_dir: Path) -> None:
    cfg = replace(TINY, epochs=4, seeds=2)
    whole = train_run(synthetic_corpus_dir, tmp_path / "whole", cfg, progress=False)

    class Interrupt(Exception):
        pass

    seen: list[str] = []

    def stop_in_second_member(msg: str) -> None:
        seen.append(msg)
        if msg.startswith("member 1 epoch 2"):
            raise Interrupt

    with pytest.raises(Interrupt):
        train_run(synthetic_corpus_dir, tmp_path / "cut", cfg, progress=False,
                  log=stop_in_second_member)
    assert not (tmp_path / "cut" / "vectors.npy").exists()
    resumed = train_run(synthetic_corpus_dir, tmp_path / "cut", cfg, progress=False,
                        resume=True, log=seen.append)
    # the log line of epoch 2 comes before its checkpoint, so epoch 2 is redone
    assert "resuming member 1 after epoch 1" in seen
    np.testing.assert_array_equal(resumed.vectors, whole.vectors)
    a = json.loads((tmp_path / "whole" / "metrics.json").read_text())["history"]
    b = json.loads((tmp_path / "cut" / "metrics.json").read_text())["history"]
    assert [h["loss"] for h in a] == [h["loss"] for h in b]
    with pytest.raises(ConfigError, match="different config"):
        train_run(synthetic_corpus_dir, tmp_path / "cut", replace(cfg, lr=0.01),
                  progress=False, resume=True)


def test_a_large_training_set_trains_one_member(tmp_path: Path,
                                                 synthetic_corpus_dir: Path) -> None:
    """From `ensemble_below` training playlists one member is trained, whatever `seeds` says,
    and the log says so (the synthetic corpus stands in for a large one with the bar at 2)."""
    seen: list[str] = []
    run = train_run(synthetic_corpus_dir, tmp_path / "one",
                    replace(TINY, epochs=1, seeds=2, ensemble_below=2), progress=False,
                    log=seen.append)
    assert run.vectors.shape[1] == TINY.dim
    metrics = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert len(metrics["members"]) == 1
    assert any(m.startswith("training one member, not 2:") for m in seen)


def test_full_trains_on_test_playlists_too(synthetic_corpus: Corpus) -> None:
    part = build_training_data(synthetic_corpus, full=False, neighbours=False)
    full = build_training_data(synthetic_corpus, full=True, neighbours=False)
    n_train = (synthetic_corpus.split == 0).sum()
    n_test = (synthetic_corpus.split == 2).sum()
    assert part.n_playlists <= n_train < full.n_playlists <= n_train + n_test
    assert full.n_playlists > part.n_playlists + 0.9 * n_test


def test_sampling_is_vectorised_and_correct(synthetic_corpus: Corpus) -> None:
    data = build_training_data(synthetic_corpus, window=3)
    rng = np.random.default_rng(0)
    pls = np.arange(50)
    b = set_batch(data, pls, rng, 0.5, 0.5)
    for i in (0, 7, 49):  # context + targets partition the playlist's distinct tracks
        ctx, tgt = b.context_cols[b.context_rows == i], b.target_cols[b.target_rows == i]
        items = data.set_cols[data.set_indptr[i]:data.set_indptr[i + 1]]
        assert sorted(np.r_[ctx, tgt]) == sorted(items)
        assert ctx.shape[0] == np.clip(round(0.5 * items.shape[0]), 1, items.shape[0] - 1)
    occ = rng.integers(0, data.n_occurrences, 256)
    pb = pair_batch(data, occ, rng, 3)
    pl = np.searchsorted(data.seq_indptr, occ, side="right") - 1
    assert pb.mask is not None and not pb.mask.diagonal().any()
    # the positive is another occurrence of the same playlist within 3 positions: recover it
    for o, p, a, pos in zip(occ[:40], pl[:40], pb.anchors[:40], pb.positives[:40], strict=True):
        assert a == data.seq_cols[o]
        lo, hi = max(data.seq_indptr[p], o - 3), min(data.seq_indptr[p + 1] - 1, o + 3)
        window = [j for j in range(lo, hi + 1) if j != o]
        assert pos in data.seq_cols[window]
    # duplicates of a positive and known neighbours of the anchor are masked
    dup = pb.positives[None, :] == pb.positives[:, None]
    np.fill_diagonal(dup, False)
    assert pb.mask[dup].all()
    assert data.neighbours is not None
    nb = data.neighbours[pb.anchors][:, pb.positives].toarray() > 0
    np.fill_diagonal(nb, False)
    assert pb.mask[nb].all()


def test_window_neighbours_match_brute_force() -> None:
    from dynplayer.train.sampling import window_neighbours

    indptr = np.array([0, 5, 8])
    cols = np.array([0, 1, 2, 3, 0, 4, 5, 4])  # playlists [0 1 2 3 0] and [4 5 4]
    nb = window_neighbours(indptr, cols, 6, window=2)
    assert nb.dtype == bool and nb.has_sorted_indices
    got = nb.toarray() > 0
    want = np.zeros((6, 6), dtype=bool)
    for p in range(2):
        seq = cols[indptr[p]:indptr[p + 1]]
        for i in range(len(seq)):
            for j in range(i + 1, min(len(seq), i + 3)):
                want[seq[i], seq[j]] = want[seq[j], seq[i]] = True
    np.testing.assert_array_equal(got, want)
    assert got[4, 4] and not got[0, 0]  # repeated within the window (2 apart), or not (4)
    assert got[1, 3] and got[3, 0] and not got[1, 4]


def test_lr_schedule() -> None:
    cfg = TrainConfig(lr=1.0, warmup=0.1, lr_min=0.0)
    assert lr_at(cfg, 0, 100) == pytest.approx(0.1)
    assert lr_at(cfg, 9, 100) == pytest.approx(1.0)
    assert lr_at(cfg, 10, 100) == pytest.approx(1.0)
    assert lr_at(cfg, 55, 100) == pytest.approx(0.5)
    assert lr_at(cfg, 100, 100) == pytest.approx(0.0, abs=1e-12)


def test_config_file_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "flat.toml").write_text('dim = 64\nobjective = "pairwise"\n')
    (tmp_path / "table.toml").write_text('[train]\ntemperature = 0.05\nlogq = true\n')
    cfg = load_train_config(tmp_path / "flat.toml", ["train.lr=0.01", "uniformity=0.5"])
    assert (cfg.dim, cfg.objective, cfg.lr, cfg.uniformity) == (64, "pairwise", 0.01, 0.5)
    cfg = load_train_config(tmp_path / "table.toml")
    assert (cfg.temperature, cfg.logq) == (0.05, True)
    with pytest.raises(ConfigError, match="unknown config key 'tempreature'"):
        load_train_config(None, ["tempreature=0.1"])
    (tmp_path / "bad.toml").write_text("[train]\nwidnow = 3\n")
    with pytest.raises(ConfigError, match="widnow"):
        load_train_config(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="objective"):
        load_train_config(None, ["objective=triplet"])
    with pytest.raises(ConfigError, match="'ensemble_below': must be >= 0"):
        load_train_config(None, ["ensemble_below=-1"])
    with pytest.raises(ConfigError, match="'min_epochs': must be >= 1"):
        load_train_config(None, ["min_epochs=0"])


def test_corpus_without_split_or_vocabulary(tmp_path: Path) -> None:
    raw = generate(SyntheticSpec(n_playlists=40, n_tracks=50))
    save_corpus(raw, tmp_path / "raw")
    with pytest.raises(ArtifactError, match="no track selection or split"):
        train_run(tmp_path / "raw", tmp_path / "run", TINY, progress=False)
    from conftest import make_synthetic

    empty = make_synthetic(n_playlists=40, n_tracks=50)
    assert empty.selected is not None
    empty.selected[:] = False
    save_corpus(empty, tmp_path / "empty")
    with pytest.raises(ArtifactError, match="empty vocabulary"):
        train_run(tmp_path / "empty", tmp_path / "run", TINY, progress=False)
    assert not (tmp_path / "run").exists()


def test_cli_errors_are_one_line(tmp_path: Path, synthetic_corpus_dir: Path) -> None:
    cmd = [sys.executable, "-m", "dynplayer.cli", "train", str(synthetic_corpus_dir), "--out",
           str(tmp_path / "r"), "--set", "windw=3"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "unknown config key 'windw'" in out.stderr


def test_sparse_adam_pairwise_trains(tmp_path: Path, synthetic_corpus_dir: Path,
                                     synthetic_corpus: Corpus) -> None:
    cfg = replace(TINY, objective="pairwise", sparse=True, optimizer="sparse_adam",
                  batch_size=512, epochs=3, temperature=0.1, lr=0.02, logq=True)
    run = train_run(synthetic_corpus_dir, tmp_path / "sparse", cfg, progress=False)
    hist = json.loads((tmp_path / "sparse" / "metrics.json").read_text())["history"]
    assert hist[-1]["loss"] < hist[0]["loss"]
    genre = np.asarray(synthetic_corpus.manifest["synthetic"]["track_genre"])[
        synthetic_corpus.vocab()]
    assert _centroid_precision(run.vectors, genre).mean() >= 0.9


def test_auto_optimizer_goes_sparse_above_its_threshold(tmp_path: Path,
                                                         synthetic_corpus_dir: Path) -> None:
    """"auto" trains a large vocabulary with sparse Adam (only the rows a step samples are
    updated) when the set term is sampled, and a small one with AdamW as before."""
    from dynplayer.train.config import validate
    from dynplayer.train.objectives import resolved_optimizer

    base = replace(TINY, objective="mix", pairwise_batch=256)
    assert base.optimizer == "auto"
    assert resolved_optimizer(base, 150_000) == "adamw"  # at most sparse_above (200,000)
    assert resolved_optimizer(base, 250_000) == "sparse_adam"
    assert resolved_optimizer(replace(base, set_softmax="full"), 250_000) == "adamw"
    assert resolved_optimizer(replace(base, optimizer="adam"), 250_000) == "adam"
    assert resolved_optimizer(base, 250_000, world=2) == "adamw"  # DDP: dense gradients
    with pytest.raises(ConfigError, match="sparse_above"):
        validate(replace(base, sparse_above=-1))
    cfg = replace(base, sampled_above=0, sparse_above=0, epochs=3)
    train_run(synthetic_corpus_dir, tmp_path / "auto", cfg, progress=False)
    metrics = json.loads((tmp_path / "auto" / "metrics.json").read_text())
    assert (metrics["optimizer"], metrics["set_softmax"]) == ("sparse_adam", "sampled")
    assert metrics["history"][-1]["loss"] < metrics["history"][0]["loss"]
    train_run(synthetic_corpus_dir, tmp_path / "dense", replace(base, epochs=1),
              progress=False)
    dense = json.loads((tmp_path / "dense" / "metrics.json").read_text())
    assert dense["optimizer"] == "adamw"


def test_cli_train_export_similar(tmp_path: Path, synthetic_corpus_dir: Path) -> None:
    from typer.testing import CliRunner

    from dynplayer.cli import app

    cli = CliRunner()
    (tmp_path / "t.toml").write_text('[train]\nobjective = "set"\ninit = "random"\ndim = 16\n'
                                     'epochs = 2\nbatch_size = 64\nseeds = 1\n')
    res = cli.invoke(app, ["train", str(synthetic_corpus_dir), "--out", str(tmp_path / "run"),
                           "--config", str(tmp_path / "t.toml"), "--set", "seed=1",
                           "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "val recall@10" in res.output
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert (cfg["dim"], cfg["epochs"], cfg["seed"], cfg["device"]) == (16, 2, 1, "cpu")
    res = cli.invoke(app, ["export", str(tmp_path / "run"), "--out", str(tmp_path / "exp")])
    assert res.exit_code == 0 and (tmp_path / "exp" / "vectors.npy").exists()
    first = (tmp_path / "exp" / "ids.txt").read_text().splitlines()[0]
    res = cli.invoke(app, ["similar", str(tmp_path / "run"), first, "-k", "3"])
    assert res.exit_code == 0
    lines = res.output.strip().splitlines()
    assert len(lines) == 3 and all(" — Artist " in line for line in lines)
    res = cli.invoke(app, ["similar", str(tmp_path / "run"), "no-such-id"])
    assert isinstance(res.exception, QueryError)


class _Payload:
    """What a tampered checkpoint could hold: unpickling it would run a command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return (os.system, (f"touch {self.marker}",))


def test_resume_never_unpickles_arbitrary_objects(tmp_path: Path,
                                                  synthetic_corpus_dir: Path) -> None:
    """`train --resume` reads checkpoint.pt with weights_only=True: its own checkpoints hold only
    tensors and plain values (and resume), a pickle holding code is refused, not run."""
    import torch

    from dynplayer.train.checkpoint import checkpoint_path, load_checkpoint

    cfg = replace(TINY, epochs=2)
    first = train_run(synthetic_corpus_dir, tmp_path / "run", cfg, progress=False)
    own = load_checkpoint(tmp_path / "run")
    assert own is not None and isinstance(own["member_vectors"][0], np.ndarray)
    # resuming a finished run rebuilds the same vectors from the checkpoint alone
    again = train_run(synthetic_corpus_dir, tmp_path / "run", cfg, progress=False, resume=True)
    np.testing.assert_array_equal(again.vectors, first.vectors)

    # arrays of every kind go back as they were: shared with torch where they can be (written
    # straight to the file), copied where not (read-only, strided, another byte order)
    from dynplayer.train.checkpoint import TrainState, save_checkpoint

    base = np.arange(24, dtype=np.float32).reshape(6, 4)
    frozen = base.copy()
    frozen.flags.writeable = False
    arrays = [base, frozen, base[:, ::2], base.astype(">f4"), np.array([], dtype=np.int64)]
    save_checkpoint(tmp_path / "mixed", cfg, {"k": 1}, None, TrainState(), arrays)
    back = load_checkpoint(tmp_path / "mixed")
    assert back is not None
    for got, want in zip(back["member_vectors"], arrays, strict=True):
        np.testing.assert_array_equal(got, want)
    assert not list((tmp_path / "mixed").glob(".checkpoint.pt.*"))  # no temp file left

    marker = tmp_path / "pwned"
    bad = tmp_path / "bad"
    bad.mkdir()
    torch.save({"config": {}, "meta": {}, "state": {}, "trainer": None,
                "member_vectors": [_Payload(marker)]}, checkpoint_path(bad))
    with pytest.raises(ArtifactError, match="refused without loading it"):
        load_checkpoint(bad)
    assert not marker.exists()
    code = subprocess.run([sys.executable, "-m", "dynplayer.cli", "train",
                           str(synthetic_corpus_dir), "--out", str(bad), "--resume"],
                          capture_output=True, text=True, timeout=120)
    assert code.returncode == 2 and "Traceback" not in code.stderr, code.stderr
    assert "refused without loading it" in code.stderr and not marker.exists()
